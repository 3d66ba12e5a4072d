/**
 * Issue 22, item 2: the path to PostgreSQL goes silent (a partition, a dead host: no reset), with
 * requests in flight on already-open pooled connections. A real TCP proxy between the instances
 * and the real server stops forwarding bytes but keeps every socket open. Every store call on a
 * request path has a client-side deadline (`queryTimeout`, and `connectionTimeout` for a new
 * connection): in-flight and new requests answer 503 with Retry-After within it, never hang; a
 * rate-limit lease report never holds a request; the periodic tombstone read and the LISTEN feed
 * give up at the deadline too, with the cause in the log. When the path is back, the instances
 * recover without a restart.
 *
 * The describes run in order: the proxy is silenced, then resumed.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import express from 'express';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createAppTokens, type AppTokens, type AppTokensOptions } from '../src/index.js';
import { createPostgresStore, type PostgresStore, type PostgresStoreOptions } from '../adapters/sql/index.js';
import { LEASE_WAIT_MS } from '../src/core/rate-lease.js';
import { CATALOGUE, ISSUER, createClient, hostApp } from './helpers.js';
import { freshDatabase } from './postgres-server.js';
import { startSilentProxy, type SilentProxy } from './tcp-proxy.js';

/** The client-side deadlines of instance `a`, ms. */
const QUERY_TIMEOUT = 1000;
const CONNECTION_TIMEOUT = 1000;
/**
 * Every answer while the path is silent arrives within this long: a connection wait, one query's
 * deadline, and a second for a loaded test machine. Without the deadline it would wait until the
 * path comes back (the OS: ~15 min).
 */
const BOUND_MS = CONNECTION_TIMEOUT + QUERY_TIMEOUT + 1000;
/** The silence lasts this long: far past every deadline. */
const SILENCE_MS = 2 * BOUND_MS + 500;

type Advanced = NonNullable<AppTokensOptions['advanced']>;

interface LogLine {
  level: string;
  msg: string;
  text: string;
}

interface Instance {
  auth: AppTokens;
  store: PostgresStore;
  url: string;
  logs: LogLine[];
  close(): Promise<void>;
}

async function startInstance(connectionString: string, storeOptions: Partial<PostgresStoreOptions>, advanced: Advanced = {}): Promise<Instance> {
  const logs: LogLine[] = [];
  const line = (level: string) => (obj: object, msg?: string) => logs.push({ level, msg: msg ?? '', text: `${msg ?? ''} ${JSON.stringify(obj)}` });
  const store = createPostgresStore({ connectionString, ...storeOptions });
  const auth = createAppTokens({
    store,
    issuer: ISSUER,
    scopes: CATALOGUE,
    // The stream creates tokens of one app for seconds: not what the per-app limit is about.
    limits: { tokensPerApp: 10_000 },
    logger: { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') },
    advanced: {
      revocationSyncInterval: 1000,
      lastUsedFlushInterval: 200,
      eventFlushInterval: 200,
      // Every grant reads the store (item 3, the client cache past the staleness bound, has its own test).
      clientCacheTtl: 0,
      // Item 3 (fail closed past the staleness bound) is tested in revocation-staleness.test.ts;
      // here the bound is far, so that what is measured is the store's deadline.
      revocationMaxStaleness: 600_000,
      ...advanced,
    },
  });
  await auth.ready();
  const app = express();
  // points ≥ shared.exactBelow (1000): counted in leases reported to the store in the background.
  app.get('/limited', auth.authenticate(), auth.rateLimit({ points: 100_000, duration: 60 }), (_req, res) => {
    res.json({ ok: true });
  });
  app.use(hostApp(auth));
  const server: Server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    auth,
    store,
    logs,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await auth.close().catch(() => undefined);
      await store.close().catch(() => undefined);
    },
  };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

let direct: string;
let proxy: SilentProxy;
/** Through the proxy, deadlines of 1 s. */
let a: Instance;
/** Through the proxy, a query deadline far longer than the lease wait: what bounds /limited is the lease wait. */
let b: Instance;
let client: { clientId: string; secret: string; tokenId: string; tenant: string };
let jwt: string;
let adminJwt: string;
let silencedAt = 0;

function grant(instance: Instance, secret = client.secret) {
  return request(instance.url)
    .post('/oauth/token')
    .auth(encodeURIComponent(client.clientId), encodeURIComponent(secret))
    .type('form')
    .send({ grant_type: 'client_credentials' })
    .timeout(30_000);
}

async function mint(instance: Instance, clientId: string, secret: string): Promise<string> {
  const res = await request(instance.url)
    .post('/oauth/token')
    .auth(encodeURIComponent(clientId), encodeURIComponent(secret))
    .type('form')
    .send({ grant_type: 'client_credentials' });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.access_token as string;
}

/** What a worker of the steady stream sends: each needs the store on its path. */
const kinds = {
  grant: () => grant(a),
  list: () => request(a.url).get('/apps').set('Authorization', `Bearer ${adminJwt}`).timeout(30_000),
  createToken: () =>
    request(a.url)
      .post(`/apps/${client.clientId}/tokens`)
      .set('Authorization', `Bearer ${adminJwt}`)
      .send({ name: 'under partition' })
      .timeout(30_000),
  stamps: () => request(a.url).get('/stamps').set('Authorization', `Bearer ${jwt}`).timeout(30_000),
} as const;

interface Outcome {
  kind: keyof typeof kinds;
  started: number;
  ms: number;
  status: number;
  retryAfter: string | undefined;
  body: string;
}

beforeAll(async () => {
  direct = await freshDatabase(inject('postgresUrl'));
  proxy = await startSilentProxy(direct);
  a = await startInstance(proxy.url, { queryTimeout: QUERY_TIMEOUT, connectionTimeout: CONNECTION_TIMEOUT });
  b = await startInstance(proxy.url, { queryTimeout: 8000, statementTimeout: 5000, connectionTimeout: 8000 });
  client = await createClient(a.auth);
  const admin = await createClient(a.auth, { scopes: ['apps:read', 'apps:write', 'notarization:read', 'notarization:write'] });
  adminJwt = await mint(a, admin.clientId, admin.secret);
  jwt = await mint(a, client.clientId, client.secret);
  // Warm both pools and caches: the requests below run on connections that are already open.
  for (let i = 0; i < 5; i++) {
    expect((await kinds.list()).status).toBe(200);
    expect((await request(b.url).get('/limited').set('Authorization', `Bearer ${jwt}`)).status).toBe(200);
  }
}, 60_000);

afterAll(async () => {
  proxy?.resume();
  await a?.close();
  await b?.close();
  await proxy?.close();
}, 60_000);

describe('while the path to PostgreSQL is silent', () => {
  const outcomes: Outcome[] = [];
  let stop = false;
  let workers: Promise<void>[] = [];

  beforeAll(async () => {
    // A steady stream on 6 workers, every kind of store call; the path goes silent under it.
    const names = Object.keys(kinds) as Array<keyof typeof kinds>;
    workers = Array.from({ length: 6 }, (_, w) =>
      (async () => {
        for (let i = w; !stop; i++) {
          const kind = names[i % names.length]!;
          const started = performance.now();
          const res = await kinds[kind]();
          outcomes.push({ kind, started, ms: performance.now() - started, status: res.status, retryAfter: res.headers['retry-after'], body: res.text.slice(0, 200) });
        }
      })(),
    );
    await sleep(400);
    silencedAt = performance.now();
    proxy.silence();
    await sleep(SILENCE_MS);
    stop = true;
    await Promise.all(workers);
  }, 60_000);

  it('requests in flight on open pooled connections, and new ones, answer 503 with Retry-After within the deadline, never hang or 500', () => {
    const during = outcomes.filter((o) => o.started + o.ms > silencedAt);
    const inFlight = during.filter((o) => o.started < silencedAt);
    const refused = during.filter((o) => o.status === 503);
    console.log(
      `silent path: ${during.length} answers (${inFlight.length} in flight at the cut), ${refused.length} × 503, slowest ${Math.max(...during.map((o) => o.ms)).toFixed(0)} ms (bound ${BOUND_MS} ms)`,
    );
    expect(inFlight.length, 'requests in flight when the path went silent').toBeGreaterThan(0);
    for (const o of during) {
      // The cached JWT on /stamps needs no I/O: 200. Everything else needs the store: 503.
      expect([200, 201, 503], `${o.kind}: ${o.status} ${o.body}`).toContain(o.status);
      if (o.status === 503) expect(o.retryAfter, `${o.kind}: Retry-After`).toMatch(/^[1-9]\d*$/);
      expect(o.ms, `${o.kind} answered within the deadline`).toBeLessThan(BOUND_MS);
    }
    for (const kind of ['grant', 'list', 'createToken'] as const) {
      expect(refused.filter((o) => o.kind === kind).length, `${kind}: refused with 503 while silent`).toBeGreaterThan(0);
    }
    expect(during.filter((o) => o.kind === 'stamps').every((o) => o.status === 200)).toBe(true);
  });

  it('a new request after the cut answers 503 with Retry-After within the deadline (token endpoint: temporarily_unavailable)', async () => {
    proxy.silence();
    const started = performance.now();
    const res = await grant(a);
    const ms = performance.now() - started;
    expect(res.status, res.text).toBe(503);
    expect(res.body.error).toBe('temporarily_unavailable');
    expect(res.headers['retry-after']).toMatch(/^[1-9]\d*$/);
    expect(ms).toBeLessThan(BOUND_MS);
  }, 30_000);

  it('a cached JWT on a rate-limited route never waits for a silent lease report: counted locally after the lease wait', async () => {
    // b's query deadline is 8 s: an answer within 2 s can only come from the bounded lease wait.
    // The lease (sized by the observed rate) runs out after some requests; from then on each
    // request would wait for the report: go on until the fallback has been taken and said.
    const fellBack = () => b.logs.some((l) => l.level === 'warn' && /rate-limit lease reports fail or are late; counting in this process/.test(l.msg));
    for (let i = 0; i < 300 && !fellBack(); i++) {
      const started = performance.now();
      const res = await request(b.url).get('/limited').set('Authorization', `Bearer ${jwt}`).timeout(30_000);
      const ms = performance.now() - started;
      expect(res.status, res.text).toBe(200);
      expect(ms, `request ${i}: answered within the lease wait (${LEASE_WAIT_MS} ms), not the query deadline`).toBeLessThan(2000);
    }
    expect(fellBack(), 'the lease ran out and the request was counted locally').toBe(true);
    // And after it, requests go on being answered locally, at once.
    for (let i = 0; i < 5; i++) expect((await request(b.url).get('/limited').set('Authorization', `Bearer ${jwt}`)).status).toBe(200);
  }, 30_000);

  it('the periodic tombstone read and the LISTEN feed give up at the deadline, with the cause in the log and never the connection string', () => {
    const texts = a.logs.map((l) => `${l.level} ${l.text}`);
    expect(texts.some((t) => /^warn periodic tombstone read failed/.test(t) && /Query read timeout|timeout/i.test(t)), texts.join('\n')).toBe(true);
    expect(texts.some((t) => /^warn PostgreSQL change feed \(LISTEN\) lost/.test(t) && /timeout/i.test(t)), texts.join('\n')).toBe(true);
    for (const t of [...texts, ...b.logs.map((l) => l.text)]) {
      expect(t).not.toContain(direct);
      expect(t).not.toContain(proxy.url);
      expect(t).not.toContain(':postgres@');
    }
  });
});

describe('after the path is back', () => {
  beforeAll(() => {
    proxy.resume();
  });

  it('the instance recovers by itself: grants, management reads and writes answer again, without a restart', async () => {
    const started = performance.now();
    let status = 0;
    while (performance.now() - started < 15_000) {
      status = (await grant(a)).status;
      if (status === 200) break;
      expect(status, 'only 503 while recovering').toBe(503);
      await sleep(100);
    }
    console.log(`after the path came back: a grant answered 200 after ${(performance.now() - started).toFixed(0)} ms`);
    expect(status).toBe(200);
    expect((await kinds.list()).status).toBe(200);
    expect((await kinds.createToken()).status).toBe(201);
    expect((await request(b.url).get('/limited').set('Authorization', `Bearer ${jwt}`)).status).toBe(200);
  }, 30_000);

  it('revocations flow again through the change feed: an app deleted through b is refused by a', async () => {
    const other = await createClient(b.auth);
    const otherJwt = await mint(a, other.clientId, other.secret);
    expect((await request(a.url).get('/stamps').set('Authorization', `Bearer ${otherJwt}`)).status).toBe(200);
    await b.auth.apps.delete(other.tenant, other.clientId);
    const started = performance.now();
    let status = 200;
    while (performance.now() - started < 10_000 && status === 200) {
      status = (await request(a.url).get('/stamps').set('Authorization', `Bearer ${otherJwt}`)).status;
      if (status === 200) await sleep(20);
    }
    expect(status).toBe(401);
  }, 30_000);
});
