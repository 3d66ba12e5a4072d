/**
 * Issue 21, items 1, 5 and 6, each pinned on memory, SQLite and PostgreSQL where the store is involved:
 *
 * 1. A retiring credential (regenerated with a grace period) never yields a new one (RFC 9700
 *    §4.14.2): no refresh, no second regeneration, atomically; and nothing derived from it
 *    (client_credentials, token exchange) outlives its deadline.
 * 5. Every mint, token exchange included, is within the user's live scopes and the app's current roles.
 * 6. An app registered with `dpopBoundAccessTokens` gets nothing through a Bearer door: its API
 *    token is refused with a DPoP challenge (RFC 9449 §7.1) on `authenticate()` routes and the
 *    management API, also from the cache.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Express } from 'express';
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import request, { type Response } from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import type { AppTokens, AppTokensOptions, Principal } from '../src/index.js';
import {
  CATALOGUE,
  Clock,
  ISSUER,
  accessToken,
  decodeJwt,
  expectOAuthError,
  expectProblem,
  postgresInstances,
  setup,
  tokenRequest,
} from './helpers.js';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

const bearer = (t: string) => ({ Authorization: `Bearer ${t}` });
const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const KINDS = ['memory', 'sqlite', 'postgresql'] as const;
type Kind = (typeof KINDS)[number];

interface Target {
  auth: AppTokens;
  app: Express;
}

/** One instance on a fresh store of `kind`, closed after the test. */
async function instance(kind: Kind, options: Partial<Omit<AppTokensOptions, 'store'>> = {}): Promise<Target> {
  if (kind === 'postgresql') {
    const pg = await postgresInstances(1, options);
    closers.push(pg.close);
    return { auth: pg.instances[0]!, app: pg.apps[0]! };
  }
  const f = await setup({ ...options, store: kind });
  closers.push(() => f.cleanup());
  return { auth: f.auth, app: f.app };
}

function refresh(app: Express, clientId: string, value: string) {
  return request(app).post('/tokens/refresh').send({ client_id: clientId, grant_type: 'token-exchange', refresh_token: value, scope: 'openid' });
}

function regenerate(app: Express, admin: string, appId: string, tokenId: string, body: object) {
  return request(app).post(`/apps/${appId}/tokens/${tokenId}/regenerate`).set(bearer(admin)).send(body);
}

/** RFC 8693 token exchange, the client authenticated with `secret` (client_secret_basic). */
function exchange(app: Express, clientId: string, secret: string, subject: string, form: Record<string, string> = {}) {
  return request(app)
    .post('/oauth/token')
    .auth(encodeURIComponent(clientId), encodeURIComponent(secret))
    .type('form')
    .send({ grant_type: EXCHANGE, subject_token: subject, subject_token_type: ACCESS_TOKEN_TYPE, ...form });
}

const expOf = (jwt: string) => decodeJwt(jwt).payload.exp as number;

/** A tenant admin (every catalogue scope) and an app whose token is rotated, on a controllable clock. */
async function rotationFixture(kind: Kind) {
  const clock = new Clock();
  const t = await instance(kind, { advanced: { now: clock.now } });
  const root = await t.auth.apps.create({ tenantId: 'acme', name: 'admin', scopes: [...CATALOGUE] });
  const target = await t.auth.apps.create({
    tenantId: 'acme',
    name: 'rotating',
    scopes: ['notarization:read', 'notarization:write'],
    token: { expiresIn: 30 * 86_400 },
  });
  return { clock, t, admin: await accessToken(t.app, root.app.id, root.value), appId: target.app.id, tokenId: target.token.id, value: target.value };
}

describe.each(KINDS)('issue 21 item 1: a retiring credential never yields a new one (%s)', (kind) => {
  it('RFC 9700 §4.14.2: the old value of a token regenerated with a grace period cannot be refreshed (400 invalid_grant saying it is retiring); the app lists one active token, and the old value dies at the deadline', async () => {
    const { clock, t, admin, appId, tokenId, value } = await rotationFixture(kind);
    const regenerated = await regenerate(t.app, admin, appId, tokenId, { gracePeriod: 3 });
    expect(regenerated.status, regenerated.text).toBe(200);
    const refused = await refresh(t.app, appId, value);
    expectOAuthError(refused, 400, 'invalid_grant');
    expect(refused.body.error_description).toMatch(/retiring/);
    expect(JSON.stringify(refused.body)).not.toContain(value);
    const listed = await request(t.app).get(`/apps/${appId}/tokens`).set(bearer(admin));
    expect(listed.body.items.map((i: { id: string; status: string }) => [i.id, i.status]).sort()).toEqual(
      [
        [tokenId, 'retiring'],
        [regenerated.body.token.id, 'active'],
      ].sort(),
    );
    const events = await t.auth.apps.events('acme', appId);
    expect(events.items.find((e) => e.type === 'token.refresh_refused')).toMatchObject({ tokenId, outcome: 'failure', data: { reason: 'retiring' } });
    clock.advance(4);
    expect((await tokenRequest(t.app, appId, value)).status).toBe(401);
    expect((await request(t.app).get('/stamps').set(bearer(value))).status).toBe(401);
    expect((await tokenRequest(t.app, appId, regenerated.body.value)).status).toBe(200);
  });

  it('a retiring token cannot be regenerated again, also by two regenerations at once: exactly one new value, the other 409 conflict naming tokenId', async () => {
    const { t, admin, appId, tokenId } = await rotationFixture(kind);
    const both = await Promise.all([
      regenerate(t.app, admin, appId, tokenId, { gracePeriod: 60 }),
      regenerate(t.app, admin, appId, tokenId, { gracePeriod: 60 }),
    ]);
    expect(both.map((r) => r.status).sort()).toEqual([200, 409]);
    const body = expectProblem(both.find((r) => r.status === 409)!, 409, 'conflict', 'tokenId');
    expect(body.detail).toMatch(/retiring/);
    await expect(t.auth.apps.regenerateToken('acme', appId, tokenId, { gracePeriod: 0 })).rejects.toMatchObject({ code: 'conflict', field: 'tokenId' });
    const listed = await request(t.app).get(`/apps/${appId}/tokens`).set(bearer(admin));
    expect(listed.body.items).toHaveLength(2);
  });

  it('a refresh racing a grace-period regeneration of the same token: exactly one of them yields a new credential', async () => {
    const { t, admin, appId, tokenId, value } = await rotationFixture(kind);
    const [refreshed, regenerated] = await Promise.all([refresh(t.app, appId, value), regenerate(t.app, admin, appId, tokenId, { gracePeriod: 60 })]);
    expect([refreshed.status, regenerated.status].filter((s) => s === 200), `${refreshed.text} ${regenerated.text}`).toHaveLength(1);
    // The loser is refused as what it is: a refresh of a retiring token, or a regeneration of a revoked one.
    if (refreshed.status === 200) expectProblem(regenerated, 404, 'not_found', 'tokenId');
    else expectOAuthError(refreshed, 400, 'invalid_grant');
    const listed = await request(t.app).get(`/apps/${appId}/tokens`).set(bearer(admin));
    expect(listed.body.items.filter((i: { status: string }) => i.status === 'active')).toHaveLength(1);
  });

  it('token exchange: an access token derived from a retiring token never outlives the deadline (subject minted from it, or the client authenticated with it), and dies then', async () => {
    const { clock, t, admin, appId, tokenId, value } = await rotationFixture(kind);
    const before = await accessToken(t.app, appId, value);
    expect(expOf(before)).toBeGreaterThan(Math.floor(clock.t / 1000) + 3000);
    const regenerated = await regenerate(t.app, admin, appId, tokenId, { gracePeriod: 30 });
    expect(regenerated.status).toBe(200);
    const deadline = Math.floor(clock.t / 1000) + 30;
    const fresh = regenerated.body.value as string;
    // The subject was minted from the retiring token before the regeneration (exp an hour away).
    const fromSubject = await exchange(t.app, appId, fresh, before, { scope: 'notarization:read' });
    expect(fromSubject.status, fromSubject.text).toBe(200);
    expect(expOf(fromSubject.body.access_token)).toBeLessThanOrEqual(deadline);
    expect(fromSubject.body.expires_in).toBeLessThanOrEqual(30);
    // The client authenticates with the retiring value; the subject comes from the new one.
    const fromClient = await exchange(t.app, appId, value, await accessToken(t.app, appId, fresh), { scope: 'notarization:read' });
    expect(fromClient.status, fromClient.text).toBe(200);
    expect(expOf(fromClient.body.access_token)).toBeLessThanOrEqual(deadline);
    // The retiring API token itself as the subject (RFC 8693 allows an API token here): the same bound.
    const apiSubject = await exchange(t.app, appId, fresh, value, { scope: 'notarization:read' });
    expect(apiSubject.status, apiSubject.text).toBe(200);
    expect(expOf(apiSubject.body.access_token)).toBeLessThanOrEqual(deadline);
    // client_credentials with the retiring value: the same bound.
    expect(expOf(await accessToken(t.app, appId, value))).toBeLessThanOrEqual(deadline);
    expect((await request(t.app).get('/stamps').set(bearer(fromSubject.body.access_token))).status).toBe(200);
    clock.advance(31);
    expect((await request(t.app).get('/stamps').set(bearer(fromSubject.body.access_token))).status).toBe(401);
    expect((await exchange(t.app, appId, fresh, before)).status).toBe(400);
  });
});

describe('issue 21 item 1: across instances (PostgreSQL)', () => {
  it('an instance holding a cached copy of the client from before the regeneration mints nothing past the deadline (the deadline reached it with the tombstone)', async () => {
    const clock = new Clock();
    const pg = await postgresInstances(2, { advanced: { now: clock.now, clientCacheTtl: 60 } });
    closers.push(pg.close);
    const a = pg.instances[0]!;
    const appB = pg.apps[1]!;
    const target = await a.apps.create({ tenantId: 'acme', name: 'rotating', scopes: ['notarization:read'], token: { expiresIn: 30 * 86_400 } });
    // B authenticates the client once: it now holds the token record (expiry 30 days away) for a minute.
    expect(expOf(await accessToken(appB, target.app.id, target.value))).toBeGreaterThan(Math.floor(clock.t / 1000) + 3000);
    await a.apps.regenerateToken('acme', target.app.id, target.token.id, { gracePeriod: 30 });
    const deadline = Math.floor(clock.t / 1000) + 30;
    // The tombstone travels by NOTIFY: give it the time a message takes (bounded; then the assertion decides).
    let exp = Infinity;
    for (let i = 0; i < 40 && exp > deadline; i++) {
      exp = expOf(await accessToken(appB, target.app.id, target.value));
      if (exp > deadline) await new Promise((r) => setTimeout(r, 50));
    }
    expect(exp).toBeLessThanOrEqual(deadline);
  });
});

/** The host's users, mutable as the host's own records would be. */
class Users {
  readonly scopes = new Map<string, string[]>([['alice', ['notarization:read', 'notarization:write']]]);
  readonly resolvePrincipal = (req: IncomingMessage): Principal | null => {
    const user = req.headers['x-user'];
    const scopes = typeof user === 'string' ? this.scopes.get(user) : undefined;
    return typeof user === 'string' && scopes ? { tenantId: 'acme', scopes, actorId: user } : null;
  };
  readonly userScopes = (tenantId: string, userId: string): string[] | null => (tenantId === 'acme' ? (this.scopes.get(userId) ?? null) : null);
  options(): Pick<AppTokensOptions, 'management'> {
    return { management: { resolvePrincipal: this.resolvePrincipal, userScopes: this.userScopes, userScopesCacheTtl: 0 } };
  }
}

describe.each(KINDS)('issue 21 item 5: every mint is within the live user scopes and current roles (%s)', (kind) => {
  it('RFC 8693: a token exchange with a personal token cannot mint a scope the host took from the user since the subject was minted (explicit: 400 invalid_scope; default: narrowed)', async () => {
    const users = new Users();
    const t = await instance(kind, users.options());
    const created = await request(t.app).post('/me/tokens').set('X-User', 'alice').send({ name: 'laptop', scopes: ['notarization:read', 'notarization:write'] });
    expect(created.status, created.text).toBe(201);
    const { clientId, value } = created.body as { clientId: string; value: string };
    const subject = await accessToken(t.app, clientId, value, 'notarization:read notarization:write');
    users.scopes.set('alice', ['notarization:read']);
    // The baseline the issue names: client_credentials refuses the scope taken away.
    expectOAuthError(await tokenRequest(t.app, clientId, value, { scope: 'notarization:write' }), 400, 'invalid_scope');
    expectOAuthError(await exchange(t.app, clientId, value, subject, { scope: 'notarization:write' }), 400, 'invalid_scope');
    expectOAuthError(await exchange(t.app, clientId, value, subject, { scope: 'notarization:read notarization:write' }), 400, 'invalid_scope');
    const narrowed = await exchange(t.app, clientId, value, subject);
    expect(narrowed.status, narrowed.text).toBe(200);
    expect(narrowed.body.scope).toBe('notarization:read');
    expect(decodeJwt(narrowed.body.access_token).payload.scope).toBe('notarization:read');
    expect((await request(t.app).post('/stamps').set(bearer(narrowed.body.access_token))).status).toBe(403);
    // Nothing left of the subject's scopes: refused, not an empty token.
    users.scopes.set('alice', ['storage:read']);
    expectOAuthError(await exchange(t.app, clientId, value, subject), 400, 'invalid_scope');
  });
});

describe('issue 21 item 5: roles (SQLite, restarted with a narrower role)', () => {
  it('a token exchange after the host narrowed a role mints only what the role grants now', async () => {
    const editor = (scopes: string[]) => ({ roles: [{ name: 'editor', scopes }] });
    const f = await setup(editor(['notarization:read', 'notarization:write']));
    let cleanup = () => f.cleanup();
    closers.push(() => cleanup());
    const created = await f.auth.apps.create({ tenantId: 'acme', name: 'editor app', roles: ['editor'] });
    const subject = await accessToken(f.app, created.app.id, created.value!, 'notarization:read notarization:write');
    const restarted = await f.restart(editor(['notarization:read']));
    cleanup = () => restarted.cleanup();
    expectOAuthError(await exchange(restarted.app, created.app.id, created.value!, subject, { scope: 'notarization:write' }), 400, 'invalid_scope');
    const narrowed = await exchange(restarted.app, created.app.id, created.value!, subject);
    expect(narrowed.status, narrowed.text).toBe(200);
    expect(narrowed.body.scope).toBe('notarization:read');
  });
});

// ---- item 6 ----------------------------------------------------------------------------------------

interface DpopKey {
  privateKey: CryptoKey;
  jwk: JWK;
  jkt: string;
}

async function dpopKey(): Promise<DpopKey> {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = await exportJWK(publicKey);
  return { privateKey, jwk, jkt: await calculateJwkThumbprint(jwk) };
}

/** A DPoP proof (RFC 9449 §4.2) for the token endpoint. */
function tokenProof(key: DpopKey): Promise<string> {
  return new SignJWT({ htm: 'POST', htu: `${ISSUER}/oauth/token`, iat: Math.floor(Date.now() / 1000), jti: randomUUID() })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: key.jwk })
    .sign(key.privateKey);
}

/** RFC 9449 §7.1: 401, `invalid_token`, and a `DPoP` challenge naming the algorithms. */
function expectDpopChallenge(res: Response): void {
  expect(res.status, res.text).toBe(401);
  const challenge = String(res.headers['www-authenticate'] ?? '');
  expect(challenge).toMatch(/(^|, )DPoP (error="invalid_token", error_description="[^"]+", )?algs="[^"]+"/);
}

describe.each(KINDS)('issue 21 item 6: an app bound to DPoP gets nothing through a Bearer door (%s)', (kind) => {
  it('RFC 9449 §7.1: its API token as Bearer on an authenticate() route → 401 with the DPoP challenge, every time (the cached path too) and whatever the scheme’s case; an unbound app’s still passes', async () => {
    const t = await instance(kind);
    const bound = await t.auth.apps.create({ tenantId: 'acme', name: 'bound', scopes: ['notarization:read'], dpopBoundAccessTokens: true });
    const plain = await t.auth.apps.create({ tenantId: 'acme', name: 'plain', scopes: ['notarization:read'] });
    expect((await request(t.app).get('/stamps').set(bearer(plain.value))).status).toBe(200);
    for (const scheme of ['Bearer', 'Bearer', 'bearer', 'BEARER']) {
      const res = await request(t.app).get('/stamps').set('Authorization', `${scheme} ${bound.value}`);
      expectDpopChallenge(res);
      expect(res.body.error).toBe('invalid_token');
      expect(res.text).not.toContain(bound.value);
    }
    // The repeats above went through the middleware's cached fast path first: nothing was cached to serve.
    // The door it is meant to use still opens: a DPoP-bound access token with a proof.
    const key = await dpopKey();
    const minted = await tokenRequest(t.app, bound.app.id, bound.value).set('DPoP', await tokenProof(key));
    expect(minted.status, minted.text).toBe(200);
    expect(minted.body.token_type).toBe('DPoP');
  });

  it('RFC 9449 §7.1: its API token as Bearer on the management API → 401 problem with the DPoP challenge, though the app holds apps:write', async () => {
    const t = await instance(kind);
    const bound = await t.auth.apps.create({ tenantId: 'acme', name: 'bound admin', scopes: ['apps:read', 'apps:write'], dpopBoundAccessTokens: true });
    for (let i = 0; i < 2; i++) {
      const listed = await request(t.app).get('/apps').set(bearer(bound.value));
      expectProblem(listed, 401, 'invalid_token');
      expectDpopChallenge(listed);
    }
    const create = await request(t.app).post('/apps').set(bearer(bound.value)).send({ name: 'x', scopes: ['apps:read'] });
    expectProblem(create, 401, 'invalid_token');
    expectDpopChallenge(create);
  });

  it('its API token is not a DPoP-bound credential either (Authorization: DPoP → 401), and introspects as inactive', async () => {
    const t = await instance(kind);
    const bound = await t.auth.apps.create({ tenantId: 'acme', name: 'bound', scopes: ['notarization:read'], dpopBoundAccessTokens: true });
    const dpop = await request(t.app).get('/stamps').set('Authorization', `DPoP ${bound.value}`);
    expectDpopChallenge(dpop);
    const introspected = await request(t.app)
      .post('/oauth/introspect')
      .auth(encodeURIComponent(bound.app.id), encodeURIComponent(bound.value))
      .type('form')
      .send({ token: bound.value });
    expect(introspected.status, introspected.text).toBe(200);
    expect(introspected.body).toEqual({ active: false });
  });
});
