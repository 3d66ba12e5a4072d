import express from 'express';
import passport from 'passport';
import { SignJWT, base64url, generateKeyPair, type CryptoKey } from 'jose';
import request, { type Response } from 'supertest';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AppTokensError } from '../src/core/errors.js';
import {
  ISSUER,
  ourSigningKey,
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

/**
 * RFC 6750 §3 / RFC 9110 §11.2: the auth-params of a `Bearer` challenge, in order. Throws unless
 * the whole value is `Bearer` followed by `name="value"` pairs separated by commas, so a value
 * that broke out of its quotes cannot go unnoticed.
 */
function challengeParams(challenge: string): Array<[string, string]> {
  expect(challenge).toMatch(/^Bearer /);
  const params: Array<[string, string]> = [];
  const pair = /([A-Za-z_][A-Za-z0-9_-]*)="([^"\\]*)"(?:, |$)/y;
  pair.lastIndex = 'Bearer '.length;
  while (pair.lastIndex < challenge.length) {
    const start = pair.lastIndex;
    const m = pair.exec(challenge);
    if (!m) throw new Error(`unparsable challenge at ${start}: ${challenge}`);
    params.push([m[1]!, m[2]!]);
  }
  return params;
}

/** RFC 6750 §3: what each attribute value may contain. */
const ERROR_CHARS = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
const SCOPE_CHARS = /^[\x21\x23-\x5b\x5d-\x7e]+( [\x21\x23-\x5b\x5d-\x7e]+)*$/;

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

  it('RFC 6750 §3: every challenge is Bearer with realm exactly once and error, error_description and scope at most once, all within the allowed characters', async () => {
    // Our own key, to forge an expired and a wrong-audience token that fail only on that claim.
    const g = await f.restart();
    f = g;
    const priv = await ourSigningKey(g.store);
    const { header, payload } = decodeJwt(jwt);
    const now = Math.floor(Date.now() / 1000);
    const expired = await forge(header, { ...payload, exp: now - 600, iat: now - 4200 }, priv);
    const otherAudience = await forge(header, { ...payload, aud: 'https://other-api.example' }, priv);
    const readOnly = await accessToken(g.app, client.clientId, client.secret, 'notarization:read');

    const cases: Array<[string, () => PromiseLike<Response>, string | null]> = [
      ['no credentials', () => request(g.app).get('/stamps'), null],
      ['a Basic header', () => request(g.app).get('/stamps').auth('user', 'pass'), null],
      ['a garbage token', () => request(g.app).get('/stamps').set(bearer('"quoted"\\token')), 'invalid_token'],
      ['Bearer <jwt> extra', () => request(g.app).get('/stamps').set('Authorization', `Bearer ${jwt} extra`), 'invalid_request'],
      ['?access_token=', () => request(g.app).get(`/stamps?access_token=${jwt}`), 'invalid_request'],
      ['insufficient scope', () => request(g.app).post('/stamps').set(bearer(readOnly)), 'insufficient_scope'],
      ['an expired token', () => request(g.app).get('/stamps').set(bearer(expired)), 'invalid_token'],
      ['a wrong-audience token', () => request(g.app).get('/stamps').set(bearer(otherAudience)), 'invalid_token'],
    ];
    for (const [name, send, code] of cases) {
      const res = await send();
      const challenge = res.headers['www-authenticate'] as string | undefined;
      expect(challenge, name).toBeDefined();
      const params = challengeParams(challenge!);
      const count = (attr: string) => params.filter(([n]) => n === attr).length;
      expect(count('realm'), name).toBe(1);
      expect(params[0]![0], name).toBe('realm');
      for (const attr of ['error', 'error_description', 'scope', 'error_uri']) expect(count(attr), `${name}: ${attr}`).toBeLessThanOrEqual(1);
      const value = (attr: string) => params.find(([n]) => n === attr)?.[1];
      if (code === null) {
        expect(params.map(([n]) => n), name).toEqual(['realm']);
      } else {
        expect(value('error'), name).toBe(code);
        expect(value('error_description'), name).toBeTruthy();
      }
      for (const attr of ['error', 'error_description']) {
        const v = value(attr);
        if (v !== undefined) expect(v, `${name}: ${attr}`).toMatch(ERROR_CHARS);
      }
      const scope = value('scope');
      if (code === 'insufficient_scope') expect(scope, name).toBe('notarization:read notarization:write');
      if (scope !== undefined) expect(scope, `${name}: scope`).toMatch(SCOPE_CHARS);
    }

    // The stripping itself, on a message carrying every kind of forbidden character.
    const built = new AppTokensError('invalid_token', 'a "q" \\ \u00e9 \u0001 x').bearerChallenge('r')!;
    expect(built).toMatch(/^[\x20-\x7e]*$/); // no non-ASCII, no control character
    expect(built).not.toContain('\\');
    const params = challengeParams(built);
    expect(params.map(([n]) => n)).toEqual(['realm', 'error', 'error_description']);
    const description = params.find(([n]) => n === 'error_description')![1];
    expect(description).toMatch(ERROR_CHARS);
    expect(description).not.toContain('"');
    expect(description).toContain('a ');
    expect(description).toContain(' x');
  });

  it('RFC 6750 §2.2 / §3: an access_token body member that is not a string (number, object, array) → 400 invalid_request with a Bearer challenge, never an exception', async () => {
    const app = express();
    app.post('/j', express.json(), f.auth.authenticate(), (req, res) => {
      res.json({ clientId: req.auth!.clientId });
    });
    const thrown: unknown[] = [];
    app.use((err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      thrown.push(err);
      res.status(500).json({ error: 'host_error' });
    });
    for (const body of ['{"access_token":123}', '{"access_token":{"a":1}}', '{"access_token":["a","b"]}']) {
      const res = await request(app).post('/j').type('json').send(body);
      expectBearerFailure(res, 400, 'invalid_request');
      expect(res.body.error_description, body).toContain('access_token');
      // Alongside a valid header too: the body member is still looked at, never trusted.
      const withHeader = await request(app).post('/j').set(bearer(jwt)).type('json').send(body);
      expectBearerFailure(withHeader, 400, 'invalid_request');
    }
    expect(thrown).toEqual([]);
    // Control: the route itself works, so the refusals above are about the body member.
    const ok = await request(app).post('/j').set(bearer(jwt)).type('json').send('{"other":1}');
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(ok.body.clientId).toBe(client.clientId);
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
    const priv = await ourSigningKey(g.store);
    const { header, payload } = decodeJwt(jwt);
    for (const typ of ['JWT', undefined, 'id_token+jwt']) {
      const h: Record<string, unknown> = { ...header };
      if (typ === undefined) delete h.typ;
      else h.typ = typ;
      const t = await forge(h, payload, priv);
      const res = await request(g.app).get('/stamps').set(bearer(t));
      expectBearerFailure(res, 401, 'invalid_token');
    }
    // Control: the same key and claims with typ at+jwt pass, so the refusals above are about typ.
    const ok = await forge(header, payload, priv);
    expect((await request(g.app).get('/stamps').set(bearer(ok))).status).toBe(200);
  });

  it('RFC 9068 §4: typ application/at+jwt (and any letter case) signed by our key is accepted', async () => {
    // Signed with our own key, so only the typ differs from a minted token.
    const g = await f.restart();
    f = g;
    const priv = await ourSigningKey(g.store);
    const { header, payload } = decodeJwt(jwt);
    for (const typ of ['application/at+jwt', 'AT+JWT', 'Application/AT+JWT']) {
      const t = await forge({ ...header, typ }, payload, priv);
      expect(decodeJwt(t).header.typ).toBe(typ);
      const res = await request(g.app).get('/stamps').set(bearer(t));
      expect(res.status, `${typ}: ${JSON.stringify(res.body)}`).toBe(200);
    }
  });

  it('RFC 9068 §4: wrong iss, wrong aud, expired and not-yet-valid tokens are refused', async () => {
    const g = await f.restart();
    f = g;
    const priv = await ourSigningKey(g.store);
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
    // Again, now from the cache (the strategy's fast path), with req.user and req.auth set alike.
    const again = await request(app).get('/p').set(bearer(jwt));
    expect(again.status).toBe(200);
    expect(again.body).toEqual({ user: client.clientId, auth: client.clientId });
    const bad = await request(app).get('/p').set(bearer('garbage'));
    expect(bad.status).toBe(401);
    expect(bad.headers['www-authenticate']).toContain('error="invalid_token"');
    const none = await request(app).get('/p');
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer realm="express-app-tokens"');
    const query = await request(app).get(`/p?access_token=${jwt}`);
    expect(query.status).toBe(400);
    // Revocation beats the strategy's cache too.
    await f.auth.apps.delete(client.tenant, client.clientId);
    const revoked = await request(app).get('/p').set(bearer(jwt));
    expect(revoked.status).toBe(401);
    expect(revoked.headers['www-authenticate']).toContain('error="invalid_token"');
  });

  it('RFC 6750 §3 (deviation D15): under passport.authenticate, a token in the query string and a malformed header answer passport\'s bare 400 without a challenge; authenticate() answers them in full', async () => {
    passport.use(f.auth.strategy as passport.Strategy);
    const app = express();
    app.use(passport.initialize());
    app.get('/p', passport.authenticate('app-tokens', { session: false }), (_req, res) => {
      res.json({ ok: true });
    });
    app.get('/a', f.auth.authenticate(), (_req, res) => {
      res.json({ ok: true });
    });
    const requests: Array<[string, (path: string) => PromiseLike<Response>]> = [
      ['a query-string token', (path) => request(app).get(`${path}?access_token=${jwt}`)],
      ['Bearer <jwt> extra', (path) => request(app).get(path).set('Authorization', `Bearer ${jwt} extra`)],
    ];
    for (const [name, send] of requests) {
      // passport's own failure handler (allFailed) sets WWW-Authenticate only on a 401, and the
      // strategy's fail(400) carries no challenge: a bare 400 with passport's status text.
      const viaPassport = await send('/p');
      expect(viaPassport.status, name).toBe(400);
      expect(viaPassport.headers['www-authenticate'], name).toBeUndefined();
      expect(viaPassport.text, name).toBe('Bad Request');
      expect(viaPassport.text).not.toMatch(/\bat .*\.(ts|js):\d+/);
      // The library's own middleware gives the full RFC 6750 §3 answer for the same request.
      const viaMiddleware = await send('/a');
      expectBearerFailure(viaMiddleware, 400, 'invalid_request');
      expect(viaMiddleware.headers['www-authenticate']).toMatch(/^Bearer realm="express-app-tokens", error="invalid_request"/);
    }
  });
});
