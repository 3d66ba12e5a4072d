/** What every screen gets from the App: the one place state lives. */
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { Api, Principal } from './api.js';
import type { ConsoleConfig } from './config.js';
import type { SecretFile } from './format.js';

export interface Console {
  api: Api;
  config: ConsoleConfig;
  /** `GET /me/principal`: every signed-in caller, apps:read or not, is named with the scopes it holds. */
  principal: Principal;
  /** Holds apps:write (or is unrestricted): write controls are shown. */
  canWrite: boolean;
  /** Holds apps:read: the apps screens and the token debugger are shown (otherwise only My tokens). */
  canRead: boolean;
  navigate: (hash: string) => void;
  /** Show a new secret once; after "Done", go to `returnTo`. */
  showSecret: (file: SecretFile, returnTo: string) => void;
  /** A status line announced politely (aria-live). */
  announce: (text: string) => void;
}

export const ConsoleContext = createContext<Console | null>(null);

export function useConsole(): Console {
  const c = useContext(ConsoleContext);
  if (c === null) throw new Error('outside the console');
  return c;
}
