/**
 * Shared test fixtures: a real SQLite file, the real routers, real tokens.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express, { type Express } from 'express';
import request, { type Response } from 'supertest';
import { expect } from 'vitest';
import { createAppTokens, type AppTokens, type AppTokensOptions, type Store } from '../src/index.js';
import { createSqliteStore } from '../adapters/sql/index.js';
import { createMemoryStore } from '../adapters/memory/index.js';
import { EXAMPLE_SCOPES } from '../src/cli.js';

export const ISSUER = 'https://auth.example.test';
/** The tests use the example server's catalogue. */
export const CATALOGUE = [...EXAMPLE_SCOPES];

export interface Fixture {
  auth: AppTokens;
  store: Store;
  app: Express;
  dir: string;
  /** Re-create the AppTokens instance on the same store file (a restart). */
  restart(options?: FixtureOptions): Promise<Fixture>;
  cleanup(): Promise<void>;
}

export type FixtureOptions = Partial<Omit<AppTokensOptions, 'store'>> & { store?: 'sqlite' | 'memory' };

/** The host app of the tests: our routes plus protected routes with each kind of guard. */
export function hostApp(auth: AppTokens): Express {
  const app = express();
  app.use(auth.routes());
  app.get('/me', auth.authenticate(), (req, res) => {
    res.json(req.auth);
  });
  app.get('/stamps', auth.authenticate(), auth.requireScopes('notarization:read'), (_req, res) => {
    res.json({ ok: true });
  });
  app.post('/stamps', auth.authenticate(), auth.requireScopes('notarization:read', 'notarization:write'), (_req, res) => {
    res.status(201).json({ ok: true });
  });
  app.get('/feeds', auth.authenticate(), auth.requireAnyScope('storage:read', 'streams:read'), (_req, res) => {
    res.json({ ok: true });
  });
  return app;
}

/** A fresh AppTokens on a real SQLite file (or memory) with its host app. */
export async function setup(options: FixtureOptions = {}, dir = mkdtempSync(join(tmpdir(), 'eat-test-'))): Promise<Fixture> {
  const { store: kind = 'sqlite', advanced, ...rest } = options;
  const store = kind === 'memory' ? createMemoryStore() : createSqliteStore({ filename: join(dir, 'tokens.db') });
  const auth = createAppTokens({
    store,
    issuer: ISSUER,
    scopes: CATALOGUE,
    ...rest,
    advanced: { revocationSyncInterval: 0, lastUsedFlushInterval: 0, ...advanced },
  });
  await auth.ready();
  const fixture: Fixture = {
    auth,
    store,
    app: hostApp(auth),
    dir,
    async restart(more = {}) {
      await auth.close();
      await store.close();
      return setup({ ...options, ...more }, dir);
    },
    async cleanup() {
      await auth.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return fixture;
}

/** Create an app and return its client credentials. */
export async function createClient(
  auth: AppTokens,
  options: { tenant?: string; scopes?: string[]; tokenScopes?: string[]; expiresIn?: number; customClaims?: Record<string, unknown> } = {},
): Promise<{ clientId: string; secret: string; tokenId: string; tenant: string }> {
  const tenant = options.tenant ?? 'acme';
  const created = await auth.apps.create({
    tenantId: tenant,
    name: 'test app',
    scopes: options.scopes ?? ['notarization:read', 'notarization:write'],
    customClaims: options.customClaims,
    token: { scopes: options.tokenScopes, expiresIn: options.expiresIn },
  });
  return { clientId: created.app.id, secret: created.value, tokenId: created.token.id, tenant };
}

/** client_credentials with client_secret_basic; returns the response. */
export function tokenRequest(app: Express, clientId: string, secret: string, form: Record<string, string> = {}) {
  return request(app)
    .post('/oauth/token')
    .auth(encodeURIComponent(clientId), encodeURIComponent(secret))
    .type('form')
    .send({ grant_type: 'client_credentials', ...form });
}

/** An access token, asserting the grant succeeded. */
export async function accessToken(app: Express, clientId: string, secret: string, scope?: string): Promise<string> {
  const res = await tokenRequest(app, clientId, secret, scope === undefined ? {} : { scope });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.access_token as string;
}

/**
 * RFC 6750 §3: assert status, the `WWW-Authenticate: Bearer` challenge's error code (none when
 * `code` is null) and its `scope` attribute, and the body's error code, together.
 */
export function expectBearerFailure(res: Response, status: number, code: string | null, scopes?: string[]): void {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  const challenge = res.headers['www-authenticate'] as string | undefined;
  expect(challenge, 'WWW-Authenticate').toBeDefined();
  expect(challenge).toMatch(/^Bearer realm="[^"]+"/);
  if (code === null) {
    expect(challenge).not.toContain('error=');
  } else {
    expect(challenge).toContain(`error="${code}"`);
    expect(res.body.error).toBe(code);
  }
  if (scopes) expect(challenge).toContain(`scope="${scopes.join(' ')}"`);
  else expect(challenge).not.toContain('scope=');
}

/** RFC 6749 §5.2: assert status and `{error}`, with no-store headers and no stack trace. */
export function expectOAuthError(res: Response, status: number, code: string): void {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.body.error).toBe(code);
  expect(typeof res.body.error_description).toBe('string');
  expect(res.headers['cache-control']).toBe('no-store');
  expect(JSON.stringify(res.body)).not.toMatch(/\bat .*\.(ts|js):\d+/);
}

/** Decode a JWT's header and payload without verifying. */
export function decodeJwt(jwt: string): { header: Record<string, unknown>; payload: Record<string, unknown> } {
  const [h, p] = jwt.split('.');
  return {
    header: JSON.parse(Buffer.from(h!, 'base64url').toString()) as Record<string, unknown>,
    payload: JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>,
  };
}

/** The value with its last character changed (never to itself: a fixed replacement could be a no-op). */
export function mistype(value: string): string {
  return `${value.slice(0, -1)}${value.endsWith('x') ? 'y' : 'x'}`;
}
