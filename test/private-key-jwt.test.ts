/**
 * Issue 15, part 1: private_key_jwt client authentication (RFC 7523 §2.2 and §3, RFC 7521 §4.2,
 * with the audience rule of draft-ietf-oauth-rfc7523bis). Each door an attacker could try without
 * the private key is a test; every failure is the same 401 invalid_client.
 */
import { generateKeyPairSync, webcrypto } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type JWK } from 'jose';
import request from 'supertest';
import type { Express } from 'express';
import * as client from 'openid-client';
import * as oauth from 'oauth4webapi';
import { afterEach, describe, expect, it } from 'vitest';
import type { AppTokens } from '../src/index.js';
import { CATALOGUE, Clock, ISSUER, decodeJwt, expectBearerFailure, expectOAuthError, expectProblem, postgresInstances, setup, type Fixture } from './helpers.js';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const bearer = (t: string) => ({ Authorization: `Bearer ${t}` });
const now = () => Math.floor(Date.now() / 1000);
let jtiCounter = 0;

interface KeyPair {
  privateKey: webcrypto.CryptoKey;
  jwk: JWK;
  alg: string;
}

async function keyPair(alg: 'ES256' | 'RS256' | 'PS256' | 'EdDSA' = 'ES256', kid = `k-${alg}-${++jtiCounter}`): Promise<KeyPair> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { privateKey: privateKey as webcrypto.CryptoKey, jwk: { ...(await exportJWK(publicKey)), kid, alg }, alg };
}

/** A client assertion of `clientId`, with `change` applied to its claims (undefined deletes one). */
async function assertion(key: KeyPair, clientId: string, change: Record<string, unknown> = {}, header: Record<string, unknown> = {}, audience: unknown = ISSUER): Promise<string> {
  const claims: Record<string, unknown> = { iss: clientId, sub: clientId, aud: audience, iat: now(), exp: now() + 60, jti: `jti-${++jtiCounter}-${Math.random()}`, ...change };
  for (const [k, v] of Object.entries(claims)) if (v === undefined) delete claims[k];
  return new SignJWT(claims).setProtectedHeader({ alg: key.alg, kid: key.jwk.kid, ...header }).sign(key.privateKey);
}

function grant(app: Express, jwt: string, form: Record<string, string> = {}) {
  return request(app)
    .post('/oauth/token')
    .type('form')
    .send({ grant_type: 'client_credentials', client_assertion_type: ASSERTION_TYPE, client_assertion: jwt, ...form });
}

async function adminOf(t: { auth: AppTokens; app: Express }, tenantId = 'acme'): Promise<string> {
  const created = await t.auth.apps.create({ tenantId, name: 'admin', scopes: [...CATALOGUE] });
  const res = await request(t.app).post('/oauth/token').auth(created.app.id, created.value).type('form').send({ grant_type: 'client_credentials' });
  return res.body.access_token as string;
}

async function keyApp(f: { auth: AppTokens }, key: KeyPair, more: Record<string, unknown> = {}) {
  return f.auth.apps.create({ tenantId: 'acme', name: 'signer', scopes: ['notarization:read'], tokenEndpointAuthMethod: 'private_key_jwt', jwks: { keys: [key.jwk] }, ...more });
}

describe('RFC 7523 §2.2: private_key_jwt at the token endpoint', () => {
  it.each(['ES256', 'RS256', 'PS256', 'EdDSA'] as const)('an app registered with a %s public key gets no secret; a signed assertion gets an access token naming the key', async (alg) => {
    const f = await setup();
    closers.push(() => f.cleanup());
    const key = await keyPair(alg);
    const created = await keyApp(f, key);
    expect(created).toMatchObject({ token: null, value: null, app: { tokenEndpointAuthMethod: 'private_key_jwt', jwksUri: null } });
    expect(created.keys).toHaveLength(1);
    expect(created.keys[0]).toMatchObject({ kid: key.jwk.kid, alg, status: 'active' });
    expect(JSON.stringify(created.keys[0]!.jwk)).not.toMatch(/"d"|"p"|"q"/);
    const res = await grant(f.app, await assertion(key, created.app.id));
    expect(res.status, res.text).toBe(200);
    const { payload } = decodeJwt(res.body.access_token);
    expect(payload).toMatchObject({ client_id: created.app.id, sub: created.app.id, scope: 'notarization:read' });
    expect(payload.api_token_id).toMatch(/^key_/);
    expect((await request(f.app).get('/stamps').set(bearer(res.body.access_token))).status).toBe(200);
    // client_id in the form is allowed when it repeats the assertion's iss (RFC 7521 §4.2).
    expect((await grant(f.app, await assertion(key, created.app.id), { client_id: created.app.id })).status).toBe(200);
    // typ client-authentication+jwt (draft-ietf-oauth-rfc7523bis) is accepted.
    expect((await grant(f.app, await assertion(key, created.app.id, {}, { typ: 'client-authentication+jwt' }))).status).toBe(200);
  });

  it('introspection and revocation accept the same client authentication (RFC 7662 §2.1, RFC 7009 §2.1)', async () => {
    const f = await setup();
    closers.push(() => f.cleanup());
    const key = await keyPair();
    const created = await keyApp(f, key);
    const jwt = (await grant(f.app, await assertion(key, created.app.id))).body.access_token as string;
    const introspected = await request(f.app).post('/oauth/introspect').type('form').send({ token: jwt, client_assertion_type: ASSERTION_TYPE, client_assertion: await assertion(key, created.app.id) });
    expect(introspected.body).toMatchObject({ active: true, client_id: created.app.id });
    const revoked = await request(f.app).post('/oauth/revoke').type('form').send({ token: jwt, client_assertion_type: ASSERTION_TYPE, client_assertion: await assertion(key, created.app.id) });
    expect(revoked.status).toBe(200);
    expect((await request(f.app).get('/stamps').set(bearer(jwt))).status).toBe(401);
  });

  describe('refused, each with 401 invalid_client (RFC 6749 §5.2), whatever was wrong', () => {
    let f: Fixture;
    let key: KeyPair;
    let appId: string;
    const refused = async (jwt: string | Promise<string>, form: Record<string, string> = {}) => {
      expectOAuthError(await grant(f.app, await jwt, form), 401, 'invalid_client');
    };

    async function init(): Promise<void> {
      f = await setup({ clientLockout: false });
      closers.push(() => f.cleanup());
      key = await keyPair();
      appId = (await keyApp(f, key)).app.id;
    }

    it('draft-ietf-oauth-rfc7523bis §4 / RFC 7523 §3 item 3: aud other than the issuer as one string: the token endpoint URL, an array (even [issuer]), another issuer, missing', async () => {
      await init();
      await refused(assertion(key, appId, {}, {}, `${ISSUER}/oauth/token`));
      await refused(assertion(key, appId, {}, {}, [ISSUER]));
      await refused(assertion(key, appId, {}, {}, [ISSUER, 'https://other.example']));
      await refused(assertion(key, appId, {}, {}, 'https://other.example'));
      await refused(assertion(key, appId, { aud: undefined }));
    });

    it('RFC 7523 §3 items 4–5: exp missing, past, or more than 5 minutes ahead; iat in the future; exp − iat over 5 minutes', async () => {
      await init();
      await refused(assertion(key, appId, { exp: undefined }));
      await refused(assertion(key, appId, { exp: now() - 60 }));
      await refused(assertion(key, appId, { exp: now() + 3600 }));
      await refused(assertion(key, appId, { iat: now() + 600, exp: now() + 650 }));
      await refused(assertion(key, appId, { iat: now() - 400, exp: now() + 100 }));
      expect((await grant(f.app, await assertion(key, appId, { exp: now() + 290 }))).status).toBe(200);
    });

    it('RFC 7523 §3 items 1–2 / RFC 7521 §4.2: iss ≠ sub, iss another client, client_id ≠ iss, sub missing', async () => {
      await init();
      const other = await keyApp(f, await keyPair());
      await refused(assertion(key, appId, { sub: other.app.id }));
      await refused(assertion(key, other.app.id)); // signed by a key the other client did not register
      await refused(assertion(key, appId), { client_id: other.app.id });
      await refused(assertion(key, appId, { sub: undefined }));
    });

    it('RFC 7523 §3 item 7: jti missing, too long, or replayed (the second use of one assertion)', async () => {
      await init();
      await refused(assertion(key, appId, { jti: undefined }));
      await refused(assertion(key, appId, { jti: 'x'.repeat(300) }));
      const once = await assertion(key, appId);
      expect((await grant(f.app, once)).status).toBe(200);
      await refused(once);
      await refused(once);
    });

    it('RFC 8725 §3.1 / RFC 7518: alg none, HS256 keyed with the public key, another alg than the key’s, an embedded jwk, a crit header, an unknown typ', async () => {
      await init();
      const claims = { iss: appId, sub: appId, aud: ISSUER, exp: now() + 60, jti: `none-${Math.random()}` };
      const none = `${Buffer.from(JSON.stringify({ alg: 'none', kid: key.jwk.kid })).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.`;
      await refused(none);
      const hmac = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: key.jwk.kid }).sign(new TextEncoder().encode(JSON.stringify(key.jwk)));
      await refused(hmac);
      const rsa = await keyPair('RS256', key.jwk.kid as string);
      await refused(assertion(rsa, appId));
      const attacker = await keyPair('ES256', key.jwk.kid as string);
      await refused(assertion(attacker, appId, {}, { jwk: attacker.jwk }));
      // jose refuses to sign a crit header it does not know: sign the bytes with WebCrypto.
      const critHeader = Buffer.from(JSON.stringify({ alg: 'ES256', kid: key.jwk.kid, crit: ['x-ext'], 'x-ext': 1 })).toString('base64url');
      const critClaims = Buffer.from(JSON.stringify({ ...claims, jti: `crit-${Math.random()}` })).toString('base64url');
      const signature = await webcrypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, key.privateKey, new TextEncoder().encode(`${critHeader}.${critClaims}`));
      await refused(`${critHeader}.${critClaims}.${Buffer.from(signature).toString('base64url')}`);
      await refused(assertion(key, appId, {}, { typ: 'at+jwt' }));
    });

    it('a foreign key under the registered kid, an unknown kid, a malformed assertion, an unsupported assertion type', async () => {
      await init();
      const attacker = await keyPair('ES256', key.jwk.kid as string);
      await refused(assertion(attacker, appId));
      await refused(assertion(await keyPair('ES256', 'not-registered'), appId));
      await refused('not.a.jwt');
      await refused('a'.repeat(9000));
      expectOAuthError(await grant(f.app, await assertion(key, appId), { client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:saml2-bearer' }), 401, 'invalid_client');
    });

    it('RFC 6749 §2.3: one method per request; a secret cannot authenticate a private_key_jwt app, nor an assertion a secret app', async () => {
      await init();
      const jwt = await assertion(key, appId);
      expectOAuthError(await grant(f.app, jwt, { client_secret: 'eat_x' }), 400, 'invalid_request');
      expectOAuthError(await request(f.app).post('/oauth/token').auth(appId, 'eat_x').type('form').send({ grant_type: 'client_credentials', client_assertion_type: ASSERTION_TYPE, client_assertion: jwt }), 400, 'invalid_request');
      expectOAuthError(await request(f.app).post('/oauth/token').type('form').send({ grant_type: 'client_credentials', client_assertion: jwt }), 400, 'invalid_request');
      expectOAuthError(await request(f.app).post('/oauth/token').type('form').send({ grant_type: 'client_credentials', client_assertion_type: ASSERTION_TYPE }), 400, 'invalid_request');
      const secretApp = await f.auth.apps.create({ tenantId: 'acme', name: 'secret', scopes: ['notarization:read'] });
      await refused(assertion(key, secretApp.app.id));
      // The secret app's own token cannot be replayed against the key app either.
      expectOAuthError(await request(f.app).post('/oauth/token').auth(appId, secretApp.value).type('form').send({ grant_type: 'client_credentials' }), 401, 'invalid_client');
    });
  });

  it('RFC 6749 §2.3.1: failed assertions throttle their source only, never the client named by the unverified iss: the right assertion from another source gets a token', async () => {
    const f = await setup({ clientLockout: { attempts: 3, sourceAttempts: 5, window: 300, duration: 900 } });
    closers.push(() => f.cleanup());
    f.app.set('trust proxy', true);
    const key = await keyPair();
    const { app } = await keyApp(f, key);
    const from = (source: string, jwt: string) => grant(f.app, jwt).set('X-Forwarded-For', source);
    // Past the per-client threshold (3), below the per-source one (5): the iss is not a key, nothing is throttled.
    for (let i = 0; i < 4; i++) expect((await from('198.51.100.30', await assertion(key, app.id, { aud: 'https://x.example' }))).status).toBe(401);
    expect((await from('198.51.100.30', await assertion(key, app.id))).status).toBe(200);
    // Past the per-source threshold: that source is refused (429 with Retry-After), whatever it sends.
    expect((await from('198.51.100.30', await assertion(key, app.id, { aud: 'https://x.example' }))).status).toBe(401);
    const refused = await from('198.51.100.30', await assertion(key, app.id));
    expect(refused.status).toBe(429);
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    // The holder of the key, from anywhere else, is served.
    expect((await from('192.0.2.30', await assertion(key, app.id))).status).toBe(200);
    expect((await f.auth.apps.get('acme', app.id)).lockout).toMatchObject({ failures: 0, throttledSources: 0 });
  });
});

describe('no derived value opens a private_key_jwt client (issue 11 finding 1, extended)', () => {
  it('the key id, kid, thumbprint, public JWK, JWK Set, app id or another tenant’s assertion, as client_secret or client_assertion → 401 invalid_client', async () => {
    const f = await setup({ clientLockout: false });
    closers.push(() => f.cleanup());
    const key = await keyPair();
    const created = await keyApp(f, key);
    const view = created.keys[0]!;
    const stored = (await f.store.listClientKeys('acme', created.app.id))[0]!;
    const derived = [stored.id, view.kid, view.thumbprint, JSON.stringify(view.jwk), JSON.stringify({ keys: [view.jwk] }), created.app.id, stored.jwk];
    for (const value of derived) {
      expectOAuthError(await request(f.app).post('/oauth/token').auth(created.app.id, value).type('form').send({ grant_type: 'client_credentials' }), 401, 'invalid_client');
      expectOAuthError(await grant(f.app, value), 401, 'invalid_client');
      expectOAuthError(await grant(f.app, value, { client_id: created.app.id }), 401, 'invalid_client');
    }
    // A key app gets no secret (409), and a token that reached the store anyway authenticates nothing.
    const admin = await adminOf(f);
    expectProblem(await request(f.app).post(`/apps/${created.app.id}/tokens`).set(bearer(admin)).send({}), 409, 'conflict', 'id');
    const { hashSecret, SecretCodec } = await import('../src/core/secrets.js');
    const planted = new SecretCodec('eat').generate();
    expect(hashSecret(planted.value)).toBe(planted.hash);
    await f.store.createApiToken({ id: 'tok_planted000000000000000', appId: created.app.id, tenantId: 'acme', name: 'x', hash: planted.hash, hint: planted.hint, scopes: null, createdAt: new Date(), expiresAt: null, lastUsedAt: null, revokedAt: null, revokedReason: null, replacedBy: null });
    expectOAuthError(await request(f.app).post('/oauth/token').auth(created.app.id, planted.value).type('form').send({ grant_type: 'client_credentials' }), 401, 'invalid_client');
    // An assertion another tenant's client signed correctly names only that client.
    const otherKey = await keyPair();
    const other = await f.auth.apps.create({ tenantId: 'globex', name: 'theirs', scopes: ['notarization:read'], tokenEndpointAuthMethod: 'private_key_jwt', jwks: { keys: [otherKey.jwk] } });
    expectOAuthError(await grant(f.app, await assertion(otherKey, created.app.id)), 401, 'invalid_client');
    expectOAuthError(await grant(f.app, await assertion(otherKey, other.app.id), { client_id: created.app.id }), 401, 'invalid_client');
    const theirs = await grant(f.app, await assertion(otherKey, other.app.id));
    expect(theirs.status).toBe(200);
    expect(decodeJwt(theirs.body.access_token).payload.tenant_id).toBe('globex');
  });
});

describe('keys are credentials: /apps/:id/keys', () => {
  it('GET lists, POST adds a JWK or a PEM (with expiry), DELETE kills every access token minted with the key at once', async () => {
    const clock = new Clock();
    const f = await setup({ advanced: { now: clock.now } });
    closers.push(() => f.cleanup());
    const admin = await adminOf(f);
    const first = await keyPair();
    const { app } = await keyApp(f, first);
    const second = await keyPair('RS256');
    const { publicKey: pemPublic, privateKey: pemPrivate } = await generateKeyPair('ES256', { extractable: true });
    const pem = await exportSPKI(pemPublic);
    const added = await request(f.app).post(`/apps/${app.id}/keys`).set(bearer(admin)).send({ jwk: second.jwk });
    expect(added.status, added.text).toBe(201);
    expect(added.body).toMatchObject({ kid: second.jwk.kid, alg: 'RS256', status: 'active', expirationDate: null });
    const fromPem = await request(f.app).post(`/apps/${app.id}/keys`).set(bearer(admin)).send({ pem, kid: 'pem-key', expiresIn: 120 });
    expect(fromPem.status, fromPem.text).toBe(201);
    expect(fromPem.body).toMatchObject({ kid: 'pem-key', alg: 'ES256' });
    const listed = await request(f.app).get(`/apps/${app.id}/keys`).set(bearer(admin));
    expect(listed.body.items.map((k: { kid: string }) => k.kid).sort()).toEqual([first.jwk.kid, second.jwk.kid, 'pem-key'].sort());

    const pemKey: KeyPair = { privateKey: pemPrivate as webcrypto.CryptoKey, jwk: { kid: 'pem-key' }, alg: 'ES256' };
    const sign = (k: KeyPair) => {
      const claims = { iss: app.id, sub: app.id, aud: ISSUER, iat: Math.floor(clock.t / 1000), exp: Math.floor(clock.t / 1000) + 60, jti: `j${Math.random()}` };
      return new SignJWT(claims).setProtectedHeader({ alg: k.alg, kid: k.jwk.kid }).sign(k.privateKey);
    };
    const viaSecond = (await grant(f.app, await sign(second))).body.access_token as string;
    const viaFirst = (await grant(f.app, await sign(first))).body.access_token as string;
    expect((await grant(f.app, await sign(pemKey))).status).toBe(200);

    expect((await request(f.app).delete(`/apps/${app.id}/keys/${encodeURIComponent(second.jwk.kid!)}`).set(bearer(admin))).status).toBe(204);
    expectBearerFailure(await request(f.app).get('/stamps').set(bearer(viaSecond)), 401, 'invalid_token');
    expect((await request(f.app).get('/stamps').set(bearer(viaFirst))).status).toBe(200);
    expectOAuthError(await grant(f.app, await sign(second)), 401, 'invalid_client');
    expectProblem(await request(f.app).delete(`/apps/${app.id}/keys/${encodeURIComponent(second.jwk.kid!)}`).set(bearer(admin)), 404, 'not_found', 'kid');

    // The PEM key expires after 120 s.
    clock.advance(121);
    expectOAuthError(await grant(f.app, await sign(pemKey)), 401, 'invalid_client');
    expect((await request(f.app).get(`/apps/${app.id}/keys`).set(bearer(admin))).body.items.find((k: { kid: string }) => k.kid === 'pem-key').status).toBe('expired');
  });

  it('bad keys → 400 naming the field: a private member, an HMAC key, RSA under 2048 bits, a wrong alg; no secret app gets keys; a duplicate kid and the limit → 409', async () => {
    const f = await setup({ limits: { keysPerApp: 2 } });
    closers.push(() => f.cleanup());
    const admin = await adminOf(f);
    const create = (body: object) => request(f.app).post('/apps').set(bearer(admin)).send({ name: 'k', scopes: ['notarization:read'], tokenEndpointAuthMethod: 'private_key_jwt', ...body });
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const priv = await exportJWK(privateKey);
    expectProblem(await create({ jwks: { keys: [priv] } }), 400, 'validation_failed', 'jwks.keys[0]');
    expectProblem(await create({ jwks: { keys: [{ kty: 'oct', k: 'c2VjcmV0' }] } }), 400, 'validation_failed', 'jwks.keys[0]');
    // jose will not make one: node:crypto will.
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
    expectProblem(await create({ jwks: { keys: [small] } }), 400, 'validation_failed', 'jwks.keys[0]');
    const ec = await keyPair();
    expectProblem(await create({ jwks: { keys: [{ ...ec.jwk, alg: 'RS256' }] } }), 400, 'validation_failed', 'jwks.keys[0].alg');
    expectProblem(await create({ jwks: { keys: [{ ...ec.jwk, alg: 'HS256' }] } }), 400, 'validation_failed', 'jwks.keys[0].alg');
    expectProblem(await create({ jwks: { keys: [] } }), 400, 'validation_failed', 'jwks.keys');
    expectProblem(await create({}), 400, 'validation_failed', 'jwks');
    expectProblem(await create({ jwks: { keys: [ec.jwk] }, jwksUri: 'https://client.example/jwks' }), 400, 'validation_failed', 'jwks');
    expectProblem(await create({ jwks: { keys: [ec.jwk] }, token: { name: 'x' } }), 400, 'validation_failed', 'token');
    expectProblem(await create({ jwksUri: 'http://client.example/jwks' }), 400, 'validation_failed', 'jwksUri');
    expectProblem(await create({ jwksUri: 'https://127.0.0.1/jwks' }), 400, 'validation_failed', 'jwksUri');
    expectProblem(await create({ jwksUri: 'https://localhost/jwks' }), 400, 'validation_failed', 'jwksUri');
    expectProblem(await request(f.app).post('/apps?format=env').set(bearer(admin)).send({ name: 'k', scopes: ['notarization:read'], tokenEndpointAuthMethod: 'private_key_jwt', jwks: { keys: [ec.jwk] } }), 400, 'validation_failed', 'format');
    expectProblem(await request(f.app).post('/apps').set(bearer(admin)).send({ name: 'k', scopes: ['notarization:read'], jwks: { keys: [ec.jwk] } }), 400, 'validation_failed', 'jwks');

    const ok = await create({ jwks: { keys: [ec.jwk] } });
    expect(ok.status, ok.text).toBe(201);
    const id = ok.body.app.id as string;
    expectProblem(await request(f.app).post(`/apps/${id}/keys`).set(bearer(admin)).send({ jwk: ec.jwk }), 409, 'conflict', 'kid');
    expect((await request(f.app).post(`/apps/${id}/keys`).set(bearer(admin)).send({ jwk: (await keyPair()).jwk })).status).toBe(201);
    expectProblem(await request(f.app).post(`/apps/${id}/keys`).set(bearer(admin)).send({ jwk: (await keyPair()).jwk }), 409, 'limit_exceeded', 'limits.keysPerApp');
    expectProblem(await request(f.app).post(`/apps/${id}/keys`).set(bearer(admin)).send({ jwk: priv }), 400, 'validation_failed', 'jwk');
    expectProblem(await request(f.app).post(`/apps/${id}/keys`).set(bearer(admin)).send({ pem: '-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----' }), 400, 'validation_failed', 'pem');
    expectProblem(await request(f.app).post(`/apps/${id}/keys`).set(bearer(admin)).send({}), 400, 'validation_failed', 'jwk');
    const secretApp = await f.auth.apps.create({ tenantId: 'acme', name: 's', scopes: ['notarization:read'] });
    expectProblem(await request(f.app).post(`/apps/${secretApp.app.id}/keys`).set(bearer(admin)).send({ jwk: (await keyPair()).jwk }), 409, 'conflict', 'id');
  });

  it('tenants never see each other’s keys; adding or deleting a key needs every scope the app holds (403)', async () => {
    const f = await setup();
    closers.push(() => f.cleanup());
    const key = await keyPair();
    const { app } = await keyApp(f, key, { scopes: ['storage:read'] });
    const other = await adminOf(f, 'globex');
    expectProblem(await request(f.app).get(`/apps/${app.id}/keys`).set(bearer(other)), 404, 'not_found', 'id');
    expectProblem(await request(f.app).delete(`/apps/${app.id}/keys/${key.jwk.kid}`).set(bearer(other)), 404, 'not_found', 'id');
    const narrow = await f.auth.apps.create({ tenantId: 'acme', name: 'narrow', scopes: ['apps:read', 'apps:write', 'notarization:read'] });
    const jwt = (await request(f.app).post('/oauth/token').auth(narrow.app.id, narrow.value).type('form').send({ grant_type: 'client_credentials' })).body.access_token;
    expectProblem(await request(f.app).post(`/apps/${app.id}/keys`).set(bearer(jwt)).send({ jwk: (await keyPair()).jwk }), 403, 'forbidden', 'scopes');
    expectProblem(await request(f.app).delete(`/apps/${app.id}/keys/${key.jwk.kid}`).set(bearer(jwt)), 403, 'forbidden', 'scopes');
    expect((await request(f.app).get(`/apps/${app.id}/keys`).set(bearer(jwt))).status).toBe(200);
  });
});

describe('jwksUri: the client publishes its keys', () => {
  async function jwksServer(): Promise<{ url: string; keys: JWK[]; hits: () => number; close: () => Promise<void> }> {
    const keys: JWK[] = [];
    let hits = 0;
    const server: Server = createServer((_req, res) => {
      hits++;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`,
      keys,
      hits: () => hits,
      close: () => new Promise<void>((r) => server.close(() => r())),
    };
  }

  it('assertions verify against the fetched set; a rotated-in kid is refetched; a foreign key is refused', async () => {
    const jwks = await jwksServer();
    closers.push(jwks.close);
    const f = await setup({ clientJwks: { allowPrivateAddresses: true } });
    closers.push(() => f.cleanup());
    const first = await keyPair();
    jwks.keys.push(first.jwk);
    const created = await f.auth.apps.create({ tenantId: 'acme', name: 'published', scopes: ['notarization:read'], tokenEndpointAuthMethod: 'private_key_jwt', jwksUri: jwks.url });
    expect(created.app.jwksUri).toBe(jwks.url);
    expect((await grant(f.app, await assertion(first, created.app.id))).status).toBe(200);
    expect((await grant(f.app, await assertion(first, created.app.id))).status).toBe(200);
    expect(jwks.hits()).toBe(1); // cached
    const rotated = await keyPair();
    jwks.keys.push(rotated.jwk);
    expect((await grant(f.app, await assertion(rotated, created.app.id))).status).toBe(200);
    expect(jwks.hits()).toBe(2);
    // An unknown kid again within the refetch interval: no second fetch, refused.
    expectOAuthError(await grant(f.app, await assertion(await keyPair(), created.app.id)), 401, 'invalid_client');
    expect(jwks.hits()).toBe(2);
    await expect(f.auth.apps.addKey('acme', created.app.id, { jwk: rotated.jwk })).rejects.toMatchObject({ code: 'conflict' });
  });

  it('without allowPrivateAddresses a loopback jwksUri is refused at creation, and a name resolving to a private address is never fetched', async () => {
    const f = await setup();
    closers.push(() => f.cleanup());
    await expect(
      f.auth.apps.create({ tenantId: 'acme', name: 'ssrf', scopes: ['notarization:read'], tokenEndpointAuthMethod: 'private_key_jwt', jwksUri: 'https://127.0.0.1:9/jwks' }),
    ).rejects.toMatchObject({ code: 'validation_failed', field: 'jwksUri' });
    // localtest.me-style names are not needed: "localhost" is refused by name, and a DNS answer is checked at connect time.
    const { isPrivateAddress } = await import('../src/core/remote-jwks.js');
    for (const a of ['127.0.0.1', '10.1.2.3', '172.16.0.1', '192.168.1.1', '169.254.169.254', '::1', 'fe80::1', 'fd00::1', '::ffff:10.0.0.1', '100.64.0.1', '0.0.0.0']) {
      expect(isPrivateAddress(a), a).toBe(true);
    }
    for (const a of ['8.8.8.8', '1.1.1.1', '2606:4700:4700::1111']) expect(isPrivateAddress(a), a).toBe(false);
  });
});

describe('replays are refused by every instance as one (RFC 7523 §3 item 7), and a deleted key dies on every instance', () => {
  it('two instances on one PostgreSQL: an assertion used at A is refused at B; a key deleted at A kills its access tokens at B', async () => {
    const pg = await postgresInstances(2);
    closers.push(() => pg.close());
    const [a, b] = pg.apps as [Express, Express];
    const key = await keyPair();
    const created = await pg.instances[0]!.apps.create({ tenantId: 'acme', name: 'k', scopes: ['notarization:read'], tokenEndpointAuthMethod: 'private_key_jwt', jwks: { keys: [key.jwk] } });
    const once = await assertion(key, created.app.id);
    const results = await Promise.all([grant(a, once), grant(b, once), grant(a, once), grant(b, once)]);
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
    for (const r of results) if (r.status !== 200) expectOAuthError(r, 401, 'invalid_client');
    const jwt = (await grant(a, await assertion(key, created.app.id))).body.access_token as string;
    expect((await request(b).get('/stamps').set(bearer(jwt))).status).toBe(200);
    await pg.instances[0]!.apps.deleteKey('acme', created.app.id, key.jwk.kid!);
    await expect.poll(async () => (await request(b).get('/stamps').set(bearer(jwt))).status, { timeout: 5000 }).toBe(401);
  });
});

describe('interop over a listening server: openid-client PrivateKeyJwt and oauth4webapi', () => {
  it('both get tokens with private_key_jwt and call a protected route', async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const f = await setup({ issuer });
    server.on('request', f.app);
    closers.push(async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await f.cleanup();
    });
    const key = await keyPair('ES256');
    const created = await keyApp(f, key);
    const config = await client.discovery(new URL(issuer), created.app.id, undefined, client.PrivateKeyJwt({ key: key.privateKey, kid: key.jwk.kid }), {
      algorithm: 'oauth2',
      execute: [client.allowInsecureRequests],
    });
    expect(config.serverMetadata().token_endpoint_auth_methods_supported).toContain('private_key_jwt');
    const tokens = await client.clientCredentialsGrant(config, { scope: 'notarization:read' });
    expect((await fetch(`${issuer}/stamps`, { headers: { authorization: `Bearer ${tokens.access_token}` } })).status).toBe(200);

    const as = await oauth.processDiscoveryResponse(new URL(issuer), await oauth.discoveryRequest(new URL(issuer), { algorithm: 'oauth2', [oauth.allowInsecureRequests]: true }));
    const response = await oauth.clientCredentialsGrantRequest(as, { client_id: created.app.id }, oauth.PrivateKeyJwt({ key: key.privateKey, kid: key.jwk.kid }), new URLSearchParams({ scope: 'notarization:read' }), {
      [oauth.allowInsecureRequests]: true,
    });
    const result = await oauth.processClientCredentialsResponse(as, { client_id: created.app.id }, response);
    expect((await fetch(`${issuer}/stamps`, { headers: { authorization: `Bearer ${result.access_token}` } })).status).toBe(200);
  });
});
