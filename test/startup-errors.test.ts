/**
 * Start-up refusals say why (issue 22, item 5): the built example server and CLI, spawned on a
 * file that is not a database, a damaged database, a path they cannot open (a directory, a path
 * under a regular file, a read-only file system) print the SQLite code and what to do, exit 1, and
 * leave the file as it was. `npm test` builds dist/ before vitest runs.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SERVER = join(ROOT, 'dist/examples/server.js');
const CLI = join(ROOT, 'dist/src/cli.js');

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'eat-startup-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

beforeAll(() => {
  if (!existsSync(SERVER) || !existsSync(CLI)) throw new Error('run `npm run build` first (npm test does)');
});

/** Run the example server (or `prefix` + it, e.g. in a mount namespace); it must exit by itself. */
function startServer(dir: string, databaseUrl: string, prefix: string[] = []) {
  const argv = [...prefix, process.execPath, SERVER];
  const run = spawnSync(argv[0]!, argv.slice(1), {
    cwd: dir,
    // PORT 0 is refused by the config check, so a free port of our own: it is never reached.
    env: { ...process.env, PORT: '39187', DATABASE_URL: databaseUrl },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: run.status, signal: run.signal, stderr: run.stderr, stdout: run.stdout };
}

function runCli(dir: string, databaseUrl: string, args: string[]) {
  const run = spawnSync(process.execPath, [CLI, ...args], { cwd: dir, env: { ...process.env, DATABASE_URL: databaseUrl }, encoding: 'utf8', timeout: 30_000 });
  return { status: run.status, signal: run.signal, stderr: run.stderr, stdout: run.stdout };
}

/** Exit 1 by itself, with the code and advice on stderr, and no stack trace. */
function expectRefusal(run: { status: number | null; signal: NodeJS.Signals | null; stderr: string; stdout: string }, code: string, advice: RegExp): void {
  expect(run.signal, run.stderr).toBeNull();
  expect(run.status, run.stderr).toBe(1);
  expect(run.stderr).toContain(code);
  expect(run.stderr).toMatch(advice);
  expect(run.stderr).toContain('DATABASE_URL');
  expect(run.stderr).not.toMatch(/\n\s+at .*:\d+:\d+/);
  expect(run.stdout).not.toContain('listening');
}

/** A real database of the store (made by the CLI), then its first page (the schema) scrambled. */
function damagedDatabase(dir: string): string {
  const made = runCli(dir, 'sqlite:./data/app-tokens.db', ['bootstrap', '--tenant', 'acme']);
  expect(made.status, made.stderr).toBe(0);
  const file = join(dir, 'data/app-tokens.db');
  expect(existsSync(`${file}-wal`)).toBe(false);
  const bytes = readFileSync(file);
  // Keep the 100-byte header ("SQLite format 3"), so the file is still recognised as a database;
  // a fixed pattern over the rest of page 1 destroys the schema b-tree.
  for (let i = 100; i < 4096; i++) bytes[i] = (i * 37 + 11) & 0xff;
  writeFileSync(file, bytes);
  return file;
}

/** Whether this machine lets us make a read-only bind mount in a user and mount namespace. */
function canMountReadOnly(): boolean {
  const dir = mkdtempSync(join(tmpdir(), 'eat-ro-probe-'));
  try {
    const run = spawnSync('unshare', ['-rm', 'sh', '-c', `mount --bind "${dir}" "${dir}" && mount -o remount,ro,bind "${dir}" "${dir}" && ! touch "${dir}/x" 2>/dev/null`], {
      encoding: 'utf8',
    });
    return run.status === 0;
  } catch {
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('issue 22 item 5: the example server says why the store cannot start', () => {
  it('SQLITE_NOTADB: a file that is not a database → its name, "not a SQLite database", what to do; exit 1; the file untouched', () => {
    const dir = tempDir();
    const content = 'name,secret\nthis is a CSV file, not a database\n'.repeat(50);
    writeFileSync(join(dir, 'app-tokens.db'), content);
    const run = startServer(dir, 'sqlite:./app-tokens.db');
    expectRefusal(run, 'SQLITE_NOTADB', /\.\/app-tokens\.db is not a SQLite database\. Point the store at another file, or move this one away/);
    expect(readFileSync(join(dir, 'app-tokens.db'), 'utf8')).toBe(content);
  });

  it('SQLITE_CORRUPT: a damaged database → "is damaged", restore from a backup; exit 1; the file untouched', () => {
    const dir = tempDir();
    const file = damagedDatabase(dir);
    const before = readFileSync(file);
    const run = startServer(dir, 'sqlite:./data/app-tokens.db');
    expectRefusal(run, 'SQLITE_CORRUPT', /data\/app-tokens\.db is damaged \(.*malformed.*\)\. Restore it from a backup/);
    expect(readFileSync(file).equals(before)).toBe(true);
  });

  it('SQLITE_CANTOPEN: a directory where the file should be → "it is a directory"; exit 1', () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'app-tokens.db'));
    const run = startServer(dir, 'sqlite:./app-tokens.db');
    expectRefusal(run, 'SQLITE_CANTOPEN', /it is a directory\. Point the store at a file path/);
  });

  it('SQLITE_CANTOPEN: a path under a regular file → the directory cannot be created, a file stands in the way; exit 1', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'data'), 'a file, not a directory');
    const run = startServer(dir, 'sqlite:./data/app-tokens.db');
    expectRefusal(run, 'SQLITE_CANTOPEN', /cannot be created \((ENOTDIR|EEXIST)[^)]*\)\. A file stands where a directory is needed/);
  });

  it.skipIf(!canMountReadOnly())('SQLITE_CANTOPEN: a database on a read-only file system → "read-only file system"; exit 1; not a bare "could not be initialised."', () => {
    const dir = tempDir();
    const made = runCli(dir, 'sqlite:./data/app-tokens.db', ['bootstrap', '--tenant', 'acme']);
    expect(made.status, made.stderr).toBe(0);
    // A read-only bind mount of data/ in a mount namespace of the server's own: EROFS even for root.
    const run = startServer(dir, 'sqlite:./data/app-tokens.db', ['unshare', '-rm', 'sh', '-c', 'mount --bind data data && mount -o remount,ro,bind data data && exec "$@"', 'sh']);
    expectRefusal(run, 'SQLITE_CANTOPEN', /is on a read-only file system\. .*mount it read-write or point the store at a writable place/);
  });
});

describe('issue 22 item 5: the CLI says why the store cannot open', () => {
  it('bootstrap and rotate-keys on a file that is not a database: SQLITE_NOTADB and what to do, exit 1 (not 2: no usage error)', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'x.db'), 'not a database '.repeat(100));
    for (const args of [['bootstrap', '--tenant', 'acme'], ['rotate-keys']]) {
      const run = runCli(dir, 'sqlite:./x.db', args);
      expectRefusal(run, 'SQLITE_NOTADB', /is not a SQLite database/);
      expect(run.stdout).toBe('');
    }
  });

  it('bootstrap on a damaged database: SQLITE_CORRUPT, exit 1, nothing printed on stdout', () => {
    const dir = tempDir();
    damagedDatabase(dir);
    const run = runCli(dir, 'sqlite:./data/app-tokens.db', ['bootstrap', '--tenant', 'other']);
    expectRefusal(run, 'SQLITE_CORRUPT', /is damaged/);
    expect(run.stdout).toBe('');
  });
});
