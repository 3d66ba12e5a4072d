/**
 * The OpenAPI 3.1 document of `routes()`: it is a valid document (@readme/openapi-parser), it
 * names every route of the HTTP contract, and what the real routers answer — a realistic
 * sequence over HTTP on a SQLite store, errors included — matches the response it documents
 * for that status and media type (ajv, JSON Schema 2020-12), so a route that drifts from its
 * document fails here.
 */
import { validate } from '@readme/openapi-parser';
import express from 'express';
import request, { type Response, type Test } from 'supertest';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isOurPath } from '../src/http/router.js';
import { createAppBody } from '../src/http/routes/create-app.js';
import type { OpenApiDocument } from '../src/index.js';
import { ISSUER, accessToken, createClient, setup, tokenRequest, type Fixture } from './helpers.js';
import { Conformance } from './openapi-conformance.js';

/** The HTTP contract (docs/ARCHITECTURE.md and the management routes), as `METHOD path`. */
const CONTRACT = [
  'GET /.well-known/oauth-authorization-server',
  'GET /.well-known/jwks.json',
  'GET /openapi.json',
  'POST /oauth/token',
  'POST /oauth/introspect',
  'POST /oauth/revoke',
  'POST /tokens/refresh',
  'POST /apps',
  'GET /apps',
  'GET /apps/{id}',
  'PATCH /apps/{id}',
  'DELETE /apps/{id}',
  // Issue 21 item 3: clear an app's lockout.
  'DELETE /apps/{id}/lockout',
  'GET /apps/{id}/tokens',
  'POST /apps/{id}/tokens',
  'POST /apps/{id}/tokens/{tokenId}/regenerate',
  'DELETE /apps/{id}/tokens/{tokenId}',
  'GET /apps/{id}/events',
  'GET /apps/{id}/usage',
  // Issue 14 (the console): who the caller is, and introspection for management principals.
  'GET /me/principal',
  'POST /me/introspect',
  // Issue 13: personal tokens of a host user.
  'GET /me/tokens',
  'POST /me/tokens',
  'DELETE /me/tokens/{tokenId}',
  // Issue 15: public keys of private_key_jwt apps.
  'GET /apps/{id}/keys',
  'POST /apps/{id}/keys',
  'DELETE /apps/{id}/keys/{kid}',
];

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

type Json = Record<string, unknown>;

let f: Fixture;
let doc: OpenApiDocument;

beforeAll(async () => {
  f = await setup({ limits: { tokensPerApp: 2 }, clientLockout: { attempts: 2, window: 300, duration: 900 } });
  doc = f.auth.openapi();
});
afterAll(async () => {
  await f.cleanup();
});

function operations(d: OpenApiDocument): string[] {
  return Object.entries(d.paths).flatMap(([path, item]) =>
    Object.keys(item)
      .filter((m) => METHODS.includes(m))
      .map((m) => `${m.toUpperCase()} ${path}`),
  );
}

describe('the OpenAPI document', () => {
  it('is a valid OpenAPI 3.1 document (@readme/openapi-parser)', async () => {
    const result = await validate(structuredClone(doc) as never);
    expect(result.valid, JSON.stringify(result, null, 2)).toBe(true);
    expect(result.specification).toBe('OpenAPI');
    expect(doc.openapi).toMatch(/^3\.1\.\d+$/);
  });

  it('names every route of the HTTP contract, and nothing else', () => {
    expect(operations(doc).sort()).toEqual([...CONTRACT].sort());
  });

  it('is served at GET /openapi.json, equal to auth.openapi(), with the issuer as its server', async () => {
    const res = await request(f.app).get('/openapi.json');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.body).toEqual(doc);
    expect(doc.servers).toEqual([{ url: ISSUER }]);
    // A copy each call: a host that edits its copy changes neither the next one nor what is served.
    (f.auth.openapi() as Json).info = 'changed';
    expect(f.auth.openapi().info.title).toBe('express-app-tokens');
  });

  it('is one of our paths, and host routes beside it are not shadowed', async () => {
    expect(isOurPath('/openapi.json')).toBe(true);
    for (const path of ['/openapi', '/openapi.jsonx', '/openapi.yaml']) expect(isOurPath(path), path).toBe(false);
    const host = express();
    host.use(f.auth.routes());
    host.get('/openapi.jsonx', (_req, res) => {
      res.json({ host: true });
    });
    expect((await request(host).get('/openapi.jsonx')).body).toEqual({ host: true });
  });

  it('request bodies are the zod schemas that validate them (z.toJSONSchema, 2020-12)', () => {
    const { $schema: _, ...expected } = z.toJSONSchema(createAppBody, { target: 'draft-2020-12', io: 'input' }) as Json;
    const actual = doc.components.schemas.CreateAppRequest!;
    // The nested token input is a component of its own; the rest is what zod writes.
    const { token: _token, ...expectedProps } = expected.properties as Json;
    const { token, ...actualProps } = actual.properties as Json;
    expect(token).toEqual({ $ref: '#/components/schemas/CreateTokenRequest' });
    expect(actualProps).toEqual(expectedProps);
    // Issue 13: scopes and/or roles (the service requires at least one of them non-empty).
    expect(actual.required).toEqual(['name']);
    expect(actual.additionalProperties).toBe(false);
  });

  it('describes the security schemes: HTTP Basic, client_secret_post on the form, bearer for management', () => {
    expect(doc.components.securitySchemes.clientSecretBasic).toMatchObject({ type: 'http', scheme: 'basic' });
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });
    const token = doc.paths['/oauth/token']!.post!;
    expect(token.security).toEqual([{ clientSecretBasic: [] }, {}]);
    for (const form of ['ClientCredentialsForm', 'TokenExchangeForm', 'IntrospectionForm', 'RevocationForm']) {
      expect(Object.keys(doc.components.schemas[form]!.properties as Json), form).toEqual(expect.arrayContaining(['client_id', 'client_secret']));
    }
    expect(doc.paths['/apps']!.post!.security).toEqual([{ bearerAuth: ['apps:write'] }]);
    expect(doc.paths['/apps']!.get!.security).toEqual([{ bearerAuth: ['apps:read'] }]);
  });

  it('documents the download variants on every response that carries a secret value', () => {
    for (const [path, method] of [
      ['/apps', 'post'],
      ['/apps/{id}/tokens', 'post'],
      ['/apps/{id}/tokens/{tokenId}/regenerate', 'post'],
      ['/tokens/refresh', 'post'],
    ] as const) {
      const op = doc.paths[path]![method]!;
      expect(op.parameters, path).toContainEqual({ $ref: '#/components/parameters/Format' });
      const ok = Object.entries(op.responses as Record<string, Json>).find(([s]) => s.startsWith('2'))![1];
      expect(Object.keys(ok.content as Json), path).toEqual(['application/json', 'text/plain']);
      expect(Object.keys(ok.headers as Json), path).toEqual(expect.arrayContaining(['Content-Disposition', 'Cache-Control']));
    }
    expect(doc.components.parameters.Format).toMatchObject({ in: 'query', schema: { enum: ['json', 'env', 'postman'] } });
  });

  it('with management.resolvePrincipal, management operations carry no bearer requirement', async () => {
    const g = await setup({ management: { resolvePrincipal: () => ({ tenantId: 'acme', scopes: ['apps:read', 'apps:write'], actorId: 'u1' }) } });
    try {
      const hosted = g.auth.openapi();
      expect(hosted.paths['/apps']!.get!.security).toBeUndefined();
      expect(hosted.paths['/oauth/token']!.post!.security).toEqual([{ clientSecretBasic: [] }, {}]);
      expect((await validate(structuredClone(hosted) as never)).valid).toBe(true);
    } finally {
      await g.cleanup();
    }
  });
});

// ---- responses against the document -------------------------------------------------------------

let conformance: Conformance;
/** `(METHOD template status)` of every response checked, for the coverage assertion at the end. */
const seen = new Set<string>();

/** The documented path template of a concrete request path. */
function template(path: string): string {
  const match = conformance.template(path);
  expect(match, `${path}: not a path of the document`).toBeDefined();
  return match!;
}

/** Assert that `res` is a response the document describes for its request, and return it. */
async function conforms(test: Test): Promise<Response> {
  const res = await test;
  const req = (res as unknown as { req: { method: string; path: string } }).req;
  conformance ??= new Conformance(doc);
  const path = new URL(req.path, 'http://x').pathname;
  const problem = conformance.violation({ method: req.method, path, status: res.status, headers: res.headers, text: res.text ?? '' });
  expect(problem).toBeUndefined();
  seen.add(`${req.method} ${template(path)} ${res.status}`);
  return res;
}

describe('what the routers answer matches the document', () => {
  let admin: string;
  let appId: string;
  let tokenId: string;
  let secret: string;

  beforeAll(async () => {
    const client = await createClient(f.auth, { scopes: ['apps:read', 'apps:write', 'notarization:*'] });
    admin = await accessToken(f.app, client.clientId, client.secret);
  });
  const authed = (t: Test) => t.set('Authorization', `Bearer ${admin}`);

  it('discovery, the JWK Set and the document itself', async () => {
    await conforms(request(f.app).get('/.well-known/oauth-authorization-server'));
    await conforms(request(f.app).get('/.well-known/jwks.json'));
    await conforms(request(f.app).get('/openapi.json'));
  });

  it('apps: create (JSON, env, postman), list and page, get, patch', async () => {
    const created = await conforms(
      authed(request(f.app).post('/apps')).send({
        name: 'billing',
        description: 'nightly export',
        scopes: ['notarization:read', 'notarization:write'],
        customClaims: { team: 'ops' },
        token: { name: 'ci', expiresIn: 86_400 },
      }),
    );
    expect(created.status).toBe(201);
    appId = created.body.app.id;
    tokenId = created.body.token.id;
    secret = created.body.value;
    const env = await conforms(authed(request(f.app).post('/apps?format=env')).send({ name: 'env app', scopes: ['notarization:read'] }));
    expect(env.headers['content-type']).toMatch(/^text\/plain/);
    expect(env.headers['content-disposition']).toMatch(/^attachment; filename=".+\.env"$/);
    const postman = await conforms(authed(request(f.app).post('/apps?format=postman')).send({ name: 'postman app', scopes: ['notarization:read'] }));
    expect(postman.headers['content-disposition']).toMatch(/\.postman_environment\.json"$/);

    const first = await conforms(authed(request(f.app).get('/apps?limit=1')));
    expect(first.body.nextCursor).toEqual(expect.any(String));
    await conforms(authed(request(f.app).get(`/apps?limit=2&cursor=${encodeURIComponent(first.body.nextCursor)}`)));
    const details = await conforms(authed(request(f.app).get(`/apps/${appId}`)));
    expect(details.body.tokens).toHaveLength(1);
    await conforms(authed(request(f.app).patch(`/apps/${appId}`)).send({ description: null, customClaims: { team: 'finance' } }));
  });

  it('tokens: list, create (JSON, postman), regenerate (JSON, env), delete, and the limit', async () => {
    await conforms(authed(request(f.app).get(`/apps/${appId}/tokens?limit=10`)));
    const second = await conforms(authed(request(f.app).post(`/apps/${appId}/tokens?format=postman`)).send({ name: 'second', scopes: ['notarization:read'] }));
    expect(second.status).toBe(201);
    const limited = await conforms(authed(request(f.app).post(`/apps/${appId}/tokens`)).send({ name: 'third' }));
    expect(limited.body.code).toBe('limit_exceeded');
    const listed = await conforms(authed(request(f.app).get(`/apps/${appId}/tokens`)));
    const other = (listed.body.items as { id: string; name: string }[]).find((t) => t.name === 'second')!;
    const regenerated = await conforms(authed(request(f.app).post(`/apps/${appId}/tokens/${other.id}/regenerate`)));
    const env = await conforms(authed(request(f.app).post(`/apps/${appId}/tokens/${regenerated.body.token.id}/regenerate?format=env`)));
    expect(env.text).toMatch(/^CLIENT_ID='/);
    const remaining = await conforms(authed(request(f.app).get(`/apps/${appId}/tokens`)));
    const last = (remaining.body.items as { id: string; name: string }[]).find((t) => t.name === 'second')!;
    expect((await conforms(authed(request(f.app).delete(`/apps/${appId}/tokens/${last.id}`)))).status).toBe(204);
    const fresh = await conforms(authed(request(f.app).post(`/apps/${appId}/tokens`)).send({ name: 'fourth' }));
    expect(fresh.status).toBe(201);
  });

  it('OAuth: client_credentials (Basic and post), token exchange, introspection, revocation', async () => {
    const granted = await conforms(tokenRequest(f.app, appId, secret, { scope: 'notarization:read notarization:write' }));
    expect(granted.status).toBe(200);
    const jwt = granted.body.access_token as string;
    const post = await conforms(request(f.app).post('/oauth/token').type('form').send({ grant_type: 'client_credentials', client_id: appId, client_secret: secret }));
    expect(post.status).toBe(200);
    const exchanged = await conforms(
      tokenRequest(f.app, appId, secret, {
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: jwt,
        subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
        scope: 'notarization:read',
      }),
    );
    expect(exchanged.body.issued_token_type).toBe('urn:ietf:params:oauth:token-type:access_token');
    const basic = (t: Test) => t.auth(appId, secret).type('form');
    const active = await conforms(basic(request(f.app).post('/oauth/introspect')).send({ token: jwt }));
    expect(active.body.active).toBe(true);
    const inactive = await conforms(basic(request(f.app).post('/oauth/introspect')).send({ token: 'not-a-token' }));
    expect(inactive.body).toEqual({ active: false });
    const revoked = await conforms(basic(request(f.app).post('/oauth/revoke')).send({ token: exchanged.body.access_token }));
    expect(revoked.status).toBe(200);
  });

  it('refresh: JSON and form bodies, and ?format=env', async () => {
    const json = await conforms(request(f.app).post('/tokens/refresh').send({ client_id: appId, grant_type: 'token-exchange', refresh_token: secret, scope: 'openid' }));
    expect(json.status).toBe(200);
    const form = await conforms(
      request(f.app).post('/tokens/refresh?format=env').type('form').send({ client_id: appId, grant_type: 'token-exchange', refresh_token: json.body.value }),
    );
    expect(form.status).toBe(200);
    expect(form.text).toMatch(/CLIENT_SECRET='/);
    const reused = await conforms(request(f.app).post('/tokens/refresh').send({ client_id: appId, grant_type: 'token-exchange', refresh_token: secret }));
    expect(reused.status).toBe(400);
    expect(reused.body.error).toBe('invalid_grant');
  });

  it("issue 21 item 3: the app's lockout state, and clearing it", async () => {
    const shown = await conforms(authed(request(f.app).get(`/apps/${appId}`)));
    expect(Object.keys(shown.body.lockout).sort()).toEqual(['failures', 'lastFailureAt', 'throttledSources', 'until']);
    expect((await conforms(authed(request(f.app).delete(`/apps/${appId}/lockout`)))).status).toBe(204);
    expect((await conforms(authed(request(f.app).delete('/apps/app_doesnotexist0000000000/lockout')))).status).toBe(404);
  });

  it("issue 24: the app's usage series (hourly, per token) and a bad range, as documented", async () => {
    const usage = await conforms(authed(request(f.app).get(`/apps/${appId}/usage?interval=hour&byToken=true`)));
    expect(usage.status).toBe(200);
    expect(Array.isArray(usage.body.series)).toBe(true);
    const bad = await conforms(authed(request(f.app).get(`/apps/${appId}/usage?interval=week`)));
    expect(bad.status).toBe(400);
    expect(bad.body.field).toBe('interval');
  });

  it('events, then deleting the app', async () => {
    const events = await conforms(authed(request(f.app).get(`/apps/${appId}/events?limit=5`)));
    expect(events.body.items.length).toBeGreaterThan(0);
    expect((await conforms(authed(request(f.app).delete(`/apps/${appId}`)))).status).toBe(204);
    expect((await conforms(authed(request(f.app).get(`/apps/${appId}`)))).status).toBe(404);
  });

  it('RFC 9457 problems of the management API: 400, 401, 403, 404, 413, 415', async () => {
    expect((await conforms(authed(request(f.app).post('/apps')).send({ name: 'x', scopes: 'all' }))).status).toBe(400);
    expect((await conforms(authed(request(f.app).post('/apps?format=zip')).send({ name: 'x', scopes: [] }))).status).toBe(400);
    expect((await conforms(request(f.app).get('/apps'))).status).toBe(401);
    expect((await conforms(request(f.app).get('/apps').set('Authorization', 'Bearer nope'))).status).toBe(401);
    const reader = await createClient(f.auth, { scopes: ['notarization:read'] });
    const weak = await accessToken(f.app, reader.clientId, reader.secret);
    const forbidden = await conforms(request(f.app).get('/apps').set('Authorization', `Bearer ${weak}`));
    expect(forbidden.status).toBe(403);
    const granting = await conforms(authed(request(f.app).post('/apps')).send({ name: 'x', scopes: ['storage:read'] }));
    expect(granting.status).toBe(403);
    expect((await conforms(authed(request(f.app).get('/apps/app_doesnotexist0000000000')))).status).toBe(404);
    expect((await conforms(authed(request(f.app).patch('/apps/%%bad')).send({}))).status).toBeLessThan(500);
    const big = await conforms(authed(request(f.app).post('/apps')).send({ name: 'x'.repeat(200_000), scopes: [] }));
    expect(big.status).toBe(413);
    const text = await conforms(authed(request(f.app).post('/apps')).type('text/plain').send('name=x'));
    expect(text.status).toBe(415);
  });

  it('RFC 6749 §5.2 errors of the OAuth endpoints: 400, 401, 415, 429', async () => {
    const victim = await createClient(f.auth, { scopes: ['notarization:read'] });
    expect((await conforms(tokenRequest(f.app, victim.clientId, victim.secret, { grant_type: 'password' }))).status).toBe(400);
    expect((await conforms(request(f.app).post('/oauth/token').type('json').send({ grant_type: 'client_credentials' }))).status).toBe(400);
    const wrong = await conforms(tokenRequest(f.app, victim.clientId, 'eat_wrong'));
    expect(wrong.status).toBe(401);
    expect(wrong.headers['www-authenticate']).toMatch(/^Basic realm=/);
    await conforms(tokenRequest(f.app, victim.clientId, 'eat_wrong'));
    const locked = await conforms(tokenRequest(f.app, victim.clientId, victim.secret));
    expect(locked.status).toBe(429);
    const charset = await conforms(
      request(f.app).post('/oauth/introspect').set('Content-Type', 'application/x-www-form-urlencoded; charset=utf-7').send('token=x'),
    );
    expect(charset.status).toBe(415);
    expect((await conforms(request(f.app).post('/oauth/revoke').type('form').send({ token: 'x' }))).status).toBe(401);
    expect((await conforms(request(f.app).post('/tokens/refresh').send({ client_id: 'x' }))).status).toBe(400);
  });

  it('issue 13: /me/tokens (a host session) and GET /apps?expiringWithin answer as documented', async () => {
    const g = await setup({
      roles: [{ name: 'viewer', scopes: ['notarization:read'] }],
      management: {
        resolvePrincipal: (req) => (req.headers['x-user'] === 'alice' ? { tenantId: 'acme', scopes: ['notarization:read', 'apps:read'], actorId: 'alice' } : null),
        userScopes: () => ['notarization:read', 'apps:read'],
      },
    });
    try {
      const alice = (t: Test) => t.set('X-User', 'alice');
      const created = await conforms(alice(request(g.app).post('/me/tokens')).send({ name: 'laptop', scopes: ['notarization:read'] }));
      expect(created.status).toBe(201);
      expect((await conforms(alice(request(g.app).post('/me/tokens')).send({ scopes: ['storage:read'] }))).status).toBe(403);
      expect((await conforms(alice(request(g.app).post('/me/tokens')).send({ name: 42 }))).status).toBe(400);
      expect((await conforms(alice(request(g.app).get('/me/tokens')))).status).toBe(200);
      expect((await conforms(request(g.app).get('/me/tokens'))).status).toBe(401);
      expect((await conforms(alice(request(g.app).delete(`/me/tokens/tok_nope`)))).status).toBe(404);
      expect((await conforms(alice(request(g.app).delete(`/me/tokens/${created.body.token.id}`)))).status).toBe(204);
      expect((await conforms(alice(request(g.app).get('/apps?expiringWithin=604800')))).status).toBe(200);
      expect((await conforms(alice(request(g.app).get('/apps?expiringWithin=soon')))).status).toBe(400);
      // Issue 14's routes for the console: who the caller is, and introspection confined to its tenant.
      expect((await conforms(alice(request(g.app).get('/me/principal')))).status).toBe(200);
      // Issue 25 item 7: a value that is not a well-formed token says so (it names no tenant).
      expect((await conforms(alice(request(g.app).post('/me/introspect')).send({ token: 'eat_nope' }))).body).toEqual({ active: false, reason: 'malformed' });
    } finally {
      await g.cleanup();
    }
  });

  it('issue 15: a private_key_jwt app and its keys answer as documented', async () => {
    const admin = await createClient(f.auth, { scopes: ['apps:read', 'apps:write', 'notarization:read'] });
    const jwt = await accessToken(f.app, admin.clientId, admin.secret);
    const authed = (t: Test) => t.set('Authorization', `Bearer ${jwt}`);
    const { generateKeyPair, exportJWK } = await import('jose');
    const jwk = async (kid: string) => ({ ...(await exportJWK((await generateKeyPair('ES256', { extractable: true })).publicKey)), kid });
    const created = await conforms(authed(request(f.app).post('/apps')).send({ name: 'signer', scopes: ['notarization:read'], tokenEndpointAuthMethod: 'private_key_jwt', jwks: { keys: [await jwk('a')] } }));
    expect(created.status, created.text).toBe(201);
    const id = created.body.app.id as string;
    expect((await conforms(authed(request(f.app).get(`/apps/${id}/keys`)))).status).toBe(200);
    expect((await conforms(authed(request(f.app).post(`/apps/${id}/keys`)).send({ jwk: await jwk('b') }))).status).toBe(201);
    expect((await conforms(authed(request(f.app).post(`/apps/${id}/keys`)).send({ jwk: await jwk('b') }))).status).toBe(409);
    expect((await conforms(authed(request(f.app).post(`/apps/${id}/keys`)).send({ jwk: { kty: 'oct', k: 'eA' } }))).status).toBe(400);
    expect((await conforms(authed(request(f.app).delete(`/apps/${id}/keys/b`)))).status).toBe(204);
    expect((await conforms(authed(request(f.app).delete(`/apps/${id}/keys/b`)))).status).toBe(404);
  });

  it('every operation of the document was answered successfully at least once above', () => {
    const succeeded = new Set([...seen].filter((s) => /\s2\d\d$/.test(s)).map((s) => s.replace(/\s\d+$/, '')));
    expect([...succeeded].sort()).toEqual([...CONTRACT].sort());
  });
});
