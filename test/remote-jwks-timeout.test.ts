/**
 * Issue 21, finding 4: `clientJwks.timeout` bounds the whole fetch of a client's `jwksUri`
 * (connect, headers, body), not only the socket's idle time. A real listening HTTP server that
 * dribbles one byte every 0.9 s (inside a 1 s idle timeout) held a token request 8.2 s; now the
 * token request answers 401 invalid_client within about the timeout.
 *
 * The upper bounds below are correctness bounds with generous slack (timeout + 1.5 s), not
 * benchmarks: without the deadline the request takes as long as the dribble (≥ 5 s).
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import request from 'supertest';
import type { Express } from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { Clock, ISSUER, expectOAuthError, setup } from './helpers.js';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

const TIMEOUT = 1000;
const SLACK = 1500;
const DRIBBLE_MS = 900;
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

type Mode = 'ok' | 'dribble-body' | 'dribble-headers';

/** A JWK Set server on 127.0.0.1 whose behaviour the test switches. */
async function jwksServer(jwk: JWK): Promise<{ url: string; setMode: (m: Mode) => void; hits: () => number }> {
  let mode: Mode = 'ok';
  let hits = 0;
  const timers = new Set<NodeJS.Timeout>();
  const body = JSON.stringify({ keys: [jwk] });
  /** Writes `text` one byte every 0.9 s: never idle for a whole second, never done in time. */
  const dribble = (res: ServerResponse, text: string, write: (byte: string) => void, end: () => void): void => {
    let i = 0;
    const timer = setInterval(() => {
      if (res.destroyed || i >= text.length) {
        clearInterval(timer);
        timers.delete(timer);
        if (!res.destroyed) end();
        return;
      }
      write(text[i++]!);
    }, DRIBBLE_MS);
    timers.add(timer);
  };
  const server: Server = createServer((_req, res) => {
    hits++;
    if (mode === 'ok') {
      res.setHeader('content-type', 'application/json');
      res.end(body);
      return;
    }
    if (mode === 'dribble-body') {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.length + 6) });
      // Six spaces first (valid JSON whitespace), then the set: about 5.4 s before the set even begins.
      const text = `      ${body}`;
      dribble(res, text, (b) => res.write(b), () => res.end());
      return;
    }
    // The status line and headers themselves, byte by byte, on the raw socket.
    const head = `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n`;
    const socket = res.socket!;
    dribble(res, head, (b) => socket.write(b), () => socket.end(body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(async () => {
    for (const t of timers) clearInterval(t);
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`, setMode: (m) => (mode = m), hits: () => hits };
}

async function fixture(clock?: Clock) {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'dribble', alg: 'ES256' };
  const jwks = await jwksServer(jwk);
  // allowPrivateAddresses: the documented switch for tests and trusted networks (the server is on loopback).
  const f = await setup({ clientJwks: { allowPrivateAddresses: true, timeout: TIMEOUT }, ...(clock ? { advanced: { now: clock.now } } : {}) });
  closers.push(() => f.cleanup());
  const created = await f.auth.apps.create({ tenantId: 'acme', name: 'remote', scopes: ['notarization:read'], tokenEndpointAuthMethod: 'private_key_jwt', jwksUri: jwks.url });
  const clientId = created.app.id;
  let n = 0;
  const grant = async (app: Express = f.app) => {
    const t = Math.floor((clock ? clock.t : Date.now()) / 1000);
    const jwt = await new SignJWT({ iss: clientId, sub: clientId, aud: ISSUER, iat: t, exp: t + 60, jti: `j-${++n}-${Math.random()}` })
      .setProtectedHeader({ alg: 'ES256', kid: 'dribble' })
      .sign(privateKey);
    const started = performance.now();
    const res = await request(app).post('/oauth/token').type('form').send({ grant_type: 'client_credentials', client_assertion_type: ASSERTION_TYPE, client_assertion: jwt });
    return { res, ms: performance.now() - started };
  };
  return { f, jwks, grant };
}

describe('jwksUri fetch: clientJwks.timeout bounds the whole fetch', () => {
  it('RFC 7523 §3 / RFC 6749 §5.2: a jwksUri host dribbling its body one byte every 0.9 s fails the token request with 401 invalid_client within about the timeout', async () => {
    const { jwks, grant } = await fixture();
    jwks.setMode('dribble-body');
    const { res, ms } = await grant();
    expectOAuthError(res, 401, 'invalid_client');
    expect(jwks.hits()).toBe(1);
    expect(ms, `answered after ${Math.round(ms)} ms`).toBeLessThan(TIMEOUT + SLACK);
  });

  it('RFC 6749 §5.2: a jwksUri host dribbling its status line and headers is cut off at the timeout too', async () => {
    const { jwks, grant } = await fixture();
    jwks.setMode('dribble-headers');
    const { res, ms } = await grant();
    expectOAuthError(res, 401, 'invalid_client');
    expect(ms, `answered after ${Math.round(ms)} ms`).toBeLessThan(TIMEOUT + SLACK);
  });

  it('a prompt host still serves the set, and once the cache is stale a dribbling host does not hold the request: the stale copy serves within the timeout', async () => {
    const clock = new Clock();
    const { jwks, grant } = await fixture(clock);
    const first = await grant();
    expect(first.res.status, first.res.text).toBe(200);
    // Past the 5-minute cache: the next request refetches, from a host that now dribbles.
    clock.advance(301);
    jwks.setMode('dribble-body');
    const { res, ms } = await grant();
    expect(res.status, res.text).toBe(200);
    expect(jwks.hits()).toBe(2);
    expect(ms, `answered after ${Math.round(ms)} ms`).toBeLessThan(TIMEOUT + SLACK);
  });

  it('concurrent token requests share the one bounded fetch: all answer within about the timeout', async () => {
    const { jwks, grant } = await fixture();
    jwks.setMode('dribble-body');
    const results = await Promise.all([grant(), grant(), grant()]);
    for (const { res, ms } of results) {
      expectOAuthError(res, 401, 'invalid_client');
      expect(ms, `answered after ${Math.round(ms)} ms`).toBeLessThan(TIMEOUT + SLACK);
    }
    expect(jwks.hits()).toBe(1);
  });
});
