/**
 * `npm pack` of this repository as a test fixture: the tarball a user would install, packed from
 * the dist/ that `npm test` builds first (`--ignore-scripts`: no second build while other test
 * files run the built code).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ROOT = join(import.meta.dirname, '..');

/** Pack into a new temporary directory; returns the tarball's path. */
export function packTarball(): string {
  if (!existsSync(join(ROOT, 'dist/src/index.js'))) throw new Error('run `npm run build` first (npm test does)');
  const dir = mkdtempSync(join(tmpdir(), 'eat-pack-'));
  const out = execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, npm_config_loglevel: 'error' },
  });
  const [packed] = JSON.parse(out) as Array<{ filename: string }>;
  if (!packed) throw new Error(`npm pack printed no tarball: ${out}`);
  return join(dir, packed.filename);
}

/** Unpack a tarball's `package/` into `dest` (created). */
export function unpack(tarball: string, dest: string): void {
  mkdirSync(dest, { recursive: true });
  execFileSync('tar', ['-xzf', tarball, '-C', dest, '--strip-components=1']);
}
