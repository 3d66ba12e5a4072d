/**
 * Issue 24 items 1 and 2: usage counts per app and per API token, per hour, counted in memory on
 * the request path and flushed in batches; `GET /apps/:id/usage` and the app list's summary. Real
 * HTTP through the real routers, on memory, a SQLite file and the real PostgreSQL server.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express, { type Express } from 'express';
import passport from 'passport';
import { SignJWT, generateKeyPair } from 'jose';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import request from 'supertest';
import { afterEach, describe, expect, inject, it, vi } from 'vitest';
import { createMemoryStore } from '../adapters/memory/index.js';
import { SqlStore, createPostgresStore, createSqliteStore, type Database } from '../adapters/sql/index.js';
import { AppTokensError } from '../src/core/errors.js';
import { MAX_PENDING, UsageCounter, type UsagePoint, type UsageSeries } from '../src/core/usage.js';
import { createAppTokens, type AppTokens, type AppTokensOptions, type Store } from '../src/index.js';
import { USAGE_HOUR_MS } from '../src/store.js';
import { CATALOGUE, Clock, ISSUER, accessToken, createClient, expectBearerFailure, expectProblem, hostApp, setup, tokenRequest } from './helpers.js';
import { freshDatabase } from './postgres-server.js';

type Kind = 'memory' | 'sqlite' | 'postgresql';
type Options = Partial<Omit<AppTokensOptions, 'store'>>;

/** An instance and its host app (the test routes plus a rate-limited one, as the example server's). */
interface Harness {
  auth: AppTokens;
  app: Express;
  store: Store;
  /** Close (flushing) and start again on the same database. */
  restart(options?: Options): Promise<Harness>;
  close(): Promise<void>;
}

const open: Harness[] = [];
afterEach(async () => {
  for (const h of open.splice(0)) await h.close();
});

function withLimited(app: Express, auth: AppTokens): Express {
  app.get('/limited', auth.authenticate(), auth.rateLimit({ points: 1, duration: 60 }), (_req, res) => {
    res.json({ ok: true });
  });
  return app;
}

async function harness(kind: Kind, options: Options = {}, where?: string): Promise<Harness> {
  if (kind !== 'postgresql') {
    const dir = where ?? mkdtempSync(join(tmpdir(), 'eat-usage-'));
    const f = await setup({ store: kind, ...options }, dir);
    withLimited(f.app, f.auth);
    let closed = false;
    const h: Harness = {
      auth: f.auth,
      app: f.app,
      store: f.store,
      async restart(more = {}) {
        closed = true;
        await f.auth.close();
        await f.store.close();
        expect(f.violations, 'responses the OpenAPI document does not describe').toEqual([]);
        return harness(kind, { ...options, ...more }, dir);
      },
      async close() {
        if (closed) return;
        closed = true;
        await f.cleanup();
      },
    };
    open.push(h);
    return h;
  }
  const url = where ?? (await freshDatabase(inject('postgresUrl')));
  const store = createPostgresStore({ connectionString: url });
  const auth = createAppTokens({
    store,
    issuer: ISSUER,
    scopes: CATALOGUE,
    ...options,
    advanced: { revocationSyncInterval: 0, lastUsedFlushInterval: 0, ...options.advanced },
  });
  await auth.ready();
  let closed = false;
  const h: Harness = {
    auth,
    store,
    app: withLimited(hostApp(auth), auth),
    async restart(more = {}) {
      await h.close();
      return harness(kind, { ...options, ...more }, url);
    },
    async close() {
      if (closed) return;
      closed = true;
      await auth.close().catch(() => undefined);
      await store.close().catch(() => undefined);
    },
  };
  open.push(h);
  return h;
}

/** Counts of a whole series added up, per field. */
function total(series: UsagePoint[]) {
  const out = { grants: {} as Record<string, number>, accepted: 0, refused: {} as Record<string, number>, rateLimited: 0, clientAuthFailures: 0, refreshes: 0 };
  for (const p of series) {
    for (const [g, n] of Object.entries(p.grants)) out.grants[g] = (out.grants[g] ?? 0) + n;
    for (const [r, n] of Object.entries(p.refused)) out.refused[r] = (out.refused[r] ?? 0) + n;
    out.accepted += p.accepted;
    out.rateLimited += p.rateLimited;
    out.clientAuthFailures += p.clientAuthFailures;
    out.refreshes += p.refreshes;
  }
  return out;
}

/** An apps:read admin of `tenant`: its access token. */
async function admin(h: Harness, tenant = 'acme', scopes = ['apps:read', 'apps:write', 'notarization:read']): Promise<string> {
  const a = await createClient(h.auth, { tenant, scopes });
  return accessToken(h.app, a.clientId, a.secret);
}

/** The JWT with one character of its signature changed (not the last, whose low bits base64url may ignore). */
function badSignature(jwt: string): string {
  const i = jwt.length - 10;
  return jwt.slice(0, i) + (jwt[i] === 'A' ? 'B' : 'A') + jwt.slice(i + 1);
}

describe.each<Kind>(['memory', 'sqlite', 'postgresql'])('usage counts on %s', (kind) => {
  it('counts every moment of the request path per app and per token, and GET /apps/:id/usage answers it (hourly and by token)', async () => {
    const clock = new Clock();
    const h = await harness(kind, { advanced: { now: clock.now } });
    const target = await createClient(h.auth, { scopes: ['notarization:read'] });
    const second = await h.auth.apps.createToken('acme', target.clientId, { name: 'second' });

    // Grants: one per token.
    const jwt1 = await accessToken(h.app, target.clientId, target.secret);
    const jwt2 = await accessToken(h.app, target.clientId, second.value);
    // Accepted: verified, then from the cache.
    for (let i = 0; i < 2; i++) expect((await request(h.app).get('/stamps').set('Authorization', `Bearer ${jwt1}`)).status).toBe(200);
    // Accepted by authenticate(), refused by requireAnyScope().
    expectBearerFailure(await request(h.app).get('/feeds').set('Authorization', `Bearer ${jwt1}`), 403, 'insufficient_scope', ['storage:read', 'streams:read']);
    // The rate-limited route: one passes, the next is 429.
    expect((await request(h.app).get('/limited').set('Authorization', `Bearer ${jwt2}`)).status).toBe(200);
    expect((await request(h.app).get('/limited').set('Authorization', `Bearer ${jwt2}`)).status).toBe(429);
    // A client-authentication failure naming the app.
    expect((await tokenRequest(h.app, target.clientId, `${target.secret.slice(0, -1)}${target.secret.endsWith('x') ? 'y' : 'x'}`)).status).toBe(401);
    // Revoked: token 2 deleted, its access token refused.
    await h.auth.apps.deleteToken('acme', target.clientId, second.token.id);
    expectBearerFailure(await request(h.app).get('/stamps').set('Authorization', `Bearer ${jwt2}`), 401, 'invalid_token');
    // Unattributable: a bad signature, and a token signed by a key of nobody naming the app.
    expectBearerFailure(await request(h.app).get('/stamps').set('Authorization', `Bearer ${badSignature(jwt1)}`), 401, 'invalid_token');
    const { privateKey } = await generateKeyPair('RS256');
    const forged = await new SignJWT({ client_id: target.clientId, tenant_id: 'acme', api_token_id: target.tokenId, scope: 'notarization:read', jti: 'A'.repeat(22) })
      .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: 'not-ours' })
      .setIssuer(ISSUER)
      .setSubject(target.clientId)
      .setAudience(ISSUER)
      .setIssuedAt()
      .setExpirationTime('10m')
      .sign(privateKey);
    expectBearerFailure(await request(h.app).get('/stamps').set('Authorization', `Bearer ${forged}`), 401, 'invalid_token');
    // A refresh of token 1; the new value is an API token bearer once, and mints a JWT that expires.
    const refreshed = await request(h.app)
      .post('/tokens/refresh')
      .send({ client_id: target.clientId, grant_type: 'token-exchange', refresh_token: target.secret, scope: 'openid' });
    expect(refreshed.status, JSON.stringify(refreshed.body)).toBe(200);
    const newTokenId = refreshed.body.token.id as string;
    expect((await request(h.app).get('/stamps').set('Authorization', `Bearer ${refreshed.body.value}`)).status).toBe(200);
    const jwt3 = await accessToken(h.app, target.clientId, refreshed.body.value as string);
    clock.advance(3600 + 10);
    expectBearerFailure(await request(h.app).get('/stamps').set('Authorization', `Bearer ${jwt3}`), 401, 'invalid_token');

    const bearer = await admin(h);
    const res = await request(h.app).get(`/apps/${target.clientId}/usage`).query({ byToken: 'true' }).set('Authorization', `Bearer ${bearer}`);
    expect(res.status, res.text).toBe(200);
    const body = res.body as UsageSeries;
    expect(body.interval).toBe('hour');
    expect(body.series).toHaveLength(24);
    expect(Date.parse(body.to) - Date.parse(body.from)).toBe(24 * USAGE_HOUR_MS);
    const all = total(body.series);
    expect(all).toEqual({
      grants: { client_credentials: 3, token_exchange: 0 },
      accepted: 2 + 1 + 2 + 1, // /stamps twice, /feeds, /limited twice (the second then 429), the API token bearer
      refused: { expired: 1, revoked: 1, invalid_signature: 0, unknown: 0, malformed: 0, insufficient_scope: 1, dpop: 0, other: 0 },
      rateLimited: 1,
      clientAuthFailures: 1,
      refreshes: 1,
    });
    // Two hours hold counts: before and after the clock moved.
    expect(body.series.filter((p) => total([p]).accepted + total([p]).refused.expired! > 0)).toHaveLength(2);

    const byToken = new Map(body.tokens!.map((t) => [t.tokenId, total(t.series)]));
    expect([...byToken.keys()].sort()).toEqual([target.tokenId, second.token.id, newTokenId].sort());
    expect(byToken.get(target.tokenId)).toMatchObject({ grants: { client_credentials: 1 }, accepted: 3, refused: { insufficient_scope: 1 } });
    expect(byToken.get(second.token.id)).toMatchObject({ grants: { client_credentials: 1 }, accepted: 2, rateLimited: 1, refused: { revoked: 1 } });
    expect(byToken.get(newTokenId)).toMatchObject({ grants: { client_credentials: 1 }, accepted: 1, refreshes: 1, refused: { expired: 1 } });

    // The app list: requests and refusals of the last 24 h and 30 d, from one summary per page.
    const list = await request(h.app).get('/apps').set('Authorization', `Bearer ${bearer}`);
    expect(list.status, list.text).toBe(200);
    const item = (list.body.items as Array<{ id: string; usage: unknown }>).find((i) => i.id === target.clientId);
    // requests: 3 grants + 6 accepted + 2 refused before acceptance + 1 client-auth failure + 1 refresh;
    // refusals: 2 refused + 1 insufficient scope + 1 429 + 1 client-auth failure.
    expect(item?.usage).toEqual({ requests24h: 13, refusals24h: 5, requests30d: 13, refusals30d: 5 });
    // And through code.
    expect(total((await h.auth.apps.usage('acme', target.clientId)).series)).toEqual(all);
    expect((await h.auth.apps.list('acme')).items.find((i) => i.id === target.clientId)?.usage).toEqual(item?.usage);
  });

  it('bad queries are 400 naming from, to, interval or byToken; an hourly range spans at most 168 hours, a daily one the retention', async () => {
    const h = await harness(kind);
    const target = await createClient(h.auth);
    const bearer = await admin(h);
    const get = (query: Record<string, string | string[]>) =>
      request(h.app).get(`/apps/${target.clientId}/usage`).query(query).set('Authorization', `Bearer ${bearer}`);
    expectProblem(await get({ interval: 'week' }), 400, 'validation_failed', 'interval');
    expectProblem(await get({ from: 'yesterday' }), 400, 'validation_failed', 'from');
    expectProblem(await get({ to: '2026-02-31T00:00:00Z' }), 400, 'validation_failed', 'to');
    expectProblem(await get({ from: ['2026-12-01T00:00:00Z', '2026-12-02T00:00:00Z'] }), 400, 'validation_failed', 'from');
    expectProblem(await get({ from: '2026-12-02T00:00:00Z', to: '2026-12-01T00:00:00Z' }), 400, 'validation_failed', 'from');
    expectProblem(await get({ from: '2026-12-01T00:00:00Z', to: '2026-12-08T01:00:00Z' }), 400, 'validation_failed', 'from');
    expectProblem(await get({ interval: 'day', from: '2026-01-01T00:00:00Z', to: '2026-04-02T00:00:00Z' }), 400, 'validation_failed', 'from');
    expectProblem(await get({ byToken: 'yes' }), 400, 'validation_failed', 'byToken');
    expectProblem(await get({ limit: '5' }), 400, 'validation_failed', 'limit');
    const week = await get({ from: '2026-12-01T00:00:00Z', to: '2026-12-08T00:00:00Z' });
    expect(week.status, week.text).toBe(200);
    expect(week.body.series).toHaveLength(168);
    expect(week.body.series[0]).toEqual({
      start: '2026-12-01T00:00:00.000Z',
      grants: { client_credentials: 0, token_exchange: 0 },
      accepted: 0,
      refused: { expired: 0, revoked: 0, invalid_signature: 0, unknown: 0, malformed: 0, insufficient_scope: 0, dpop: 0, other: 0 },
      rateLimited: 0,
      clientAuthFailures: 0,
      refreshes: 0,
    });
    const days = await get({ interval: 'day', from: '2026-09-08T10:00:00Z', to: '2026-12-07T00:00:00Z' });
    expect(days.status, days.text).toBe(200);
    expect(days.body).toMatchObject({ interval: 'day', from: '2026-09-08T00:00:00.000Z', to: '2026-12-07T00:00:00.000Z' });
    expect(days.body.series).toHaveLength(90);
    await expect(h.auth.apps.usage('acme', target.clientId, { interval: 'minute' })).rejects.toMatchObject({ code: 'validation_failed', field: 'interval' });
  });

  it("another tenant's app is 404 and its counts are not read; apps:read is required", async () => {
    const h = await harness(kind);
    const target = await createClient(h.auth);
    await accessToken(h.app, target.clientId, target.secret);
    const stranger = await admin(h, 'globex');
    expectProblem(
      await request(h.app).get(`/apps/${target.clientId}/usage`).set('Authorization', `Bearer ${stranger}`),
      404,
      'not_found',
    );
    await expect(h.auth.apps.usage('globex', target.clientId)).rejects.toMatchObject({ code: 'not_found' });
    const writer = await admin(h, 'acme', ['apps:write', 'notarization:read']);
    expectProblem(await request(h.app).get(`/apps/${target.clientId}/usage`).set('Authorization', `Bearer ${writer}`), 403, 'insufficient_scope');
    const user = await accessToken(h.app, target.clientId, target.secret);
    expectProblem(await request(h.app).get(`/apps/${target.clientId}/usage`).set('Authorization', `Bearer ${user}`), 403, 'insufficient_scope');
    expect((await request(h.app).get(`/apps/${target.clientId}/usage`)).status).toBe(401);
    // The stranger's own list shows none of acme's usage.
    expect((await h.auth.apps.list('globex')).items.every((i) => i.usage.requests30d <= 1)).toBe(true);
  });
});

describe('usage counts: passport hosts and API-token bearers', () => {
  it('under passport.authenticate, accepted and refused bearers count like under authenticate(); an unknown API token counts for nobody', async () => {
    const h = await harness('sqlite');
    const target = await createClient(h.auth, { scopes: ['notarization:read'], expiresIn: 3600 });
    passport.use(h.auth.strategy as passport.Strategy);
    const app = express();
    app.use(passport.initialize());
    app.get('/p', passport.authenticate('app-tokens', { session: false }), (_req, res) => void res.json({ ok: true }));
    const jwt = await accessToken(h.app, target.clientId, target.secret);
    expect((await request(app).get('/p').set('Authorization', `Bearer ${jwt}`)).status).toBe(200); // verified
    expect((await request(app).get('/p').set('Authorization', `Bearer ${jwt}`)).status).toBe(200); // cached
    expect((await request(app).get('/p').set('Authorization', `Bearer ${badSignature(jwt)}`)).status).toBe(401);
    // An API token as the bearer: accepted, then (another, well-formed value of nobody) refused as unknown.
    expect((await request(h.app).get('/stamps').set('Authorization', `Bearer ${target.secret}`)).status).toBe(200);
    const other = await createClient(h.auth, { tenant: 'globex' });
    await h.auth.apps.deleteToken('globex', other.clientId, other.tokenId);
    const gone = await createClient(h.auth, { tenant: 'globex' });
    await h.auth.apps.delete('globex', gone.clientId);
    expectBearerFailure(await request(h.app).get('/stamps').set('Authorization', `Bearer ${other.secret}`), 401, 'invalid_token');
    expectBearerFailure(await request(h.app).get('/stamps').set('Authorization', `Bearer ${gone.secret}`), 401, 'invalid_token');
    const usage = total((await h.auth.apps.usage('acme', target.clientId)).series);
    expect(usage.accepted).toBe(3);
    expect(usage.refused).toMatchObject({ invalid_signature: 0, unknown: 0, revoked: 0 });
    // A deleted token is still found by its hash: its refusal is its app's, in its tenant. A deleted
    // app's tokens are gone: the refusal is of an unknown token and counts for nobody.
    const hour = Date.now() - (Date.now() % USAGE_HOUR_MS);
    const range = { from: new Date(hour - USAGE_HOUR_MS), to: new Date(hour + 2 * USAGE_HOUR_MS), interval: 'hour' as const };
    expect((await h.store.readUsage('globex', other.clientId, range)).filter((r) => r.metric.startsWith('refused:'))).toEqual([
      { start: hour, tokenId: other.tokenId, metric: 'refused:revoked', count: 1 },
    ]);
    expect(await h.store.readUsage('globex', gone.clientId, range)).toEqual([]);
  });
});

describe.each<Kind>(['sqlite', 'postgresql'])('usage counts persist on %s', (kind) => {
  it('a restart keeps flushed counts; before the flush the store holds none of them (what a crash loses)', async () => {
    let h = await harness(kind, { usage: { flushInterval: 0 } });
    const target = await createClient(h.auth);
    for (let i = 0; i < 3; i++) await accessToken(h.app, target.clientId, target.secret);
    const hour = Date.now() - (Date.now() % USAGE_HOUR_MS);
    const range = { from: new Date(hour - USAGE_HOUR_MS), to: new Date(hour + 2 * USAGE_HOUR_MS), interval: 'hour' as const };
    expect(await h.store.readUsage('acme', target.clientId, range)).toEqual([]);
    h = await h.restart();
    const rows = await h.store.readUsage('acme', target.clientId, range);
    expect(rows).toEqual([{ start: hour, tokenId: target.tokenId, metric: 'grant:client_credentials', count: 3 }]);
    expect(total((await h.auth.apps.usage('acme', target.clientId)).series).grants.client_credentials).toBe(3);
  });

  it('counting off: nothing is written, and the API answers zeros', async () => {
    let h = await harness(kind, { usage: { enabled: false } });
    const target = await createClient(h.auth);
    const jwt = await accessToken(h.app, target.clientId, target.secret);
    expect((await request(h.app).get('/stamps').set('Authorization', `Bearer ${jwt}`)).status).toBe(200);
    expect((await tokenRequest(h.app, target.clientId, `${target.secret}x`)).status).toBe(401);
    expect(total((await h.auth.apps.usage('acme', target.clientId)).series).accepted).toBe(0);
    h = await h.restart();
    const hour = Date.now() - (Date.now() % USAGE_HOUR_MS);
    expect(await h.store.readUsage('acme', target.clientId, { from: new Date(hour - USAGE_HOUR_MS), to: new Date(hour + 2 * USAGE_HOUR_MS), interval: 'hour' })).toEqual([]);
  });

  it('retention prunes counts older than usage.retention at start and hourly, and keeps the rest', async () => {
    const clock = new Clock();
    let h = await harness(kind, { usage: { retention: 86_400 }, advanced: { now: clock.now } });
    const target = await createClient(h.auth, { expiresIn: 10 * 86_400 });
    await accessToken(h.app, target.clientId, target.secret);
    const oldHour = clock.t - (clock.t % USAGE_HOUR_MS);
    clock.advance(2 * 86_400);
    h = await h.restart();
    await accessToken(h.app, target.clientId, target.secret);
    const newHour = clock.t - (clock.t % USAGE_HOUR_MS);
    await vi.waitFor(async () => {
      const rows = await h.store.readUsage('acme', target.clientId, { from: new Date(oldHour), to: new Date(oldHour + USAGE_HOUR_MS), interval: 'hour' });
      expect(rows).toEqual([]);
    });
    await h.auth.apps.usage('acme', target.clientId); // flushes this instance's counts
    const kept = await h.store.readUsage('acme', target.clientId, { from: new Date(newHour), to: new Date(newHour + USAGE_HOUR_MS), interval: 'hour' });
    expect(kept.map((r) => r.count)).toEqual([1]);
  });
});

describe('usage counts on PostgreSQL: many instances, one database', () => {
  it('two instances on one database add up (an upsert that adds, never one that overwrites)', async () => {
    const url = await freshDatabase(inject('postgresUrl'));
    const a = await harness('postgresql', {}, url);
    const b = await harness('postgresql', {}, url);
    const target = await createClient(a.auth);
    for (let i = 0; i < 3; i++) await accessToken(a.app, target.clientId, target.secret);
    for (let i = 0; i < 4; i++) await accessToken(b.app, target.clientId, target.secret);
    // Both flush the same hour's key: the second adds to the first.
    await b.auth.apps.usage('acme', target.clientId);
    const usage = await a.auth.apps.usage('acme', target.clientId);
    expect(total(usage.series).grants.client_credentials).toBe(7);
  });

  it("a flush of 10,000 apps' counts is one INSERT … ON CONFLICT per chunk of 2000 rows, not one per app", async () => {
    const url = await freshDatabase(inject('postgresUrl'));
    const queries: string[] = [];
    const pool = new pg.Pool({ connectionString: url, max: 2 });
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }), log: (e) => void queries.push(e.query.sql) });
    const store = new SqlStore({ db, dialect: 'postgres' });
    try {
      await store.init();
      const counter = new UsageCounter(store, { enabled: true, flushInterval: 0, retention: 90 * 86_400, nowMs: Date.now });
      for (let i = 0; i < 10_000; i++) {
        counter.signals.grantIssued({ tenantId: 'acme', appId: `app_${i}`, apiTokenId: `tok_${i}`, grantType: 'client_credentials', authMethod: 'client_secret_basic' });
        counter.signals.bearerAccepted({ tenantId: 'acme', appId: `app_${i}`, apiTokenId: `tok_${i}`, kind: 'access_token', cached: true });
      }
      queries.length = 0;
      await counter.flush();
      const inserts = queries.filter((q) => /^insert into "usage_counts"/i.test(q));
      // 20,000 rows (two metrics per app) in chunks of 2000, in one transaction.
      expect(inserts).toHaveLength(10);
      expect(inserts.every((q) => /on conflict .* do update set "count" = "usage_counts"\."count" \+ "excluded"\."count"/i.test(q))).toBe(true);
      expect(queries.filter((q) => !/^insert into "usage_counts"/i.test(q)).map((q) => q.toLowerCase())).toEqual(['begin', 'commit']);
      const summary = await store.summarizeUsage('acme', ['app_0', 'app_9999'], counter.summaryWindows());
      expect(summary.get('app_9999')).toEqual({ last24h: { 'grant:client_credentials': 1, accepted: 1 }, last30d: { 'grant:client_credentials': 1, accepted: 1 } });
    } finally {
      await store.close();
    }
  });
});

describe('the usage counter', () => {
  it('a store that does not answer: counts stay in memory up to MAX_PENDING keys, the rest are counted as dropped, and a later flush writes what was kept', async () => {
    const down = createMemoryStore();
    await down.close(); // a real store that refuses every call (`unavailable`)
    const up = createSqliteStore({ filename: ':memory:' });
    await up.init();
    let current: Store = down;
    // The counter's only store calls, routed to the store of the moment.
    const store = { addUsage: (c: never) => current.addUsage(c), pruneUsage: (b: Date, l: number) => current.pruneUsage(b, l) } as unknown as Store;
    const warnings: string[] = [];
    const counter = new UsageCounter(store, {
      enabled: true,
      flushInterval: 0,
      retention: 86_400,
      nowMs: Date.now,
      log: { warn: (_o: unknown, m: string) => void warnings.push(m) },
    });
    try {
      for (let i = 0; i < MAX_PENDING + 5; i++) counter.signals.rateLimited({ tenantId: 'acme', appId: `app_${i}`, apiTokenId: null });
      counter.signals.rateLimited({ tenantId: 'acme', appId: 'app_0', apiTokenId: null });
      expect(counter.pendingKeys).toBe(MAX_PENDING);
      expect(counter.dropped).toBe(5);
      await expect(counter.flush()).rejects.toBeInstanceOf(AppTokensError);
      await expect(counter.flush()).rejects.toBeInstanceOf(AppTokensError);
      expect(warnings).toHaveLength(1); // once per run of failures
      expect(counter.pendingKeys).toBe(MAX_PENDING);
      current = up;
      await counter.flush();
      expect(counter.pendingKeys).toBe(0);
      const summary = await up.summarizeUsage('acme', ['app_0', `app_${MAX_PENDING - 1}`, `app_${MAX_PENDING}`], counter.summaryWindows());
      expect(summary.get('app_0')?.last24h).toEqual({ rate_limited: 2 });
      expect(summary.get(`app_${MAX_PENDING - 1}`)?.last24h).toEqual({ rate_limited: 1 });
      expect(summary.has(`app_${MAX_PENDING}`)).toBe(false);
    } finally {
      await up.close();
    }
  });

  it('counting is off: the observer is the no-op one and nothing is kept', () => {
    const counter = new UsageCounter(createMemoryStore(), { enabled: false, flushInterval: 0, retention: 86_400, nowMs: Date.now });
    counter.signals.grantIssued({ tenantId: 'acme', appId: 'app_1', apiTokenId: null, grantType: 'client_credentials', authMethod: 'client_secret_basic' });
    expect(counter.pendingKeys).toBe(0);
  });

  it('"usage" options are validated at construction, naming the option', () => {
    const make = (usage: unknown) => () => createAppTokens({ store: createMemoryStore(), issuer: ISSUER, scopes: CATALOGUE, usage } as AppTokensOptions);
    expect(make({ retention: 60 })).toThrow(/"usage\.retention"/);
    expect(make({ flushInterval: -1 })).toThrow(/"usage\.flushInterval"/);
    expect(make({ enabled: 'yes' })).toThrow(/"usage\.enabled"/);
    expect(make({ sample: 1 })).toThrow(/unknown option "usage\.sample"/);
  });
});
