/**
 * The apps part of the management API (`/apps…`), over HTTP against the real routers, on every
 * store adapter: creation, authorization (RFC 6750 §3 challenges), "nobody grants a scope they
 * lack", validation (RFC 9457 §3 problem details), updates, deletion, tenant isolation,
 * pagination, a host principal resolver, 405s and the audit events.
 */
import dotenv from 'dotenv';
import { STATUS_CODES } from 'node:http';
import type { Express } from 'express';
import request, { type Response, type Test } from 'supertest';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../src/index.js';
import { createClient, decodeJwt, setup, tokenRequest, type Fixture, type FixtureOptions } from './helpers.js';

const ADMIN_SCOPES = ['apps:read', 'apps:write', 'notarization:*'];
const APP_KEYS = ['clientId', 'creationDate', 'customClaims', 'description', 'dpopBoundAccessTokens', 'effectiveScopes', 'id', 'jwksUri', 'name', 'roles', 'scopes', 'tenantId', 'tokenEndpointAuthMethod', 'unknownRoles', 'unknownScopes', 'updateDate'];
const TOKEN_KEYS = ['appId', 'creationDate', 'expirationDate', 'expiringSoon', 'hint', 'id', 'lastUsedDate', 'name', 'scopes', 'status'];
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const TWO_YEARS = 2 * 365 * 86_400;

// ---- helpers of this file ------------------------------------------------------------------------

/** Every response of this file: never a 5xx, never a stack trace. */
async function checked(test: Test): Promise<Response> {
  const res = await test;
  expect(res.status, `${res.status} ${res.text ?? ''}`).toBeLessThan(500);
  expect(res.text ?? '', 'stack trace in a response').not.toContain('    at ');
  expect(JSON.stringify(res.body ?? null)).not.toContain('    at ');
  return res;
}

/** A client of the host app, optionally with `Authorization: Bearer <token>`. */
function api(app: Express, token?: string) {
  const auth = (t: Test): Test => (token === undefined ? t : t.set('Authorization', `Bearer ${token}`));
  return {
    get: (path: string) => checked(auth(request(app).get(path))),
    post: (path: string, body?: unknown) => {
      const t = auth(request(app).post(path));
      return checked(body === undefined ? t : t.send(body as object));
    },
    patch: (path: string, body?: unknown) => {
      const t = auth(request(app).patch(path));
      return checked(body === undefined ? t : t.send(body as object));
    },
    delete: (path: string) => checked(auth(request(app).delete(path))),
    /** Anything else, still checked. */
    raw: (build: (agent: ReturnType<typeof request>) => Test) => checked(auth(build(request(app)))),
  };
}

/** client_credentials through the checked wrapper; asserts success and returns the JWT. */
async function mint(app: Express, clientId: string, secret: string, scope?: string): Promise<string> {
  const res = await checked(tokenRequest(app, clientId, secret, scope === undefined ? {} : { scope }));
  expect(res.status, res.text).toBe(200);
  return res.body.access_token as string;
}

/** RFC 9457 §3: an `application/problem+json` body with the members we promise. */
function expectProblem(res: Response, status: number, code: string, field?: string): void {
  expect(res.status, res.text).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  const body = JSON.parse(res.text) as Record<string, unknown>;
  expect(body).toMatchObject({ type: 'about:blank', title: STATUS_CODES[status], status, code });
  expect(typeof body.detail).toBe('string');
  expect((body.detail as string).length).toBeGreaterThan(0);
  if (field !== undefined) {
    expect(body.field).toBe(field);
    expect(body.detail).toContain(field);
  }
}

/** RFC 6750 §3 challenge on a management (problem+json) response. */
function expectChallenge(res: Response, code: string | null, scope?: string): void {
  const challenge = res.headers['www-authenticate'] as string | undefined;
  expect(challenge, 'WWW-Authenticate').toBeDefined();
  expect(challenge).toMatch(/^Bearer realm="[^"]+"/);
  if (code === null) expect(challenge).not.toContain('error=');
  else expect(challenge).toContain(`error="${code}"`);
  if (scope !== undefined) expect(challenge).toContain(`scope="${scope}"`);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** An admin of `tenant` holding `scopes`, with its API token and a JWT. */
async function admin(f: Fixture, scopes: string[] = ADMIN_SCOPES, tenant = 'acme') {
  const client = await createClient(f.auth, { tenant, scopes });
  const jwt = await mint(f.app, client.clientId, client.secret);
  return { ...client, jwt };
}

interface Created {
  app: Record<string, unknown> & { id: string; name: string; updateDate: string; creationDate: string };
  token: Record<string, unknown> & { id: string };
  value: string;
}

/** Walk `GET /apps` with `limit`, returning every page. */
type Page = { items: { id: string; creationDate: string }[]; nextCursor: string | null };
async function walk(app: Express, jwt: string, limit: number, between?: (pages: Page[]) => Promise<void>) {
  const pages: Page[] = [];
  let cursor: string | null = null;
  do {
    const q: string = cursor === null ? `?limit=${limit}` : `?limit=${limit}&cursor=${encodeURIComponent(cursor)}`;
    const res = await api(app, jwt).get(`/apps${q}`);
    expect(res.status, res.text).toBe(200);
    pages.push(res.body);
    cursor = res.body.nextCursor as string | null;
    if (cursor !== null && between) await between(pages);
    expect(pages.length).toBeLessThan(50);
  } while (cursor !== null);
  return pages;
}

// ---- the suite, on every adapter -----------------------------------------------------------------

describe.each(['memory', 'sqlite'] as const)('management API: apps (%s store)', (store) => {
  let f: Fixture;
  let events: AuditEvent[];
  const extra: Fixture[] = [];

  /** Another fixture on the same adapter (cleaned up after the test). */
  async function fixture(options: FixtureOptions): Promise<Fixture> {
    const g = await setup({ store, ...options });
    extra.push(g);
    return g;
  }

  beforeEach(async () => {
    events = [];
    f = await setup({ store, onEvent: (e) => events.push(e) });
  });
  afterEach(async () => {
    await f.cleanup();
    while (extra.length) await extra.pop()!.cleanup();
  });

  async function createViaApi(jwt: string, body: Record<string, unknown> = {}): Promise<Created> {
    const res = await api(f.app, jwt).post('/apps', { name: 'billing-sync', scopes: ['notarization:read'], ...body });
    expect(res.status, res.text).toBe(201);
    return res.body as Created;
  }

  // ---- 1. creation ----------------------------------------------------------------------------

  describe('POST /apps', () => {
    it('201 {app, token, value}: the app in the caller’s tenant, the token’s metadata, no-store', async () => {
      const a = await admin(f);
      const res = await api(f.app, a.jwt).post('/apps', {
        name: 'billing-sync',
        description: 'syncs invoices',
        scopes: ['notarization:read'],
        customClaims: { plan: 'pro', seats: 3 },
        token: { name: 'ci', expiresIn: 3600 },
      });
      expect(res.status, res.text).toBe(201);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(Object.keys(res.body).sort()).toEqual(['app', 'token', 'value']);
      const { app, token, value } = res.body as Created;

      expect(Object.keys(app).sort()).toEqual(APP_KEYS);
      expect(app.id).toMatch(/^app_/);
      expect(app.clientId).toBe(app.id);
      expect(app.tenantId).toBe('acme');
      expect(app.name).toBe('billing-sync');
      expect(app.description).toBe('syncs invoices');
      expect(app.scopes).toEqual(['notarization:read']);
      expect(app.customClaims).toEqual({ plan: 'pro', seats: 3 });
      expect(app.creationDate).toMatch(ISO);
      expect(app.updateDate).toBe(app.creationDate);

      expect(Object.keys(token).sort()).toEqual(TOKEN_KEYS);
      expect(token.id).toMatch(/^tok_/);
      expect(token.appId).toBe(app.id);
      expect(token.name).toBe('ci');
      expect(token.scopes).toBeNull();
      expect(token.creationDate).toMatch(ISO);
      expect(Date.parse(token.expirationDate as string) - Date.parse(token.creationDate as string)).toBe(3600_000);
      expect(token.lastUsedDate).toBeNull();
      expect(typeof token.hint).toBe('string');
      expect(value).toMatch(/^eat_[0-9A-Za-z]{49}$/);
      expect(value).not.toBe(token.hint);
      expect(value.includes(token.hint as string)).toBe(false);
    });

    it('defaults: description null, customClaims {}, token named "default" with all the app’s scopes', async () => {
      const a = await admin(f);
      const { app, token } = await createViaApi(a.jwt);
      expect(app.description).toBeNull();
      expect(app.customClaims).toEqual({});
      expect(token.name).toBe('default');
      expect(token.scopes).toBeNull();
      expect(token.expirationDate).not.toBeNull();
    });

    it('the value works at POST /oauth/token (client_secret_basic with app.id); the JWT carries the custom claims', async () => {
      const a = await admin(f);
      const { app, value } = await createViaApi(a.jwt, { customClaims: { plan: 'pro', region: 'eu' } });
      const jwt = await mint(f.app, app.id, value);
      const { payload } = decodeJwt(jwt);
      expect(payload).toMatchObject({ client_id: app.id, sub: app.id, tenant_id: 'acme', app_name: 'billing-sync', plan: 'pro', region: 'eu' });
      expect(payload.scope).toBe('notarization:read');
      const stamps = await api(f.app, jwt).get('/stamps');
      expect(stamps.status).toBe(200);
    });

    it('the value is shown once: GET /apps/:id, GET /apps, GET /apps/:id/tokens and events never contain it', async () => {
      const a = await admin(f);
      const { app, token, value } = await createViaApi(a.jwt);
      await mint(f.app, app.id, value); // used once, so lastUsedDate moves
      const client = api(f.app, a.jwt);
      for (const path of [`/apps/${app.id}`, '/apps', `/apps/${app.id}/tokens`, `/apps/${app.id}/events`]) {
        const res = await client.get(path);
        expect(res.status, path).toBe(200);
        expect(res.text, path).not.toContain(value);
        expect(res.text, path).not.toContain(value.slice(4, 30));
        expect(res.text, path).not.toMatch(/"hash"/);
      }
      const got = await client.get(`/apps/${app.id}`);
      expect(got.body.tokens).toHaveLength(1);
      expect(got.body.tokens[0]).toMatchObject({ id: token.id, hint: token.hint });
      expect(Object.keys(got.body.tokens[0]).sort()).toEqual(TOKEN_KEYS);
      expect(got.body.tokens[0].lastUsedDate).toMatch(ISO);
      const listed = await client.get(`/apps/${app.id}/tokens`);
      expect(listed.body.items.map((t: { id: string }) => t.id)).toEqual([token.id]);
    });

    it('?format=env and ?format=postman answer the value as a no-store attachment; a bad format creates nothing', async () => {
      const a = await admin(f);
      const env = await api(f.app, a.jwt).post('/apps?format=env', { name: 'Billing Sync', scopes: ['notarization:read'] });
      expect(env.status, env.text).toBe(201);
      expect(env.headers['cache-control']).toBe('no-store');
      expect(env.headers['content-type']).toMatch(/^text\/plain/);
      expect(env.headers['content-disposition']).toMatch(/^attachment; filename="billing-sync-tok_[^"]+\.env"$/);
      // Single-quoted values (issue 11, finding 15), read by the real dotenv parser.
      expect(env.text).toMatch(/^(?:[A-Z_]+='[^'\n]*'\n)+$/);
      const vars = dotenv.parse(env.text);
      expect(Object.keys(vars).sort()).toEqual(['CLIENT_ID', 'CLIENT_SECRET', 'ISSUER', 'TOKEN_URL']);
      await mint(f.app, vars.CLIENT_ID!, vars.CLIENT_SECRET!);

      const postman = await api(f.app, a.jwt).post('/apps?format=postman', { name: 'pm', scopes: ['notarization:read'] });
      expect(postman.status, postman.text).toBe(201);
      expect(postman.headers['cache-control']).toBe('no-store');
      expect(postman.headers['content-disposition']).toMatch(/^attachment; filename="pm-tok_[^"]+\.postman_environment\.json"$/);
      const values = JSON.parse(postman.text).values as { key: string; value: string; type: string }[];
      const secret = values.find((v) => v.key === 'CLIENT_SECRET')!;
      expect(secret.type).toBe('secret');
      await mint(f.app, values.find((v) => v.key === 'CLIENT_ID')!.value, secret.value);

      const before = (await f.auth.apps.list('acme')).items.length;
      const bad = await api(f.app, a.jwt).post('/apps?format=xml', { name: 'x', scopes: ['notarization:read'] });
      expectProblem(bad, 400, 'validation_failed', 'format');
      expect((await f.auth.apps.list('acme')).items).toHaveLength(before);
    });

    it('an API token of the admin is accepted directly as the bearer', async () => {
      const a = await admin(f);
      const res = await api(f.app, a.secret).post('/apps', { name: 'via-api-token', scopes: ['notarization:read'] });
      expect(res.status, res.text).toBe(201);
      expect(res.body.app.tenantId).toBe('acme');
    });

    it('boundaries are accepted: a 100-character name, customClaims of exactly 4096 bytes, expiresIn 60 and the maximum', async () => {
      const a = await admin(f);
      const claims = { blob: 'x'.repeat(4096 - '{"blob":""}'.length) };
      expect(Buffer.byteLength(JSON.stringify(claims))).toBe(4096);
      const one = await api(f.app, a.jwt).post('/apps', { name: 'n'.repeat(100), scopes: ['notarization:read'], customClaims: claims, token: { expiresIn: 60 } });
      expect(one.status, one.text).toBe(201);
      expect(one.body.app.name).toHaveLength(100);
      const two = await api(f.app, a.jwt).post('/apps', { name: 'max', scopes: ['notarization:read'], token: { expiresIn: TWO_YEARS } });
      expect(two.status, two.text).toBe(201);
    });
  });

  // ---- 2. authorization -------------------------------------------------------------------------

  describe('who may call (RFC 6750 §3 challenges, RFC 9457 §3 bodies)', () => {
    it('RFC 6750 §3.1: no token → 401 problem+json with a bare Bearer realm challenge', async () => {
      const anon = api(f.app);
      for (const res of [await anon.get('/apps'), await anon.post('/apps', { name: 'x', scopes: ['notarization:read'] })]) {
        expectProblem(res, 401, 'missing_token');
        expectChallenge(res, null);
        expect(res.headers['www-authenticate']).toBe('Bearer realm="express-app-tokens"');
      }
      expect(await f.auth.apps.list('acme')).toMatchObject({ items: [] });
    });

    it('RFC 6750 §3.1: a bad token → 401 error="invalid_token"', async () => {
      for (const token of ['not-a-token', 'eat_notARealTokenAtAll', 'a.b.c']) {
        const res = await api(f.app, token).get('/apps');
        expectProblem(res, 401, 'invalid_token');
        expectChallenge(res, 'invalid_token');
      }
    });

    it('RFC 6750 §3.1: a malformed Authorization header → 400 error="invalid_request"', async () => {
      const a = await admin(f);
      const res = await api(f.app).raw((r) => r.get('/apps').set('Authorization', `Bearer ${a.jwt} extra`));
      expectProblem(res, 400, 'invalid_request');
      expectChallenge(res, 'invalid_request');
    });

    it('RFC 6750 §3.1: a token without apps:write → 403 insufficient_scope, scope="apps:write"; apps:read allows the GETs only', async () => {
      const a = await admin(f);
      const { app, token } = await createViaApi(a.jwt);
      const reader = await admin(f, ['apps:read']);
      const r = api(f.app, reader.jwt);
      for (const path of ['/apps', `/apps/${app.id}`, `/apps/${app.id}/tokens`, `/apps/${app.id}/events`]) {
        const res = await r.get(path);
        expect(res.status, `${path}: ${res.text}`).toBe(200);
      }
      const refused = [
        await r.post('/apps', { name: 'nope', scopes: ['notarization:read'] }),
        await r.patch(`/apps/${app.id}`, { name: 'nope' }),
        await r.delete(`/apps/${app.id}`),
        await r.post(`/apps/${app.id}/tokens`, {}),
        await r.post(`/apps/${app.id}/tokens/${token.id}/regenerate`),
        await r.delete(`/apps/${app.id}/tokens/${token.id}`),
      ];
      for (const res of refused) {
        expectProblem(res, 403, 'insufficient_scope');
        expectChallenge(res, 'insufficient_scope', 'apps:write');
      }
      // Nothing happened.
      const after = await api(f.app, a.jwt).get(`/apps/${app.id}`);
      expect(after.body.name).toBe('billing-sync');
      expect(after.body.tokens.map((t: { id: string }) => t.id)).toEqual([token.id]);
      expect((await f.auth.apps.list('acme')).items).toHaveLength(3);
    });

    it('RFC 6750 §3.1: a token without apps:read → 403 insufficient_scope, scope="apps:read"', async () => {
      const worker = await admin(f, ['notarization:read']);
      const res = await api(f.app, worker.jwt).get('/apps');
      expectProblem(res, 403, 'insufficient_scope');
      expectChallenge(res, 'insufficient_scope', 'apps:read');
    });

    it('an apps:* wildcard is accepted for reading and writing', async () => {
      const wild = await admin(f, ['apps:*', 'notarization:*']);
      const w = api(f.app, wild.jwt);
      expect(decodeJwt(wild.jwt).payload.scope).toContain('apps:*');
      const created = await w.post('/apps', { name: 'wild', scopes: ['notarization:read'] });
      expect(created.status, created.text).toBe(201);
      const id = created.body.app.id as string;
      expect((await w.get('/apps')).status).toBe(200);
      expect((await w.get(`/apps/${id}`)).status).toBe(200);
      expect((await w.patch(`/apps/${id}`, { name: 'wilder' })).status).toBe(200);
      expect((await w.post(`/apps/${id}/tokens`, {})).status).toBe(201);
      expect((await w.delete(`/apps/${id}`)).status).toBe(204);
    });
  });

  // ---- 3. nobody grants a scope they lack -------------------------------------------------------

  describe('nobody grants a scope they lack (wildcards respected)', () => {
    it('an apps:write + notarization:* admin may create notarization:read and notarization:* apps', async () => {
      const a = await admin(f, ['apps:write', 'notarization:*']);
      const narrow = await api(f.app, a.jwt).post('/apps', { name: 'reader', scopes: ['notarization:read'] });
      expect(narrow.status, narrow.text).toBe(201);
      const wide = await api(f.app, a.jwt).post('/apps', { name: 'all-notarization', scopes: ['notarization:*'] });
      expect(wide.status, wide.text).toBe(201);
      expect(wide.body.app.scopes).toEqual(['notarization:*']);
    });

    it('…but not a storage:read app → 403 forbidden naming the scope, and nothing is created', async () => {
      const a = await admin(f, ['apps:write', 'notarization:*']);
      for (const scopes of [['storage:read'], ['notarization:read', 'storage:read']]) {
        const res = await api(f.app, a.jwt).post('/apps', { name: 'storage', scopes });
        expectProblem(res, 403, 'forbidden', 'scopes');
        expect(res.body.detail).toContain('storage:read');
        expect(res.body.detail).not.toContain('notarization:read');
        expect(res.headers['www-authenticate']).toBeUndefined();
      }
      expect((await f.auth.apps.list('acme')).items.map((x) => x.name)).toEqual(['test app']);
    });

    it('what the caller holds is the presented token’s scope, not its app’s: a JWT narrowed to apps:write grants nothing', async () => {
      const a = await admin(f);
      const narrowed = await mint(f.app, a.clientId, a.secret, 'apps:write');
      const res = await api(f.app, narrowed).post('/apps', { name: 'reader', scopes: ['notarization:read'] });
      expectProblem(res, 403, 'forbidden', 'scopes');
      expect(res.body.detail).toContain('notarization:read');
    });

    it('a notarization:read admin cannot grant the wider notarization:* wildcard', async () => {
      const a = await admin(f, ['apps:write', 'notarization:read']);
      const res = await api(f.app, a.jwt).post('/apps', { name: 'wider', scopes: ['notarization:*'] });
      expectProblem(res, 403, 'forbidden', 'scopes');
      expect(res.body.detail).toContain('notarization:*');
    });

    it('issuing or regenerating a token of an app whose scopes the caller lacks → 403, nothing changes', async () => {
      const a = await admin(f);
      const storageApp = await f.auth.apps.create({ tenantId: 'acme', name: 'storage', scopes: ['storage:read'] });
      const client = api(f.app, a.jwt);
      const issued = await client.post(`/apps/${storageApp.app.id}/tokens`, { name: 'extra' });
      expectProblem(issued, 403, 'forbidden', 'scopes');
      expect(issued.body.detail).toContain('storage:read');
      const regenerated = await client.post(`/apps/${storageApp.app.id}/tokens/${storageApp.token.id}/regenerate`);
      expectProblem(regenerated, 403, 'forbidden', 'scopes');
      const tokens = await client.get(`/apps/${storageApp.app.id}/tokens`);
      expect(tokens.body.items.map((t: { id: string }) => t.id)).toEqual([storageApp.token.id]);
      await mint(f.app, storageApp.app.id, storageApp.value);
    });
  });

  // ---- 4. validation ----------------------------------------------------------------------------

  describe('validation (RFC 9457 §3: 400 problem naming the field)', () => {
    const base = { name: 'valid', scopes: ['notarization:read'] };
    const cases: [string, unknown, string][] = [
      ['name missing', { scopes: ['notarization:read'] }, 'name'],
      ['name not a string', { ...base, name: 42 }, 'name'],
      ['name empty', { ...base, name: '' }, 'name'],
      ['name only spaces', { ...base, name: '   ' }, 'name'],
      ['name of 101 characters', { ...base, name: 'n'.repeat(101) }, 'name'],
      ['name with a control character', { ...base, name: 'a\nb' }, 'name'],
      ['description not a string', { ...base, description: 5 }, 'description'],
      ['scopes missing', { name: 'valid' }, 'scopes'],
      ['scopes not an array', { ...base, scopes: 'notarization:read' }, 'scopes'],
      ['scopes empty', { ...base, scopes: [] }, 'scopes'],
      ['a scope not a string', { ...base, scopes: ['notarization:read', 7] }, 'scopes[1]'],
      ['a scope unknown to the catalogue', { ...base, scopes: ['notarization:read', 'billing:read'] }, 'scopes[1]'],
      ['customClaims an array', { ...base, customClaims: ['plan'] }, 'customClaims'],
      ['customClaims a string', { ...base, customClaims: 'plan' }, 'customClaims'],
      ['customClaims overriding iss', { ...base, customClaims: { iss: 'https://evil.example' } }, 'customClaims.iss'],
      ['customClaims overriding sub', { ...base, customClaims: { sub: 'someone' } }, 'customClaims.sub'],
      ['customClaims overriding scope', { ...base, customClaims: { scope: 'storage:write' } }, 'customClaims.scope'],
      ['customClaims overriding client_id', { ...base, customClaims: { client_id: 'app_x' } }, 'customClaims.client_id'],
      ['customClaims overriding tenant_id', { ...base, customClaims: { tenant_id: 'globex' } }, 'customClaims.tenant_id'],
      ['customClaims over 4096 bytes', { ...base, customClaims: { blob: 'x'.repeat(4097 - '{"blob":""}'.length) } }, 'customClaims'],
      ['an unknown top-level field', { ...base, admin: true }, 'admin'],
      ['an unknown field in token', { ...base, token: { name: 'ci', forever: true } }, 'token.forever'],
      ['token.expiresIn below 60', { ...base, token: { expiresIn: 59 } }, 'token.expiresIn'],
      ['token.expiresIn above the maximum', { ...base, token: { expiresIn: TWO_YEARS + 1 } }, 'token.expiresIn'],
      ['token.expiresIn not a whole number', { ...base, token: { expiresIn: 90.5 } }, 'token.expiresIn'],
      ['token.expiresIn a string', { ...base, token: { expiresIn: '3600' } }, 'token.expiresIn'],
      ['token.scopes not within the app’s scopes', { ...base, token: { scopes: ['notarization:write'] } }, 'token.scopes'],
      ['token.scopes empty', { ...base, token: { scopes: [] } }, 'token.scopes'],
      ['token.name empty', { ...base, token: { name: '' } }, 'token.name'],
      ['a JSON array instead of an object', [base], 'body'],
    ];

    it.each(cases)('%s → 400 validation_failed', async (_label, body, field) => {
      const a = await admin(f);
      const before = events.length;
      const res = await api(f.app, a.jwt).post('/apps', body);
      expectProblem(res, 400, 'validation_failed', field);
      expect(res.headers['cache-control']).toBe('no-store');
      // Nothing was created.
      expect((await f.auth.apps.list('acme')).items).toHaveLength(1);
      expect(events.slice(before).filter((e) => e.type === 'app.created' || e.type === 'token.created')).toEqual([]);
    });

    it('malformed JSON → 400 invalid_request', async () => {
      const a = await admin(f);
      const res = await api(f.app, a.jwt).raw((r) => r.post('/apps').set('Content-Type', 'application/json').send('{"name": "x",'));
      expectProblem(res, 400, 'invalid_request');
      expect(res.text).not.toContain('SyntaxError');
    });

    it('a body that is not JSON (no body at all) → 400 naming the body', async () => {
      const a = await admin(f);
      const res = await api(f.app, a.jwt).post('/apps');
      expectProblem(res, 400, 'validation_failed', 'body');
    });

    it('a non-JSON content type on POST → 415', async () => {
      const a = await admin(f);
      const text = await api(f.app, a.jwt).raw((r) => r.post('/apps').set('Content-Type', 'text/plain').send('{"name":"x","scopes":["notarization:read"]}'));
      expectProblem(text, 415, 'unsupported_media_type');
      const form = await api(f.app, a.jwt).raw((r) => r.post('/apps').type('form').send({ name: 'x', scopes: 'notarization:read' }));
      expectProblem(form, 415, 'unsupported_media_type');
      const patch = await api(f.app, a.jwt).raw((r) => r.patch(`/apps/${a.clientId}`).set('Content-Type', 'text/plain').send('{"name":"y"}'));
      expectProblem(patch, 415, 'unsupported_media_type');
      expect((await f.auth.apps.list('acme')).items).toHaveLength(1);
      expect((await f.auth.apps.get('acme', a.clientId)).name).toBe('test app');
    });

    /** A JSON body of exactly `size` bytes that would create an app (whitespace padding). */
    function bodyOfSize(size: number): string {
      const json = JSON.stringify({ name: 'padded', scopes: ['notarization:read'] });
      expect(size).toBeGreaterThan(json.length);
      return json + ' '.repeat(size - json.length);
    }

    it('a body over the default limit (32768 bytes) → 413; exactly the limit is accepted', async () => {
      const a = await admin(f);
      const over = await api(f.app, a.jwt).raw((r) => r.post('/apps').set('Content-Type', 'application/json').send(bodyOfSize(32_769)));
      expectProblem(over, 413, 'payload_too_large');
      const big = await api(f.app, a.jwt).raw((r) => r.post('/apps').set('Content-Type', 'application/json').send(bodyOfSize(200_000)));
      expectProblem(big, 413, 'payload_too_large');
      expect((await f.auth.apps.list('acme')).items).toHaveLength(1);
      const at = await api(f.app, a.jwt).raw((r) => r.post('/apps').set('Content-Type', 'application/json').send(bodyOfSize(32_768)));
      expect(at.status, at.text).toBe(201);
    });

    it('a custom management.bodyLimit (2048) → 413 above it, accepted at it, on POST and PATCH', async () => {
      const g = await fixture({ management: { bodyLimit: 2048 } });
      const a = await admin(g);
      const client = api(g.app, a.jwt);
      const over = await client.raw((r) => r.post('/apps').set('Content-Type', 'application/json').send(bodyOfSize(2049)));
      expectProblem(over, 413, 'payload_too_large');
      const patchOver = await client.raw((r) =>
        r.patch(`/apps/${a.clientId}`).set('Content-Type', 'application/json').send(JSON.stringify({ name: 'x' }) + ' '.repeat(2100)),
      );
      expectProblem(patchOver, 413, 'payload_too_large');
      const at = await client.raw((r) => r.post('/apps').set('Content-Type', 'application/json').send(bodyOfSize(2048)));
      expect(at.status, at.text).toBe(201);
    });

    it('the default limit still applies to an instance without the custom one (3000 bytes accepted)', async () => {
      const a = await admin(f);
      const res = await api(f.app, a.jwt).raw((r) => r.post('/apps').set('Content-Type', 'application/json').send(bodyOfSize(3000)));
      expect(res.status, res.text).toBe(201);
    });
  });

  // ---- 5. PATCH ---------------------------------------------------------------------------------

  describe('PATCH /apps/:id', () => {
    it('edits name, description and customClaims → 200 with the updated app; updateDate moves', async () => {
      const a = await admin(f);
      const { app } = await createViaApi(a.jwt, { description: 'old', customClaims: { plan: 'free' } });
      await sleep(10);
      const res = await api(f.app, a.jwt).patch(`/apps/${app.id}`, { name: 'renamed', description: 'new', customClaims: { plan: 'pro', region: 'eu' } });
      expect(res.status, res.text).toBe(200);
      expect(Object.keys(res.body).sort()).toEqual(APP_KEYS);
      expect(res.body).toMatchObject({
        id: app.id,
        tenantId: 'acme',
        name: 'renamed',
        description: 'new',
        scopes: ['notarization:read'],
        customClaims: { plan: 'pro', region: 'eu' },
        creationDate: app.creationDate,
      });
      expect(res.body.updateDate).toMatch(ISO);
      expect(Date.parse(res.body.updateDate)).toBeGreaterThan(Date.parse(app.updateDate));
      const got = await api(f.app, a.jwt).get(`/apps/${app.id}`);
      expect(got.body).toMatchObject({ name: 'renamed', description: 'new', customClaims: { plan: 'pro', region: 'eu' }, updateDate: res.body.updateDate });
    });

    it('a partial patch leaves the other fields alone; description null clears it', async () => {
      const a = await admin(f);
      const { app } = await createViaApi(a.jwt, { description: 'keep', customClaims: { plan: 'free' } });
      const one = await api(f.app, a.jwt).patch(`/apps/${app.id}`, { name: 'only-name' });
      expect(one.status, one.text).toBe(200);
      expect(one.body).toMatchObject({ name: 'only-name', description: 'keep', customClaims: { plan: 'free' } });
      const two = await api(f.app, a.jwt).patch(`/apps/${app.id}`, { description: null });
      expect(two.status, two.text).toBe(200);
      expect(two.body).toMatchObject({ name: 'only-name', description: null, customClaims: { plan: 'free' } });
    });

    it('new access tokens carry the new custom claims; old ones still verify', async () => {
      const a = await admin(f);
      const { app, value } = await createViaApi(a.jwt, { customClaims: { plan: 'free' } });
      const before = await mint(f.app, app.id, value);
      expect(decodeJwt(before).payload.plan).toBe('free');
      const res = await api(f.app, a.jwt).patch(`/apps/${app.id}`, { customClaims: { plan: 'pro' } });
      expect(res.status, res.text).toBe(200);
      const after = await mint(f.app, app.id, value);
      expect(decodeJwt(after).payload.plan).toBe('pro');
      const me = await api(f.app, after).get('/me');
      expect(me.status).toBe(200);
      expect(me.body.claims.plan).toBe('pro');
      const old = await api(f.app, before).get('/stamps');
      expect(old.status, old.text).toBe(200);
    });

    it('a patch with scopes → 400 field "scopes", and the scopes do not change', async () => {
      const a = await admin(f);
      const { app } = await createViaApi(a.jwt);
      for (const body of [{ scopes: ['notarization:read', 'notarization:write'] }, { name: 'x', scopes: ['notarization:read'] }, { scopes: null }]) {
        const res = await api(f.app, a.jwt).patch(`/apps/${app.id}`, body);
        expectProblem(res, 400, 'validation_failed', 'scopes');
      }
      const got = await api(f.app, a.jwt).get(`/apps/${app.id}`);
      expect(got.body.scopes).toEqual(['notarization:read']);
      expect(got.body.name).toBe('billing-sync');
    });

    it('an empty patch → 400; an unknown field → 400 naming it; invalid values → 400 naming them', async () => {
      const a = await admin(f);
      const { app } = await createViaApi(a.jwt);
      const client = api(f.app, a.jwt);
      const empty = await client.patch(`/apps/${app.id}`, {});
      expectProblem(empty, 400, 'validation_failed');
      expect(empty.body.detail).toMatch(/name|description|customClaims/);
      expectProblem(await client.patch(`/apps/${app.id}`, { name: 'x', owner: 'me' }), 400, 'validation_failed', 'owner');
      expectProblem(await client.patch(`/apps/${app.id}`, { name: '' }), 400, 'validation_failed', 'name');
      expectProblem(await client.patch(`/apps/${app.id}`, { name: 'n'.repeat(101) }), 400, 'validation_failed', 'name');
      expectProblem(await client.patch(`/apps/${app.id}`, { customClaims: [] }), 400, 'validation_failed', 'customClaims');
      expectProblem(await client.patch(`/apps/${app.id}`, { customClaims: { iss: 'x' } }), 400, 'validation_failed', 'customClaims.iss');
      expectProblem(await client.patch(`/apps/${app.id}`, { customClaims: { blob: 'x'.repeat(5000) } }), 400, 'validation_failed', 'customClaims');
      const got = await client.get(`/apps/${app.id}`);
      expect(got.body).toMatchObject({ name: 'billing-sync', customClaims: {}, updateDate: app.updateDate });
    });

    it('RFC 9457 §3: a malformed percent-encoding in :id → 400 problem+json, not an OAuth error body', async () => {
      const a = await admin(f);
      for (const res of [await api(f.app, a.jwt).get('/apps/%E0%A4%A'), await api(f.app, a.jwt).patch('/apps/%E0%A4%A', { name: 'x' })]) {
        expectProblem(res, 400, res.body.code as string);
        expect(['validation_failed', 'invalid_request']).toContain(res.body.code);
        expect(res.body.detail).not.toContain('body');
      }
    });

    it('PATCH of an unknown app → 404 not_found', async () => {
      const a = await admin(f);
      expectProblem(await api(f.app, a.jwt).patch('/apps/app_doesnotexist', { name: 'x' }), 404, 'not_found');
    });
  });

  // ---- 6. DELETE --------------------------------------------------------------------------------

  describe('DELETE /apps/:id', () => {
    it('204; then GET → 404, its API token fails at /oauth/token, an access token already used fails at once', async () => {
      const a = await admin(f);
      const { app, value } = await createViaApi(a.jwt);
      const jwt = await mint(f.app, app.id, value);
      const client = api(f.app, a.jwt);
      // Used once on a protected route, so it sits in the verification cache.
      expect((await api(f.app, jwt).get('/stamps')).status).toBe(200);
      expect((await api(f.app, value).get('/stamps')).status).toBe(200);

      const del = await client.delete(`/apps/${app.id}`);
      expect(del.status, del.text).toBe(204);
      expect(del.text ?? '').toBe('');

      expectProblem(await client.get(`/apps/${app.id}`), 404, 'not_found');
      expectProblem(await client.get(`/apps/${app.id}/tokens`), 404, 'not_found');
      const listed = await client.get('/apps');
      expect(listed.body.items.map((x: { id: string }) => x.id)).not.toContain(app.id);

      const grant = await checked(tokenRequest(f.app, app.id, value));
      expect(grant.status, grant.text).toBe(401);
      expect(grant.body.error).toBe('invalid_client');

      const stale = await api(f.app, jwt).get('/stamps');
      expect(stale.status).toBe(401);
      expect(stale.headers['www-authenticate']).toContain('error="invalid_token"');
      const direct = await api(f.app, value).get('/stamps');
      expect(direct.status).toBe(401);
      expect(direct.headers['www-authenticate']).toContain('error="invalid_token"');
    });

    it('deleting twice, or an unknown app → 404; the admin itself keeps working', async () => {
      const a = await admin(f);
      const { app } = await createViaApi(a.jwt);
      const client = api(f.app, a.jwt);
      expect((await client.delete(`/apps/${app.id}`)).status).toBe(204);
      expectProblem(await client.delete(`/apps/${app.id}`), 404, 'not_found');
      expectProblem(await client.delete('/apps/app_doesnotexist'), 404, 'not_found');
      expect((await client.get('/apps')).status).toBe(200);
    });
  });

  // ---- 7. tenant isolation ----------------------------------------------------------------------

  describe('tenant isolation', () => {
    it('another tenant’s admin gets 404 (never 403) on every route naming the app, and changes nothing', async () => {
      const acme = await admin(f);
      const { app, token, value } = await createViaApi(acme.jwt, { customClaims: { plan: 'free' } });
      const globex = await admin(f, ADMIN_SCOPES, 'globex');
      const g = api(f.app, globex.jwt);
      const base = `/apps/${app.id}`;
      const attempts: [string, Response][] = [
        ['GET app', await g.get(base)],
        ['PATCH app', await g.patch(base, { name: 'pwned', customClaims: { plan: 'enterprise' } })],
        ['GET tokens', await g.get(`${base}/tokens`)],
        ['POST tokens', await g.post(`${base}/tokens`, { name: 'backdoor' })],
        ['regenerate', await g.post(`${base}/tokens/${token.id}/regenerate`)],
        ['DELETE token', await g.delete(`${base}/tokens/${token.id}`)],
        ['GET events', await g.get(`${base}/events`)],
        ['DELETE app', await g.delete(base)],
      ];
      for (const [label, res] of attempts) {
        expect(res.status, `${label}: ${res.text}`).toBe(404);
        expectProblem(res, 404, 'not_found');
        expect(res.text, label).not.toContain('billing-sync');
      }
      // Indistinguishable from an app that does not exist.
      const missing = await g.get('/apps/app_doesnotexist');
      expectProblem(missing, 404, 'not_found');
      expect(missing.body.detail.replace('app_doesnotexist', 'ID')).toBe((attempts[0]![1].body.detail as string).replace(app.id, 'ID'));

      // acme's app is untouched and works.
      const got = await api(f.app, acme.jwt).get(base);
      expect(got.status).toBe(200);
      expect(got.body).toMatchObject({ name: 'billing-sync', customClaims: { plan: 'free' }, tenantId: 'acme' });
      expect(got.body.tokens.map((t: { id: string }) => t.id)).toEqual([token.id]);
      const jwt = await mint(f.app, app.id, value);
      expect((await api(f.app, jwt).get('/stamps')).status).toBe(200);
    });

    it('GET /apps lists only the caller’s tenant’s apps; apps are created in the caller’s tenant', async () => {
      const acme = await admin(f);
      const globex = await admin(f, ADMIN_SCOPES, 'globex');
      const a1 = await createViaApi(acme.jwt, { name: 'acme-one' });
      const g1 = await api(f.app, globex.jwt).post('/apps', { name: 'globex-one', scopes: ['notarization:read'] });
      expect(g1.status).toBe(201);
      expect(g1.body.app.tenantId).toBe('globex');
      const acmeIds = (await api(f.app, acme.jwt).get('/apps')).body.items.map((x: { id: string }) => x.id);
      const globexList = (await api(f.app, globex.jwt).get('/apps')).body.items as { id: string; tenantId: string }[];
      expect(new Set(acmeIds)).toEqual(new Set([acme.clientId, a1.app.id]));
      expect(new Set(globexList.map((x) => x.id))).toEqual(new Set([globex.clientId, g1.body.app.id]));
      expect(globexList.every((x) => x.tenantId === 'globex')).toBe(true);
    });
  });

  // ---- 8. pagination ----------------------------------------------------------------------------

  describe('GET /apps pagination', () => {
    async function many(n: number): Promise<string[]> {
      const ids: string[] = [];
      for (let i = 0; i < n; i++) ids.push((await f.auth.apps.create({ tenantId: 'acme', name: `app-${i}`, scopes: ['notarization:read'] })).app.id);
      return ids;
    }

    it('?limit=2 walks every app exactly once, nextCursor null on the last page (even when it is full)', async () => {
      const a = await admin(f);
      const all = [a.clientId, ...(await many(7))]; // 8 apps: 4 full pages
      await f.auth.apps.create({ tenantId: 'globex', name: 'foreign', scopes: ['notarization:read'] });
      const pages = await walk(f.app, a.jwt, 2);
      expect(pages.map((p) => p.items.length)).toEqual([2, 2, 2, 2]);
      expect(pages.slice(0, -1).every((p) => typeof p.nextCursor === 'string')).toBe(true);
      expect(pages.at(-1)!.nextCursor).toBeNull();
      const seen = pages.flatMap((p) => p.items.map((x) => x.id));
      expect(seen).toHaveLength(all.length);
      expect(new Set(seen)).toEqual(new Set(all));
      // Oldest first.
      const dates = pages.flatMap((p) => p.items.map((x) => Date.parse(x.creationDate)));
      expect([...dates].sort((x, y) => x - y)).toEqual(dates);

      const three = await walk(f.app, a.jwt, 3);
      expect(three.map((p) => p.items.length)).toEqual([3, 3, 2]);
      expect(new Set(three.flatMap((p) => p.items.map((x) => x.id)))).toEqual(new Set(all));
    });

    it('stable while apps are created and deleted between pages: apps that existed throughout appear exactly once', async () => {
      const a = await admin(f);
      const initial = [a.clientId, ...(await many(7))];
      const deleted = new Set<string>();
      const createdLater: string[] = [];
      const pages = await walk(f.app, a.jwt, 2, async (sofar) => {
        const page = sofar.length;
        // After each page: delete one app already seen and one not yet seen, create one.
        const seenSoFar = new Set(sofar.flatMap((p) => p.items.map((x) => x.id)));
        const seenVictim = [...seenSoFar].find((id) => id !== a.clientId && !deleted.has(id));
        const unseenVictim = initial.find((id) => !seenSoFar.has(id) && !deleted.has(id) && id !== a.clientId);
        for (const id of [seenVictim, unseenVictim]) {
          if (id === undefined || page > 2) continue;
          expect((await api(f.app, a.jwt).delete(`/apps/${id}`)).status).toBe(204);
          deleted.add(id);
        }
        createdLater.push(...(await many(1)));
      });
      const seen = pages.flatMap((p) => p.items.map((x) => x.id));
      expect(new Set(seen).size, 'no app twice').toBe(seen.length);
      for (const id of initial.filter((x) => !deleted.has(x))) {
        expect(seen.filter((s) => s === id), id).toHaveLength(1);
      }
      expect(deleted.size).toBeGreaterThanOrEqual(3);
      const unseenDeleted = [...deleted].filter((id) => !seen.includes(id));
      expect(unseenDeleted.length).toBeGreaterThan(0);
      expect(pages.at(-1)!.nextCursor).toBeNull();
    });

    it('the default page size is 20', async () => {
      const a = await admin(f);
      await many(20); // 21 apps with the admin
      const first = await api(f.app, a.jwt).get('/apps');
      expect(first.status).toBe(200);
      expect(first.body.items).toHaveLength(20);
      expect(typeof first.body.nextCursor).toBe('string');
      const second = await api(f.app, a.jwt).get(`/apps?cursor=${encodeURIComponent(first.body.nextCursor)}`);
      expect(second.body.items).toHaveLength(1);
      expect(second.body.nextCursor).toBeNull();
      const hundred = await api(f.app, a.jwt).get('/apps?limit=100');
      expect(hundred.body.items).toHaveLength(21);
      expect(hundred.body.nextCursor).toBeNull();
    });

    it.each([['0'], ['101'], ['abc'], ['-1'], ['1.5'], ['']])('limit=%s → 400 field "limit"', async (limit) => {
      const a = await admin(f);
      const res = await api(f.app, a.jwt).get(`/apps?limit=${limit}`);
      expectProblem(res, 400, 'validation_failed', 'limit');
    });

    it('a repeated limit → 400 field "limit"', async () => {
      const a = await admin(f);
      expectProblem(await api(f.app, a.jwt).get('/apps?limit=1&limit=2'), 400, 'validation_failed', 'limit');
    });

    it('a garbage cursor → 400 field "cursor"', async () => {
      const a = await admin(f);
      for (const cursor of ['garbage', 'eyJhIjoxfQ', Buffer.from('[1,2]').toString('base64url'), 'x'.repeat(600)]) {
        const res = await api(f.app, a.jwt).get(`/apps?cursor=${cursor}`);
        expectProblem(res, 400, 'validation_failed', 'cursor');
      }
    });

    it('an unknown query parameter → 400 naming it', async () => {
      const a = await admin(f);
      expectProblem(await api(f.app, a.jwt).get('/apps?offset=10'), 400, 'validation_failed', 'offset');
    });
  });

  // ---- 9. a host resolver -----------------------------------------------------------------------

  describe('management.resolvePrincipal (the host’s own user)', () => {
    const alice = (scopes: string[]) => ({
      management: {
        resolvePrincipal: (req: { headers: Record<string, string | string[] | undefined> }) =>
          req.headers['x-user'] === 'alice' ? { tenantId: 'acme', scopes, actorId: 'alice' } : null,
      },
    });

    it('with a host session, a POST that does not declare JSON (a cross-site form: CSRF) is refused with 415, even with an empty body', async () => {
      const g = await fixture(alice(['apps:read', 'apps:write', 'notarization:*']));
      const asAlice = (build: (r: ReturnType<typeof request>) => Test) => api(g.app).raw((r) => build(r).set('X-User', 'alice'));
      const created = await asAlice((r) => r.post('/apps').send({ name: 'csrf-target', scopes: ['notarization:read'] }));
      expect(created.status, created.text).toBe(201);
      const path = `/apps/${created.body.app.id}/tokens/${created.body.token.id}/regenerate`;
      const form = await asAlice((r) => r.post(path).type('form').send(''));
      expectProblem(form, 415, 'unsupported_media_type');
      const bare = await asAlice((r) => r.post(path));
      expectProblem(bare, 415, 'unsupported_media_type');
      // The old value still works: nothing was regenerated.
      expect((await tokenRequest(g.app, created.body.app.id, created.body.value)).status).toBe(200);
      // Declaring JSON, even without a body, is accepted.
      const json = await asAlice((r) => r.post(path).set('Content-Type', 'application/json'));
      expect(json.status, json.text).toBe(200);
    });

    it('without the user → 401 problem; with it → creates notarization apps, not storage ones; events record actorId alice', async () => {
      const hostEvents: AuditEvent[] = [];
      const g = await fixture({ ...alice(['apps:read', 'apps:write', 'notarization:*']), onEvent: (e) => hostEvents.push(e) });
      const anon = await api(g.app).post('/apps', { name: 'x', scopes: ['notarization:read'] });
      expectProblem(anon, 401, 'missing_token');
      const bob = await api(g.app).raw((r) => r.get('/apps').set('X-User', 'bob'));
      expectProblem(bob, 401, 'missing_token');

      const asAlice = (build: (r: ReturnType<typeof request>) => Test) => api(g.app).raw((r) => build(r).set('X-User', 'alice'));
      const created = await asAlice((r) => r.post('/apps').send({ name: 'alice-app', scopes: ['notarization:read'] }));
      expect(created.status, created.text).toBe(201);
      expect(created.body.app.tenantId).toBe('acme');
      const refused = await asAlice((r) => r.post('/apps').send({ name: 'storage', scopes: ['storage:read'] }));
      expectProblem(refused, 403, 'forbidden', 'scopes');

      const id = created.body.app.id as string;
      const log = await asAlice((r) => r.get(`/apps/${id}/events`));
      expect(log.status, log.text).toBe(200);
      const items = log.body.items as AuditEvent[];
      expect(items.length).toBeGreaterThanOrEqual(2);
      expect(['app.created', 'token.created']).toContain(items[0]!.type);
      expect(items[0]!.actorId).toBe('alice');
      expect(new Set(items.map((e) => e.type))).toEqual(new Set(['app.created', 'token.created']));
      expect(items.every((e) => e.actorId === 'alice' && e.appId === id && e.tenantId === 'acme')).toBe(true);
      expect(log.text).not.toContain(created.body.value);

      expect(hostEvents.find((e) => e.type === 'app.created')?.actorId).toBe('alice');
      expect(hostEvents.find((e) => e.type === 'management.refused')?.actorId).toBe('alice');
      // The app's value works like any other.
      await mint(g.app, id, created.body.value as string);
    });

    it('a resolver returning scopes without apps:write → 403 on POST, GETs allowed', async () => {
      const g = await fixture(alice(['apps:read', 'notarization:*']));
      const res = await api(g.app).raw((r) => r.post('/apps').set('X-User', 'alice').send({ name: 'x', scopes: ['notarization:read'] }));
      expectProblem(res, 403, 'insufficient_scope');
      expect(res.body.detail).toContain('apps:write');
      const list = await api(g.app).raw((r) => r.get('/apps').set('X-User', 'alice'));
      expect(list.status, list.text).toBe(200);
      expect((await g.auth.apps.list('acme')).items).toEqual([]);
    });
  });

  // ---- 10. 405 ----------------------------------------------------------------------------------

  describe('405 Method Not Allowed', () => {
    it('PUT /apps and PUT /apps/:id → 405 problem with an Allow header', async () => {
      const a = await admin(f);
      const onList = await api(f.app, a.jwt).raw((r) => r.put('/apps').send({ name: 'x' }));
      expectProblem(onList, 405, 'method_not_allowed');
      const allowList = (onList.headers.allow as string).split(/,\s*/).sort();
      expect(allowList).toEqual(['GET', 'POST']);

      const onApp = await api(f.app, a.jwt).raw((r) => r.put(`/apps/${a.clientId}`).send({ name: 'x' }));
      expectProblem(onApp, 405, 'method_not_allowed');
      expect((onApp.headers.allow as string).split(/,\s*/).sort()).toEqual(['DELETE', 'GET', 'PATCH']);
      expect((await f.auth.apps.get('acme', a.clientId)).name).toBe('test app');
    });
  });

  // ---- 11. audit --------------------------------------------------------------------------------

  describe('audit events (onEvent)', () => {
    it('create, update, delete emit app.created, token.created, app.updated, app.deleted by the caller', async () => {
      const a = await admin(f);
      const start = events.length;
      const { app, token } = await createViaApi(a.jwt);
      const created = events.slice(start);
      expect(created.map((e) => e.type)).toEqual(['app.created', 'token.created']);
      for (const e of created) {
        expect(e).toMatchObject({ outcome: 'success', tenantId: 'acme', appId: app.id, actorId: a.clientId });
      }
      expect(created[1]!.tokenId).toBe(token.id);

      const mark1 = events.length;
      expect((await api(f.app, a.jwt).patch(`/apps/${app.id}`, { name: 'renamed' })).status).toBe(200);
      const updated = events.slice(mark1).filter((e) => e.type === 'app.updated');
      expect(updated).toHaveLength(1);
      expect(updated[0]).toMatchObject({ outcome: 'success', tenantId: 'acme', appId: app.id, actorId: a.clientId });
      expect(updated[0]!.data.fields).toEqual(['name']);

      const mark2 = events.length;
      expect((await api(f.app, a.jwt).delete(`/apps/${app.id}`)).status).toBe(204);
      const deleted = events.slice(mark2).filter((e) => e.type === 'app.deleted');
      expect(deleted).toHaveLength(1);
      expect(deleted[0]).toMatchObject({ outcome: 'success', tenantId: 'acme', appId: app.id, actorId: a.clientId });
    });

    it('a refused create (403) emits management.refused with outcome failure', async () => {
      const a = await admin(f);
      const start = events.length;
      const res = await api(f.app, a.jwt).post('/apps', { name: 'storage', scopes: ['storage:read'] });
      expect(res.status).toBe(403);
      const after = events.slice(start);
      expect(after.some((e) => e.type === 'app.created')).toBe(false);
      const refused = after.filter((e) => e.type === 'management.refused');
      expect(refused).toHaveLength(1);
      expect(refused[0]).toMatchObject({ outcome: 'failure', tenantId: 'acme', actorId: a.clientId, data: { action: 'create_app', code: 'forbidden' } });
    });

    it('a create refused for lack of apps:write (403 insufficient_scope) is audited as management.refused too', async () => {
      const reader = await admin(f, ['apps:read', 'notarization:*']);
      const start = events.length;
      const res = await api(f.app, reader.jwt).post('/apps', { name: 'nope', scopes: ['notarization:read'] });
      expectProblem(res, 403, 'insufficient_scope');
      const refused = events.slice(start).filter((e) => e.type === 'management.refused');
      expect(refused).toHaveLength(1);
      expect(refused[0]).toMatchObject({ outcome: 'failure', tenantId: 'acme', actorId: reader.clientId });
    });

    it('no event carries a secret value or an access token the test handled', async () => {
      const a = await admin(f);
      const secrets: string[] = [a.secret, a.jwt];
      const client = api(f.app, a.jwt);
      const { app, token, value } = await createViaApi(a.jwt, { customClaims: { plan: 'pro' } });
      secrets.push(value);
      const jwt = await mint(f.app, app.id, value);
      secrets.push(jwt);
      expect((await api(f.app, jwt).get('/stamps')).status).toBe(200);
      const issued = await client.post(`/apps/${app.id}/tokens`, { name: 'second' });
      expect(issued.status, issued.text).toBe(201);
      secrets.push(issued.body.value);
      const regenerated = await client.post(`/apps/${app.id}/tokens/${token.id}/regenerate`);
      expect(regenerated.status, regenerated.text).toBe(200);
      secrets.push(regenerated.body.value);
      expect((await client.patch(`/apps/${app.id}`, { description: 'x' })).status).toBe(200);
      expect((await client.post('/apps', { name: 's', scopes: ['storage:read'] })).status).toBe(403);
      expect((await api(f.app, value).get('/stamps')).status).toBe(401); // regenerated: the old value is dead
      expect((await client.delete(`/apps/${app.id}`)).status).toBe(204);
      expect((await api(f.app, jwt).get('/stamps')).status).toBe(401);

      const types = new Set(events.map((e) => e.type));
      for (const t of ['app.created', 'token.created', 'token.regenerated', 'app.updated', 'management.refused', 'app.deleted'] as const) {
        expect(types.has(t), t).toBe(true);
      }
      const all = JSON.stringify(events);
      for (const s of secrets) {
        expect(s.length).toBeGreaterThan(20);
        expect(all.includes(s)).toBe(false);
        expect(all.includes(s.slice(-40))).toBe(false);
      }
      // The stored log (GET /apps/:id/events of a live app) is secret-free too.
      const other = await createViaApi(a.jwt, { name: 'other' });
      const log = await client.get(`/apps/${other.app.id}/events`);
      expect(log.status).toBe(200);
      for (const s of [...secrets, other.value]) expect(log.text.includes(s)).toBe(false);
    });
  });
});
