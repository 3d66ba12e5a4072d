/**
 * Issue 11 at the HTTP layer, the cases test/audit-http.test.ts leaves open: a charset smuggled
 * past a first-match check (finding 11), and dotenv's second parser reading the `.env` download as
 * sh does (finding 15). Real routers through supertest, real tokens, a real SQLite file.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dotenv from 'dotenv';
import express from 'express';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { CATALOGUE, accessToken, expectOAuthError, expectProblem, setup, type Fixture } from './helpers.js';

const fixtures: Fixture[] = [];
afterEach(async () => {
  for (const f of fixtures.splice(0)) await f.cleanup();
});

async function fixture(options: Parameters<typeof setup>[0] = {}) {
  const f = await setup(options);
  fixtures.push(f);
  const admin = await f.auth.apps.create({ tenantId: 'acme', name: 'admin', scopes: [...CATALOGUE] });
  return { f, admin, jwt: await accessToken(f.app, admin.app.id, admin.value) };
}

/** Content-Type values whose charset body-parser reads as UTF-7 although a `charset=utf-8` comes first in the text. */
const SMUGGLED = [
  'application/x-www-form-urlencoded; foo="a;charset=utf-8"; charset=utf-7',
  'application/x-www-form-urlencoded; foo="charset=utf-8"; charset=utf-7',
  'application/x-www-form-urlencoded; charset=utf-8; charset=utf-7',
  'application/x-www-form-urlencoded; charset="utf\\-7"',
];

describe('finding 11: a charset other than UTF-8 cannot be smuggled past the check', () => {
  it('the control: body-parser itself decodes UTF-7 behind a quoted "charset=utf-8" (what the check must not miss)', async () => {
    const bare = express();
    bare.post('/', express.text({ type: 'application/x-www-form-urlencoded', defaultCharset: 'utf-8' }), (req, res) => void res.json({ body: req.body }));
    const res = await request(bare).post('/').set('Content-Type', SMUGGLED[0]!).send('x=+ADw-script+AD4-');
    expect(res.body.body).toBe('x=<script>');
  });

  it('RFC 6749 §3.2 / RFC 9110 §8.3.2: a UTF-7 charset in a later or quoted parameter → 415 invalid_request at every OAuth endpoint and /tokens/refresh', async () => {
    const { f, admin } = await fixture();
    const body = new URLSearchParams({ grant_type: '+ADw-script+AD4-', client_id: admin.app.id, client_secret: admin.value, token: '+ADw-script+AD4-' }).toString();
    for (const type of SMUGGLED) {
      for (const path of ['/oauth/token', '/oauth/introspect', '/oauth/revoke', '/tokens/refresh']) {
        const res = await request(f.app).post(path).set('Content-Type', type).send(body);
        expectOAuthError(res, 415, 'invalid_request');
        expect(res.body.error_description, `${path} ${type}`).toMatch(/^Content-Type: charset/);
        expect(res.text).not.toContain('script>');
      }
    }
  });

  it('RFC 9457: the management API answers 415 problem details naming Content-Type for a smuggled charset, and creates nothing', async () => {
    const { f, jwt } = await fixture();
    for (const type of ['application/json; foo="a;charset=utf-8"; charset=utf-16le', 'application/json; charset=utf-8; charset=utf-7']) {
      const res = await request(f.app)
        .post('/apps')
        .set('Authorization', `Bearer ${jwt}`)
        .set('Content-Type', type)
        .send(JSON.stringify({ name: '+ADw-script+AD4-', scopes: ['notarization:read'] }));
      expectProblem(res, 415, 'unsupported_media_type', 'Content-Type');
    }
    expect((await f.auth.apps.list('acme')).items.map((a) => a.name)).toEqual(['admin']);
  });
});

describe('finding 15: both dotenv parsers read the .env download as sh does', () => {
  it('the default and the { fast: true } parser agree with `sh -c ". ./file"` on a hostile issuer (trailing backslash, $, backticks, non-ASCII), and nothing runs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'eat-env-'));
    try {
      const canary = join(dir, 'CANARY');
      // A backslash before a closing quote is where dotenv's fast parser looks for an escaped quote.
      for (const issuer of [`http://localhost:3101/é€😀$HOME\`touch\${IFS}${canary}\`$(touch\${IFS}${canary})"\\`, 'http://localhost:3101/a\\']) {
        const { f, jwt } = await fixture({ issuer });
        const res = await request(f.app).post('/apps?format=env').set('Authorization', `Bearer ${jwt}`).send({ name: "O'Brien $(id)", scopes: ['notarization:read'] });
        expect(res.status, res.text).toBe(201);
        writeFileSync(join(dir, 'app.env'), res.text);
        const parsed = dotenv.parse(res.text);
        const fast = dotenv.parse(res.text, { fast: true });
        expect(parsed.ISSUER).toBe(issuer);
        expect(Object.keys(parsed)).toEqual(['CLIENT_ID', 'CLIENT_SECRET', 'ISSUER', 'TOKEN_URL']);
        for (const name of Object.keys(parsed)) {
          const sh = spawnSync('sh', ['-c', `. ./app.env; printf %s "$${name}"`], { cwd: dir, encoding: 'utf8' });
          expect(sh.status, sh.stderr).toBe(0);
          expect(sh.stdout, `${name}: sh vs dotenv`).toBe(parsed[name]);
          expect(fast[name], `${name}: dotenv fast vs default`).toBe(parsed[name]);
        }
        expect(existsSync(canary), 'the canary command ran').toBe(false);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
