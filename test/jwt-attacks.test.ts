/**
 * The RFC 8725 (JWT Best Current Practices) attack corpus, against both doors a JWT can knock on:
 * the bearer middleware (RFC 6750 answers) and introspection (RFC 7662: exactly `{active: false}`).
 *
 * Forgeries are built by hand (header and payload bytes, then a signature by node:crypto), so that
 * headers a JOSE library would refuse to produce (`alg: none`, unknown `crit`, odd encodings) can
 * be sent. Every attack that is signed with OUR private key has a control: the same construction
 * without the attack is accepted, so the refusal is about the attack and not about the forging.
 *
 * test/bearer.test.ts covers the basics for the middleware (alg none, HS256 with the JWK, jwk/jku/x5u,
 * typ, iss/aud/exp/nbf); this file extends them to more spellings and to introspection.
 */
import { createHmac, createPrivateKey, createPublicKey, createSign, type KeyObject } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CompactEncrypt, FlattenedSign, GeneralSign, exportJWK, generateKeyPair, importJWK } from 'jose';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ISSUER, accessToken, createClient, decodeJwt, expectBearerFailure, ourSigningKey, setup, type Fixture } from './helpers.js';
import { randomId } from '../src/core/secrets.js';

let f: Fixture;
/** The introspecting client (tenant acme) and the bearer's own client (tenant acme). */
let caller: Awaited<ReturnType<typeof createClient>>;
let client: Awaited<ReturnType<typeof createClient>>;
/** A real access token, and its decoded parts. */
let jwt: string;
let header: Record<string, unknown>;
let claims: Record<string, unknown>;
/** Our active signing key. */
let ourKid: string;
let ourPrivate: KeyObject;
let ourPublicJwk: Record<string, unknown>;
let jwksText: string;

beforeAll(async () => {
  f = await setup();
  caller = await createClient(f.auth, { scopes: ['notarization:read'] });
  client = await createClient(f.auth);
  jwt = await accessToken(f.app, client.clientId, client.secret);
  ({ header, payload: claims } = decodeJwt(jwt));
  const keys = await f.store.listSigningKeys();
  const active = keys.find((k) => k.retiredAt === null && k.kid === header.kid)!;
  expect(active, 'the active key signs our tokens').toBeDefined();
  expect(active.privateJwk.startsWith('{'), 'keys are stored in clear in this fixture').toBe(true);
  ourKid = active.kid;
  ourPrivate = createPrivateKey({ key: JSON.parse(active.privateJwk), format: 'jwk' });
  ourPublicJwk = JSON.parse(active.publicJwk) as Record<string, unknown>;
  jwksText = (await request(f.app).get('/.well-known/jwks.json')).text;
});
afterAll(async () => {
  await f.cleanup();
});

// ---- forging ----------------------------------------------------------------------------------------

const b64u = (s: string | Buffer) => Buffer.from(s).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

/** Fresh claims of our client: a new jti, valid for 10 minutes. */
function freshClaims(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...claims, jti: randomId(), iat: now(), exp: now() + 600, ...extra };
}

type Signer = { alg: 'RS256'; key: KeyObject } | { alg: 'HS256' | 'HS384' | 'HS512'; secret: string | Buffer } | { alg: 'none' };

/**
 * A compact JWS from raw parts: `headerPart` and `payloadPart` are objects (JSON-encoded) or
 * strings (used verbatim as the encoded segment's JSON). The signature covers exactly the bytes sent.
 */
function sign(h: Record<string, unknown> | string, p: Record<string, unknown> | string, signer: Signer): string {
  const input = `${b64u(typeof h === 'string' ? h : JSON.stringify(h))}.${b64u(typeof p === 'string' ? p : JSON.stringify(p))}`;
  let signature = '';
  if (signer.alg === 'RS256') signature = createSign('RSA-SHA256').update(input).sign(signer.key).toString('base64url');
  else if (signer.alg !== 'none') {
    const hash = `sha${signer.alg.slice(2)}`;
    signature = createHmac(hash, signer.secret).update(input).digest('base64url');
  }
  return `${input}.${signature}`;
}

/** Our key, our header: what a holder of our private key would mint (the control). */
const ours = (h: Record<string, unknown> = {}, p: Record<string, unknown> = {}) =>
  sign({ alg: 'RS256', kid: ourKid, typ: 'at+jwt', ...h }, freshClaims(p), { alg: 'RS256', key: ourPrivate });

async function attackerKey() {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = await exportJWK(publicKey);
  const priv = createPrivateKey({ key: (await exportJWK(privateKey)) as never, format: 'jwk' });
  return { priv, jwk };
}

// ---- the two doors -----------------------------------------------------------------------------------

const bearerGet = (token: string) => request(f.app).get('/stamps').set('Authorization', `Bearer ${token}`);

async function introspect(token: string) {
  return request(f.app)
    .post('/oauth/introspect')
    .type('form')
    .auth(encodeURIComponent(caller.clientId), encodeURIComponent(caller.secret))
    .send({ token });
}

/** The middleware answers 401 invalid_token; introspection answers exactly {active:false}. */
async function expectRefused(token: string, label = ''): Promise<void> {
  const res = await bearerGet(token);
  expectBearerFailure(res, 401, 'invalid_token');
  expect(res.headers['x-content-type-options'], label).toBe('nosniff');
  const intro = await introspect(token);
  expect(intro.status, `${label} introspection: ${intro.text}`).toBe(200);
  expect(intro.body, `${label} introspection`).toEqual({ active: false });
  expect(intro.headers['cache-control']).toBe('no-store');
}

/**
 * For corpora where one bad answer should not hide the others: which doors let each variant
 * through. Returns `name: door` for every acceptance (empty when all are refused).
 */
async function acceptances(variants: ReadonlyArray<readonly [string, string]>, doors: { bearer?: boolean } = {}): Promise<string[]> {
  const out: string[] = [];
  for (const [name, token] of variants) {
    if (doors.bearer !== false) {
      const res = await bearerGet(token);
      if (res.status < 400) out.push(`${name}: middleware ${res.status}`);
      else expect([400, 401], name).toContain(res.status);
    }
    const intro = await introspect(token);
    expect(intro.status, name).toBe(200);
    if (intro.body.active !== false) out.push(`${name}: introspection active`);
  }
  return out;
}

/** The control: accepted by both doors. */
async function expectAccepted(token: string, label = ''): Promise<void> {
  const res = await bearerGet(token);
  expect(res.status, `${label}: ${res.text}`).toBe(200);
  const intro = await introspect(token);
  expect(intro.body.active, label).toBe(true);
}

// ---- the corpus ----------------------------------------------------------------------------------

describe('controls', () => {
  it('a token minted by the token endpoint, and one forged with our own key and header, are both accepted', async () => {
    await expectAccepted(jwt, 'minted');
    await expectAccepted(ours(), 'forged with our key');
    // RFC 9068 §4 allows both spellings of the media type.
    await expectAccepted(ours({ typ: 'application/at+jwt' }), 'typ application/at+jwt');
  });
});

describe('RFC 8725 §3.1 / §2.1: algorithm verification', () => {
  it('RFC 8725 §3.1: alg none is refused by the middleware and inactive at introspection', async () => {
    for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
      const p = freshClaims();
      await expectRefused(sign({ ...header, alg }, p, { alg: 'none' }), `alg ${alg}, our kid, empty signature`);
      await expectRefused(sign({ alg, typ: 'at+jwt' }, p, { alg: 'none' }), `alg ${alg}, no kid`);
      // The unsigned token with a signature by our key on other bytes still attached.
      const real = jwt.split('.')[2]!;
      await expectRefused(`${sign({ ...header, alg }, p, { alg: 'none' })}${real}`, `alg ${alg}, foreign signature kept`);
    }
  });

  it('RFC 8725 §2.6: a header with a duplicated alg member cannot smuggle alg none through', async () => {
    // JSON.parse keeps the last member: RS256-then-none reads as none, and is refused unsigned.
    const h = `{"alg":"RS256","kid":${JSON.stringify(ourKid)},"typ":"at+jwt","alg":"none"}`;
    await expectRefused(sign(h, freshClaims(), { alg: 'none' }), 'RS256-then-none, unsigned');
    await expectRefused(sign(h, freshClaims(), { alg: 'RS256', key: ourPrivate }), 'RS256-then-none, signed by us');
    // none-then-RS256 reads as RS256: unsigned it is refused, and (issue 11, finding 10) signed by
    // our own key too: we never write a duplicate member, so such a header is not ours.
    const h2 = `{"alg":"none","kid":${JSON.stringify(ourKid)},"typ":"at+jwt","alg":"RS256"}`;
    await expectRefused(sign(h2, freshClaims(), { alg: 'none' }), 'none-then-RS256, unsigned');
    await expectRefused(sign(h2, freshClaims(), { alg: 'RS256', key: ourPrivate }), 'none-then-RS256, signed by us');
  });

  it('RFC 8725 §3.1: HMAC (HS256, HS384, HS512) keyed with our public key, as JWK JSON, JWKS JSON or PEM, is refused', async () => {
    const pem = createPublicKey({ key: ourPublicJwk as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' }) as string;
    const pkcs1 = createPublicKey({ key: ourPublicJwk as never, format: 'jwk' }).export({ type: 'pkcs1', format: 'pem' }) as string;
    const secrets: Record<string, string | Buffer> = {
      'jwk json': JSON.stringify(ourPublicJwk),
      'jwk json (as published)': JSON.stringify(JSON.parse(jwksText).keys[0]),
      'jwks document': jwksText,
      'spki pem': pem,
      'spki pem, no trailing newline': pem.trimEnd(),
      'pkcs1 pem': pkcs1,
      'modulus bytes': Buffer.from(ourPublicJwk.n as string, 'base64url'),
      'empty key': '',
    };
    for (const alg of ['HS256', 'HS384', 'HS512'] as const) {
      for (const [name, secret] of Object.entries(secrets)) {
        const t = sign({ ...header, alg }, freshClaims(), { alg, secret });
        await expectRefused(t, `${alg} with ${name}`);
      }
    }
  });

  it('RFC 8725 §3.1: an algorithm other than the key\'s (PS256, RS512, ES256) is refused even with a valid-looking signature', async () => {
    for (const alg of ['PS256', 'RS512', 'RS384', 'ES256', 'EdDSA']) {
      // The signature is RS256 over the bytes: only the header's claim differs.
      const t = sign({ ...header, alg }, freshClaims(), { alg: 'RS256', key: ourPrivate });
      await expectRefused(t, alg);
    }
  });
});

describe('RFC 8725 §3.10 / §2.9: keys and key references carried by the token', () => {
  it('RFC 8725 §3.10: an embedded jwk (the attacker\'s public key) is refused', async () => {
    const { priv, jwk } = await attackerKey();
    await expectRefused(sign({ ...header, jwk }, freshClaims(), { alg: 'RS256', key: priv }), 'jwk + our kid');
    await expectRefused(sign({ alg: 'RS256', typ: 'at+jwt', jwk }, freshClaims(), { alg: 'RS256', key: priv }), 'jwk, no kid');
    // Even signed by our own key: a token that names its own key is refused outright.
    await expectRefused(ours({ jwk: ourPublicJwk }), 'our key embedded, signed by us');
  });

  it('RFC 8725 §2.9: jku (a JWK Set URL) is refused and never fetched', async () => {
    const { priv } = await attackerKey();
    const fetchSpy = vi.spyOn(globalThis, 'fetch');
    try {
      for (const jku of ['https://evil.example/jwks.json', `${ISSUER}/.well-known/jwks.json`, 'http://169.254.169.254/latest/meta-data/']) {
        await expectRefused(sign({ ...header, jku }, freshClaims(), { alg: 'RS256', key: priv }), `jku ${jku}`);
        await expectRefused(ours({ jku }), `jku ${jku}, signed by us`);
      }
      expect(fetchSpy).not.toHaveBeenCalled();
    } finally {
      fetchSpy.mockRestore();
    }
  });

  it('RFC 8725 §2.9: x5u (a certificate URL) is refused and never fetched', async () => {
    const { priv } = await attackerKey();
    const fetchSpy = vi.spyOn(globalThis, 'fetch');
    try {
      await expectRefused(sign({ ...header, x5u: 'https://evil.example/cert.pem' }, freshClaims(), { alg: 'RS256', key: priv }));
      await expectRefused(ours({ x5u: 'https://evil.example/cert.pem' }), 'signed by us');
      expect(fetchSpy).not.toHaveBeenCalled();
    } finally {
      fetchSpy.mockRestore();
    }
  });

  it('RFC 8725 §3.10: an embedded x5c certificate chain is refused', async () => {
    const { priv } = await attackerKey();
    const fakeDer = b64u(Buffer.alloc(600, 7)).replace(/-/g, '+').replace(/_/g, '/');
    await expectRefused(sign({ ...header, x5c: [fakeDer] }, freshClaims(), { alg: 'RS256', key: priv }));
    await expectRefused(ours({ x5c: [fakeDer] }), 'signed by us');
  });

  it('RFC 8725 §3.10: kid with path traversal (../../etc/passwd, /dev/null with an empty HMAC key) is refused', async () => {
    const { priv } = await attackerKey();
    for (const kid of ['../../etc/passwd', '../../../../../../dev/null', '/dev/null', `../${ourKid}`, `${ourKid}/../${ourKid}`]) {
      await expectRefused(sign({ ...header, kid }, freshClaims(), { alg: 'RS256', key: priv }), `RS256 kid ${kid}`);
      await expectRefused(sign({ ...header, alg: 'HS256', kid }, freshClaims(), { alg: 'HS256', secret: '' }), `HS256 '' kid ${kid}`);
    }
  });

  it("RFC 8725 §3.10: kid with SQL (' OR 1=1 --, UNION SELECT) is refused and the key store is not queried with it", async () => {
    const listKeys = vi.spyOn(f.store, 'listSigningKeys');
    try {
      const { priv } = await attackerKey();
      for (const kid of ["' OR 1=1 --", `${ourKid}' OR '1'='1`, "x' UNION SELECT private_jwk FROM app_tokens_signing_keys --", '"; DROP TABLE apps; --']) {
        await expectRefused(sign({ ...header, kid }, freshClaims(), { alg: 'RS256', key: priv }), kid);
      }
      // Unknown kids trigger at most one key reload per 30 s (a DoS guard), and the reload takes no kid.
      expect(listKeys.mock.calls.length).toBeLessThanOrEqual(1);
      for (const call of listKeys.mock.calls) expect(call).toEqual([]);
    } finally {
      listKeys.mockRestore();
    }
  });

  it('RFC 8725 §3.10: kid with a null byte, and a non-string kid, are refused', async () => {
    for (const kid of [`${ourKid}\u0000`, `\u0000${ourKid}`, '\u0000', `${ourKid}\u0000../../etc/passwd`]) {
      await expectRefused(sign({ ...header, kid }, freshClaims(), { alg: 'RS256', key: ourPrivate }), JSON.stringify(kid));
    }
    for (const kid of [null, 1, [ourKid], { kid: ourKid }, true]) {
      await expectRefused(sign({ ...header, kid }, freshClaims(), { alg: 'RS256', key: ourPrivate }), JSON.stringify(kid));
    }
    await expectRefused(sign({ alg: 'RS256', typ: 'at+jwt' }, freshClaims(), { alg: 'RS256', key: ourPrivate }), 'no kid');
  });

  it('RFC 8725 §3.10: a very long kid is refused without work', async () => {
    const listKeys = vi.spyOn(f.store, 'listSigningKeys');
    try {
      for (const length of [1024, 4000]) {
        const kid = 'k'.repeat(length);
        await expectRefused(sign({ ...header, kid }, freshClaims(), { alg: 'RS256', key: ourPrivate }), `kid of ${length}`);
      }
      expect(listKeys.mock.calls.length).toBeLessThanOrEqual(1);
    } finally {
      listKeys.mockRestore();
    }
  });
});

describe('RFC 7515 §4.1.11 / RFC 8725 §3.3: critical header parameters', () => {
  it('RFC 7515 §4.1.11: an unknown crit header parameter is refused even when signed by our key', async () => {
    await expectRefused(ours({ crit: ['urn:evil:ext'], 'urn:evil:ext': true }), 'unknown crit');
    await expectRefused(ours({ crit: ['exp'] }), 'crit naming a registered claim');
    await expectRefused(ours({ crit: [] }), 'empty crit');
    await expectRefused(ours({ crit: ['b64'], b64: false }), 'b64:false (unencoded payload)');
  });
});

describe('RFC 8725 §3.11 / §3.12 / §2.8: explicit typing and cross-JWT confusion', () => {
  it('RFC 8725 §3.11: a wrong typ (plain JWT, id_token+jwt, missing, JOSE) is refused by both doors', async () => {
    for (const typ of ['JWT', 'jwt', 'id_token+jwt', 'JOSE', 'application/jwt', 'at+jwt+evil', '', undefined]) {
      const h: Record<string, unknown> = { alg: 'RS256', kid: ourKid };
      if (typ !== undefined) h.typ = typ;
      await expectRefused(sign(h, freshClaims(), { alg: 'RS256', key: ourPrivate }), `typ ${String(typ)}`);
    }
  });

  it('RFC 8725 §3.12 / §2.8: an ID-token-shaped JWT signed by our key (typ JWT, nonce, at_hash, aud = client_id) is refused', async () => {
    const idToken = sign(
      { alg: 'RS256', kid: ourKid, typ: 'JWT' },
      freshClaims({
        aud: client.clientId,
        azp: client.clientId,
        nonce: 'n-0S6_WzA2Mj',
        at_hash: 'MTIzNDU2Nzg5MDEyMzQ1Ng',
        auth_time: now() - 10,
        email: 'victim@example.com',
      }),
      { alg: 'RS256', key: ourPrivate },
    );
    await expectRefused(idToken, 'id token');
    // Even with our audience and the rest of our claims, typ JWT alone is enough to refuse it.
    await expectRefused(sign({ alg: 'RS256', kid: ourKid, typ: 'JWT' }, freshClaims({ nonce: 'n', at_hash: 'x' }), { alg: 'RS256', key: ourPrivate }));
  });

  it('RFC 8725 §3.10: claims of the wrong type or missing (exp as a string, scope as an array, no tenant_id, sub ≠ client_id) are refused', async () => {
    const variants: Array<[string, Record<string, unknown>]> = [
      ['exp string', { exp: String(now() + 600) }],
      ['aud number', { aud: 42 }],
      ['scope array', { scope: ['notarization:read'] }],
      ['tenant_id missing', { tenant_id: undefined }],
      ['api_token_id missing', { api_token_id: undefined }],
      ['client_id missing', { client_id: undefined }],
      ['jti missing', { jti: undefined }],
      ['sub differs from client_id', { sub: caller.clientId }],
    ];
    for (const [name, change] of variants) await expectRefused(ours({}, change), name);
  });
});

describe('RFC 7519 §4.1 / RFC 9068 §4 / RFC 8725 §3.8–3.9: claims validation', () => {
  it('RFC 7519 §4.1.4: an expired token (beyond the clock tolerance) is refused by both doors', async () => {
    await expectRefused(ours({}, { iat: now() - 3700, exp: now() - 60 }), 'expired a minute ago');
    await expectRefused(ours({}, { iat: now() - 90_000, exp: now() - 86_400 }), 'expired yesterday');
    await expectRefused(ours({}, { exp: undefined }), 'no exp');
  });

  it('RFC 7519 §4.1.5: nbf in the future is refused by both doors', async () => {
    await expectRefused(ours({}, { nbf: now() + 600 }), 'nbf in 10 minutes');
    await expectRefused(ours({}, { nbf: now() + 86_400 * 365 }), 'nbf next year');
  });

  it('RFC 8725 §3.8: a wrong iss (another issuer, a trailing slash, a case change, missing) is refused', async () => {
    for (const iss of ['https://evil.example', `${ISSUER}/`, ISSUER.toUpperCase(), `${ISSUER}.evil.example`, undefined]) {
      await expectRefused(ours({}, { iss }), `iss ${String(iss)}`);
    }
  });

  it('RFC 8725 §3.9: a wrong aud (another API, the client id, empty, missing) is refused', async () => {
    for (const aud of ['https://other-api.example', client.clientId, '', [], ['https://other-api.example'], undefined]) {
      await expectRefused(ours({}, { aud }), `aud ${JSON.stringify(aud)}`);
    }
  });
});

describe('RFC 8725 §2.7 / §3.8: substitution', () => {
  it("RFC 8725 §3.8: a token of another issuer's key (another instance, same issuer string, its own store) is refused", async () => {
    const other = await setup();
    try {
      const stranger = await createClient(other.auth);
      const foreign = await accessToken(other.app, stranger.clientId, stranger.secret);
      expect(decodeJwt(foreign).payload.iss).toBe(ISSUER);
      expect(decodeJwt(foreign).header.kid).not.toBe(ourKid);
      await expectRefused(foreign, 'their kid');
      // Relabelled with our kid: the signature does not verify with our key.
      const [, p, s] = foreign.split('.');
      await expectRefused(`${b64u(JSON.stringify({ ...decodeJwt(foreign).header, kid: ourKid }))}.${p}.${s}`, 'our kid, their signature');
      // And a token of ours is refused over there.
      expectBearerFailure(await request(other.app).get('/stamps').set('Authorization', `Bearer ${jwt}`), 401, 'invalid_token');
    } finally {
      await other.cleanup();
    }
  });

  it("RFC 8725 §2.7: a token signed by our key for another tenant's app that was deleted is refused (tombstone), fresh jti or not", async () => {
    const globex = await createClient(f.auth, { tenant: 'globex' });
    const globexPeer = await createClient(f.auth, { tenant: 'globex', scopes: ['notarization:read'] });
    const minted = await accessToken(f.app, globex.clientId, globex.secret);
    expect((await bearerGet(minted)).status).toBe(200);
    await f.auth.apps.delete('globex', globex.clientId);
    // Forged with our key after the deletion: a new jti and iat, the deleted app's identity.
    const forged = ours({}, { ...decodeJwt(minted).payload, jti: randomId(), iat: now(), exp: now() + 600 });
    for (const [name, t] of [['minted before deletion', minted], ['forged after deletion', forged]] as const) {
      expectBearerFailure(await bearerGet(t), 401, 'invalid_token');
      // Inactive for the deleted app's own tenant…
      const peer = await request(f.app)
        .post('/oauth/introspect')
        .type('form')
        .auth(encodeURIComponent(globexPeer.clientId), encodeURIComponent(globexPeer.secret))
        .send({ token: t });
      expect(peer.body, name).toEqual({ active: false });
      // …and for another tenant.
      expect((await introspect(t)).body, name).toEqual({ active: false });
    }
  });
});

describe('size, serialization and encoding tricks', () => {
  it('an oversized token (10 kB) is refused by both doors', async () => {
    const big = ours({}, { pad: 'x'.repeat(10 * 1024) });
    expect(big.length).toBeGreaterThan(10 * 1024);
    await expectRefused(big, '10 kB');
  });

  it('a 100 kB Authorization header is refused by Node before the app (431), and a 100 kB token in the body with 413', async () => {
    const big = ours({}, { pad: 'x'.repeat(100 * 1024) });
    const server = f.app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    try {
      const status = await new Promise<number | string>((resolve) => {
        const req = http.request(
          { host: '127.0.0.1', port: (server.address() as AddressInfo).port, path: '/stamps', headers: { Authorization: `Bearer ${big}` } },
          (res) => {
            res.resume();
            resolve(res.statusCode!);
          },
        );
        req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
        req.end();
      });
      // HTTP 431 (Node's 16 kB header limit), or the connection closed on the oversized request.
      expect([431, 'ECONNRESET', 'EPIPE']).toContain(status);
    } finally {
      await new Promise((r) => server.close(r));
    }
    const intro = await introspect(big);
    expect(intro.status).toBe(413);
    expect(intro.body.error).toBe('invalid_request');
    // The server is still up.
    expect((await bearerGet(jwt)).status).toBe(200);
  });

  it('RFC 6750 §2.1 / RFC 9110 §5.3: two Authorization headers are never a 200 (400 or 401)', async () => {
    const server = f.app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const port = (server.address() as AddressInfo).port;
    // node:http sends an array value as repeated header lines; the server sees both in rawHeaders.
    const send = (values: string[]) =>
      new Promise<{ status: number; body: string; wwwAuthenticate: string | undefined; raw: number }>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port, path: '/stamps', headers: { Authorization: values } }, (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () =>
            resolve({ status: res.statusCode!, body, wwwAuthenticate: res.headers['www-authenticate'] as string | undefined, raw: values.length }),
          );
        });
        req.on('error', reject);
        req.end();
      });
    try {
      const cases: Array<[string, string[]]> = [
        ['valid, garbage', [`Bearer ${jwt}`, 'Bearer garbage']],
        ['garbage, valid', ['Bearer garbage', `Bearer ${jwt}`]],
        ['valid, valid', [`Bearer ${jwt}`, `Bearer ${jwt}`]],
        ['valid, another valid', [`Bearer ${jwt}`, `Bearer ${await accessToken(f.app, caller.clientId, caller.secret)}`]],
        ['valid bearer, basic', [`Bearer ${jwt}`, 'Basic dXNlcjpwYXNz']],
      ];
      const results: Record<string, number> = {};
      for (const [name, values] of cases) {
        const res = await send(values);
        results[name] = res.status;
        if (res.status !== 200) expect(res.wwwAuthenticate, name).toMatch(/^Bearer realm=/);
      }
      // Node keeps only the first Authorization line in req.headers (it discards duplicates of
      // this header), so the middleware must look at req.rawHeaders to notice the second one.
      const passed = Object.entries(results).filter(([, status]) => ![400, 401].includes(status));
      expect(passed, JSON.stringify(results)).toEqual([]);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('RFC 6749 §3.2: two token parameters at introspection are refused with 400 invalid_request', async () => {
    const res = await request(f.app)
      .post('/oauth/introspect')
      .type('form')
      .auth(encodeURIComponent(caller.clientId), encodeURIComponent(caller.secret))
      .send(`token=${jwt}&token=garbage`);
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_request');
  });

  it('RFC 7515 §7.2: a JWS JSON serialization (flattened and general) is refused by both doors', async () => {
    const key = await ourSigningKey(f.store, ourKid);
    const payload = new TextEncoder().encode(JSON.stringify(freshClaims()));
    const flattened = await new FlattenedSign(payload).setProtectedHeader({ alg: 'RS256', kid: ourKid, typ: 'at+jwt' }).sign(key);
    const general = await new GeneralSign(payload).addSignature(key).setProtectedHeader({ alg: 'RS256', kid: ourKid, typ: 'at+jwt' }).done().sign();
    for (const [name, jws] of [['flattened', flattened], ['general', general]] as const) {
      await expectRefused(JSON.stringify(jws), `${name} JSON`);
      await expectRefused(b64u(JSON.stringify(jws)), `${name} JSON, base64url`);
    }
  });

  it('RFC 7516: a JWE (5 parts) encrypted to our public key is refused by both doors', async () => {
    const pub = await importJWK(ourPublicJwk as never, 'RSA-OAEP-256');
    const jwe = await new CompactEncrypt(new TextEncoder().encode(JSON.stringify(freshClaims())))
      .setProtectedHeader({ alg: 'RSA-OAEP-256', enc: 'A256GCM', kid: ourKid, typ: 'at+jwt', cty: 'JWT' })
      .encrypt(pub);
    expect(jwe.split('.')).toHaveLength(5);
    await expectRefused(jwe, 'JWE');
    // A "JWE" whose header claims our signing algorithm.
    const [, ...rest] = jwe.split('.');
    await expectRefused([b64u(JSON.stringify({ ...header })), ...rest].join('.'), 'JWE parts with our JWS header');
    // Four and six parts.
    await expectRefused(`${jwt}.x`, 'four parts');
    await expectRefused(`${jwt}.x.y.z`, 'six parts');
  });

  it('RFC 6750 §2.1: extra whitespace around or inside the credential is a malformed header (400) for the middleware', async () => {
    for (const value of [`Bearer  ${jwt}`, `Bearer ${jwt.replace('.', '. ')}`, `Bearer\t${jwt}`, `Bearer ${jwt} ${jwt}`]) {
      const res = await request(f.app).get('/stamps').set('Authorization', value);
      expectBearerFailure(res, 400, 'invalid_request');
    }
  });

  it('RFC 7515 §2 / §7.1: whitespace inside a segment of the compact serialization is refused by both doors', async () => {
    const [h, p, s] = jwt.split('.') as [string, string, string];
    // A tab can travel inside an Authorization header value; passport-http-bearer splits on spaces only.
    const inHeader: Array<[string, string]> = [
      ['tab inside the signature', `${h}.${p}.${s.slice(0, 100)}\t${s.slice(100)}`],
      ['tab inside the payload', `${h}.${p.slice(0, 10)}\t${p.slice(10)}.${s}`],
      ['tab inside the header', `${h.slice(0, 5)}\t${h.slice(5)}.${p}.${s}`],
    ];
    // At introspection the token is a form value, so spaces and newlines can be sent too.
    const inForm: Array<[string, string]> = [
      ['leading space', ` ${jwt}`],
      ['trailing space', `${jwt} `],
      ['trailing newline', `${jwt}\n`],
      ['space inside the signature', `${h}.${p}.${s.slice(0, 50)} ${s.slice(50)}`],
      ['CRLF inside the signature', `${h}.${p}.${s.slice(0, 50)}\r\n${s.slice(50)}`],
    ];
    const accepted = [...(await acceptances(inHeader)), ...(await acceptances(inForm, { bearer: false }))];
    expect(accepted, 'RFC 7515 §2: base64url without padding, line breaks or whitespace; other spellings of a token must be refused').toEqual([]);
  });

  it('RFC 7515 §2: base64 padding and the base64 (not base64url) alphabet are refused by both doors', async () => {
    const [h, p, s] = jwt.split('.') as [string, string, string];
    const pad = (x: string) => x + '='.repeat((4 - (x.length % 4)) % 4);
    const std = (x: string) => x.replace(/-/g, '+').replace(/_/g, '/');
    const variants: Array<[string, string]> = [
      ['padded signature', `${h}.${p}.${pad(s)}`],
      ['padded header', `${pad(h)}.${p}.${s}`],
      ['padded payload', `${h}.${pad(p)}.${s}`],
      ['one extra = on the signature', `${h}.${p}.${s}=`],
      ['standard alphabet signature', `${h}.${p}.${std(s)}`],
      ['standard alphabet, padded, everywhere', `${pad(std(h))}.${pad(std(p))}.${pad(std(s))}`],
    ];
    // The signature must need padding for the first variant to mean anything (RS256: 256 bytes → 342 chars).
    expect(s.length % 4).not.toBe(0);
    const accepted = await acceptances(variants.filter(([, t]) => t !== jwt));
    expect(accepted, 'RFC 7515 §2: base64url without padding, line breaks or whitespace; other spellings of a token must be refused').toEqual([]);
  });

  it('a truncated, empty-signature or empty-segment token is refused by both doors', async () => {
    const [h, p] = jwt.split('.') as [string, string];
    for (const [name, t] of [
      ['no signature', `${h}.${p}.`],
      ['truncated signature', jwt.slice(0, -10)],
      ['empty header', `.${p}.${jwt.split('.')[2]}`],
      ['empty payload', `${h}..${jwt.split('.')[2]}`],
      ['dots only', '..'],
      ['one segment', h],
    ] as const) {
      await expectRefused(t, name);
    }
  });
});

describe('issue 11 finding 10: nothing signed with our key is accepted unless we could have minted it', () => {
  it('exp − iat longer than the longest lifetime we issue (3600 s), up to exp: 1e300, is refused', async () => {
    await expectRefused(ours({}, freshClaims({ exp: now() + 3601 })), 'one second too long');
    await expectRefused(ours({}, freshClaims({ exp: 1e300 })), 'exp 1e300');
    await expectRefused(ours({}, freshClaims({ exp: Number.MAX_SAFE_INTEGER })), 'exp MAX_SAFE_INTEGER');
    await expectRefused(ours({}, freshClaims({ iat: now() - 10, exp: now() - 20 + 3600 * 2 })), 'long-lived, iat in the past');
  });

  it('RFC 7519 §4.1.6: iat in the future beyond the 5 s tolerance is refused; within it accepted', async () => {
    await expectRefused(ours({}, freshClaims({ iat: now() + 60, exp: now() + 600 })), 'iat +60 s');
    await expectAccepted(ours({}, freshClaims({ iat: now() + 2, exp: now() + 600 })), 'iat +2 s (tolerance)');
    await expectRefused(ours({}, freshClaims({ iat: '1700000000' })), 'iat a string');
  });

  it('a jti that is not a string of our format is refused (numeric, UUID, empty, too long)', async () => {
    for (const jti of [12345, 'a-b-c', '', 'x'.repeat(23), '0123456789abcdefghijk!']) {
      await expectRefused(ours({}, freshClaims({ jti })), `jti ${JSON.stringify(jti)}`);
    }
  });

  it('RFC 8725 §3.1: non-canonical JSON signed by us is refused: duplicate claims, a BOM, whitespace, odd number spellings', async () => {
    const p = freshClaims();
    const json = JSON.stringify(p);
    const variants: Record<string, string> = {
      'duplicate scope claim': `${json.slice(0, -1)},"scope":"apps:write"}`,
      'byte-order mark': `\uFEFF${json}`,
      'leading whitespace': ` ${json}`,
      'pretty-printed': JSON.stringify(p, null, 2),
      'exp as 1.0e3 spelling': json.replace(`"exp":${p.exp as number}`, `"exp":${p.exp as number}.0`),
      'escaped ASCII': json.replace('"scope"', '"\\u0073cope"'),
    };
    for (const [name, payload] of Object.entries(variants)) {
      expect(payload, name).not.toBe(json);
      await expectRefused(sign(header, payload, { alg: 'RS256', key: ourPrivate }), name);
    }
    await expectRefused(sign(` ${JSON.stringify(header)}`, p, { alg: 'RS256', key: ourPrivate }), 'header with whitespace');
    // The control: the same claims in JSON.stringify's spelling are ours.
    await expectAccepted(sign(header, json, { alg: 'RS256', key: ourPrivate }), 'canonical');
  });
});
