/**
 * No secret reaches a log line or an audit event: a full scenario through HTTP with a capturing
 * pino-compatible `logger`, a capturing `onEvent`, and console / process warnings captured too.
 * Every API-token value, access token, token hash and Authorization header value the scenario
 * handles is then searched for in everything captured. The scenario also forces an unexpected
 * error inside the store, carrying a secret in its message and cause, and checks that it WAS
 * logged (redacted): a logger that logged nothing would otherwise pass.
 *
 * The second half unit-tests `redact()` (src/core/logger.ts) directly.
 */
import { createHash } from 'node:crypto';
import type { Express } from 'express';
import request from 'supertest';
import { afterEach, beforeEach, describe, expect, it, vi, type MockInstance } from 'vitest';
import { redact, safeLogger, type Logger } from '../src/core/logger.js';
import type { AuditEvent } from '../src/index.js';
import { createClient, mistype, setup, tokenRequest, type Fixture } from './helpers.js';

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** JSON of anything, never throwing (a capture must not fail the code under test). */
function dump(value: unknown): string {
  try {
    return JSON.stringify(value, (_k, v: unknown) =>
      v instanceof Error ? { name: v.name, message: v.message, stack: v.stack, cause: v.cause } : typeof v === 'bigint' ? String(v) : v,
    );
  } catch {
    return String(value);
  }
}

interface Capture {
  lines: Array<{ source: string; text: string }>;
  logger: Required<Logger>;
  events: AuditEvent[];
  restore(): void;
}

function capture(): Capture {
  const lines: Capture['lines'] = [];
  const events: AuditEvent[] = [];
  const level = (name: string) => (...args: unknown[]) => {
    lines.push({ source: `logger.${name}`, text: dump(args) });
  };
  const logger = { debug: level('debug'), info: level('info'), warn: level('warn'), error: level('error') };
  const spies: MockInstance[] = [];
  for (const method of ['log', 'info', 'warn', 'error', 'debug'] as const) {
    spies.push(
      vi.spyOn(console, method).mockImplementation((...args: unknown[]) => {
        lines.push({ source: `console.${method}`, text: dump(args) });
      }),
    );
  }
  spies.push(
    vi.spyOn(process, 'emitWarning').mockImplementation(((...args: unknown[]) => {
      lines.push({ source: 'process.emitWarning', text: dump(args) });
    }) as typeof process.emitWarning),
  );
  return {
    lines,
    logger,
    events,
    restore: () => {
      for (const s of spies) s.mockRestore();
    },
  };
}

/** Everything the scenario must never let out. */
class Secrets {
  readonly values = new Set<string>();
  readonly jwts = new Set<string>();
  readonly headers = new Set<string>();

  value(v: unknown): string {
    expect(typeof v, 'an API-token value').toBe('string');
    this.values.add(v as string);
    return v as string;
  }

  jwt(v: unknown): string {
    expect(typeof v, 'an access token').toBe('string');
    this.jwts.add(v as string);
    return v as string;
  }

  /** An Authorization header value, remembered, returned for `.set('Authorization', …)`. */
  header(v: string): string {
    this.headers.add(v);
    return v;
  }

  /** [label, needle] pairs to search for. */
  needles(): Array<[string, string]> {
    const out: Array<[string, string]> = [];
    for (const v of this.values) {
      out.push([`API-token value ${v.slice(0, 8)}…`, v]);
      out.push([`API-token value body ${v.slice(0, 8)}…`, v.slice(v.indexOf('_') + 1)]);
      out.push([`hash of ${v.slice(0, 8)}…`, sha256(v)]);
    }
    for (const t of this.jwts) {
      out.push([`access token ${t.slice(-8)}`, t]);
      out.push([`access-token signature …${t.slice(-8)}`, t.split('.')[2]!]);
      out.push([`hash of access token …${t.slice(-8)}`, sha256(t)]);
    }
    for (const h of this.headers) {
      out.push([`Authorization header ${h.slice(0, 12)}…`, h]);
      const credential = h.slice(h.indexOf(' ') + 1);
      if (credential.length >= 16) out.push([`Authorization credential ${credential.slice(0, 8)}…`, credential]);
    }
    return out;
  }
}

function leaks(cap: Capture, secrets: Secrets): string[] {
  const haystacks = [...cap.lines.map((l) => ({ source: l.source, text: l.text })), ...cap.events.map((e) => ({ source: `event ${e.type}`, text: dump(e) }))];
  const found: string[] = [];
  for (const [label, needle] of secrets.needles()) {
    for (const h of haystacks) {
      if (h.text.includes(needle)) found.push(`${label} in ${h.source}`);
    }
  }
  return found;
}

describe('a full scenario leaks nothing into logs, events, the console or process warnings', () => {
  let cap: Capture;
  let f: Fixture;

  beforeEach(async () => {
    cap = capture();
    f = await setup({
      logger: cap.logger,
      onEvent: (e) => cap.events.push(e),
      // Reuse detection without waiting for the race window; every grant reaches the store (no
      // client cache), so that the store failure injected below is met.
      advanced: { refreshRaceWindow: 0, eventFlushInterval: 0, clientCacheTtl: 0 },
    });
  });
  afterEach(async () => {
    await f.cleanup();
    cap.restore();
  });

  it('creates, grants, refreshes, detects reuse, regenerates, introspects, revokes, deletes and fails — and no secret is written', async () => {
    const s = new Secrets();
    const app: Express = f.app;
    const basic = (id: string, secret: string) =>
      s.header(`Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`);
    const bearer = (t: string) => s.header(`Bearer ${t}`);
    const grant = async (id: string, secret: string, scope?: string) => {
      const res = await request(app)
        .post('/oauth/token')
        .set('Authorization', basic(id, secret))
        .type('form')
        .send({ grant_type: 'client_credentials', ...(scope ? { scope } : {}) });
      expect(res.status, res.text).toBe(200);
      return s.jwt(res.body.access_token);
    };

    // -- an admin, created programmatically (as the CLI does), and its access token
    const admin = await createClient(f.auth, { scopes: ['apps:read', 'apps:write', 'notarization:read', 'notarization:write'] });
    s.value(admin.secret);
    const adminJwt = await grant(admin.clientId, admin.secret);

    // -- create apps over HTTP (JSON and a download format)
    const created = await request(app)
      .post('/apps')
      .set('Authorization', bearer(adminJwt))
      .send({ name: 'billing-sync', scopes: ['notarization:read', 'notarization:write'], customClaims: { plan: 'pro' }, token: { name: 'ci' } });
    expect(created.status, created.text).toBe(201);
    const appId = created.body.app.id as string;
    const firstValue = s.value(created.body.value);
    const firstTokenId = created.body.token.id as string;

    const envDownload = await request(app)
      .post('/apps?format=env')
      .set('Authorization', bearer(adminJwt))
      .send({ name: 'exporter', scopes: ['notarization:read'] });
    expect(envDownload.status).toBe(201);
    const envSecret = s.value(/CLIENT_SECRET='([^']+)'/.exec(envDownload.text)![1]);
    const exporterId = /CLIENT_ID='([^']+)'/.exec(envDownload.text)![1]!;

    // -- token grants: Basic and client_secret_post; protected calls with the JWT and the API token
    const jwt1 = await grant(appId, firstValue, 'notarization:read');
    const post = await request(app).post('/oauth/token').type('form').send({ grant_type: 'client_credentials', client_id: exporterId, client_secret: envSecret });
    expect(post.status).toBe(200);
    const jwt2 = s.jwt(post.body.access_token);
    expect((await request(app).get('/stamps').set('Authorization', bearer(jwt1))).status).toBe(200);
    expect((await request(app).get('/stamps').set('Authorization', bearer(firstValue))).status).toBe(200);
    expect((await request(app).get('/me').set('Authorization', bearer(jwt2))).status).toBe(200);

    // -- token exchange (RFC 8693)
    const exchanged = await request(app)
      .post('/oauth/token')
      .set('Authorization', basic(appId, firstValue))
      .type('form')
      .send({
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: jwt1,
        subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
        scope: 'notarization:read',
      });
    expect(exchanged.status, exchanged.text).toBe(200);
    s.jwt(exchanged.body.access_token);

    // -- another token, listing, details, events
    const second = await request(app).post(`/apps/${appId}/tokens`).set('Authorization', bearer(adminJwt)).send({ name: 'laptop', expiresIn: 3600 });
    expect(second.status).toBe(201);
    const secondValue = s.value(second.body.value);
    const secondTokenId = second.body.token.id as string;
    const postman = await request(app).post(`/apps/${appId}/tokens?format=postman`).set('Authorization', bearer(adminJwt)).send({ name: 'pm' });
    expect(postman.status).toBe(201);
    const postmanValue = s.value((JSON.parse(postman.text) as { values: Array<{ key: string; value: string }> }).values.find((v) => v.key === 'CLIENT_SECRET')!.value);
    expect((await request(app).get(`/apps/${appId}`).set('Authorization', bearer(adminJwt))).status).toBe(200);
    expect((await request(app).get(`/apps/${appId}/tokens`).set('Authorization', bearer(adminJwt))).status).toBe(200);
    expect((await request(app).patch(`/apps/${appId}`).set('Authorization', bearer(adminJwt)).send({ description: 'nightly' })).status).toBe(200);

    // -- refresh, then reuse of the refreshed value (reuse detection: logged as a warning)
    const refreshed = await request(app)
      .post('/tokens/refresh')
      .send({ client_id: appId, grant_type: 'token-exchange', refresh_token: secondValue, scope: 'openid' });
    expect(refreshed.status, refreshed.text).toBe(200);
    const refreshedValue = s.value(refreshed.body.value);
    await new Promise((r) => setTimeout(r, 20));
    const reuse = await request(app)
      .post('/tokens/refresh')
      .type('form')
      .send({ client_id: appId, grant_type: 'token-exchange', refresh_token: secondValue, scope: 'openid' });
    expect(reuse.status).toBe(400);
    expect(reuse.body.error).toBe('invalid_grant');
    expect(cap.events.some((e) => e.type === 'token.reuse_detected')).toBe(true);
    expect(cap.lines.some((l) => l.source === 'logger.warn' && l.text.includes('reuse detected'))).toBe(true);
    // The family is dead.
    expect((await request(app).get('/stamps').set('Authorization', bearer(refreshedValue))).status).toBe(401);

    // -- regenerate the first token
    const regenerated = await request(app).post(`/apps/${appId}/tokens/${firstTokenId}/regenerate`).set('Authorization', bearer(adminJwt));
    expect(regenerated.status, regenerated.text).toBe(200);
    const regeneratedValue = s.value(regenerated.body.value);
    const jwt3 = await grant(appId, regeneratedValue);

    // -- introspection and revocation (RFC 7662, RFC 7009)
    for (const token of [jwt3, regeneratedValue, jwt1]) {
      const res = await request(app).post('/oauth/introspect').set('Authorization', basic(appId, regeneratedValue)).type('form').send({ token });
      expect(res.status).toBe(200);
    }
    expect((await request(app).post('/oauth/revoke').set('Authorization', basic(appId, regeneratedValue)).type('form').send({ token: jwt3 })).status).toBe(200);
    expect((await request(app).post('/oauth/revoke').type('form').send({ client_id: exporterId, client_secret: envSecret, token: envSecret })).status).toBe(200);

    // -- failures: wrong, mistyped and foreign secrets; garbage bearers; bad bodies; credentials in the query
    const wrong = await request(app).post('/oauth/token').set('Authorization', basic(appId, mistype(regeneratedValue))).type('form').send({ grant_type: 'client_credentials' });
    expect(wrong.status).toBe(401);
    s.value(mistype(regeneratedValue));
    expect((await request(app).post('/oauth/token').set('Authorization', basic(appId, firstValue)).type('form').send({ grant_type: 'client_credentials' })).status).toBe(401);
    expect((await request(app).post('/oauth/token').set('Authorization', basic(appId, admin.secret)).type('form').send({ grant_type: 'client_credentials' })).status).toBe(401);
    expect((await request(app).post('/oauth/token').set('Authorization', basic('app_nobody', envSecret)).type('form').send({ grant_type: 'client_credentials' })).status).toBe(401);
    const garbage = [
      'eat_' + 'A'.repeat(49),
      `${jwt1.slice(0, -4)}AAAA`,
      'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.',
      'not-a-token-at-all-but-long-enough',
    ];
    for (const g of garbage) {
      s.header(`Bearer ${g}`);
      expect((await request(app).get('/stamps').set('Authorization', `Bearer ${g}`)).status).toBe(401);
      expect((await request(app).get('/apps').set('Authorization', `Bearer ${g}`)).status).toBe(401);
    }
    expect((await request(app).post('/apps').set('Authorization', bearer(adminJwt)).set('Content-Type', 'application/json').send('{"name":')).status).toBe(400);
    expect((await request(app).post('/apps').set('Authorization', bearer(adminJwt)).type('form').send({ name: 'x' })).status).toBe(415);
    expect((await request(app).post('/apps').set('Authorization', bearer(adminJwt)).send({ name: 'x', scopes: ['storage:read'] })).status).toBe(403);
    expect((await request(app).post(`/oauth/token?client_secret=${regeneratedValue}`).type('form').send({ grant_type: 'client_credentials' })).status).toBe(400);
    expect((await request(app).get(`/stamps?access_token=${jwt2}`)).status).toBe(400);
    expect((await request(app).post('/tokens/refresh').send({ client_id: appId, grant_type: 'token-exchange', refresh_token: firstValue })).status).toBe(400);
    expect((await request(app).post('/tokens/refresh').set('Content-Type', 'application/json').send(`{"refresh_token":"${regeneratedValue}"`)).status).toBe(400);
    expect((await request(app).post('/oauth/introspect').set('Authorization', basic(appId, regeneratedValue)).type('form').send(`token=${jwt2}&token=${jwt2}`)).status).toBe(400);

    // -- an exception inside the store, carrying secrets in its message and cause
    const hash = sha256(regeneratedValue);
    const boom = new Error(`boom ${regeneratedValue} hash=${hash} jwt=${jwt2}`, { cause: new Error(`inner ${envSecret} Bearer ${adminJwt}`) });
    const spy = vi.spyOn(f.store, 'findApiTokenByHash').mockRejectedValueOnce(boom);
    const failed = await request(app).post('/oauth/token').set('Authorization', basic(appId, regeneratedValue)).type('form').send({ grant_type: 'client_credentials' });
    expect(failed.status).toBe(500);
    expect(failed.body).toEqual({ error: 'server_error', error_description: 'internal error' });
    expect(spy).toHaveBeenCalled();
    // …and once more on the bearer path (an API token sent directly, never verified before, so not cached).
    spy.mockRejectedValueOnce(boom);
    const failedBearer = await request(app).get('/stamps').set('Authorization', bearer(postmanValue));
    expect(failedBearer.status).toBeGreaterThanOrEqual(500);
    expect(failedBearer.text).not.toContain('boom');
    spy.mockRestore();

    // -- delete a token and an app; read the audit log; rotate keys
    expect((await request(app).delete(`/apps/${appId}/tokens/${regenerated.body.token.id}`).set('Authorization', bearer(adminJwt))).status).toBe(204);
    const events = await request(app).get(`/apps/${appId}/events?limit=100`).set('Authorization', bearer(adminJwt));
    expect(events.status).toBe(200);
    expect(events.body.items.length).toBeGreaterThan(5);
    expect((await request(app).delete(`/apps/${appId}`).set('Authorization', bearer(adminJwt))).status).toBe(204);
    await f.auth.rotateKeys();
    await f.auth.close();

    // ---- the forced error WAS logged, redacted
    const errors = cap.lines.filter((l) => l.source === 'logger.error');
    expect(errors.length, 'the unexpected store error is logged').toBeGreaterThanOrEqual(1);
    const logged = errors.map((l) => l.text).join('\n');
    expect(logged).toContain('boom');
    expect(logged).toContain('inner');
    expect(logged).toContain('unexpected error');
    expect(logged).toMatch(/\[redacted secret\]/);
    expect(logged).toMatch(/\[redacted hash\]/);
    expect(logged).toMatch(/\[redacted jwt\]/);

    // ---- the audit log over HTTP carries no secret either
    const auditText = events.text;
    for (const [label, needle] of s.needles()) expect(auditText.includes(needle), `${label} in GET /apps/:id/events`).toBe(false);

    // ---- nothing secret anywhere
    expect(cap.events.length).toBeGreaterThan(15);
    expect(s.values.size).toBeGreaterThanOrEqual(8);
    expect(s.jwts.size).toBeGreaterThanOrEqual(5);
    expect(leaks(cap, s)).toEqual([]);
    // The search itself works: a line planted with a value, or with a hash, is found.
    const planted: Capture = { ...cap, lines: [{ source: 'planted', text: dump({ m: `x ${firstValue} ${sha256(jwt1)}` }) }], events: [] };
    expect(leaks(planted, s)).toEqual(
      expect.arrayContaining([expect.stringMatching(/^API-token value .* in planted$/), expect.stringMatching(/^hash of access token .* in planted$/)]),
    );
    // The host logger got everything: the console was not used behind its back.
    expect(cap.lines.filter((l) => l.source.startsWith('console.'))).toEqual([]);
  });

  it('without a logger option, the console fallback is redacted too', async () => {
    const g = await setup({});
    try {
      const c = await createClient(g.auth);
      const boom = new Error(`boom ${c.secret}`, { cause: { token: c.secret, nested: [`Bearer ${c.secret}`] } });
      vi.spyOn(g.store, 'getAppByClientId').mockRejectedValueOnce(boom);
      const res = await tokenRequest(g.app, c.clientId, c.secret);
      expect(res.status).toBe(500);
      const consoleLines = cap.lines.filter((l) => l.source === 'console.error');
      expect(consoleLines.length).toBeGreaterThanOrEqual(1);
      const text = consoleLines.map((l) => l.text).join('\n');
      expect(text).toContain('boom');
      expect(text).not.toContain(c.secret);
      expect(text).not.toContain(c.secret.slice(4));
      expect(text).not.toContain(sha256(c.secret));
    } finally {
      await g.cleanup();
    }
  });

  it('a throwing host logger does not fail the request', async () => {
    const g = await setup({
      logger: {
        warn: () => {
          throw new Error('logger down');
        },
        error: () => {
          throw new Error('logger down');
        },
      },
    });
    try {
      const c = await createClient(g.auth);
      vi.spyOn(g.store, 'findApiTokenByHash').mockRejectedValueOnce(new Error('boom'));
      const res = await tokenRequest(g.app, c.clientId, c.secret);
      expect(res.status).toBe(500);
      expect(res.body.error).toBe('server_error');
    } finally {
      await g.cleanup();
    }
  });
});

// ---- redact() --------------------------------------------------------------------------------------

describe('redact()', () => {
  const value = 'eat_3kT9Qz0aB1c3kT9Qz0aB1c3kT9Qz0aB1c3kT9Qz0aB1cXyZ12';
  const jwt =
    'eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6ImsxIn0.eyJzdWIiOiJhcHBfMSIsImNsaWVudF9pZCI6ImFwcF8xIn0.c2lnbmF0dXJlLWJ5dGVzLWhlcmUtYW5kLW1vcmUtYnl0ZXM';
  const hash = sha256(value);
  const all = (out: unknown) => JSON.stringify(out);
  const clean = (out: unknown) => {
    const text = all(out);
    expect(text).not.toContain(value);
    expect(text).not.toContain(value.slice(4));
    expect(text).not.toContain(jwt);
    expect(text).not.toContain(jwt.split('.')[2]!);
    expect(text).not.toContain(hash);
  };

  it('replaces secret-named members whatever their value, case-insensitively', () => {
    const out = redact({
      Authorization: 'Bearer abc',
      cookie: 'sid=1',
      client_secret: 'x',
      CLIENT_SECRET: 'x',
      token: { nested: true },
      access_token: 1,
      refresh_token: 'r',
      subject_token: 's',
      actor_token: 'a',
      value: 'v',
      hash: 'h',
      privateJwk: '{}',
      private_jwk: '{}',
      d: 'd',
      p: 'p',
      q: 'q',
      dp: 'dp',
      dq: 'dq',
      qi: 'qi',
      keyEncryptionSecret: 'k',
      key_encryption_secret: 'k',
      password: 'pw',
      secret: 's',
      kid: 'kept',
      tenantId: 'kept',
    }) as Record<string, unknown>;
    for (const [k, v] of Object.entries(out)) {
      if (k === 'kid' || k === 'tenantId') expect(v).toBe('kept');
      else expect(v, k).toBe('[redacted]');
    }
  });

  it('redacts values, JWTs and hex digests inside strings, keeping the rest of the message', () => {
    const out = redact(`client ${value} presented ${jwt}; stored ${hash}.`) as string;
    expect(out).toBe('client [redacted secret] presented [redacted jwt]; stored [redacted hash].');
  });

  it('redacts nested objects and arrays at every level it walks', () => {
    const input = {
      a: { b: { c: [`x ${value}`, { msg: jwt }, [hash]] } },
      list: [value, jwt, hash, 42, null, true],
      headers: { authorization: `Bearer ${jwt}`, 'user-agent': 'kept' },
    };
    const out = redact(input) as typeof input;
    clean(out);
    expect(out.headers['user-agent']).toBe('kept');
    expect(out.list.slice(3)).toEqual([42, null, true]);
    // The input is not mutated.
    expect(input.list[0]).toBe(value);
  });

  it('turns Errors into {name, message, cause}, redacting the message and the cause chain, dropping the stack', () => {
    const error = new Error(`boom ${value}`, {
      cause: new TypeError(`inner ${jwt}`, { cause: { token: value, detail: `hash ${hash}`, list: [value] } }),
    });
    const out = redact(error) as Record<string, unknown>;
    clean(out);
    expect(out.name).toBe('Error');
    expect(out.message).toBe('boom [redacted secret]');
    expect(out).not.toHaveProperty('stack');
    expect(all(out)).not.toMatch(/\n\s+at /);
    const cause = out.cause as Record<string, unknown>;
    expect(cause.name).toBe('TypeError');
    expect(cause.message).toBe('inner [redacted jwt]');
    expect((cause.cause as Record<string, unknown>).token).toBe('[redacted]');
  });

  it('drops own properties of an Error other than name, message and cause (a driver error with the query params)', () => {
    const error = Object.assign(new Error('SQLITE_CONSTRAINT'), { params: [value, hash], sql: `select * where hash = '${hash}'` });
    const out = redact({ err: error });
    clean(out);
    expect(all(out)).toContain('SQLITE_CONSTRAINT');
  });

  it('a long cause chain is cut, not followed forever (and a cycle does not hang)', () => {
    let e: Error = new Error(`root ${value}`);
    for (let i = 0; i < 20; i++) e = new Error(`level ${i} ${value}`, { cause: e });
    const out = redact(e);
    clean(out);
    const cyclic = new Error(`cycle ${value}`) as Error & { cause?: unknown };
    cyclic.cause = cyclic;
    clean(redact(cyclic));
  });

  it('objects nested deeper than the walk limit do not come back unredacted', () => {
    let deep: Record<string, unknown> = { client_secret: value, note: `jwt ${jwt}` };
    for (let i = 0; i < 10; i++) deep = { level: deep };
    clean(redact(deep));
    clean(redact({ err: deep }));
  });

  it('strings where a value follows a letter or digit (URL-encoded, concatenated) are still redacted', () => {
    // A form body or URL logged percent-encoded: the '=' and ' ' become %3D and %20.
    clean(redact(`client_secret%3D${value}`));
    clean(redact(`Authorization: Bearer%20${jwt}`));
    clean(redact(`token:${value},other`));
  });

  it('an Authorization header line inside a message loses its credential (Basic and Bearer)', () => {
    const basic = Buffer.from(`app_1:${value}`).toString('base64');
    const out = redact(`request failed with Authorization: Basic ${basic} and Authorization: Bearer opaque-${value.slice(4, 30)}`) as string;
    expect(out).not.toContain(basic);
    expect(out).not.toContain(value.slice(4, 30));
  });

  it('non-secret values pass through unchanged', () => {
    expect(redact('signing key rotated')).toBe('signing key rotated');
    expect(redact(42)).toBe(42);
    expect(redact(null)).toBe(null);
    expect(redact(undefined)).toBe(undefined);
    expect(redact({ kid: 'abc', retired: ['def'], at: '2026-11-22T00:00:00.000Z' })).toEqual({
      kid: 'abc',
      retired: ['def'],
      at: '2026-11-22T00:00:00.000Z',
    });
    // A short hex string (a kid, an id) is not a digest.
    expect(redact('deadbeef')).toBe('deadbeef');
  });

  it('safeLogger() redacts both the object and the message before the host logger sees them', () => {
    const calls: unknown[][] = [];
    const host: Logger = { warn: (...a) => void calls.push(a), error: (...a) => void calls.push(a), info: (...a) => void calls.push(a) };
    const log = safeLogger(host);
    log.warn({ authorization: `Bearer ${jwt}`, detail: `v=${value}` }, `message with ${value}`);
    log.error({ err: new Error(`boom ${hash}`) }, `and ${jwt}`);
    log.info({ list: [value] }, 'info');
    log.debug({ value }, 'debug: host has no debug, dropped');
    expect(calls).toHaveLength(3);
    clean(calls);
  });
});
