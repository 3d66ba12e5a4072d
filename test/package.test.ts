/**
 * What `npm publish` would ship: the packed tarball passes publint --strict and
 * @arethetypeswrong/cli (ESM-only profile), carries its licence, and every source map, README
 * link and guide link in it points at a file that is in it.
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

/** The relative link targets of a Markdown text, without their `#fragment`. */
function relativeLinks(text: string): string[] {
  return [...text.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)].map((m) => m[1]!).filter((l) => !/^[a-z]+:/.test(l));
}

/** The anchors GitHub gives a Markdown text's headings (code blocks skipped). */
function headingSlugs(text: string): Set<string> {
  const slugs = new Set<string>();
  let fenced = false;
  for (const line of text.split('\n')) {
    if (/^ *```/.test(line)) fenced = !fenced;
    const heading = fenced ? undefined : /^#{1,6} (.*)$/.exec(line)?.[1];
    if (heading !== undefined) slugs.add(heading.toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/ /g, '-'));
  }
  return slugs;
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
    const links = relativeLinks(readme);
    expect(links.length).toBeGreaterThan(0);
    expect(links.filter((l) => !existsSync(join(pkg, l)))).toEqual([]);
  });

  it('ships every guide and reference page the README links, and no guide links a file the tarball lacks', () => {
    const readme = readFileSync(join(pkg, 'README.md'), 'utf8');
    const guides = readdirSync(join(ROOT, 'docs/guides')).filter((name) => name.endsWith('.md'));
    expect(guides.length).toBeGreaterThan(0);
    for (const name of guides) expect(readme, `README links docs/guides/${name}`).toContain(`](docs/guides/${name})`);
    for (const name of ['options.md', 'http-api.md', 'errors.md']) expect(existsSync(join(pkg, 'docs/reference', name)), `docs/reference/${name}`).toBe(true);
    const broken = guides.flatMap((name) => {
      expect(existsSync(join(pkg, 'docs/guides', name)), `docs/guides/${name} in the tarball`).toBe(true);
      const text = readFileSync(join(pkg, 'docs/guides', name), 'utf8');
      return relativeLinks(text)
        .filter((l) => !existsSync(resolve(pkg, 'docs/guides', l)))
        .map((l) => `docs/guides/${name} → ${l}`);
    });
    expect(broken).toEqual([]);
  });

  it('has no link from the README or a guide to a heading that does not exist', () => {
    const pages = ['README.md', ...readdirSync(join(pkg, 'docs/guides')).filter((n) => n.endsWith('.md')).map((n) => `docs/guides/${n}`)];
    const missing = pages.flatMap((page) =>
      [...readFileSync(join(pkg, page), 'utf8').matchAll(/\]\(([^)#\s]*)#([^)\s]+)\)/g)]
        .filter((m) => !/^[a-z]+:/.test(m[1]!))
        .filter((m) => {
          const target = m[1] ? resolve(dirname(join(pkg, page)), m[1]) : join(pkg, page);
          return !target.endsWith('.md') || !headingSlugs(readFileSync(target, 'utf8')).has(m[2]!);
        })
        .map((m) => `${page} → ${m[1]}#${m[2]}`),
    );
    expect(missing).toEqual([]);
  });
});

