/**
 * RFC 9449 DPoP interoperability over LISTENING servers: independent clients (openid-client v6's
 * DPoP handle, oauth4webapi's `DPoP()`) get DPoP-bound tokens from our token endpoint and call our
 * protected route, with and without server nonces; express-oauth2-jwt-bearer with
 * `dpop: {enabled: true, required: true}` accepts our bound tokens as a foreign resource server.
 *
 * As in interop.test.ts the issuer is the URL the peers use, so the server listens first and the
 * fixture is created with `issuer: http://127.0.0.1:<port>`; the default `dpop.baseUrl` (the
 * issuer's origin) is then the origin the clients put in `htu`.
 */
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type ErrorRequestHandler } from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import * as client from 'openid-client';
import * as oauth from 'oauth4webapi';
import { auth as jwtBearer } from 'express-oauth2-jwt-bearer';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import { createClient, decodeJwt, setup, type Fixture, type FixtureOptions } from './helpers.js';

interface Live {
  issuer: string;
  f: Fixture;
  server: Server;
}

function listen(handler: RequestListener = (_req, res) => void res.writeHead(503).end()): Promise<Server> {
  const server = createServer(handler);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

const opened: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (opened.length > 0) await opened.pop()!();
});

async function startLive(options: FixtureOptions = {}): Promise<Live> {
  const server = await listen();
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const f = await setup({ issuer, ...options });
  server.removeAllListeners('request');
  server.on('request', f.app);
  opened.push(async () => {
    await closeServer(server);
    await f.cleanup();
  });
  return { issuer, f, server };
}

const NONCES: FixtureOptions = { dpop: { nonceSecret: 'interop-nonce-secret-of-at-least-32-chars' } };

describe('openid-client v6 DPoP handle (RFC 9449 §5, §7)', () => {
  it.each([
    ['without server nonces', {}],
    ['with server nonces (§8, §9: it retries on use_dpop_nonce by itself)', NONCES],
  ] as const)('RFC 9449 §5, §7.1: getDPoPHandle gets a DPoP-bound token and calls the protected route, %s', async (_name, options) => {
    const { issuer, f } = await startLive(options);
    const c = await createClient(f.auth, { scopes: ['notarization:read'] });
    const config = await client.discovery(new URL(issuer), c.clientId, undefined, client.ClientSecretBasic(c.secret), {
      algorithm: 'oauth2',
      execute: [client.allowInsecureRequests],
    });
    expect(config.serverMetadata().dpop_signing_alg_values_supported).toContain('ES256');
    const keyPair = await client.randomDPoPKeyPair('ES256');
    const DPoP = client.getDPoPHandle(config, keyPair);
    const tokens = await client.clientCredentialsGrant(config, { scope: 'notarization:read' }, { DPoP });
    expect(tokens.token_type).toBe('dpop'); // lower-cased by oauth4webapi
    const jkt = await calculateJwkThumbprint(await exportJWK(keyPair.publicKey));
    expect(decodeJwt(tokens.access_token).payload.cnf).toEqual({ jkt });

    for (let i = 0; i < 3; i++) {
      const res = await client.fetchProtectedResource(config, tokens.access_token, new URL(`${issuer}/stamps`), 'GET', undefined, undefined, { DPoP });
      expect(res.status, await res.clone().text()).toBe(200);
    }
    // Without the handle, the same token is a bearer and is refused (§7.2).
    await expect(client.fetchProtectedResource(config, tokens.access_token, new URL(`${issuer}/stamps`), 'GET')).rejects.toMatchObject({
      status: 401,
    });
  });
});

describe('oauth4webapi v3 DPoP() (RFC 9449 §5, §7, §8)', () => {
  it('RFC 9449 §5, §7.1, §9: DPoP() gets a bound token after one use_dpop_nonce round and calls the protected route', async () => {
    const { issuer, f } = await startLive(NONCES);
    const c = await createClient(f.auth, { scopes: ['notarization:read'] });
    const issuerUrl = new URL(issuer);
    const opts = { [oauth.allowInsecureRequests]: true };
    const as = await oauth.processDiscoveryResponse(issuerUrl, await oauth.discoveryRequest(issuerUrl, { algorithm: 'oauth2', ...opts }));
    const oauthClient: oauth.Client = { client_id: c.clientId };
    const clientAuth = oauth.ClientSecretBasic(c.secret);
    const DPoP = oauth.DPoP(oauthClient, await oauth.generateKeyPair('ES256'));

    const grant = () => oauth.clientCredentialsGrantRequest(as, oauthClient, clientAuth, { scope: 'notarization:read' }, { DPoP, ...opts });
    let nonceRounds = 0;
    let result: oauth.TokenEndpointResponse;
    try {
      result = await oauth.processClientCredentialsResponse(as, oauthClient, await grant());
    } catch (error) {
      // §9: the handle caches the DPoP-Nonce of the error; the retry carries it.
      expect(oauth.isDPoPNonceError(error)).toBe(true);
      nonceRounds++;
      result = await oauth.processClientCredentialsResponse(as, oauthClient, await grant());
    }
    expect(nonceRounds).toBe(1);
    expect(result.token_type).toBe('dpop');

    const call = () => oauth.protectedResourceRequest(result.access_token, 'GET', new URL(`${issuer}/stamps`), undefined, undefined, { DPoP, ...opts });
    const res = await call();
    expect(res.status, await res.clone().text()).toBe(200);
    expect((await call()).status).toBe(200);
  });
});

describe('express-oauth2-jwt-bearer as a foreign resource server with dpop {enabled, required} (RFC 9449 §7)', () => {
  it('RFC 9449 §7.1: accepts our DPoP-bound token with an oauth4webapi proof, and refuses our bearer tokens and a proof of another key', async () => {
    const { issuer, f } = await startLive();
    const rs = express();
    rs.get('/stamps', jwtBearer({ issuerBaseURL: issuer, audience: issuer, tokenSigningAlg: 'RS256', dpop: { enabled: true, required: true } }), (req, res) => {
      const { payload } = (req as unknown as { auth: { payload: Record<string, unknown> } }).auth;
      res.json({ sub: payload.sub, cnf: payload.cnf });
    });
    const onError: ErrorRequestHandler = (err: { status?: number; headers?: Record<string, string>; code?: string }, _req, res, _next) => {
      for (const [name, value] of Object.entries(err.headers ?? {})) res.setHeader(name, value);
      res.status(err.status ?? 500).json({ error: err.code ?? 'server_error' });
    };
    rs.use(onError);
    const rsServer = await listen(rs as unknown as RequestListener);
    opened.push(() => closeServer(rsServer));
    const rsUrl = new URL(`http://127.0.0.1:${(rsServer.address() as AddressInfo).port}/stamps`);

    const c = await createClient(f.auth, { scopes: ['notarization:read'] });
    const issuerUrl = new URL(issuer);
    const opts = { [oauth.allowInsecureRequests]: true };
    const as = await oauth.processDiscoveryResponse(issuerUrl, await oauth.discoveryRequest(issuerUrl, { algorithm: 'oauth2', ...opts }));
    const oauthClient: oauth.Client = { client_id: c.clientId };
    const clientAuth = oauth.ClientSecretBasic(c.secret);
    const keyPair = await oauth.generateKeyPair('ES256');
    const DPoP = oauth.DPoP(oauthClient, keyPair);
    const bound = await oauth.processClientCredentialsResponse(
      as,
      oauthClient,
      await oauth.clientCredentialsGrantRequest(as, oauthClient, clientAuth, { scope: 'notarization:read' }, { DPoP, ...opts }),
    );
    expect(bound.token_type).toBe('dpop');

    const ok = await oauth.protectedResourceRequest(bound.access_token, 'GET', rsUrl, undefined, undefined, { DPoP, ...opts });
    expect(ok.status, await ok.clone().text()).toBe(200);
    const body = (await ok.json()) as { sub: string; cnf: { jkt: string } };
    expect(body.sub).toBe(c.clientId);
    expect(body.cnf.jkt).toBe(await calculateJwkThumbprint(await exportJWK(keyPair.publicKey)));

    // A bearer token of ours is not accepted where DPoP is required.
    const plain = await oauth.processClientCredentialsResponse(
      as,
      oauthClient,
      await oauth.clientCredentialsGrantRequest(as, oauthClient, clientAuth, { scope: 'notarization:read' }, opts),
    );
    const asBearer = await fetch(rsUrl, { headers: { authorization: `Bearer ${plain.access_token}` } });
    expect(asBearer.status).toBeGreaterThanOrEqual(400);
    expect(asBearer.headers.get('www-authenticate')).toMatch(/^DPoP/);

    // A proof of another key for our bound token: refused (the thumbprint is not cnf.jkt).
    const thief = oauth.DPoP(oauthClient, await oauth.generateKeyPair('ES256'));
    const stolen = await oauth.protectedResourceRequest(bound.access_token, 'GET', rsUrl, undefined, undefined, { DPoP: thief, ...opts }).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(stolen).toBeInstanceOf(oauth.WWWAuthenticateChallengeError);
    const challenge = stolen as oauth.WWWAuthenticateChallengeError;
    expect(challenge.response.status).toBe(401);
    expect(challenge.cause.find((ch) => ch.scheme === 'dpop')?.parameters.error).toBe('invalid_token');
  });
});
