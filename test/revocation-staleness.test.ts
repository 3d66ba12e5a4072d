/**
 * Issue 22, item 3: an instance that cannot hear revocations fails closed past a stated bound,
 * `advanced.revocationMaxStaleness`. Two instances on one real PostgreSQL: `a` reaches it through a
 * TCP proxy that goes silent (a partition), `b` directly. While `a` is cut off, `b` deletes an app.
 * Within the bound, `a` still serves from its last state (the documented fail-open window); past
 * it, the bearer paths (cached or not) and the token endpoint's client cache answer 503 with
 * Retry-After, never the deleted app's 200; when the path is back, `a` learns of the deletion and
 * refuses with 401, without a 200 in between. A store that is its process's own view (memory,
 * SQLite in one process) is never stale.
 *
 * The tests of the PostgreSQL describe run in order.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createAppTokens, type AppTokens } from '../src/index.js';
import { createPostgresStore, type PostgresStore } from '../adapters/sql/index.js';
import { FEED_HEARTBEAT_MS } from '../adapters/sql/postgres.js';
import { CATALOGUE, ISSUER, accessToken, createClient, hostApp, setup } from './helpers.js';
import { freshDatabase } from './postgres-server.js';
import { startSilentProxy, type SilentProxy } from './tcp-proxy.js';

/** a's bound, ms. */
const MAX_STALENESS = 4000;

interface Instance {
  auth: AppTokens;
  store: PostgresStore;
  url: string;
  logs: string[];
  close(): Promise<void>;
}

async function startInstance(connectionString: string, revocationMaxStaleness = MAX_STALENESS): Promise<Instance> {
  const logs: string[] = [];
  const line = (level: string) => (obj: object, msg?: string) => logs.push(`${level} ${msg ?? ''} ${JSON.stringify(obj)}`);
  const store = createPostgresStore({ connectionString, queryTimeout: 1000, connectionTimeout: 1000 });
  const auth = createAppTokens({
    store,
    issuer: ISSUER,
    scopes: CATALOGUE,
    logger: { info: line('info'), warn: line('warn'), error: line('error') },
    advanced: { revocationSyncInterval: 1000, lastUsedFlushInterval: 0, clientCacheTtl: 30, revocationMaxStaleness },
  });
  await auth.ready();
  const server: Server = createServer(hostApp(auth));
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

function grant(instance: Instance, clientId: string, secret: string) {
  return request(instance.url)
    .post('/oauth/token')
    .auth(encodeURIComponent(clientId), encodeURIComponent(secret))
    .type('form')
    .send({ grant_type: 'client_credentials' })
    .timeout(30_000);
}

function stamps(instance: Instance, bearer: string) {
  return request(instance.url).get('/stamps').set('Authorization', `Bearer ${bearer}`).timeout(30_000);
}

describe('PostgreSQL: an instance cut off from the database while another deletes an app', () => {
  let proxy: SilentProxy;
  let a: Instance;
  let b: Instance;
  let client: { clientId: string; secret: string; tokenId: string; tenant: string };
  /** Presented to `a` before the cut: in its verification cache. */
  let cachedJwt: string;
  /** Minted by `b`, never presented to `a`. */
  let uncachedJwt: string;
  let silencedAt = 0;

  beforeAll(async () => {
    const direct = await freshDatabase(inject('postgresUrl'));
    proxy = await startSilentProxy(direct);
    a = await startInstance(proxy.url);
    b = await startInstance(direct);
    client = await createClient(b.auth);
    // a grants once (its client cache now holds this secret) and verifies the JWT once (cached).
    const granted = await grant(a, client.clientId, client.secret);
    expect(granted.status, granted.text).toBe(200);
    cachedJwt = granted.body.access_token as string;
    expect((await stamps(a, cachedJwt)).status).toBe(200);
    uncachedJwt = (await grant(b, client.clientId, client.secret)).body.access_token as string;
    // Let a's change feed prove itself at least once after the setup.
    await sleep(FEED_HEARTBEAT_MS + 200);
  }, 60_000);

  afterAll(async () => {
    proxy?.resume();
    await a?.close();
    await b?.close();
    await proxy?.close();
  }, 60_000);

  it('within advanced.revocationMaxStaleness, the cut-off instance serves from its last state (the stated fail-open window)', async () => {
    silencedAt = performance.now();
    proxy.silence();
    await b.auth.apps.delete(client.tenant, client.clientId);
    // b heard it at once.
    expect((await stamps(b, cachedJwt)).status).toBe(401);
    // a cannot know: its last contact was at most one heartbeat (plus a round trip) before the cut.
    const cached = await stamps(a, cachedJwt);
    const minted = await grant(a, client.clientId, client.secret);
    const elapsed = performance.now() - silencedAt;
    expect(elapsed, 'the within-bound checks ran well inside the bound').toBeLessThan(MAX_STALENESS - FEED_HEARTBEAT_MS - 500);
    expect(cached.status, cached.text).toBe(200);
    expect(minted.status, minted.text).toBe(200);
  }, 30_000);

  it('past it, a cached JWT, an unseen JWT and a grant from the client cache answer 503 with Retry-After, never 200', async () => {
    await sleep(Math.max(0, silencedAt + MAX_STALENESS + FEED_HEARTBEAT_MS + 300 - performance.now()));
    for (const [name, res] of [
      ['cached JWT', await stamps(a, cachedJwt)],
      ['unseen JWT', await stamps(a, uncachedJwt)],
    ] as const) {
      expect(res.status, `${name}: ${res.text}`).toBe(503);
      expect(res.headers['retry-after'], name).toMatch(/^[1-9]\d*$/);
      expect(res.body.error, name).toBe('unavailable');
    }
    const refused = await grant(a, client.clientId, client.secret);
    expect(refused.status, refused.text).toBe(503);
    expect(refused.body.error).toBe('temporarily_unavailable');
    expect(refused.headers['retry-after']).toMatch(/^[1-9]\d*$/);
    expect(a.logs.some((l) => l.startsWith('warn revocation state could not be refreshed within advanced.revocationMaxStaleness'))).toBe(true);
  }, 30_000);

  it('when the path is back, the instance learns of the deletion and refuses it (401), with no 200 in between, without a restart', async () => {
    proxy.resume();
    const started = performance.now();
    const seen = new Set<number>();
    let status = 503;
    while (performance.now() - started < 15_000) {
      status = (await stamps(a, cachedJwt)).status;
      seen.add(status);
      if (status === 401) break;
      await sleep(50);
    }
    expect(status).toBe(401);
    expect([...seen].sort()).toEqual(status === 401 && seen.has(503) ? [401, 503] : [401]);
    expect((await stamps(a, uncachedJwt)).status).toBe(401);
    expect((await grant(a, client.clientId, client.secret)).status).toBe(401);
    // Said at the next tombstone read (every second here), whether or not a request asked.
    for (let i = 0; i < 30 && !a.logs.some((l) => l.startsWith('info revocation state is fresh again')); i++) await sleep(100);
    expect(a.logs.some((l) => l.startsWith('info revocation state is fresh again'))).toBe(true);
  }, 30_000);

  it('an instance that stays in contact is never stale: its feed proves freshness between tombstone reads', async () => {
    // b's bound is 4 s; its tombstone read runs every second and its feed every FEED_HEARTBEAT_MS.
    const other = await createClient(b.auth);
    const jwt = (await grant(b, other.clientId, other.secret)).body.access_token as string;
    for (let i = 0; i < 8; i++) {
      expect((await stamps(b, jwt)).status).toBe(200);
      await sleep(500);
    }
    expect(b.logs.filter((l) => l.startsWith('warn revocation state could not be refreshed'))).toEqual([]);
  }, 30_000);
});

describe('a store that is its own process view', () => {
  for (const kind of ['memory', 'sqlite'] as const) {
    it(`${kind}: never stale, whatever the time since the last tombstone read (there is no one else to hear from)`, async () => {
      const f = await setup({ store: kind, advanced: { revocationMaxStaleness: 1000, revocationSyncInterval: 0 } });
      try {
        const c = await createClient(f.auth);
        const jwt = await accessToken(f.app, c.clientId, c.secret);
        expect((await request(f.app).get('/stamps').set('Authorization', `Bearer ${jwt}`)).status).toBe(200);
        await sleep(1300);
        expect((await request(f.app).get('/stamps').set('Authorization', `Bearer ${jwt}`)).status).toBe(200);
        // And a deletion in this process still takes effect at once.
        await f.auth.apps.delete(c.tenant, c.clientId);
        expect((await request(f.app).get('/stamps').set('Authorization', `Bearer ${jwt}`)).status).toBe(401);
      } finally {
        await f.cleanup();
      }
    }, 30_000);
  }
});

describe('advanced.revocationMaxStaleness', () => {
  it.each([0, 999, 86_400_001, 1.5, '5000'])('%s is refused at construction, naming the option', (value) => {
    expect(() =>
      createAppTokens({
        store: createPostgresStore({ connectionString: 'postgres://u:p@127.0.0.1:1/db' }),
        issuer: ISSUER,
        scopes: CATALOGUE,
        advanced: { revocationMaxStaleness: value as number },
      }),
    ).toThrow(/revocationMaxStaleness/);
  });
});
