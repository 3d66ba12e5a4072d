/**
 * Oversized bodies are cut, not drained (issue 22, item 6), on a real socket: every door that
 * reads a body answers 413 to a `Content-Length` above its limit before reading it (the test sends
 * the headers and a few bytes of a declared 50 MB: an answer that needed the body would never
 * come), and to a chunked body that keeps coming as soon as it passes the limit; then the server
 * closes the connection instead of reading on.
 */
import type { IncomingMessage } from 'node:http';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Principal } from '../src/index.js';
import { CATALOGUE, accessToken, setup, type Fixture } from './helpers.js';

const DECLARED = 50 * 1024 * 1024;
/** A chunked sender gives up after this many bytes: a server still reading by then drains. */
const SEND_CAP = 64 * 1024 * 1024;
/** How long to wait for an answer or a close that must come; only a failing run waits this long. */
const WATCHDOG_MS = 15_000;

interface Door {
  name: string;
  method: 'POST' | 'PATCH';
  path: string;
  type: string;
  headers: Record<string, string>;
  family: 'oauth' | 'problem';
  /** Whether a declared oversize is refused before the credential is looked at. */
  beforeCredentials: boolean;
}

let bearerFixture: Fixture;
let sessionFixture: Fixture;
let server: Server;
let port: number;
const doors: Door[] = [];

beforeAll(async () => {
  bearerFixture = await setup();
  const admin = await bearerFixture.auth.apps.create({ tenantId: 'acme', name: 'admin', scopes: [...CATALOGUE] });
  const jwt = await accessToken(bearerFixture.app, admin.app.id, admin.value);
  const users = new Map([['alice', ['notarization:read']]]);
  sessionFixture = await setup({
    management: {
      resolvePrincipal: (req: IncomingMessage): Principal | null =>
        req.headers['x-user'] === 'alice' ? { tenantId: 'acme', scopes: users.get('alice')!, actorId: 'alice' } : null,
      userScopes: (_tenant: string, user: string) => users.get(user) ?? null,
    },
  });
  const host = express();
  host.use(
    '/secret-scanning',
    bearerFixture.auth.secretScanning({
      keysUrl: 'https://keys.example.test/secret_scanning',
      advanced: { fetch: async () => new Response('{"public_keys":[]}', { status: 503 }) },
    }),
  );
  host.use('/session', sessionFixture.app);
  host.use(bearerFixture.app);
  server = createServer(host);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;

  const form = 'application/x-www-form-urlencoded';
  const json = 'application/json';
  const bearer = { Authorization: `Bearer ${jwt}` };
  doors.push(
    { name: 'token endpoint', method: 'POST', path: '/oauth/token', type: form, headers: {}, family: 'oauth', beforeCredentials: true },
    { name: 'introspection', method: 'POST', path: '/oauth/introspect', type: form, headers: {}, family: 'oauth', beforeCredentials: true },
    { name: 'revocation', method: 'POST', path: '/oauth/revoke', type: form, headers: {}, family: 'oauth', beforeCredentials: true },
    { name: 'API-token refresh', method: 'POST', path: '/tokens/refresh', type: json, headers: {}, family: 'oauth', beforeCredentials: true },
    { name: 'create app', method: 'POST', path: '/apps', type: json, headers: bearer, family: 'problem', beforeCredentials: true },
    { name: 'update app', method: 'PATCH', path: `/apps/${admin.app.id}`, type: json, headers: bearer, family: 'problem', beforeCredentials: true },
    { name: 'issue token', method: 'POST', path: `/apps/${admin.app.id}/tokens`, type: json, headers: bearer, family: 'problem', beforeCredentials: true },
    { name: 'personal token', method: 'POST', path: '/session/me/tokens', type: json, headers: { 'X-User': 'alice' }, family: 'problem', beforeCredentials: true },
    {
      name: 'secret scanning',
      method: 'POST',
      path: '/secret-scanning',
      type: json,
      headers: { 'Github-Public-Key-Identifier': 'abc123', 'Github-Public-Key-Signature': 'MEUCIQDabcdefghijklmnop==' },
      family: 'problem',
      beforeCredentials: false,
    },
  );
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await bearerFixture.cleanup();
  await sessionFixture.cleanup();
});

interface Exchange {
  /** Everything the server sent. */
  response: string;
  /** Body bytes we wrote. */
  sent: number;
  /** The server ended or reset the connection. */
  closed: boolean;
}

/**
 * Send `door`'s request head, then: `declared`, a Content-Length of 50 MB and 16 bytes of it;
 * `chunked`, chunks of 16 KiB for as long as the server reads (respecting backpressure) and no
 * answer has come, up to {@link SEND_CAP}. Resolves when the server has answered and closed, or
 * at the watchdog.
 */
function exchange(door: Door, mode: 'declared' | 'chunked'): Promise<Exchange> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const result: Exchange = { response: '', sent: 0, closed: false };
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(watchdog);
      socket.destroy();
      resolve(result);
    };
    const watchdog = setTimeout(finish, WATCHDOG_MS);
    socket.on('data', (data) => {
      result.response += data.toString('latin1');
    });
    socket.on('end', () => {
      result.closed = true;
      finish();
    });
    socket.on('error', () => {
      // A reset after the answer: the server stopped reading.
      result.closed = true;
      finish();
    });
    const head = [
      `${door.method} ${door.path} HTTP/1.1`,
      `Host: 127.0.0.1:${port}`,
      `Content-Type: ${door.type}`,
      ...Object.entries(door.headers).map(([k, v]) => `${k}: ${v}`),
      mode === 'declared' ? `Content-Length: ${DECLARED}` : 'Transfer-Encoding: chunked',
      '',
      '',
    ].join('\r\n');
    socket.on('connect', () => {
      socket.write(head);
      if (mode === 'declared') {
        socket.write('{"name":"aaaaaa');
        result.sent = 16;
        return;
      }
      const piece = 'a'.repeat(16 * 1024);
      const chunk = `${piece.length.toString(16)}\r\n${piece}\r\n`;
      const pump = () => {
        while (!finished && result.response === '' && result.sent < SEND_CAP) {
          result.sent += piece.length;
          if (!socket.write(chunk)) return void socket.once('drain', pump);
        }
      };
      pump();
    });
  });
}

/** A request whose body goes out in `pieces` with Transfer-Encoding: chunked (Node's default without a length). */
function chunked(path: string, type: string, headers: Record<string, string>, pieces: string[]): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: 'POST', headers: { 'Content-Type': type, ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    for (const piece of pieces) req.write(piece);
    req.end();
  });
}

function statusOf(response: string): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1] ?? 0);
}

function expect413(door: Door, ex: Exchange): void {
  expect(statusOf(ex.response), `${door.name}: ${ex.response.slice(0, 300) || '(no answer)'}`).toBe(413);
  expect(ex.response, door.name).toMatch(/\r\nconnection: close\r\n/i);
  const body = ex.response.slice(ex.response.indexOf('\r\n\r\n') + 4);
  if (door.family === 'oauth') {
    expect(ex.response).toMatch(/\r\ncontent-type: application\/json/i);
    expect(JSON.parse(body)).toMatchObject({ error: 'invalid_request' });
  } else {
    expect(ex.response).toMatch(/\r\ncontent-type: application\/problem\+json/i);
    expect(JSON.parse(body)).toMatchObject({ status: 413, code: 'payload_too_large' });
  }
  expect(ex.closed, `${door.name}: the server closed the connection`).toBe(true);
}

describe('issue 22 item 6: a declared Content-Length above the limit is refused before the body is read', () => {
  it('RFC 9110 §15.5.14: every door answers 413 to a declared 50 MB body of which 16 bytes were sent, and closes the connection', async () => {
    for (const door of doors) expect413(door, await exchange(door, 'declared'));
  });

  it('the management API refuses the declared oversize before it looks at the credential (no bearer at all → 413, not 401 after draining)', async () => {
    for (const door of doors.filter((d) => d.family === 'problem' && d.beforeCredentials)) {
      expect413(door, await exchange({ ...door, headers: {} }, 'declared'));
    }
  });
});

describe('issue 22 item 6: a chunked body is cut at the limit', () => {
  it('every door answers 413 once a chunked body passes its limit, and stops reading (closes) instead of draining', async () => {
    for (const door of doors) {
      const ex = await exchange(door, 'chunked');
      expect413(door, ex);
      expect(ex.sent, `${door.name}: still reading after ${ex.sent} bytes`).toBeLessThan(SEND_CAP);
    }
  });

  it('a chunked body refused before it is read (management without a credential: 401; secret scanning without signature headers: 401) is not drained either: the connection closes', async () => {
    for (const door of doors.filter((d) => d.family === 'problem')) {
      const ex = await exchange({ ...door, headers: {} }, 'chunked');
      expect(statusOf(ex.response), `${door.name}: ${ex.response.slice(0, 200) || '(no answer)'}`).toBe(401);
      expect(ex.response).toMatch(/\r\nconnection: close\r\n/i);
      expect(ex.closed, `${door.name}: the server closed the connection`).toBe(true);
      expect(ex.sent).toBeLessThan(SEND_CAP);
    }
  });

  it('the control: chunked bodies within the limit are read whole (token endpoint 200, create app 201)', async () => {
    const admin = await bearerFixture.auth.apps.create({ tenantId: 'acme', name: 'chunked', scopes: ['apps:write', 'notarization:read'] });
    const grant = await chunked('/oauth/token', 'application/x-www-form-urlencoded', {}, [
      'grant_type=client_credentials&client_id=',
      `${admin.app.id}&client_secret=`,
      admin.value,
    ]);
    expect(grant.status, grant.text).toBe(200);
    const jwt = (JSON.parse(grant.text) as { access_token: string }).access_token;
    const created = await chunked('/apps', 'application/json', { Authorization: `Bearer ${jwt}` }, ['{"name":"made from a chunked', ' body","scopes":["notarization:read"]}']);
    expect(created.status, created.text).toBe(201);
  });
});
