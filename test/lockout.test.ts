/**
 * Issue 21 item 3: nobody without a credential can deny its holder. Failed authentications are
 * throttled per source (the address Express reports under the host's `trust proxy`), per (source,
 * client id) and per source over all client ids; a throttled source gets 429 with Retry-After
 * (RFC 6585 §4) before its credential is checked; the correct credential from any other source is
 * served at once, however many failures other sources made. The state shows on the app and an
 * admin clears it. Each door that checks a client's credential is a test: the token endpoint
 * (client_secret_basic, client_secret_post, private_key_jwt), /tokens/refresh, introspection,
 * revocation, and an API token as a bearer (host route and management API).
 */
import express, { type Express } from 'express';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import request, { type Response } from 'supertest';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { OPEN_MEMO_MS, sourceKey } from '../src/core/limits.js';
import type { AppTokens, AuditEvent } from '../src/index.js';
import { CATALOGUE, ISSUER, expectOAuthError, expectProblem, mistype, postgresInstances, setup, type Fixture } from './helpers.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** The i-th address of 198.18.0.0/15 (RFC 2544 benchmarking space). */
const ip = (i: number) => `198.18.${Math.floor(i / 250)}.${(i % 250) + 1}`;
const FRESH = '203.0.113.77';

/** A fixture whose host trusts X-Forwarded-For, so that each request names its source. */
async function sourced(options: Parameters<typeof setup>[0] = {}): Promise<Fixture & { events: AuditEvent[] }> {
  const events: AuditEvent[] = [];
  const f = await setup({ onEvent: (e) => events.push(e), ...options });
  f.app.set('trust proxy', true);
  cleanups.push(() => f.cleanup());
  return Object.assign(f, { events });
}

type Door = 'basic' | 'post' | 'introspect' | 'revoke' | 'refresh';

/** One request at a client-authentication door, from `from`. */
function at(app: Express, door: Door, from: string, clientId: string, secret: string, token = 'x'): request.Test {
  const r = (path: string) => request(app).post(path).set('X-Forwarded-For', from);
  switch (door) {
    case 'basic':
      return r('/oauth/token').auth(clientId, secret).type('form').send({ grant_type: 'client_credentials' });
    case 'post':
      return r('/oauth/token').type('form').send({ grant_type: 'client_credentials', client_id: clientId, client_secret: secret });
    case 'introspect':
      return r('/oauth/introspect').auth(clientId, secret).type('form').send({ token });
    case 'revoke':
      return r('/oauth/revoke').auth(clientId, secret).type('form').send({ token });
    case 'refresh':
      return r('/tokens/refresh').send({ client_id: clientId, grant_type: 'token-exchange', refresh_token: secret, scope: 'openid' });
  }
}

/** What a failure at each door answers. */
const FAILURE: Record<Door, [number, string]> = {
  basic: [401, 'invalid_client'],
  post: [401, 'invalid_client'],
  introspect: [401, 'invalid_client'],
  revoke: [401, 'invalid_client'],
  refresh: [400, 'invalid_grant'],
};

/** RFC 6585 §4 / RFC 6749 §5.2: 429 temporarily_unavailable with a Retry-After in seconds. */
function expectThrottled(res: Response, where: string): void {
  expectOAuthError(res, 429, 'temporarily_unavailable');
  expect(res.headers['retry-after'], where).toMatch(/^\d+$/);
  expect(Number(res.headers['retry-after']), where).toBeGreaterThan(0);
}

const bearer = (app: Express, from: string, token: string, path = '/stamps') =>
  request(app).get(path).set('X-Forwarded-For', from).set('Authorization', `Bearer ${token}`);

async function target(auth: AppTokens, tenantId = 'acme') {
  const created = await auth.apps.create({ tenantId, name: 'production integration', scopes: ['notarization:read', 'apps:read'] });
  return { clientId: created.app.id, secret: created.value, tokenId: created.token.id };
}

/** An admin of the tenant holding every catalogue scope; its access token is requested from 127.0.0.1. */
async function admin(f: Fixture, tenantId = 'acme', scopes = [...CATALOGUE]): Promise<string> {
  const created = await f.auth.apps.create({ tenantId, name: 'admin', scopes });
  const res = await request(f.app).post('/oauth/token').auth(created.app.id, created.value).type('form').send({ grant_type: 'client_credentials' });
  expect(res.status, res.text).toBe(200);
  return res.body.access_token as string;
}

/** Run `count` requests, `width` at a time. */
async function inBatches(count: number, width: number, one: (i: number) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < count; i += width) await Promise.all(Array.from({ length: Math.min(width, count - i) }, (_, j) => one(i + j)));
}

describe('issue 21 item 3: nobody without the credential can lock its holder out', () => {
  it('RFC 6749 §2.3.1: after 1,000 failures from 100 sources at every door, the right secret from a fresh source is served at once at every door', async () => {
    // The defaults, as in production: 10 per (source, client id), 100 per source, 300 s, 900 s.
    const f = await sourced();
    const c = await target(f.auth);
    const wrong = mistype(c.secret);
    const doors: Door[] = ['basic', 'post', 'introspect', 'revoke', 'refresh'];
    // 100 sources, 10 failures each (two at each door), naming the victim's public client id.
    await inBatches(1000, 25, async (i) => {
      const door = doors[i % 5]!;
      const res = await at(f.app, door, ip(Math.floor(i / 10)), c.clientId, wrong);
      expectOAuthError(res, ...FAILURE[door]);
    });
    // And 200 guesses of API tokens as bearers, from 200 more sources.
    await inBatches(200, 25, async (i) => {
      const res = await bearer(f.app, ip(100 + i), mistype(c.secret));
      expect(res.status).toBe(401);
    });

    // Every one of the 100 sources is throttled for this client, right secret or not.
    expectThrottled(await at(f.app, 'basic', ip(0), c.clientId, c.secret), 'a throttled source');
    expectThrottled(await at(f.app, 'refresh', ip(99), c.clientId, c.secret), 'a throttled source');

    // The holder, from its own address: served at every door, at once.
    const granted = await at(f.app, 'basic', FRESH, c.clientId, c.secret);
    expect(granted.status, granted.text).toBe(200);
    const jwt = granted.body.access_token as string;
    expect((await at(f.app, 'post', FRESH, c.clientId, c.secret)).status).toBe(200);
    expect((await at(f.app, 'introspect', FRESH, c.clientId, c.secret, jwt)).body.active).toBe(true);
    expect((await bearer(f.app, FRESH, c.secret)).status).toBe(200);
    expect((await bearer(f.app, FRESH, c.secret, `/apps/${c.clientId}`)).status).toBe(200);
    expect((await at(f.app, 'revoke', FRESH, c.clientId, c.secret, jwt)).status).toBe(200);
    const refreshed = await at(f.app, 'refresh', FRESH, c.clientId, c.secret);
    expect(refreshed.status, refreshed.text).toBe(200);
    expect((await at(f.app, 'basic', FRESH, c.clientId, refreshed.body.value as string)).status).toBe(200);

    // The app shows what happened.
    const view = await f.auth.apps.get('acme', c.clientId);
    expect(view.lockout).toMatchObject({ failures: 1000, throttledSources: 100 });
    expect(Date.parse(view.lockout!.until!)).toBeGreaterThan(Date.now() + 800_000);
    expect(Date.now() - Date.parse(view.lockout!.lastFailureAt!)).toBeLessThan(60_000);
  }, 120_000);

  it('RFC 6585 §4: one source past the threshold gets 429 with Retry-After at each door, before its credential is checked; other sources are served', async () => {
    for (const door of ['basic', 'post', 'introspect', 'revoke', 'refresh'] as const) {
      const f = await sourced({ clientLockout: { attempts: 3, window: 300, duration: 900 } });
      const c = await target(f.auth);
      const attacker = ip(1);
      for (let i = 0; i < 3; i++) expectOAuthError(await at(f.app, door, attacker, c.clientId, mistype(c.secret)), ...FAILURE[door]);
      const refusals = f.events.filter((e) => e.outcome === 'failure').length;
      expectThrottled(await at(f.app, door, attacker, c.clientId, c.secret), door);
      expectThrottled(await at(f.app, door, attacker, c.clientId, mistype(c.secret)), door);
      // Refused before any work on the credential: a wrong one is neither audited nor counted again.
      expect(f.events.filter((e) => e.outcome === 'failure').length, door).toBe(refusals);
      expect((await f.auth.apps.get('acme', c.clientId)).lockout!.failures, door).toBe(3);
      // The throttle is this source's: the holder elsewhere is served at the same door.
      const jwt = door === 'introspect' || door === 'revoke' ? (await at(f.app, 'basic', FRESH, c.clientId, c.secret)).body.access_token : 'x';
      const served = await at(f.app, door, FRESH, c.clientId, c.secret, jwt);
      expect(served.status, `${door}: ${served.text}`).toBe(200);
    }
  });

  it('failures at one door throttle that source at every door for that client id, and only for it', async () => {
    const f = await sourced({ clientLockout: { attempts: 3, window: 300, duration: 900 } });
    const c = await target(f.auth);
    const other = await target(f.auth);
    const attacker = ip(2);
    for (let i = 0; i < 3; i++) await at(f.app, 'refresh', attacker, c.clientId, `eat_guess${i}`);
    for (const door of ['basic', 'post', 'introspect', 'revoke', 'refresh'] as const) {
      expectThrottled(await at(f.app, door, attacker, c.clientId, c.secret), door);
    }
    // The same source with another client's right secret: that pair has no failures.
    expect((await at(f.app, 'basic', attacker, other.clientId, other.secret)).status).toBe(200);
  });

  it('a source spraying many client ids is throttled for all of them after sourceAttempts failures; other sources are not', async () => {
    const f = await sourced({ clientLockout: { attempts: 3, sourceAttempts: 8, window: 300, duration: 900 } });
    const c = await target(f.auth);
    const sprayer = ip(3);
    // One failure per client id (never reaching the per-client threshold), unknown ids included.
    for (let i = 0; i < 8; i++) expectOAuthError(await at(f.app, 'basic', sprayer, `app_unknown${i}`, 'eat_guess'), 401, 'invalid_client');
    expectThrottled(await at(f.app, 'basic', sprayer, c.clientId, c.secret), 'a client id it never named');
    // The bearer door shares the per-source throttle: an uncached API token from the sprayer is refused...
    const limited = await bearer(f.app, sprayer, c.secret);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    // ...and served from anywhere else.
    expect((await at(f.app, 'basic', FRESH, c.clientId, c.secret)).status).toBe(200);
    expect((await bearer(f.app, FRESH, c.secret)).status).toBe(200);
  });

  it('failed API tokens as bearers throttle their source (host route and management API), never the app whose token it was', async () => {
    const f = await sourced({ clientLockout: { attempts: 3, sourceAttempts: 5, window: 300, duration: 900 } });
    const c = await target(f.auth);
    // A refreshed value: looked up, it would set off reuse detection and revoke the family.
    const refreshed = await at(f.app, 'refresh', FRESH, c.clientId, c.secret);
    const current = refreshed.body.value as string;
    const attacker = ip(4);
    for (let i = 0; i < 5; i++) expect((await bearer(f.app, attacker, mistype(current))).status).toBe(401);
    const refused = await bearer(f.app, attacker, current);
    expect(refused.status).toBe(429);
    expect(refused.headers['retry-after']).toMatch(/^\d+$/);
    // Refused before the lookup: the stale value presented by the throttled source sets nothing off.
    expect((await bearer(f.app, attacker, c.secret)).status).toBe(429);
    expect(f.events.filter((e) => e.type === 'token.reuse_detected')).toEqual([]);
    const problem = await bearer(f.app, attacker, current, `/apps/${c.clientId}`);
    expectProblem(problem, 429, 'rate_limited');
    expect(problem.headers['retry-after']).toMatch(/^\d+$/);
    c.secret = current;
    expect((await bearer(f.app, FRESH, c.secret)).status).toBe(200);
    expect((await bearer(f.app, FRESH, c.secret, `/apps/${c.clientId}`)).status).toBe(200);
    // An access token proves no secret and costs no lookup: the throttled source still uses one.
    const jwt = (await at(f.app, 'basic', FRESH, c.clientId, c.secret)).body.access_token as string;
    expect((await bearer(f.app, attacker, jwt)).status).toBe(200);
  });

  it('a forged X-Forwarded-For entry cannot move failures onto another source (trust proxy: one hop)', async () => {
    const f = await sourced({ clientLockout: { attempts: 3, window: 300, duration: 900 } });
    f.app.set('trust proxy', 1);
    const c = await target(f.auth);
    const victim = '192.0.2.10';
    const attacker = '198.51.100.66';
    // The attacker writes the victim's address; the one trusted proxy appends the real one.
    for (let i = 0; i < 5; i++) {
      const res = await request(f.app).post('/oauth/token').set('X-Forwarded-For', `${victim}, ${attacker}`).auth(c.clientId, 'eat_guess').type('form').send({ grant_type: 'client_credentials' });
      expect(res.status).toBe(i < 3 ? 401 : 429);
    }
    const served = await request(f.app).post('/oauth/token').set('X-Forwarded-For', victim).auth(c.clientId, c.secret).type('form').send({ grant_type: 'client_credentials' });
    expect(served.status, served.text).toBe(200);
  });

  it('an IPv6 source is its /64: rotating addresses inside it does not escape the throttle; the next /64 is another source', async () => {
    const f = await sourced({ clientLockout: { attempts: 3, window: 300, duration: 900 } });
    const c = await target(f.auth);
    for (let i = 0; i < 3; i++) await at(f.app, 'basic', `2001:db8:0:1::${(i + 1).toString(16)}`, c.clientId, 'eat_guess');
    expectThrottled(await at(f.app, 'basic', '2001:db8:0:1:ffff:ffff:ffff:fffe', c.clientId, c.secret), 'same /64');
    expect((await at(f.app, 'basic', '2001:db8:0:2::1', c.clientId, c.secret)).status).toBe(200);
  });

  it('behind a proxy Express does not trust, every client would be one source: a warning says so, once', async () => {
    const f = await setup({ clientLockout: { attempts: 3, window: 300, duration: 900 } });
    cleanups.push(() => f.cleanup());
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    try {
      const c = await target(f.auth);
      for (let i = 0; i < 2; i++) await at(f.app, 'basic', ip(40 + i), c.clientId, c.secret);
      const calls = warn.mock.calls.filter((call) => (call[1] as { code?: string } | undefined)?.code === 'EAT_TRUST_PROXY');
      expect(calls).toHaveLength(1);
      expect(String(calls[0]![0])).toContain('trust proxy');
    } finally {
      warn.mockRestore();
    }
  });

  it('sourceKey: IPv4 as is, IPv4-mapped IPv6 as IPv4, IPv6 by /64, anything else by a short digest', () => {
    expect(sourceKey('192.0.2.7')).toBe('192.0.2.7');
    expect(sourceKey('::ffff:192.0.2.7')).toBe('192.0.2.7');
    expect(sourceKey('::ffff:c000:207')).toBe('192.0.2.7');
    expect(sourceKey('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(sourceKey('2001:DB8:1:2::9')).toBe('2001:db8:1:2::/64');
    expect(sourceKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(sourceKey('::1')).toBe('0:0:0:0::/64');
    expect(sourceKey(undefined)).toBe('unknown');
    const odd = sourceKey(`x${'\u0000'.repeat(5)}${'y'.repeat(5000)}`);
    expect(odd).toMatch(/^other:[A-Za-z0-9_-]{22}$/);
  });
});

describe('private_key_jwt: nothing is keyed on the unverified iss', () => {
  async function keyed(f: Fixture) {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
    const created = await f.auth.apps.create({ tenantId: 'acme', name: 'signer', scopes: ['notarization:read'], tokenEndpointAuthMethod: 'private_key_jwt', jwks: { keys: [jwk] } });
    let n = 0;
    const sign = (claims: Record<string, unknown> = {}) =>
      new SignJWT({ iss: created.app.id, sub: created.app.id, aud: ISSUER, jti: `j${++n}-${Math.random()}`, ...claims })
        .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
        .setIssuedAt()
        .setExpirationTime('60s')
        .sign(privateKey);
    return { appId: created.app.id, sign };
  }
  const grant = (app: Express, from: string, assertion: string) =>
    request(app).post('/oauth/token').set('X-Forwarded-For', from).type('form').send({ grant_type: 'client_credentials', client_assertion_type: ASSERTION_TYPE, client_assertion: assertion });

  it('RFC 7523 §3 / RFC 6749 §2.3.1: 1,000 forged assertions naming the client from 100 sources: the right assertion from a fresh source gets a token at once', async () => {
    const f = await sourced();
    const k = await keyed(f);
    const forged = await k.sign({ aud: 'https://elsewhere.example' });
    await inBatches(1000, 25, async (i) => {
      expectOAuthError(await grant(f.app, ip(Math.floor(i / 10)), forged), 401, 'invalid_client');
    });
    const res = await grant(f.app, FRESH, await k.sign());
    expect(res.status, res.text).toBe(200);
    // Not even a source that sent ten forgeries is throttled for it (10 < sourceAttempts).
    expect((await grant(f.app, ip(0), await k.sign())).status).toBe(200);
    // Nothing was counted against the client id an assertion merely claims.
    expect((await f.auth.apps.get('acme', k.appId)).lockout).toEqual({ failures: 0, lastFailureAt: null, throttledSources: 0, until: null });
  }, 120_000);

  it('a source past sourceAttempts is refused with 429 before its assertion is read; others are served', async () => {
    const f = await sourced({ clientLockout: { attempts: 3, sourceAttempts: 4, window: 300, duration: 900 } });
    const k = await keyed(f);
    for (let i = 0; i < 4; i++) expectOAuthError(await grant(f.app, ip(5), await k.sign({ sub: 'someone-else' })), 401, 'invalid_client');
    expectThrottled(await grant(f.app, ip(5), await k.sign()), 'private_key_jwt');
    expect((await grant(f.app, FRESH, await k.sign())).status).toBe(200);
  });
});

describe("the app's lockout state: shown and cleared by an admin", () => {
  it('GET /apps/:id shows {failures, lastFailureAt, throttledSources, until}; DELETE /apps/:id/lockout (204, audited) frees the throttled sources at once', async () => {
    const f = await sourced({ clientLockout: { attempts: 3, window: 300, duration: 900 } });
    const c = await target(f.auth);
    const token = await admin(f);
    const auth = (r: request.Test) => r.set('Authorization', `Bearer ${token}`);
    const fresh = await auth(request(f.app).get(`/apps/${c.clientId}`));
    expect(fresh.body.lockout).toEqual({ failures: 0, lastFailureAt: null, throttledSources: 0, until: null });

    for (const source of [ip(10), ip(11)]) for (let i = 0; i < 3; i++) await at(f.app, 'basic', source, c.clientId, 'eat_guess');
    await at(f.app, 'basic', ip(12), c.clientId, 'eat_guess');
    const shown = await auth(request(f.app).get(`/apps/${c.clientId}`));
    expect(shown.status).toBe(200);
    expect(shown.body.lockout).toMatchObject({ failures: 7, throttledSources: 2 });
    expect(Date.parse(shown.body.lockout.until)).toBeGreaterThan(Date.now() + 800_000);
    expectThrottled(await at(f.app, 'basic', ip(10), c.clientId, c.secret), 'before the clear');

    const cleared = await auth(request(f.app).delete(`/apps/${c.clientId}/lockout`));
    expect(cleared.status).toBe(204);
    // At once: the throttled sources, with the right secret, are served; the state is empty.
    expect((await at(f.app, 'basic', ip(10), c.clientId, c.secret)).status).toBe(200);
    expect((await at(f.app, 'refresh', ip(11), c.clientId, c.secret)).status).toBe(200);
    expect((await auth(request(f.app).get(`/apps/${c.clientId}`))).body.lockout).toEqual({ failures: 0, lastFailureAt: null, throttledSources: 0, until: null });
    // Counting starts afresh for a cleared source: three more failures to throttle it again.
    for (let i = 0; i < 2; i++) expect((await at(f.app, 'basic', ip(10), c.clientId, 'eat_guess')).status).toBe(401);
    expect((await at(f.app, 'basic', ip(10), c.clientId, 'eat_guess')).status).toBe(401);
    expect((await at(f.app, 'basic', ip(10), c.clientId, 'eat_guess')).status).toBe(429);

    const event = f.events.find((e) => e.type === 'app.lockout_cleared');
    expect(event).toMatchObject({ tenantId: 'acme', appId: c.clientId, outcome: 'success', data: { failures: 7, throttledSources: 2 } });
    expect(event!.actorId).toMatch(/^app_/);
    await f.auth.apps.events('acme', c.clientId).then((page) => expect(page.items.map((e) => e.type)).toContain('app.lockout_cleared'));
  });

  it('clearing needs apps:write and every scope of the app; another tenant’s app is 404; the programmatic API clears too', async () => {
    const f = await sourced({ clientLockout: { attempts: 3, window: 300, duration: 900 } });
    const c = await target(f.auth);
    for (let i = 0; i < 3; i++) await at(f.app, 'basic', ip(20), c.clientId, 'eat_guess');
    const reader = await admin(f, 'acme', ['apps:read', 'notarization:read']);
    expectProblem(await request(f.app).delete(`/apps/${c.clientId}/lockout`).set('Authorization', `Bearer ${reader}`), 403, 'insufficient_scope');
    // apps:write without the app's notarization:read: may not act on it.
    const narrow = await admin(f, 'acme', ['apps:read', 'apps:write']);
    expectProblem(await request(f.app).delete(`/apps/${c.clientId}/lockout`).set('Authorization', `Bearer ${narrow}`), 403, 'forbidden', 'scopes');
    const stranger = await admin(f, 'globex');
    expectProblem(await request(f.app).delete(`/apps/${c.clientId}/lockout`).set('Authorization', `Bearer ${stranger}`), 404, 'not_found', 'id');
    await expect(f.auth.apps.clearLockout('globex', c.clientId)).rejects.toMatchObject({ code: 'not_found' });
    // None of that cleared anything.
    expectThrottled(await at(f.app, 'basic', ip(20), c.clientId, c.secret), 'after refused clears');
    await f.auth.apps.clearLockout('acme', c.clientId);
    expect((await at(f.app, 'basic', ip(20), c.clientId, c.secret)).status).toBe(200);
  });

  it('with clientLockout: false the app shows lockout null, and clearing is a no-op 204', async () => {
    const f = await sourced({ clientLockout: false });
    const c = await target(f.auth);
    expect((await f.auth.apps.get('acme', c.clientId)).lockout).toBeNull();
    const token = await admin(f);
    expect((await request(f.app).delete(`/apps/${c.clientId}/lockout`).set('Authorization', `Bearer ${token}`)).status).toBe(204);
  });
});

describe('on PostgreSQL, two instances share the throttle, the state and the clear', () => {
  it('failures counted on A throttle that source on B (even one B served) within OPEN_MEMO_MS; a fresh source is served on B; a clear on A frees it on B at once', async () => {
    const pg = await postgresInstances(2, { clientLockout: { attempts: 3, window: 300, duration: 900 } });
    cleanups.push(() => pg.close());
    const [a, b] = pg.apps.map((host) => {
      const app = express();
      app.set('trust proxy', true);
      app.use(host);
      return app;
    }) as [Express, Express];
    const [authA, authB] = pg.instances as [AppTokens, AppTokens];
    const c = await target(authA);
    const source = ip(30);
    // B serves the source: it now remembers it as open for this client.
    expect((await at(b, 'basic', source, c.clientId, c.secret)).status).toBe(200);
    for (let i = 0; i < 3; i++) expectOAuthError(await at(a, 'basic', source, c.clientId, 'eat_guess'), 401, 'invalid_client');
    await new Promise((r) => setTimeout(r, OPEN_MEMO_MS + 50));
    expectThrottled(await at(b, 'basic', source, c.clientId, c.secret), 'on the other instance');
    expect((await at(b, 'basic', FRESH, c.clientId, c.secret)).status).toBe(200);
    expect((await authB.apps.get('acme', c.clientId)).lockout).toMatchObject({ failures: 3, throttledSources: 1 });
    await authA.apps.clearLockout('acme', c.clientId);
    expect((await at(b, 'basic', source, c.clientId, c.secret)).status).toBe(200);
    expect((await authB.apps.get('acme', c.clientId)).lockout).toMatchObject({ failures: 0, throttledSources: 0, until: null });
  });

  it('1,000 failures spread over both instances from 100 sources: the right secret from a fresh source is served by each at once', async () => {
    const pg = await postgresInstances(2);
    cleanups.push(() => pg.close());
    const hosts = pg.apps.map((host) => {
      const app = express();
      app.set('trust proxy', true);
      app.use(host);
      return app;
    });
    const c = await target(pg.instances[0]!);
    await inBatches(1000, 20, async (i) => {
      expectOAuthError(await at(hosts[i % 2]!, 'basic', ip(Math.floor(i / 10)), c.clientId, 'eat_guess'), 401, 'invalid_client');
    });
    for (const host of hosts) expect((await at(host, 'basic', FRESH, c.clientId, c.secret)).status).toBe(200);
    expectThrottled(await at(hosts[0]!, 'basic', ip(50), c.clientId, c.secret), 'a throttled source');
    expect((await pg.instances[1]!.apps.get('acme', c.clientId)).lockout).toMatchObject({ failures: 1000, throttledSources: 100 });
  }, 120_000);
});
