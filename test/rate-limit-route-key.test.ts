/**
 * Issue 21, finding 2: one rate-limit bucket per app, per method, per route *pattern* — whatever
 * the client typed. Express matches mount paths case-insensitively, ignores a trailing slash and
 * binds any value to a parameter in a mount path; a key built from `req.baseUrl` as typed gave
 * each spelling (and each `/t/:tenant` value) a fresh quota. Real routers on Express 5, real
 * HTTP (supertest), the real stores.
 */
import express, { type Express, type RequestHandler } from 'express';
import request from 'supertest';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { createAppTokens, type AppTokens } from '../src/index.js';
import { createPostgresStore } from '../adapters/sql/index.js';
import { CATALOGUE, ISSUER, accessToken, createClient, setup, type Fixture } from './helpers.js';
import { freshDatabase } from './postgres-server.js';

const fixtures: Fixture[] = [];
const instances: AppTokens[] = [];
afterEach(async () => {
  for (const f of fixtures.splice(0)) await f.cleanup();
  for (const a of instances.splice(0)) await a.close();
});

const POINTS = 5;
const ok: RequestHandler = (_req, res) => {
  res.json({ ok: true });
};

/**
 * A host with the shapes the finding names: a router at `/v1` with a nested router at `/inner`,
 * a router at `/t/:tenant`, a second router at `/v2`, and a router limited with use().
 */
function host(auth: AppTokens, points = POINTS): Express {
  const limited = [auth.authenticate(), auth.rateLimit({ points, duration: 60 })];
  const v1 = express.Router();
  v1.get('/stamps', ...limited, ok);
  v1.post('/stamps', ...limited, ok);
  const inner = express.Router();
  inner.get('/items/:id', ...limited, ok);
  v1.use('/inner', inner);
  const v2 = express.Router();
  v2.get('/stamps', ...limited, ok);
  const tenant = express.Router({ mergeParams: true });
  tenant.get('/stamps', ...limited, ok);
  const used = express.Router();
  used.use(auth.authenticate(), auth.rateLimit({ points, duration: 60 }));
  used.get('/a/:id', ok);
  used.get('/b', ok);
  const sub = express();
  sub.get('/stamps', ...limited, ok);
  const app = express();
  app.use('/sub/:org', sub);
  app.use('/v1', v1);
  app.use('/v2', v2);
  app.use('/t/:tenant', tenant);
  app.use('/used', used);
  return app;
}

async function bearerOf(f: Fixture): Promise<string> {
  const c = await createClient(f.auth);
  return `Bearer ${await accessToken(f.app, c.clientId, c.secret)}`;
}

/** Spends the quota on `first`, then expects every spelling in `others` to be refused (or not routed at all). */
async function spendThenTry(app: Express, bearer: string, first: string, others: string[], method: 'get' | 'post' = 'get'): Promise<void> {
  for (let i = 0; i < POINTS; i++) expect((await request(app)[method](first).set('Authorization', bearer)).status, first).toBe(200);
  for (const url of others) {
    const res = await request(app)[method](url).set('Authorization', bearer);
    // 404: Express does not route that spelling to the endpoint at all (e.g. `//`), so it spends nothing.
    expect([429, 404], `${method.toUpperCase()} ${url} answered ${res.status}`).toContain(res.status);
  }
}

/** Every spelling in `urls` reaches the handler on a fresh quota: the variants are real. */
async function allRouted(f: Fixture, urls: string[]): Promise<void> {
  const app = host(f.auth, 1000);
  const bearer = await bearerOf(f);
  for (const url of urls) expect((await request(app).get(url).set('Authorization', bearer)).status, url).toBe(200);
}

describe('RFC 6585 §4: the rate limit counts per route pattern, not per spelling of the URL', () => {
  it('RFC 6585 §4: once /v1/stamps has spent its quota, /V1/stamps, /v1/stamps/, /V1/STAMPS/ and the // and percent-encoded spellings get 429, not a fresh quota', async () => {
    const f = await setup({ store: 'memory' });
    fixtures.push(f);
    // These all reach the /v1 → /stamps handler (Express matches without case or trailing slash).
    const routed = ['/V1/stamps', '/v1/stamps/', '/V1/STAMPS/', '/v1/Stamps?x=1'];
    await allRouted(f, routed);
    const app = host(f.auth);
    await spendThenTry(app, await bearerOf(f), '/v1/stamps', [...routed, '/v1//stamps', '//v1/stamps', '/%76%31/stamps', '/v1/%73tamps', '/v1/stamps%2F']);
  });

  it('RFC 6585 §4: a parameter in the mount path (/t/:tenant) is one bucket, not one per value, whatever its spelling or encoding', async () => {
    const f = await setup({ store: 'memory' });
    fixtures.push(f);
    const others = Array.from({ length: 20 }, (_, i) => `/t/tenant-${i}/stamps`);
    const routed = ['/t/%62/stamps', '/T/c/stamps/', '/t/a/STAMPS', ...others];
    await allRouted(f, routed);
    await spendThenTry(host(f.auth), await bearerOf(f), '/t/a/stamps', [...routed, '/t/a//stamps', '/t//stamps']);
  });

  it('RFC 6585 §4: on a nested router (/v1 → /inner → /items/:id) the case, encoding and trailing slash of every level share one bucket', async () => {
    const f = await setup({ store: 'memory' });
    fixtures.push(f);
    const routed = ['/V1/INNER/items/%31', '/v1/Inner/ITEMS/2/', '/v1/inner/items/x'];
    await allRouted(f, routed);
    await spendThenTry(host(f.auth), await bearerOf(f), '/v1/inner/items/1', [...routed, '/v1//inner/items/1', '/v1/inner//items/1']);
  });

  it('RFC 6585 §4: a limiter mounted with use() counts the paths below it as one endpoint per method, not one per URL', async () => {
    const f = await setup({ store: 'memory' });
    fixtures.push(f);
    const routed = ['/used/a/2', '/USED/a/3/', '/used/b'];
    await allRouted(f, routed);
    await spendThenTry(host(f.auth), await bearerOf(f), '/used/a/1', [...routed, ...Array.from({ length: 10 }, (_, i) => `/used/a/x${i}`)]);
  });

  it('RFC 6585 §4: a sub-application mounted at /sub/:org counts one bucket whatever the org value or spelling', async () => {
    const f = await setup({ store: 'memory' });
    fixtures.push(f);
    const routed = ['/sub/b/stamps', '/SUB/c/STAMPS/', '/sub/%64/stamps'];
    await allRouted(f, routed);
    await spendThenTry(host(f.auth), await bearerOf(f), '/sub/a/stamps', routed);
    // …and it is its own endpoint, not merged with /v1/stamps.
    const app = host(f.auth);
    const bearer = await bearerOf(f);
    await spendThenTry(app, bearer, '/sub/a/stamps', []);
    expect((await request(app).get('/v1/stamps').set('Authorization', bearer)).status).toBe(200);
  });

  it('distinct patterns keep their own quotas: another mount, another method, another app', async () => {
    const f = await setup({ store: 'memory' });
    fixtures.push(f);
    const app = host(f.auth);
    const a = await bearerOf(f);
    await spendThenTry(app, a, '/v1/stamps', ['/V1/Stamps']);
    expect((await request(app).post('/v1/stamps').set('Authorization', a)).status).toBe(200);
    expect((await request(app).get('/v2/stamps').set('Authorization', a)).status).toBe(200);
    expect((await request(app).get('/t/a/stamps').set('Authorization', a)).status).toBe(200);
    expect((await request(app).get('/v1/inner/items/1').set('Authorization', a)).status).toBe(200);
    expect((await request(app).get('/v1/stamps').set('Authorization', await bearerOf(f))).status).toBe(200);
  });

  it('RFC 6585 §4: on SQLite the same holds (in-process windows)', async () => {
    const f = await setup({ store: 'sqlite' });
    fixtures.push(f);
    await spendThenTry(host(f.auth), await bearerOf(f), '/v1/stamps', ['/V1/stamps/', '/V1/STAMPS', '/v1/Stamps']);
  });

  it.each([
    ['exact (one database round trip each)', {}],
    ['leased', { exactBelow: 0, leaseShare: 0.2 }],
  ] as const)('RFC 6585 §4: on PostgreSQL, two instances derive the same key for every spelling (%s)', async (_name, shared) => {
    const connectionString = await freshDatabase(inject('postgresUrl'));
    const hosts: Express[] = [];
    for (let i = 0; i < 2; i++) {
      const auth = createAppTokens({
        store: createPostgresStore({ connectionString }),
        issuer: ISSUER,
        scopes: CATALOGUE,
        advanced: { revocationSyncInterval: 0, lastUsedFlushInterval: 0 },
      });
      instances.push(auth);
      await auth.ready();
      const limited = [auth.authenticate(), auth.rateLimit({ points: POINTS, duration: 60, shared })];
      const tenant = express.Router({ mergeParams: true });
      tenant.get('/stamps', ...limited, ok);
      const app = express();
      app.use(auth.routes());
      app.use('/t/:tenant', tenant);
      hosts.push(app);
    }
    const c = await createClient(instances[0]!);
    const bearer = `Bearer ${await accessToken(hosts[0]!, c.clientId, c.secret)}`;
    let allowed = 0;
    // 40 spellings, alternating instances: without the fix each is a fresh bucket (40 allowed).
    for (let i = 0; i < 40; i++) {
      const url = i % 3 === 0 ? `/T/t${i}/STAMPS/` : i % 3 === 1 ? `/t/%74${i}/stamps` : `/t/t${i}/stamps`;
      const res = await request(hosts[i % 2]!).get(url).set('Authorization', bearer);
      expect([200, 429], url).toContain(res.status);
      if (res.status === 200) allowed++;
    }
    // Exact: the quota. Leased: at most the quota plus one lease (max(1, floor(5 × 0.2)) = 1) per instance.
    expect(allowed).toBeGreaterThanOrEqual(POINTS);
    expect(allowed).toBeLessThanOrEqual(Object.keys(shared).length === 0 ? POINTS : POINTS + 2);
  });
});
