import express from 'express';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { isOurPath } from '../src/http/router.js';
import request from 'supertest';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ISSUER,
  accessToken,
  createClient,
  decodeJwt,
  expectOAuthError,
  mistype,
  setup,
  tokenRequest,
  type Fixture,
} from './helpers.js';

let f: Fixture;
let client: Awaited<ReturnType<typeof createClient>>;

beforeEach(async () => {
  f = await setup();
  client = await createClient(f.auth, { customClaims: { plan: 'pro', region: 'eu' } });
});
afterEach(async () => {
  await f.cleanup();
});

const pctEncodeAll = (s: string) =>
  [...Buffer.from(s)].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('');

describe('client authentication', () => {
  it('RFC 6749 §2.3.1: client_secret_basic issues a token', async () => {
    const res = await tokenRequest(f.app, client.clientId, client.secret);
    expect(res.status).toBe(200);
    expect(res.body.token_type).toBe('Bearer');
  });

  it('RFC 6749 §2.3.1: Basic credentials are form-url-decoded before use', async () => {
    const basic = Buffer.from(`${pctEncodeAll(client.clientId)}:${pctEncodeAll(client.secret)}`).toString('base64');
    const res = await request(f.app)
      .post('/oauth/token')
      .set('Authorization', `Basic ${basic}`)
      .type('form')
      .send({ grant_type: 'client_credentials' });
    expect(res.status).toBe(200);
  });

  it('RFC 6749 §2.3.1: a Basic value with broken percent-encoding is invalid_client with a Basic challenge', async () => {
    const basic = Buffer.from(`%zz:${client.secret}`).toString('base64');
    const res = await request(f.app)
      .post('/oauth/token')
      .set('Authorization', `Basic ${basic}`)
      .type('form')
      .send({ grant_type: 'client_credentials' });
    expectOAuthError(res, 401, 'invalid_client');
    expect(res.headers['www-authenticate']).toMatch(/^Basic realm=/);
  });

  it('RFC 6749 §2.3.1: client_secret_post issues a token', async () => {
    const res = await request(f.app)
      .post('/oauth/token')
      .type('form')
      .send({ grant_type: 'client_credentials', client_id: client.clientId, client_secret: client.secret });
    expect(res.status).toBe(200);
    expect(typeof res.body.access_token).toBe('string');
  });

  it('RFC 6749 §2.3: Basic and client_secret in one request is invalid_request', async () => {
    const res = await tokenRequest(f.app, client.clientId, client.secret, { client_secret: client.secret });
    expectOAuthError(res, 400, 'invalid_request');
    expect(res.body.error_description).toContain('client_secret');
  });

  it('RFC 6749 §2.3.1: client_id in the body must match the Basic client id', async () => {
    const other = await createClient(f.auth);
    const res = await tokenRequest(f.app, client.clientId, client.secret, { client_id: other.clientId });
    expectOAuthError(res, 400, 'invalid_request');
    const same = await tokenRequest(f.app, client.clientId, client.secret, { client_id: client.clientId });
    expect(same.status).toBe(200);
  });

  it('RFC 6749 §2.3.1: credentials in the query string are never accepted', async () => {
    const res = await request(f.app)
      .post(`/oauth/token?client_id=${client.clientId}&client_secret=${client.secret}`)
      .type('form')
      .send({ grant_type: 'client_credentials' });
    expectOAuthError(res, 400, 'invalid_request');
    expect(res.body.error_description).toMatch(/query string/);
    // Even alongside valid body credentials.
    const mixed = await request(f.app)
      .post(`/oauth/token?client_secret=${client.secret}`)
      .type('form')
      .send({ grant_type: 'client_credentials', client_id: client.clientId, client_secret: client.secret });
    expectOAuthError(mixed, 400, 'invalid_request');
  });

  it('RFC 6749 §5.2: a wrong secret over Basic is 401 invalid_client with WWW-Authenticate: Basic', async () => {
    const other = await createClient(f.auth);
    const res = await tokenRequest(f.app, client.clientId, other.secret);
    expectOAuthError(res, 401, 'invalid_client');
    expect(res.headers['www-authenticate']).toBe('Basic realm="express-app-tokens"');
  });

  it('RFC 6749 §5.2: a wrong secret in the body is 401 invalid_client without a Basic challenge', async () => {
    const res = await request(f.app)
      .post('/oauth/token')
      .type('form')
      .send({ grant_type: 'client_credentials', client_id: client.clientId, client_secret: 'eat_nope' });
    expectOAuthError(res, 401, 'invalid_client');
    expect(res.headers['www-authenticate']).toBeUndefined();
  });

  it('RFC 6749 §5.2: credentials in another Authorization scheme (Bearer, Digest) are 401 invalid_client with a WWW-Authenticate challenge', async () => {
    for (const header of ['Bearer abc', 'Digest username="x"']) {
      const res = await request(f.app)
        .post('/oauth/token')
        .set('Authorization', header)
        .type('form')
        .send({ grant_type: 'client_credentials' });
      expectOAuthError(res, 401, 'invalid_client');
      // The client used the Authorization header, so it is owed a challenge; Basic is the one
      // header scheme we take for client authentication.
      expect(res.headers['www-authenticate'], header).toBe('Basic realm="express-app-tokens"');
    }
  });

  it('RFC 6749 §5.2: no client authentication at all is 401 invalid_client', async () => {
    const res = await request(f.app).post('/oauth/token').type('form').send({ grant_type: 'client_credentials' });
    expectOAuthError(res, 401, 'invalid_client');
    const idOnly = await request(f.app)
      .post('/oauth/token')
      .type('form')
      .send({ grant_type: 'client_credentials', client_id: client.clientId });
    expectOAuthError(idOnly, 401, 'invalid_client');
  });

  it('an unknown client and a wrong secret are indistinguishable', async () => {
    const other = await createClient(f.auth);
    const unknown = await tokenRequest(f.app, 'app_doesnotexist0000000000', client.secret);
    const wrongSecret = await tokenRequest(f.app, client.clientId, other.secret);
    const malformed = await tokenRequest(f.app, client.clientId, mistype(client.secret));
    for (const res of [unknown, wrongSecret, malformed]) {
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Basic realm="express-app-tokens"');
    }
    expect(unknown.body).toEqual(wrongSecret.body);
    expect(malformed.body).toEqual(wrongSecret.body);
  });

  it("a client cannot authenticate with another app's token", async () => {
    const other = await createClient(f.auth, { tenant: 'globex' });
    const res = await tokenRequest(f.app, client.clientId, other.secret);
    expectOAuthError(res, 401, 'invalid_client');
  });

  it('a deleted API token no longer authenticates', async () => {
    await f.auth.apps.deleteToken(client.tenant, client.clientId, client.tokenId);
    expectOAuthError(await tokenRequest(f.app, client.clientId, client.secret), 401, 'invalid_client');
  });

  it('an expired API token no longer authenticates', async () => {
    let now = Date.now();
    const clocked = await f.restart({ advanced: { now: () => new Date(now) } });
    try {
      const c = await createClient(clocked.auth, { expiresIn: 120 });
      expect((await tokenRequest(clocked.app, c.clientId, c.secret)).status).toBe(200);
      now += 121_000;
      expectOAuthError(await tokenRequest(clocked.app, c.clientId, c.secret), 401, 'invalid_client');
    } finally {
      f = clocked;
    }
  });
});

describe('client credential cache (advanced.clientCacheTtl)', () => {
  /** Count the store reads client authentication makes. */
  function countLookups(store: Fixture['store']) {
    const counts = { app: 0, token: 0 };
    const getApp = store.getAppByClientId.bind(store);
    const findToken = store.findApiTokenByHash.bind(store);
    store.getAppByClientId = (id) => (counts.app++, getApp(id));
    store.findApiTokenByHash = (hash) => (counts.token++, findToken(hash));
    return counts;
  }

  it('repeated grants of one client read the store once', async () => {
    const counts = countLookups(f.store);
    for (let i = 0; i < 5; i++) expect((await tokenRequest(f.app, client.clientId, client.secret)).status).toBe(200);
    expect(counts).toEqual({ app: 1, token: 1 });
  });

  it('with clientCacheTtl 0 every grant reads the store', async () => {
    f = await f.restart({ advanced: { clientCacheTtl: 0 } });
    const counts = countLookups(f.store);
    for (let i = 0; i < 3; i++) expect((await tokenRequest(f.app, client.clientId, client.secret)).status).toBe(200);
    expect(counts).toEqual({ app: 3, token: 3 });
  });

  it('the cached entry lives clientCacheTtl seconds, then the store is read again', async () => {
    let now = Date.now();
    f = await f.restart({ advanced: { now: () => new Date(now), clientCacheTtl: 2 } });
    const counts = countLookups(f.store);
    expect((await tokenRequest(f.app, client.clientId, client.secret)).status).toBe(200);
    now += 1900;
    expect((await tokenRequest(f.app, client.clientId, client.secret)).status).toBe(200);
    expect(counts.token).toBe(1);
    now += 200;
    expect((await tokenRequest(f.app, client.clientId, client.secret)).status).toBe(200);
    expect(counts.token).toBe(2);
  });

  it('a cached client whose API token is then deleted is refused at once', async () => {
    expect((await tokenRequest(f.app, client.clientId, client.secret)).status).toBe(200);
    await f.auth.apps.deleteToken(client.tenant, client.clientId, client.tokenId);
    expectOAuthError(await tokenRequest(f.app, client.clientId, client.secret), 401, 'invalid_client');
  });

  it('a cached client whose app is then deleted is refused at once', async () => {
    expect((await tokenRequest(f.app, client.clientId, client.secret)).status).toBe(200);
    await f.auth.apps.delete(client.tenant, client.clientId);
    expectOAuthError(await tokenRequest(f.app, client.clientId, client.secret), 401, 'invalid_client');
  });

  it('a cached client whose API token is then regenerated is refused at once; the new value works', async () => {
    expect((await tokenRequest(f.app, client.clientId, client.secret)).status).toBe(200);
    const regenerated = await f.auth.apps.regenerateToken(client.tenant, client.clientId, client.tokenId);
    expectOAuthError(await tokenRequest(f.app, client.clientId, client.secret), 401, 'invalid_client');
    expect((await tokenRequest(f.app, client.clientId, regenerated.value)).status).toBe(200);
  });

  it('a cached secret presented with another client id is invalid_client (RFC 6749 §2.3.1)', async () => {
    const other = await createClient(f.auth);
    expect((await tokenRequest(f.app, client.clientId, client.secret)).status).toBe(200);
    expectOAuthError(await tokenRequest(f.app, other.clientId, client.secret), 401, 'invalid_client');
  });

  it('a cached API token that expires is refused from the moment it expires', async () => {
    let now = Date.now();
    f = await f.restart({ advanced: { now: () => new Date(now), clientCacheTtl: 60 } });
    const c = await createClient(f.auth, { expiresIn: 120 });
    now += 100_000; // cached from here until +160 s, but the token expires at +120 s
    expect((await tokenRequest(f.app, c.clientId, c.secret)).status).toBe(200);
    now += 21_000;
    expectOAuthError(await tokenRequest(f.app, c.clientId, c.secret), 401, 'invalid_client');
  });

  it("an edit of the app's claims reaches the next token of a cached client at once", async () => {
    const before = decodeJwt(await accessToken(f.app, client.clientId, client.secret));
    expect(before.payload.plan).toBe('pro');
    await f.auth.apps.update(client.tenant, client.clientId, { customClaims: { plan: 'enterprise' }, name: 'renamed' });
    const after = decodeJwt(await accessToken(f.app, client.clientId, client.secret));
    expect(after.payload.plan).toBe('enterprise');
    expect(after.payload.app_name).toBe('renamed');
  });
});

describe('request syntax', () => {
  it('RFC 6749 §4.4.2: a missing grant_type is invalid_request', async () => {
    const res = await request(f.app)
      .post('/oauth/token')
      .auth(client.clientId, client.secret)
      .type('form')
      .send({ scope: 'notarization:read' });
    expectOAuthError(res, 400, 'invalid_request');
    expect(res.body.error_description).toContain('grant_type');
  });

  it('RFC 6749 §3.2: a repeated parameter is invalid_request', async () => {
    const res = await request(f.app)
      .post('/oauth/token')
      .auth(client.clientId, client.secret)
      .type('form')
      .send('grant_type=client_credentials&scope=notarization:read&scope=notarization:write');
    expectOAuthError(res, 400, 'invalid_request');
    expect(res.body.error_description).toContain('scope');
  });

  it('RFC 6749 §3.2: a repeated parameter is refused when the host already parsed the form body', async () => {
    const host = express();
    host.use(express.urlencoded({ extended: false }));
    host.use(f.auth.routes());
    const repeated = await request(host)
      .post('/oauth/token')
      .auth(client.clientId, client.secret)
      .type('form')
      .send('grant_type=client_credentials&grant_type=client_credentials');
    expectOAuthError(repeated, 400, 'invalid_request');
    const ok = await request(host)
      .post('/oauth/token')
      .auth(client.clientId, client.secret)
      .type('form')
      .send('grant_type=client_credentials');
    expect(ok.status).toBe(200);
  });

  it('RFC 6749 §5.2: error_description never carries characters outside %x20-21 / %x23-5B / %x5D-7E, even when it names client input', async () => {
    const allowed = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
    const send = (body: string) =>
      request(f.app)
        .post('/oauth/token')
        .auth(encodeURIComponent(client.clientId), encodeURIComponent(client.secret))
        .type('form')
        .send(body);
    const cases: Array<[string, string, string]> = [
      // The rejected grant_type is echoed: x"y\zé U+0001.
      ['grant_type', 'grant_type=x%22y%5Cz%C3%A9%01', 'unsupported_grant_type'],
      // The name of a repeated parameter is echoed: na"meé.
      ['repeated', 'grant_type=client_credentials&na%22me%C3%A9=1&na%22me%C3%A9=2', 'invalid_request'],
      // An undeclared resource is echoed: https://x.example/"\.
      ['resource', `grant_type=client_credentials&resource=${encodeURIComponent('https://x.example/"\\')}`, 'invalid_target'],
    ];
    for (const [name, body, code] of cases) {
      const res = await send(body);
      expectOAuthError(res, 400, code);
      const description = res.body.error_description as string;
      expect(description.length, name).toBeGreaterThan(0);
      expect(description, name).toMatch(allowed);
    }
  });

  it('RFC 6749 §3.1: a parameter sent without a value is treated as omitted', async () => {
    const res = await tokenRequest(f.app, client.clientId, client.secret, { scope: '' });
    expect(res.status).toBe(200);
    expect(res.body.scope).toBe('notarization:read notarization:write');
  });

  it('RFC 6749 §5.2: another grant type is unsupported_grant_type', async () => {
    const res = await tokenRequest(f.app, client.clientId, client.secret, { grant_type: 'password' });
    expectOAuthError(res, 400, 'unsupported_grant_type');
  });

  it('RFC 6749 §3.2: unknown parameters are ignored', async () => {
    const res = await tokenRequest(f.app, client.clientId, client.secret, { foo: 'bar', resource_hint: 'x' });
    expect(res.status).toBe(200);
  });

  it('RFC 6749 §3.2: only POST is accepted', async () => {
    const res = await request(f.app).get('/oauth/token').auth(client.clientId, client.secret);
    expectOAuthError(res, 405, 'invalid_request');
    expect(res.headers.allow).toBe('POST');
  });

  it('RFC 6749 §3.2: only a form body is accepted', async () => {
    const res = await request(f.app)
      .post('/oauth/token')
      .auth(client.clientId, client.secret)
      .send({ grant_type: 'client_credentials' });
    expectOAuthError(res, 400, 'invalid_request');
    expect(res.body.error_description).toContain('application/x-www-form-urlencoded');
  });

  it('an oversized body is refused with 413, never a 5xx', async () => {
    const res = await tokenRequest(f.app, client.clientId, client.secret, { junk: 'x'.repeat(40_000) });
    expect(res.status).toBe(413);
    expect(res.body.error).toBe('invalid_request');
  });
});

describe('scope', () => {
  it('RFC 6749 §3.3: without scope, the token gets every scope of the app', async () => {
    const res = await tokenRequest(f.app, client.clientId, client.secret);
    expect(res.body.scope).toBe('notarization:read notarization:write');
  });

  it('RFC 6749 §3.3: a subset of the app scopes is granted as asked', async () => {
    const res = await tokenRequest(f.app, client.clientId, client.secret, { scope: 'notarization:read' });
    expect(res.status).toBe(200);
    expect(res.body.scope).toBe('notarization:read');
    expect(decodeJwt(res.body.access_token).payload.scope).toBe('notarization:read');
  });

  it('RFC 6749 §5.2: a scope beyond the app is invalid_scope', async () => {
    const res = await tokenRequest(f.app, client.clientId, client.secret, { scope: 'notarization:read storage:read' });
    expectOAuthError(res, 400, 'invalid_scope');
    expect(res.body.error_description).toContain('storage:read');
  });

  it('RFC 6749 §5.2: a scope outside the catalogue is invalid_scope', async () => {
    const res = await tokenRequest(f.app, client.clientId, client.secret, { scope: 'launch:missiles' });
    expectOAuthError(res, 400, 'invalid_scope');
    expect(res.body.error_description).toContain("unknown scope 'launch:missiles'");
  });

  it('RFC 6749 §3.3: a malformed scope string is invalid_scope', async () => {
    const res = await tokenRequest(f.app, client.clientId, client.secret, { scope: 'notarization:read  notarization:write' });
    expectOAuthError(res, 400, 'invalid_scope');
  });

  it("a scope beyond the API token's own scopes is invalid_scope, and they are the default", async () => {
    const narrow = await createClient(f.auth, { tokenScopes: ['notarization:read'] });
    expectOAuthError(
      await tokenRequest(f.app, narrow.clientId, narrow.secret, { scope: 'notarization:write' }),
      400,
      'invalid_scope',
    );
    const res = await tokenRequest(f.app, narrow.clientId, narrow.secret);
    expect(res.body.scope).toBe('notarization:read');
  });

  it('a wildcard app scope grants the concrete scopes under it', async () => {
    const wide = await createClient(f.auth, { scopes: ['storage:*'] });
    const res = await tokenRequest(f.app, wide.clientId, wide.secret, { scope: 'storage:read' });
    expect(res.status).toBe(200);
    expect(res.body.scope).toBe('storage:read');
    expectOAuthError(await tokenRequest(f.app, wide.clientId, wide.secret, { scope: 'streams:read' }), 400, 'invalid_scope');
  });
});

describe('the response and the access token', () => {
  it('RFC 6749 §5.1: 200 with access_token, token_type, expires_in, scope, no-store, and no refresh token (§4.4.3)', async () => {
    const res = await tokenRequest(f.app, client.clientId, client.secret);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers.pragma).toBe('no-cache');
    expect(Object.keys(res.body).sort()).toEqual(['access_token', 'expires_in', 'scope', 'token_type']);
    expect(res.body.expires_in).toBe(3600);
    expect(res.body.refresh_token).toBeUndefined();
  });

  it('RFC 9068 §2: header typ at+jwt with the kid of a JWKS key; claims iss sub aud exp iat jti client_id scope', async () => {
    const jwt = await accessToken(f.app, client.clientId, client.secret);
    const { header, payload } = decodeJwt(jwt);
    expect(header.typ).toBe('at+jwt');
    expect(header.alg).toBe('RS256');
    const jwks = (await request(f.app).get('/.well-known/jwks.json')).body;
    expect(jwks.keys.map((k: { kid: string }) => k.kid)).toContain(header.kid);
    expect(payload.iss).toBe(ISSUER);
    expect(payload.sub).toBe(client.clientId);
    expect(payload.client_id).toBe(client.clientId);
    expect(payload.aud).toBe(ISSUER);
    expect(payload.scope).toBe('notarization:read notarization:write');
    expect(typeof payload.jti).toBe('string');
    expect((payload.exp as number) - (payload.iat as number)).toBe(3600);
    expect(payload.tenant_id).toBe('acme');
    expect(payload.app_name).toBe('test app');
    expect(payload.api_token_id).toBe(client.tokenId);
    expect(payload.plan).toBe('pro');
    expect(payload.region).toBe('eu');
  });

  it('RFC 9068 §4: the token verifies against the published JWKS with jose', async () => {
    const jwt = await accessToken(f.app, client.clientId, client.secret);
    const jwks = createLocalJWKSet((await request(f.app).get('/.well-known/jwks.json')).body);
    const { payload, protectedHeader } = await jwtVerify(jwt, jwks, { issuer: ISSUER, audience: ISSUER, typ: 'at+jwt' });
    expect(protectedHeader.typ).toBe('at+jwt');
    expect(payload.client_id).toBe(client.clientId);
  });

  it('every token gets its own jti', async () => {
    const a = decodeJwt(await accessToken(f.app, client.clientId, client.secret)).payload.jti;
    const b = decodeJwt(await accessToken(f.app, client.clientId, client.secret)).payload.jti;
    expect(a).not.toBe(b);
  });

  it('the lifetime is configurable', async () => {
    const short = await f.restart({ accessTokenTtl: 600 });
    f = short;
    const c = await createClient(short.auth);
    const res = await tokenRequest(short.app, c.clientId, c.secret);
    expect(res.body.expires_in).toBe(600);
    const { payload } = decodeJwt(res.body.access_token);
    expect((payload.exp as number) - (payload.iat as number)).toBe(600);
  });

  it('an access token never outlives the API token that minted it', async () => {
    const c = await createClient(f.auth, { expiresIn: 300 });
    const res = await tokenRequest(f.app, c.clientId, c.secret);
    expect(res.body.expires_in).toBeLessThanOrEqual(300);
    expect(res.body.expires_in).toBeGreaterThan(290);
  });

  it('custom claims cannot override registered claims', async () => {
    await expect(
      f.auth.apps.create({ tenantId: 'acme', name: 'x', scopes: ['storage:read'], customClaims: { iss: 'https://evil.example' } }),
    ).rejects.toMatchObject({ code: 'validation_failed', field: 'customClaims.iss' });
  });

  it.each(['ES256', 'EdDSA'] as const)('signs with %s when configured', async (alg) => {
    const g = await f.restart({ signingAlgorithm: alg });
    f = g;
    const c = await createClient(g.auth);
    const jwt = await accessToken(g.app, c.clientId, c.secret);
    expect(decodeJwt(jwt).header.alg).toBe(alg);
    const ok = await request(g.app).get('/stamps').set('Authorization', `Bearer ${jwt}`);
    expect(ok.status).toBe(200);
  });
});

describe('routes() is one layer in front of the host (isOurPath)', () => {
  it('claims exactly the contract prefixes, on whole segments and case-insensitively, as Express mount paths match', () => {
    for (const path of ['/oauth/token', '/OAUTH/Token', '/oauth', '/apps', '/apps/', '/apps/app_1/tokens', '/tokens/refresh', '/.well-known/jwks.json', '/.well-known/oauth-authorization-server']) {
      expect(isOurPath(path), path).toBe(true);
    }
    for (const path of ['/', '/appsx', '/oauthx/token', '/tokensx', '/stamps', '/me', '/.well-known/other', '/a', '/api/apps']) {
      expect(isOurPath(path), path).toBe(false);
    }
  });

  it('a host route beside ours is reached; our endpoint answers under another letter case', async () => {
    const app = express();
    app.use(f.auth.routes());
    app.get('/appsx', (_req, res) => {
      res.json({ host: true });
    });
    expect((await request(app).get('/appsx')).body).toEqual({ host: true });
    const res = await request(app).post('/OAUTH/TOKEN').auth(client.clientId, client.secret).type('form').send({ grant_type: 'client_credentials' });
    expect(res.status).toBe(200);
    expect(res.body.token_type).toBe('Bearer');
  });
});
