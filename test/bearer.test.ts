import express from 'express';
import passport from 'passport';
import { SignJWT, base64url, generateKeyPair, type CryptoKey } from 'jose';
import request from 'supertest';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  ISSUER,
  accessToken,
  createClient,
  decodeJwt,
  expectBearerFailure,
  setup,
  type Fixture,
} from './helpers.js';

let f: Fixture;
let client: Awaited<ReturnType<typeof createClient>>;
let jwt: string;

beforeEach(async () => {
  f = await setup();
  client = await createClient(f.auth, { customClaims: { plan: 'pro' } });
  jwt = await accessToken(f.app, client.clientId, client.secret);
});
afterEach(async () => {
  await f.cleanup();
});

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

/** Re-sign a token's claims with another header/key, to forge variants. */
async function forge(header: Record<string, unknown>, payload: Record<string, unknown>, key?: CryptoKey | Uint8Array) {
  const signingKey = key ?? (await generateKeyPair('RS256')).privateKey;
  return new SignJWT(payload).setProtectedHeader(header as { alg: string }).sign(signingKey);
}

describe('RFC 6750 challenges', () => {
  it('RFC 6750 §3.1: no credentials → 401 with a realm and no error code', async () => {
    const res = await request(f.app).get('/stamps');
    expectBearerFailure(res, 401, null);
    expect(res.headers['www-authenticate']).toBe('Bearer realm="express-app-tokens"');
  });

  it('RFC 6750 §3.1: another scheme counts as no bearer credentials', async () => {
    const res = await request(f.app).get('/stamps').auth('user', 'pass');
    expectBearerFailure(res, 401, null);
  });

  it('RFC 6750 §3.1: a garbage token → 401 invalid_token', async () => {
    const res = await request(f.app).get('/stamps').set(bearer('not-a-token'));
    expectBearerFailure(res, 401, 'invalid_token');
  });

  it('RFC 6750 §3.1: a token without the required scope → 403 insufficient_scope naming the scope', async () => {
    const readOnly = await accessToken(f.app, client.clientId, client.secret, 'notarization:read');
    const res = await request(f.app).post('/stamps').set(bearer(readOnly));
    expectBearerFailure(res, 403, 'insufficient_scope', ['notarization:read', 'notarization:write']);
  });

  it('RFC 6750 §3.1: a malformed Authorization header → 400 invalid_request', async () => {
    const res = await request(f.app).get('/stamps').set('Authorization', `Bearer ${jwt} extra`);
    expectBearerFailure(res, 400, 'invalid_request');
  });

  it('RFC 6750 §2.3: a token in the query string is refused with 400 invalid_request', async () => {
    const res = await request(f.app).get(`/stamps?access_token=${jwt}`);
    expectBearerFailure(res, 400, 'invalid_request');
    expect(res.body.error_description).toContain('query string');
    // …even alongside a valid header.
    const both = await request(f.app).get(`/stamps?access_token=${jwt}`).set(bearer(jwt));
    expectBearerFailure(both, 400, 'invalid_request');
  });

  it('RFC 6750 §2.1: the scheme name is case-insensitive', async () => {
    for (const scheme of ['bearer', 'BEARER', 'BeArEr']) {
      const res = await request(f.app).get('/stamps').set('Authorization', `${scheme} ${jwt}`);
      expect(res.status, scheme).toBe(200);
    }
  });

  it('RFC 6750 §3: error_description never breaks the header (no quotes or control characters)', async () => {
    const res = await request(f.app).get('/stamps').set(bearer('"quoted"\\token'));
    expectBearerFailure(res, 401, 'invalid_token');
    const description = /error_description="([^"]*)"/.exec(res.headers['www-authenticate'] as string);
    expect(description?.[1]).toBeTruthy();
  });
});

describe('JWT verification', () => {
  it('accepts our token and sets a typed req.auth', async () => {
    const res = await request(f.app).get('/me').set(bearer(jwt));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      kind: 'access_token',
      tenantId: 'acme',
      appId: client.clientId,
      clientId: client.clientId,
      apiTokenId: client.tokenId,
      scopes: ['notarization:read', 'notarization:write'],
    });
    expect(res.body.claims.plan).toBe('pro');
    expect(new Date(res.body.expiresAt).getTime()).toBeGreaterThan(Date.now());
  });

  it('RFC 8725 §3.1: alg none is refused', async () => {
    const { header, payload } = decodeJwt(jwt);
    const none = `${base64url.encode(JSON.stringify({ ...header, alg: 'none' }))}.${base64url.encode(JSON.stringify(payload))}.`;
    expectBearerFailure(await request(f.app).get('/stamps').set(bearer(none)), 401, 'invalid_token');
  });

  it('RFC 8725 §2.1: HMAC signed with the public key is refused', async () => {
    const { header, payload } = decodeJwt(jwt);
    const jwks = (await request(f.app).get('/.well-known/jwks.json')).body;
    const hs = await forge({ ...header, alg: 'HS256' }, payload, new TextEncoder().encode(JSON.stringify(jwks.keys[0])));
    expectBearerFailure(await request(f.app).get('/stamps').set(bearer(hs)), 401, 'invalid_token');
  });

  it('RFC 8725 §3.10: a token carrying its own key (jwk, jku, x5u) is refused', async () => {
    const { header, payload } = decodeJwt(jwt);
    const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
    const { exportJWK } = await import('jose');
    const jwk = await exportJWK(publicKey);
    for (const extra of [{ jwk }, { jku: 'https://evil.example/jwks' }, { x5u: 'https://evil.example/cert' }]) {
      const forged = await forge({ ...header, ...extra }, payload, privateKey);
      expectBearerFailure(await request(f.app).get('/stamps').set(bearer(forged)), 401, 'invalid_token');
    }
  });

  it("a token signed by a key that is not ours (same kid) is refused", async () => {
    const { header, payload } = decodeJwt(jwt);
    const forged = await forge(header, payload);
    expectBearerFailure(await request(f.app).get('/stamps').set(bearer(forged)), 401, 'invalid_token');
  });

  it('RFC 9068 §4: a token without typ at+jwt is refused', async () => {
    // Signed with our own key, so only the typ differs.
    const g = await f.restart();
    f = g;
    const keys = await g.store.listSigningKeys();
    const { importJWK } = await import('jose');
    const priv = await importJWK(JSON.parse(keys[0]!.privateJwk), 'RS256');
    const { header, payload } = decodeJwt(jwt);
    for (const typ of ['JWT', undefined, 'id_token+jwt']) {
      const h: Record<string, unknown> = { ...header };
      if (typ === undefined) delete h.typ;
      else h.typ = typ;
      const t = await forge(h, payload, priv as CryptoKey);
      const res = await request(g.app).get('/stamps').set(bearer(t));
      expectBearerFailure(res, 401, 'invalid_token');
    }
    // Control: the same key and claims with typ at+jwt pass, so the refusals above are about typ.
    const ok = await forge(header, payload, priv as CryptoKey);
    expect((await request(g.app).get('/stamps').set(bearer(ok))).status).toBe(200);
  });

  it('RFC 9068 §4: wrong iss, wrong aud, expired and not-yet-valid tokens are refused', async () => {
    const g = await f.restart();
    f = g;
    const keys = await g.store.listSigningKeys();
    const { importJWK } = await import('jose');
    const priv = (await importJWK(JSON.parse(keys[0]!.privateJwk), 'RS256')) as CryptoKey;
    const { header, payload } = decodeJwt(jwt);
    const now = Math.floor(Date.now() / 1000);
    const variants: Array<[string, Record<string, unknown>]> = [
      ['iss', { iss: 'https://other.example' }],
      ['aud', { aud: 'https://other-api.example' }],
      ['exp', { exp: now - 60, iat: now - 3660 }],
      ['nbf', { nbf: now + 600 }],
    ];
    for (const [name, change] of variants) {
      const t = await forge(header, { ...payload, ...change }, priv);
      const res = await request(g.app).get('/stamps').set(bearer(t));
      expectBearerFailure(res, 401, 'invalid_token');
      expect(res.body.error_description, name).toMatch(/issuer|audience|expired|not valid yet/);
    }
  });

  it('RFC 9068 §4: an expired token within the clock tolerance still passes, beyond it fails', async () => {
    let now = Date.now();
    const g = await f.restart({ accessTokenTtl: 60, advanced: { now: () => new Date(now), clockTolerance: 5 } });
    f = g;
    const c = await createClient(g.auth);
    const t = await accessToken(g.app, c.clientId, c.secret);
    now += 63_000;
    expect((await request(g.app).get('/stamps').set(bearer(t))).status).toBe(200);
    now += 10_000;
    expectBearerFailure(await request(g.app).get('/stamps').set(bearer(t)), 401, 'invalid_token');
  });

  it('a token for another audience is refused by a middleware configured for ours', async () => {
    const other = await f.restart({ audience: 'https://other-api.example' });
    f = other;
    const c = await createClient(other.auth);
    const t = await accessToken(other.app, c.clientId, c.secret);
    expect(decodeJwt(t).payload.aud).toBe('https://other-api.example');
    expect((await request(other.app).get('/stamps').set(bearer(t))).status).toBe(200);
    // The same store and key, but a host whose audience is the issuer: refused.
    const mine = await other.restart({ audience: ISSUER });
    f = mine;
    expectBearerFailure(await request(mine.app).get('/stamps').set(bearer(t)), 401, 'invalid_token');
  });

  it('tokens keep verifying after a restart (keys persisted through the store)', async () => {
    const g = await f.restart();
    f = g;
    expect((await request(g.app).get('/stamps').set(bearer(jwt))).status).toBe(200);
  });

  it('an oversized token is refused without work', async () => {
    const res = await request(f.app).get('/stamps').set(bearer('a'.repeat(9000)));
    expectBearerFailure(res, 401, 'invalid_token');
  });
});

describe('scope guards', () => {
  it('requireScopes needs all of them', async () => {
    const both = await request(f.app).post('/stamps').set(bearer(jwt));
    expect(both.status).toBe(201);
  });

  it('requireAnyScope needs one of them', async () => {
    const streams = await createClient(f.auth, { scopes: ['streams:read'] });
    const t = await accessToken(f.app, streams.clientId, streams.secret);
    expect((await request(f.app).get('/feeds').set(bearer(t))).status).toBe(200);
    const res = await request(f.app).get('/feeds').set(bearer(jwt));
    expectBearerFailure(res, 403, 'insufficient_scope', ['storage:read', 'streams:read']);
  });

  it('a granted wildcard storage:* satisfies a required storage:read', async () => {
    const wide = await createClient(f.auth, { scopes: ['storage:*'] });
    const t = await accessToken(f.app, wide.clientId, wide.secret, 'storage:*');
    expect(decodeJwt(t).payload.scope).toBe('storage:*');
    expect((await request(f.app).get('/feeds').set(bearer(t))).status).toBe(200);
  });

  it('a guard for an unknown scope fails at construction, naming it', () => {
    expect(() => f.auth.requireScopes('notarization:read', 'launch:missiles')).toThrow(/argument 1: unknown scope 'launch:missiles'/);
    expect(() => f.auth.requireAnyScope()).toThrow(/at least one scope/);
  });

  it('a guard without authenticate() before it answers 401, not a crash', async () => {
    const app = express();
    app.get('/x', f.auth.requireScopes('notarization:read'), (_req, res) => {
      res.json({ ok: true });
    });
    expectBearerFailure(await request(app).get('/x').set(bearer(jwt)), 401, null);
  });
});

describe('API tokens as bearer', () => {
  it('an API token is accepted directly, by hash lookup', async () => {
    const res = await request(f.app).get('/me').set(bearer(client.secret));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ kind: 'api_token', appId: client.clientId, apiTokenId: client.tokenId, tenantId: 'acme' });
    expect((await request(f.app).get('/stamps').set(bearer(client.secret))).status).toBe(200);
  });

  it("an API token's own scopes bound what it may do", async () => {
    const narrow = await createClient(f.auth, { tokenScopes: ['notarization:read'] });
    expect((await request(f.app).get('/stamps').set(bearer(narrow.secret))).status).toBe(200);
    expectBearerFailure(
      await request(f.app).post('/stamps').set(bearer(narrow.secret)),
      403,
      'insufficient_scope',
      ['notarization:read', 'notarization:write'],
    );
  });

  it('a mistyped API token is refused by its checksum, without a store lookup', async () => {
    const typo = `${client.secret.slice(0, 10)}${client.secret[10] === 'a' ? 'b' : 'a'}${client.secret.slice(11)}`;
    const lookups = vi.spyOn(f.store, 'findApiTokenByHash');
    expectBearerFailure(await request(f.app).get('/stamps').set(bearer(typo)), 401, 'invalid_token');
    expect(lookups).not.toHaveBeenCalled();
    // Control: the real value does reach the store.
    expect((await request(f.app).get('/stamps').set(bearer(client.secret))).status).toBe(200);
    expect(lookups).toHaveBeenCalledTimes(1);
  });

  it('API tokens can be refused as bearers by option', async () => {
    const strict = await f.restart({ acceptApiTokens: false });
    f = strict;
    expectBearerFailure(await request(strict.app).get('/stamps').set(bearer(client.secret)), 401, 'invalid_token');
    expect((await request(strict.app).get('/stamps').set(bearer(jwt))).status).toBe(200);
  });

  it('an expired API token is refused as a bearer', async () => {
    let now = Date.now();
    const g = await f.restart({ advanced: { now: () => new Date(now) } });
    f = g;
    const c = await createClient(g.auth, { expiresIn: 120 });
    expect((await request(g.app).get('/stamps').set(bearer(c.secret))).status).toBe(200);
    now += 121_000;
    expectBearerFailure(await request(g.app).get('/stamps').set(bearer(c.secret)), 401, 'invalid_token');
  });
});

describe('passport strategy', () => {
  it('works under passport.authenticate for hosts that run passport', async () => {
    passport.use(f.auth.strategy as passport.Strategy);
    const app = express();
    app.use(passport.initialize());
    app.get('/p', passport.authenticate('app-tokens', { session: false }), f.auth.requireScopes('notarization:read'), (req, res) => {
      res.json({ user: (req.user as { clientId: string }).clientId, auth: req.auth?.clientId });
    });
    const ok = await request(app).get('/p').set(bearer(jwt));
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual({ user: client.clientId, auth: client.clientId });
    const bad = await request(app).get('/p').set(bearer('garbage'));
    expect(bad.status).toBe(401);
    expect(bad.headers['www-authenticate']).toContain('error="invalid_token"');
    const none = await request(app).get('/p');
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer realm="express-app-tokens"');
    const query = await request(app).get(`/p?access_token=${jwt}`);
    expect(query.status).toBe(400);
  });
});
