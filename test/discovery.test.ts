import { execFile, spawnSync } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import express from 'express';
import request from 'supertest';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createAppTokens } from '../src/index.js';
import { createMemoryStore } from '../adapters/memory/index.js';
import { wellKnownPath } from '../src/http/routes/well-known.js';
import { CATALOGUE, ISSUER, accessToken, createClient, decodeJwt, setup, type Fixture } from './helpers.js';

let f: Fixture;
beforeEach(async () => {
  f = await setup();
});
afterEach(async () => {
  await f.cleanup();
});

describe('RFC 8414 authorization server metadata', () => {
  it('RFC 8414 §3.3: issuer is identical to the iss of issued tokens', async () => {
    const meta = (await request(f.app).get('/.well-known/oauth-authorization-server')).body;
    const c = await createClient(f.auth);
    const jwt = await accessToken(f.app, c.clientId, c.secret);
    expect(meta.issuer).toBe(ISSUER);
    expect(decodeJwt(jwt).payload.iss).toBe(meta.issuer);
  });

  it('RFC 8414 §2: lists the endpoints, client_credentials and token exchange, the auth methods and the scopes', async () => {
    const res = await request(f.app).get('/.well-known/oauth-authorization-server');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const methods = ['client_secret_basic', 'client_secret_post', 'private_key_jwt'];
    // RFC 8414 §2 / RFC 7523: the algorithms private_key_jwt assertions may use (never none or HMAC).
    const algs = ['RS256', 'PS256', 'ES256', 'EdDSA'];
    expect(res.body).toEqual({
      issuer: ISSUER,
      token_endpoint: `${ISSUER}/oauth/token`,
      jwks_uri: `${ISSUER}/.well-known/jwks.json`,
      // REQUIRED by RFC 8414 §2; no authorization endpoint, so only `none` (§3.2: never an empty array).
      response_types_supported: ['none'],
      grant_types_supported: ['client_credentials', 'urn:ietf:params:oauth:grant-type:token-exchange'],
      token_endpoint_auth_methods_supported: methods,
      token_endpoint_auth_signing_alg_values_supported: algs,
      introspection_endpoint: `${ISSUER}/oauth/introspect`,
      introspection_endpoint_auth_methods_supported: methods,
      introspection_endpoint_auth_signing_alg_values_supported: algs,
      revocation_endpoint: `${ISSUER}/oauth/revoke`,
      revocation_endpoint_auth_methods_supported: methods,
      revocation_endpoint_auth_signing_alg_values_supported: algs,
      scopes_supported: CATALOGUE,
      // RFC 9449 §5.1
      dpop_signing_alg_values_supported: ['ES256', 'RS256', 'PS256', 'EdDSA'],
    });
  });

  it('RFC 8414 §3: an issuer with a path is discovered at /.well-known/oauth-authorization-server/<path>', async () => {
    const auth = createAppTokens({ store: createMemoryStore(), issuer: 'https://api.example.test/tenants/auth', scopes: CATALOGUE });
    const host = express();
    host.use(auth.wellKnown());
    host.use('/tenants/auth', auth.routes());
    const res = await request(host).get('/.well-known/oauth-authorization-server/tenants/auth');
    expect(res.status).toBe(200);
    expect(res.body.issuer).toBe('https://api.example.test/tenants/auth');
    expect(res.body.token_endpoint).toBe('https://api.example.test/tenants/auth/oauth/token');
    // The form without the path does not answer for this issuer at the root.
    expect((await request(host).get('/.well-known/oauth-authorization-server')).status).toBe(404);
    await auth.close();
  });

  it('RFC 8414 §3.1: an issuer with a path and a terminating slash is discovered at /.well-known/oauth-authorization-server/<path without the slash>, and names that issuer exactly', async () => {
    const issuer = 'https://api.example.test/tenants/auth/';
    const auth = createAppTokens({ store: createMemoryStore(), issuer, scopes: CATALOGUE });
    try {
      const host = express();
      host.use(auth.wellKnown());
      host.use('/tenants/auth', auth.routes());
      const res = await request(host).get('/.well-known/oauth-authorization-server/tenants/auth');
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      // §3.3: the issuer exactly as configured, terminating slash included.
      expect(res.body.issuer).toBe(issuer);
      expect(res.body.token_endpoint).toBe('https://api.example.test/tenants/auth/oauth/token');
      expect(res.body.jwks_uri).toBe('https://api.example.test/tenants/auth/.well-known/jwks.json');
      // The route itself is the path without the slash (Express would also answer a request that
      // adds one, so this pins the inserted path directly).
      expect(wellKnownPath(issuer)).toBe('/.well-known/oauth-authorization-server/tenants/auth');
    } finally {
      await auth.close();
    }
  });

  it('RFC 8414 §3.2: no metadata value is an empty array', async () => {
    const meta = (await request(f.app).get('/.well-known/oauth-authorization-server')).body as Record<string, unknown>;
    for (const [name, value] of Object.entries(meta)) {
      if (Array.isArray(value)) expect(value.length, name).toBeGreaterThan(0);
    }
  });

  it('endpoint URLs follow an issuer with a path', async () => {
    const auth = createAppTokens({ store: createMemoryStore(), issuer: 'https://api.example.test/auth', scopes: CATALOGUE });
    const host = express();
    host.use('/auth', auth.routes());
    const meta = (await request(host).get('/auth/.well-known/oauth-authorization-server')).body;
    expect(meta.token_endpoint).toBe('https://api.example.test/auth/oauth/token');
    expect(meta.jwks_uri).toBe('https://api.example.test/auth/.well-known/jwks.json');
    await auth.close();
  });
});

describe('JWKS', () => {
  it('RFC 7517 §5: publishes our public keys with kid, alg and use, and never a private member', async () => {
    const res = await request(f.app).get('/.well-known/jwks.json');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/jwk-set\+json/);
    expect(res.body.keys.length).toBeGreaterThan(0);
    for (const key of res.body.keys) {
      expect(key).toMatchObject({ kty: 'RSA', alg: 'RS256', use: 'sig' });
      expect(typeof key.kid).toBe('string');
      for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) expect(key[member], member).toBeUndefined();
    }
  });

  it('the same key is published after a restart', async () => {
    const before = (await request(f.app).get('/.well-known/jwks.json')).body;
    const g = await f.restart();
    f = g;
    const after = (await request(g.app).get('/.well-known/jwks.json')).body;
    expect(after).toEqual(before);
  });
});

/**
 * Debian's python3-authlib (installed by `.ci/run`). `python3` on PATH may be another Python, so
 * /usr/bin/python3. Skipped only outside CI when it is missing; in CI a missing Authlib fails.
 */
const PYTHON = '/usr/bin/python3';
const hasAuthlib = spawnSync(PYTHON, ['-c', 'import authlib'], { stdio: 'ignore' }).status === 0;
const METADATA_SCRIPT = fileURLToPath(new URL('./fixtures/authlib_metadata.py', import.meta.url));

describe.skipIf(!hasAuthlib && !process.env.CI)('RFC 8414 §2 with a real peer: Authlib (skipped: /usr/bin/python3 cannot import authlib; apt-get install python3-authlib)', () => {
  async function validate(host: express.Express, path: string): Promise<{ ok: boolean; error?: string }> {
    const server = host.listen(0, '127.0.0.1');
    await new Promise<void>((r) => server.once('listening', () => r()));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`;
      const { stdout } = await promisify(execFile)(PYTHON, [METADATA_SCRIPT, url], { timeout: 20_000 });
      return JSON.parse(stdout) as { ok: boolean; error?: string };
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  }

  it("RFC 8414 §2: Authlib's AuthorizationServerMetadata.validate() accepts the document our server serves (response_types_supported present)", async () => {
    expect(await validate(f.app, '/.well-known/oauth-authorization-server')).toEqual({ ok: true });
  });

  it("RFC 8414 §3: Authlib's validator accepts the document of an issuer with a path, at its inserted well-known URL", async () => {
    const auth = createAppTokens({ store: createMemoryStore(), issuer: 'https://api.example.test/tenants/auth', scopes: CATALOGUE });
    try {
      const host = express();
      host.use(auth.wellKnown());
      host.use('/tenants/auth', auth.routes());
      expect(await validate(host, '/.well-known/oauth-authorization-server/tenants/auth')).toEqual({ ok: true });
    } finally {
      await auth.close();
    }
  });

  it("RFC 8414 §2: the validator is a real check: it refuses our document without response_types_supported, as it did before the fix", async () => {
    const host = express();
    host.get('/meta', async (_req, res) => {
      const doc = (await request(f.app).get('/.well-known/oauth-authorization-server')).body as Record<string, unknown>;
      delete doc.response_types_supported;
      res.json(doc);
    });
    expect(await validate(host, '/meta')).toEqual({ ok: false, error: '"response_types_supported" is required' });
  });
});

