import express from 'express';
import request from 'supertest';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { createAppTokens, type AppTokens } from '../src/index.js';
import { createPostgresStore } from '../adapters/sql/index.js';
import { CATALOGUE, ISSUER, accessToken, createClient, expectOAuthError, mistype, setup, tokenRequest, type Fixture } from './helpers.js';
import { freshDatabase } from './postgres-server.js';
import { OPEN_MEMO_MS } from '../src/core/limits.js';

const fixtures: Fixture[] = [];
const instances: AppTokens[] = [];
afterEach(async () => {
  for (const f of fixtures.splice(0)) await f.cleanup();
  for (const a of instances.splice(0)) await a.close();
});

/** A host with a rate-limited route family, like the example server's. */
function limitedHost(auth: AppTokens, points: number, duration = 60) {
  const app = express();
  app.use(auth.routes());
  const limited = [auth.authenticate(), auth.rateLimit({ points, duration })];
  app.get('/stamps/:id', ...limited, (_req, res) => {
    res.json({ ok: true });
  });
  app.get('/objects', ...limited, (_req, res) => {
    res.json({ ok: true });
  });
  return app;
}

/** `count` instances on one fresh PostgreSQL database, each behind {@link limitedHost}. */
async function postgresHosts(count: number, points: number, options: Partial<Parameters<typeof createAppTokens>[0]> = {}): Promise<express.Express[]> {
  const connectionString = await freshDatabase(inject('postgresUrl'));
  const hosts = [];
  for (let i = 0; i < count; i++) {
    const auth = createAppTokens({
      store: createPostgresStore({ connectionString }),
      issuer: ISSUER,
      scopes: CATALOGUE,
      ...options,
      advanced: { revocationSyncInterval: 0, lastUsedFlushInterval: 0 },
    });
    instances.push(auth);
    await auth.ready();
    hosts.push(limitedHost(auth, points));
  }
  return hosts;
}

describe('per app, per endpoint rate limits', () => {
  it('allows the quota with the remaining count, then 429 with Retry-After and the draft-10 RateLimit fields', async () => {
    const f = await setup();
    fixtures.push(f);
    const app = limitedHost(f.auth, 3);
    const c = await createClient(f.auth);
    const jwt = await accessToken(f.app, c.clientId, c.secret);
    for (const remaining of [2, 1, 0]) {
      const ok = await request(app).get(`/stamps/${remaining}`).set('Authorization', `Bearer ${jwt}`);
      expect(ok.status).toBe(200);
      expect(ok.headers['ratelimit-policy']).toBe('"default";q=3;w=60');
      expect(ok.headers.ratelimit).toMatch(new RegExp(`^"default";r=${remaining};t=\\d+$`));
    }
    const limited = await request(app).get('/stamps/9').set('Authorization', `Bearer ${jwt}`);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect(Number(limited.headers['retry-after'])).toBeLessThanOrEqual(60);
    expect(limited.headers['ratelimit-policy']).toBe('"default";q=3;w=60');
    expect(limited.headers.ratelimit).toMatch(/^"default";r=0;t=\d+$/);
    expect(limited.body.error).toBe('rate_limited');
  });

  it('counts per endpoint (the route pattern) and per app', async () => {
    const f = await setup();
    fixtures.push(f);
    const app = limitedHost(f.auth, 1);
    const a = await createClient(f.auth);
    const b = await createClient(f.auth);
    const ja = await accessToken(f.app, a.clientId, a.secret);
    const jb = await accessToken(f.app, b.clientId, b.secret);
    expect((await request(app).get('/stamps/1').set('Authorization', `Bearer ${ja}`)).status).toBe(200);
    // Same pattern, another URL: the same endpoint.
    expect((await request(app).get('/stamps/2').set('Authorization', `Bearer ${ja}`)).status).toBe(429);
    // Another endpoint, and another app: their own quotas.
    expect((await request(app).get('/objects').set('Authorization', `Bearer ${ja}`)).status).toBe(200);
    expect((await request(app).get('/stamps/1').set('Authorization', `Bearer ${jb}`)).status).toBe(200);
  });

  it('refuses bad options at construction, naming them', async () => {
    const f = await setup();
    fixtures.push(f);
    expect(() => f.auth.rateLimit({ points: 0, duration: 60 })).toThrow(/"points"/);
    expect(() => f.auth.rateLimit({ points: 10, duration: 0 })).toThrow(/"duration"/);
  });

  it('on PostgreSQL, three instances together allow exactly the quota', async () => {
    const hosts = await postgresHosts(3, 10);
    const c = await createClient(instances[0]!);
    const jwt = await accessToken(hosts[0]!, c.clientId, c.secret);
    const statuses: number[] = [];
    // 30 requests spread over the three instances, 10 at a time in parallel.
    for (let round = 0; round < 3; round++) {
      const batch = await Promise.all(
        hosts.flatMap((host, i) =>
          [0, 1, 2, 3].slice(0, i === 0 ? 4 : 3).map(() => request(host).get('/objects').set('Authorization', `Bearer ${jwt}`)),
        ),
      );
      statuses.push(...batch.map((r) => r.status));
    }
    expect(statuses.filter((s) => s === 200)).toHaveLength(10);
    expect(statuses.filter((s) => s === 429)).toHaveLength(statuses.length - 10);
  });
});

describe('client lockout at the OAuth endpoints (RFC 6749 §2.3.1): per source, never against the holder', () => {
  /** One client_credentials request from `from` (the host trusts X-Forwarded-For). */
  const from = (app: express.Express, source: string, clientId: string, secret: string) =>
    tokenRequest(app, clientId, secret).set('X-Forwarded-For', source);

  it('RFC 6749 §2.3.1: after repeated failed secret checks from one source, that source is refused with 429 (Retry-After) even with the right secret; the holder elsewhere is served', async () => {
    const f = await setup({ clientLockout: { attempts: 3, window: 60, duration: 2 } });
    fixtures.push(f);
    f.app.set('trust proxy', true);
    const c = await createClient(f.auth);
    const other = await createClient(f.auth);
    const attacker = '198.51.100.7';
    for (let i = 0; i < 3; i++) expectOAuthError(await from(f.app, attacker, c.clientId, other.secret), 401, 'invalid_client');
    const locked = await from(f.app, attacker, c.clientId, c.secret);
    expect(locked.status).toBe(429);
    expect(Number(locked.headers['retry-after'])).toBeGreaterThan(0);
    expect(locked.body.error).toBe('temporarily_unavailable');
    // The client itself is not locked out: the holder of the secret, from its own address, is served.
    expect((await from(f.app, '192.0.2.1', c.clientId, c.secret)).status).toBe(200);
    // The throttle is per (source, client id): the same source with another client's secret is served.
    expect((await from(f.app, attacker, other.clientId, other.secret)).status).toBe(200);
    // It ends after its duration.
    await new Promise((r) => setTimeout(r, 2100));
    expect((await from(f.app, attacker, c.clientId, c.secret)).status).toBe(200);
  });

  it('RFC 6749 §2.3.1: failures at /oauth/introspect and /oauth/revoke throttle that source at all three endpoints, and only that source', async () => {
    const f = await setup({ clientLockout: { attempts: 2, window: 60, duration: 60 } });
    fixtures.push(f);
    f.app.set('trust proxy', true);
    const post = (path: string, source: string, clientId: string, secret: string, form: Record<string, string>) =>
      request(f.app).post(path).set('X-Forwarded-For', source).auth(encodeURIComponent(clientId), encodeURIComponent(secret)).type('form').send(form);
    const expectLocked = (res: Awaited<ReturnType<typeof post>>, where: string) => {
      expectOAuthError(res, 429, 'temporarily_unavailable');
      expect(Number(res.headers['retry-after']), where).toBeGreaterThan(0);
    };
    const attacker = '198.51.100.8';
    const holder = '192.0.2.2';

    // Failures counted at /oauth/introspect throttle the source at the other endpoints.
    const a = await createClient(f.auth);
    const aToken = await accessToken(f.app, a.clientId, a.secret);
    const wrongA = mistype(a.secret);
    for (let i = 0; i < 2; i++) expectOAuthError(await post('/oauth/introspect', attacker, a.clientId, wrongA, { token: aToken }), 401, 'invalid_client');
    expectLocked(await post('/oauth/revoke', attacker, a.clientId, a.secret, { token: aToken }), '/oauth/revoke');
    expectLocked(await from(f.app, attacker, a.clientId, a.secret), '/oauth/token');
    expectLocked(await post('/oauth/introspect', attacker, a.clientId, a.secret, { token: aToken }), '/oauth/introspect');
    // The holder is served at all three.
    expect((await post('/oauth/introspect', holder, a.clientId, a.secret, { token: aToken })).body.active).toBe(true);
    expect((await from(f.app, holder, a.clientId, a.secret)).status).toBe(200);

    // Failures counted at /oauth/revoke throttle it too.
    const b = await createClient(f.auth);
    const bToken = await accessToken(f.app, b.clientId, b.secret);
    const wrongB = mistype(b.secret);
    for (let i = 0; i < 2; i++) expectOAuthError(await post('/oauth/revoke', attacker, b.clientId, wrongB, { token: bToken }), 401, 'invalid_client');
    expectLocked(await post('/oauth/introspect', attacker, b.clientId, b.secret, { token: bToken }), '/oauth/introspect');
    expectLocked(await from(f.app, attacker, b.clientId, b.secret), '/oauth/token');
    // The token a throttled revocation named is untouched.
    expect((await request(f.app).get('/stamps').set('Authorization', `Bearer ${bToken}`)).status).toBe(200);
    expect((await post('/oauth/revoke', holder, b.clientId, b.secret, { token: bToken })).status).toBe(200);
  });

  it('RFC 6749 §2.3.1: on PostgreSQL, failures counted by one instance throttle that source on another within OPEN_MEMO_MS, even where it was just served; other sources are served', async () => {
    const [a, b] = (await postgresHosts(2, 1000, { clientLockout: { attempts: 3, window: 60, duration: 60 } })) as [express.Express, express.Express];
    for (const host of [a, b]) host.set('trust proxy', true);
    const c = await createClient(instances[0]!);
    const source = '198.51.100.9';
    // B serves the source: it now remembers it as open and the credentials as verified.
    expect((await from(b, source, c.clientId, c.secret)).status).toBe(200);
    const wrong = mistype(c.secret);
    for (let i = 0; i < 3; i++) expectOAuthError(await from(a, source, c.clientId, wrong), 401, 'invalid_client');
    const lockedAt = performance.now();
    let status = 0;
    while (performance.now() - lockedAt < OPEN_MEMO_MS + 1000) {
      status = (await from(b, source, c.clientId, c.secret)).status;
      if (status === 429) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(status).toBe(429);
    expect((await from(b, '192.0.2.3', c.clientId, c.secret)).status).toBe(200);
  });

  it('can be turned off', async () => {
    const f = await setup({ clientLockout: false });
    fixtures.push(f);
    const c = await createClient(f.auth);
    const other = await createClient(f.auth);
    for (let i = 0; i < 12; i++) expectOAuthError(await tokenRequest(f.app, c.clientId, other.secret), 401, 'invalid_client');
    expect((await tokenRequest(f.app, c.clientId, c.secret)).status).toBe(200);
  });
});
