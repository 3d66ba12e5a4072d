/**
 * Instances of the BUILT example server (dist/examples/server.js) as separate processes, and the
 * CLI's bootstrap. Each instance's stdout and stderr go to a log file; an exit the scenario did
 * not ask for is recorded (the guarantee "no instance exits").
 */
import { execFile, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { call, freePort, waitFor } from './util.mjs';

export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const SERVER = join(ROOT, 'dist/examples/server.js');
export const CLI = join(ROOT, 'dist/src/cli.js');

/** Every instance ever started, for the exit handler. */
const live = new Set();

export function killAllSync() {
  for (const instance of live) instance.killSync();
}

/**
 * Start one instance; resolves once GET /health answers 200 (or rejects with its log after 30 s).
 * @param {{name: string, databaseUrl: string, issuer: string, logDir: string, port?: number, env?: Record<string,string>}} o
 */
export async function startInstance({ name, databaseUrl, issuer, logDir, port, env = {} }) {
  port ??= await freePort();
  const logFile = join(logDir, `${name}.log`);
  const instance = {
    name,
    port,
    base: `http://127.0.0.1:${port}`,
    logFile,
    /** Exits nobody asked for: `{code, signal}`. */
    unexpectedExits: [],
    exited: false,
    expectExit: false,
    proc: undefined,
    log() {
      try {
        return readFileSync(logFile, 'utf8');
      } catch {
        return '';
      }
    },
    /** kill -9: the scenario asked for it. */
    async kill9() {
      instance.expectExit = true;
      instance.proc.kill('SIGKILL');
      await waitFor(() => instance.exited, 10_000, `${name} to exit after SIGKILL`);
    },
    async stop() {
      if (instance.exited) return;
      instance.expectExit = true;
      instance.proc.kill('SIGTERM');
      try {
        await waitFor(() => instance.exited, 10_000, `${name} to stop`);
      } catch {
        instance.proc.kill('SIGKILL');
        await waitFor(() => instance.exited, 5000, `${name} to die`);
      }
    },
    /** Start again on the same port and database (after kill9). */
    async restart() {
      await spawnIt();
    },
    killSync() {
      if (!instance.exited) {
        try {
          instance.proc.kill('SIGKILL');
        } catch {
          // gone
        }
      }
    },
  };

  async function spawnIt() {
    const fd = openSync(logFile, 'a');
    instance.exited = false;
    instance.expectExit = false;
    const proc = spawn(process.execPath, [SERVER], {
      cwd: logDir,
      env: {
        ...process.env,
        ...env,
        PORT: String(port),
        ISSUER: issuer,
        DATABASE_URL: databaseUrl,
        RATE_LIMIT: '100000000/1',
        NODE_ENV: 'development',
      },
      stdio: ['ignore', fd, fd],
    });
    closeSync(fd);
    instance.proc = proc;
    live.add(instance);
    proc.on('exit', (code, signal) => {
      instance.exited = true;
      instance.exitCode = code;
      instance.exitSignal = signal;
      if (!instance.expectExit) instance.unexpectedExits.push({ code, signal, at: new Date().toISOString() });
    });
    await waitFor(
      async () => {
        if (instance.exited) throw new Error(`${name} exited at start (code ${instance.exitCode}):\n${instance.log().slice(-2000)}`);
        const res = await call(instance.base, 'GET', '/health', { timeoutMs: 2000 });
        return res.status === 200;
      },
      30_000,
      `${name} to answer /health`,
    );
  }
  await spawnIt();
  return instance;
}

/** `express-app-tokens bootstrap --tenant NAME` on `databaseUrl`: the admin's client id and secret. */
export async function bootstrap(databaseUrl, tenant, cwd) {
  const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'bootstrap', '--tenant', tenant], {
    cwd,
    env: { ...process.env, DATABASE_URL: databaseUrl },
    timeout: 60_000,
  });
  const creds = JSON.parse(stdout.trim().split('\n').pop());
  if (!creds.client_id || !creds.client_secret) throw new Error(`bootstrap printed no credentials: ${stdout}`);
  return creds;
}
