/**
 * Regressions of the black-box attack on the example server (issue 11) at the HTTP layer:
 * findings 11 (bodies in another charset or compressed; echoed field names), 13 (no ETag on what
 * carries a secret or a token), 14 (slow bodies are cut) and 15 (an inert `.env` download).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dotenv from 'dotenv';
import express from 'express';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { SERVER_OPTIONS } from '../examples/server.js';
import { CATALOGUE, accessToken, expectOAuthError, expectProblem, setup, type Fixture } from './helpers.js';

const fixtures: Fixture[] = [];
afterEach(async () => {
  for (const f of fixtures.splice(0)) await f.cleanup();
});

async function fixture(options: Parameters<typeof setup>[0] = {}) {
  const f = await setup(options);
  fixtures.push(f);
  const admin = await f.auth.apps.create({ tenantId: 'acme', name: 'admin', scopes: [...CATALOGUE] });
  const jwt = await accessToken(f.app, admin.app.id, admin.value);
  return { f, admin, jwt };
}

const form = (o: Record<string, string>) => new URLSearchParams(o).toString();

// ---- finding 11 -----------------------------------------------------------------------------------

describe('finding 11: bodies are UTF-8 and uncompressed', () => {
  it('RFC 6749 §3.2: a form body in charset=utf-7 (or latin1, utf-16) → 415 invalid_request at every OAuth endpoint and /tokens/refresh', async () => {
    const { f, admin } = await fixture();
    for (const charset of ['utf-7', 'UTF-7', '"utf-7"', 'iso-8859-1', 'utf-16le']) {
      for (const path of ['/oauth/token', '/oauth/introspect', '/oauth/revoke', '/tokens/refresh']) {
        const res = await request(f.app)
          .post(path)
          .set('Content-Type', `application/x-www-form-urlencoded; charset=${charset}`)
          .send(form({ grant_type: 'client_credentials', client_id: admin.app.id, client_secret: admin.value, token: '+ADw-script+AD4-' }));
        expectOAuthError(res, 415, 'invalid_request');
        expect(res.body.error_description, `${path} ${charset}`).toContain('charset');
      }
    }
    // The control: UTF-8, declared or not, is read.
    for (const type of ['application/x-www-form-urlencoded', 'application/x-www-form-urlencoded; charset=UTF-8', 'application/x-www-form-urlencoded;charset=utf8']) {
      const ok = await request(f.app)
        .post('/oauth/token')
        .set('Content-Type', type)
        .send(form({ grant_type: 'client_credentials', client_id: admin.app.id, client_secret: admin.value }));
      expect(ok.status, type).toBe(200);
    }
  });

  it('RFC 9457: the management API answers 415 naming Content-Type for another charset, and Content-Encoding for a compressed body', async () => {
    const { f, jwt } = await fixture();
    const body = JSON.stringify({ name: '+ADw-script+AD4-', scopes: ['notarization:read'] });
    const utf7 = await request(f.app).post('/apps').set('Authorization', `Bearer ${jwt}`).set('Content-Type', 'application/json; charset=utf-7').send(body);
    expectProblem(utf7, 415, 'unsupported_media_type', 'Content-Type');
    for (const encoding of ['gzip', 'deflate', 'br', 'gzip, identity']) {
      const res = await request(f.app).post('/apps').set('Authorization', `Bearer ${jwt}`).set('Content-Type', 'application/json').set('Content-Encoding', encoding).send(body);
      expectProblem(res, 415, 'unsupported_media_type', 'Content-Encoding');
    }
    const oauth = await request(f.app).post('/oauth/token').set('Content-Type', 'application/x-www-form-urlencoded').set('Content-Encoding', 'gzip').send('x');
    expectOAuthError(oauth, 415, 'invalid_request');
    expect((await f.auth.apps.list('acme')).items.map((a) => a.name)).toEqual(['admin']);
    const identity = await request(f.app).post('/apps').set('Authorization', `Bearer ${jwt}`).set('Content-Type', 'application/json').set('Content-Encoding', 'identity').send(body);
    expect(identity.status, identity.text).toBe(201);
  });

  it('an unknown field name is echoed truncated and without control characters', async () => {
    const { f, jwt } = await fixture();
    const hostile = `evil\u0000\u001b[31m\r\n${'x'.repeat(5000)}`;
    const res = await request(f.app).post('/apps').set('Authorization', `Bearer ${jwt}`).send({ name: 'a', scopes: ['notarization:read'], [hostile]: 1 });
    const problem = expectProblem(res, 400, 'validation_failed');
    expect(problem.detail as string).not.toMatch(/[\x00-\x1f\x7f]/);
    expect((problem.detail as string).length).toBeLessThan(200);
    expect(problem.field as string).not.toMatch(/[\x00-\x1f\x7f]/);
    expect((problem.field as string).length).toBeLessThanOrEqual(64);
  });
});

// ---- finding 13 -----------------------------------------------------------------------------------

describe('finding 13: no ETag on anything that carries a secret or a token', () => {
  function expectUncacheable(res: request.Response, label: string): void {
    expect(res.status, `${label}: ${res.text}`).toBeLessThan(300);
    expect(res.headers.etag, label).toBeUndefined();
    expect(res.headers['cache-control'], label).toBe('no-store');
  }

  it('RFC 6749 §5.1: the token endpoint, introspection, creation, issue, regenerate, refresh and downloads send no ETag, and If-None-Match never gets 304', async () => {
    const { f, admin, jwt } = await fixture();
    const auth = { Authorization: `Bearer ${jwt}` };
    const grant = () =>
      request(f.app).post('/oauth/token').type('form').set('If-None-Match', '*').send(form({ grant_type: 'client_credentials', client_id: admin.app.id, client_secret: admin.value }));
    expectUncacheable(await grant(), 'token endpoint');
    expectUncacheable(
      await request(f.app).post('/oauth/introspect').auth(admin.app.id, admin.value).type('form').send(form({ token: jwt })),
      'introspection',
    );
    const created = await request(f.app).post('/apps').set(auth).send({ name: 'etag', scopes: ['notarization:read'] });
    expectUncacheable(created, 'POST /apps');
    const appId = created.body.app.id as string;
    for (const format of ['', '?format=env', '?format=postman']) {
      const issued = await request(f.app).post(`/apps/${appId}/tokens${format}`).set(auth).set('If-None-Match', '*').send({ name: `t${format.length}` });
      expectUncacheable(issued, `POST /apps/:id/tokens${format}`);
    }
    const listed = await f.auth.apps.listTokens('acme', appId);
    const regenerated = await request(f.app).post(`/apps/${appId}/tokens/${listed.items[0]!.id}/regenerate`).set(auth);
    expectUncacheable(regenerated, 'regenerate');
    const refreshed = await request(f.app)
      .post('/tokens/refresh')
      .send({ client_id: appId, grant_type: 'token-exchange', refresh_token: regenerated.body.value, scope: 'openid' });
    expectUncacheable(refreshed, 'refresh');
    expect(refreshed.headers['content-type']).toMatch(/^application\/json/);
  });
});

// ---- finding 14 -----------------------------------------------------------------------------------

describe('finding 14: the example server cuts slow bodies', () => {
  it('requestTimeout ≤ 30 s, headersTimeout ≤ requestTimeout, checked often enough to act on time', () => {
    expect(SERVER_OPTIONS.requestTimeout).toBeGreaterThan(0);
    expect(SERVER_OPTIONS.requestTimeout).toBeLessThanOrEqual(30_000);
    expect(SERVER_OPTIONS.headersTimeout).toBeLessThanOrEqual(SERVER_OPTIONS.requestTimeout!);
    expect(SERVER_OPTIONS.connectionsCheckingInterval).toBeLessThanOrEqual(2_000);
  });

  it('a body trickled slower than the request timeout is cut (the same options, a 1 s timeout)', async () => {
    const app = express();
    app.post('/slow', express.text(), (_req, res) => void res.end('read'));
    const server = createServer({ ...SERVER_OPTIONS, requestTimeout: 1_000, headersTimeout: 1_000 }, app);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as AddressInfo).port;
      const started = Date.now();
      const outcome = await new Promise<string>((resolve) => {
        const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/slow', headers: { 'Content-Type': 'text/plain', 'Content-Length': '1000' } }, (res) =>
          resolve(`status ${res.statusCode}`),
        );
        req.on('error', () => resolve('closed'));
        req.write('x');
        // Never finish the body.
      });
      expect(['status 408', 'closed']).toContain(outcome);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

// ---- finding 15 -----------------------------------------------------------------------------------

describe('finding 15: the .env download is inert, and sh and dotenv read the same values', () => {
  it('a hostile issuer ($, backticks, backslashes, double quotes, ;) executes nothing when sourced, and both readers agree', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'eat-env-'));
    try {
      const canary = join(dir, 'CANARY');
      const issuer = `http://localhost:3101/a$HOME\`touch${'${IFS}'}${canary}\`$(touch${'${IFS}'}${canary})"\\x\\"y;z`;
      const { f, jwt } = await fixture({ issuer });
      const res = await request(f.app).post('/apps?format=env').set('Authorization', `Bearer ${jwt}`).send({ name: '$(id) `id`', scopes: ['notarization:read'] });
      expect(res.status, res.text).toBe(201);
      const file = join(dir, 'app.env');
      writeFileSync(file, res.text);
      const viaDotenv = dotenv.parse(res.text);
      expect(viaDotenv.ISSUER).toBe(issuer);
      for (const name of ['CLIENT_ID', 'CLIENT_SECRET', 'ISSUER', 'TOKEN_URL']) {
        const sh = spawnSync('sh', ['-c', `. "$1"; printf %s "$${name}"`, 'sh', file], { encoding: 'utf8', cwd: dir });
        expect(sh.status, sh.stderr).toBe(0);
        expect(sh.stdout, name).toBe(viaDotenv[name]);
      }
      expect(spawnSync('test', ['-e', canary]).status, 'the canary command ran').not.toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an issuer holding what single quotes cannot carry (a quote, whitespace) is refused at construction, naming the option', async () => {
    for (const issuer of ["http://localhost:3000/it's", 'http://localhost:3000/a b', 'http://localhost:3000/a\nb']) {
      await expect(setup({ issuer })).rejects.toMatchObject({ code: 'invalid_options', field: 'issuer' });
    }
  });
});
