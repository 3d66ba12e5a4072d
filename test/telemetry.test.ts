/**
 * OpenTelemetry through `@opentelemetry/api` (issue 24 item 3): the SDK registered in-process as a
 * host would, with in-memory exporters and an AsyncLocalStorage context manager; a parent span per
 * request as the host's HTTP instrumentation makes it; real requests through supertest on a real
 * SQLite file. Checks span names, attributes, parent-child links, metrics, and that no secret
 * appears in any attribute of any span or metric.
 */
import { readFileSync } from 'node:fs';
import { context, metrics, SpanKind, trace, type Attributes } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { MeterProvider, MetricReader, type MetricData } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { createPostgresStore } from '../adapters/postgres/index.js';
import { createMemoryStore } from '../adapters/memory/index.js';
import { hashSecret } from '../src/core/secrets.js';
import { createAppTokens } from '../src/index.js';
import { INSTRUMENTATION_VERSION, METRIC, TelemetryObserver, traceStore } from '../src/core/telemetry.js';
import { freshDatabase } from './postgres-server.js';
import { accessToken, createClient, expectOAuthError, hostApp, setup, tokenRequest, type Fixture, type FixtureOptions } from './helpers.js';

class TestReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

const spans = new InMemorySpanExporter();
const reader = new TestReader();
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
const meterProvider = new MeterProvider({ readers: [reader] });
const contextManager = new AsyncLocalStorageContextManager();

beforeAll(() => {
  context.setGlobalContextManager(contextManager.enable());
  trace.setGlobalTracerProvider(tracerProvider);
  metrics.setGlobalMeterProvider(meterProvider);
});
afterAll(async () => {
  await meterProvider.shutdown();
  await tracerProvider.shutdown();
  contextManager.disable();
  trace.disable();
  metrics.disable();
  context.disable();
});

/** What the host's HTTP instrumentation does: a SERVER span per request, active while it is handled. */
const hostTracer = trace.getTracer('host-http');
function httpSpan(req: Request, res: Response, next: NextFunction): void {
  const span = hostTracer.startSpan(`${req.method} ${req.path}`, { kind: SpanKind.SERVER });
  const ctx = trace.setSpan(context.active(), span);
  context.bind(ctx, req);
  context.bind(ctx, res);
  res.on('finish', () => span.end());
  context.with(ctx, next);
}

let f: Fixture | undefined;
let app: Express;

async function start(options: FixtureOptions = {}): Promise<void> {
  const fixture = await setup(options);
  f = fixture;
  app = express();
  app.use(httpSpan);
  app.use(hostApp(fixture.auth));
  spans.reset();
}

afterEach(async () => {
  await f?.cleanup();
  f = undefined;
});

/** Every metric collected now (cumulative), by name. */
async function collect(): Promise<Map<string, MetricData>> {
  const { resourceMetrics } = await reader.collect();
  const out = new Map<string, MetricData>();
  for (const scope of resourceMetrics.scopeMetrics) for (const m of scope.metrics) out.set(m.descriptor.name, m);
  return out;
}

/** The sum of a counter's data points whose attributes include `match`. */
function sum(m: MetricData | undefined, match: Attributes = {}): number {
  if (m === undefined) return 0;
  let total = 0;
  for (const p of m.dataPoints) {
    if (Object.entries(match).every(([k, v]) => p.attributes[k] === v)) total += p.value as number;
  }
  return total;
}

const byName = (name: string) => spans.getFinishedSpans().filter((s) => s.name === name);
const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;
const idOf = (s: ReadableSpan) => s.spanContext().spanId;

/** Every string an observer could read: span names, span attributes, event attributes, metric attributes. */
async function everything(): Promise<string[]> {
  const out: string[] = [];
  for (const s of spans.getFinishedSpans()) {
    out.push(s.name, ...Object.values(s.attributes).map(String));
    for (const e of s.events) out.push(e.name, ...Object.values(e.attributes ?? {}).map(String));
    out.push(s.status.message ?? '');
  }
  for (const m of (await collect()).values()) for (const p of m.dataPoints) out.push(...Object.entries(p.attributes).flat().map(String));
  return out;
}

describe('telemetry: spans', () => {
  beforeEach(() => start());

  it('a grant is a span "oauth.token client_credentials", child of the host HTTP span, with the store calls as its children', async () => {
    const client = await createClient(f!.auth);
    const res = await tokenRequest(app, client.clientId, client.secret);
    expect(res.status).toBe(200);
    const [http] = byName('POST /oauth/token');
    const [grant] = byName('oauth.token client_credentials');
    expect(http).toBeDefined();
    expect(grant).toBeDefined();
    expect(parentOf(grant!)).toBe(idOf(http!));
    expect(grant!.spanContext().traceId).toBe(http!.spanContext().traceId);
    expect(grant!.attributes).toMatchObject({
      'oauth.grant_type': 'client_credentials',
      'oauth.client.auth_method': 'client_secret_basic',
      'oauth.client.id': client.clientId,
    });
    expect(grant!.attributes['error.type']).toBeUndefined();
    // The client was not cached yet: its app and token were read, inside the grant's span.
    const store = spans.getFinishedSpans().filter((s) => s.attributes['db.operation.name'] !== undefined && parentOf(s) === idOf(grant!));
    expect(store.map((s) => s.name).sort()).toEqual(expect.arrayContaining(['findApiTokenByHash', 'getAppByClientId']));
    for (const s of store) {
      expect(s.attributes['db.system.name']).toBe('sqlite');
      expect(s.kind).toBe(SpanKind.CLIENT);
    }
  });

  it('a refused grant carries error.type (the OAuth error code) and no description', async () => {
    const client = await createClient(f!.auth);
    const res = await tokenRequest(app, client.clientId, `${client.secret.slice(0, -1)}x`);
    expectOAuthError(res, 401, 'invalid_client');
    const [grant] = byName('oauth.token client_credentials');
    expect(grant!.attributes['error.type']).toBe('invalid_client');
    expect(grant!.attributes['oauth.client.auth_method']).toBeUndefined();
  });

  it('an unsupported grant_type never names a span (no client-chosen span names)', async () => {
    const client = await createClient(f!.auth);
    const res = await tokenRequest(app, client.clientId, client.secret, { grant_type: 'x-attacker-chosen' });
    expectOAuthError(res, 400, 'unsupported_grant_type');
    const grants = spans.getFinishedSpans().filter((s) => s.name.startsWith('oauth.token'));
    expect(grants.map((s) => s.name)).toEqual(['oauth.token']);
    expect(grants[0]!.attributes['error.type']).toBe('unsupported_grant_type');
    expect(JSON.stringify(grants[0]!.attributes)).not.toContain('x-attacker-chosen');
  });

  it('a token exchange is a span "oauth.token token_exchange"', async () => {
    const client = await createClient(f!.auth);
    const jwt = await accessToken(app, client.clientId, client.secret);
    const res = await tokenRequest(app, client.clientId, client.secret, {
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: jwt,
      subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      scope: 'notarization:read',
    });
    expect(res.status).toBe(200);
    const [exchange] = byName('oauth.token token_exchange');
    expect(exchange!.attributes['oauth.grant_type']).toBe('urn:ietf:params:oauth:grant-type:token-exchange');
  });

  it('a management operation is a span app_tokens.management.<operation>, child of the host HTTP span', async () => {
    const admin = await createClient(f!.auth, { scopes: ['apps:read', 'apps:write', 'notarization:read'] });
    const jwt = await accessToken(app, admin.clientId, admin.secret);
    spans.reset();
    const res = await request(app).post('/apps').set('Authorization', `Bearer ${jwt}`).send({ name: 'made', scopes: ['notarization:read'] });
    expect(res.status).toBe(201);
    const [http] = byName('POST /apps');
    const [op] = byName('app_tokens.management.createApp');
    expect(op).toBeDefined();
    expect(parentOf(op!)).toBe(idOf(http!));
    expect(op!.attributes['app_tokens.operation']).toBe('createApp');
    // No tenant on spans unless telemetry.tenantAttribute.
    expect(op!.attributes['app_tokens.tenant.id']).toBeUndefined();
  });

  it('no secret appears in any span or metric attribute: API token value, its hash, client secret, JWT, Authorization', async () => {
    const admin = await createClient(f!.auth, { scopes: ['apps:read', 'apps:write', 'notarization:read', 'notarization:write'] });
    const jwt = await accessToken(app, admin.clientId, admin.secret);
    const created = await request(app).post('/apps').set('Authorization', `Bearer ${jwt}`).send({ name: 'other', scopes: ['notarization:read'] });
    expect(created.status).toBe(201);
    const other = created.body.value as string;
    const otherJwt = await accessToken(app, created.body.app.id, other);
    await request(app).get('/stamps').set('Authorization', `Bearer ${otherJwt}`).expect(200);
    await request(app).get('/stamps').set('Authorization', `Bearer ${otherJwt}`).expect(200);
    await request(app).get('/stamps').set('Authorization', `Bearer ${other}`).expect(200);
    await request(app).get('/stamps').set('Authorization', `Bearer ${otherJwt.slice(0, -2)}xx`).expect(401);
    await tokenRequest(app, admin.clientId, `${admin.secret.slice(0, -1)}x`).expect(401);
    await request(app)
      .post('/oauth/token')
      .type('form')
      .send({ grant_type: 'client_credentials', client_id: admin.clientId, client_secret: admin.secret })
      .expect(200);
    const refreshed = await request(app).post('/tokens/refresh').send({ client_id: created.body.app.id, grant_type: 'token-exchange', refresh_token: other, scope: 'openid' });
    expect(refreshed.status).toBe(200);
    const secrets = [admin.secret, other, refreshed.body.value as string, jwt, otherJwt, hashSecret(admin.secret), hashSecret(other)];
    const basic = Buffer.from(`${admin.clientId}:${admin.secret}`).toString('base64');
    const seen = await everything();
    expect(seen.length).toBeGreaterThan(20);
    for (const value of seen) {
      for (const secret of secrets) {
        expect(value).not.toContain(secret);
        // Nor a long piece of one (a truncated or sliced secret, a JWT's signature).
        expect(value).not.toContain(secret.slice(-24));
      }
      expect(value).not.toContain(basic);
      expect(value).not.toMatch(/eyJ[\w-]{8,}\.eyJ/);
      expect(value).not.toMatch(/\beat_[A-Za-z0-9]{20,}/);
      expect(value).not.toMatch(/\b[0-9a-f]{64}\b/);
    }
  });
});

describe('telemetry: metrics', () => {
  beforeEach(() => start({ clientLockout: { attempts: 2, window: 300, duration: 900 } }));

  it('grants are counted by grant type, auth method and outcome; refusals by error code; no app id, no tenant', async () => {
    const client = await createClient(f!.auth);
    const before = (await collect()).get(METRIC.grants);
    await tokenRequest(app, client.clientId, client.secret).expect(200);
    await request(app)
      .post('/oauth/token')
      .type('form')
      .send({ grant_type: 'client_credentials', client_id: client.clientId, client_secret: client.secret })
      .expect(200);
    await tokenRequest(app, client.clientId, client.secret, { scope: 'storage:read' }).expect(400);
    const after = (await collect()).get(METRIC.grants);
    const delta = (match: Attributes) => sum(after, match) - sum(before, match);
    expect(delta({ 'app_tokens.outcome': 'issued', 'oauth.grant_type': 'client_credentials', 'oauth.client.auth_method': 'client_secret_basic' })).toBe(1);
    expect(delta({ 'app_tokens.outcome': 'issued', 'oauth.grant_type': 'client_credentials', 'oauth.client.auth_method': 'client_secret_post' })).toBe(1);
    expect(delta({ 'app_tokens.outcome': 'refused', 'error.type': 'invalid_scope' })).toBe(1);
    for (const p of after!.dataPoints) {
      expect(Object.values(p.attributes)).not.toContain(client.clientId);
      expect(Object.values(p.attributes)).not.toContain(client.tokenId);
      expect(p.attributes['app_tokens.tenant.id']).toBeUndefined();
    }
  });

  it('RFC 6749 §2.3.1: failed client authentications are counted by method and door, never by client id', async () => {
    const client = await createClient(f!.auth);
    const before = (await collect()).get(METRIC.clientAuthFailures);
    await tokenRequest(app, client.clientId, `${client.secret.slice(0, -1)}x`).expect(401);
    await request(app)
      .post('/oauth/token')
      .type('form')
      .send({ grant_type: 'client_credentials', client_id: client.clientId, client_secret: 'eat_wrong' })
      .expect(401);
    const after = (await collect()).get(METRIC.clientAuthFailures);
    expect(sum(after, { 'oauth.client.auth_method': 'client_secret_basic' }) - sum(before, { 'oauth.client.auth_method': 'client_secret_basic' })).toBe(1);
    expect(sum(after, { 'oauth.client.auth_method': 'client_secret_post' }) - sum(before, { 'oauth.client.auth_method': 'client_secret_post' })).toBe(1);
    for (const p of after!.dataPoints) expect(Object.values(p.attributes)).not.toContain(client.clientId);
  });

  it('client-chosen values never become series: 40 distinct unsupported grant types and client ids add one series', async () => {
    const seriesBefore = (await collect()).get(METRIC.grants)?.dataPoints.length ?? 0;
    for (let i = 0; i < 40; i++) {
      await request(app)
        .post('/oauth/token')
        .type('form')
        .send({ grant_type: `x-grant-${i}`, client_id: `app_${i}`, client_secret: `eat_${i}` })
        .expect(400);
    }
    const grants = (await collect()).get(METRIC.grants)!;
    expect(grants.dataPoints.length - seriesBefore).toBeLessThanOrEqual(1);
    expect(sum(grants, { 'error.type': 'unsupported_grant_type' })).toBeGreaterThanOrEqual(40);
    expect(JSON.stringify(grants.dataPoints.map((p) => p.attributes))).not.toMatch(/x-grant-|app_\d/);
  });

  it('bearer verifications are counted accepted (by credential kind) and refused (by reason)', async () => {
    const client = await createClient(f!.auth, { scopes: ['notarization:read'] });
    const jwt = await accessToken(app, client.clientId, client.secret);
    const before = (await collect()).get(METRIC.bearerVerifications);
    await request(app).get('/stamps').set('Authorization', `Bearer ${jwt}`).expect(200);
    await request(app).get('/stamps').set('Authorization', `Bearer ${client.secret}`).expect(200);
    await request(app).get('/stamps').set('Authorization', `Bearer ${jwt.slice(0, -4)}AAAA`).expect(401);
    await request(app).post('/stamps').set('Authorization', `Bearer ${jwt}`).expect(403);
    const after = (await collect()).get(METRIC.bearerVerifications);
    const delta = (match: Attributes) => sum(after, match) - sum(before, match);
    // POST /stamps authenticates first (accepted), then requireScopes refuses it.
    expect(delta({ 'app_tokens.outcome': 'accepted', 'app_tokens.credential.kind': 'access_token' })).toBe(2);
    expect(delta({ 'app_tokens.outcome': 'accepted', 'app_tokens.credential.kind': 'api_token' })).toBe(1);
    expect(delta({ 'app_tokens.outcome': 'refused', 'error.type': 'invalid_signature' })).toBe(1);
    expect(delta({ 'app_tokens.outcome': 'refused', 'error.type': 'insufficient_scope' })).toBe(1);
  });

  it('the usage flush is measured (app_tokens.usage.flush.duration, seconds)', async () => {
    const client = await createClient(f!.auth);
    await tokenRequest(app, client.clientId, client.secret).expect(200);
    await f!.auth.close();
    const m = (await collect()).get(METRIC.usageFlushDuration);
    expect(m?.descriptor.unit).toBe('s');
    const count = (m?.dataPoints ?? []).reduce((n, p) => n + (p.value as { count: number }).count, 0);
    expect(count).toBeGreaterThanOrEqual(1);
  });

  it('the bearer cache: the first verification of a JWT misses, the next one hits', async () => {
    const client = await createClient(f!.auth, { scopes: ['notarization:read'] });
    const jwt = await accessToken(app, client.clientId, client.secret);
    const before = await collect();
    await request(app).get('/stamps').set('Authorization', `Bearer ${jwt}`).expect(200);
    await request(app).get('/stamps').set('Authorization', `Bearer ${jwt}`).expect(200);
    await request(app).get('/stamps').set('Authorization', `Bearer ${jwt}`).expect(200);
    const after = await collect();
    const lookups = (m: Map<string, MetricData>, result: string) => sum(m.get(METRIC.bearerCacheLookups), { 'app_tokens.cache.result': result });
    expect(lookups(after, 'miss') - lookups(before, 'miss')).toBe(1);
    expect(lookups(after, 'hit') - lookups(before, 'hit')).toBe(2);
  });

  it('RFC 6749 §2.3.1: a source throttled after failed authentications counts a lockout refusal', async () => {
    const client = await createClient(f!.auth);
    const wrong = `${client.secret.slice(0, -1)}x`;
    const before = sum((await collect()).get(METRIC.lockoutRefusals));
    await tokenRequest(app, client.clientId, wrong).expect(401);
    await tokenRequest(app, client.clientId, wrong).expect(401);
    await tokenRequest(app, client.clientId, wrong).expect(429);
    await tokenRequest(app, client.clientId, client.secret).expect(429);
    expect(sum((await collect()).get(METRIC.lockoutRefusals)) - before).toBe(2);
  });

  it('a revocation received through the change feed records its propagation delay, by kind', async () => {
    const client = await createClient(f!.auth);
    const before = (await collect()).get(METRIC.revocationDelay);
    const count = (m: MetricData | undefined) =>
      (m?.dataPoints ?? []).filter((p) => p.attributes['app_tokens.revocation.kind'] === 'api_token').reduce((n, p) => n + (p.value as { count: number }).count, 0);
    await f!.auth.apps.deleteToken(client.tenant, client.clientId, client.tokenId);
    const after = (await collect()).get(METRIC.revocationDelay);
    expect(after?.descriptor.unit).toBe('s');
    expect(count(after) - count(before)).toBe(1);
  });

  it('store calls on the token path are measured as db.client.operation.duration (seconds, no argument attributes)', async () => {
    const client = await createClient(f!.auth);
    await tokenRequest(app, client.clientId, client.secret).expect(200);
    const m = (await collect()).get(METRIC.dbDuration);
    expect(m?.descriptor.unit).toBe('s');
    const ops = new Set(m!.dataPoints.map((p) => p.attributes['db.operation.name']));
    expect(ops).toContain('findApiTokenByHash');
    for (const p of m!.dataPoints) expect(Object.keys(p.attributes).sort()).toEqual(['db.operation.name', 'db.system.name']);
  });
});

describe('telemetry: options', () => {
  it('telemetry.enabled false: no span of ours and no store wrapper', async () => {
    await start({ telemetry: { enabled: false } });
    const client = await createClient(f!.auth);
    await tokenRequest(app, client.clientId, client.secret).expect(200);
    const names = spans.getFinishedSpans().map((s) => s.name);
    expect(names).toEqual(['POST /oauth/token']);
  });

  it('telemetry.tenantAttribute puts the tenant on management spans', async () => {
    await start({ telemetry: { tenantAttribute: true } });
    const admin = await createClient(f!.auth, { tenant: 'tenant-a', scopes: ['apps:read', 'apps:write'] });
    const jwt = await accessToken(app, admin.clientId, admin.secret);
    await request(app).get('/apps').set('Authorization', `Bearer ${jwt}`).expect(200);
    const [op] = byName('app_tokens.management.listApps');
    expect(op!.attributes['app_tokens.tenant.id']).toBe('tenant-a');
  });

  it('a bad telemetry option is invalid_options naming it', async () => {
    await start();
    expect(() => setupSync({ telemetry: { enabled: 'yes' } })).toThrow(/telemetry\.enabled/);
    expect(() => setupSync({ telemetry: { tenantAttributes: true } })).toThrow(/telemetry/);
  });

  it('the instrumentation scope version is the package version', async () => {
    await start();
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(INSTRUMENTATION_VERSION).toBe(pkg.version);
  });
});

function setupSync(extra: Record<string, unknown>): unknown {
  return createAppTokens({ store: createMemoryStore(), issuer: 'https://auth.example.test', scopes: ['a:read'], ...extra } as never);
}

describe('telemetry: revocation propagation between instances (PostgreSQL LISTEN/NOTIFY)', () => {
  it('the receiving instance records receipt − createdAt of a tombstone another instance wrote', async () => {
    const url = await freshDatabase(inject('postgresUrl'));
    const writer = createPostgresStore({ connectionString: url });
    const receiverStore = createPostgresStore({ connectionString: url });
    // The receiving instance's own meter, so that only its records are counted.
    const own = new TestReader();
    const provider = new MeterProvider({ readers: [own] });
    const receiver = traceStore(receiverStore, new TelemetryObserver({ enabled: true, tenantAttribute: false }, provider.getMeter('receiver')));
    try {
      await writer.init();
      await receiver.init();
      const received = new Promise<void>((resolve) => {
        receiver.onChange((ts) => {
          if (ts.some((t) => t.id === 'tok_propagated')) resolve();
        });
      });
      const createdAt = new Date();
      await writer.addTombstones([{ kind: 'api_token', id: 'tok_propagated', tenantId: 'acme', createdAt, expiresAt: new Date(createdAt.getTime() + 3_600_000) }]);
      await received;
      const { resourceMetrics } = await own.collect();
      const delay = resourceMetrics.scopeMetrics.flatMap((sm) => sm.metrics).find((m) => m.descriptor.name === METRIC.revocationDelay);
      const point = delay?.dataPoints.find((p) => p.attributes['app_tokens.revocation.kind'] === 'api_token');
      const histogram = point?.value as { count: number; min?: number; max?: number } | undefined;
      expect(histogram?.count).toBe(1);
      // Seconds, from the same clock on one host: non-negative and well under the polling fallback.
      expect(histogram!.min!).toBeGreaterThanOrEqual(0);
      expect(histogram!.max!).toBeLessThan(5);
    } finally {
      await provider.shutdown();
      await writer.close();
      await receiverStore.close();
    }
  });
});
