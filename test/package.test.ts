/**
 * What `npm publish` would ship: the packed tarball passes publint --strict and
 * @arethetypeswrong/cli (ESM-only profile), carries its licence, and every source map and README
 * link in it points at a file that is in it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packTarball, ROOT, unpack } from './pack.js';

let tarball: string;
let pkg: string;
beforeAll(() => {
  tarball = packTarball();
  pkg = mkdtempSync(join(tmpdir(), 'eat-package-'));
  unpack(tarball, pkg);
});
afterAll(() => {
  rmSync(dirname(tarball), { recursive: true, force: true });
  rmSync(pkg, { recursive: true, force: true });
});

function files(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

function bin(name: string): string {
  return join(ROOT, 'node_modules/.bin', name);
}

describe('the published package', () => {
  it('passes publint --strict', () => {
    const run = spawnSync(bin('publint'), ['--strict', tarball], { encoding: 'utf8' });
    expect(`${run.stdout}${run.stderr}`).toContain('All good!');
    expect(run.status).toBe(0);
  });

  it('passes @arethetypeswrong/cli with the esm-only profile', () => {
    const run = spawnSync(bin('attw'), ['--profile', 'esm-only', '--format', 'ascii', tarball], { encoding: 'utf8' });
    expect(run.status, `${run.stdout}${run.stderr}`).toBe(0);
  });

  it('ships the MIT licence the manifest names', () => {
    const manifest = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { license: string; engines: { node: string } };
    expect(manifest.license).toBe('MIT');
    expect(readFileSync(join(pkg, 'LICENSE'), 'utf8')).toMatch(/^MIT License\n/);
  });

  it('needs Node 20.19 or later, where require() of an ES module works', () => {
    const manifest = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { engines: { node: string } };
    expect(manifest.engines.node).toBe('>=20.19');
    // The built entry point loads through require() on this Node (the packed copy has no node_modules).
    const entry = join(ROOT, 'dist/src/index.js');
    const run = spawnSync(process.execPath, ['-e', `process.stdout.write(typeof require(${JSON.stringify(entry)}).createAppTokens)`], { encoding: 'utf8' });
    expect(run.stdout, run.stderr).toBe('function');
  });

  it('has no source map pointing at a source the tarball lacks', () => {
    const maps = files(pkg).filter((f) => f.endsWith('.map'));
    expect(maps.length).toBeGreaterThan(0);
    const missing = maps.flatMap((map) => {
      const { sources } = JSON.parse(readFileSync(map, 'utf8')) as { sources: string[] };
      return sources.map((s) => resolve(dirname(map), s)).filter((s) => !existsSync(s)).map((s) => `${relative(pkg, map)} → ${relative(pkg, s)}`);
    });
    expect(missing).toEqual([]);
  });

  it('has no README link to a file the tarball lacks', () => {
    const readme = readFileSync(join(pkg, 'README.md'), 'utf8');
    const links = [...readme.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)].map((m) => m[1]!).filter((l) => !/^[a-z]+:/.test(l));
    expect(links.length).toBeGreaterThan(0);
    expect(links.filter((l) => !existsSync(join(pkg, l)))).toEqual([]);
  });
});

