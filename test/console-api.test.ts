/**
 * The management routes the console added (issue 14): `GET /me/principal` (who the caller is) and
 * `POST /me/introspect` (introspection for a management principal, tenant-confined). Every
 * response is also checked against the OpenAPI document by the fixture.
 */
import type { IncomingMessage } from 'node:http';
import { validate } from '@readme/openapi-parser';
import { generateKeyPair, SignJWT } from 'jose';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import type { Principal } from '../src/index.js';
import { accessToken, Clock, createClient, decodeJwt, expectProblem, ISSUER, mistype, ourSigningKey, setup, type Fixture } from './helpers.js';

let f: Fixture | undefined;
afterEach(async () => {
  await f?.cleanup();
  f = undefined;
});

const bearer = (jwt: string) => ({ Authorization: `Bearer ${jwt}` });
/** A JWT whose signature no longer matches (its first signature character changed). */
const tamper = (jwt: string) => {
  const i = jwt.lastIndexOf('.') + 1;
  return `${jwt.slice(0, i)}${jwt[i] === 'A' ? 'B' : 'A'}${jwt.slice(i + 1)}`;
};

describe('GET /me/principal', () => {
  it('names the tenant, the actor and the scopes of a bearer caller, with the declared roles', async () => {
    f = await setup();
    const admin = await createClient(f.auth, { scopes: ['apps:read', 'storage:read'] });
    const res = await request(f.app).get('/me/principal').set(bearer(await accessToken(f.app, admin.clientId, admin.secret)));
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toEqual({ tenantId: 'acme', actorId: admin.clientId, scopes: ['apps:read', 'storage:read'], roles: expect.any(Array) });
  });

  it('issue 25 item 5: any signed-in caller reads its own principal (no apps:read needed), the declared roles only with apps:read; no token is 401', async () => {
    f = await setup();
    const plain = await createClient(f.auth, { scopes: ['storage:read'] });
    const own = await request(f.app).get('/me/principal').set(bearer(await accessToken(f.app, plain.clientId, plain.secret)));
    expect(own.status).toBe(200);
    expect(own.headers['cache-control']).toBe('no-store');
    // Exactly itself: no roles (what an app may be given is about other things).
    expect(own.body).toEqual({ tenantId: 'acme', actorId: plain.clientId, scopes: ['storage:read'] });
    const anonymous = await request(f.app).get('/me/principal');
    expectProblem(anonymous, 401, 'missing_token');
    expect(anonymous.headers['www-authenticate']).toMatch(/^Bearer realm=/);
  });

  it('issue 25 item 5: a host user without apps:read is named with the scopes it holds, and nothing else', async () => {
    f = await setup({ management: { resolvePrincipal: () => ({ tenantId: 'acme', scopes: ['storage:read', 'streams:*'], actorId: 'carol' }) } });
    const res = await request(f.app).get('/me/principal');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ tenantId: 'acme', actorId: 'carol', scopes: ['storage:read', 'streams:*'] });
    // Still nothing about the tenant's apps.
    expectProblem(await request(f.app).get('/apps'), 403, 'insufficient_scope');
  });

  it('answers a host principal, null scopes meaning unrestricted', async () => {
    f = await setup({ management: { resolvePrincipal: () => ({ tenantId: 'acme', scopes: null, actorId: 'root' }) } });
    const res = await request(f.app).get('/me/principal');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ tenantId: 'acme', actorId: 'root', scopes: null });
  });

  it('leaves /me itself to the host', async () => {
    f = await setup();
    const admin = await createClient(f.auth, { scopes: ['apps:read'] });
    const res = await request(f.app).get('/me').set(bearer(await accessToken(f.app, admin.clientId, admin.secret)));
    expect(res.status).toBe(200);
    expect(res.body.clientId).toBe(admin.clientId);
  });
});

describe('POST /me/introspect', () => {
  it("describes an active token of the caller's tenant, and nothing else (RFC 7662 §2.2: {active:false})", async () => {
    f = await setup();
    const admin = await createClient(f.auth, { scopes: ['apps:read'] });
    const jwt = await accessToken(f.app, admin.clientId, admin.secret);
    const subject = await createClient(f.auth, { scopes: ['storage:read'] });
    const subjectJwt = await accessToken(f.app, subject.clientId, subject.secret);
    const foreign = await createClient(f.auth, { tenant: 'globex', scopes: ['storage:read'] });
    const foreignJwt = await accessToken(f.app, foreign.clientId, foreign.secret);
    const ask = (token: string) => request(f!.app).post('/me/introspect').set(bearer(jwt)).send({ token });

    const active = await ask(subjectJwt);
    expect(active.status).toBe(200);
    expect(active.headers['cache-control']).toBe('no-store');
    expect(active.body).toMatchObject({ active: true, client_id: subject.clientId, scope: 'storage:read', tenant_id: 'acme', api_token_id: subject.tokenId });
    expect((await ask(subject.secret)).body).toMatchObject({ active: true, client_id: subject.clientId });
    for (const token of [foreignJwt, foreign.secret]) {
      expect((await ask(token)).body, token.slice(0, 12)).toEqual({ active: false });
    }
    // Issue 25 item 7: what the string itself shows is said (it names no tenant).
    expect((await ask('garbage')).body).toEqual({ active: false, reason: 'malformed' });
    expect((await ask(tamper(subjectJwt))).body).toEqual({ active: false, reason: 'invalid_signature' });
    await f.auth.apps.deleteToken('acme', subject.clientId, subject.tokenId);
    expect((await ask(subjectJwt)).body).toEqual({ active: false, reason: 'revoked' });
  });

  it("issue 25 item 7: says why a token of the caller's tenant is not active (expired, revoked, app deleted)", async () => {
    const clock = new Clock();
    f = await setup({ advanced: { now: clock.now } });
    const fx = f;
    const token = async (tenant: string) => {
      const c = await createClient(fx.auth, { tenant, scopes: ['storage:read'], expiresIn: 3600 });
      return { ...c, jwt: await accessToken(fx.app, c.clientId, c.secret) };
    };
    const live = await token('acme');
    const revoked = await token('acme');
    const gone = await token('acme');
    await f.auth.apps.deleteToken('acme', revoked.clientId, revoked.tokenId);
    await f.auth.apps.delete('acme', gone.clientId);
    const admin = await createClient(f.auth, { scopes: ['apps:read'], expiresIn: 86_400 });
    const ask = async (value: string) =>
      (await request(fx.app).post('/me/introspect').set(bearer(await accessToken(fx.app, admin.clientId, admin.secret))).send({ token: value })).body as unknown;

    expect(await ask(live.jwt)).toMatchObject({ active: true });
    expect(await ask(revoked.jwt)).toEqual({ active: false, reason: 'revoked' });
    expect(await ask(revoked.secret)).toEqual({ active: false, reason: 'revoked' });
    expect(await ask(gone.jwt)).toEqual({ active: false, reason: 'app_deleted' });
    // Signed by our key for this tenant, but for another issuer.
    const key = await ourSigningKey(fx.store);
    const { header, payload } = decodeJwt(live.jwt);
    const otherIssuer = await new SignJWT({ ...payload, iss: 'https://elsewhere.example' }).setProtectedHeader(header as never).sign(key);
    expect(await ask(otherIssuer)).toEqual({ active: false, reason: 'other_issuer' });

    clock.advance(2 * 3600);
    expect(await ask(live.jwt)).toEqual({ active: false, reason: 'expired' });
    expect(await ask(live.secret)).toEqual({ active: false, reason: 'expired' });
  });

  it("issue 25 item 7: no oracle across tenants — another tenant's token, expired, revoked, of a deleted app or live, is exactly {active: false}", async () => {
    const clock = new Clock();
    f = await setup({ advanced: { now: clock.now } });
    const fx = f;
    const token = async (tenant: string) => {
      const c = await createClient(fx.auth, { tenant, scopes: ['storage:read'], expiresIn: 3600 });
      return { ...c, jwt: await accessToken(fx.app, c.clientId, c.secret) };
    };
    const live = await token('globex');
    const expiring = await token('globex');
    const revoked = await token('globex');
    const gone = await token('globex');
    await f.auth.apps.deleteToken('globex', revoked.clientId, revoked.tokenId);
    await f.auth.apps.delete('globex', gone.clientId);
    const admin = await createClient(f.auth, { scopes: ['apps:read'], expiresIn: 86_400 });
    const ask = async (value: string) =>
      (await request(fx.app).post('/me/introspect').set(bearer(await accessToken(fx.app, admin.clientId, admin.secret))).send({ token: value })).body as unknown;

    const key = await ourSigningKey(fx.store);
    const { header, payload } = decodeJwt(live.jwt);
    const otherIssuer = await new SignJWT({ ...payload, iss: 'https://elsewhere.example' }).setProtectedHeader(header as never).sign(key);
    for (const value of [live.jwt, live.secret, revoked.jwt, revoked.secret, gone.jwt, gone.secret, otherIssuer]) {
      expect(await ask(value), value.slice(0, 16)).toEqual({ active: false });
    }
    clock.advance(2 * 3600);
    for (const value of [expiring.jwt, expiring.secret, revoked.jwt, revoked.secret, gone.jwt]) {
      expect(await ask(value), value.slice(0, 16)).toEqual({ active: false });
    }
  });

  it('issue 25 item 7: a JWT of no key of ours, of another issuer, or malformed says so without naming a tenant; the RFC 7662 endpoint stays {active: false}', async () => {
    f = await setup();
    const admin = await createClient(f.auth, { scopes: ['apps:read'] });
    const jwt = await accessToken(f.app, admin.clientId, admin.secret);
    const ask = async (value: string) => (await request(f!.app).post('/me/introspect').set(bearer(jwt)).send({ token: value })).body as unknown;
    const { privateKey } = await generateKeyPair('RS256');
    const { payload } = decodeJwt(jwt);
    const foreignKey = await new SignJWT(payload).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: 'not-ours' }).sign(privateKey);
    const foreignIssuer = await new SignJWT({ ...payload, iss: 'https://login.elsewhere.example' }).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: 'theirs' }).sign(privateKey);
    expect(await ask(foreignKey)).toEqual({ active: false, reason: 'unknown_key' });
    expect(await ask(foreignIssuer)).toEqual({ active: false, reason: 'other_issuer' });
    expect(await ask('not.a.jwt')).toEqual({ active: false, reason: 'malformed' });
    expect(await ask(mistype(admin.secret))).toEqual({ active: false, reason: 'malformed' });
    // RFC 7662 §2.2 at /oauth/introspect: exactly {active: false}, whatever the reason.
    for (const value of [foreignKey, foreignIssuer, 'not.a.jwt', mistype(admin.secret)]) {
      const res = await request(f.app).post('/oauth/introspect').auth(admin.clientId, admin.secret).type('form').send({ token: value });
      expect(res.body).toEqual({ active: false });
    }
    await f.auth.apps.deleteToken('acme', admin.clientId, admin.tokenId);
    const other = await createClient(f.auth, { scopes: ['apps:read'] });
    const res = await request(f.app).post('/oauth/introspect').auth(other.clientId, other.secret).type('form').send({ token: jwt });
    expect(res.body).toEqual({ active: false });
  });

  it('refuses a bad body with a clear 4xx naming the field', async () => {
    f = await setup();
    const admin = await createClient(f.auth, { scopes: ['apps:read'] });
    const jwt = await accessToken(f.app, admin.clientId, admin.secret);
    expectProblem(await request(f.app).post('/me/introspect').set(bearer(jwt)).send({}), 400, 'validation_failed', 'token');
    expectProblem(await request(f.app).post('/me/introspect').set(bearer(jwt)).send({ token: 5 }), 400, 'validation_failed', 'token');
    expectProblem(await request(f.app).post('/me/introspect').set(bearer(jwt)).send({ token: 'x', extra: 1 }), 400, 'validation_failed', 'extra');
    expectProblem(await request(f.app).post('/me/introspect').set(bearer(jwt)).send({ token: 'x'.repeat(9000) }), 400, 'validation_failed', 'token');
    expectProblem(await request(f.app).post('/me/introspect').set(bearer(jwt)).type('form').send('token=x'), 415, 'unsupported_media_type');
    expectProblem(await request(f.app).get('/me/introspect').set(bearer(jwt)), 405, 'method_not_allowed');
  });

  it('with a host session requires application/json (the CSRF defence)', async () => {
    f = await setup({ management: { resolvePrincipal: () => ({ tenantId: 'acme', scopes: ['apps:read'], actorId: 'u1' }) } });
    expectProblem(await request(f.app).post('/me/introspect').set('Content-Type', 'text/plain').send('{"token":"x"}'), 415, 'unsupported_media_type');
    const ok = await request(f.app).post('/me/introspect').send({ token: 'x' });
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual({ active: false, reason: 'malformed' });
  });
});

describe('issue 25 item 5: in host-session mode every audit event names the user who acted', () => {
  it('app and token events carry the host user as actorId, and so do personal-token events and refusals', async () => {
    const users: Record<string, Principal> = {
      alice: { tenantId: 'acme', scopes: ['apps:read', 'apps:write', 'storage:read'], actorId: 'alice' },
      carol: { tenantId: 'acme', scopes: ['storage:read'], actorId: 'carol' },
    };
    const resolvePrincipal = (req: IncomingMessage) => users[String(req.headers['x-user'])] ?? null;
    const seen: Array<{ type: string; appId: string | null; actorId: string | null }> = [];
    f = await setup({ management: { resolvePrincipal, userScopes: (_t, user) => users[user]?.scopes ?? null }, onEvent: (e) => seen.push(e) });
    const as = (user: string) => ({ 'X-User': user });
    const created = await request(f.app).post('/apps').set(as('alice')).send({ name: 'by alice', scopes: ['storage:read'] });
    expect(created.status).toBe(201);
    const appId = created.body.app.id as string;
    await request(f.app).patch(`/apps/${appId}`).set(as('alice')).send({ description: 'edited' }).expect(200);
    const issued = await request(f.app).post(`/apps/${appId}/tokens`).set(as('alice')).send({ name: 'second' });
    expect(issued.status).toBe(201);
    await request(f.app).delete(`/apps/${appId}/tokens/${issued.body.token.id}`).set(as('alice')).expect(204);
    // carol may not read it: the refusal is recorded as hers.
    expectProblem(await request(f.app).get(`/apps/${appId}`).set(as('carol')), 403, 'insufficient_scope');
    const events = await request(f.app).get(`/apps/${appId}/events`).set(as('alice'));
    expect(events.status).toBe(200);
    const items = events.body.items as Array<{ type: string; actorId: string | null }>;
    expect(items.length).toBeGreaterThanOrEqual(4);
    expect(new Set(items.filter((e) => e.type !== 'management.refused').map((e) => e.actorId))).toEqual(new Set(['alice']));
    const refusal = (await f.auth.apps.events('acme', appId)).items.filter((e) => e.actorId === 'carol');
    expect(refusal.length).toBeGreaterThan(0);

    const personal = await request(f.app).post('/me/tokens').set(as('carol')).send({ name: 'laptop', scopes: ['storage:read'] });
    expect(personal.status).toBe(201);
    await request(f.app).delete(`/me/tokens/${personal.body.token.id}`).set(as('carol')).expect(204);
    const mine = seen.filter((e) => e.appId === personal.body.clientId);
    expect(mine.map((e) => e.type)).toEqual(expect.arrayContaining(['token.created', 'token.deleted']));
    expect(new Set(mine.map((e) => e.actorId))).toEqual(new Set(['carol']));
    // Nothing the host users did is recorded without them.
    expect(seen.filter((e) => e.type !== 'token.expiring').every((e) => e.actorId === 'alice' || e.actorId === 'carol')).toBe(true);
  });
});

describe('the OpenAPI document', () => {
  it('documents GET /me/principal and POST /me/introspect, and stays a valid document', async () => {
    f = await setup();
    const doc = f.auth.openapi();
    // Issue 25 item 5: any bearer of ours, about itself.
    expect(doc.paths['/me/principal']?.get).toMatchObject({ operationId: 'getPrincipal', security: [{ bearerAuth: [] }] });
    expect(doc.paths['/me/introspect']?.post).toMatchObject({ operationId: 'introspectAsPrincipal', requestBody: { required: true } });
    const result = await validate(structuredClone(doc) as never);
    expect(result.valid, JSON.stringify(result)).toBe(true);
  });
});
