/**
 * SQLite faults (issue 22, item 4) on a real SQLite file under a running instance: a full disk
 * (`PRAGMA max_page_count`), a read-only database (`PRAGMA query_only`: the tests run as root, whom
 * file permissions do not stop), a write lock held by another connection past the busy timeout.
 * Each is met while requests are in flight; every answer is a success or 503 with `Retry-After` in
 * its family's format (RFC 6749 JSON, RFC 9457 problem details), never a 500; the log names the
 * real SQLite code; nothing acknowledged is missing afterwards; writes resume without a restart.
 * The last test fills a real file system (a 4 MiB tmpfs in a mount namespace of the built example
 * server's own) to ENOSPC under the running server, where the machine allows it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { sql } from 'kysely';
import request, { type Response } from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { createSqliteStore, type SqlStore } from '../adapters/sql/index.js';
import { AppTokensError } from '../src/core/errors.js';
import { createAppTokens, type AppTokens } from '../src/index.js';
import { CATALOGUE, ISSUER, listening } from './helpers.js';

interface Line {
  level: string;
  obj: Record<string, unknown>;
  msg: string;
}

interface Instance {
  auth: AppTokens;
  store: SqlStore;
  url: string;
  dir: string;
  filename: string;
  lines: Line[];
  admin: { clientId: string; secret: string; jwt: string };
  close(): Promise<void>;
}

const instances: Instance[] = [];
afterEach(async () => {
  for (const i of instances.splice(0)) await i.close();
});

/** `storeLogger: false`: the store gets the instance's logger through `useLogger` at `ready()`. */
async function start({ storeLogger = true } = {}): Promise<Instance> {
  const dir = mkdtempSync(join(tmpdir(), 'eat-faults-'));
  const filename = join(dir, 'tokens.db');
  const lines: Line[] = [];
  const logger = {
    warn: (obj: object, msg?: string) => lines.push({ level: 'warn', obj: obj as Record<string, unknown>, msg: msg ?? '' }),
    error: (obj: object, msg?: string) => lines.push({ level: 'error', obj: obj as Record<string, unknown>, msg: msg ?? '' }),
  };
  const store = createSqliteStore(storeLogger ? { filename, logger } : { filename });
  const auth = createAppTokens({
    store,
    issuer: ISSUER,
    scopes: CATALOGUE,
    logger,
    // Audit events flush every 20 ms, so that flushes meet the fault too.
    advanced: { revocationSyncInterval: 0, lastUsedFlushInterval: 0, eventFlushInterval: 20 },
  });
  await auth.ready();
  const server = await listening(auth, store);
  const created = await auth.apps.create({ tenantId: 'acme', name: 'admin', scopes: [...CATALOGUE] });
  const grant = await request(server.url)
    .post('/oauth/token')
    .auth(created.app.id, created.value)
    .type('form')
    .send({ grant_type: 'client_credentials' });
  expect(grant.status).toBe(200);
  const instance: Instance = {
    auth,
    store,
    url: server.url,
    dir,
    filename,
    lines,
    admin: { clientId: created.app.id, secret: created.value, jwt: grant.body.access_token as string },
    async close() {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  instances.push(instance);
  return instance;
}

/** Make the database full: no page beyond those it has now. */
async function fill(store: SqlStore): Promise<void> {
  const { rows } = await sql<{ page_count: number }>`pragma page_count`.execute(store.db);
  await sql.raw(`pragma max_page_count = ${rows[0]!.page_count}`).execute(store.db);
}

async function unfill(store: SqlStore): Promise<void> {
  await sql.raw('pragma max_page_count = 1073741823').execute(store.db);
}

/** A description long enough that a few apps need new pages. */
const LONG = 'x'.repeat(1000);

function createApp(i: Instance, n: number) {
  return request(i.url)
    .post('/apps')
    .set('Authorization', `Bearer ${i.admin.jwt}`)
    .send({ name: `app ${n}`, description: LONG, scopes: ['notarization:read'], customClaims: { filler: 'y'.repeat(2000) } });
}

function grant(i: Instance, clientId: string, secret: string) {
  return request(i.url).post('/oauth/token').auth(clientId, secret).type('form').send({ grant_type: 'client_credentials' });
}

function refresh(i: Instance, clientId: string, secret: string) {
  return request(i.url).post('/tokens/refresh').send({ client_id: clientId, grant_type: 'token-exchange', refresh_token: secret, scope: 'openid' });
}

/** 503 with Retry-After, in the format of the door that answered; never a stack trace. */
function expectUnavailable(res: Response, family: 'oauth' | 'problem'): void {
  expect(res.status, res.text).toBe(503);
  expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
  expect(res.text).not.toMatch(/SQLITE|sqlite|\bat .*\.(ts|js):\d+|rollback/i);
  if (family === 'oauth') {
    expect(res.body.error).toBe('temporarily_unavailable');
  } else {
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(JSON.parse(res.text)).toMatchObject({ status: 503, code: 'unavailable' });
  }
}

function faultLines(i: Instance, code: string): Line[] {
  return i.lines.filter((l) => l.obj.code === code || l.msg.includes(code));
}

describe('issue 22 item 4: a full disk (SQLITE_FULL)', () => {
  it('the store reports SQLITE_FULL as unavailable with the real cause, never "cannot rollback - no transaction is active"', async () => {
    const i = await start();
    await fill(i.store);
    let error: unknown;
    for (let n = 0; n < 50 && error === undefined; n++) {
      await i.auth.apps.create({ tenantId: 'acme', name: `direct ${n}`, description: LONG, scopes: ['notarization:read'] }).catch((e: unknown) => {
        error = e;
      });
    }
    expect(error).toBeInstanceOf(AppTokensError);
    expect((error as AppTokensError).code).toBe('unavailable');
    expect((error as AppTokensError).status).toBe(503);
    expect(((error as AppTokensError).cause as { code?: string }).code).toBe('SQLITE_FULL');
    expect(JSON.stringify(i.lines)).not.toContain('cannot rollback');
    expect(faultLines(i, 'SQLITE_FULL').length).toBeGreaterThan(0);
  });

  it('filled while apps, tokens, refreshes and grants are in flight: 2xx or 503 + Retry-After, never 500; every acknowledged write is there; writes resume without a restart', async () => {
    const i = await start();
    // Apps with a token each, made before the fault: their tokens are refreshed and granted below.
    const before = [];
    const grantees = [];
    for (let n = 0; n < 6; n++) {
      const made = await i.auth.apps.create({ tenantId: 'acme', name: `before ${n}`, scopes: ['notarization:read'] });
      before.push({ clientId: made.app.id, secret: made.value, appId: made.app.id });
      const other = await i.auth.apps.create({ tenantId: 'acme', name: `grantee ${n}`, scopes: ['notarization:read'] });
      grantees.push({ clientId: other.app.id, secret: other.value, appId: other.app.id });
    }
    type Op = { kind: 'create' | 'token' | 'refresh' | 'grant'; res: Response; input: { clientId: string; secret: string; appId: string } | undefined };
    const flight: Array<Promise<Op>> = [];
    for (let n = 0; n < 24; n++) flight.push(createApp(i, n).then((res) => ({ kind: 'create' as const, res, input: undefined })));
    for (const b of before) {
      flight.push(
        request(i.url)
          .post(`/apps/${b.appId}/tokens`)
          .set('Authorization', `Bearer ${i.admin.jwt}`)
          .send({ name: 'second' })
          .then((res) => ({ kind: 'token' as const, res, input: b })),
      );
      flight.push(refresh(i, b.clientId, b.secret).then((res) => ({ kind: 'refresh' as const, res, input: b })));
    }
    for (const g of grantees) flight.push(grant(i, g.clientId, g.secret).then((res) => ({ kind: 'grant' as const, res, input: g })));
    // The disk fills once the first answer is out: the rest are in flight.
    await Promise.race(flight);
    await fill(i.store);
    const ops = await Promise.all(flight);
    // More writes while full: every kind meets the fault at least once.
    for (let n = 24; n < 30; n++) ops.push({ kind: 'create', res: await createApp(i, n), input: undefined });

    const statuses = ops.map((o) => `${o.kind} ${o.res.status}`);
    expect(statuses.filter((s) => / 500$/.test(s))).toEqual([]);
    for (const o of ops) {
      if (o.res.status === 503) expectUnavailable(o.res, o.kind === 'create' || o.kind === 'token' ? 'problem' : 'oauth');
      else expect([200, 201], `${o.kind}: ${o.res.text}`).toContain(o.res.status);
    }
    expect(ops.filter((o) => o.kind === 'create' && o.res.status === 503).length, 'the disk did fill').toBeGreaterThan(0);
    const fault = faultLines(i, 'SQLITE_FULL');
    expect(fault.length, JSON.stringify(i.lines)).toBeGreaterThan(0);
    expect(fault[0]!.msg).toContain('database or disk is full');
    expect(JSON.stringify(i.lines)).not.toMatch(/cannot rollback|unexpected error/);

    // The cause goes away: writes resume on the same instance.
    await unfill(i.store);
    const after = await createApp(i, 99);
    expect(after.status, after.text).toBe(201);

    // Every acknowledged write is there.
    for (const o of ops) {
      if (o.kind === 'create' && o.res.status === 201) {
        const got = await request(i.url).get(`/apps/${o.res.body.app.id}`).set('Authorization', `Bearer ${i.admin.jwt}`);
        expect(got.status).toBe(200);
        expect((await grant(i, o.res.body.app.id, o.res.body.value)).status).toBe(200);
      }
      if (o.kind === 'token' && o.res.status === 201) {
        expect((await grant(i, o.input!.clientId, o.res.body.value)).status).toBe(200);
      }
      if (o.kind === 'refresh') {
        const old = await grant(i, o.input!.clientId, o.input!.secret);
        if (o.res.status === 200) {
          // Acknowledged: the new value works and the old one is dead.
          expect((await grant(i, o.input!.clientId, o.res.body.value)).status).toBe(200);
          expect(old.status).toBe(401);
        } else {
          // Refused: nothing happened, the old value still works.
          expect(old.status).toBe(200);
        }
      }
    }
    // Audit events queued while the disk was full are written once it is not (none lost).
    const acknowledged = ops.filter((o) => o.kind === 'create' && o.res.status === 201).map((o) => o.res.body.app.id as string);
    expect(acknowledged.length).toBeGreaterThan(0);
    // close() flushes what is still queued; it must succeed now that the disk has room.
    await i.auth.close();
    for (const id of acknowledged) {
      const events = await i.store.listEvents('acme', id, { limit: 10 });
      expect(events.items.map((e) => e.type), `events of ${id}`).toContain('app.created');
    }
  });
});

describe('issue 22 item 4: a read-only database (SQLITE_READONLY)', () => {
  it('writes answer 503 + Retry-After naming SQLITE_READONLY in the log; reads and grants keep working; writes resume when it is writable again', async () => {
    // The log line goes to the AppTokens instance's logger (the store was given none).
    const i = await start({ storeLogger: false });
    const made = await i.auth.apps.create({ tenantId: 'acme', name: 'reader', scopes: ['notarization:read'] });
    await sql`pragma query_only = 1`.execute(i.store.db);

    expectUnavailable(await createApp(i, 1), 'problem');
    expectUnavailable(await refresh(i, made.app.id, made.value), 'oauth');
    const patch = await request(i.url).patch(`/apps/${made.app.id}`).set('Authorization', `Bearer ${i.admin.jwt}`).send({ name: 'renamed' });
    expectUnavailable(patch, 'problem');
    // What only reads keeps working.
    expect((await grant(i, made.app.id, made.value)).status).toBe(200);
    const read = await request(i.url).get(`/apps/${made.app.id}`).set('Authorization', `Bearer ${i.admin.jwt}`);
    expect(read.status).toBe(200);
    expect(read.body.name).toBe('reader');
    const line = faultLines(i, 'SQLITE_READONLY')[0];
    expect(line, JSON.stringify(i.lines)).toBeDefined();
    expect(line!.msg).toContain('readonly database');

    await sql`pragma query_only = 0`.execute(i.store.db);
    expect((await createApp(i, 2)).status).toBe(201);
    const refreshed = await refresh(i, made.app.id, made.value);
    expect(refreshed.status, refreshed.text).toBe(200);
  });
});

describe('issue 22 item 4: a write lock held by another process (SQLITE_BUSY)', () => {
  it('a write waiting past busy_timeout answers 503 + Retry-After with SQLITE_BUSY in the log; once the lock is released writes succeed', async () => {
    const i = await start();
    await sql`pragma busy_timeout = 100`.execute(i.store.db);
    const other = new Database(i.filename);
    try {
      other.exec('begin immediate');
      expectUnavailable(await createApp(i, 1), 'problem');
      const line = faultLines(i, 'SQLITE_BUSY')[0];
      expect(line, JSON.stringify(i.lines)).toBeDefined();
      expect(line!.msg).toContain('database is locked');
      other.exec('rollback');
      expect((await createApp(i, 2)).status).toBe(201);
    } finally {
      other.close();
    }
  });
});

// ---- a real full file system ---------------------------------------------------------------------

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SERVER = join(ROOT, 'dist/examples/server.js');
const CLI = join(ROOT, 'dist/src/cli.js');

/** Whether this machine lets us mount a tmpfs in a user and mount namespace. */
function canMountTmpfs(): boolean {
  const dir = mkdtempSync(join(tmpdir(), 'eat-tmpfs-probe-'));
  try {
    return spawnSync('unshare', ['-rm', 'sh', '-c', `mount -t tmpfs -o size=64k tmpfs "${dir}"`]).status === 0;
  } catch {
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

describe.skipIf(!canMountTmpfs())('issue 22 item 4: a real full disk (ENOSPC on a tmpfs) under the example server', () => {
  let child: ChildProcess | undefined;
  let out = '';
  let dir = '';
  afterEach(async () => {
    if (child && child.exitCode === null) {
      await new Promise<void>((resolve) => {
        child!.once('exit', () => resolve());
        child!.kill('SIGKILL');
      });
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('writes in flight when the disk fills answer 201 or 503 + Retry-After (never 500), the log says SQLITE_FULL, every 201 is there, and writes resume when space is freed', async () => {
    if (!existsSync(SERVER) || !existsSync(CLI)) throw new Error('run `npm run build` first (npm test does)');
    dir = mkdtempSync(join(tmpdir(), 'eat-enospc-'));
    const mnt = join(dir, 'mnt');
    mkdirSync(mnt);
    const port = await freePort();
    // The CLI makes the database and the admin on the tmpfs, then the server runs on it, in the same
    // mount namespace (`exec`: the server keeps the pid, through whose /proc root we fill the disk).
    child = spawn('unshare', ['-rm', 'sh', '-c', 'mount -t tmpfs -o size=4m tmpfs "$MNT" && node "$CLI" bootstrap --tenant acme > "$OUT/creds.json" && exec node "$SERVER"'], {
      cwd: dir,
      env: { ...process.env, MNT: mnt, OUT: dir, CLI, SERVER, PORT: String(port), DATABASE_URL: `sqlite:${mnt}/app-tokens.db` },
      stdio: 'pipe',
    });
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not start: ${out}`)), 30_000);
      child!.stdout!.on('data', () => {
        if (out.includes('listening on')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child!.once('exit', (code) => reject(new Error(`server exited with ${code}: ${out}`)));
    });
    const url = `http://127.0.0.1:${port}`;
    const creds = JSON.parse(readFileSync(join(dir, 'creds.json'), 'utf8')) as { client_id: string; client_secret: string };
    const granted = await request(url).post('/oauth/token').auth(creds.client_id, creds.client_secret).type('form').send({ grant_type: 'client_credentials' });
    expect(granted.status, granted.text).toBe(200);
    const jwt = granted.body.access_token as string;
    const create = (n: number) =>
      request(url)
        .post('/apps')
        .set('Authorization', `Bearer ${jwt}`)
        .send({ name: `app ${n}`, description: LONG, scopes: ['notarization:read'], customClaims: { filler: 'y'.repeat(2000) } });

    const flight: Array<Promise<Response>> = [];
    for (let n = 0; n < 30; n++) flight.push(create(n));
    await Promise.race(flight);
    // Fill the tmpfs to the last byte, from outside, while the rest are in flight.
    const filler = `/proc/${child.pid}/root${mnt}/filler`;
    const fd = openSync(filler, 'w');
    const block = Buffer.alloc(64 * 1024);
    try {
      for (;;) writeSync(fd, block);
    } catch (error) {
      expect((error as NodeJS.ErrnoException).code).toBe('ENOSPC');
    } finally {
      closeSync(fd);
    }
    const answers = await Promise.all(flight);
    for (let n = 30; n < 36; n++) answers.push(await create(n));

    expect(answers.filter((r) => r.status === 500).map((r) => r.text)).toEqual([]);
    for (const r of answers) {
      if (r.status === 503) expectUnavailable(r, 'problem');
      else expect(r.status, r.text).toBe(201);
    }
    expect(answers.filter((r) => r.status === 503).length, 'the disk did fill').toBeGreaterThan(0);
    expect(out).toContain('SQLITE_FULL');
    expect(out).not.toMatch(/cannot rollback|unexpected error/);

    // Space comes back: writes resume on the same process.
    rmSync(filler);
    const after = await create(99);
    expect(after.status, after.text).toBe(201);
    for (const r of answers.filter((a) => a.status === 201)) {
      const got = await request(url).get(`/apps/${r.body.app.id as string}`).set('Authorization', `Bearer ${jwt}`);
      expect(got.status).toBe(200);
    }
    expect(child.exitCode).toBeNull();
  });
});
