/**
 * RFC 9449 DPoP: sender-constrained access tokens, at the token endpoint (§5) and behind
 * `authenticate()` (§7), each rule of the proof check (§4.3), the replay guard shared by every
 * instance of one PostgreSQL database (§11.1) and the stateless server nonces (§8, §9).
 */
import { createHash, randomUUID } from 'node:crypto';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import request, { type Response } from 'supertest';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  Clock,
  ISSUER,
  createClient,
  decodeJwt,
  expectBearerFailure,
  expectOAuthError,
  postgresInstances,
  setup,
  tokenRequest,
  type Fixture,
} from './helpers.js';

const ALGS = 'ES256 RS256 PS256 EdDSA';
const TOKEN_URL = `${ISSUER}/oauth/token`;
const STAMPS_URL = `${ISSUER}/stamps`;

interface DpopKey {
  privateKey: CryptoKey;
  jwk: JWK;
  alg: string;
  jkt: string;
}

async function dpopKey(alg = 'ES256'): Promise<DpopKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(publicKey);
  return { privateKey, jwk, alg, jkt: await calculateJwkThumbprint(jwk) };
}

interface ProofClaims {
  htm?: string;
  htu?: string;
  iat?: number;
  jti?: string | undefined;
  ath?: string;
  nonce?: string;
}

/** A DPoP proof (§4.2); `header` overrides the protected header, `claims` the payload. */
async function proof(key: DpopKey, claims: ProofClaims = {}, header: Record<string, unknown> = {}, now = Date.now()): Promise<string> {
  const payload: Record<string, unknown> = { htm: 'POST', htu: TOKEN_URL, iat: Math.floor(now / 1000), jti: randomUUID(), ...claims };
  for (const [k, v] of Object.entries(payload)) if (v === undefined) delete payload[k];
  return new SignJWT(payload).setProtectedHeader({ alg: key.alg, typ: 'dpop+jwt', jwk: key.jwk, ...header }).sign(key.privateKey);
}

function ath(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

/** A proof for `GET /stamps` with this token. */
function resourceProof(key: DpopKey, token: string, claims: ProofClaims = {}, now?: number): Promise<string> {
  return proof(key, { htm: 'GET', htu: STAMPS_URL, ath: ath(token), ...claims }, {}, now);
}

/** RFC 9449 §7.1: status, the `DPoP` challenge with its error code and `algs`, and the body's code. */
function expectDpopFailure(res: Response, status: number, code: string | null): void {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  const challenge = res.headers['www-authenticate'] as string | undefined;
  expect(challenge, 'WWW-Authenticate').toBeDefined();
  if (code === null) {
    expect(challenge).toBe(`DPoP algs="${ALGS}"`);
  } else {
    expect(challenge).toMatch(new RegExp(`^DPoP error="${code}", error_description="[^"]+".*, algs="${ALGS}"$`));
    expect(res.body.error).toBe(code);
  }
}

/** A DPoP-bound access token for `key`. */
async function boundToken(app: express.Express, c: { clientId: string; secret: string }, key: DpopKey, form: Record<string, string> = {}): Promise<string> {
  const res = await tokenRequest(app, c.clientId, c.secret, form).set('DPoP', await proof(key));
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  expect(res.body.token_type).toBe('DPoP');
  return res.body.access_token as string;
}

function getStamps(app: express.Express, token: string, dpop?: string | string[], scheme = 'DPoP') {
  const req = request(app).get('/stamps').set('Authorization', `${scheme} ${token}`);
  // An array sends one header line per proof (superagent's types admit only a string).
  return dpop === undefined ? req : req.set('DPoP', dpop as string);
}

describe('RFC 9449 DPoP at the token endpoint', () => {
  let f: Fixture;
  let key: DpopKey;
  beforeEach(async () => {
    f = await setup();
    key = await dpopKey();
  });
  afterEach(async () => {
    await f.cleanup();
  });

  it('RFC 9449 §5, §6.1: a valid proof binds the token (cnf.jkt = the RFC 7638 thumbprint, token_type DPoP); the grant is otherwise unchanged', async () => {
    const c = await createClient(f.auth);
    const res = await tokenRequest(f.app, c.clientId, c.secret, { scope: 'notarization:read' }).set('DPoP', await proof(key));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ token_type: 'DPoP', scope: 'notarization:read', expires_in: 3600 });
    const { payload } = decodeJwt(res.body.access_token);
    expect(payload.cnf).toEqual({ jkt: key.jkt });
    expect(payload).toMatchObject({ client_id: c.clientId, scope: 'notarization:read', aud: ISSUER });
    // Without a proof: a bearer token, as before.
    const plain = await tokenRequest(f.app, c.clientId, c.secret);
    expect(plain.body.token_type).toBe('Bearer');
    expect(decodeJwt(plain.body.access_token).payload.cnf).toBeUndefined();
  });

  it('RFC 9449 §5.1: discovery lists dpop_signing_alg_values_supported (asymmetric only)', async () => {
    const res = await request(f.app).get('/.well-known/oauth-authorization-server');
    expect(res.body.dpop_signing_alg_values_supported).toEqual(['ES256', 'RS256', 'PS256', 'EdDSA']);
  });

  it('RFC 9449 §4: the OpenAPI document names the DPoP request header of the token endpoint, and stays valid', async () => {
    const { validate } = await import('@readme/openapi-parser');
    const doc = f.auth.openapi() as { paths: Record<string, Record<string, { parameters?: Array<{ name: string; in: string }> }>> };
    expect(doc.paths['/oauth/token']!.post!.parameters).toEqual([expect.objectContaining({ name: 'DPoP', in: 'header' })]);
    const result = await validate(structuredClone(doc) as never);
    expect(result.valid, JSON.stringify(result)).toBe(true);
  });

  it('RFC 9449 §5.2: an app registered with dpopBoundAccessTokens must send a proof (400 invalid_dpop_proof), and gets a bound token with one', async () => {
    const created = await f.auth.apps.create({ tenantId: 'acme', name: 'bound', scopes: ['notarization:read'], dpopBoundAccessTokens: true });
    const without = await tokenRequest(f.app, created.app.id, created.value!);
    expectOAuthError(without, 400, 'invalid_dpop_proof');
    const res = await tokenRequest(f.app, created.app.id, created.value!).set('DPoP', await proof(key));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.token_type).toBe('DPoP');
  });

  it('RFC 9449 §4.3 check 1: two DPoP headers are refused (400 invalid_dpop_proof)', async () => {
    const c = await createClient(f.auth);
    const res = await tokenRequest(f.app, c.clientId, c.secret).set('DPoP', [await proof(key), await proof(key)] as unknown as string);
    expectOAuthError(res, 400, 'invalid_dpop_proof');
    // Joined by a proxy into one line: still two.
    const joined = await tokenRequest(f.app, c.clientId, c.secret).set('DPoP', `${await proof(key)}, ${await proof(key)}`);
    expectOAuthError(joined, 400, 'invalid_dpop_proof');
  });

  const forged: Array<[string, (k: DpopKey) => Promise<string>]> = [
    ['§4.3 check 8: htm is not the method', (k) => proof(k, { htm: 'GET' })],
    ['§4.3 check 9: htu names another path', (k) => proof(k, { htu: `${ISSUER}/oauth/revoke` })],
    ['§4.3 check 9: htu names another host', (k) => proof(k, { htu: 'https://elsewhere.example.test/oauth/token' })],
    ['§4.3 check 9: htu names another scheme', (k) => proof(k, { htu: 'http://auth.example.test/oauth/token' })],
    ['§4.3 check 11: iat too old', (k) => proof(k, { iat: Math.floor(Date.now() / 1000) - 120 })],
    ['§4.3 check 11: iat in the future', (k) => proof(k, { iat: Math.floor(Date.now() / 1000) + 120 })],
    ['§4.3 check 3: no jti', (k) => proof(k, { jti: undefined })],
    ['§4.3 check 3: a jti longer than 256 characters', (k) => proof(k, { jti: 'j'.repeat(257) })],
    ['§4.3 check 4: typ is not dpop+jwt', (k) => proof(k, {}, { typ: 'JWT' })],
    ['§4.3 check 4: typ absent', (k) => proof(k, {}, { typ: undefined })],
    [
      '§4.3 check 5: alg none',
      async (k) => {
        const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
        const claims = { htm: 'POST', htu: TOKEN_URL, iat: Math.floor(Date.now() / 1000), jti: randomUUID() };
        return `${enc({ alg: 'none', typ: 'dpop+jwt', jwk: k.jwk })}.${enc(claims)}.AAAA`;
      },
    ],
    [
      '§4.3 check 5: alg HS256 (a symmetric key in the header)',
      async () => {
        const secret = new Uint8Array(32).fill(7);
        const jwk = { kty: 'oct', k: Buffer.from(secret).toString('base64url') };
        return new SignJWT({ htm: 'POST', htu: TOKEN_URL, iat: Math.floor(Date.now() / 1000), jti: randomUUID() })
          .setProtectedHeader({ alg: 'HS256', typ: 'dpop+jwt', jwk })
          .sign(secret);
      },
    ],
    [
      '§4.3 check 5: alg HS256 with a public jwk',
      async (k) =>
        new SignJWT({ htm: 'POST', htu: TOKEN_URL, iat: Math.floor(Date.now() / 1000), jti: randomUUID() })
          .setProtectedHeader({ alg: 'HS256', typ: 'dpop+jwt', jwk: k.jwk })
          .sign(new Uint8Array(32).fill(7)),
    ],
    ['§4.3 check 6: signed by another key than its jwk', async (k) => proof(k, {}, { jwk: (await dpopKey()).jwk })],
    [
      '§4.3 check 7: the jwk holds the private key',
      async (k) => proof(k, {}, { jwk: await exportJWK(k.privateKey) }),
    ],
    ['§4.3 check 2: not a JWT', async () => 'not-a-jwt'],
  ];

  it.each(forged)('RFC 9449 %s: 400 invalid_dpop_proof, no token', async (_name, make) => {
    const c = await createClient(f.auth);
    const res = await tokenRequest(f.app, c.clientId, c.secret).set('DPoP', await make(key));
    expectOAuthError(res, 400, 'invalid_dpop_proof');
    expect(res.body.access_token).toBeUndefined();
  });

  it('RFC 9449 §4.3 check 9: htu comes from the configured base URL, never the Host header (a spoofed Host changes nothing)', async () => {
    const c = await createClient(f.auth);
    // The proof names the host the attacker chose, and the request carries that Host: refused.
    const spoofed = await tokenRequest(f.app, c.clientId, c.secret)
      .set('Host', 'evil.example.test')
      .set('X-Forwarded-Host', 'evil.example.test')
      .set('DPoP', await proof(key, { htu: 'http://evil.example.test/oauth/token' }));
    expectOAuthError(spoofed, 400, 'invalid_dpop_proof');
    // The issuer's URL is accepted whatever the Host header says.
    const ok = await tokenRequest(f.app, c.clientId, c.secret).set('Host', 'evil.example.test').set('DPoP', await proof(key));
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
  });

  it('RFC 9449 §4.3 (RFC 3986 §6.2.2–6.2.3): htu is compared normalised: case of scheme and host, default port, query and fragment, percent-encoding', async () => {
    const c = await createClient(f.auth);
    for (const htu of [
      'HTTPS://Auth.Example.TEST/oauth/token',
      'https://auth.example.test:443/oauth/token',
      'https://auth.example.test/oauth/token?x=1#frag',
      'https://auth.example.test/%6fauth/token',
    ]) {
      const res = await tokenRequest(f.app, c.clientId, c.secret).set('DPoP', await proof(key, { htu }));
      expect(res.status, `${htu}: ${JSON.stringify(res.body)}`).toBe(200);
    }
  });

  it('RFC 9449 §4.3: a dpop.baseUrl option sets the public origin (a proxy in front), and the issuer origin no longer matches', async () => {
    const g = await setup({ dpop: { baseUrl: 'https://api.example.test/gateway' } });
    try {
      const c = await createClient(g.auth);
      const ok = await tokenRequest(g.app, c.clientId, c.secret).set('DPoP', await proof(key, { htu: 'https://api.example.test/gateway/oauth/token' }));
      expect(ok.status, JSON.stringify(ok.body)).toBe(200);
      const issuerOrigin = await tokenRequest(g.app, c.clientId, c.secret).set('DPoP', await proof(key));
      expectOAuthError(issuerOrigin, 400, 'invalid_dpop_proof');
    } finally {
      await g.cleanup();
    }
  });

  it('RFC 9449 §4.3 check 6: a proof key already imported (cached by its header) still has every signature verified', async () => {
    const c = await createClient(f.auth);
    const ok = await tokenRequest(f.app, c.clientId, c.secret).set('DPoP', await proof(key));
    expect(ok.status).toBe(200);
    // The very same header bytes (alg, typ, the victim's jwk), signed by another key.
    const thief = await dpopKey();
    const forged = await proof(thief, {}, { jwk: key.jwk });
    expect(forged.split('.')[0]).toBe((await proof(key)).split('.')[0]);
    expectOAuthError(await tokenRequest(f.app, c.clientId, c.secret).set('DPoP', forged), 400, 'invalid_dpop_proof');
  });

  it('RFC 9449 §11.1: a proof is single-use: the same jti again is refused', async () => {
    const c = await createClient(f.auth);
    const p = await proof(key);
    expect((await tokenRequest(f.app, c.clientId, c.secret).set('DPoP', p)).status).toBe(200);
    expectOAuthError(await tokenRequest(f.app, c.clientId, c.secret).set('DPoP', p), 400, 'invalid_dpop_proof');
  });

  it('RFC 9449 §6.2: introspection of a bound token answers token_type DPoP and cnf.jkt', async () => {
    const c = await createClient(f.auth);
    const token = await boundToken(f.app, c, key);
    const res = await request(f.app).post('/oauth/introspect').auth(c.clientId, c.secret).type('form').send({ token });
    expect(res.body).toMatchObject({ active: true, token_type: 'DPoP', cnf: { jkt: key.jkt } });
  });

  it('RFC 9449 §7.2, RFC 8693: a DPoP-bound subject_token is exchanged only with a proof of its key, for a token bound to it', async () => {
    const c = await createClient(f.auth);
    const subject = await boundToken(f.app, c, key);
    const form = { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: subject, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', scope: 'notarization:read' };
    expectOAuthError(await tokenRequest(f.app, c.clientId, c.secret, form), 400, 'invalid_dpop_proof');
    const other = await dpopKey();
    expectOAuthError(await tokenRequest(f.app, c.clientId, c.secret, form).set('DPoP', await proof(other)), 400, 'invalid_dpop_proof');
    const res = await tokenRequest(f.app, c.clientId, c.secret, form).set('DPoP', await proof(key));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.token_type).toBe('DPoP');
    expect(decodeJwt(res.body.access_token).payload.cnf).toEqual({ jkt: key.jkt });
  });
});

describe('RFC 9449 DPoP at a protected route (authenticate())', () => {
  let f: Fixture;
  let key: DpopKey;
  let c: Awaited<ReturnType<typeof createClient>>;
  beforeEach(async () => {
    f = await setup();
    key = await dpopKey();
    c = await createClient(f.auth);
  });
  afterEach(async () => {
    await f.cleanup();
  });

  it('RFC 9449 §7.1: Authorization: DPoP with a fresh proof of the bound key passes (cold and cached), and req.auth carries cnf.jkt', async () => {
    const token = await boundToken(f.app, c, key);
    const first = await getStamps(f.app, token, await resourceProof(key, token));
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    // Cached now: still a proof per request.
    expect((await getStamps(f.app, token, await resourceProof(key, token))).status).toBe(200);
    const me = await request(f.app)
      .get('/me')
      .set('Authorization', `DPoP ${token}`)
      .set('DPoP', await proof(key, { htm: 'GET', htu: `${ISSUER}/me`, ath: ath(token) }));
    expect(me.status, JSON.stringify(me.body)).toBe(200);
    expect(me.body.claims.cnf).toEqual({ jkt: key.jkt });
    // The scheme name is case-insensitive (RFC 9110 §11.1).
    expect((await getStamps(f.app, token, await resourceProof(key, token), 'dpop')).status).toBe(200);
  });

  it('RFC 9449 §11.1: a replayed proof (same jti) is refused at the protected route', async () => {
    const token = await boundToken(f.app, c, key);
    const p = await resourceProof(key, token);
    expect((await getStamps(f.app, token, p)).status).toBe(200);
    expectDpopFailure(await getStamps(f.app, token, p), 401, 'invalid_dpop_proof');
  });

  it('RFC 9449 §4.3 check 12: ath that is not the hash of this access token → 401 invalid_dpop_proof', async () => {
    const token = await boundToken(f.app, c, key);
    const other = await boundToken(f.app, c, key);
    expectDpopFailure(await getStamps(f.app, token, await resourceProof(key, other)), 401, 'invalid_dpop_proof');
    expectDpopFailure(await getStamps(f.app, token, await resourceProof(key, token, { ath: undefined } as ProofClaims)), 401, 'invalid_dpop_proof');
  });

  it('RFC 9449 §4.3 checks 8–9: htm and htu of another request → 401 invalid_dpop_proof', async () => {
    const token = await boundToken(f.app, c, key);
    expectDpopFailure(await getStamps(f.app, token, await resourceProof(key, token, { htm: 'POST' })), 401, 'invalid_dpop_proof');
    expectDpopFailure(await getStamps(f.app, token, await resourceProof(key, token, { htu: `${ISSUER}/feeds` })), 401, 'invalid_dpop_proof');
    // The query string is no part of htu: a proof for /stamps serves /stamps?page=2.
    const withQuery = await request(f.app).get('/stamps?page=2').set('Authorization', `DPoP ${token}`).set('DPoP', await resourceProof(key, token));
    expect(withQuery.status, JSON.stringify(withQuery.body)).toBe(200);
  });

  it('RFC 9449 §4.3 check 9: a spoofed Host header does not change the expected htu at the protected route', async () => {
    const token = await boundToken(f.app, c, key);
    const spoofed = await getStamps(f.app, token, await resourceProof(key, token, { htu: 'http://evil.example.test/stamps' })).set('Host', 'evil.example.test');
    expectDpopFailure(spoofed, 401, 'invalid_dpop_proof');
  });

  it('RFC 9449 §4.3 check 9: an absolute-form request target (GET http://elsewhere/stamps) contributes its path only, never its host', async () => {
    const token = await boundToken(f.app, c, key);
    const server = createServer(f.app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const send = (dpop: string) =>
      new Promise<number>((resolve, reject) => {
        const req = httpRequest(
          {
            host: '127.0.0.1',
            port: (server.address() as AddressInfo).port,
            method: 'GET',
            path: 'http://evil.example.test/stamps',
            headers: { authorization: `DPoP ${token}`, dpop, host: 'evil.example.test' },
          },
          (res) => {
            res.resume();
            resolve(res.statusCode!);
          },
        );
        req.on('error', reject);
        req.end();
      });
    try {
      expect(await send(await resourceProof(key, token, { htu: 'http://evil.example.test/stamps' }))).toBe(401);
      expect(await send(await resourceProof(key, token))).toBe(200);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('RFC 9449 §4.3 check 12, §6.1: a proof signed by another key than cnf.jkt → 401 invalid_token', async () => {
    const token = await boundToken(f.app, c, key);
    const thief = await dpopKey();
    expectDpopFailure(await getStamps(f.app, token, await resourceProof(thief, token)), 401, 'invalid_token');
    // Another algorithm, another key: the same answer.
    const rsa = await dpopKey('PS256');
    expectDpopFailure(await getStamps(f.app, token, await resourceProof(rsa, token)), 401, 'invalid_token');
  });

  it('RFC 9449 §7.2: a DPoP-bound token sent as Bearer is refused (401 invalid_token, both challenges), on the cold and the cached path', async () => {
    const token = await boundToken(f.app, c, key);
    const cold = await getStamps(f.app, token, undefined, 'Bearer');
    expectBearerFailure(cold, 401, 'invalid_token');
    expect(cold.headers['www-authenticate']).toContain(`DPoP algs="${ALGS}"`);
    // Now cached by a DPoP request: the Bearer scheme is still refused.
    expect((await getStamps(f.app, token, await resourceProof(key, token))).status).toBe(200);
    expectBearerFailure(await getStamps(f.app, token, undefined, 'Bearer'), 401, 'invalid_token');
    // With a proof alongside, Bearer stays Bearer: refused.
    expectBearerFailure(await getStamps(f.app, token, await resourceProof(key, token), 'Bearer'), 401, 'invalid_token');
  });

  it('RFC 9449 §7.2: the management API (verifyRequestBearer) refuses a bound token as Bearer and accepts it with DPoP', async () => {
    const admin = await f.auth.apps.create({ tenantId: 'acme', name: 'admin', scopes: ['apps:read'] });
    const token = await boundToken(f.app, { clientId: admin.app.id, secret: admin.value! }, key);
    const asBearer = await request(f.app).get('/apps').set('Authorization', `Bearer ${token}`);
    expect(asBearer.status).toBe(401);
    const asDpop = await request(f.app)
      .get('/apps')
      .set('Authorization', `DPoP ${token}`)
      .set('DPoP', await proof(key, { htm: 'GET', htu: `${ISSUER}/apps`, ath: ath(token) }));
    expect(asDpop.status, asDpop.text).toBe(200);
  });

  it('RFC 9449 §7.1: an unbound token or an API token under the DPoP scheme → 401 invalid_token (API tokens are never DPoP-bound)', async () => {
    const res = await tokenRequest(f.app, c.clientId, c.secret);
    const bearer = res.body.access_token as string;
    expectDpopFailure(await getStamps(f.app, bearer, await resourceProof(key, bearer)), 401, 'invalid_token');
    expectDpopFailure(await getStamps(f.app, c.secret, await resourceProof(key, c.secret)), 401, 'invalid_token');
    // The bearer token still works as a bearer.
    expect((await getStamps(f.app, bearer, undefined, 'Bearer')).status).toBe(200);
  });

  it('RFC 9449 §4.3 check 1: two DPoP proofs at the protected route → 401 invalid_dpop_proof; none with the DPoP scheme → 401 invalid_dpop_proof', async () => {
    const token = await boundToken(f.app, c, key);
    expectDpopFailure(await getStamps(f.app, token, [await resourceProof(key, token), await resourceProof(key, token)]), 401, 'invalid_dpop_proof');
    expectDpopFailure(await getStamps(f.app, token), 401, 'invalid_dpop_proof');
  });

  it('RFC 9449 §7.1: insufficient_scope on a DPoP request is challenged with the DPoP scheme (403)', async () => {
    const reader = await createClient(f.auth, { scopes: ['notarization:read'] });
    const token = await boundToken(f.app, reader, key);
    const res = await request(f.app)
      .post('/stamps')
      .set('Authorization', `DPoP ${token}`)
      .set('DPoP', await proof(key, { htm: 'POST', htu: STAMPS_URL, ath: ath(token) }));
    expectDpopFailure(res, 403, 'insufficient_scope');
    expect(res.headers['www-authenticate']).toContain('scope="notarization:read notarization:write"');
  });

  it("RFC 9449 §7.1: authenticate({ dpop: 'required' }) refuses bearer tokens with a DPoP challenge and accepts DPoP", async () => {
    const host = express();
    host.get('/stamps', f.auth.authenticate({ dpop: 'required' }), (_req, res) => {
      res.json({ ok: true });
    });
    const plain = (await tokenRequest(f.app, c.clientId, c.secret)).body.access_token as string;
    expectDpopFailure(await getStamps(host, plain, undefined, 'Bearer'), 401, 'invalid_token');
    expectDpopFailure(await getStamps(host, c.secret, undefined, 'Bearer'), 401, 'invalid_token');
    const none = await request(host).get('/stamps');
    expectDpopFailure(none, 401, null);
    expect(none.text).toBe('');
    const token = await boundToken(f.app, c, key);
    expect((await getStamps(host, token, await resourceProof(key, token))).status).toBe(200);
    expect(() => f.auth.authenticate({ dpop: 'sometimes' as 'required' })).toThrow(/dpop/);
  });

  it('RFC 9449 §7.1: the default mode keeps the Bearer challenge for requests without credentials', async () => {
    const res = await request(f.app).get('/stamps');
    expectBearerFailure(res, 401, null);
  });

  it('RFC 9449 §7.1: the passport strategy accepts DPoP too and refuses a bound token as Bearer', async () => {
    const passport = (await import('passport')).default;
    const host = express();
    const p = new passport.Passport();
    p.use(f.auth.strategy as unknown as import('passport').Strategy);
    host.use(p.initialize());
    host.get('/stamps', p.authenticate('app-tokens', { session: false }), (req, res) => {
      res.json({ client: req.auth?.clientId });
    });
    const token = await boundToken(f.app, c, key);
    const ok = await getStamps(host, token, await resourceProof(key, token));
    expect(ok.status, ok.text).toBe(200);
    expect(ok.body.client).toBe(c.clientId);
    expect((await getStamps(host, token, undefined, 'Bearer')).status).toBe(401);
    const replay = await getStamps(host, token, await resourceProof(key, token, { htm: 'POST' }));
    expect(replay.status).toBe(401);
    expect(replay.headers['www-authenticate']).toContain('DPoP error="invalid_dpop_proof"');
  });
});

describe('RFC 9449 across two instances on one PostgreSQL', () => {
  it('RFC 9449 §11.1: a proof used at instance A is refused at instance B (token endpoint and protected route)', async () => {
    const { instances, apps, close } = await postgresInstances(2);
    try {
      const [a, b] = apps as [express.Express, express.Express];
      const c = await createClient(instances[0]!);
      const key = await dpopKey();
      const p = await proof(key);
      const first = await tokenRequest(a, c.clientId, c.secret).set('DPoP', p);
      expect(first.status, JSON.stringify(first.body)).toBe(200);
      expectOAuthError(await tokenRequest(b, c.clientId, c.secret).set('DPoP', p), 400, 'invalid_dpop_proof');

      const token = first.body.access_token as string;
      const rp = await resourceProof(key, token);
      expect((await getStamps(a, token, rp)).status).toBe(200);
      expectDpopFailure(await getStamps(b, token, rp), 401, 'invalid_dpop_proof');
      // Both at once: exactly one wins.
      const race = await resourceProof(key, token);
      const results = await Promise.all([getStamps(a, token, race), getStamps(b, token, race)]);
      expect(results.map((r) => r.status).sort()).toEqual([200, 401]);
    } finally {
      await close();
    }
  });

  it('RFC 9449 §8, §9: with dpop.nonceSecret, a proof without a nonce gets use_dpop_nonce and a DPoP-Nonce; the nonce of instance A is accepted by instance B; a stale one is refused again', async () => {
    const clock = new Clock();
    const nonceSecret = 'n'.repeat(48);
    const { instances, apps, close } = await postgresInstances(2, { dpop: { nonceSecret, nonceLifetime: 60 }, advanced: { now: clock.now } });
    try {
      const [a, b] = apps as [express.Express, express.Express];
      const c = await createClient(instances[0]!);
      const key = await dpopKey();

      // §9: at the token endpoint, 400 use_dpop_nonce with the nonce to use.
      const challenged = await tokenRequest(a, c.clientId, c.secret).set('DPoP', await proof(key, {}, {}, clock.t));
      expectOAuthError(challenged, 400, 'use_dpop_nonce');
      const nonce = challenged.headers['dpop-nonce'] as string;
      expect(nonce).toMatch(/^[A-Za-z0-9_-]{43}$/);
      // Instance B accepts instance A's nonce.
      const issued = await tokenRequest(b, c.clientId, c.secret).set('DPoP', await proof(key, { nonce }, {}, clock.t));
      expect(issued.status, JSON.stringify(issued.body)).toBe(200);
      expect(issued.body.token_type).toBe('DPoP');
      const token = issued.body.access_token as string;

      // §8: at the protected route, 401 with a DPoP error="use_dpop_nonce" challenge and a DPoP-Nonce.
      const rs = await getStamps(b, token, await resourceProof(key, token, {}, clock.t));
      expectDpopFailure(rs, 401, 'use_dpop_nonce');
      expect(rs.headers['dpop-nonce']).toBe(nonce);
      expect((await getStamps(a, token, await resourceProof(key, token, { nonce }, clock.t))).status).toBe(200);
      // A forged nonce is no nonce.
      expectDpopFailure(await getStamps(a, token, await resourceProof(key, token, { nonce: nonce.replace(/^./, nonce[0] === 'A' ? 'B' : 'A') }, clock.t)), 401, 'use_dpop_nonce');

      // One step later the old nonce still passes, and the answer offers the new one (§8.2).
      clock.advance(60);
      const later = await getStamps(a, token, await resourceProof(key, token, { nonce }, clock.t));
      expect(later.status).toBe(200);
      const fresh = later.headers['dpop-nonce'] as string;
      expect(fresh).toBeDefined();
      expect(fresh).not.toBe(nonce);
      // The management API (RFC 9457 answers) hands out the current nonce too.
      const admin = await instances[0]!.apps.create({ tenantId: 'acme', name: 'admin', scopes: ['apps:read'] });
      const adminToken = (await tokenRequest(a, admin.app.id, admin.value!).set('DPoP', await proof(key, { nonce }, {}, clock.t))).body.access_token as string;
      const listApps = (n?: string) =>
        proof(key, { htm: 'GET', htu: `${ISSUER}/apps`, ath: ath(adminToken), ...(n === undefined ? {} : { nonce: n }) }, {}, clock.t).then((p) =>
          request(b).get('/apps').set('Authorization', `DPoP ${adminToken}`).set('DPoP', p),
        );
      const refused = await listApps();
      expect(refused.status).toBe(401);
      expect(refused.headers['dpop-nonce']).toBe(fresh);
      expect((await listApps(fresh)).status).toBe(200);

      // Two steps later it is stale: use_dpop_nonce again, with the current nonce.
      clock.advance(120);
      const stale = await getStamps(b, token, await resourceProof(key, token, { nonce }, clock.t));
      expectDpopFailure(stale, 401, 'use_dpop_nonce');
      expect(stale.headers['dpop-nonce']).not.toBe(nonce);
    } finally {
      await close();
    }
  });
});
