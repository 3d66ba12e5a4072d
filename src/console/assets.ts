/**
 * The console's built browser assets (`npm run build` writes them to `dist/console/` with a
 * `manifest.json`): found beside the compiled code or, when the sources run directly (tests,
 * tsx), in the package's `dist/`. Read once into memory, with a gzip copy of each.
 *
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

/** One built file, served under `assets/<name>`. */
export interface ConsoleAsset {
  name: string;
  type: string;
  body: Buffer;
  gzip: Buffer;
}

/** What the build recorded: the hashed names of the one script and the one stylesheet. */
export interface ConsoleAssets {
  script: ConsoleAsset;
  style: ConsoleAsset;
  byName: ReadonlyMap<string, ConsoleAsset>;
}

/** Hashed names only (`console-3F2A9C1B.js`): nothing else can be asked for. */
const ASSET_NAME = /^console-[A-Z0-9]{8,}\.(?:js|css)$/;

/** `dist/src/console/assets.js` → `dist/console/`; `src/console/assets.ts` → `dist/console/`. */
const CANDIDATES = ['../../console/', '../../dist/console/'];

export function assetDirectory(): string | undefined {
  for (const candidate of CANDIDATES) {
    const dir = fileURLToPath(new URL(candidate, import.meta.url));
    if (existsSync(`${dir}manifest.json`)) return dir;
  }
  return undefined;
}

/** @throws Error when the assets are not built or the manifest names a file that is not there. */
export function loadAssets(): ConsoleAssets {
  const dir = assetDirectory();
  if (dir === undefined) throw new Error('the console assets are not built: run `npm run build` (dist/console/manifest.json is missing)');
  const manifest = JSON.parse(readFileSync(`${dir}manifest.json`, 'utf8')) as { script?: unknown; style?: unknown };
  const load = (name: unknown, type: string): ConsoleAsset => {
    if (typeof name !== 'string' || !ASSET_NAME.test(name)) throw new Error(`dist/console/manifest.json: not an asset name: ${String(name)}`);
    const body = readFileSync(`${dir}${name}`);
    return { name, type, body, gzip: gzipSync(body, { level: 9 }) };
  };
  const script = load(manifest.script, 'text/javascript; charset=utf-8');
  const style = load(manifest.style, 'text/css; charset=utf-8');
  return { script, style, byName: new Map([script, style].map((a) => [a.name, a])) };
}
