/**
 * Shared test fixtures: a real SQLite file, the real routers, real tokens.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express, { type Express } from 'express';
import request, { type Response } from 'supertest';
import { importJWK, type CryptoKey } from 'jose';
import { expect, inject } from 'vitest';
import { AppTokensError } from '../src/core/errors.js';
import { createAppTokens, type AppTokens, type AppTokensOptions, type Store } from '../src/index.js';
import { createPostgresStore, createSqliteStore } from '../adapters/sql/index.js';
import { freshDatabase } from './postgres-server.js';
import { createMemoryStore } from '../adapters/memory/index.js';
import { EXAMPLE_SCOPES } from '../src/cli.js';
import { isOurPath } from '../src/http/router.js';
import { Conformance } from './openapi-conformance.js';

export const ISSUER = 'https://auth.example.test';
/** The tests use the example server's catalogue. */
export const CATALOGUE = [...EXAMPLE_SCOPES];

export interface Fixture {
  auth: AppTokens;
  store: Store;
  app: Express;
  dir: string;
  /**
   * Responses of our routes through `app` that the OpenAPI document does not describe (checked at
   * `cleanup()`, which fails the test when there is one).
   */
  violations: string[];
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

/**
 * Check every response of our routes against the OpenAPI document of `routes()` (issue 12): the
 * whole HTTP suite then pins the document, and a route that drifts from it fails the test that
 * received the drifted response. HEAD and OPTIONS, and 405 (a method the path does not have), are
 * Express's generic answers and not documented operations.
 */
function checkAgainstDocument(app: Express, auth: AppTokens, violations: string[]): void {
  let conformance: Conformance | undefined;
  app.use((req, res, next) => {
    if (!isOurPath(req.path) || req.method === 'HEAD' || req.method === 'OPTIONS') return next();
    const chunks: Buffer[] = [];
    const keep = (chunk: unknown) => {
      if (typeof chunk === 'string' || chunk instanceof Uint8Array) chunks.push(Buffer.from(chunk));
    };
    const write = res.write.bind(res) as (...args: unknown[]) => boolean;
    const end = res.end.bind(res) as unknown as (...args: unknown[]) => unknown;
    res.write = ((chunk: unknown, ...rest: unknown[]) => {
      keep(chunk);
      return write(chunk, ...rest);
    }) as typeof res.write;
    res.end = ((chunk?: unknown, ...rest: unknown[]) => {
      keep(chunk);
      conformance ??= new Conformance(auth.openapi());
      // Requests outside the document (another method, an unknown sub-path: the property tests send
      // plenty) must only never fail (test/property.test.ts); a documented operation must answer
      // as documented. A 500 is an unexpected failure (the tests that provoke one check its body).
      if (res.statusCode !== 405 && res.statusCode !== 500 && conformance.describes(req.method, req.path)) {
        const problem = conformance.violation({
          method: req.method,
          path: req.path,
          status: res.statusCode,
          headers: res.getHeaders() as Record<string, string | string[] | number | undefined>,
          text: Buffer.concat(chunks).toString('utf8'),
        });
        if (problem) violations.push(problem);
      }
      return end(chunk, ...rest);
    }) as unknown as typeof res.end;
    next();
  });
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
  const violations: string[] = [];
  const app = express();
  checkAgainstDocument(app, auth, violations);
  app.use(hostApp(auth));
  const fixture: Fixture = {
    auth,
    store,
    app,
    violations,
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
      expect(violations, 'responses the OpenAPI document does not describe').toEqual([]);
    },
  };
  return fixture;
}

/** A controllable clock for `advanced.now`. */
export class Clock {
  t = Date.now();
  readonly now = (): Date => new Date(this.t);
  advance(seconds: number): void {
    this.t += seconds * 1000;
  }
}

/**
 * `count` instances on one fresh PostgreSQL database (the shared test server), each with its host
 * app; `close()` closes them all. Revocations travel by LISTEN/NOTIFY only (no periodic sync).
 */
export async function postgresInstances(
  count: number,
  options: Partial<Omit<AppTokensOptions, 'store'>> = {},
): Promise<{ instances: AppTokens[]; apps: Express[]; close: () => Promise<void> }> {
  const url = await freshDatabase(inject('postgresUrl'));
  const made: Array<{ auth: AppTokens; store: Store }> = [];
  for (let i = 0; i < count; i++) {
    const store = createPostgresStore({ connectionString: url });
    const auth = createAppTokens({
      store,
      issuer: ISSUER,
      scopes: CATALOGUE,
      ...options,
      advanced: { revocationSyncInterval: 0, lastUsedFlushInterval: 0, ...options.advanced },
    });
    made.push({ auth, store });
    await auth.ready();
  }
  return {
    instances: made.map((m) => m.auth),
    apps: made.map((m) => hostApp(m.auth)),
    async close() {
      for (const { auth, store } of made) {
        await auth.close().catch(() => undefined);
        await store.close().catch(() => undefined);
      }
    },
  };
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

/** RFC 9457 §3: an `application/problem+json` body with status, code and (when given) the field. */
export function expectProblem(res: Response, status: number, code: string, field?: string): Record<string, unknown> {
  expect(res.status, res.text).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  const body = JSON.parse(res.text) as Record<string, unknown>;
  expect(body).toMatchObject({ type: 'about:blank', status, code });
  expect(typeof body.detail).toBe('string');
  if (field !== undefined) expect(body.field).toBe(field);
  expect(res.text).not.toMatch(/\bat .*\.(ts|js):\d+/);
  return body;
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

/** Run `fn`, expect it to throw an AppTokensError, and return that error. */
export function thrown(fn: () => unknown): AppTokensError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AppTokensError);
    return e as AppTokensError;
  }
  throw new Error('expected the call to throw');
}

/** The store's first signing key, private, as jose's key: to forge tokens signed with our own key. */
export async function ourSigningKey(store: Store, kid?: string): Promise<CryptoKey> {
  const keys = await store.listSigningKeys();
  const key = kid === undefined ? keys[0] : keys.find((k) => k.kid === kid);
  return (await importJWK(JSON.parse(key!.privateJwk), 'RS256')) as CryptoKey;
}

/** An instance on loopback: `hostApp(auth)` behind a real listening server. */
export interface Listening {
  url: string;
  /** Close the connections and the server, then the instance and its store (idempotent). */
  close(): Promise<void>;
}

export async function listening(auth: AppTokens, store: Store): Promise<Listening> {
  const server: Server = createServer(hostApp(auth));
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  let closed: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close() {
      closed ??= (async () => {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await auth.close().catch(() => undefined);
        await store.close().catch(() => undefined);
      })();
      return closed;
    },
  };
}
