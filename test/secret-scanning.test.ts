/**
 * Issue 17: the leaked-token endpoint (`auth.secretScanning()`), the receiving end of GitHub's
 * secret scanning partner program. The tests hold a P-256 key pair of their own, publish its public
 * key in GitHub's key-list format from a real local HTTP server (or an injected fetch), and sign
 * reports with it, as GitHub does: ECDSA P-256 / SHA-256 over the raw body, DER, base64.
 *
 * Every attack is a test: a signature over another body, by another key, under a valid key id but
 * someone else's signature, headers missing or malformed, an unreachable key list, a huge batch,
 * JSON that is not the report, our prefix with a bad checksum, a hash presented as the token, a
 * key id that tries to steer the key fetch. After each refusal: nothing looked up, nothing revoked,
 * no event.
 */
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import express, { type Express } from 'express';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { createExampleApp, readConfig } from '../examples/server.js';
import { SecretCodec } from '../src/core/secrets.js';
import type { Logger } from '../src/core/logger.js';
import type { AppTokens, AuditEvent, KeysFetch, SecretScanningOptions, Store } from '../src/index.js';
import {
  Clock,
  accessToken,
  createClient,
  expectBearerFailure,
  expectOAuthError,
  expectProblem,
  mistype,
  postgresInstances,
  setup,
  thrown,
  tokenRequest,
} from './helpers.js';

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const TYPE = 'express_app_tokens_api_token';
const LEAK_URL = 'https://github.com/octo-org/octo-repo/blob/9f2c1e0/config/.env';

// ---- the reporter: a key pair, its published key list, signed reports -----------------------------

interface ReporterKey {
  id: string;
  pem: string;
  privateKey: KeyObject;
}

function reporterKey(id: string = sha256(`key-${Math.random()}`)): ReporterKey {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { id, pem: publicKey.export({ type: 'spki', format: 'pem' }) as string, privateKey };
}

function keyList(keys: readonly ReporterKey[]): string {
  return JSON.stringify({ public_keys: keys.map((k, i) => ({ key_identifier: k.id, key: k.pem, is_current: i === 0 })) });
}

function signBody(body: string | Buffer, key: KeyObject): string {
  return sign('sha256', Buffer.isBuffer(body) ? body : Buffer.from(body), { key, dsaEncoding: 'der' }).toString('base64');
}

interface Entry {
  token: string;
  type?: string;
  url?: string;
  source?: string;
}

function report(entries: ReadonlyArray<string | Entry>): string {
  return JSON.stringify(
    entries.map((e) => {
      const entry = typeof e === 'string' ? { token: e } : e;
      return { token: entry.token, type: entry.type ?? TYPE, url: entry.url ?? LEAK_URL, source: entry.source ?? 'content' };
    }),
  );
}

/** A real HTTP key endpoint on loopback, counting its hits; `down` answers 503. */
interface KeyServer {
  url: string;
  keys: ReporterKey[];
  hits: number;
  down: boolean;
  close(): Promise<void>;
}

async function keyServer(keys: ReporterKey[]): Promise<KeyServer> {
  const state = { hits: 0, down: false };
  const server: Server = createServer((req, res) => {
    state.hits++;
    if (state.down || req.url !== '/meta/public_keys/secret_scanning') {
      res.statusCode = state.down ? 503 : 404;
      res.end();
      return;
    }
    res.setHeader('Content-Type', 'application/json');
    res.end(keyList(ks.keys));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const ks: KeyServer = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/meta/public_keys/secret_scanning`,
    keys,
    get hits() {
      return state.hits;
    },
    set hits(v) {
      state.hits = v;
    },
    get down() {
      return state.down;
    },
    set down(v) {
      state.down = v;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return ks;
}

/** An injected fetch serving `keys`, recording every URL it is asked for. */
function fakeFetch(keys: () => readonly ReporterKey[]): KeysFetch & { urls: string[] } {
  const urls: string[] = [];
  const fn: KeysFetch = async (url) => {
    urls.push(url);
    return { ok: true, status: 200, text: async () => keyList(keys()) };
  };
  return Object.assign(fn, { urls });
}

/** POST a report, signed by `key` under `keyId` unless headers are given. */
function post(
  app: Express,
  body: string | Buffer,
  signer: { key?: ReporterKey; keyId?: string | null; signature?: string | null; signedBody?: string | Buffer } = {},
) {
  // superagent would JSON-serialise a Buffer sent as application/json: raw bytes go as octet-stream.
  const req = request(app)
    .post('/secret-scanning')
    .set('Content-Type', Buffer.isBuffer(body) ? 'application/octet-stream' : 'application/json');
  const keyId = signer.keyId !== undefined ? signer.keyId : signer.key?.id;
  const signature =
    signer.signature !== undefined ? signer.signature : signer.key ? signBody(signer.signedBody ?? body, signer.key.privateKey) : null;
  if (keyId !== null && keyId !== undefined) req.set('Github-Public-Key-Identifier', keyId);
  if (signature !== null && signature !== undefined) req.set('Github-Public-Key-Signature', signature);
  return req.send(body);
}

// ---- what is captured: events, log lines ---------------------------------------------------------

interface Capture {
  events: AuditEvent[];
  lines: string[];
  logger: Required<Logger>;
}

function capture(): Capture {
  const events: AuditEvent[] = [];
  const lines: string[] = [];
  const level = (name: string) => (obj: object, msg?: string) => {
    lines.push(`${name} ${msg ?? ''} ${JSON.stringify(obj)}`);
  };
  return { events, lines, logger: { debug: level('debug'), info: level('info'), warn: level('warn'), error: level('error') } };
}

const leaked = (c: Capture) => c.events.filter((e) => e.type === 'token.leaked');

/** One AppTokens instance on a store, with its host app (token endpoint, authenticate()). */
interface Instance {
  auth: AppTokens;
  store: Store | undefined;
  /** hostApp(auth): the token endpoint and protected routes. */
  app: Express;
  cap: Capture;
  close(): Promise<void>;
}

type Kind = 'memory' | 'sqlite' | 'postgres';

async function instance(kind: Kind, more: { now?: () => Date } = {}): Promise<Instance> {
  const cap = capture();
  const common = { onEvent: (e: AuditEvent) => cap.events.push(e), logger: cap.logger };
  if (kind === 'postgres') {
    const pg = await postgresInstances(1, { ...common, advanced: { ...(more.now ? { now: more.now } : {}) } });
    const auth = pg.instances[0]!;
    // postgresInstances() keeps its stores to itself; the tests on PostgreSQL look at them through the API only.
    return { auth, store: undefined, app: pg.apps[0]!, cap, close: pg.close };
  }
  const f = await setup({ store: kind, ...common, ...(more.now ? { advanced: { now: more.now } } : {}) });
  return { auth: f.auth, store: f.store, app: f.app, cap, close: () => f.cleanup() };
}

/** The receiving host: the endpoint where the example server mounts it, and the rest of the host behind it. */
function scanner(inst: Instance, options: SecretScanningOptions): Express {
  const app = express();
  app.use('/secret-scanning', inst.auth.secretScanning(options));
  app.use(inst.app);
  return app;
}

async function isLive(inst: Instance, tenant: string, appId: string, tokenId: string): Promise<boolean> {
  const details = await inst.auth.apps.get(tenant, appId);
  return details.tokens.some((t) => t.id === tokenId);
}

// ---- on every adapter: the revoke path -------------------------------------------------------------

describe.each(['memory', 'sqlite', 'postgres'] as const)('leaked tokens on %s', (kind) => {
  let inst: Instance;
  let keys: KeyServer;
  let key: ReporterKey;
  let scan: Express;

  beforeAll(async () => {
    key = reporterKey();
    keys = await keyServer([key]);
  });
  afterAll(async () => {
    await keys.close();
  });
  beforeEach(async () => {
    inst = await instance(kind);
    scan = scanner(inst, { keysUrl: keys.url });
  });
  afterEach(async () => {
    await inst.close();
  });

  it('a valid report revokes the live tokens at once: their access tokens are refused by authenticate(), the API token by the token endpoint', async () => {
    const a = await createClient(inst.auth, { tenant: 'acme' });
    const b = await createClient(inst.auth, { tenant: 'globex' }); // another tenant's token: leaks are global
    const sibling = await inst.auth.apps.createToken(a.tenant, a.clientId, { name: 'sibling' });
    const jwtA = await accessToken(inst.app, a.clientId, a.secret);
    const jwtB = await accessToken(inst.app, b.clientId, b.secret);
    // Warm the verification caches: revocation must beat them.
    expect((await request(inst.app).get('/me').set('Authorization', `Bearer ${jwtA}`)).status).toBe(200);
    expect((await request(inst.app).get('/me').set('Authorization', `Bearer ${a.secret}`)).status).toBe(200);

    const unknown = new SecretCodec('eat').generate().value; // well-formed, ours in format, never issued
    const foreign = `ghp_${'A'.repeat(36)}`;
    const body = report([a.secret, { token: b.secret, url: 'https://gist.github.com/octocat/1', source: 'gist' }, unknown, foreign]);
    const res = await post(scan, body, { key });
    expect(res.status, res.text).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers.etag).toBeUndefined();
    expect(res.body).toEqual([
      { token_hash: sha256(a.secret), token_type: TYPE, label: 'true_positive' },
      { token_hash: sha256(b.secret), token_type: TYPE, label: 'true_positive' },
      { token_hash: sha256(unknown), token_type: TYPE, label: 'false_positive' },
      { token_hash: sha256(foreign), token_type: TYPE, label: 'false_positive' },
    ]);

    // At once, no sync interval: the access tokens they minted, and the API tokens themselves.
    expectBearerFailure(await request(inst.app).get('/me').set('Authorization', `Bearer ${jwtA}`), 401, 'invalid_token');
    expectBearerFailure(await request(inst.app).get('/me').set('Authorization', `Bearer ${jwtB}`), 401, 'invalid_token');
    expectBearerFailure(await request(inst.app).get('/me').set('Authorization', `Bearer ${a.secret}`), 401, 'invalid_token');
    expectOAuthError(await tokenRequest(inst.app, a.clientId, a.secret), 401, 'invalid_client');
    expectOAuthError(await tokenRequest(inst.app, b.clientId, b.secret), 401, 'invalid_client');
    // The sibling was not reported: it lives on.
    expect((await tokenRequest(inst.app, a.clientId, sibling.value)).status).toBe(200);
    expect(await isLive(inst, a.tenant, a.clientId, a.tokenId)).toBe(false);
    expect(await isLive(inst, a.tenant, a.clientId, sibling.token.id)).toBe(true);
    expect(await isLive(inst, b.tenant, b.clientId, b.tokenId)).toBe(false);
    // Refused at the refresh door too, which records why: the adapter stored the reason 'leaked'
    // (a text column: no migration).
    const refreshed = await request(inst.app)
      .post('/tokens/refresh')
      .send({ client_id: a.clientId, grant_type: 'token-exchange', refresh_token: a.secret, scope: 'openid' });
    expect(refreshed.status).toBe(400);
    expect(inst.cap.events.find((e) => e.type === 'token.refresh_refused' && e.tokenId === a.tokenId)?.data).toEqual({ reason: 'leaked' });
    if (inst.store) expect((await inst.store.getApiToken(a.tenant, a.tokenId))?.revokedReason).toBe('leaked');

    // One event per revoked token, in its own tenant, with where it leaked.
    expect(leaked(inst.cap)).toHaveLength(2);
    expect(leaked(inst.cap)[0]).toMatchObject({
      tenantId: 'acme',
      appId: a.clientId,
      tokenId: a.tokenId,
      actorId: 'secret_scanning',
      outcome: 'success',
      data: { source: 'content', url: LEAK_URL, type: TYPE, action: 'revoked' },
    });
    expect(leaked(inst.cap)[1]).toMatchObject({ tenantId: 'globex', tokenId: b.tokenId, data: { url: 'https://gist.github.com/octocat/1', source: 'gist' } });
    // …and in the app's audit log in the store.
    const logged = (await inst.auth.apps.events(a.tenant, a.clientId)).items.filter((e) => e.type === 'token.leaked');
    expect(logged.map((e) => e.tokenId)).toEqual([a.tokenId]);
  });

  it('replaying a report is harmless: the second time every token is a false positive, nothing is revoked again, no second event', async () => {
    const a = await createClient(inst.auth);
    const body = report([a.secret]);
    const first = await post(scan, body, { key });
    expect(first.body).toEqual([{ token_hash: sha256(a.secret), token_type: TYPE, label: 'true_positive' }]);
    const second = await post(scan, body, { key });
    expect(second.status).toBe(200);
    expect(second.body).toEqual([{ token_hash: sha256(a.secret), token_type: TYPE, label: 'false_positive' }]);
    expect(leaked(inst.cap)).toHaveLength(1);
    expectOAuthError(await tokenRequest(inst.app, a.clientId, a.secret), 401, 'invalid_client');
  });

  it('concurrent copies of one report: exactly one revokes each token and emits its event', async () => {
    const a = await createClient(inst.auth);
    const b = await createClient(inst.auth);
    const body = report([a.secret, b.secret]);
    const answers = await Promise.all(Array.from({ length: 4 }, () => post(scan, body, { key })));
    for (const res of answers) expect(res.status).toBe(200);
    const positives = answers.flatMap((res) => (res.body as Array<{ label: string; token_hash: string }>).filter((f) => f.label === 'true_positive'));
    expect(positives.map((p) => p.token_hash).sort()).toEqual([sha256(a.secret), sha256(b.secret)].sort());
    expect(leaked(inst.cap).map((e) => e.tokenId).sort()).toEqual([a.tokenId, b.tokenId].sort());
  });

  it('a 1,000-token report is handled within the request limits, in reasonable time', async () => {
    const real: Array<{ tenant: string; appId: string; tokenId: string; value: string }> = [];
    for (let i = 0; i < 10; i++) {
      const c = await createClient(inst.auth, { tenant: `t${i % 3}` });
      real.push({ tenant: c.tenant, appId: c.clientId, tokenId: c.tokenId, value: c.secret });
      for (let j = 0; j < 4; j++) {
        const t = await inst.auth.apps.createToken(c.tenant, c.clientId);
        real.push({ tenant: c.tenant, appId: c.clientId, tokenId: t.token.id, value: t.value });
      }
    }
    const codec = new SecretCodec('eat');
    const unknown = Array.from({ length: 600 }, () => codec.generate().value); // each costs a lookup
    const badChecksum = Array.from({ length: 250 }, () => mistype(codec.generate().value));
    const foreign = Array.from({ length: 100 }, (_, i) => `npm_${String(i).padStart(36, 'x')}`);
    const values = [...real.map((r) => r.value), ...unknown, ...badChecksum, ...foreign];
    expect(values).toHaveLength(1000);
    const body = report(values.map((token, i) => ({ token, url: `${LEAK_URL}#L${i + 1}` })));
    expect(Buffer.byteLength(body)).toBeLessThan(1_048_576); // the default bodyLimit

    const started = performance.now();
    const res = await post(scan, body, { key });
    const elapsed = performance.now() - started;
    expect(res.status, res.text).toBe(200);
    expect(elapsed, `a 1,000-token report took ${Math.round(elapsed)} ms`).toBeLessThan(10_000);
    const labels = (res.body as Array<{ label: string }>).map((f) => f.label);
    expect(labels).toHaveLength(1000);
    expect(labels.slice(0, 50).every((l) => l === 'true_positive')).toBe(true);
    expect(labels.slice(50).every((l) => l === 'false_positive')).toBe(true);
    expect(leaked(inst.cap)).toHaveLength(50);
    for (const r of real.slice(0, 5)) expect(await isLive(inst, r.tenant, r.appId, r.tokenId)).toBe(false);
    expectOAuthError(await tokenRequest(inst.app, real[49]!.appId, real[49]!.value), 401, 'invalid_client');
  });

  it("onLeak 'notify' revokes nothing, answers true_positive and emits the event (again on a replay)", async () => {
    const notify = scanner(inst, { keysUrl: keys.url, onLeak: 'notify' });
    const a = await createClient(inst.auth);
    const body = report([a.secret]);
    const res = await post(notify, body, { key });
    expect(res.body).toEqual([{ token_hash: sha256(a.secret), token_type: TYPE, label: 'true_positive' }]);
    expect(leaked(inst.cap)).toHaveLength(1);
    expect(leaked(inst.cap)[0]!.data).toEqual({ source: 'content', url: LEAK_URL, type: TYPE, action: 'notified' });
    expect((await tokenRequest(inst.app, a.clientId, a.secret)).status).toBe(200);
    expect(await isLive(inst, a.tenant, a.clientId, a.tokenId)).toBe(true);
    // Still live, so still a true positive: the host's hook deduplicates by tokenId and url.
    expect((await post(notify, body, { key })).body[0].label).toBe('true_positive');
    expect(leaked(inst.cap)).toHaveLength(2);
  });
});

// ---- verification: every way in without GitHub's signature ----------------------------------------

describe('verification comes first', () => {
  let inst: Instance;
  let keys: KeyServer;
  let key: ReporterKey;
  let scan: Express;
  let victim: Awaited<ReturnType<typeof createClient>>;
  let lookups: ReturnType<typeof vi.spyOn>;

  beforeAll(async () => {
    key = reporterKey();
    keys = await keyServer([key]);
  });
  afterAll(async () => {
    await keys.close();
  });
  beforeEach(async () => {
    inst = await instance('sqlite');
    scan = scanner(inst, { keysUrl: keys.url });
    victim = await createClient(inst.auth);
    lookups = vi.spyOn(inst.store!, 'findApiTokenByHash');
  });
  afterEach(async () => {
    lookups.mockRestore();
    await inst.close();
  });

  /** Nothing happened: no lookup, the victim's token lives, no event. */
  async function nothingHappened(): Promise<void> {
    expect(lookups).not.toHaveBeenCalled();
    expect(leaked(inst.cap)).toEqual([]);
    expect(await isLive(inst, victim.tenant, victim.clientId, victim.tokenId)).toBe(true);
    expect((await tokenRequest(inst.app, victim.clientId, victim.secret)).status).toBe(200);
  }

  function expect401(res: request.Response, field: string): void {
    expectProblem(res, 401, 'invalid_signature', field);
    expect(res.headers['www-authenticate']).toMatch(/^Github-Public-Key-Signature realm="/);
  }

  it('a signature over a different body (tampered report) → 401', async () => {
    const res = await post(scan, report([victim.secret]), { key, signedBody: report([`ghp_${'B'.repeat(36)}`]) });
    expect401(res, 'Github-Public-Key-Signature');
    await nothingHappened();
  });

  it('the signed body with one byte appended, or re-serialised JSON of the same value → 401 (the signature covers the exact bytes)', async () => {
    const body = report([victim.secret]);
    const signature = signBody(body, key.privateKey);
    expect401(await post(scan, `${body} `, { keyId: key.id, signature }), 'Github-Public-Key-Signature');
    expect401(await post(scan, JSON.stringify(JSON.parse(body), null, 1), { keyId: key.id, signature }), 'Github-Public-Key-Signature');
    await nothingHappened();
  });

  it('a signature by another key under the valid key id (someone else’s signature) → 401', async () => {
    const attacker = reporterKey(key.id);
    const res = await post(scan, report([victim.secret]), { keyId: key.id, signature: signBody(report([victim.secret]), attacker.privateKey) });
    expect401(res, 'Github-Public-Key-Signature');
    await nothingHappened();
  });

  it('a signature by a key the list does not hold (unknown key id) → 401', async () => {
    const attacker = reporterKey();
    expect401(await post(scan, report([victim.secret]), { key: attacker }), 'Github-Public-Key-Signature');
    await nothingHappened();
  });

  it('missing or malformed headers → 401 before the body is read', async () => {
    keys.hits = 0;
    const body = report([victim.secret]);
    const signature = signBody(body, key.privateKey);
    expect401(await post(scan, body, { keyId: null, signature }), 'Github-Public-Key-Identifier');
    expect401(await post(scan, body, { keyId: key.id, signature: null }), 'Github-Public-Key-Signature');
    expect401(await post(scan, body, { keyId: null, signature: null }), 'Github-Public-Key-Identifier');
    expect401(await post(scan, body, { keyId: key.id, signature: '!!not base64!!' }), 'Github-Public-Key-Signature');
    expect401(await post(scan, body, { keyId: key.id, signature: '' }), 'Github-Public-Key-Signature');
    expect401(await post(scan, body, { keyId: 'has space', signature }), 'Github-Public-Key-Identifier');
    expect401(await post(scan, body, { keyId: key.id, signature: Buffer.alloc(64).toString('base64') }), 'Github-Public-Key-Signature');
    await nothingHappened();
    expect(keys.hits).toBeLessThanOrEqual(1);
  });

  it('a valid signature over JSON that is not a report → 400 naming the field; nothing happens', async () => {
    for (const [body, field] of [
      ['{"token":"x"}', 'body'],
      ['not json', 'body'],
      ['[{"token": 1, "type": "t"}]', 'body[0].token'],
      ['[null]', 'body[0]'],
      ['[{"type": "t"}]', 'body[0].token'],
    ] as const) {
      const res = await post(scan, body, { key });
      expect(res.status, body).toBe(400);
      expectProblem(res, 400, 'invalid_request', field);
    }
    // Not UTF-8, validly signed.
    const latin1 = Buffer.from([0x5b, 0x22, 0xe9, 0x22, 0x5d]);
    expectProblem(await post(scan, latin1, { key }), 400, 'invalid_request', 'body');
    await nothingHappened();
  });

  it('a huge report: more entries than maxTokens → 413, a body over bodyLimit → 413 unread; nothing happens', async () => {
    const small = scanner(inst, { keysUrl: keys.url, maxTokens: 10, bodyLimit: 2048 });
    const entries = [victim.secret, ...Array.from({ length: 10 }, (_, i) => `x${i}`)];
    expectProblem(await post(small, report(entries.map((token) => ({ token, url: 'u' }))), { key }), 413, 'payload_too_large', 'body');
    const big = report(Array.from({ length: 10 }, (_, i) => ({ token: i === 0 ? victim.secret : `x${i}`, url: `${LEAK_URL}?${'p'.repeat(300)}` })));
    expect(Buffer.byteLength(big)).toBeGreaterThan(2048);
    expectProblem(await post(small, big, { key }), 413, 'payload_too_large');
    await nothingHappened();
  });

  it('a compressed body → 415, never inflated', async () => {
    const body = report([victim.secret]);
    const res = await request(scan)
      .post('/secret-scanning')
      .set('Content-Type', 'application/octet-stream')
      .set('Content-Encoding', 'gzip')
      .set('Github-Public-Key-Identifier', key.id)
      .set('Github-Public-Key-Signature', signBody(body, key.privateKey))
      .send(gzipSync(body));
    expectProblem(res, 415, 'unsupported_media_type');
    await nothingHappened();
  });

  it('an unreachable key list → 503 with Retry-After and nothing happens; once it is back, the same report goes through', async () => {
    const closed = await keyServer([key]);
    const deadUrl = closed.url;
    await closed.close();
    const dead = scanner(inst, { keysUrl: deadUrl, advanced: { keysTimeout: 1000 } });
    const body = report([victim.secret]);
    const res = await post(dead, body, { key });
    expectProblem(res, 503, 'unavailable');
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    await nothingHappened();
    expect(inst.cap.lines.some((l) => l.includes('public key list could not be fetched'))).toBe(true);

    // A key endpoint that answers 503, then recovers (after the refetch interval).
    const clock = new Clock();
    lookups.mockRestore();
    await inst.close();
    inst = await instance('sqlite', { now: clock.now });
    victim = await createClient(inst.auth);
    keys.down = true;
    try {
      const flaky = scanner(inst, { keysUrl: keys.url });
      expectProblem(await post(flaky, report([victim.secret]), { key }), 503, 'unavailable');
      keys.down = false;
      clock.advance(61);
      const again = await post(flaky, report([victim.secret]), { key });
      expect(again.status, again.text).toBe(200);
      expect(again.body[0].label).toBe('true_positive');
    } finally {
      keys.down = false;
    }
    lookups = vi.spyOn(inst.store!, 'findApiTokenByHash');
  });

  it('only POST is served', async () => {
    const res = await request(scan).get('/secret-scanning');
    expectProblem(res, 405, 'method_not_allowed');
    expect(res.headers.allow).toBe('POST');
    await nothingHappened();
  });
});

// ---- the key list: cached, refetched on an unknown id at most once per interval ---------------------

describe('the key list', () => {
  let inst: Instance;
  let clock: Clock;

  beforeEach(async () => {
    clock = new Clock();
    inst = await instance('sqlite', { now: clock.now });
  });
  afterEach(async () => {
    await inst.close();
  });

  it('is fetched once and cached; a rotated-in key id refetches it; made-up key ids refetch at most once per interval', async () => {
    const first = reporterKey();
    const second = reporterKey();
    let published = [first];
    const fetch = fakeFetch(() => published);
    const scan = scanner(inst, { keysUrl: 'https://keys.example.test/secret_scanning', advanced: { fetch } });
    for (let i = 0; i < 3; i++) expect((await post(scan, report([]), { key: first })).status).toBe(200);
    expect(fetch.urls).toHaveLength(1);

    // GitHub rotates: the new key id is unknown, the list is fetched again, the report verifies.
    published = [second, first];
    clock.advance(61);
    expect((await post(scan, report([]), { key: second })).status).toBe(200);
    expect(fetch.urls).toHaveLength(2);
    // The previous key, now is_current: false, still verifies (GitHub may sign with it during a rotation).
    expect((await post(scan, report([]), { key: first })).status).toBe(200);
    expect(fetch.urls).toHaveLength(2);

    // A flood of made-up key ids: one refetch per interval, every one refused.
    for (let i = 0; i < 20; i++) expect((await post(scan, report([]), { key: reporterKey() })).status).toBe(401);
    expect(fetch.urls).toHaveLength(2);
    clock.advance(61);
    for (let i = 0; i < 5; i++) expect((await post(scan, report([]), { key: reporterKey() })).status).toBe(401);
    expect(fetch.urls).toHaveLength(3);

    // An old list is refreshed after keysMaxAge (an hour by default); a key dropped from it stops verifying.
    published = [second];
    clock.advance(3600);
    expect((await post(scan, report([]), { key: first })).status).toBe(401);
    expect((await post(scan, report([]), { key: second })).status).toBe(200);
  });

  it('is fetched only from the configured keysUrl: no request header steers it (no SSRF)', async () => {
    const key = reporterKey();
    const fetch = fakeFetch(() => [key]);
    const scan = scanner(inst, { keysUrl: 'https://keys.example.test/secret_scanning', advanced: { fetch } });
    const body = report([]);
    await request(scan)
      .post('/secret-scanning')
      .set('Content-Type', 'application/json')
      .set('Github-Public-Key-Identifier', 'http://169.254.169.254/latest/meta-data')
      .set('Github-Public-Key-Signature', signBody(body, key.privateKey))
      .set('Host', 'evil.example')
      .set('X-Forwarded-Host', 'evil.example')
      .send(body);
    await post(scan, body, { key });
    expect(new Set(fetch.urls)).toEqual(new Set(['https://keys.example.test/secret_scanning']));
  });

  it('keeps only P-256 keys, and a list without one is no list', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const key = reporterKey();
    let body = JSON.stringify({
      public_keys: [
        { key_identifier: 'rsa', key: rsa.publicKey.export({ type: 'spki', format: 'pem' }), is_current: true },
        { key_identifier: 'junk', key: 'not a pem', is_current: false },
      ],
    });
    const fetch = (async () => ({ ok: true, status: 200, text: async () => body })) as KeysFetch;
    const scan = scanner(inst, { keysUrl: 'https://keys.example.test/k', advanced: { fetch } });
    const rsaSigned = report([]);
    const res = await post(scan, rsaSigned, { keyId: 'rsa', signature: signBody(rsaSigned, reporterKey().privateKey) });
    expectProblem(res, 503, 'unavailable');
    body = keyList([key]);
    clock.advance(61);
    expect((await post(scan, report([]), { key })).status).toBe(200);
  });

  it('a fetch that never answers is abandoned after keysTimeout → 503', async () => {
    const fetch = (() => new Promise(() => undefined)) as KeysFetch;
    const scan = scanner(inst, { keysUrl: 'https://keys.example.test/k', advanced: { fetch, keysTimeout: 200 } });
    const started = performance.now();
    expectProblem(await post(scan, report([]), { key: reporterKey() }), 503, 'unavailable');
    expect(performance.now() - started).toBeLessThan(3000);
  });
});

// ---- what is ours, and what never matches ------------------------------------------------------------

describe('what a report can match', () => {
  let inst: Instance;
  let key: ReporterKey;
  let scan: Express;

  beforeEach(async () => {
    key = reporterKey();
    inst = await instance('memory');
    scan = scanner(inst, { keysUrl: 'https://keys.example.test/k', advanced: { fetch: fakeFetch(() => [key]) } });
  });
  afterEach(async () => {
    await inst.close();
  });

  it('our prefix with a bad checksum is a false positive and costs no lookup', async () => {
    const a = await createClient(inst.auth);
    const lookups = vi.spyOn(inst.store!, 'findApiTokenByHash');
    const typo = mistype(a.secret);
    const res = await post(scan, report([typo, `${a.secret}x`, a.secret.slice(0, -1), `EAT${a.secret.slice(3)}`]), { key });
    expect((res.body as Array<{ label: string }>).map((f) => f.label)).toEqual(Array(4).fill('false_positive'));
    expect(lookups).not.toHaveBeenCalled();
    expect((await tokenRequest(inst.app, a.clientId, a.secret)).status).toBe(200);
    lookups.mockRestore();
  });

  it('no derived value matches: the hash, the hint or the id of a token presented as the token', async () => {
    const a = await createClient(inst.auth);
    const hint = (await inst.auth.apps.get(a.tenant, a.clientId)).tokens[0]!.hint;
    const res = await post(scan, report([sha256(a.secret), `eat_${sha256(a.secret)}`, hint, a.tokenId, a.clientId]), { key });
    expect((res.body as Array<{ label: string }>).every((f) => f.label === 'false_positive')).toBe(true);
    expect(leaked(inst.cap)).toEqual([]);
    expect((await tokenRequest(inst.app, a.clientId, a.secret)).status).toBe(200);
  });

  it('a value reported several times in one batch is looked up once, revoked once, answered once', async () => {
    const a = await createClient(inst.auth);
    const lookups = vi.spyOn(inst.store!, 'findApiTokenByHash');
    const res = await post(scan, report([a.secret, { token: a.secret, url: 'https://github.com/o/r/blob/1/b' }, a.secret]), { key });
    expect(res.body).toEqual([{ token_hash: sha256(a.secret), token_type: TYPE, label: 'true_positive' }]);
    expect(lookups).toHaveBeenCalledTimes(1);
    expect(leaked(inst.cap)).toHaveLength(1);
    expect(leaked(inst.cap)[0]!.data.url).toBe(LEAK_URL); // the first report of it
    lookups.mockRestore();
  });

  it('an expired, a deleted or an already rotated token is a false positive and changes nothing', async () => {
    const clock = new Clock();
    await inst.close();
    inst = await instance('memory', { now: clock.now });
    scan = scanner(inst, { keysUrl: 'https://keys.example.test/k', advanced: { fetch: fakeFetch(() => [key]) } });
    const expiring = await createClient(inst.auth, { expiresIn: 3600 });
    const deleted = await createClient(inst.auth);
    await inst.auth.apps.deleteToken(deleted.tenant, deleted.clientId, deleted.tokenId);
    const rotated = await createClient(inst.auth);
    const successor = await inst.auth.apps.regenerateToken(rotated.tenant, rotated.clientId, rotated.tokenId);
    clock.advance(3601);
    const res = await post(scan, report([expiring.secret, deleted.secret, rotated.secret]), { key });
    expect((res.body as Array<{ label: string }>).map((f) => f.label)).toEqual(['false_positive', 'false_positive', 'false_positive']);
    expect(leaked(inst.cap)).toEqual([]);
    expect((await tokenRequest(inst.app, rotated.clientId, successor.value)).status).toBe(200);
  });

  it('a retiring token (regenerated with a grace period) is live: reported, it dies now, not at its deadline', async () => {
    const a = await createClient(inst.auth);
    const successor = await inst.auth.apps.regenerateToken(a.tenant, a.clientId, a.tokenId, { gracePeriod: 3600 });
    expect((await tokenRequest(inst.app, a.clientId, a.secret)).status).toBe(200);
    const res = await post(scan, report([a.secret]), { key });
    expect(res.body[0].label).toBe('true_positive');
    expectOAuthError(await tokenRequest(inst.app, a.clientId, a.secret), 401, 'invalid_client');
    expect((await tokenRequest(inst.app, a.clientId, successor.value)).status).toBe(200);
  });

  it('a store failure midway answers 500; what was revoked has its event, and GitHub’s retry finishes the rest', async () => {
    const a = await createClient(inst.auth, { tenant: 'acme' });
    const b = await createClient(inst.auth, { tenant: 'globex' });
    const store = inst.store!;
    const real = store.revokeApiTokens.bind(store);
    let calls = 0;
    const spy = vi.spyOn(store, 'revokeApiTokens').mockImplementation(async (...args) => {
      if (++calls === 2) throw new Error('connection reset');
      return real(...args);
    });
    const body = report([a.secret, b.secret]);
    const failed = await post(scan, body, { key });
    expectProblem(failed, 500, 'server_error');
    expect(leaked(inst.cap).map((e) => e.tokenId)).toEqual([a.tokenId]);
    expect((await tokenRequest(inst.app, b.clientId, b.secret)).status).toBe(200);
    const retried = await post(scan, body, { key });
    expect((retried.body as Array<{ label: string }>).map((f) => f.label)).toEqual(['false_positive', 'true_positive']);
    expect(leaked(inst.cap).map((e) => e.tokenId)).toEqual([a.tokenId, b.tokenId]);
    expectOAuthError(await tokenRequest(inst.app, b.clientId, b.secret), 401, 'invalid_client');
    spy.mockRestore();
  });

  it('events and log lines never carry the value or its hash, even when the reported URL holds them', async () => {
    const a = await createClient(inst.auth);
    const b = await createClient(inst.auth);
    const jwt = await accessToken(inst.app, a.clientId, a.secret);
    const body = report([
      { token: a.secret, url: `https://github.com/o/r/blob/1/f?leak=${a.secret}`, type: `t-${sha256(a.secret)}` },
      { token: b.secret, source: `npm ${b.secret}` },
    ]);
    expect((await post(scan, body, { key })).status).toBe(200);
    expectBearerFailure(await request(inst.app).get('/me').set('Authorization', `Bearer ${jwt}`), 401, 'invalid_token');
    expect(leaked(inst.cap)).toHaveLength(2);
    expect(leaked(inst.cap)[0]!.data.url).toBe('https://github.com/o/r/blob/1/f?leak=[redacted]');
    const stored = [
      ...(await inst.auth.apps.events(a.tenant, a.clientId)).items,
      ...(await inst.auth.apps.events(b.tenant, b.clientId)).items,
    ];
    expect(stored.filter((e) => e.type === 'token.leaked')).toHaveLength(2);
    const everything = [...inst.cap.events.map((e) => JSON.stringify(e)), ...inst.cap.lines, ...stored.map((e) => JSON.stringify(e))].join('\n');
    expect(inst.cap.lines.some((l) => l.includes('reported leaked'))).toBe(true);
    for (const secret of [a.secret, b.secret]) {
      expect(everything).not.toContain(secret);
      expect(everything).not.toContain(sha256(secret));
    }
  });
});

describe('options are validated at construction', () => {
  let inst: Instance;
  beforeEach(async () => {
    inst = await instance('memory');
  });
  afterEach(async () => {
    await inst.close();
  });

  it('naming the option', () => {
    const bad = (options: unknown) => thrown(() => inst.auth.secretScanning(options as SecretScanningOptions));
    expect(bad({ keysUrl: 'http://keys.example.test/k' }).field).toBe('keysUrl');
    expect(bad({ keysUrl: 'not a url' }).code).toBe('invalid_options');
    expect(bad({ keysUrl: 'https://user:pw@keys.example.test/k' }).field).toBe('keysUrl');
    expect(bad({ onLeak: 'delete' }).field).toBe('onLeak');
    expect(bad({ maxTokens: 0 }).field).toBe('maxTokens');
    expect(bad({ bodyLimit: 10 }).field).toBe('bodyLimit');
    expect(bad({ advanced: { keysTimeout: 1 } }).field).toBe('advanced.keysTimeout');
    expect(bad({ keysurl: 'https://x' }).message).toContain('unknown option "keysurl"');
    expect(() => inst.auth.secretScanning()).not.toThrow();
  });
});

describe('the example server', () => {
  it('mounts POST /secret-scanning when SECRET_SCANNING_KEYS_URL is set, and not otherwise', async () => {
    const key = reporterKey();
    const keys = await keyServer([key]);
    const inst = await instance('sqlite');
    try {
      const config = readConfig({ SECRET_SCANNING_KEYS_URL: keys.url });
      expect(config.secretScanningKeysUrl).toBe(keys.url);
      const c = await createClient(inst.auth);
      const mounted = createExampleApp(inst.auth, config.rateLimit, config.secretScanningKeysUrl);
      const res = await post(mounted, report([c.secret]), { key });
      expect(res.status, res.text).toBe(200);
      expect(res.body[0].label).toBe('true_positive');
      expect(readConfig({}).secretScanningKeysUrl).toBeUndefined();
      const plain = createExampleApp(inst.auth, config.rateLimit, readConfig({}).secretScanningKeysUrl);
      expect((await post(plain, report([]), { key })).status).toBe(404);
      expect(() => readConfig({ SECRET_SCANNING_KEYS_URL: 'keys.json' })).toThrow(/^SECRET_SCANNING_KEYS_URL: /);
    } finally {
      await inst.close();
      await keys.close();
    }
  });
});
