/**
 * Interoperability: real, independent OAuth 2.0 peers against a LISTENING server.
 *
 * - openid-client v6 (a client): RFC 8414 discovery, client_credentials (RFC 6749 §4.4) with
 *   client_secret_basic and client_secret_post (§2.3.1), RFC 7662 introspection, RFC 7009 revocation.
 * - oauth4webapi v3 (a client): RFC 8693 token exchange.
 * - express-oauth2-jwt-bearer (a FOREIGN resource server): validates our RFC 9068 JWTs through our
 *   metadata and JWKS, with scope checks, across a key rotation.
 * - jose (a JWT library): verifies our tokens against our remote JWK Set, across a key rotation.
 *
 * The issuer must be the very URL the peers use, so the port comes first: a plain HTTP server
 * listens on an ephemeral port with a placeholder handler, the fixture is created with
 * `issuer: http://127.0.0.1:<port>` (http is allowed for loopback), then the fixture's host app
 * becomes the server's request handler.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type ErrorRequestHandler } from 'express';
import request from 'supertest';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as client from 'openid-client';
import * as oauth from 'oauth4webapi';
import { auth as jwtBearer, requiredScopes } from 'express-oauth2-jwt-bearer';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { createClient, decodeJwt, setup, type Fixture } from './helpers.js';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

interface Live {
  issuer: string;
  f: Fixture;
  server: Server;
}

/** Listen first (to learn the port), then create the fixture whose issuer is that URL. */
/** Our server's clock (the peers keep real time): lets a test step past a key's activation delay. */
const clock = { offset: 0, now: () => new Date(Date.now() + clock.offset) };

async function startLive(): Promise<Live> {
  clock.offset = 0;
  const server = createServer((_req, res) => {
    res.statusCode = 503;
    res.end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const issuer = `http://127.0.0.1:${port}`;
  let f: Fixture;
  try {
    f = await setup({ issuer, advanced: { now: clock.now } });
  } catch (error) {
    await closeServer(server);
    throw error;
  }
  server.removeAllListeners('request');
  server.on('request', f.app);
  return { issuer, f, server };
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    // Peers (undici, http.get) may hold keep-alive sockets open: drop them so close() returns.
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

let live: Live | undefined;
beforeEach(async () => {
  live = await startLive();
});
afterEach(async () => {
  const current = live;
  live = undefined;
  if (!current) return;
  await closeServer(current.server);
  await current.f.cleanup();
});

function current(): Live {
  if (!live) throw new Error('no live server');
  return live;
}

/** A call to the fixture's own protected route (our bearer middleware), over the network. */
async function getStamps(issuer: string, token: string): Promise<Response> {
  return fetch(`${issuer}/stamps`, { headers: { authorization: `Bearer ${token}` } });
}

/** What a request sent by a peer looked like on the wire (client authentication only). */
interface Sent {
  url: string;
  authorization: string | null;
  body: URLSearchParams;
}

describe('openid-client v6 as the client (RFC 8414, RFC 6749 §4.4, RFC 7662, RFC 7009)', () => {
  it.each(['client_secret_basic', 'client_secret_post'] as const)(
    'RFC 8414 discovery, client_credentials with %s, RFC 7662 introspection and RFC 7009 revocation that the bearer middleware honours',
    async (method) => {
      const { issuer, f } = current();
      const c = await createClient(f.auth, { scopes: ['notarization:read', 'notarization:write'] });
      const sent: Sent[] = [];
      const recordingFetch: client.CustomFetch = async (url, options) => {
        const headers = new Headers(options.headers);
        const body = options.body;
        sent.push({
          url,
          authorization: headers.get('authorization'),
          body: new URLSearchParams(typeof body === 'string' || body instanceof URLSearchParams ? body : ''),
        });
        return fetch(url, options as RequestInit);
      };
      const clientAuth = method === 'client_secret_basic' ? client.ClientSecretBasic(c.secret) : client.ClientSecretPost(c.secret);
      const config = await client.discovery(new URL(issuer), c.clientId, undefined, clientAuth, {
        algorithm: 'oauth2',
        execute: [client.allowInsecureRequests],
        [client.customFetch]: recordingFetch,
      });

      // RFC 8414 §3: discovered at /.well-known/oauth-authorization-server; issuer matches.
      expect(sent[0]!.url).toBe(`${issuer}/.well-known/oauth-authorization-server`);
      const meta = config.serverMetadata();
      expect(meta.issuer).toBe(issuer);
      expect(meta.token_endpoint).toBe(`${issuer}/oauth/token`);

      // RFC 6749 §4.4: client_credentials.
      const tokens = await client.clientCredentialsGrant(config, { scope: 'notarization:read' });
      expect(tokens.token_type).toBe('bearer'); // oauth4webapi lower-cases it
      expect(tokens.scope).toBe('notarization:read');
      expect(typeof tokens.expires_in).toBe('number');
      expect(tokens.refresh_token).toBeUndefined(); // §4.4.3
      const token = tokens.access_token;
      expect(decodeJwt(token).payload).toMatchObject({ iss: issuer, client_id: c.clientId, scope: 'notarization:read' });

      // The chosen client authentication method is what went over the wire (§2.3.1).
      const tokenCall = sent.find((s) => s.url === `${issuer}/oauth/token`)!;
      if (method === 'client_secret_basic') {
        expect(tokenCall.authorization).toMatch(/^Basic /);
        expect(tokenCall.body.has('client_secret')).toBe(false);
      } else {
        expect(tokenCall.authorization).toBeNull();
        expect(tokenCall.body.get('client_id')).toBe(c.clientId);
        expect(tokenCall.body.get('client_secret')).toBe(c.secret);
      }

      // The token works on the host's protected route.
      expect((await getStamps(issuer, token)).status).toBe(200);

      // RFC 7662 §2.2: an active token, described.
      const active = await client.tokenIntrospection(config, token);
      expect(active).toMatchObject({
        active: true,
        client_id: c.clientId,
        sub: c.clientId,
        scope: 'notarization:read',
        iss: issuer,
        token_type: 'Bearer',
      });

      // RFC 7009 §2.2: revocation answers 200 (openid-client resolves), then the token is dead.
      await client.tokenRevocation(config, token);
      const revoked = await client.tokenIntrospection(config, token);
      expect(revoked).toEqual({ active: false });

      // RFC 6750 §3.1: our bearer middleware refuses the revoked token.
      const res = await getStamps(issuer, token);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');

      // Every call used the same client authentication method.
      const authenticated = sent.filter((s) => s.url.startsWith(`${issuer}/oauth/`));
      expect(authenticated.map((s) => new URL(s.url).pathname)).toEqual([
        '/oauth/token',
        '/oauth/introspect',
        '/oauth/revoke',
        '/oauth/introspect',
      ]);
      for (const s of authenticated) {
        if (method === 'client_secret_basic') expect(s.authorization).toMatch(/^Basic /);
        else expect(s.body.get('client_secret')).toBe(c.secret);
      }
    },
  );
});

describe('oauth4webapi v3 as the client (RFC 8693 token exchange)', () => {
  it('RFC 8693 §2.1–2.2.1: exchanges an access token for a narrower one, with issued_token_type', async () => {
    const { issuer, f } = current();
    const c = await createClient(f.auth, { scopes: ['notarization:read', 'notarization:write'] });
    const issuerUrl = new URL(issuer);
    const as = await oauth.processDiscoveryResponse(
      issuerUrl,
      await oauth.discoveryRequest(issuerUrl, { algorithm: 'oauth2', [oauth.allowInsecureRequests]: true }),
    );
    expect(as.grant_types_supported).toContain(TOKEN_EXCHANGE);
    const oauthClient: oauth.Client = { client_id: c.clientId };
    const clientAuth = oauth.ClientSecretBasic(c.secret);

    // The subject: a client_credentials token with both scopes.
    const subject = await oauth.processClientCredentialsResponse(
      as,
      oauthClient,
      await oauth.clientCredentialsGrantRequest(as, oauthClient, clientAuth, new URLSearchParams({ scope: 'notarization:read notarization:write' }), {
        [oauth.allowInsecureRequests]: true,
      }),
    );
    expect(subject.scope).toBe('notarization:read notarization:write');

    const response = await oauth.genericTokenEndpointRequest(
      as,
      oauthClient,
      clientAuth,
      TOKEN_EXCHANGE,
      new URLSearchParams({
        subject_token: subject.access_token,
        subject_token_type: ACCESS_TOKEN_TYPE,
        scope: 'notarization:read',
      }),
      { [oauth.allowInsecureRequests]: true },
    );
    // §2.2.1: issued_token_type is REQUIRED in the response; oauth4webapi does not check it.
    const raw = (await response.clone().json()) as Record<string, unknown>;
    expect(raw.issued_token_type).toBe(ACCESS_TOKEN_TYPE);
    expect(response.headers.get('cache-control')).toBe('no-store');

    const exchanged = await oauth.processGenericTokenEndpointResponse(as, oauthClient, response);
    expect(exchanged.token_type).toBe('bearer');
    expect(exchanged.scope).toBe('notarization:read');
    expect(exchanged.access_token).not.toBe(subject.access_token);

    const before = decodeJwt(subject.access_token).payload;
    const after = decodeJwt(exchanged.access_token).payload;
    expect(after).toMatchObject({ iss: issuer, aud: issuer, client_id: c.clientId, scope: 'notarization:read' });
    expect(after.jti).not.toBe(before.jti);
    expect(after.exp as number).toBeLessThanOrEqual(before.exp as number); // never outlives the subject

    // Narrower: reads pass, the write route (read + write) is refused with insufficient_scope.
    expect((await getStamps(issuer, exchanged.access_token)).status).toBe(200);
    const write = await fetch(`${issuer}/stamps`, { method: 'POST', headers: { authorization: `Bearer ${exchanged.access_token}` } });
    expect(write.status).toBe(403);
    expect(write.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
    const writeWithSubject = await fetch(`${issuer}/stamps`, { method: 'POST', headers: { authorization: `Bearer ${subject.access_token}` } });
    expect(writeWithSubject.status).toBe(201);
  });
});

describe('express-oauth2-jwt-bearer as a foreign resource server (RFC 9068, RFC 8414, RFC 6750)', () => {
  /**
   * What the foreign resource server needed:
   * - `issuerBaseURL` over plain http works: the library fetches with http.get/https.get by
   *   protocol and only refuses http issuers in its multi-issuer (mcd) mode under
   *   NODE_ENV=production. It tries /.well-known/openid-configuration first (404 here), then
   *   /.well-known/oauth-authorization-server, and takes `issuer` and `jwks_uri` from it.
   * - nothing for key rotation: our rotation pre-publishes the new key (in the JWKS at once,
   *   signing only after `advanced.keyActivationDelay`, 90 s), so the library's JWKS client, which
   *   refetches on an unknown kid only after a 30 s cooldown, knows the kid before any token has it.
   * - an error handler to turn its UnauthorizedError (status + WWW-Authenticate headers) into a response.
   */
  function foreignResourceServer(issuer: string) {
    const rs = express();
    rs.get(
      '/stamps',
      jwtBearer({ issuerBaseURL: issuer, audience: issuer, tokenSigningAlg: 'RS256' }),
      requiredScopes('notarization:read'),
      (req, res) => {
        // `req.auth` is typed by our own augmentation; here it holds the foreign library's result.
        const { payload } = (req as unknown as { auth: { payload: Record<string, unknown> } }).auth;
        res.json({ sub: payload.sub, scope: payload.scope });
      },
    );
    const onError: ErrorRequestHandler = (err: { status?: number; headers?: Record<string, string>; code?: string; message?: string }, _req, res, _next) => {
      for (const [name, value] of Object.entries(err.headers ?? {})) res.setHeader(name, value);
      res.status(err.status ?? 500).json({ error: err.code ?? 'server_error', message: err.message });
    };
    rs.use(onError);
    return rs;
  }

  it('RFC 9068 §4: accepts our token (200), refuses one without the scope (403) and garbage (401); after a key rotation both the new-kid and the old-kid tokens pass', async () => {
    const { issuer, f } = current();
    const reader = await createClient(f.auth, { scopes: ['notarization:read'] });
    const other = await createClient(f.auth, { scopes: ['storage:read'] });
    const rs = foreignResourceServer(issuer);
    const tokenOf = async (id: string, secret: string, scope: string) =>
      (await request(f.app).post('/oauth/token').auth(id, secret).type('form').send({ grant_type: 'client_credentials', scope })).body
        .access_token as string;

    const oldToken = await tokenOf(reader.clientId, reader.secret, 'notarization:read');
    const ok = await request(rs).get('/stamps').set('Authorization', `Bearer ${oldToken}`);
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(ok.body).toEqual({ sub: reader.clientId, scope: 'notarization:read' });

    const noScope = await tokenOf(other.clientId, other.secret, 'storage:read');
    const forbidden = await request(rs).get('/stamps').set('Authorization', `Bearer ${noScope}`);
    expect(forbidden.status, JSON.stringify(forbidden.body)).toBe(403);
    expect(forbidden.headers['www-authenticate']).toContain('error="insufficient_scope"');

    const garbage = await request(rs).get('/stamps').set('Authorization', 'Bearer not.a.jwt');
    expect(garbage.status).toBe(401);
    expect(garbage.headers['www-authenticate']).toContain('error="invalid_token"');
    // A secret of ours is not a JWT either.
    expect((await request(rs).get('/stamps').set('Authorization', `Bearer ${reader.secret}`)).status).toBe(401);

    const oldKid = decodeProtectedHeader(oldToken).kid;
    const rotated = await f.auth.rotateKeys();
    expect(rotated.kid).not.toBe(oldKid);
    expect(rotated.retired).toContain(oldKid);

    // During the activation delay new tokens still carry the old kid, which this resource server
    // (whose JWKS fetch predates the rotation, inside its 30 s refetch cooldown) knows.
    const duringDelay = await tokenOf(reader.clientId, reader.secret, 'notarization:read');
    expect(decodeProtectedHeader(duringDelay).kid).toBe(oldKid);
    expect((await request(rs).get('/stamps').set('Authorization', `Bearer ${duringDelay}`)).status).toBe(200);

    // After the delay (90 s on our clock; far beyond the peer's cooldown in real life) tokens carry
    // the new kid. A resource server whose JWKS was fetched after the rotation knows it already.
    const fresh = foreignResourceServer(issuer);
    expect((await request(fresh).get('/stamps').set('Authorization', `Bearer ${oldToken}`)).status).toBe(200);
    clock.offset += 91_000;
    const newToken = await tokenOf(reader.clientId, reader.secret, 'notarization:read');
    expect(decodeProtectedHeader(newToken).kid).toBe(rotated.kid);
    const afterNew = await request(fresh).get('/stamps').set('Authorization', `Bearer ${newToken}`);
    expect(afterNew.status, JSON.stringify(afterNew.body)).toBe(200);
    const afterOld = await request(fresh).get('/stamps').set('Authorization', `Bearer ${oldToken}`);
    expect(afterOld.status, JSON.stringify(afterOld.body)).toBe(200);
  });
});

describe('jose createRemoteJWKSet + jwtVerify (RFC 9068 §2, RFC 7517)', () => {
  it('RFC 9068 §2.1–2.2: our JWKS verifies typ at+jwt tokens with every required claim, before and after a key rotation (old and new kid)', async () => {
    const { issuer, f } = current();
    const c = await createClient(f.auth, { scopes: ['notarization:read'] });
    // Default settings: jose refetches an unknown kid only after a 30 s cooldown, which the
    // rotation's pre-publication makes unnecessary (see below).
    const jwks = createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`));
    const options = {
      issuer,
      audience: issuer,
      typ: 'at+jwt',
      requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'client_id'],
    };
    const mint = async () => {
      const res = await request(f.app)
        .post('/oauth/token')
        .auth(c.clientId, c.secret)
        .type('form')
        .send({ grant_type: 'client_credentials', scope: 'notarization:read' });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return res.body.access_token as string;
    };

    const oldToken = await mint();
    const first = await jwtVerify(oldToken, jwks, options);
    expect(first.protectedHeader).toMatchObject({ typ: 'at+jwt', alg: 'RS256' });
    expect(first.payload).toMatchObject({ iss: issuer, sub: c.clientId, aud: issuer, client_id: c.clientId, scope: 'notarization:read' });
    const oldKid = first.protectedHeader.kid;
    expect(typeof oldKid).toBe('string');

    const { kid: newKid } = await f.auth.rotateKeys();
    expect(newKid).not.toBe(oldKid);
    // This JWKS set was fetched before the rotation and is inside jose's refetch cooldown: a
    // new-kid token now would be refused. Pre-publication keeps signing with the old kid for the
    // activation delay; a JWKS set fetched after the rotation knows the new kid at once.
    expect(decodeProtectedHeader(await mint()).kid).toBe(oldKid);
    const refreshed = createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`));
    await jwtVerify(oldToken, refreshed, options); // fetches the JWKS, now with both kids
    clock.offset += 91_000;
    const newToken = await mint();
    expect(decodeProtectedHeader(newToken).kid).toBe(newKid);
    const second = await jwtVerify(newToken, refreshed, options);
    expect(second.protectedHeader.kid).toBe(newKid);
    const again = await jwtVerify(oldToken, refreshed, options);
    expect(again.protectedHeader.kid).toBe(oldKid);

    // Both keys are published; no private member leaks.
    const published = (await (await fetch(`${issuer}/.well-known/jwks.json`)).json()) as { keys: Record<string, unknown>[] };
    expect(published.keys.map((k) => k.kid)).toEqual(expect.arrayContaining([oldKid, newKid]));
    for (const key of published.keys) for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi']) expect(key).not.toHaveProperty(member);
  });
});
