/**
 * Orchestrator side of the child processes: fork, wait for ready, request/reply over IPC, and
 * make sure every child (and the embedded PostgreSQL) is gone when the bench exits, however it exits.
 */
import { fork } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ENTRY = fileURLToPath(new URL('../server.mjs', import.meta.url));
const live = new Set();
const exitHooks = new Set();
let logDir;

/** Directory for the children's stdout/stderr logs. */
export function setLogDir(dir) {
  logDir = dir;
}

/** A synchronous hook run when the process exits (signals and errors included). */
export function onExitSync(fn) {
  exitHooks.add(fn);
  return () => exitHooks.delete(fn);
}

export function killAllSync() {
  for (const child of live) child.killSync();
  for (const fn of exitHooks) {
    try {
      fn();
    } catch {
      // best effort
    }
  }
  exitHooks.clear();
}

let installed = false;
/** Kill children on exit, Ctrl-C, SIGTERM and uncaught errors. */
export function installCleanup(asyncCleanup) {
  if (installed) return;
  installed = true;
  process.on('exit', killAllSync);
  let stopping = false;
  const stop = (code, why) => {
    if (stopping) return;
    stopping = true;
    if (why) console.error(why);
    const timer = setTimeout(() => process.exit(code), 5000);
    timer.unref();
    Promise.resolve()
      .then(async () => {
        await Promise.allSettled([...live].map((c) => c.stop()));
        await asyncCleanup?.();
      })
      .finally(() => process.exit(code));
  };
  process.on('SIGINT', () => stop(130, '\ninterrupted: stopping children'));
  process.on('SIGTERM', () => stop(143, 'terminated: stopping children'));
  process.on('uncaughtException', (e) => stop(1, e?.stack ?? String(e)));
  process.on('unhandledRejection', (e) => stop(1, e?.stack ?? String(e)));
}

/**
 * Fork `bench/server.mjs` with `config`; resolves once it listens (or its loop is ready).
 * `execArgv`: node flags of the child (e.g. --cpu-prof, --expose-gc).
 */
export async function spawnChild(config, { execArgv = [], timeoutMs = 120_000, env = {} } = {}) {
  const name = config.name ?? config.kind;
  const logFile = logDir ? join(logDir, `${name.replace(/[^A-Za-z0-9_.-]/g, '_')}.log`) : undefined;
  const fd = logFile ? openSync(logFile, 'a') : 'ignore';
  const proc = fork(ENTRY, [JSON.stringify(config)], {
    execArgv,
    stdio: ['ignore', fd, fd, 'ipc'],
    env: { ...process.env, NODE_ENV: 'production', ...env },
    serialization: 'advanced',
  });
  if (typeof fd === 'number') closeSync(fd);
  let nextId = 1;
  const pending = new Map();
  let exited = false;
  const tail = () => {
    try {
      return logFile ? readFileSync(logFile, 'utf8').split('\n').slice(-25).join('\n') : '';
    } catch {
      return '';
    }
  };
  const child = {
    name,
    pid: proc.pid,
    port: undefined,
    info: undefined,
    logFile,
    request(cmd, extra = {}, timeout = 600_000) {
      if (exited) return Promise.reject(new Error(`${name}: child has exited`));
      const id = nextId++;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`${name}: '${cmd}' timed out`));
        }, timeout);
        pending.set(id, { resolve, reject, timer });
        proc.send({ id, cmd, ...extra });
      });
    },
    stats() {
      return this.request('stats', {}, 10_000);
    },
    /** Ask the child to exit (it flushes, and writes its CPU profile if any); SIGKILL after 8 s. */
    async stop() {
      if (exited) return;
      const gone = new Promise((r) => proc.once('exit', r));
      try {
        await this.request('exit', {}, 3000);
      } catch {
        // fall through to the kill below
      }
      const timer = setTimeout(() => this.killSync(), 8000);
      await gone;
      clearTimeout(timer);
    },
    killSync() {
      if (exited) return;
      try {
        process.kill(proc.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    },
    exited: new Promise((r) => proc.once('exit', (code, signal) => r({ code, signal }))),
    tail,
  };
  live.add(child);
  proc.on('exit', () => {
    exited = true;
    live.delete(child);
    for (const { reject, timer } of pending.values()) {
      clearTimeout(timer);
      reject(new Error(`${name}: child exited\n${tail()}`));
    }
    pending.clear();
  });
  proc.on('message', (msg) => {
    if (msg?.type !== 'reply') return;
    const p = pending.get(msg.id);
    if (!p) return;
    pending.delete(msg.id);
    clearTimeout(p.timer);
    if (msg.error) p.reject(new Error(`${name}: ${msg.error}`));
    else p.resolve(msg.result);
  });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.killSync();
      reject(new Error(`${name}: not ready after ${timeoutMs} ms\n${tail()}`));
    }, timeoutMs);
    const onMessage = (msg) => {
      if (msg?.type === 'ready') {
        clearTimeout(timer);
        proc.off('message', onMessage);
        child.port = msg.port;
        child.info = msg.info;
        resolve();
      } else if (msg?.type === 'failed') {
        clearTimeout(timer);
        reject(new Error(`${name}: failed to start: ${msg.error}`));
      }
    };
    proc.on('message', onMessage);
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name}: exited during start (code ${code}, signal ${signal})\n${tail()}`));
    });
  });
  return child;
}

/** Stop several children (in parallel). */
export async function stopAll(children) {
  await Promise.allSettled(children.map((c) => c.stop()));
}
