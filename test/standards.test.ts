/**
 * The standards the authorization server implements beyond RFC 6749/6750, pinned section by
 * section against the real routers: RFC 7662 introspection, RFC 7009 revocation, RFC 8693 token
 * exchange, RFC 8707 resource indicators, and signing-key rotation (RFC 7517 JWKS, RFC 9068).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Express } from 'express';
import { SignJWT, generateKeyPair } from 'jose';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { createSqliteStore } from '../adapters/sql/index.js';
import { createMemoryStore } from '../adapters/memory/index.js';
import { SecretCodec } from '../src/core/secrets.js';
import { createAppTokens, type AppTokens, type Store } from '../src/index.js';
import {
  CATALOGUE,
  ISSUER,
  accessToken,
  createClient,
  decodeJwt,
  expectBearerFailure,
  expectOAuthError,
  hostApp,
  mistype,
  setup,
  thrown,
  tokenRequest,
  type Fixture,
  type FixtureOptions,
} from './helpers.js';

// ---- helpers of this file -------------------------------------------------------------------------

type Client = Awaited<ReturnType<typeof createClient>>;

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
const STORAGE = 'https://storage.example.test';
const STREAMS = 'https://streams.example.test';
const RESOURCES = [
  { id: STORAGE, scopes: ['storage:read', 'storage:write'] },
  { id: STREAMS, scopes: ['streams:read'] },
];
const ALL_SCOPES = ['notarization:read', 'notarization:write', 'storage:read', 'storage:write', 'streams:read'];

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

/** Every fixture made by a test, cleaned up after it (restarts replace the entry). */
const fixtures = new Set<Fixture>();
const closers: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close().catch(() => {});
  for (const f of [...fixtures]) {
    fixtures.delete(f);
    await f.cleanup().catch(() => {});
  }
});

async function fixture(options: FixtureOptions = {}): Promise<Fixture> {
  const f = await setup(options);
  fixtures.add(f);
  return f;
}

/** Restart a fixture (same store file), tracking the new one for cleanup. */
async function restart(f: Fixture, options?: FixtureOptions): Promise<Fixture> {
  fixtures.delete(f);
  const g = await f.restart(options);
  fixtures.add(g);
  return g;
}

/** A controllable clock for `advanced.now`. */
interface Clock {
  now: () => Date;
  advance(seconds: number): void;
  set(ms: number): void;
  readonly ms: number;
}
function clock(start = Date.now()): Clock {
  let t = start;
  return {
    now: () => new Date(t),
    advance(seconds: number) {
      t += seconds * 1000;
    },
    set(ms: number) {
      t = ms;
    },
    get ms() {
      return t;
    },
  };
}

/** POST a form to one of the OAuth endpoints with client_secret_basic. */
function oauthPost(app: Express, path: string, c: Client, form: Record<string, string>) {
  return request(app)
    .post(path)
    .auth(encodeURIComponent(c.clientId), encodeURIComponent(c.secret))
    .type('form')
    .send(form);
}

const introspect = (app: Express, c: Client, token: string, extra: Record<string, string> = {}) =>
  oauthPost(app, '/oauth/introspect', c, { token, ...extra });
const revoke = (app: Express, c: Client, token: string, extra: Record<string, string> = {}) =>
  oauthPost(app, '/oauth/revoke', c, { token, ...extra });
const exchange = (app: Express, c: Client, form: Record<string, string>) =>
  tokenRequest(app, c.clientId, c.secret, { grant_type: TOKEN_EXCHANGE, subject_token_type: ACCESS_TOKEN_TYPE, ...form });

/** Assert the RFC 7662 §2.2 inactive answer: 200, exactly `{"active": false}`, not cached. */
async function expectInactive(app: Express, c: Client, token: string): Promise<void> {
  const res = await introspect(app, c, token);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  expect(res.body).toStrictEqual({ active: false });
  expect(res.headers['cache-control']).toBe('no-store');
}

/** Assert the token is active at introspection (a control for the inactive cases). */
async function expectActive(app: Express, c: Client, token: string): Promise<Record<string, unknown>> {
  const res = await introspect(app, c, token);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  expect(res.body.active).toBe(true);
  return res.body as Record<string, unknown>;
}

/** Another API token of an existing app (same scopes), as client credentials. */
async function secondToken(auth: AppTokens, c: Client): Promise<Client> {
  const issued = await auth.apps.createToken(c.tenant, c.clientId, { name: 'second' });
  return { clientId: c.clientId, secret: issued.value, tokenId: issued.token.id, tenant: c.tenant };
}

/** The same claims and header re-signed with a key that is not ours. */
async function foreignSigned(jwt: string): Promise<string> {
  const { header, payload } = decodeJwt(jwt);
  const { privateKey } = await generateKeyPair('RS256');
  return new SignJWT(payload).setProtectedHeader(header as { alg: string }).sign(privateKey);
}


const kidOf = (jwt: string) => decodeJwt(jwt).header.kid as string;
const jwksKids = async (app: Express) => {
  const res = await request(app).get('/.well-known/jwks.json');
  expect(res.status).toBe(200);
  return (res.body.keys as Array<{ kid: string }>).map((k) => k.kid);
};

// ---- RFC 7662: introspection --------------------------------------------------------------------

describe.each(['memory', 'sqlite'] as const)('RFC 7662 introspection (%s store)', (store) => {
  it('RFC 7662 §2.1: without client authentication → 401 invalid_client; a wrong Basic secret adds WWW-Authenticate: Basic', async () => {
    const f = await fixture({ store });
    const c = await createClient(f.auth);
    const jwt = await accessToken(f.app, c.clientId, c.secret);

    const anonymous = await request(f.app).post('/oauth/introspect').type('form').send({ token: jwt });
    expectOAuthError(anonymous, 401, 'invalid_client');
    expect(anonymous.body.active).toBeUndefined();

    const wrong = await introspect(f.app, { ...c, secret: mistype(c.secret) }, jwt);
    expectOAuthError(wrong, 401, 'invalid_client');
    expect(wrong.headers['www-authenticate']).toMatch(/^Basic realm="[^"]+"$/);
    expect(wrong.body.active).toBeUndefined();

    // client_secret_post works as well.
    const post = await request(f.app)
      .post('/oauth/introspect')
      .type('form')
      .send({ token: jwt, client_id: c.clientId, client_secret: c.secret });
    expect(post.status).toBe(200);
    expect(post.body.active).toBe(true);
  });

  it('RFC 7662 §2.1: a missing token parameter → 400 invalid_request', async () => {
    const f = await fixture({ store });
    const c = await createClient(f.auth);
    expectOAuthError(await oauthPost(f.app, '/oauth/introspect', c, {}), 400, 'invalid_request');
    expectOAuthError(await oauthPost(f.app, '/oauth/introspect', c, { token: '' }), 400, 'invalid_request');
    expectOAuthError(
      await oauthPost(f.app, '/oauth/introspect', c, { token_type_hint: 'access_token' }),
      400,
      'invalid_request',
    );
  });

  it('RFC 7662 §2.2: an active JWT → {active: true, scope, client_id, sub, aud, iss, exp, iat, jti, token_type} matching its claims, no-store', async () => {
    const f = await fixture({ store });
    const c = await createClient(f.auth);
    const jwt = await accessToken(f.app, c.clientId, c.secret, 'notarization:read');
    const { payload } = decodeJwt(jwt);
    const res = await introspect(f.app, c, jwt, { token_type_hint: 'access_token' });
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.body).toMatchObject({
      active: true,
      scope: 'notarization:read',
      client_id: c.clientId,
      sub: c.clientId,
      aud: ISSUER,
      iss: ISSUER,
      exp: payload.exp,
      iat: payload.iat,
      jti: payload.jti,
      token_type: 'Bearer',
    });
    expect(payload).toMatchObject({ scope: res.body.scope, client_id: res.body.client_id, sub: res.body.sub, aud: res.body.aud, iss: res.body.iss });
    expect(typeof res.body.jti).toBe('string');
  });

  it('RFC 7662 §2.2: an active API token → active true with its client_id and scope', async () => {
    const f = await fixture({ store });
    const c = await createClient(f.auth, { scopes: ['notarization:read', 'notarization:write'], tokenScopes: ['notarization:read'] });
    const res = await introspect(f.app, c, c.secret);
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toMatchObject({ active: true, client_id: c.clientId, sub: c.clientId, scope: 'notarization:read', iss: ISSUER });
  });

  it('RFC 7662 §2.2: garbage → exactly {"active": false}', async () => {
    const f = await fixture({ store });
    const c = await createClient(f.auth);
    for (const garbage of ['garbage', 'a.b.c', 'eyJhbGciOiJub25lIn0.e30.', 'eat_short']) {
      await expectInactive(f.app, c, garbage);
    }
  });

  it('RFC 7662 §2.2: an expired JWT → exactly {"active": false}', async () => {
    const t = clock();
    const f = await fixture({ store, accessTokenTtl: 60, advanced: { now: t.now } });
    const c = await createClient(f.auth);
    const jwt = await accessToken(f.app, c.clientId, c.secret);
    await expectActive(f.app, c, jwt);
    t.advance(60 + 5 + 1); // past exp and the clock tolerance
    await expectInactive(f.app, c, jwt);
  });

  it('RFC 7662 §2.2: a JWT of a deleted app → exactly {"active": false}', async () => {
    const f = await fixture({ store });
    const doomed = await createClient(f.auth);
    const asker = await createClient(f.auth);
    const jwt = await accessToken(f.app, doomed.clientId, doomed.secret);
    await expectActive(f.app, asker, jwt);
    await f.auth.apps.delete(doomed.tenant, doomed.clientId);
    await expectInactive(f.app, asker, jwt);
  });

  it('RFC 7662 §2.2: a JWT of a deleted API token → exactly {"active": false}', async () => {
    const f = await fixture({ store });
    const c = await createClient(f.auth);
    const sibling = await secondToken(f.auth, c);
    const jwt = await accessToken(f.app, c.clientId, c.secret);
    await expectActive(f.app, sibling, jwt);
    await f.auth.apps.deleteToken(c.tenant, c.clientId, c.tokenId);
    await expectInactive(f.app, sibling, jwt);
  });

  it('RFC 7662 §2.2: a JWT revoked at /oauth/revoke → exactly {"active": false}', async () => {
    const f = await fixture({ store });
    const c = await createClient(f.auth);
    const jwt = await accessToken(f.app, c.clientId, c.secret);
    await expectActive(f.app, c, jwt);
    expect((await revoke(f.app, c, jwt)).status).toBe(200);
    await expectInactive(f.app, c, jwt);
  });

  it('RFC 7662 §2.2: a JWT signed by a foreign key (same kid and claims) → exactly {"active": false}', async () => {
    const f = await fixture({ store });
    const c = await createClient(f.auth);
    const jwt = await accessToken(f.app, c.clientId, c.secret);
    await expectActive(f.app, c, jwt);
    await expectInactive(f.app, c, await foreignSigned(jwt));
  });

  it("RFC 7662 §2.2: another tenant's JWT → exactly {\"active\": false} for a client of tenant globex", async () => {
    const f = await fixture({ store });
    const acme = await createClient(f.auth, { tenant: 'acme' });
    const acmePeer = await createClient(f.auth, { tenant: 'acme' });
    const globex = await createClient(f.auth, { tenant: 'globex' });
    const jwt = await accessToken(f.app, acme.clientId, acme.secret);
    await expectActive(f.app, acmePeer, jwt);
    await expectInactive(f.app, globex, jwt);
    // …and its API token too.
    await expectInactive(f.app, globex, acme.secret);
  });

  it('RFC 7662 §2.2: an unknown API token (well-formed, never issued, or a bad checksum) → exactly {"active": false}', async () => {
    const f = await fixture({ store });
    const c = await createClient(f.auth);
    const unknown = new SecretCodec('eat').generate().value;
    await expectInactive(f.app, c, unknown);
    const flipped = c.secret.slice(0, -1) + (c.secret.endsWith('A') ? 'B' : 'A');
    await expectInactive(f.app, c, flipped);
  });

  it('RFC 7662 §2.2: a revoked API token → exactly {"active": false}', async () => {
    const f = await fixture({ store });
    const c = await createClient(f.auth);
    const victim = await secondToken(f.auth, c);
    await expectActive(f.app, c, victim.secret);
    expect((await revoke(f.app, victim, victim.secret)).status).toBe(200);
    await expectInactive(f.app, c, victim.secret);
  });

  it("RFC 7662 §2.1: a client of the same tenant may introspect another client's token of that tenant", async () => {
    const f = await fixture({ store });
    const owner = await createClient(f.auth, { tenant: 'acme' });
    const peer = await createClient(f.auth, { tenant: 'acme', scopes: ['storage:read'] });
    const jwt = await accessToken(f.app, owner.clientId, owner.secret);
    const body = await expectActive(f.app, peer, jwt);
    expect(body.client_id).toBe(owner.clientId);
    expect(body.scope).toBe('notarization:read notarization:write');
  });

  it('RFC 7662 §2.1: a token_type_hint naming the other type (refresh_token for a JWT, access_token for an API token) still finds and describes the token', async () => {
    const f = await fixture({ store });
    const owner = await createClient(f.auth, { tenant: 'acme' });
    const asker = await createClient(f.auth, { tenant: 'acme' });
    const jwt = await accessToken(f.app, owner.clientId, owner.secret);
    const cases: Array<[string, string, string]> = [
      ['a JWT hinted as refresh_token', jwt, 'refresh_token'],
      ['an API token hinted as access_token', owner.secret, 'access_token'],
    ];
    for (const [name, token, hint] of cases) {
      const res = await introspect(f.app, asker, token, { token_type_hint: hint });
      expect(res.status, name).toBe(200);
      expect(res.body, name).toMatchObject({ active: true, client_id: owner.clientId, sub: owner.clientId });
    }
  });

  it('RFC 7662 §4: an expired API token → exactly {"active": false}', async () => {
    const t = clock();
    const f = await fixture({ store, advanced: { now: t.now } });
    const c = await createClient(f.auth, { expiresIn: 120 });
    const sibling = await createClient(f.auth);
    const body = await expectActive(f.app, sibling, c.secret);
    expect(body.client_id).toBe(c.clientId);
    t.advance(121);
    await expectInactive(f.app, sibling, c.secret);
  });
});

// ---- RFC 7009: revocation -----------------------------------------------------------------------

describe.each(['memory', 'sqlite'] as const)('RFC 7009 revocation (%s store)', (store) => {
  it('RFC 7009 §2.1: without client authentication → 401 invalid_client; a missing token → 400 invalid_request', async () => {
    const f = await fixture({ store });
    const c = await createClient(f.auth);
    const jwt = await accessToken(f.app, c.clientId, c.secret);
    expectOAuthError(await request(f.app).post('/oauth/revoke').type('form').send({ token: jwt }), 401, 'invalid_client');
    const wrong = await revoke(f.app, { ...c, secret: mistype(c.secret) }, jwt);
    expectOAuthError(wrong, 401, 'invalid_client');
    expect(wrong.headers['www-authenticate']).toMatch(/^Basic /);
    expectOAuthError(await oauthPost(f.app, '/oauth/revoke', c, {}), 400, 'invalid_request');
    // Nothing was revoked by the refused requests.
    expect((await request(f.app).get('/stamps').set(bearer(jwt))).status).toBe(200);
  });

  it('RFC 7009 §2.2: revoking its own JWT → 200; the bearer middleware refuses it at once even though it was cached; introspection says inactive; sibling JWTs keep working', async () => {
    const f = await fixture({ store });
    const c = await createClient(f.auth);
    const jwt = await accessToken(f.app, c.clientId, c.secret);
    const sibling = await accessToken(f.app, c.clientId, c.secret);
    expect((await request(f.app).get('/stamps').set(bearer(jwt))).status).toBe(200); // now cached
    expect((await request(f.app).get('/stamps').set(bearer(sibling))).status).toBe(200);

    const res = await revoke(f.app, c, jwt, { token_type_hint: 'access_token' });
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');

    expectBearerFailure(await request(f.app).get('/stamps').set(bearer(jwt)), 401, 'invalid_token');
    await expectInactive(f.app, c, jwt);
    expect((await request(f.app).get('/stamps').set(bearer(sibling))).status).toBe(200);
    // The client itself is untouched.
    expect((await tokenRequest(f.app, c.clientId, c.secret)).status).toBe(200);
  });

  it('RFC 7009 §2.2: revoking its own API token → 200; it fails at /oauth/token and as a bearer, and the access tokens it minted fail', async () => {
    const f = await fixture({ store });
    const c = await createClient(f.auth);
    const other = await secondToken(f.auth, c);
    const minted = await accessToken(f.app, c.clientId, c.secret);
    expect((await request(f.app).get('/stamps').set(bearer(c.secret))).status).toBe(200); // cached as a bearer
    expect((await request(f.app).get('/stamps').set(bearer(minted))).status).toBe(200); // cached

    expect((await revoke(f.app, c, c.secret, { token_type_hint: 'refresh_token' })).status).toBe(200);

    const token = await tokenRequest(f.app, c.clientId, c.secret);
    expectOAuthError(token, 401, 'invalid_client');
    expectBearerFailure(await request(f.app).get('/stamps').set(bearer(c.secret)), 401, 'invalid_token');
    expectBearerFailure(await request(f.app).get('/stamps').set(bearer(minted)), 401, 'invalid_token');
    // The app's other API token lives on.
    expect((await tokenRequest(f.app, other.clientId, other.secret)).status).toBe(200);
  });

  it('RFC 7009 §2.2: an unknown token → 200 and nothing changes', async () => {
    const f = await fixture({ store });
    const c = await createClient(f.auth);
    const jwt = await accessToken(f.app, c.clientId, c.secret);
    for (const unknown of ['garbage', new SecretCodec('eat').generate().value, await foreignSigned(jwt)]) {
      const res = await revoke(f.app, c, unknown);
      expect(res.status, unknown).toBe(200);
    }
    expect((await request(f.app).get('/stamps').set(bearer(jwt))).status).toBe(200);
    expect((await tokenRequest(f.app, c.clientId, c.secret)).status).toBe(200);
  });

  it('RFC 7009 §2.1: an unknown token_type_hint (foo) with a valid token → 200 and the token is revoked', async () => {
    const f = await fixture({ store });
    const c = await createClient(f.auth);
    const jwt = await accessToken(f.app, c.clientId, c.secret);
    const res = await revoke(f.app, c, jwt, { token_type_hint: 'foo' });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expectBearerFailure(await request(f.app).get('/stamps').set(bearer(jwt)), 401, 'invalid_token');
  });

  it('RFC 7009 §2.1: a token_type_hint of refresh_token for an access token → the access token is still revoked', async () => {
    const f = await fixture({ store });
    const c = await createClient(f.auth);
    const jwt = await accessToken(f.app, c.clientId, c.secret);
    expect((await revoke(f.app, c, jwt, { token_type_hint: 'refresh_token' })).status).toBe(200);
    expectBearerFailure(await request(f.app).get('/stamps').set(bearer(jwt)), 401, 'invalid_token');
    await expectInactive(f.app, c, jwt);
  });

  it("RFC 7009 §2.1: another client's tokens (same tenant, other tenant) → 200 but they stay valid", async () => {
    const f = await fixture({ store });
    const victim = await createClient(f.auth, { tenant: 'acme' });
    const peer = await createClient(f.auth, { tenant: 'acme' });
    const stranger = await createClient(f.auth, { tenant: 'globex' });
    const jwt = await accessToken(f.app, victim.clientId, victim.secret);
    for (const attacker of [peer, stranger]) {
      expect((await revoke(f.app, attacker, jwt)).status).toBe(200);
      expect((await revoke(f.app, attacker, victim.secret)).status).toBe(200);
    }
    expect((await request(f.app).get('/stamps').set(bearer(jwt))).status).toBe(200);
    expect((await request(f.app).get('/stamps').set(bearer(victim.secret))).status).toBe(200);
    expect((await tokenRequest(f.app, victim.clientId, victim.secret)).status).toBe(200);
    await expectActive(f.app, victim, jwt);
  });

  it('RFC 7009 §2: the revocation endpoint accepts POST only: GET → 405 with Allow: POST', async () => {
    const f = await fixture({ store });
    const c = await createClient(f.auth);
    const res = await request(f.app).get('/oauth/revoke').auth(c.clientId, c.secret);
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe('POST');
    const introspection = await request(f.app).get('/oauth/introspect').auth(c.clientId, c.secret);
    expect(introspection.status).toBe(405);
  });
});

describe('RFC 7009 revocation across restarts (sqlite store)', () => {
  it('RFC 7009 §2.2: a revoked JWT stays refused after a restart, while a sibling JWT keeps working', async () => {
    let f = await fixture();
    const c = await createClient(f.auth);
    const jwt = await accessToken(f.app, c.clientId, c.secret);
    const sibling = await accessToken(f.app, c.clientId, c.secret);
    expect((await revoke(f.app, c, jwt)).status).toBe(200);
    f = await restart(f);
    expectBearerFailure(await request(f.app).get('/stamps').set(bearer(jwt)), 401, 'invalid_token');
    await expectInactive(f.app, c, jwt);
    expect((await request(f.app).get('/stamps').set(bearer(sibling))).status).toBe(200);
  });

  it('RFC 7009 §2.2: a revoked API token stays dead after a restart', async () => {
    let f = await fixture();
    const c = await createClient(f.auth);
    const minted = await accessToken(f.app, c.clientId, c.secret);
    expect((await revoke(f.app, c, c.secret)).status).toBe(200);
    f = await restart(f);
    expectOAuthError(await tokenRequest(f.app, c.clientId, c.secret), 401, 'invalid_client');
    expectBearerFailure(await request(f.app).get('/stamps').set(bearer(minted)), 401, 'invalid_token');
  });
});

// ---- RFC 8693: token exchange -------------------------------------------------------------------

describe.each(['memory', 'sqlite'] as const)('RFC 8693 token exchange (%s store)', (store) => {
  const make = async (more: FixtureOptions = {}) => {
    const f = await fixture({ store, resources: RESOURCES, ...more });
    const c = await createClient(f.auth, { scopes: ALL_SCOPES });
    return { f, c };
  };

  it('RFC 8693 §2.2.1: narrowing the scope → 200 {access_token, issued_token_type, token_type, expires_in, scope}; the new token never outlives the subject', async () => {
    const t = clock();
    const { f, c } = await make({ advanced: { now: t.now } });
    const subject = await accessToken(f.app, c.clientId, c.secret, 'notarization:read notarization:write');
    const subjectExp = decodeJwt(subject).payload.exp as number;
    t.advance(1800); // half the subject's lifetime has gone

    const res = await exchange(f.app, c, { subject_token: subject, scope: 'notarization:read' });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toMatchObject({
      issued_token_type: ACCESS_TOKEN_TYPE,
      token_type: 'Bearer',
      scope: 'notarization:read',
    });
    expect(Object.keys(res.body).sort()).toEqual(['access_token', 'expires_in', 'issued_token_type', 'scope', 'token_type']);
    const { header, payload } = decodeJwt(res.body.access_token as string);
    expect(header.typ).toBe('at+jwt');
    expect(payload.scope).toBe('notarization:read');
    expect(payload.client_id).toBe(c.clientId);
    expect(payload.aud).toBe(ISSUER);
    expect(payload.exp as number).toBeLessThanOrEqual(subjectExp);
    expect(res.body.expires_in).toBe((payload.exp as number) - (payload.iat as number));
    expect(res.body.expires_in).toBeLessThanOrEqual(1800);
  });

  it('RFC 8693 §2.2.1: the exchanged token passes a route needing the kept scope and gets 403 insufficient_scope on one needing the dropped scope', async () => {
    const { f, c } = await make();
    const subject = await accessToken(f.app, c.clientId, c.secret, 'notarization:read notarization:write');
    expect((await request(f.app).post('/stamps').set(bearer(subject))).status).toBe(201);
    const res = await exchange(f.app, c, { subject_token: subject, scope: 'notarization:read' });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const narrow = res.body.access_token as string;
    expect((await request(f.app).get('/stamps').set(bearer(narrow))).status).toBe(200);
    expectBearerFailure(await request(f.app).post('/stamps').set(bearer(narrow)), 403, 'insufficient_scope', [
      'notarization:read',
      'notarization:write',
    ]);
  });

  it('RFC 8693 §2.1: an API token as subject_token works, bounded by its scopes and its expiry', async () => {
    const f = await fixture({ store, resources: RESOURCES });
    const c = await createClient(f.auth, { scopes: ALL_SCOPES, expiresIn: 600 });
    const before = Math.floor(Date.now() / 1000);
    const res = await exchange(f.app, c, { subject_token: c.secret, scope: 'notarization:read' });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.scope).toBe('notarization:read');
    const { payload } = decodeJwt(res.body.access_token as string);
    expect(payload.api_token_id).toBe(c.tokenId);
    expect(payload.exp as number).toBeLessThanOrEqual(before + 600 + 1);
    expect((await request(f.app).get('/stamps').set(bearer(res.body.access_token as string))).status).toBe(200);
  });

  it('RFC 8693 §2.2.2: widening the scope → 400 invalid_scope', async () => {
    const { f, c } = await make();
    const subject = await accessToken(f.app, c.clientId, c.secret, 'notarization:read');
    expectOAuthError(await exchange(f.app, c, { subject_token: subject, scope: 'notarization:read notarization:write' }), 400, 'invalid_scope');
    expectOAuthError(await exchange(f.app, c, { subject_token: subject, scope: 'storage:read' }), 400, 'invalid_scope');
  });

  it("RFC 8693 §2.2.2: another client's subject_token (same tenant) → 400 invalid_request", async () => {
    const { f, c } = await make();
    const other = await createClient(f.auth, { scopes: ALL_SCOPES });
    const foreign = await accessToken(f.app, other.clientId, other.secret);
    expectOAuthError(await exchange(f.app, c, { subject_token: foreign }), 400, 'invalid_request');
    expectOAuthError(await exchange(f.app, c, { subject_token: other.secret }), 400, 'invalid_request');
  });

  it('RFC 8693 §2.2.2: a garbage or missing subject_token → 400 invalid_request', async () => {
    const { f, c } = await make();
    expectOAuthError(await exchange(f.app, c, { subject_token: 'garbage' }), 400, 'invalid_request');
    expectOAuthError(await exchange(f.app, c, { subject_token: new SecretCodec('eat').generate().value }), 400, 'invalid_request');
    expectOAuthError(await exchange(f.app, c, {}), 400, 'invalid_request');
    expectOAuthError(await exchange(f.app, c, { subject_token: '' }), 400, 'invalid_request');
  });

  it('RFC 8693 §2.1: a missing or unsupported subject_token_type → 400 invalid_request', async () => {
    const { f, c } = await make();
    const subject = await accessToken(f.app, c.clientId, c.secret);
    const missing = await tokenRequest(f.app, c.clientId, c.secret, { grant_type: TOKEN_EXCHANGE, subject_token: subject });
    expectOAuthError(missing, 400, 'invalid_request');
    expect(missing.body.error_description).toContain('subject_token_type');
    for (const type of ['urn:ietf:params:oauth:token-type:refresh_token', 'urn:ietf:params:oauth:token-type:id_token', 'bogus']) {
      const res = await exchange(f.app, c, { subject_token: subject, subject_token_type: type });
      expectOAuthError(res, 400, 'invalid_request');
      expect(res.body.error_description).toContain('subject_token_type');
    }
  });

  it('RFC 8693 §2.1: an actor_token (delegation) → 400 invalid_request', async () => {
    const { f, c } = await make();
    const subject = await accessToken(f.app, c.clientId, c.secret);
    const actor = await accessToken(f.app, c.clientId, c.secret);
    const res = await exchange(f.app, c, { subject_token: subject, actor_token: actor, actor_token_type: ACCESS_TOKEN_TYPE });
    expectOAuthError(res, 400, 'invalid_request');
    expect(res.body.error_description).toContain('actor_token');
  });

  it('RFC 8693 §2.2.2: an unknown audience or resource → 400 invalid_target', async () => {
    const { f, c } = await make();
    const subject = await accessToken(f.app, c.clientId, c.secret);
    expectOAuthError(await exchange(f.app, c, { subject_token: subject, audience: 'https://unknown.example.test' }), 400, 'invalid_target');
    expectOAuthError(await exchange(f.app, c, { subject_token: subject, resource: 'https://unknown.example.test' }), 400, 'invalid_target');
  });

  it('RFC 8693 §2.1 / RFC 8707 §2: exchanging into a declared resource (resource or audience) yields aud = that resource', async () => {
    const { f, c } = await make();
    const subject = await accessToken(f.app, c.clientId, c.secret);
    for (const param of ['resource', 'audience'] as const) {
      const res = await exchange(f.app, c, { subject_token: subject, [param]: STORAGE, scope: 'storage:read' });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const { payload } = decodeJwt(res.body.access_token as string);
      expect(payload.aud, param).toBe(STORAGE);
      expect(payload.scope).toBe('storage:read');
    }
    // Scope omitted: the subject's scopes that the resource serves.
    const all = await exchange(f.app, c, { subject_token: subject, resource: STORAGE });
    expect(all.status, JSON.stringify(all.body)).toBe(200);
    expect(all.body.scope).toBe('storage:read storage:write');
  });

  it('RFC 8693 §2.2.2: a token bound to one resource cannot be re-targeted at another → 400 invalid_target', async () => {
    const { f, c } = await make();
    const storageToken = (await tokenRequest(f.app, c.clientId, c.secret, { resource: STORAGE })).body.access_token as string;
    expect(decodeJwt(storageToken).payload.aud).toBe(STORAGE);
    expectOAuthError(await exchange(f.app, c, { subject_token: storageToken, resource: STREAMS }), 400, 'invalid_target');
    // Without a target it keeps its audience.
    const kept = await exchange(f.app, c, { subject_token: storageToken, scope: 'storage:read' });
    expect(kept.status, JSON.stringify(kept.body)).toBe(200);
    expect(decodeJwt(kept.body.access_token as string).payload.aud).toBe(STORAGE);
  });

  it('RFC 8693 §2.1: the exchanged token dies when the API token its subject descends from is deleted', async () => {
    const { f, c } = await make();
    const authenticator = await secondToken(f.auth, c);
    const subject = await accessToken(f.app, c.clientId, c.secret); // minted by token A
    // Client authentication with token B, subject from token A: the lineage is the subject's.
    const res = await exchange(f.app, authenticator, { subject_token: subject, scope: 'notarization:read' });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const exchanged = res.body.access_token as string;
    expect(decodeJwt(exchanged).payload.api_token_id).toBe(c.tokenId);
    expect((await request(f.app).get('/stamps').set(bearer(exchanged))).status).toBe(200); // cached

    await f.auth.apps.deleteToken(c.tenant, c.clientId, c.tokenId);
    expectBearerFailure(await request(f.app).get('/stamps').set(bearer(exchanged)), 401, 'invalid_token');
    await expectInactive(f.app, authenticator, exchanged);
    // Token B and what it mints are unaffected.
    expect((await request(f.app).get('/stamps').set(bearer(await accessToken(f.app, authenticator.clientId, authenticator.secret)))).status).toBe(200);
  });

  it('RFC 8693 §2.2.2: a revoked subject_token → 400 invalid_request', async () => {
    const { f, c } = await make();
    const subject = await accessToken(f.app, c.clientId, c.secret);
    expect((await revoke(f.app, c, subject)).status).toBe(200);
    expectOAuthError(await exchange(f.app, c, { subject_token: subject }), 400, 'invalid_request');
  });

  it('RFC 8693 §2.1: a requested_token_type other than access_token → 400 invalid_request', async () => {
    const { f, c } = await make();
    const subject = await accessToken(f.app, c.clientId, c.secret);
    const res = await exchange(f.app, c, { subject_token: subject, requested_token_type: 'urn:ietf:params:oauth:token-type:refresh_token' });
    expectOAuthError(res, 400, 'invalid_request');
    expect(res.body.error_description).toContain('requested_token_type');
    const ok = await exchange(f.app, c, { subject_token: subject, requested_token_type: ACCESS_TOKEN_TYPE });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
  });

  it('RFC 8693 §2.2.2: an unknown audience alongside a valid resource → 400 invalid_target (no target is silently dropped)', async () => {
    const { f, c } = await make();
    const subject = await accessToken(f.app, c.clientId, c.secret);
    const unknown = await exchange(f.app, c, { subject_token: subject, resource: STORAGE, audience: 'https://unknown.example.test' });
    expectOAuthError(unknown, 400, 'invalid_target');
    // Two declared but different targets: a token for both, or invalid_target; never one of them silently.
    const both = await exchange(f.app, c, { subject_token: subject, resource: STORAGE, audience: STREAMS });
    if (both.status === 200) {
      expect([decodeJwt(both.body.access_token as string).payload.aud].flat()).toEqual(expect.arrayContaining([STORAGE, STREAMS]));
    } else {
      expectOAuthError(both, 400, 'invalid_target');
    }
  });

  it('RFC 8693 §2.2.1 / RFC 6749 §5.1: a subject past its exp (still inside the clock leeway) never yields an already-expired token', async () => {
    const t = clock();
    const { f, c } = await make({ accessTokenTtl: 60, advanced: { now: t.now, clockTolerance: 5 } });
    const subject = await accessToken(f.app, c.clientId, c.secret, 'notarization:read notarization:write');
    t.advance(60 + 3); // 3 s past exp: the subject still verifies thanks to the 5 s leeway
    expect((await request(f.app).get('/stamps').set(bearer(subject))).status).toBe(200);
    const res = await exchange(f.app, c, { subject_token: subject, scope: 'notarization:read' });
    if (res.status === 200) {
      // A token must have a positive lifetime: expires_in > 0 and exp after iat.
      expect(res.body.expires_in, JSON.stringify(res.body)).toBeGreaterThan(0);
      const { payload } = decodeJwt(res.body.access_token as string);
      expect(payload.exp as number).toBeGreaterThan(payload.iat as number);
    } else {
      expectOAuthError(res, 400, 'invalid_request');
    }
  });

  it('RFC 8693 §2.2.1 / RFC 6749 §5.1: the token-exchange response carries Cache-Control: no-store and Pragma: no-cache', async () => {
    const { f, c } = await make();
    const subject = await accessToken(f.app, c.clientId, c.secret, 'notarization:read notarization:write');
    const res = await exchange(f.app, c, { subject_token: subject, scope: 'notarization:read' });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(typeof res.body.access_token).toBe('string');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers.pragma).toBe('no-cache');
  });

  it('RFC 8693 §2.1: subject_token_type urn:ietf:params:oauth:token-type:jwt with a subject that is not a JWT (an API token) → 400 invalid_request', async () => {
    const { f, c } = await make();
    const res = await exchange(f.app, c, { subject_token: c.secret, subject_token_type: JWT_TOKEN_TYPE, scope: 'notarization:read' });
    expectOAuthError(res, 400, 'invalid_request');
    expect(res.body.error_description).toContain('subject_token');
    expect(res.body.access_token).toBeUndefined();
    // Controls: the same API token declared as an access token, and a JWT declared as a JWT, pass.
    const asAccessToken = await exchange(f.app, c, { subject_token: c.secret, scope: 'notarization:read' });
    expect(asAccessToken.status, JSON.stringify(asAccessToken.body)).toBe(200);
    const jwt = await accessToken(f.app, c.clientId, c.secret);
    const asJwt = await exchange(f.app, c, { subject_token: jwt, subject_token_type: JWT_TOKEN_TYPE, scope: 'notarization:read' });
    expect(asJwt.status, JSON.stringify(asJwt.body)).toBe(200);
  });

  it('RFC 8693 §2.2.2: a subject_token past its exp beyond the clock tolerance → 400 invalid_request', async () => {
    const t = clock();
    const { f, c } = await make({ accessTokenTtl: 60, advanced: { now: t.now, clockTolerance: 5 } });
    const subject = await accessToken(f.app, c.clientId, c.secret, 'notarization:read notarization:write');
    // An API token of the same app with a short life, as a subject; client authentication uses c's.
    const issued = await f.auth.apps.createToken(c.tenant, c.clientId, { name: 'short', expiresIn: 120 });
    expect((await exchange(f.app, c, { subject_token: subject, scope: 'notarization:read' })).status).toBe(200);
    expect((await exchange(f.app, c, { subject_token: issued.value, scope: 'notarization:read' })).status).toBe(200);

    t.advance(60 + 5 + 1); // past exp and the clock tolerance
    const expiredJwt = await exchange(f.app, c, { subject_token: subject, scope: 'notarization:read' });
    expectOAuthError(expiredJwt, 400, 'invalid_request');
    expect(expiredJwt.body.error_description).toContain('subject_token');

    t.advance(120 - 66 + 1); // past the API token's expiry
    const expiredApiToken = await exchange(f.app, c, { subject_token: issued.value, scope: 'notarization:read' });
    expectOAuthError(expiredApiToken, 400, 'invalid_request');
    expect(expiredApiToken.body.error_description).toContain('subject_token');
    // The client itself still authenticates: the refusals are about the subjects.
    expect((await exchange(f.app, c, { subject_token: c.secret, scope: 'notarization:read' })).status).toBe(200);
  });
});

// ---- RFC 8707: resource indicators / audiences --------------------------------------------------

describe.each(['memory', 'sqlite'] as const)('RFC 8707 resource indicators (%s store)', (store) => {
  /** The host app plus routes for each resource server, and a client holding scopes of each. */
  const make = async () => {
    const f = await fixture({ store, resources: RESOURCES });
    const c = await createClient(f.auth, { scopes: ['notarization:read', 'storage:read', 'storage:write', 'streams:read'] });
    const app = hostApp(f.auth);
    app.get('/objects', f.auth.authenticate({ audience: STORAGE }), f.auth.requireScopes('storage:read'), (req, res) => {
      res.json({ aud: req.auth!.audience });
    });
    app.get('/streams', f.auth.authenticate({ audience: STREAMS }), f.auth.requireScopes('streams:read'), (_req, res) => {
      res.json({ ok: true });
    });
    return { f, c, app };
  };
  const grant = async (app: Express, c: Client, form: Record<string, string>) => {
    const res = await tokenRequest(app, c.clientId, c.secret, form);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body as { access_token: string; scope: string };
  };

  it('RFC 8707 §2: client_credentials with resource → aud = that URI and only the scopes it serves (requested, or by default the client’s)', async () => {
    const { c, app } = await make();
    const byDefault = await grant(app, c, { resource: STORAGE });
    expect(byDefault.scope).toBe('storage:read storage:write');
    expect(decodeJwt(byDefault.access_token).payload).toMatchObject({ aud: STORAGE, scope: 'storage:read storage:write' });

    const requested = await grant(app, c, { resource: STORAGE, scope: 'storage:read' });
    expect(requested.scope).toBe('storage:read');
    expect(decodeJwt(requested.access_token).payload).toMatchObject({ aud: STORAGE, scope: 'storage:read' });

    const streams = await grant(app, c, { resource: STREAMS });
    expect(decodeJwt(streams.access_token).payload).toMatchObject({ aud: STREAMS, scope: 'streams:read' });
  });

  it('RFC 8707 §2: an undeclared resource → 400 invalid_target', async () => {
    const { c, app } = await make();
    const res = await tokenRequest(app, c.clientId, c.secret, { resource: 'https://undeclared.example.test' });
    expectOAuthError(res, 400, 'invalid_target');
    expect(res.body.access_token).toBeUndefined();
  });

  it('RFC 8707 §2 / RFC 6749 §5.2: a scope the resource does not serve → 400 invalid_scope', async () => {
    const { c, app } = await make();
    expectOAuthError(await tokenRequest(app, c.clientId, c.secret, { resource: STORAGE, scope: 'notarization:read' }), 400, 'invalid_scope');
    expectOAuthError(
      await tokenRequest(app, c.clientId, c.secret, { resource: STORAGE, scope: 'storage:read streams:read' }),
      400,
      'invalid_scope',
    );
  });

  it('RFC 8707 §2 / RFC 6749 §3.2: two resource parameters → 400 invalid_request (repeated)', async () => {
    const { c, app } = await make();
    const res = await request(app)
      .post('/oauth/token')
      .auth(encodeURIComponent(c.clientId), encodeURIComponent(c.secret))
      .type('form')
      .send(`grant_type=client_credentials&resource=${encodeURIComponent(STORAGE)}&resource=${encodeURIComponent(STREAMS)}`);
    expectOAuthError(res, 400, 'invalid_request');
    expect(res.body.error_description).toContain('resource');
  });

  it('RFC 8707 §2: without resource the token carries the default audience (the issuer)', async () => {
    const { c, app } = await make();
    const t = await grant(app, c, {});
    expect(decodeJwt(t.access_token).payload.aud).toBe(ISSUER);
    expect(t.scope).toBe('notarization:read storage:read storage:write streams:read');
  });

  it('RFC 8707 §2 / RFC 9068 §4: authenticate({audience}) accepts its tokens and refuses default-audience and other-resource tokens, even when cached by another route', async () => {
    const { c, app } = await make();
    const storage = (await grant(app, c, { resource: STORAGE })).access_token;
    const streams = (await grant(app, c, { resource: STREAMS })).access_token;
    const standard = (await grant(app, c, {})).access_token;

    const ok = await request(app).get('/objects').set(bearer(storage));
    expect(ok.status).toBe(200);
    expect(ok.body.aud).toEqual([STORAGE]);

    // Refused cold…
    expectBearerFailure(await request(app).get('/objects').set(bearer(streams)), 401, 'invalid_token');
    expectBearerFailure(await request(app).get('/objects').set(bearer(standard)), 401, 'invalid_token');
    // …and after each was verified and cached by its own route.
    expect((await request(app).get('/streams').set(bearer(streams))).status).toBe(200);
    expect((await request(app).get('/me').set(bearer(standard))).status).toBe(200);
    expectBearerFailure(await request(app).get('/objects').set(bearer(streams)), 401, 'invalid_token');
    expectBearerFailure(await request(app).get('/objects').set(bearer(standard)), 401, 'invalid_token');
    // The routes that own them still accept them.
    expect((await request(app).get('/streams').set(bearer(streams))).status).toBe(200);
    expect((await request(app).get('/me').set(bearer(standard))).status).toBe(200);
  });

  it('RFC 8707 §2: the default authenticate() refuses a resource token, also once it is cached by its resource route', async () => {
    const { c, app } = await make();
    const storage = (await grant(app, c, { resource: STORAGE })).access_token;
    expectBearerFailure(await request(app).get('/me').set(bearer(storage)), 401, 'invalid_token');
    expect((await request(app).get('/objects').set(bearer(storage))).status).toBe(200);
    expectBearerFailure(await request(app).get('/me').set(bearer(storage)), 401, 'invalid_token');
    expectBearerFailure(await request(app).get('/feeds').set(bearer(storage)), 401, 'invalid_token');
  });

  it('RFC 7662 §4 (deviation D11): a token bound to a declared resource is described as active to any client of its tenant, with aud naming that resource', async () => {
    const { f, c, app } = await make();
    const peer = await createClient(f.auth, { tenant: c.tenant, scopes: ['notarization:read'] });
    const storage = (await grant(app, c, { resource: STORAGE })).access_token;
    const body = await expectActive(app, peer, storage);
    expect(body.aud).toBe(STORAGE);
    expect(body.client_id).toBe(c.clientId);
    // Another tenant still gets nothing.
    const stranger = await createClient(f.auth, { tenant: 'globex', scopes: ['storage:read'] });
    await expectInactive(app, stranger, storage);
  });
});

describe('RFC 8707 resource configuration', () => {
  const base = () => ({ store: createMemoryStore(), issuer: ISSUER, scopes: CATALOGUE });

  it("RFC 8707 §2: authenticate({audience}) for an undeclared audience throws at construction naming audience", () => {
    const auth = createAppTokens({ ...base(), resources: RESOURCES });
    const e = thrown(() => auth.authenticate({ audience: 'https://undeclared.example' }));
    expect(e.code).toBe('invalid_options');
    expect(e.field).toBe('audience');
    expect(e.message).toContain('audience');
    // Declared ones and the default construct fine.
    expect(typeof auth.authenticate({ audience: STORAGE })).toBe('function');
    expect(typeof auth.authenticate({ audience: ISSUER })).toBe('function');
  });

  it('RFC 8707 §2: a resource scope outside the catalogue throws naming resources[0].scopes[i]', () => {
    const e = thrown(() => createAppTokens({ ...base(), resources: [{ id: STORAGE, scopes: ['storage:read', 'storage:delete'] }] }));
    expect(e.code).toBe('invalid_options');
    expect(e.field).toBe('resources[0].scopes[1]');
    expect(e.message).toContain('resources[0].scopes[1]');
  });

  it('RFC 8707 §2: a resource id with a fragment throws invalid_options naming the resource id', () => {
    const e = thrown(() => createAppTokens({ ...base(), resources: [{ id: `${STORAGE}/#frag`, scopes: ['storage:read'] }] }));
    expect(e.code).toBe('invalid_options');
    expect(e.field).toMatch(/^resources(\.0\.|\[0\]\.)id$/);
    expect(e.message).toMatch(/fragment/);
    // A relative reference is not an absolute URI either.
    const relative = thrown(() => createAppTokens({ ...base(), resources: [{ id: '/storage', scopes: ['storage:read'] }] }));
    expect(relative.code).toBe('invalid_options');
  });
});

// ---- key rotation ---------------------------------------------------------------------------------

describe('signing-key rotation', () => {
  /** A second instance on the same SQLite file, with its own host app. */
  async function secondInstance(f: Fixture, now: () => Date) {
    const store = createSqliteStore({ filename: join(f.dir, 'tokens.db') });
    const auth = createAppTokens({
      store,
      issuer: ISSUER,
      scopes: CATALOGUE,
      // No periodic key reload: only the unknown-kid reload can teach it a new key.
      advanced: { revocationSyncInterval: 0, lastUsedFlushInterval: 0, keyReloadInterval: 0, now },
    });
    closers.push(async () => {
      await auth.close();
      await store.close();
    });
    await auth.ready();
    return { auth, app: hostApp(auth) };
  }

  /**
   * Move the clock to the moment the rotated-in key signs. A rotation may pre-publish the new key
   * (in the JWKS before it signs); its `createdAt` is when it takes over, and the old key's
   * `retiredAt` is no later.
   */
  async function untilInForce(store: Store, newKid: string, oldKid: string, t: Clock): Promise<Date> {
    const keys = await store.listSigningKeys();
    const fresh = keys.find((k) => k.kid === newKid);
    const old = keys.find((k) => k.kid === oldKid);
    expect(fresh?.retiredAt).toBeNull();
    expect(old?.retiredAt).toBeInstanceOf(Date);
    expect(old!.retiredAt!.getTime()).toBeLessThanOrEqual(fresh!.createdAt.getTime());
    t.set(Math.max(t.ms, fresh!.createdAt.getTime()) + 1000);
    return old!.retiredAt!;
  }

  it('RFC 7517 §4.5: rotateKeys() returns a new kid and retires the old; new tokens carry the new kid; the JWKS lists both', async () => {
    const t = clock();
    const f = await fixture({ advanced: { now: t.now } });
    const c = await createClient(f.auth);
    const before = await accessToken(f.app, c.clientId, c.secret);
    const oldKid = kidOf(before);
    expect(await jwksKids(f.app)).toEqual([oldKid]);

    const rotated = await f.auth.rotateKeys();
    expect(rotated.kid).not.toBe(oldKid);
    expect(rotated.retired).toEqual([oldKid]);
    // Published at once, whether or not it signs yet.
    expect((await jwksKids(f.app)).sort()).toEqual([oldKid, rotated.kid].sort());

    await untilInForce(f.store, rotated.kid, oldKid, t);
    const after = await accessToken(f.app, c.clientId, c.secret);
    expect(kidOf(after)).toBe(rotated.kid);
    expect((await jwksKids(f.app)).sort()).toEqual([oldKid, rotated.kid].sort());
    expect((await request(f.app).get('/stamps').set(bearer(after))).status).toBe(200);
  });

  it('RFC 9068 §4: a token signed before rotation keeps verifying on this instance (first use after rotation) and after a restart', async () => {
    const t = clock();
    let f = await fixture({ advanced: { now: t.now } });
    const c = await createClient(f.auth);
    const old = await accessToken(f.app, c.clientId, c.secret); // never used before rotation: not cached
    const oldTwin = await accessToken(f.app, c.clientId, c.secret);
    const oldKid = kidOf(old);
    const { kid } = await f.auth.rotateKeys();
    await untilInForce(f.store, kid, oldKid, t);
    expect(kidOf(await accessToken(f.app, c.clientId, c.secret))).toBe(kid);
    expect((await request(f.app).get('/stamps').set(bearer(old))).status).toBe(200);
    expect((await introspect(f.app, c, old)).body.active).toBe(true);

    f = await restart(f);
    expect((await request(f.app).get('/stamps').set(bearer(oldTwin))).status).toBe(200);
    expect(kidOf(await accessToken(f.app, c.clientId, c.secret))).toBe(kid);
    expect((await jwksKids(f.app)).sort()).toEqual([oldKid, kid].sort());
  });

  it('RFC 9068 §4: a second instance started after the rotation on the same file verifies old-kid and new-kid tokens', async () => {
    const t = clock();
    const f = await fixture({ advanced: { now: t.now } });
    const c = await createClient(f.auth);
    const old = await accessToken(f.app, c.clientId, c.secret);
    const { kid } = await f.auth.rotateKeys();
    await untilInForce(f.store, kid, kidOf(old), t);
    const fresh = await accessToken(f.app, c.clientId, c.secret);
    expect(kidOf(fresh)).toBe(kid);

    const b = await secondInstance(f, t.now);
    expect((await request(b.app).get('/stamps').set(bearer(old))).status).toBe(200);
    expect((await request(b.app).get('/stamps').set(bearer(fresh))).status).toBe(200);
    expect(kidOf(await accessToken(b.app, c.clientId, c.secret))).toBe(kid);
  });

  it('RFC 9068 §4: a second instance that loaded its keys before the rotation accepts a new-kid token (unknown-kid reload)', async () => {
    const t = clock();
    const f = await fixture({ advanced: { now: t.now } });
    const c = await createClient(f.auth);
    const old = await accessToken(f.app, c.clientId, c.secret);
    const b = await secondInstance(f, t.now);
    expect((await request(b.app).get('/stamps').set(bearer(old))).status).toBe(200);
    expect(await jwksKids(b.app)).toEqual([kidOf(old)]);

    const { kid } = await f.auth.rotateKeys();
    await untilInForce(f.store, kid, kidOf(old), t);
    const fresh = await accessToken(f.app, c.clientId, c.secret);
    expect(kidOf(fresh)).toBe(kid);
    const res = await request(b.app).get('/stamps').set(bearer(fresh));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect((await jwksKids(b.app)).sort()).toEqual([kidOf(old), kid].sort());
    // Old tokens still verify there too (uncached route result aside, a fresh verification).
    const oldTwin = await accessToken(f.app, c.clientId, c.secret);
    expect((await request(b.app).get('/me').set(bearer(oldTwin))).status).toBe(200);
    expect((await request(b.app).get('/me').set(bearer(old))).status).toBe(200);
  });

  it('RFC 7517 §5: after the retention (ttl + clock tolerance + 2 × keyReloadInterval) a restarted instance no longer publishes the retired kid', async () => {
    const t = clock();
    const options: FixtureOptions = { accessTokenTtl: 60, advanced: { now: t.now, keyReloadInterval: 1000, clockTolerance: 5 } };
    let f = await fixture(options);
    const c = await createClient(f.auth);
    const old = await accessToken(f.app, c.clientId, c.secret);
    const oldKid = kidOf(old);
    const { kid } = await f.auth.rotateKeys();
    const retiredAt = await untilInForce(f.store, kid, oldKid, t);
    const retentionMs = (60 + 5 + (2 * 1000) / 1000) * 1000; // 67 s

    t.set(retiredAt.getTime() + retentionMs - 1000);
    f = await restart(f);
    expect((await jwksKids(f.app)).sort()).toEqual([oldKid, kid].sort());

    t.set(retiredAt.getTime() + retentionMs + 1000); // one second past the retention
    f = await restart(f);
    expect(await jwksKids(f.app)).toEqual([kid]);
    expectBearerFailure(await request(f.app).get('/me').set(bearer(old)), 401, 'invalid_token');
    expect(kidOf(await accessToken(f.app, c.clientId, c.secret))).toBe(kid);
  });

  it('CLI: `rotate-keys` on DATABASE_URL=sqlite:<file> prints {kid, retired}, exits 0, and a restarted server signs with the new kid', async () => {
    const cli = fileURLToPath(new URL('../dist/src/cli.js', import.meta.url));
    expect(existsSync(cli), `${cli} must exist: npm test builds before running vitest (npm run build)`).toBe(true);

    const t = clock();
    let f = await fixture({ advanced: { now: t.now } });
    const c = await createClient(f.auth);
    const old = await accessToken(f.app, c.clientId, c.secret);
    const oldKid = kidOf(old);

    const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: `sqlite:${join(f.dir, 'tokens.db')}` };
    delete env.KEY_ENCRYPTION_SECRET;
    delete env.SIGNING_ALGORITHM;
    const { stdout } = await promisify(execFile)(process.execPath, [cli, 'rotate-keys'], { env, timeout: 30_000 });
    // execFile rejects on a non-zero exit code, so reaching here means exit 0.
    const printed = JSON.parse(stdout.trim()) as { kid: string; retired: string[] };
    expect(printed.kid).toEqual(expect.any(String));
    expect(printed.kid).not.toBe(oldKid);
    expect(printed.retired).toEqual([oldKid]);

    await untilInForce(f.store, printed.kid, oldKid, t);
    f = await restart(f);
    const fresh = await accessToken(f.app, c.clientId, c.secret);
    expect(kidOf(fresh)).toBe(printed.kid);
    expect((await jwksKids(f.app)).sort()).toEqual([oldKid, printed.kid].sort());
    expect((await request(f.app).get('/stamps').set(bearer(old))).status).toBe(200);
    expect((await request(f.app).get('/stamps').set(bearer(fresh))).status).toBe(200);
  });

  it('keyRotationInterval: a signing key that old is rotated automatically on a reload tick', async () => {
    const t = clock();
    // ES256 and a 500 ms tick: key generation never outlasts a tick (see the next test for that case).
    const f = await fixture({ signingAlgorithm: 'ES256', keyRotationInterval: 3600, advanced: { now: t.now, keyReloadInterval: 500 } });
    const c = await createClient(f.auth);
    const oldKid = kidOf(await accessToken(f.app, c.clientId, c.secret));
    await new Promise((r) => setTimeout(r, 1200));
    expect(await jwksKids(f.app)).toEqual([oldKid]); // not due yet

    t.advance(3600 + 1);
    let kids: string[] = [];
    for (let i = 0; i < 100 && kids.length < 2; i++) {
      await new Promise((r) => setTimeout(r, 50));
      kids = await jwksKids(f.app);
    }
    expect(kids).toHaveLength(2);
    const newKid = kids.find((k) => k !== oldKid)!;
    await untilInForce(f.store, newKid, oldKid, t);
    const fresh = await accessToken(f.app, c.clientId, c.secret);
    expect(kidOf(fresh)).toBe(newKid);
    expect((await request(f.app).get('/stamps').set(bearer(fresh))).status).toBe(200);
    expect((await f.store.listSigningKeys()).find((k) => k.kid === oldKid)?.retiredAt).toBeInstanceOf(Date);
  });

  it('keyRotationInterval: a due key is rotated exactly once, even when reload ticks fire while the rotation is in flight', async () => {
    // A store whose rotation takes 300 ms (a slow database, or a slow RSA key generation): reload
    // ticks every 50 ms keep firing while it is in flight.
    const inner = createMemoryStore();
    let rotations = 0;
    const slow = new Proxy(inner, {
      get(target, prop) {
        if (prop === 'rotateSigningKey') {
          return async (...args: Parameters<Store['rotateSigningKey']>) => {
            rotations++;
            await new Promise((r) => setTimeout(r, 300));
            return target.rotateSigningKey(...args);
          };
        }
        const value = Reflect.get(target, prop, target) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const t = clock();
    const auth = createAppTokens({
      store: slow,
      issuer: ISSUER,
      scopes: CATALOGUE,
      signingAlgorithm: 'ES256', // cheap key generation: only the store is slow
      keyRotationInterval: 3600,
      advanced: { now: t.now, keyReloadInterval: 50, revocationSyncInterval: 0, lastUsedFlushInterval: 0 },
    });
    closers.push(async () => {
      await auth.close();
      await new Promise((r) => setTimeout(r, 400)); // let in-flight rotations settle before closing
      await inner.close();
    });
    await auth.ready();
    t.advance(3600 + 1);
    for (let i = 0; i < 100 && (await inner.listSigningKeys()).length < 2; i++) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 1000)); // every rotation started meanwhile has completed
    const keys = await inner.listSigningKeys();
    expect(rotations, `${rotations} rotations were started for one due key`).toBe(1);
    expect(keys).toHaveLength(2);
  });

  it('options: keyRotationInterval below 3600 → createAppTokens throws invalid_options naming it', () => {
    const e = thrown(() =>
      createAppTokens({ store: createMemoryStore(), issuer: ISSUER, scopes: CATALOGUE, keyRotationInterval: 3599 }),
    );
    expect(e.code).toBe('invalid_options');
    expect(e.field).toBe('keyRotationInterval');
    expect(e.message).toContain('"keyRotationInterval"');
    // 3600 itself is accepted.
    expect(() => createAppTokens({ store: createMemoryStore(), issuer: ISSUER, scopes: CATALOGUE, keyRotationInterval: 3600 })).not.toThrow();
  });
});
