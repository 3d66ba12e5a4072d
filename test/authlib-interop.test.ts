/**
 * Issue 21, finding 8: private_key_jwt with Authlib and iddawc as they ship. Both put the token
 * endpoint URL in `aud` (RFC 7523 §3 item 3 allows it); Authlib also signs assertions that live
 * 1 h. The default stays strict (the issuer only, draft-ietf-oauth-rfc7523bis; 5 minutes); the
 * opt-in `clientAssertion: { audience: 'issuer-or-token-endpoint', maxLifetime }` accepts the token
 * endpoint URL as one string, and a longer lifetime up to 1 h.
 *
 * Authlib is the real peer: Debian's python3-authlib (installed by `.ci/run`), its `PrivateKeyJWT`
 * driven through `ClientAuth.prepare()` as OAuth2Session does (`test/fixtures/authlib_private_key_jwt.py`),
 * posting to our real listening server.
 */
import { execFile, spawnSync } from 'node:child_process';
import { generateKeyPairSync, webcrypto } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import request from 'supertest';
import type { Express } from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { Clock, ISSUER, decodeJwt, expectOAuthError, setup, thrown, type FixtureOptions } from './helpers.js';
import { createAppTokens } from '../src/index.js';
import { createMemoryStore } from '../adapters/memory/index.js';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const OPT_IN = { audience: 'issuer-or-token-endpoint', maxLifetime: 3600 } as const;
const PYTHON = '/usr/bin/python3';
const hasAuthlib = spawnSync(PYTHON, ['-c', 'import authlib'], { stdio: 'ignore' }).status === 0;
const SCRIPT = fileURLToPath(new URL('./fixtures/authlib_private_key_jwt.py', import.meta.url));

/** Our server listening on loopback, its issuer being its own URL (so `token_endpoint` is reachable). */
async function listeningServer(options: FixtureOptions = {}) {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const f = await setup({ issuer, ...options });
  server.on('request', f.app);
  closers.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    await f.cleanup();
  });
  const meta = (await request(f.app).get('/.well-known/oauth-authorization-server')).body as { token_endpoint: string };
  return { f, issuer, tokenEndpoint: meta.token_endpoint };
}

/** An RS256 private_key_jwt app; its private key as a PKCS #8 PEM file for Authlib. */
async function rsaApp(f: Awaited<ReturnType<typeof setup>>) {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'authlib-rsa', alg: 'RS256' };
  const created = await f.auth.apps.create({ tenantId: 'acme', name: 'authlib', scopes: ['notarization:read'], tokenEndpointAuthMethod: 'private_key_jwt', jwks: { keys: [jwk] } });
  const dir = mkdtempSync(join(tmpdir(), 'eat-authlib-'));
  const pem = join(dir, 'client.pem');
  writeFileSync(pem, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  closers.push(async () => rmSync(dir, { recursive: true, force: true }));
  return { clientId: created.app.id, pem };
}

interface AuthlibAnswer {
  status: number;
  body: Record<string, unknown>;
  assertion: string;
}

async function authlibTokenRequest(tokenEndpoint: string, clientId: string, pem: string): Promise<AuthlibAnswer> {
  const { stdout } = await promisify(execFile)(PYTHON, [SCRIPT, tokenEndpoint, clientId, pem, 'RS256'], { timeout: 20_000 });
  return JSON.parse(stdout) as AuthlibAnswer;
}

describe.skipIf(!hasAuthlib && !process.env.CI)('Authlib PrivateKeyJWT as shipped (skipped: /usr/bin/python3 cannot import authlib; apt-get install python3-authlib)', () => {
  it('RFC 7523 §3: with the opt-in, Authlib gets an access token (aud = the token endpoint URL, a 1 h assertion) and calls a protected route', async () => {
    const { f, issuer, tokenEndpoint } = await listeningServer({ clientAssertion: OPT_IN });
    const { clientId, pem } = await rsaApp(f);
    const answer = await authlibTokenRequest(tokenEndpoint, clientId, pem);
    // What Authlib sends, as it ships: the token endpoint URL as aud, exp one hour after iat.
    const sent = decodeJwt(answer.assertion).payload;
    expect(sent).toMatchObject({ iss: clientId, sub: clientId, aud: `${issuer}/oauth/token` });
    expect(Number(sent.exp) - Number(sent.iat)).toBe(3600);
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body).toMatchObject({ token_type: 'Bearer' });
    const { payload } = decodeJwt(String(answer.body.access_token));
    expect(payload).toMatchObject({ client_id: clientId, iss: issuer });
    expect((await request(f.app).get('/stamps').set('Authorization', `Bearer ${String(answer.body.access_token)}`)).status).toBe(200);
  });

  it('RFC 7523 §3 / draft-ietf-oauth-rfc7523bis §4: without the opt-in (the default), Authlib is refused with 401 invalid_client, as before', async () => {
    const { f, tokenEndpoint } = await listeningServer();
    const { clientId, pem } = await rsaApp(f);
    const answer = await authlibTokenRequest(tokenEndpoint, clientId, pem);
    expect(answer.status).toBe(401);
    expect(answer.body.error).toBe('invalid_client');
  });

  it('RFC 7523 §3 item 4: the audience opt-in alone does not admit Authlib: its 1 h assertion exceeds the default 5-minute maxLifetime', async () => {
    const { f, tokenEndpoint } = await listeningServer({ clientAssertion: { audience: 'issuer-or-token-endpoint' } });
    const { clientId, pem } = await rsaApp(f);
    const answer = await authlibTokenRequest(tokenEndpoint, clientId, pem);
    expect(answer.status).toBe(401);
    expect(answer.body.error).toBe('invalid_client');
  });

  it('RFC 7523 §3 item 7: an assertion Authlib sent once is refused when replayed, with the opt-in', async () => {
    const { f, tokenEndpoint } = await listeningServer({ clientAssertion: OPT_IN });
    const { clientId, pem } = await rsaApp(f);
    const answer = await authlibTokenRequest(tokenEndpoint, clientId, pem);
    expect(answer.status).toBe(200);
    const replay = await request(f.app).post('/oauth/token').type('form').send({ grant_type: 'client_credentials', client_assertion_type: ASSERTION_TYPE, client_assertion: answer.assertion });
    expectOAuthError(replay, 401, 'invalid_client');
  });
});

describe('clientAssertion opt-in: the doors it opens and the ones it keeps shut (JS-signed assertions)', () => {
  let n = 0;
  async function es256App(f: Awaited<ReturnType<typeof setup>>) {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk: JWK = { ...(await exportJWK(publicKey)), kid: `es-${++n}`, alg: 'ES256' };
    const created = await f.auth.apps.create({ tenantId: 'acme', name: 'signer', scopes: ['notarization:read'], tokenEndpointAuthMethod: 'private_key_jwt', jwks: { keys: [jwk] } });
    const clientId = created.app.id;
    const sign = (claims: Record<string, unknown>, nowSeconds = Math.floor(Date.now() / 1000)) => {
      const all: Record<string, unknown> = { iss: clientId, sub: clientId, iat: nowSeconds, exp: nowSeconds + 60, jti: `j-${++n}-${Math.random()}`, ...claims };
      for (const [k, v] of Object.entries(all)) if (v === undefined) delete all[k];
      return new SignJWT(all).setProtectedHeader({ alg: 'ES256', kid: jwk.kid }).sign(privateKey as webcrypto.CryptoKey);
    };
    return { clientId, sign };
  }
  const grant = (app: Express, jwt: string) =>
    request(app).post('/oauth/token').type('form').send({ grant_type: 'client_credentials', client_assertion_type: ASSERTION_TYPE, client_assertion: jwt });
  const TOKEN_ENDPOINT = `${ISSUER}/oauth/token`;

  it('RFC 7523 §3 item 3: an iddawc-shaped assertion (aud = the token endpoint URL as one string) gets a token with the opt-in, and 401 invalid_client without it', async () => {
    const strict = await setup();
    closers.push(() => strict.cleanup());
    const s = await es256App(strict);
    expectOAuthError(await grant(strict.app, await s.sign({ aud: TOKEN_ENDPOINT })), 401, 'invalid_client');
    expect((await grant(strict.app, await s.sign({ aud: ISSUER }))).status).toBe(200);

    const open = await setup({ clientAssertion: { audience: 'issuer-or-token-endpoint' } });
    closers.push(() => open.cleanup());
    const o = await es256App(open);
    // The URL accepted is exactly the metadata's token_endpoint.
    expect((await request(open.app).get('/.well-known/oauth-authorization-server')).body.token_endpoint).toBe(TOKEN_ENDPOINT);
    const res = await grant(open.app, await o.sign({ aud: TOKEN_ENDPOINT }));
    expect(res.status, res.text).toBe(200);
    // The issuer alone still works too.
    expect((await grant(open.app, await o.sign({ aud: ISSUER }))).status).toBe(200);
  });

  it('RFC 7523 §3 item 3: with the opt-in, an array (even [token endpoint]), a look-alike URL or another endpoint is still refused', async () => {
    const f = await setup({ clientAssertion: OPT_IN });
    closers.push(() => f.cleanup());
    const c = await es256App(f);
    for (const aud of [
      [TOKEN_ENDPOINT],
      [ISSUER, TOKEN_ENDPOINT],
      [TOKEN_ENDPOINT, 'https://evil.example/oauth/token'],
      `${TOKEN_ENDPOINT}/`,
      `${TOKEN_ENDPOINT}?x=1`,
      `${TOKEN_ENDPOINT}#x`,
      TOKEN_ENDPOINT.toUpperCase(),
      'https://AUTH.example.test/oauth/token',
      `${ISSUER}/oauth/introspect`,
      `${ISSUER}/oauth/revoke`,
      `${ISSUER}/oauth/token2`,
      'https://auth.example.test.evil.example/oauth/token',
      'https://evil.example/oauth/token',
      '',
      undefined,
    ]) {
      expectOAuthError(await grant(f.app, await c.sign({ aud })), 401, 'invalid_client');
    }
  });

  it('RFC 7523 §3 item 4: maxLifetime bounds exp − iat and exp − now, with or without iat; exp stays required', async () => {
    const f = await setup({ clientAssertion: { audience: 'issuer-or-token-endpoint', maxLifetime: 600 } });
    closers.push(() => f.cleanup());
    const c = await es256App(f);
    const now = Math.floor(Date.now() / 1000);
    expect((await grant(f.app, await c.sign({ aud: TOKEN_ENDPOINT, iat: now, exp: now + 590 }))).status).toBe(200);
    expectOAuthError(await grant(f.app, await c.sign({ aud: TOKEN_ENDPOINT, iat: now, exp: now + 700 })), 401, 'invalid_client');
    expectOAuthError(await grant(f.app, await c.sign({ aud: TOKEN_ENDPOINT, iat: undefined, exp: now + 700 })), 401, 'invalid_client');
    expectOAuthError(await grant(f.app, await c.sign({ aud: TOKEN_ENDPOINT, iat: now - 300, exp: now + 400 })), 401, 'invalid_client');
    expectOAuthError(await grant(f.app, await c.sign({ aud: TOKEN_ENDPOINT, exp: undefined })), 401, 'invalid_client');
    expectOAuthError(await grant(f.app, await c.sign({ aud: TOKEN_ENDPOINT, iat: now - 120, exp: now - 60 })), 401, 'invalid_client');
    // The default stays 5 minutes.
    const d = await setup();
    closers.push(() => d.cleanup());
    const dc = await es256App(d);
    expect((await grant(d.app, await dc.sign({ aud: ISSUER, exp: now + 290 }))).status).toBe(200);
    expectOAuthError(await grant(d.app, await dc.sign({ aud: ISSUER, exp: now + 400 })), 401, 'invalid_client');
  });

  it('RFC 7523 §3 item 7: a 1 h assertion is replay-checked for its whole lifetime, not only the default 5 minutes', async () => {
    const clock = new Clock();
    const f = await setup({ clientAssertion: OPT_IN, advanced: { now: clock.now } });
    closers.push(() => f.cleanup());
    const c = await es256App(f);
    const t = Math.floor(clock.t / 1000);
    const once = await c.sign({ aud: TOKEN_ENDPOINT, iat: t, exp: t + 3600 }, t);
    expect((await grant(f.app, once)).status).toBe(200);
    clock.advance(1800);
    expectOAuthError(await grant(f.app, once), 401, 'invalid_client');
    clock.advance(1790);
    expectOAuthError(await grant(f.app, once), 401, 'invalid_client');
  });

  it('refuses bad clientAssertion options at construction, naming them', async () => {
    const make = (clientAssertion: unknown) => () => createAppTokens({ store: createMemoryStore(), issuer: ISSUER, scopes: ['a:read'], clientAssertion } as never);
    for (const [value, field] of [
      [{ maxLifetime: 0 }, 'clientAssertion.maxLifetime'],
      [{ maxLifetime: 3601 }, 'clientAssertion.maxLifetime'],
      [{ maxLifetime: 1.5 }, 'clientAssertion.maxLifetime'],
      [{ maxLifetime: '300' }, 'clientAssertion.maxLifetime'],
      [{ audience: 'token-endpoint' }, 'clientAssertion.audience'],
      [{ audience: ['issuer'] }, 'clientAssertion.audience'],
      [{ audiences: 'issuer' }, 'clientAssertion.audiences'],
      ['issuer', 'clientAssertion'],
    ] as const) {
      const error = thrown(make(value));
      expect(error.code, JSON.stringify(value)).toBe('invalid_options');
      expect(error.message, JSON.stringify(value)).toContain(field);
    }
    // The bounds themselves are accepted.
    for (const maxLifetime of [1, 3600]) await make({ maxLifetime, audience: 'issuer-or-token-endpoint' })().close();
  });
});
