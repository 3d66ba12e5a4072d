/**
 * The management routes the console added (issue 14): `GET /me/principal` (who the caller is) and
 * `POST /me/introspect` (introspection for a management principal, tenant-confined). Every
 * response is also checked against the OpenAPI document by the fixture.
 */
import { validate } from '@readme/openapi-parser';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { accessToken, createClient, expectProblem, setup, type Fixture } from './helpers.js';

let f: Fixture | undefined;
afterEach(async () => {
  await f?.cleanup();
  f = undefined;
});

const bearer = (jwt: string) => ({ Authorization: `Bearer ${jwt}` });

describe('GET /me/principal', () => {
  it('names the tenant, the actor and the scopes of a bearer caller, with the declared roles', async () => {
    f = await setup();
    const admin = await createClient(f.auth, { scopes: ['apps:read', 'storage:read'] });
    const res = await request(f.app).get('/me/principal').set(bearer(await accessToken(f.app, admin.clientId, admin.secret)));
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toEqual({ tenantId: 'acme', actorId: admin.clientId, scopes: ['apps:read', 'storage:read'], roles: expect.any(Array) });
  });

  it('needs apps:read (403 with the Bearer challenge) and a token (401)', async () => {
    f = await setup();
    const plain = await createClient(f.auth, { scopes: ['storage:read'] });
    const refused = await request(f.app).get('/me/principal').set(bearer(await accessToken(f.app, plain.clientId, plain.secret)));
    expectProblem(refused, 403, 'insufficient_scope');
    expect(refused.headers['www-authenticate']).toMatch(/^Bearer realm="[^"]+", error="insufficient_scope", .*scope="apps:read"/);
    const anonymous = await request(f.app).get('/me/principal');
    expectProblem(anonymous, 401, 'missing_token');
    expect(anonymous.headers['www-authenticate']).toMatch(/^Bearer realm=/);
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
    for (const token of [foreignJwt, foreign.secret, 'garbage', `${subjectJwt.slice(0, -2)}xx`]) {
      expect((await ask(token)).body, token.slice(0, 12)).toEqual({ active: false });
    }
    await f.auth.apps.deleteToken('acme', subject.clientId, subject.tokenId);
    expect((await ask(subjectJwt)).body).toEqual({ active: false });
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
    expect(ok.body).toEqual({ active: false });
  });
});

describe('the OpenAPI document', () => {
  it('documents GET /me/principal and POST /me/introspect, and stays a valid document', async () => {
    f = await setup();
    const doc = f.auth.openapi();
    expect(doc.paths['/me/principal']?.get).toMatchObject({ operationId: 'getPrincipal', security: [{ bearerAuth: ['apps:read'] }] });
    expect(doc.paths['/me/introspect']?.post).toMatchObject({ operationId: 'introspectAsPrincipal', requestBody: { required: true } });
    const result = await validate(structuredClone(doc) as never);
    expect(result.valid, JSON.stringify(result)).toBe(true);
  });
});
