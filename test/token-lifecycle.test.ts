/**
 * The API-token lifecycle over HTTP, against the real routers, on every adapter: listing, issuing,
 * regenerating, deleting, expiry, downloads (?format=env|postman), refresh (the M-Trust contract)
 * with its concurrency and reuse-detection rules, audit events and lastUsedDate.
 */
import dotenv from 'dotenv';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import type { Express } from 'express';
import request, { type Response } from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../src/index.js';
import {
  ISSUER,
  accessToken,
  createClient,
  decodeJwt,
  expectBearerFailure,
  expectOAuthError,
  setup,
  tokenRequest,
  type Fixture,
  Clock,
  type FixtureOptions,
} from './helpers.js';

const DAY_MS = 86_400_000;
const TOKEN_VIEW_KEYS = ['appId', 'creationDate', 'expirationDate', 'expiringSoon', 'hint', 'id', 'lastUsedDate', 'name', 'scopes', 'status'];
const ADMIN_SCOPES = ['apps:read', 'apps:write', 'notarization:read', 'notarization:write'];
const TARGET_SCOPES = ['notarization:read', 'notarization:write'];

// ---- helpers of this file ------------------------------------------------------------------------

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });
const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');

interface Ctx {
  f: Fixture;
  app: Express;
  /** Headers of the admin app's access token (apps:read apps:write notarization:*). */
  admin: Record<string, string>;
  events: AuditEvent[];
}

const fixtures: Fixture[] = [];
const servers: Server[] = [];

afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise<void>((resolve) => s.close(() => resolve()));
  for (const f of fixtures.splice(0)) await f.cleanup();
});

async function start(store: 'memory' | 'sqlite', options: Omit<FixtureOptions, 'store'> = {}): Promise<Ctx> {
  const events: AuditEvent[] = [];
  const f = await setup({
    store,
    ...options,
    onEvent: (e) => {
      events.push(e);
      options.onEvent?.(e);
    },
  });
  fixtures.push(f);
  const adminClient = await createClient(f.auth, { scopes: ADMIN_SCOPES });
  const jwt = await accessToken(f.app, adminClient.clientId, adminClient.secret);
  return { f, app: f.app, admin: bearer(jwt), events };
}

interface Issued {
  appId: string;
  tokenId: string;
  value: string;
  res: Response;
}

/** POST /apps as the admin: a target app with its first token. */
async function createTarget(
  ctx: Ctx,
  token: { name?: string; expiresIn?: number; scopes?: string[] } = {},
  name = 'target',
): Promise<Issued> {
  const res = await request(ctx.app).post('/apps').set(ctx.admin).send({ name, scopes: TARGET_SCOPES, token });
  expect(res.status, res.text).toBe(201);
  return { appId: res.body.app.id as string, tokenId: res.body.token.id as string, value: res.body.value as string, res };
}

/** POST /apps/:id/tokens as the admin. */
async function issueToken(ctx: Ctx, appId: string, body: Record<string, unknown> = {}): Promise<Issued> {
  const res = await request(ctx.app).post(`/apps/${appId}/tokens`).set(ctx.admin).send(body);
  expect(res.status, res.text).toBe(201);
  return { appId, tokenId: res.body.token.id as string, value: res.body.value as string, res };
}

async function listTokens(ctx: Ctx, appId: string): Promise<Array<Record<string, unknown>>> {
  const res = await request(ctx.app).get(`/apps/${appId}/tokens`).set(ctx.admin);
  expect(res.status, res.text).toBe(200);
  return res.body.items as Array<Record<string, unknown>>;
}

/** Every event of an app, newest first, through the HTTP API. */
async function listEvents(ctx: Ctx, appId: string): Promise<{ items: AuditEvent[]; text: string }> {
  const res = await request(ctx.app).get(`/apps/${appId}/events?limit=100`).set(ctx.admin);
  expect(res.status, res.text).toBe(200);
  return { items: res.body.items as AuditEvent[], text: res.text };
}

function refresh(app: Express | Server, clientId: string, refreshToken: string, extra: Record<string, string> = {}) {
  return request(app)
    .post('/tokens/refresh')
    .send({ client_id: clientId, grant_type: 'token-exchange', refresh_token: refreshToken, scope: 'openid', ...extra });
}

/** RFC 9457 problem details with the status (and field, when given). */
function expectProblem(res: Response, status: number, field?: string): Record<string, unknown> {
  expect(res.status, res.text).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  const body = JSON.parse(res.text) as Record<string, unknown>;
  expect(body.status).toBe(status);
  expect(body.type).toBe('about:blank');
  expect(typeof body.title).toBe('string');
  expect(typeof body.detail).toBe('string');
  if (field !== undefined) expect(body.field).toBe(field);
  return body;
}

/** The value fails at the token endpoint (RFC 6749 §5.2) and as a bearer (RFC 6750 §3.1). */
async function expectValueDead(app: Express, clientId: string, value: string): Promise<void> {
  expectOAuthError(await tokenRequest(app, clientId, value), 401, 'invalid_client');
  expectBearerFailure(await request(app).get('/me').set(bearer(value)), 401, 'invalid_token');
}

/** The value works at the token endpoint and as a bearer. */
async function expectValueAlive(app: Express, clientId: string, value: string): Promise<void> {
  const res = await tokenRequest(app, clientId, value);
  expect(res.status, res.text).toBe(200);
  const me = await request(app).get('/me').set(bearer(value));
  expect(me.status, me.text).toBe(200);
  expect(me.body.appId).toBe(clientId);
}

/** Every key of a JSON value, recursively. */
function allKeys(value: unknown, out: string[] = []): string[] {
  if (Array.isArray(value)) for (const v of value) allKeys(v, out);
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      out.push(k);
      allKeys(v, out);
    }
  }
  return out;
}

/** `KEY='value'` lines of a .env body (issue 11, finding 15), read by the real dotenv parser. */
function parseEnv(text: string): Record<string, string> {
  for (const line of text.split('\n')) {
    if (line !== '') expect(line, `env line ${line}`).toMatch(/^[A-Z_]+='[^']*'$/);
  }
  return dotenv.parse(text);
}

/** A `.env` download: attachment, no-store, the four variables; the secret works. */
async function expectEnvDownload(app: Express, res: Response, status: number, clientId: string): Promise<string> {
  expect(res.status, res.text).toBe(status);
  expect(res.headers['content-disposition']).toMatch(/^attachment; filename="[^"/\\]+\.env"$/);
  expect(res.headers['cache-control']).toBe('no-store');
  expect(res.headers['content-type']).toMatch(/^text\/plain/);
  const vars = parseEnv(res.text);
  expect(Object.keys(vars).sort()).toEqual(['CLIENT_ID', 'CLIENT_SECRET', 'ISSUER', 'TOKEN_URL']);
  expect(vars.CLIENT_ID).toBe(clientId);
  expect(vars.CLIENT_SECRET).toMatch(/^eat_[0-9A-Za-z]{49}$/);
  expect(vars.ISSUER).toBe(ISSUER);
  expect(vars.TOKEN_URL).toBe(`${ISSUER}/oauth/token`);
  const grant = await tokenRequest(app, clientId, vars.CLIENT_SECRET!);
  expect(grant.status, grant.text).toBe(200);
  return vars.CLIENT_SECRET!;
}

describe.each(['memory', 'sqlite'] as const)('API-token lifecycle (%s store)', (store) => {
  // ---- 1. listing ----------------------------------------------------------------------------------

  describe('GET /apps/:id/tokens', () => {
    it('lists token metadata only: the documented keys, no value, no hash, a hint of the last 4 characters', async () => {
      const ctx = await start(store);
      const target = await createTarget(ctx, { name: 'first' });
      const second = await issueToken(ctx, target.appId, { name: 'second', scopes: ['notarization:read'] });
      const res = await request(ctx.app).get(`/apps/${target.appId}/tokens`).set(ctx.admin);
      expect(res.status).toBe(200);
      expect(Object.keys(res.body)).toEqual(['items', 'nextCursor']);
      const items = res.body.items as Array<Record<string, unknown>>;
      expect(items.map((t) => t.id).sort()).toEqual([target.tokenId, second.tokenId].sort());
      for (const t of items) {
        expect(Object.keys(t).sort()).toEqual(TOKEN_VIEW_KEYS);
        expect(t.appId).toBe(target.appId);
      }
      const keys = allKeys(res.body);
      expect(keys).not.toContain('value');
      expect(keys).not.toContain('hash');
      for (const { tokenId, value } of [target, second]) {
        const t = items.find((i) => i.id === tokenId)!;
        expect(t.hint).toBe(`eat_…${value.slice(-4)}`);
        expect(res.text).not.toContain(value);
        expect(res.text).not.toContain(sha256(value));
      }
      const s = items.find((i) => i.id === second.tokenId)!;
      expect(s).toMatchObject({ name: 'second', scopes: ['notarization:read'], lastUsedDate: null });
      expect(items.find((i) => i.id === target.tokenId)).toMatchObject({ name: 'first', scopes: null });
    });
  });

  // ---- 2. issuing ----------------------------------------------------------------------------------

  describe('POST /apps/:id/tokens', () => {
    it("issues a token with name 'default' and a 90-day expiry when the body is empty", async () => {
      const ctx = await start(store);
      const target = await createTarget(ctx);
      for (const send of [(r: request.Test) => r, (r: request.Test) => r.send({})]) {
        const res = await send(request(ctx.app).post(`/apps/${target.appId}/tokens`).set(ctx.admin));
        expect(res.status, res.text).toBe(201);
        expect(Object.keys(res.body).sort()).toEqual(['token', 'value']);
        expect(res.headers['cache-control']).toBe('no-store');
        expect(res.body.token.name).toBe('default');
        expect(res.body.token.scopes).toBeNull();
        const { creationDate, expirationDate } = res.body.token as { creationDate: string; expirationDate: string };
        expect(Date.parse(expirationDate) - Date.parse(creationDate)).toBe(90 * DAY_MS);
        expect(Math.abs(Date.parse(creationDate) - Date.now())).toBeLessThan(60_000);
        expect(res.body.value).toMatch(/^eat_[0-9A-Za-z]{49}$/);
        await expectValueAlive(ctx.app, target.appId, res.body.value as string);
      }
    });

    it('respects a custom expiresIn and name', async () => {
      const ctx = await start(store);
      const target = await createTarget(ctx);
      const issued = await issueToken(ctx, target.appId, { name: 'ci', expiresIn: 7200 });
      const { name, creationDate, expirationDate } = issued.res.body.token as Record<string, string>;
      expect(name).toBe('ci');
      expect(Date.parse(expirationDate!) - Date.parse(creationDate!)).toBe(7200 * 1000);
      const listed = (await listTokens(ctx, target.appId)).find((t) => t.id === issued.tokenId);
      expect(listed).toMatchObject({ name: 'ci', expirationDate, creationDate });
    });

    it('applies the apiTokenTtl option: its default, and expiresIn above its max → 400 naming expiresIn', async () => {
      const ctx = await start(store, { apiTokenTtl: { max: 3600, default: 600 } });
      const target = await createTarget(ctx);
      const dflt = await issueToken(ctx, target.appId, {});
      const t = dflt.res.body.token as Record<string, string>;
      expect(Date.parse(t.expirationDate!) - Date.parse(t.creationDate!)).toBe(600 * 1000);
      const atMax = await issueToken(ctx, target.appId, { expiresIn: 3600 });
      const m = atMax.res.body.token as Record<string, string>;
      expect(Date.parse(m.expirationDate!) - Date.parse(m.creationDate!)).toBe(3600 * 1000);

      const before = (await listTokens(ctx, target.appId)).length;
      const res = await request(ctx.app).post(`/apps/${target.appId}/tokens`).set(ctx.admin).send({ expiresIn: 3601 });
      expectProblem(res, 400, 'expiresIn');
      expect(res.text).not.toMatch(/eat_[0-9A-Za-z]{49}/);
      expect((await listTokens(ctx, target.appId)).length).toBe(before);
    });

    it("refuses scopes outside the app's scopes with 400 and creates nothing", async () => {
      const ctx = await start(store);
      const target = await createTarget(ctx);
      const before = (await listTokens(ctx, target.appId)).length;
      for (const scopes of [['storage:read'], ['notarization:read', 'streams:write'], ['no:such-scope']]) {
        const res = await request(ctx.app).post(`/apps/${target.appId}/tokens`).set(ctx.admin).send({ scopes });
        const body = expectProblem(res, 400);
        expect(String(body.field)).toMatch(/^scopes/);
      }
      expect((await listTokens(ctx, target.appId)).length).toBe(before);
    });

    it("bounds access tokens by the token's scopes: a scope outside them → invalid_scope (RFC 6749 §5.2)", async () => {
      const ctx = await start(store);
      const target = await createTarget(ctx);
      const narrow = await issueToken(ctx, target.appId, { scopes: ['notarization:read'] });
      expect(narrow.res.body.token.scopes).toEqual(['notarization:read']);
      const ok = await tokenRequest(ctx.app, target.appId, narrow.value);
      expect(ok.status, ok.text).toBe(200);
      expect(ok.body.scope).toBe('notarization:read');
      expect(decodeJwt(ok.body.access_token as string).payload.scope).toBe('notarization:read');
      expect(decodeJwt(ok.body.access_token as string).payload.api_token_id).toBe(narrow.tokenId);
      expectOAuthError(await tokenRequest(ctx.app, target.appId, narrow.value, { scope: 'notarization:write' }), 400, 'invalid_scope');
      // The app's first token (all the app's scopes) still gets both.
      const wide = await tokenRequest(ctx.app, target.appId, target.value, { scope: 'notarization:read notarization:write' });
      expect(wide.status, wide.text).toBe(200);
    });
  });

  // ---- 3. regenerate -------------------------------------------------------------------------------

  describe('POST /apps/:id/tokens/:tokenId/regenerate', () => {
    it('answers a new token id with the same name, scopes and lifetime (a fresh expiry), and a new value that works', async () => {
      const ctx = await start(store);
      const target = await createTarget(ctx);
      const old = await issueToken(ctx, target.appId, { name: 'deploy', scopes: ['notarization:read'], expiresIn: 86_400 });
      const res = await request(ctx.app).post(`/apps/${target.appId}/tokens/${old.tokenId}/regenerate`).set(ctx.admin);
      expect(res.status, res.text).toBe(200);
      expect(Object.keys(res.body).sort()).toEqual(['token', 'value']);
      expect(res.headers['cache-control']).toBe('no-store');
      const oldToken = old.res.body.token as Record<string, unknown>;
      const token = res.body.token as Record<string, unknown>;
      expect(token.id).not.toBe(old.tokenId);
      expect(token.name).toBe('deploy');
      expect(token.scopes).toEqual(['notarization:read']);
      const lifetime = (t: Record<string, unknown>) => Date.parse(t.expirationDate as string) - Date.parse(t.creationDate as string);
      expect(lifetime(token)).toBe(lifetime(oldToken));
      expect(lifetime(token)).toBe(86_400_000);
      expect(res.body.value).not.toBe(old.value);
      await expectValueAlive(ctx.app, target.appId, res.body.value as string);
      const ids = (await listTokens(ctx, target.appId)).map((t) => t.id);
      expect(ids).toContain(token.id);
      expect(ids).not.toContain(old.tokenId);
    });

    it('kills the old value and its access tokens at once, even when they were cached as bearers (RFC 6750 §3.1)', async () => {
      const ctx = await start(store);
      const target = await createTarget(ctx);
      const jwt = await accessToken(ctx.app, target.appId, target.value);
      // Warm the verification cache with both.
      expect((await request(ctx.app).get('/me').set(bearer(target.value))).status).toBe(200);
      expect((await request(ctx.app).get('/me').set(bearer(jwt))).status).toBe(200);
      const res = await request(ctx.app).post(`/apps/${target.appId}/tokens/${target.tokenId}/regenerate`).set(ctx.admin);
      expect(res.status, res.text).toBe(200);
      await expectValueDead(ctx.app, target.appId, target.value);
      expectBearerFailure(await request(ctx.app).get('/me').set(bearer(jwt)), 401, 'invalid_token');
      expectBearerFailure(await request(ctx.app).get('/stamps').set(bearer(jwt)), 401, 'invalid_token');
      await expectValueAlive(ctx.app, target.appId, res.body.value as string);
    });

    it('answers 404 problem for an unknown or an already regenerated token id', async () => {
      const ctx = await start(store);
      const target = await createTarget(ctx);
      const first = await request(ctx.app).post(`/apps/${target.appId}/tokens/${target.tokenId}/regenerate`).set(ctx.admin);
      expect(first.status).toBe(200);
      const again = await request(ctx.app).post(`/apps/${target.appId}/tokens/${target.tokenId}/regenerate`).set(ctx.admin);
      expectProblem(again, 404);
      expect(again.text).not.toMatch(/eat_[0-9A-Za-z]{49}/);
      expectProblem(await request(ctx.app).post(`/apps/${target.appId}/tokens/tok_doesnotexist/regenerate`).set(ctx.admin), 404);
      // A token of another app, addressed through this one, is not found either.
      const other = await createTarget(ctx, {}, 'other');
      expectProblem(await request(ctx.app).post(`/apps/${target.appId}/tokens/${other.tokenId}/regenerate`).set(ctx.admin), 404);
      await expectValueAlive(ctx.app, other.appId, other.value);
      // Exactly one live token remains: the regenerated one.
      expect((await listTokens(ctx, target.appId)).map((t) => t.id)).toEqual([first.body.token.id]);
    });
  });

  // ---- 4. delete -----------------------------------------------------------------------------------

  describe('DELETE /apps/:id/tokens/:tokenId', () => {
    it('answers 204; the token leaves the list; its value and its access tokens die at once; siblings keep working', async () => {
      const ctx = await start(store);
      const target = await createTarget(ctx);
      const sibling = await issueToken(ctx, target.appId, { name: 'sibling' });
      const jwt = await accessToken(ctx.app, target.appId, target.value);
      const siblingJwt = await accessToken(ctx.app, target.appId, sibling.value);
      for (const t of [target.value, jwt, sibling.value, siblingJwt]) {
        expect((await request(ctx.app).get('/me').set(bearer(t))).status).toBe(200);
      }
      const res = await request(ctx.app).delete(`/apps/${target.appId}/tokens/${target.tokenId}`).set(ctx.admin);
      expect(res.status, res.text).toBe(204);
      expect(res.text).toBe('');
      expect((await listTokens(ctx, target.appId)).map((t) => t.id)).toEqual([sibling.tokenId]);
      await expectValueDead(ctx.app, target.appId, target.value);
      expectBearerFailure(await request(ctx.app).get('/me').set(bearer(jwt)), 401, 'invalid_token');
      await expectValueAlive(ctx.app, target.appId, sibling.value);
      expect((await request(ctx.app).get('/stamps').set(bearer(siblingJwt))).status).toBe(200);
      // Deleting again → 404.
      expectProblem(await request(ctx.app).delete(`/apps/${target.appId}/tokens/${target.tokenId}`).set(ctx.admin), 404);
      expectProblem(await request(ctx.app).delete(`/apps/${target.appId}/tokens/tok_doesnotexist`).set(ctx.admin), 404);
    });
  });

  // ---- 5. expiry -----------------------------------------------------------------------------------

  describe('expired API tokens', () => {
    it('a token with expiresIn 120 works, then after 121 s is refused at /oauth/token, as a bearer and at /tokens/refresh', async () => {
      const clock = new Clock();
      const ctx = await start(store, { advanced: { now: clock.now } });
      const target = await createTarget(ctx);
      const short = await issueToken(ctx, target.appId, { name: 'short', expiresIn: 120 });
      await expectValueAlive(ctx.app, target.appId, short.value); // also warms the bearer cache
      clock.advance(121);
      expectOAuthError(await tokenRequest(ctx.app, target.appId, short.value), 401, 'invalid_client');
      expectBearerFailure(await request(ctx.app).get('/me').set(bearer(short.value)), 401, 'invalid_token');
      expectOAuthError(await refresh(ctx.app, target.appId, short.value), 400, 'invalid_grant');
      // The app's other token (90 days) is untouched by the clock jump.
      await expectValueAlive(ctx.app, target.appId, target.value);
    });
  });

  // ---- 6. downloads ----------------------------------------------------------------------------------

  describe('?format=env and ?format=postman downloads', () => {
    it('POST /apps?format=env answers a .env attachment whose secret works', async () => {
      const ctx = await start(store);
      const res = await request(ctx.app).post('/apps?format=env').set(ctx.admin).send({ name: 'Billing Sync', scopes: TARGET_SCOPES });
      const apps = await request(ctx.app).get('/apps?limit=100').set(ctx.admin);
      const created = (apps.body.items as Array<{ id: string; name: string }>).find((a) => a.name === 'Billing Sync');
      expect(created).toBeDefined();
      await expectEnvDownload(ctx.app, res, 201, created!.id);
    });

    it('POST /apps/:id/tokens?format=env, regenerate?format=env and /tokens/refresh?format=env answer .env attachments', async () => {
      const ctx = await start(store);
      const target = await createTarget(ctx);
      const issued = await request(ctx.app).post(`/apps/${target.appId}/tokens?format=env`).set(ctx.admin).send({ name: 'envtok' });
      const value = await expectEnvDownload(ctx.app, issued, 201, target.appId);
      const envTok = (await listTokens(ctx, target.appId)).find((t) => t.name === 'envtok')!;
      expect(envTok.hint).toBe(`eat_…${value.slice(-4)}`);

      const regen = await request(ctx.app).post(`/apps/${target.appId}/tokens/${envTok.id}/regenerate?format=env`).set(ctx.admin);
      const regenerated = await expectEnvDownload(ctx.app, regen, 200, target.appId);
      expect(regenerated).not.toBe(value);
      expectOAuthError(await tokenRequest(ctx.app, target.appId, value), 401, 'invalid_client');

      const refreshed = await request(ctx.app)
        .post('/tokens/refresh?format=env')
        .send({ client_id: target.appId, grant_type: 'token-exchange', refresh_token: regenerated, scope: 'openid' });
      const next = await expectEnvDownload(ctx.app, refreshed, 200, target.appId);
      expect(next).not.toBe(regenerated);
      expectOAuthError(await tokenRequest(ctx.app, target.appId, regenerated), 401, 'invalid_client');
    });

    it('?format=postman answers a Postman environment attachment with CLIENT_SECRET of type secret', async () => {
      const ctx = await start(store);
      const target = await createTarget(ctx);
      const res = await request(ctx.app).post(`/apps/${target.appId}/tokens?format=postman`).set(ctx.admin).send({ name: 'pm' });
      expect(res.status, res.text).toBe(201);
      expect(res.headers['content-disposition']).toMatch(/^attachment; filename="[^"/\\]+\.json"$/);
      expect(res.headers['cache-control']).toBe('no-store');
      const env = JSON.parse(res.text) as {
        id: unknown;
        name: unknown;
        values: Array<{ key: string; value: string; type: string; enabled: boolean }>;
        _postman_variable_scope: unknown;
      };
      expect(Object.keys(env).sort()).toEqual(['_postman_variable_scope', 'id', 'name', 'values']);
      expect(env._postman_variable_scope).toBe('environment');
      expect(typeof env.id).toBe('string');
      expect(typeof env.name).toBe('string');
      for (const v of env.values) expect(Object.keys(v).sort()).toEqual(['enabled', 'key', 'type', 'value']);
      const byKey = Object.fromEntries(env.values.map((v) => [v.key, v]));
      expect(Object.keys(byKey).sort()).toEqual(['CLIENT_ID', 'CLIENT_SECRET', 'ISSUER', 'TOKEN_URL']);
      expect(byKey.CLIENT_SECRET).toMatchObject({ type: 'secret', enabled: true });
      expect(byKey.CLIENT_ID).toMatchObject({ value: target.appId, enabled: true });
      expect(byKey.ISSUER!.value).toBe(ISSUER);
      expect(byKey.TOKEN_URL!.value).toBe(`${ISSUER}/oauth/token`);
      for (const k of ['CLIENT_ID', 'ISSUER', 'TOKEN_URL']) expect(byKey[k]!.type).not.toBe('secret');
      const grant = await tokenRequest(ctx.app, target.appId, byKey.CLIENT_SECRET!.value);
      expect(grant.status, grant.text).toBe(200);

      // The refresh endpoint answers the same format.
      const refreshed = await request(ctx.app)
        .post('/tokens/refresh?format=postman')
        .send({ client_id: target.appId, grant_type: 'token-exchange', refresh_token: byKey.CLIENT_SECRET!.value, scope: 'openid' });
      expect(refreshed.status, refreshed.text).toBe(200);
      expect(refreshed.headers['content-disposition']).toMatch(/^attachment; filename="[^"/\\]+\.json"$/);
      expect(refreshed.headers['cache-control']).toBe('no-store');
      const next = JSON.parse(refreshed.text) as typeof env;
      expect(next._postman_variable_scope).toBe('environment');
      const secret = next.values.find((v) => v.key === 'CLIENT_SECRET')!;
      expect(secret.type).toBe('secret');
      expect(secret.value).not.toBe(byKey.CLIENT_SECRET!.value);
      expect((await tokenRequest(ctx.app, target.appId, secret.value)).status).toBe(200);
    });

    it('?format=xml → 400 problem naming format, and no app or token is created, regenerated or refreshed', async () => {
      const ctx = await start(store);
      const target = await createTarget(ctx);
      const appsBefore = (await request(ctx.app).get('/apps?limit=100').set(ctx.admin)).body.items.length as number;
      expectProblem(await request(ctx.app).post('/apps?format=xml').set(ctx.admin).send({ name: 'x', scopes: TARGET_SCOPES }), 400, 'format');
      expect((await request(ctx.app).get('/apps?limit=100').set(ctx.admin)).body.items.length).toBe(appsBefore);

      const tokensBefore = (await listTokens(ctx, target.appId)).map((t) => t.id);
      expectProblem(await request(ctx.app).post(`/apps/${target.appId}/tokens?format=xml`).set(ctx.admin).send({}), 400, 'format');
      expectProblem(await request(ctx.app).post(`/apps/${target.appId}/tokens?format=env&format=postman`).set(ctx.admin).send({}), 400, 'format');
      expectProblem(await request(ctx.app).post(`/apps/${target.appId}/tokens/${target.tokenId}/regenerate?format=xml`).set(ctx.admin), 400, 'format');
      const badRefresh = await request(ctx.app)
        .post('/tokens/refresh?format=xml')
        .send({ client_id: target.appId, grant_type: 'token-exchange', refresh_token: target.value, scope: 'openid' });
      expectOAuthError(badRefresh, 400, 'invalid_request');
      expect(badRefresh.body.error_description).toContain('format');
      expect((await listTokens(ctx, target.appId)).map((t) => t.id)).toEqual(tokensBefore);
      await expectValueAlive(ctx.app, target.appId, target.value);
    });
  });

  // ---- 7. refresh ----------------------------------------------------------------------------------

  describe('POST /tokens/refresh (M-Trust contract)', () => {
    it('answers exactly {token: {id, name, creationDate, expirationDate}, value}, no-store, keeping name, scopes and lifetime', async () => {
      const clock = new Clock();
      const ctx = await start(store, { advanced: { now: clock.now } });
      const target = await createTarget(ctx);
      const old = await issueToken(ctx, target.appId, { name: 'rotating', scopes: ['notarization:read'], expiresIn: 3600 });
      clock.advance(100);
      const res = await refresh(ctx.app, target.appId, old.value);
      expect(res.status, res.text).toBe(200);
      expect(Object.keys(res.body).sort()).toEqual(['token', 'value']);
      expect(Object.keys(res.body.token).sort()).toEqual(['creationDate', 'expirationDate', 'id', 'name']);
      expect(res.headers['cache-control']).toBe('no-store');
      const token = res.body.token as Record<string, string>;
      expect(token.id).not.toBe(old.tokenId);
      expect(token.name).toBe('rotating');
      expect(Date.parse(token.creationDate!)).toBe(clock.t);
      expect(Date.parse(token.expirationDate!)).toBe(clock.t + 3600 * 1000);
      expect(res.body.value).toMatch(/^eat_[0-9A-Za-z]{49}$/);
      const listed = (await listTokens(ctx, target.appId)).find((t) => t.id === token.id);
      expect(listed).toMatchObject({ name: 'rotating', scopes: ['notarization:read'], expirationDate: token.expirationDate });
      // The scopes still bound the access tokens of the new value.
      expectOAuthError(await tokenRequest(ctx.app, target.appId, res.body.value as string, { scope: 'notarization:write' }), 400, 'invalid_scope');
    });

    it('a lifetime never shrinks across rotations: regenerate on day 30, refresh on day 31, still 90 days (regression)', async () => {
      const clock = new Clock();
      const ctx = await start(store, { advanced: { now: clock.now } });
      const target = await createTarget(ctx);
      const old = await issueToken(ctx, target.appId, { name: 'long', expiresIn: 90 * 86_400 });
      clock.advance(30 * 86_400);
      // The admin's access token has long expired by now: regenerate through the programmatic API.
      const regenerated = await ctx.f.auth.apps.regenerateToken('acme', target.appId, old.tokenId);
      clock.advance(86_400);
      const res = await refresh(ctx.app, target.appId, regenerated.value);
      expect(res.status, res.text).toBe(200);
      const token = res.body.token as Record<string, string>;
      expect(Date.parse(token.expirationDate!) - Date.parse(token.creationDate!)).toBe(90 * 86_400_000);
    });

    it('kills the old value at once (token endpoint 401, bearer 401) and the new value works', async () => {
      const ctx = await start(store);
      const target = await createTarget(ctx);
      expect((await request(ctx.app).get('/me').set(bearer(target.value))).status).toBe(200); // cached
      const res = await refresh(ctx.app, target.appId, target.value);
      expect(res.status, res.text).toBe(200);
      await expectValueDead(ctx.app, target.appId, target.value);
      await expectValueAlive(ctx.app, target.appId, res.body.value as string);
      expect((await listTokens(ctx, target.appId)).map((t) => t.id)).toEqual([res.body.token.id]);
    });

    it('accepts a form-encoded body too', async () => {
      const ctx = await start(store);
      const target = await createTarget(ctx);
      const res = await request(ctx.app)
        .post('/tokens/refresh')
        .type('form')
        .send({ client_id: target.appId, grant_type: 'token-exchange', refresh_token: target.value, scope: 'openid' });
      expect(res.status, res.text).toBe(200);
      expect(Object.keys(res.body).sort()).toEqual(['token', 'value']);
      await expectValueAlive(ctx.app, target.appId, res.body.value as string);
      await expectValueDead(ctx.app, target.appId, target.value);
    });

    it('RFC 6749 §5.2: a missing field → 400 invalid_request naming it', async () => {
      const ctx = await start(store);
      const target = await createTarget(ctx);
      const full = { client_id: target.appId, grant_type: 'token-exchange', refresh_token: target.value, scope: 'openid' };
      for (const missing of ['client_id', 'grant_type', 'refresh_token'] as const) {
        const body: Record<string, string> = { ...full };
        delete body[missing];
        const res = await request(ctx.app).post('/tokens/refresh').send(body);
        expectOAuthError(res, 400, 'invalid_request');
        expect(Object.keys(res.body).sort()).toEqual(['error', 'error_description']);
        expect(res.body.error_description).toContain(missing);
        const empty = await request(ctx.app).post('/tokens/refresh').send({ ...full, [missing]: '' });
        expectOAuthError(empty, 400, 'invalid_request');
        expect(empty.body.error_description).toContain(missing);
      }
      await expectValueAlive(ctx.app, target.appId, target.value);
    });

    it('RFC 6749 §5.2: another grant_type → unsupported_grant_type; a scope other than openid → invalid_scope', async () => {
      const ctx = await start(store);
      const target = await createTarget(ctx);
      for (const grant of ['refresh_token', 'client_credentials', 'urn:ietf:params:oauth:grant-type:token-exchange']) {
        expectOAuthError(await refresh(ctx.app, target.appId, target.value, { grant_type: grant }), 400, 'unsupported_grant_type');
      }
      for (const scope of ['notarization:read', 'openid profile', 'OPENID']) {
        expectOAuthError(await refresh(ctx.app, target.appId, target.value, { scope }), 400, 'invalid_scope');
      }
      await expectValueAlive(ctx.app, target.appId, target.value);
    });

    it('RFC 6749 §5.2: a wrong client_id for the token, or a garbage token → 400 invalid_grant', async () => {
      const ctx = await start(store);
      const target = await createTarget(ctx);
      const other = await createTarget(ctx, {}, 'other');
      expectOAuthError(await refresh(ctx.app, other.appId, target.value), 400, 'invalid_grant');
      expectOAuthError(await refresh(ctx.app, 'app_doesnotexist', target.value), 400, 'invalid_grant');
      for (const garbage of ['garbage', `${target.value.slice(0, -1)}${target.value.endsWith('A') ? 'B' : 'A'}`, 'eat_' + 'x'.repeat(49)]) {
        expectOAuthError(await refresh(ctx.app, target.appId, garbage), 400, 'invalid_grant');
      }
      // Nothing was rotated by the refused attempts.
      await expectValueAlive(ctx.app, target.appId, target.value);
      await expectValueAlive(ctx.app, other.appId, other.value);
    });

    it('GET → 405 with Allow: POST; refresh_token in the query string → 400 invalid_request', async () => {
      const ctx = await start(store);
      const target = await createTarget(ctx);
      const get = await request(ctx.app).get('/tokens/refresh');
      expect(get.status).toBe(405);
      expect(get.headers.allow).toBe('POST');
      expect(Object.keys(get.body).sort()).toEqual(['error', 'error_description']);
      const query = await request(ctx.app)
        .post(`/tokens/refresh?refresh_token=${encodeURIComponent(target.value)}`)
        .send({ client_id: target.appId, grant_type: 'token-exchange', scope: 'openid', refresh_token: target.value });
      expectOAuthError(query, 400, 'invalid_request');
      expect(query.body.error_description).toContain('refresh_token');
      await expectValueAlive(ctx.app, target.appId, target.value);
    });
  });

  // ---- 8. concurrency --------------------------------------------------------------------------------

  describe('concurrent refreshes', () => {
    it('20 concurrent refreshes of one token: exactly one 200, the others invalid_grant, one live successor that keeps working', async () => {
      const ctx = await start(store);
      const target = await createTarget(ctx, { name: 'race' });
      const server = ctx.app.listen(0);
      servers.push(server);
      await new Promise<void>((resolve) => server.once('listening', () => resolve()));
      expect((server.address() as AddressInfo).port).toBeGreaterThan(0);

      const results = await Promise.all(Array.from({ length: 20 }, () => refresh(server, target.appId, target.value)));
      const winners = results.filter((r) => r.status === 200);
      expect(winners.length, results.map((r) => r.status).join(',')).toBe(1);
      for (const r of results.filter((x) => x.status !== 200)) expectOAuthError(r, 400, 'invalid_grant');

      const winner = winners[0]!;
      const live = (await listTokens(ctx, target.appId)).filter((t) => t.name === 'race');
      expect(live.map((t) => t.id)).toEqual([winner.body.token.id]);
      // The losers were within the race window: no reuse detection, the winner keeps working.
      expect(ctx.events.filter((e) => e.type === 'token.reuse_detected')).toEqual([]);
      await expectValueAlive(ctx.app, target.appId, winner.body.value as string);
      await expectValueDead(ctx.app, target.appId, target.value);
      const next = await refresh(ctx.app, target.appId, winner.body.value as string);
      expect(next.status, next.text).toBe(200);
    });
  });

  // ---- 9. reuse detection ----------------------------------------------------------------------------

  describe('refresh-token reuse detection', () => {
    it('presenting a refreshed token after the race window → invalid_grant and the whole lineage is revoked', async () => {
      const clock = new Clock();
      const ctx = await start(store, { advanced: { now: clock.now } });
      const target = await createTarget(ctx, { name: 'lineage' });
      const sibling = await issueToken(ctx, target.appId, { name: 'sibling' });
      const a = target.value;
      const b = await refresh(ctx.app, target.appId, a);
      expect(b.status, b.text).toBe(200);
      clock.advance(1);
      const c = await refresh(ctx.app, target.appId, b.body.value as string);
      expect(c.status, c.text).toBe(200);
      const cValue = c.body.value as string;
      const cJwt = await accessToken(ctx.app, target.appId, cValue);
      expect((await request(ctx.app).get('/me').set(bearer(cValue))).status).toBe(200); // cached
      expect((await request(ctx.app).get('/me').set(bearer(cJwt))).status).toBe(200); // cached

      clock.advance(3); // past refreshRaceWindow (2 s) since both refreshes
      const reuse = await refresh(ctx.app, target.appId, a);
      expectOAuthError(reuse, 400, 'invalid_grant');

      const detected = ctx.events.filter((e) => e.type === 'token.reuse_detected');
      expect(detected).toHaveLength(1);
      expect(detected[0]).toMatchObject({ outcome: 'failure', appId: target.appId, tokenId: target.tokenId });
      expect(detected[0]!.data.revokedTokenIds).toEqual([c.body.token.id]);
      const listed = (await listEvents(ctx, target.appId)).items.filter((e) => e.type === 'token.reuse_detected');
      expect(listed).toHaveLength(1);
      expect(listed[0]).toMatchObject({ id: detected[0]!.id, outcome: 'failure', tokenId: target.tokenId });

      await expectValueDead(ctx.app, target.appId, cValue);
      expectBearerFailure(await request(ctx.app).get('/me').set(bearer(cJwt)), 401, 'invalid_token');
      expectOAuthError(await refresh(ctx.app, target.appId, cValue), 400, 'invalid_grant');
      // B, itself refreshed, is refused too (and is another reuse).
      expectOAuthError(await refresh(ctx.app, target.appId, b.body.value as string), 400, 'invalid_grant');
      // No live token of that lineage remains; the sibling is untouched.
      expect((await listTokens(ctx, target.appId)).map((t) => t.id)).toEqual([sibling.tokenId]);
      await expectValueAlive(ctx.app, target.appId, sibling.value);
    });

    it('presenting a refreshed token again within the race window is a plain invalid_grant that keeps the successor', async () => {
      const clock = new Clock();
      const ctx = await start(store, { advanced: { now: clock.now } });
      const target = await createTarget(ctx);
      const next = await refresh(ctx.app, target.appId, target.value);
      expect(next.status, next.text).toBe(200);
      clock.advance(1); // within the 2 s window
      expectOAuthError(await refresh(ctx.app, target.appId, target.value), 400, 'invalid_grant');
      expect(ctx.events.filter((e) => e.type === 'token.reuse_detected')).toEqual([]);
      await expectValueAlive(ctx.app, target.appId, next.body.value as string);
      expect((await listTokens(ctx, target.appId)).map((t) => t.id)).toEqual([next.body.token.id]);
      clock.advance(5);
      const again = await refresh(ctx.app, target.appId, next.body.value as string);
      expect(again.status, again.text).toBe(200);
    });

    it('honours the refreshRaceWindow option', async () => {
      const clock = new Clock();
      const ctx = await start(store, { advanced: { now: clock.now, refreshRaceWindow: 10 } });
      const target = await createTarget(ctx);
      const next = await refresh(ctx.app, target.appId, target.value);
      expect(next.status).toBe(200);
      clock.advance(5); // past the default 2 s, within 10 s
      expectOAuthError(await refresh(ctx.app, target.appId, target.value), 400, 'invalid_grant');
      await expectValueAlive(ctx.app, target.appId, next.body.value as string);
      clock.advance(6); // past 10 s
      expectOAuthError(await refresh(ctx.app, target.appId, target.value), 400, 'invalid_grant');
      await expectValueDead(ctx.app, target.appId, next.body.value as string);
    });
  });

  // ---- 10. events ----------------------------------------------------------------------------------

  describe('GET /apps/:id/events', () => {
    it('lists the lifecycle newest first, with failures marked, pages with ?limit=2, and never carries a secret', async () => {
      const clock = new Clock();
      const ctx = await start(store, { advanced: { now: clock.now } });
      const secrets: string[] = [];
      const step = () => clock.advance(1);

      step();
      const target = await createTarget(ctx);
      secrets.push(target.value);
      step();
      const second = await issueToken(ctx, target.appId, { name: 'second' });
      secrets.push(second.value);
      step();
      const jwt = await accessToken(ctx.app, target.appId, target.value);
      secrets.push(jwt);
      step();
      const wrong = await tokenRequest(ctx.app, target.appId, second.value.slice(0, -6) + 'AAAAAA');
      expectOAuthError(wrong, 401, 'invalid_client');
      step();
      expectOAuthError(await tokenRequest(ctx.app, target.appId, 'eat_notavalidsecret'), 401, 'invalid_client');
      step();
      const regen = await request(ctx.app).post(`/apps/${target.appId}/tokens/${second.tokenId}/regenerate`).set(ctx.admin);
      expect(regen.status).toBe(200);
      secrets.push(regen.body.value as string);
      step();
      const refreshed = await refresh(ctx.app, target.appId, target.value);
      expect(refreshed.status).toBe(200);
      secrets.push(refreshed.body.value as string);
      step();
      const del = await request(ctx.app).delete(`/apps/${target.appId}/tokens/${regen.body.token.id}`).set(ctx.admin);
      expect(del.status).toBe(204);

      const { items, text } = await listEvents(ctx, target.appId);
      const res = await request(ctx.app).get(`/apps/${target.appId}/events`).set(ctx.admin);
      expect(Object.keys(res.body).sort()).toEqual(['items', 'nextCursor']);
      for (const e of items) expect(e.appId).toBe(target.appId);
      // Newest first.
      const times = items.map((e) => Date.parse(e.at));
      expect([...times].sort((x, y) => y - x)).toEqual(times);
      const lifecycle = items
        .map((e) => e.type)
        .filter((t) => ['token.created', 'token.regenerated', 'token.deleted', 'token.refreshed', 'access_token.issued', 'access_token.refused'].includes(t));
      expect(lifecycle).toEqual([
        'token.deleted',
        'token.refreshed',
        'token.regenerated',
        'access_token.refused',
        'access_token.refused',
        'access_token.issued',
        'token.created',
        'token.created',
      ]);
      for (const e of items.filter((x) => x.type === 'access_token.refused')) expect(e.outcome).toBe('failure');
      for (const e of items.filter((x) => x.type.startsWith('token.') || x.type === 'access_token.issued')) {
        expect(e.outcome).toBe('success');
      }
      expect(items.find((e) => e.type === 'token.deleted')!.tokenId).toBe(regen.body.token.id);
      expect(items.find((e) => e.type === 'token.regenerated')!.tokenId).toBe(regen.body.token.id);
      expect(items.find((e) => e.type === 'token.refreshed')!.tokenId).toBe(refreshed.body.token.id);
      expect(items.find((e) => e.type === 'access_token.issued')!.tokenId).toBe(target.tokenId);

      // ?limit=2 walks every event exactly once, in the same order.
      const walked: string[] = [];
      const pageTexts: string[] = [];
      let cursor: string | null = null;
      for (let i = 0; i < 50; i++) {
        const url: string = `/apps/${target.appId}/events?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
        const page = await request(ctx.app).get(url).set(ctx.admin);
        expect(page.status, page.text).toBe(200);
        expect(page.body.items.length).toBeLessThanOrEqual(2);
        pageTexts.push(page.text);
        walked.push(...(page.body.items as AuditEvent[]).map((e) => e.id));
        cursor = page.body.nextCursor as string | null;
        if (cursor === null) break;
      }
      expect(cursor).toBeNull();
      expect(walked).toEqual(items.map((e) => e.id));
      expect(new Set(walked).size).toBe(walked.length);

      // No secret, access token or hash anywhere.
      const forbidden = [...secrets, ...secrets.filter((s) => s.startsWith('eat_')).map(sha256)];
      const everything = [text, ...pageTexts, JSON.stringify(ctx.events)];
      for (const blob of everything) {
        for (const s of forbidden) expect(blob.includes(s), `an event carries ${s.slice(0, 12)}…`).toBe(false);
        expect(blob).not.toMatch(/eat_[0-9A-Za-z]{20,}/);
        expect(blob).not.toMatch(/eyJ[\w-]+\.[\w-]+\.[\w-]+/);
        expect(blob).not.toMatch(/\b[0-9a-f]{64}\b/);
      }
    });
  });

  // ---- 11. lastUsedDate ------------------------------------------------------------------------------

  describe('lastUsedDate', () => {
    it('shows a use at /oauth/token at once, without waiting for the batch flush', async () => {
      const ctx = await start(store, { advanced: { lastUsedFlushInterval: 3_600_000 } });
      const target = await createTarget(ctx);
      const sibling = await issueToken(ctx, target.appId, { name: 'unused' });
      const before = (await listTokens(ctx, target.appId)).find((t) => t.id === target.tokenId)!;
      expect(before.lastUsedDate).toBeNull();
      const t0 = Date.now();
      await accessToken(ctx.app, target.appId, target.value);
      const tokens = await listTokens(ctx, target.appId);
      const used = tokens.find((t) => t.id === target.tokenId)!;
      expect(typeof used.lastUsedDate).toBe('string');
      const at = Date.parse(used.lastUsedDate as string);
      expect(at).toBeGreaterThanOrEqual(t0 - 1000);
      expect(Date.now() - at).toBeLessThan(60_000);
      expect(tokens.find((t) => t.id === sibling.tokenId)!.lastUsedDate).toBeNull();
    });
  });
});
