/**
 * The packed library in a fresh TypeScript project, as a user installs it: the README's code
 * blocks, taken verbatim from README.md, type-check with `module: nodenext`, `strict` and no
 * `skipLibCheck`, with only the packages the README lists for that store. The tarball is unpacked
 * into the consumer's node_modules and the other packages are symlinked from this repository's
 * node_modules (no network, a few seconds); the consumer's own node_modules holds nothing else, so
 * the library's types cannot reach a driver the README does not ask for.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packTarball, ROOT, unpack } from './pack.js';

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');
const dependencies = Object.keys((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies);

let tarball: string;
const dirs: string[] = [];
beforeAll(() => {
  tarball = packTarball();
  dirs.push(dirname(tarball));
});
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A consumer project with the packed library and exactly `packages` (plus its dependencies). */
function consumer(packages: string[], source: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'eat-consumer-'));
  dirs.push(dir);
  unpack(tarball, join(dir, 'node_modules/express-app-tokens'));
  for (const name of [...dependencies, ...packages]) {
    const link = join(dir, 'node_modules', name);
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules', name), link, 'dir');
  }
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, skipLibCheck: false, noEmit: true },
      files: ['app.ts'],
    }),
  );
  writeFileSync(join(dir, 'app.ts'), source);
  return dir;
}

function typeCheck(dir: string): { status: number | null; output: string } {
  const run = spawnSync(process.execPath, [TSC, '-p', join(dir, 'tsconfig.json')], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

/** Whether `name` resolves from the installed library, as its own imports would. */
function resolvable(dir: string, name: string): boolean {
  try {
    createRequire(join(dir, 'node_modules/express-app-tokens/package.json')).resolve(`${name}/package.json`);
    return true;
  } catch {
    return false;
  }
}

function block(pattern: RegExp, what: string): string {
  const code = pattern.exec(readme)?.[1];
  if (!code) throw new Error(`README.md: ${what} code block not found`);
  return code;
}

const APP_BLOCK = /## Use it in your app\s*```ts\n([\s\S]*?)```/;
const POSTGRES_BLOCK = /<!-- postgres-example:start -->\s*```ts\n([\s\S]*?)```\s*<!-- postgres-example:end -->/;
const TYPES = ['express', '@types/express', '@types/node'];

describe('a strict TypeScript consumer of the packed library', () => {
  it('compiles the README app on SQLite with neither pg nor @types/pg installed', () => {
    const dir = consumer([...TYPES, 'better-sqlite3'], block(APP_BLOCK, '"Use it in your app"'));
    expect(resolvable(dir, 'pg')).toBe(false);
    expect(resolvable(dir, '@types/pg')).toBe(false);
    expect(resolvable(dir, '@types/better-sqlite3')).toBe(false);
    const { status, output } = typeCheck(dir);
    expect(output).toBe('');
    expect(status).toBe(0);
    // And it loads at run time without pg.
    execFileSync(process.execPath, ['--input-type=module', '-e', "await import('express-app-tokens/adapters/sqlite')"], { cwd: dir });
  });

  it('compiles the README PostgreSQL app with neither better-sqlite3 nor its types installed', () => {
    const dir = consumer([...TYPES, 'pg', '@types/pg'], block(POSTGRES_BLOCK, 'PostgreSQL'));
    expect(resolvable(dir, 'better-sqlite3')).toBe(false);
    expect(resolvable(dir, '@types/better-sqlite3')).toBe(false);
    const { status, output } = typeCheck(dir);
    expect(output).toBe('');
    expect(status).toBe(0);
    execFileSync(process.execPath, ['--input-type=module', '-e', "await import('express-app-tokens/adapters/postgres')"], { cwd: dir });
  });
});
