/**
 * Regressions of the black-box attack on the example server (issue 11): findings 1 (the stored
 * hash as a bearer credential), 2 (reuse detection at every door, O(1) family revocation),
 * 4 (scopes outside the catalogue), 7 (HEAD's own rate-limit bucket) and 8 (the lockout at every
 * door that checks a client's secrets). Each test failed on the main before the fix.
 */
import { createHash } from 'node:crypto';
import express, { type Express } from 'express';
import passport from 'passport';
import request from 'supertest';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createMemoryStore } from '../adapters/memory/index.js';
import { createAppTokens, type AuditEvent, type Store } from '../src/index.js';
import {
  CATALOGUE,
  ISSUER,
  accessToken,
  decodeJwt,
  expectBearerFailure,
  expectOAuthError,
  hostApp,
  setup,
  tokenRequest,
  Clock,
  postgresInstances,
  type Fixture,
} from './helpers.js';

const fixtures: Fixture[] = [];
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const f of fixtures.splice(0)) await f.cleanup();
  for (const c of closers.splice(0)) await c();
});

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });
const sha256 = (value: string) => createHash('sha256').update(value).digest();

/** A logger that keeps what it is told. */
function recordingLogger() {
  const lines: Array<{ level: string; obj: unknown; msg: string }> = [];
  const at = (level: string) => (obj: unknown, msg?: string) => void lines.push({ level, obj, msg: msg ?? '' });
  return { lines, logger: { warn: at('warn'), error: at('error'), info: at('info'), debug: at('debug') } };
}

async function fixture(options: Parameters<typeof setup>[0] = {}): Promise<Fixture & { events: AuditEvent[] }> {
  const events: AuditEvent[] = [];
  const f = await setup({ onEvent: (e) => events.push(e), ...options });
  fixtures.push(f);
  return Object.assign(f, { events });
}

function refresh(app: Express, clientId: string, refreshToken: string) {
  return request(app).post('/tokens/refresh').send({ client_id: clientId, grant_type: 'token-exchange', refresh_token: refreshToken, scope: 'openid' });
}

function introspect(app: Express, clientId: string, secret: string, token: string) {
  return request(app).post('/oauth/introspect').auth(clientId, secret).type('form').send({ token });
}

// ---- finding 1 ------------------------------------------------------------------------------------

describe('finding 1: no derived value of a credential authenticates (the stored hash is not a bearer)', () => {
  /** Every string an attacker could derive from a token value, its record or its JWT. */
  function derivedForms(value: string, record: { id: string; hint: string; appId: string }): Record<string, string> {
    const digest = sha256(value);
    const hex = digest.toString('hex');
    return {
      'sha256:<hex> (the old cache key)': `sha256:${hex}`,
      'bare hex (the stored hash)': hex,
      'upper-case hex': hex.toUpperCase(),
      base64url: digest.toString('base64url'),
      base64: digest.toString('base64'),
      'sha256:<base64url>': `sha256:${digest.toString('base64url')}`,
      'our prefix + hex': `eat_${hex}`,
      'the hint': record.hint,
      'the token id': record.id,
      'the app id': record.appId,
    };
  }

  async function usedAdmin() {
    // Many wrong secrets for one client id: keep the lockout out of the way of what is tested here.
    const f = await fixture({ clientLockout: { attempts: 1000 } });
    const created = await f.auth.apps.create({
      tenantId: 'acme',
      name: 'admin',
      scopes: ['apps:read', 'apps:write', 'notarization:read'],
    });
    const value = created.value;
    const jwt = await accessToken(f.app, created.app.id, value);
    // One real use of each, so that every verification cache holds them.
    expect((await request(f.app).get('/stamps').set(bearer(value))).status).toBe(200);
    expect((await request(f.app).get('/stamps').set(bearer(jwt))).status).toBe(200);
    expect((await request(f.app).get('/apps').set(bearer(value))).status).toBe(200);
    expect((await introspect(f.app, created.app.id, value, value)).body.active).toBe(true);
    const forms = derivedForms(value, { id: created.token.id, hint: created.token.hint, appId: created.app.id });
    const [, payload, signature] = jwt.split('.');
    Object.assign(forms, {
      "the JWT's jti": decodeJwt(jwt).payload.jti as string,
      "the JWT's signature": signature!,
      "the JWT's payload": payload!,
      'sha256 of the JWT': sha256(jwt).toString('hex'),
    });
    return { f, created, value, jwt, forms };
  }

  /** The forms an HTTP header can carry (the hint's ellipsis cannot be sent there). */
  const inHeader = (forms: Record<string, string>) => Object.entries(forms).filter(([, v]) => /^[\x21-\x7e]+$/.test(v));

  it('RFC 6750 §3.1: every derived form is invalid_token at the middleware, after the real token was used', async () => {
    const { f, forms } = await usedAdmin();
    expect(inHeader(forms).length).toBeGreaterThanOrEqual(13);
    for (const [name, form] of inHeader(forms)) {
      const res = await request(f.app).get('/stamps').set(bearer(form));
      expect(res.status, name).toBe(401);
      expectBearerFailure(res, 401, 'invalid_token');
    }
  });

  it('under passport.authenticate (the strategy and its cached fast path) every derived form is 401', async () => {
    const { f, value, forms } = await usedAdmin();
    passport.use(f.auth.strategy as passport.Strategy);
    const app = express();
    app.use(passport.initialize());
    app.get('/p', passport.authenticate('app-tokens', { session: false }), (_req, res) => void res.json({ ok: true }));
    expect((await request(app).get('/p').set(bearer(value))).status).toBe(200);
    for (const [name, form] of inHeader(forms)) {
      expect((await request(app).get('/p').set(bearer(form))).status, name).toBe(401);
    }
  });

  it('the management API refuses every derived form: no app is listed or created (no permanent credential)', async () => {
    const { f, forms } = await usedAdmin();
    for (const [name, form] of inHeader(forms)) {
      expect((await request(f.app).get('/apps').set(bearer(form))).status, name).toBe(401);
      const created = await request(f.app).post('/apps').set(bearer(form)).send({ name: 'backdoor', scopes: ['notarization:read'] });
      expect(created.status, name).toBe(401);
    }
    expect((await f.auth.apps.list('acme')).items.map((a) => a.name)).toEqual(['admin']);
  });

  it('RFC 7662 §2.2: introspection answers {active:false} for every derived form', async () => {
    const { f, created, value, forms } = await usedAdmin();
    for (const [name, form] of Object.entries(forms)) {
      const res = await introspect(f.app, created.app.id, value, form);
      expect(res.status, name).toBe(200);
      expect(res.body, name).toEqual({ active: false });
    }
  });

  it('RFC 6749 §2.3.1: the token endpoint and /tokens/refresh take no derived form as the secret', async () => {
    const { f, created, forms } = await usedAdmin();
    for (const [name, form] of Object.entries(forms)) {
      const res = await tokenRequest(f.app, created.app.id, form);
      expect(res.status, name).toBe(401);
      expect(res.body.error, name).toBe('invalid_client');
      expectOAuthError(await refresh(f.app, created.app.id, form), 400, 'invalid_grant');
    }
  });
});

// ---- finding 2 ------------------------------------------------------------------------------------

describe('finding 2: reuse of a refreshed token is detected at every door (RFC 9700 §4.14.2)', () => {
  /** A thief refreshed T into T′ 3 s ago (past the 2 s race window); the owner still holds T. */
  async function stolen(options: Parameters<typeof setup>[0] = {}) {
    const clock = new Clock();
    const log = recordingLogger();
    const f = await fixture({ logger: log.logger, ...options, advanced: { now: clock.now, ...options.advanced } });
    const created = await f.auth.apps.create({ tenantId: 'acme', name: 'victim', scopes: ['notarization:read'] });
    const admin = await f.auth.apps.create({ tenantId: 'acme', name: 'resource server', scopes: ['notarization:read'] });
    const t = created.value;
    const next = await refresh(f.app, created.app.id, t);
    expect(next.status, next.text).toBe(200);
    const tPrime = next.body.value as string;
    const tPrimeJwt = await accessToken(f.app, created.app.id, tPrime);
    expect((await request(f.app).get('/stamps').set(bearer(tPrime))).status).toBe(200);
    clock.advance(3);
    return { f, clock, log, clientId: created.app.id, t, tPrime, tPrimeJwt, admin };
  }

  async function expectFamilyDead(s: Awaited<ReturnType<typeof stolen>>, door: string): Promise<void> {
    expect((await tokenRequest(s.f.app, s.clientId, s.tPrime)).status).toBe(401);
    expectBearerFailure(await request(s.f.app).get('/stamps').set(bearer(s.tPrime)), 401, 'invalid_token');
    expectBearerFailure(await request(s.f.app).get('/stamps').set(bearer(s.tPrimeJwt)), 401, 'invalid_token');
    const detected = s.f.events.filter((e) => e.type === 'token.reuse_detected');
    expect(detected).toHaveLength(1);
    expect(detected[0]!.data).toMatchObject({ door });
    expect(s.log.lines.filter((l) => /reuse detected/.test(l.msg))).toHaveLength(1);
  }

  it('RFC 6749 §2.3.1: presenting T at /oauth/token revokes T′ and its access tokens', async () => {
    const s = await stolen();
    const res = await tokenRequest(s.f.app, s.clientId, s.t);
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('invalid_client');
    await expectFamilyDead(s, 'client_authentication');
  });

  it('RFC 6750 §3.1: presenting T as a bearer revokes T′ and its access tokens', async () => {
    const s = await stolen();
    expectBearerFailure(await request(s.f.app).get('/stamps').set(bearer(s.t)), 401, 'invalid_token');
    await expectFamilyDead(s, 'bearer');
  });

  it('RFC 7662: presenting T to introspection revokes T′ (and T is inactive)', async () => {
    const s = await stolen();
    const res = await introspect(s.f.app, s.admin.app.id, s.admin.value, s.t);
    expect(res.body).toEqual({ active: false });
    await expectFamilyDead(s, 'introspection');
  });

  it('RFC 7009: presenting T to revocation revokes T′', async () => {
    const s = await stolen();
    const res = await request(s.f.app).post('/oauth/revoke').auth(s.admin.app.id, s.admin.value).type('form').send({ token: s.t });
    expect(res.status).toBe(200);
    await expectFamilyDead(s, 'revocation');
  });

  it('is detected, logged and audited once, however often T is presented afterwards, at whichever door', async () => {
    // Every presentation is also a failed authentication: without the lockout, each door answers itself.
    const s = await stolen({ clientLockout: false });
    for (let i = 0; i < 5; i++) {
      await tokenRequest(s.f.app, s.clientId, s.t);
      await request(s.f.app).get('/stamps').set(bearer(s.t));
      await refresh(s.f.app, s.clientId, s.t);
    }
    await expectFamilyDead(s, 'client_authentication');
  });

  it('within the race window a presentation of T is a plain refusal and T′ lives (a client’s own retry)', async () => {
    const s = await stolen();
    s.clock.advance(-2.5); // 0.5 s after the refresh
    expect((await tokenRequest(s.f.app, s.clientId, s.t)).status).toBe(401);
    expect((await request(s.f.app).get('/stamps').set(bearer(s.tPrime))).status).toBe(200);
    expect(s.f.events.filter((e) => e.type === 'token.reuse_detected')).toEqual([]);
  });

  it('a deleted (not refreshed) token presented again is no reuse: nothing else is revoked', async () => {
    const s = await stolen();
    const other = await s.f.auth.apps.createToken('acme', s.clientId, { name: 'other' });
    await s.f.auth.apps.deleteToken('acme', s.clientId, other.token.id);
    expect((await request(s.f.app).get('/stamps').set(bearer(other.value))).status).toBe(401);
    expect((await request(s.f.app).get('/stamps').set(bearer(s.tPrime))).status).toBe(200);
    expect(s.f.events.filter((e) => e.type === 'token.reuse_detected')).toEqual([]);
  });

  it('revoking a 1,500-link chain costs the same few store calls as a 2-link one (family membership is O(1))', async () => {
    async function storeCallsToDetect(links: number): Promise<number> {
      const clock = new Clock();
      const inner = createMemoryStore();
      let calls = 0;
      const counting = new Proxy(inner, {
        get(target, prop, receiver) {
          const v = Reflect.get(target, prop, receiver) as unknown;
          if (typeof v !== 'function') return v;
          return (...args: unknown[]) => {
            calls++;
            return (v as (...a: unknown[]) => unknown).apply(target, args);
          };
        },
      }) as Store;
      const auth = createAppTokens({
        store: counting,
        issuer: ISSUER,
        scopes: CATALOGUE,
        advanced: { now: clock.now, revocationSyncInterval: 0, lastUsedFlushInterval: 0, eventFlushInterval: 0 },
      });
      closers.push(() => auth.close());
      await auth.ready();
      const created = await auth.apps.create({ tenantId: 'acme', name: 'chain', scopes: ['notarization:read'] });
      let old = (await inner.getApiToken('acme', created.token.id))!;
      for (let i = 0; i < links; i++) {
        const id = `tok_link${i}`;
        const replacement = { ...old, id, hash: sha256(id).toString('hex'), revokedAt: null, revokedReason: null, replacedBy: null };
        const tombstone = { kind: 'api_token' as const, id: old.id, tenantId: 'acme', createdAt: clock.now(), expiresAt: new Date(clock.t + 7_200_000) };
        expect(await inner.replaceApiToken({ tenantId: 'acme', oldId: old.id, expectedHash: old.hash, reason: 'refreshed', replacement, tombstone })).toBe(true);
        old = replacement;
      }
      clock.advance(3);
      const app = hostApp(auth);
      calls = 0;
      expect((await request(app).get('/stamps').set(bearer(created.value))).status).toBe(401);
      const spent = calls;
      expect((await inner.getApiToken('acme', old.id))?.revokedReason).toBe('reuse_detected');
      return spent;
    }
    const short = await storeCallsToDetect(2);
    const long = await storeCallsToDetect(1500);
    expect(long).toBe(short);
    expect(long).toBeLessThanOrEqual(4);
  });

  it('two instances on one PostgreSQL database presented T at once: T′ dies and the reuse is audited once in all', async () => {
    const clock = new Clock();
    const events: AuditEvent[] = [];
    const pg = await postgresInstances(2, { onEvent: (e) => events.push(e), advanced: { now: clock.now } });
    closers.push(pg.close);
    const { instances } = pg;
    const [a, b] = pg.apps as [Express, Express];
    const created = await instances[0]!.apps.create({ tenantId: 'acme', name: 'victim', scopes: ['notarization:read'] });
    const next = await refresh(a, created.app.id, created.value);
    expect(next.status).toBe(200);
    clock.advance(3);
    const results = await Promise.all([
      ...Array.from({ length: 4 }, () => request(a).get('/stamps').set(bearer(created.value))),
      ...Array.from({ length: 4 }, () => tokenRequest(b, created.app.id, created.value)),
    ]);
    expect(results.map((r) => r.status)).toEqual([401, 401, 401, 401, 401, 401, 401, 401]);
    expect(events.filter((e) => e.type === 'token.reuse_detected')).toHaveLength(1);
    expect((await tokenRequest(b, created.app.id, next.body.value as string)).status).toBe(401);
  });
});

// ---- finding 4 ------------------------------------------------------------------------------------

describe('finding 4: no token carries a scope outside the current catalogue', () => {
  async function retired() {
    const log = recordingLogger();
    const before = await setup({ scopes: [...CATALOGUE, 'legacy:read'] });
    const created = await before.auth.apps.create({ tenantId: 'acme', name: 'old app', scopes: ['notarization:read', 'legacy:read', 'apps:read'] });
    const oldJwt = await accessToken(before.app, created.app.id, created.value);
    expect(decodeJwt(oldJwt).payload.scope).toBe('notarization:read legacy:read apps:read');
    // The host removes legacy:read and apps:read from its catalogue between deploys.
    const f = await before.restart({ scopes: CATALOGUE.filter((s) => s !== 'apps:read'), logger: log.logger });
    fixtures.push(f);
    return { f, created, oldJwt, log };
  }

  it('RFC 6749 §3.3: the default grant leaves the removed scopes out', async () => {
    const { f, created } = await retired();
    const res = await tokenRequest(f.app, created.app.id, created.value);
    expect(res.status, res.text).toBe(200);
    expect(res.body.scope).toBe('notarization:read');
    expect(decodeJwt(res.body.access_token as string).payload.scope).toBe('notarization:read');
  });

  it('RFC 6749 §5.2: asking for a removed scope is invalid_scope', async () => {
    const { f, created } = await retired();
    expectOAuthError(await tokenRequest(f.app, created.app.id, created.value, { scope: 'legacy:read' }), 400, 'invalid_scope');
    expectOAuthError(await tokenRequest(f.app, created.app.id, created.value, { scope: 'apps:read' }), 400, 'invalid_scope');
  });

  it('the API token as a bearer, and a JWT minted before the change, grant only catalogue scopes (GET /apps is 403)', async () => {
    const { f, created, oldJwt } = await retired();
    for (const credential of [created.value, oldJwt]) {
      const me = await request(f.app).get('/me').set(bearer(credential));
      expect(me.status).toBe(200);
      expect(me.body.scopes).toEqual(['notarization:read']);
      expect((await request(f.app).get('/apps').set(bearer(credential))).status).toBe(403);
    }
  });

  it('start-up warns once, naming how many apps hold such scopes', async () => {
    const { log } = await retired();
    await vi.waitFor(() => expect(log.lines.filter((l) => l.level === 'warn' && /not in the "scopes" catalogue/.test(l.msg))).toHaveLength(1));
    const line = log.lines.find((l) => /not in the "scopes" catalogue/.test(l.msg))!;
    expect(line.obj).toMatchObject({ apps: 1 });
    expect((line.obj as { scopes: string[] }).scopes.sort()).toEqual(['apps:read', 'legacy:read']);
  });

  it('a store whose apps all fit the catalogue logs nothing of the sort', async () => {
    const log = recordingLogger();
    const f = await fixture({ logger: log.logger });
    await f.auth.apps.create({ tenantId: 'acme', name: 'fine', scopes: ['notarization:read'] });
    const again = await f.restart({ logger: log.logger });
    fixtures.splice(fixtures.indexOf(f), 1, again);
    await new Promise((r) => setTimeout(r, 50));
    expect(log.lines.filter((l) => /catalogue/.test(l.msg))).toEqual([]);
  });
});

// ---- finding 7 ------------------------------------------------------------------------------------

describe('finding 7: HEAD shares the GET rate-limit bucket', () => {
  it('RFC 9110 §9.3.2: with the GET bucket exhausted, HEAD is 429 too (and HEAD counts against GET)', async () => {
    const f = await fixture();
    const app = express();
    app.get('/limited', f.auth.authenticate(), f.auth.rateLimit({ points: 2, duration: 60 }), (_req, res) => void res.json({ ok: true }));
    const c = await f.auth.apps.create({ tenantId: 'acme', name: 'limited', scopes: ['notarization:read'] });
    const jwt = await accessToken(f.app, c.app.id, c.value);
    expect((await request(app).head('/limited').set(bearer(jwt))).status).toBe(200);
    expect((await request(app).get('/limited').set(bearer(jwt))).status).toBe(200);
    const third = await request(app).get('/limited').set(bearer(jwt));
    expect(third.status).toBe(429);
    const head = await request(app).head('/limited').set(bearer(jwt));
    expect(head.status).toBe(429);
    expect(head.headers['retry-after']).toMatch(/^\d+$/);
  });
});

// ---- finding 8 ------------------------------------------------------------------------------------

describe('finding 8, under issue 21 item 3: a throttled source is throttled at every door that checks a secret; the holder elsewhere never is', () => {
  const ATTACKER = '198.51.100.20';
  const HOLDER = '192.0.2.20';
  const fromSource = (r: request.Test, source: string) => r.set('X-Forwarded-For', source);

  /** The attacker's source fails 3 times at the token endpoint and twice as a bearer: past both thresholds. */
  async function throttled() {
    const f = await fixture({ clientLockout: { attempts: 3, sourceAttempts: 5, window: 60, duration: 60 } });
    f.app.set('trust proxy', true);
    const c = await f.auth.apps.create({ tenantId: 'acme', name: 'target', scopes: ['apps:read', 'apps:write', 'notarization:read'] });
    const second = await f.auth.apps.createToken('acme', c.app.id, { name: 'second' });
    for (let i = 0; i < 3; i++) expect((await fromSource(tokenRequest(f.app, c.app.id, `eat_wrong${i}`), ATTACKER)).status).toBe(401);
    for (let i = 0; i < 2; i++) expect((await fromSource(request(f.app).get('/stamps').set(bearer(`eat_wrong${i}`)), ATTACKER)).status).toBe(401);
    expectOAuthError(await fromSource(tokenRequest(f.app, c.app.id, c.value), ATTACKER), 429, 'temporarily_unavailable');
    return { f, c, second };
  }

  it('RFC 6749 §2.3.1: an uncached API token as a bearer from the throttled source answers 429 with Retry-After; from the holder it is served', async () => {
    const { f, c, second } = await throttled();
    for (const value of [c.value, second.value]) {
      const res = await fromSource(request(f.app).get('/stamps').set(bearer(value)), ATTACKER);
      expect(res.status).toBe(429);
      expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
      expect((await fromSource(request(f.app).get('/stamps').set(bearer(value)), HOLDER)).status).toBe(200);
    }
  });

  it('the management API with the API token as bearer answers 429 to the throttled source, 200 to the holder', async () => {
    const { f, c } = await throttled();
    const res = await fromSource(request(f.app).get(`/apps/${c.app.id}`).set(bearer(c.value)), ATTACKER);
    expect(res.status).toBe(429);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect((await fromSource(request(f.app).get(`/apps/${c.app.id}`).set(bearer(c.value)), HOLDER)).status).toBe(200);
  });

  it('/tokens/refresh answers 429 to the throttled source and rotates nothing; the holder refreshes', async () => {
    const { f, c } = await throttled();
    expectOAuthError(await fromSource(refresh(f.app, c.app.id, c.value), ATTACKER), 429, 'temporarily_unavailable');
    expect((await f.auth.apps.get('acme', c.app.id)).tokens.map((t) => t.id)).toContain(c.token.id);
    expect((await fromSource(refresh(f.app, c.app.id, c.value), HOLDER)).status).toBe(200);
  });

  it('failed refreshes throttle their source at the token endpoint, not the client', async () => {
    const f = await fixture({ clientLockout: { attempts: 3, window: 60, duration: 60 } });
    f.app.set('trust proxy', true);
    const c = await f.auth.apps.create({ tenantId: 'acme', name: 'target', scopes: ['notarization:read'] });
    for (let i = 0; i < 3; i++) expectOAuthError(await fromSource(refresh(f.app, c.app.id, `eat_guess${i}`), ATTACKER), 400, 'invalid_grant');
    expectOAuthError(await fromSource(tokenRequest(f.app, c.app.id, c.value), ATTACKER), 429, 'temporarily_unavailable');
    expect((await fromSource(tokenRequest(f.app, c.app.id, c.value), HOLDER)).status).toBe(200);
  });

  it('access tokens minted before the lockout keep working (they prove no secret)', async () => {
    const f = await fixture({ clientLockout: { attempts: 3, window: 60, duration: 60 } });
    const c = await f.auth.apps.create({ tenantId: 'acme', name: 'target', scopes: ['notarization:read'] });
    const jwt = await accessToken(f.app, c.app.id, c.value);
    for (let i = 0; i < 3; i++) await tokenRequest(f.app, c.app.id, `eat_wrong${i}`);
    expect((await request(f.app).get('/stamps').set(bearer(jwt))).status).toBe(200);
  });
});

