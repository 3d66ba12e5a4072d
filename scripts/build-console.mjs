// Bundles the console's browser code (src/console/browser/) into dist/console/: one script and
// one stylesheet with content-hashed names, and manifest.json naming them for the server router
// (src/console/assets.ts). Run by `npm run build` after tsc.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src/console/browser');
const out = join(root, 'dist/console');

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const result = await build({
  entryPoints: { console: join(src, 'main.tsx'), 'console-style': join(src, 'console.css') },
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['chrome111', 'firefox115', 'safari16.4'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  entryNames: 'console-[hash]',
  outdir: out,
  metafile: true,
  legalComments: 'none',
  sourcemap: false,
  logLevel: 'warning',
});

const files = Object.keys(result.metafile.outputs).map((f) => basename(f));
const script = files.find((f) => f.endsWith('.js'));
const style = files.find((f) => f.endsWith('.css'));
if (!script || !style) throw new Error(`build-console: expected one .js and one .css, got ${files.join(', ')}`);
writeFileSync(join(out, 'manifest.json'), `${JSON.stringify({ script, style }, null, 2)}\n`);

const { readFileSync } = await import('node:fs');
const gz = [script, style].reduce((n, f) => n + gzipSync(readFileSync(join(out, f)), { level: 9 }).length, 0);
// On stderr: `npm run cli --silent` pipes stdout (the CLI prints JSON that scripts parse).
console.error(`console: ${script}, ${style}: ${(gz / 1024).toFixed(1)} KB gzipped`);
