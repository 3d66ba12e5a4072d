/**
 * Issue 16: access tokens are signed with node:crypto (src/core/signer.ts), not jose. The output
 * must be what jose writes (byte for byte where the signature is deterministic: RSASSA-PKCS1-v1_5
 * and Ed25519), and foreign verifiers must accept it for every algorithm we sign with.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type ErrorRequestHandler } from 'express';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { auth as jwtBearer, requiredScopes } from 'express-oauth2-jwt-bearer';
import { SignJWT, createRemoteJWKSet, exportJWK, generateKeyPair, importJWK, jwtVerify, type CryptoKey } from 'jose';
import { signJwt } from '../src/core/signer.js';
import { SIGNING_ALGORITHMS } from '../src/core/keys.js';
import { createClient, decodeJwt, setup, type Fixture } from './helpers.js';

const live: Array<{ server: Server; f: Fixture }> = [];
afterEach(async () => {
  for (const { server, f } of live.splice(0)) {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await f.cleanup();
  }
});

const claims = {
  team: 'core',
  client_id: 'app_0ds7JgMKMO6570xPGxgg7c',
  scope: 'notarization:read',
  tenant_id: 'acme',
  app_name: 'Ünïcode app "quoted"',
  api_token_id: 'tok_1',
  iss: 'https://auth.example.test',
  sub: 'app_0ds7JgMKMO6570xPGxgg7c',
  aud: 'https://auth.example.test',
  iat: 1_800_000_000,
  exp: 1_800_003_600,
  jti: '0ds7JgMKMO6570xPGxgg7c',
};

/** A private key as the key ring holds it: imported from its JWK (not extractable). */
async function ringKey(alg: (typeof SIGNING_ALGORITHMS)[number]): Promise<{ privateKey: CryptoKey; publicKey: CryptoKey }> {
  const pair = await generateKeyPair(alg, { extractable: true, ...(alg === 'RS256' ? { modulusLength: 2048 } : {}) });
  const privateKey = (await importJWK({ ...(await exportJWK(pair.privateKey)), alg }, alg)) as CryptoKey;
  return { privateKey, publicKey: pair.publicKey };
}

describe('signJwt (node:crypto) against jose', () => {
  it.each(SIGNING_ALGORITHMS)('%s: the compact JWS jose would write (same bytes when deterministic); jose verifies it', async (alg) => {
    const { privateKey, publicKey } = await ringKey(alg);
    const header = { alg, kid: 'k1', typ: 'at+jwt' } as const;
    const ours = await signJwt(header, claims, privateKey);
    const { iss, sub, aud, iat, exp, jti, ...rest } = claims;
    const theirs = await new SignJWT(rest)
      .setProtectedHeader(header)
      .setIssuer(iss)
      .setSubject(sub)
      .setAudience(aud)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .setJti(jti)
      .sign(privateKey);
    // Header and claims segments are always identical; the signature too, except ECDSA's (random k).
    expect(ours.split('.').slice(0, 2)).toEqual(theirs.split('.').slice(0, 2));
    if (alg !== 'ES256') expect(ours).toBe(theirs);
    const { payload, protectedHeader } = await jwtVerify(ours, publicKey, { algorithms: [alg], typ: 'at+jwt', currentDate: new Date(iat * 1000) });
    expect(payload).toEqual(claims);
    expect(protectedHeader).toEqual(header);
    if (alg === 'ES256') expect(Buffer.from(ours.split('.')[2]!, 'base64url')).toHaveLength(64); // r || s, RFC 7518 §3.4
  });

  it('refuses a key of another type than the algorithm', async () => {
    const { privateKey } = await ringKey('EdDSA');
    expect(() => signJwt({ alg: 'RS256', kid: 'k', typ: 'at+jwt' }, claims, privateKey)).toThrow(/RSA/);
    expect(typeof signJwt({ alg: 'EdDSA', kid: 'k', typ: 'at+jwt' }, claims, privateKey)).toBe('string'); // synchronous
    expect(() => signJwt({ alg: 'ES256', kid: 'k', typ: 'at+jwt' }, claims, privateKey)).toThrow(/P-256/);
  });
});

describe('tokens of the token endpoint, every algorithm, against foreign verifiers', () => {
  async function start(alg: (typeof SIGNING_ALGORITHMS)[number]): Promise<{ issuer: string; f: Fixture }> {
    const server = createServer((_req, res) => {
      res.statusCode = 503;
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const f = await setup({ issuer, signingAlgorithm: alg });
    server.removeAllListeners('request');
    server.on('request', f.app);
    live.push({ server, f });
    return { issuer, f };
  }

  it.each(SIGNING_ALGORITHMS)('%s: our own verifier, jose with the remote JWK Set and express-oauth2-jwt-bearer accept it', async (alg) => {
    const { issuer, f } = await start(alg);
    const c = await createClient(f.auth, { scopes: ['notarization:read'] });
    const res = await request(f.app).post('/oauth/token').auth(c.clientId, c.secret).type('form').send({ grant_type: 'client_credentials' });
    expect(res.status).toBe(200);
    const jwt = res.body.access_token as string;
    expect(decodeJwt(jwt).header).toMatchObject({ alg, typ: 'at+jwt' });
    // Ours (canonical-JSON check included).
    expect((await request(f.app).get('/stamps').set('Authorization', `Bearer ${jwt}`)).status).toBe(200);
    // jose against the JWKS over HTTP.
    const jwks = createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`));
    const { payload } = await jwtVerify(jwt, jwks, { issuer, audience: issuer, typ: 'at+jwt', algorithms: [alg] });
    expect(payload.client_id).toBe(c.clientId);
    // express-oauth2-jwt-bearer through our metadata.
    const rs = express();
    rs.get('/stamps', jwtBearer({ issuerBaseURL: issuer, audience: issuer, tokenSigningAlg: alg }), requiredScopes('notarization:read'), (_req, r) => {
      r.json({ ok: true });
    });
    const onError: ErrorRequestHandler = (err: { status?: number; message?: string }, _req, r, _next) => {
      r.status(err.status ?? 500).json({ message: err.message });
    };
    rs.use(onError);
    const ok = await request(rs).get('/stamps').set('Authorization', `Bearer ${jwt}`);
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
  });
});
