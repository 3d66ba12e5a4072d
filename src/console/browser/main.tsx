/** The console's entry point: the configuration the server put in the page, then the App. */
import { render } from 'preact';
import { App } from './App.js';
import { readConfig } from './config.js';

render(<App config={readConfig()} />, document.getElementById('root')!);
