/**
 * The packed library in a fresh TypeScript project, as a user installs it: the code blocks of the
 * README and of the guides (`docs/guides/*.md`), taken verbatim, type-check with `module: nodenext`,
 * `strict` and no `skipLibCheck`, with only the packages the getting-started guide lists for that
 * store. The tarball is unpacked
 * into the consumer's node_modules and the other packages are symlinked from this repository's
 * node_modules (no network, a few seconds); the consumer's own node_modules holds nothing else, so
 * the library's types cannot reach a driver the README does not ask for.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packTarball, ROOT, unpack } from './pack.js';

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const GUIDES = join(ROOT, 'docs/guides');
/** Every guide, by file name, in name order. */
const guides = readdirSync(GUIDES)
  .filter((name) => name.endsWith('.md'))
  .sort()
  .map((name) => ({ name, text: readFileSync(join(GUIDES, name), 'utf8') }));
const gettingStarted = readFileSync(join(GUIDES, 'getting-started.md'), 'utf8');
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

/**
 * The settings of a demanding consumer: `strict`, and `exactOptionalPropertyTypes` (an optional
 * option given `process.env.X`, a `string | undefined`, must still compile: issue 21, finding 10).
 */
const STRICT = {
  module: 'nodenext',
  moduleResolution: 'nodenext',
  target: 'es2022',
  strict: true,
  exactOptionalPropertyTypes: true,
  skipLibCheck: false,
  noEmit: true,
};

/** A consumer project with the packed library and exactly `packages` (plus its dependencies). */
function consumer(packages: string[], source?: string): string {
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
      compilerOptions: STRICT,
      files: ['app.ts'],
    }),
  );
  if (source !== undefined) writeFileSync(join(dir, 'app.ts'), source);
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

function block(text: string, file: string, pattern: RegExp, what: string): string {
  const code = pattern.exec(text)?.[1];
  if (!code) throw new Error(`${file}: ${what} code block not found`);
  return code;
}

const APP_BLOCK = /## Use it in your app\s*```ts\n([\s\S]*?)```/;
const QUICK_START_BLOCK = /## Quick start\s[\s\S]*?```ts\n([\s\S]*?)```/;
const POSTGRES_BLOCK = /<!-- postgres-example:start -->\s*```ts\n([\s\S]*?)```\s*<!-- postgres-example:end -->/;
const TYPES = ['express', '@types/express', '@types/node'];

describe('a strict TypeScript consumer of the packed library', () => {
  it('compiles the getting-started app on SQLite with neither pg nor @types/pg installed', () => {
    const dir = consumer([...TYPES, 'better-sqlite3'], block(gettingStarted, 'docs/guides/getting-started.md', APP_BLOCK, '"Use it in your app"'));
    expect(resolvable(dir, 'pg')).toBe(false);
    expect(resolvable(dir, '@types/pg')).toBe(false);
    expect(resolvable(dir, '@types/better-sqlite3')).toBe(false);
    const { status, output } = typeCheck(dir);
    expect(output).toBe('');
    expect(status).toBe(0);
    // And it loads at run time without pg.
    execFileSync(process.execPath, ['--input-type=module', '-e', "await import('express-app-tokens/adapters/sqlite')"], { cwd: dir });
  });

  it('compiles the README quick start (routes, a protected route, the console) with only the packages it names', () => {
    const dir = consumer([...TYPES, 'better-sqlite3'], block(readme, 'README.md', QUICK_START_BLOCK, '"Quick start"'));
    expect(resolvable(dir, 'pg')).toBe(false);
    expect(resolvable(dir, '@types/pg')).toBe(false);
    const { status, output } = typeCheck(dir);
    expect(output).toBe('');
    expect(status).toBe(0);
  });

  it('compiles the getting-started PostgreSQL app with neither better-sqlite3 nor its types installed', () => {
    const dir = consumer([...TYPES, 'pg', '@types/pg'], block(gettingStarted, 'docs/guides/getting-started.md', POSTGRES_BLOCK, 'PostgreSQL'));
    expect(resolvable(dir, 'better-sqlite3')).toBe(false);
    expect(resolvable(dir, '@types/better-sqlite3')).toBe(false);
    const { status, output } = typeCheck(dir);
    expect(output).toBe('');
    expect(status).toBe(0);
    execFileSync(process.execPath, ['--input-type=module', '-e', "await import('express-app-tokens/adapters/postgres')"], { cwd: dir });
  });
});

/**
 * Every `ts` block of the README and of every guide, each compiled as its own module of one
 * consumer project, named after its file and the line it starts on. A block
 * that is a fragment uses names a host has in scope (`auth`, `app`, `handler`…): they are declared
 * once in `host.d.ts` below, with the host's session typing; a block that declares a name itself
 * shadows it. Inside `createAppTokens({ /* … *\/ … })`, the `/* … *\/` stands for the rest of the
 * host's options and is compiled as a spread of a complete options object; so is a line that is only
 * `// …` or `…,`.
 */
const HOST_DECLARATIONS = `import type express from 'express';
import type { AppTokens, AppTokensOptions, Store } from 'express-app-tokens';
declare global {
  const auth: AppTokens;
  const store: Store;
  const issuer: string;
  const scopes: string[];
  const app: express.Express;
  const handler: express.RequestHandler;
  const options: AppTokensOptions;
  const ISSUER: string;
  const CLIENT_ID: string;
  const CLIENT_SECRET: string;
  const users: { find(tenantId: string, userId: string): Promise<{ scopes: string[] } | undefined> };
}
/** The host's session middleware (express-session or the like) types the signed-in user so. */
declare module 'express-serve-static-core' {
  interface Request {
    session?: { user?: { id: string; orgId: string; scopes: string[] } };
  }
}
export {};
`;

/** A Markdown file's `ts` blocks with the line each starts on; a block indented in a list item is dedented. */
function tsBlocks(text: string): Array<{ line: number; code: string }> {
  const blocks: Array<{ line: number; code: string }> = [];
  for (const m of text.matchAll(/^( *)```ts *\n([\s\S]*?)^\1```/gm)) {
    const indent = m[1]!.length;
    const code = m[2]!.split('\n').map((l) => l.slice(Math.min(indent, l.length - l.trimStart().length))).join('\n');
    blocks.push({ line: text.slice(0, m.index).split('\n').length, code });
  }
  return blocks;
}

/** A block as a module: the imports it uses but does not write, and `/* … *\/` as the host's options. */
function asModule(code: string): string {
  const imports: string[] = [];
  const imported = (name: string) => new RegExp(`import[^;]*\\b${name}\\b[^;]*from`).test(code);
  if (/\bexpress\b/.test(code) && !imported('express')) imports.push("import express from 'express';");
  if (/\bcreateAppTokens\b/.test(code) && !imported('createAppTokens')) imports.push("import { createAppTokens } from 'express-app-tokens';");
  const body = code.replace(/\/\* … \*\//g, '...options,').replace(/^(\s*)(?:\/\/ …|…,?)\s*$/gm, '$1...options,');
  return `${imports.join('\n')}\n${body}\nexport {};\n`;
}

describe('the code blocks of the README and the guides (issue 21, finding 10; issue 23 item 6)', () => {
  it('every ts block of README.md and docs/guides/*.md compiles for a strict consumer with exactOptionalPropertyTypes', () => {
    const sources = [{ name: 'README.md', text: readme }, ...guides.map((g) => ({ name: `docs/guides/${g.name}`, text: g.text }))];
    const blocks = sources.flatMap((source) =>
      tsBlocks(source.text).map((b) => ({ ...b, file: `${source.name.replace(/\.md$/, '').replace(/\W+/g, '-')}-line-${b.line}.ts` })),
    );
    expect(tsBlocks(readme).length).toBeGreaterThanOrEqual(1);
    expect(blocks.length).toBeGreaterThanOrEqual(15);
    // No block escapes the extraction, an indented one (in a list item) included.
    for (const source of sources) expect(tsBlocks(source.text).length, source.name).toBe(source.text.match(/^ *```ts *$/gm)?.length ?? 0);
    // The packages the blocks import (a guide may show an OpenTelemetry SDK, say), from this
    // repository's node_modules; a package that is not there fails the compile, as it should.
    const imported = blocks.flatMap((b) => [...b.code.matchAll(/\bfrom '((?:@[^/']+\/)?[^/.'][^/']*)/g)].map((m) => m[1]!));
    const extra = [...new Set(imported)].filter((name) => name !== 'express-app-tokens' && !dependencies.includes(name) && existsSync(join(ROOT, 'node_modules', name)));
    const dir = consumer([...new Set([...TYPES, '@types/express-serve-static-core', 'better-sqlite3', 'pg', '@types/pg', 'openid-client', ...extra])].filter((name) => !dependencies.includes(name)));
    for (const b of blocks) writeFileSync(join(dir, b.file), asModule(b.code));
    writeFileSync(join(dir, 'host.d.ts'), HOST_DECLARATIONS);
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: STRICT, files: ['host.d.ts', ...blocks.map((b) => b.file)] }));
    const { status, output } = typeCheck(dir);
    // The file name says which file, and which line of it, the failing block starts on
    // (`README-line-64.ts`, `docs-guides-dpop-line-12.ts`).
    expect(output).toBe('');
    expect(status).toBe(0);
  });

  it('a block that does not compile is caught (the check can fail)', () => {
    const dir = consumer([...TYPES, '@types/express-serve-static-core', 'better-sqlite3']);
    const bad = asModule("createAppTokens({ /* … */ keyEncryptionSecret: 42 });");
    writeFileSync(join(dir, 'bad.ts'), bad);
    writeFileSync(join(dir, 'host.d.ts'), HOST_DECLARATIONS);
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: STRICT, files: ['host.d.ts', 'bad.ts'] }));
    const { status, output } = typeCheck(dir);
    expect(status).not.toBe(0);
    expect(output).toMatch(/bad\.ts.*keyEncryptionSecret|TS2322/s);
  });
});
