/**
 * Client authentication takes the same code path whatever is wrong with the credentials
 * (RFC 6749 §2.3.1, RFC 6819 §5.1.4.1.2 / §5.2.3.1; the ARCHITECTURE record "Client
 * authentication path"). Tested on the code path, not the clock: wall-clock timing is noise on a
 * shared CI machine, but "the same store calls and the same constant-time comparison, then the same
 * bytes on the wire" is exact.
 *
 * `crypto.timingSafeEqual` is spied on through `vi.mock('node:crypto')`: the module namespace of an
 * ES module cannot be redefined by `vi.spyOn`, but vitest's module mocking replaces what the
 * library's own (transformed) modules import, so the spy sees every call src/core/service.ts and
 * src/core/secrets.ts make, and only theirs (jose, in node_modules, keeps the real module). The
 * spy calls through to the real function. A sanity test below proves the spy is wired, so that a
 * broken mock fails loudly instead of making the other assertions vacuous.
 */
import { createHash } from 'node:crypto';
import * as crypto from 'node:crypto';
import type { Express } from 'express';
import request, { type Response } from 'supertest';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { DUMMY_HASH, SecretCodec } from '../src/core/secrets.js';
import { createClient, mistype, setup, type Fixture } from './helpers.js';

vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>();
  return {
    ...actual,
    default: { ...(actual as unknown as { default: object }).default, timingSafeEqual: vi.fn(actual.timingSafeEqual) },
    timingSafeEqual: vi.fn(actual.timingSafeEqual),
  };
});

const timingSafeEqual = vi.mocked(crypto.timingSafeEqual);

let f: Fixture;
let client: Awaited<ReturnType<typeof createClient>>;
let other: Awaited<ReturnType<typeof createClient>>;
/** A well-formed value with a valid checksum that no app holds. */
let unknownSecret: string;

beforeAll(async () => {
  f = await setup();
  other = await createClient(f.auth);
  // A well-formed value (valid checksum) that the store has never seen.
  unknownSecret = new SecretCodec('eat').generate().value;
});
afterAll(async () => {
  await f.cleanup();
});
beforeEach(async () => {
  // A fresh client per test: the client lockout (left on, as in production) counts failures per
  // client id, and a locked-out client answers 429 before any lookup.
  client = await createClient(f.auth);
  timingSafeEqual.mockClear();
});

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const UNKNOWN_CLIENT = 'app_0000000000000000000000';

type Style = 'basic' | 'post';

function tokenCall(app: Express, clientId: string, secret: string, style: Style) {
  const r = request(app).post('/oauth/token').type('form');
  if (style === 'basic') {
    return r.auth(encodeURIComponent(clientId), encodeURIComponent(secret)).send({ grant_type: 'client_credentials' });
  }
  return r.send({ grant_type: 'client_credentials', client_id: clientId, client_secret: secret });
}

/** Everything a client can observe, except the headers that vary by time (Date) or are derived (ETag). */
function observable(res: Response) {
  const headers = { ...res.headers } as Record<string, unknown>;
  delete headers.date;
  delete headers.etag;
  return { status: res.status, headers, body: res.text };
}

/** The 32-byte comparisons of hashes (not the 6-byte checksum comparison in the codec). */
function hashComparisons(): Array<[string, string]> {
  return timingSafeEqual.mock.calls
    .filter(([a, b]) => (a as Buffer).length === 32 && (b as Buffer).length === 32)
    .map(([a, b]) => [Buffer.from(a as Buffer).toString('hex'), Buffer.from(b as Buffer).toString('hex')]);
}

async function attempt(clientId: string, secret: string, style: Style) {
  const getApp = vi.spyOn(f.store, 'getAppByClientId');
  const findToken = vi.spyOn(f.store, 'findApiTokenByHash');
  timingSafeEqual.mockClear();
  const res = await tokenCall(f.app, clientId, secret, style);
  const calls = {
    getAppByClientId: getApp.mock.calls.map((c) => c[0]),
    findApiTokenByHash: findToken.mock.calls.map((c) => c[0]),
    timingSafeEqual: timingSafeEqual.mock.calls.length,
    hashComparisons: hashComparisons(),
  };
  getApp.mockRestore();
  findToken.mockRestore();
  return { res, calls };
}

describe('client authentication takes one path (RFC 6749 §2.3.1)', () => {
  it('the timingSafeEqual spy is wired into the library (sanity: a successful grant compares hashes)', async () => {
    const { res, calls } = await attempt(client.clientId, client.secret, 'basic');
    expect(res.status).toBe(200);
    expect(calls.timingSafeEqual).toBeGreaterThan(0);
    // The stored hash of the client's secret against the presented one: equal.
    expect(calls.hashComparisons).toEqual([[sha256(client.secret), sha256(client.secret)]]);
  });

  it('with credentials cached (advanced.clientCacheTtl), any other secret, or the cached secret under another client id, still takes the full path', async () => {
    // Both clients authenticated: their credentials are now in the client cache.
    expect((await attempt(client.clientId, client.secret, 'basic')).res.status).toBe(200);
    expect((await attempt(other.clientId, other.secret, 'basic')).res.status).toBe(200);
    const hit = await attempt(client.clientId, client.secret, 'basic');
    expect(hit.res.status).toBe(200);
    expect(hit.calls.findApiTokenByHash).toEqual([]); // served from the cache: the cache is in play
    const wrong = await attempt(client.clientId, unknownSecret, 'basic');
    expect(wrong.res.status).toBe(401);
    expect(wrong.calls.getAppByClientId).toEqual([client.clientId]);
    expect(wrong.calls.findApiTokenByHash).toEqual([sha256(unknownSecret)]);
    expect(wrong.calls.hashComparisons).toEqual([[DUMMY_HASH, sha256(unknownSecret)]]);
    const foreign = await attempt(client.clientId, other.secret, 'basic');
    expect(foreign.res.status).toBe(401);
    expect(foreign.calls.getAppByClientId).toEqual([client.clientId]);
    expect(foreign.calls.findApiTokenByHash).toEqual([sha256(other.secret)]);
    expect(foreign.calls.hashComparisons).toEqual([[sha256(other.secret), sha256(other.secret)]]);
  });

  for (const style of ['basic', 'post'] as const) {
    describe(`client_secret_${style}`, () => {
      it('an unknown client looks up the client AND the token once each, and compares against the dummy hash', async () => {
        const { res, calls } = await attempt(UNKNOWN_CLIENT, unknownSecret, style);
        expect(res.status).toBe(401);
        expect(calls.getAppByClientId).toEqual([UNKNOWN_CLIENT]);
        expect(calls.findApiTokenByHash).toEqual([sha256(unknownSecret)]);
        expect(calls.hashComparisons).toEqual([[DUMMY_HASH, sha256(unknownSecret)]]);
      });

      it('a known client with a wrong (well-formed, unknown) secret takes exactly the same path', async () => {
        const { res, calls } = await attempt(client.clientId, unknownSecret, style);
        expect(res.status).toBe(401);
        expect(calls.getAppByClientId).toEqual([client.clientId]);
        expect(calls.findApiTokenByHash).toEqual([sha256(unknownSecret)]);
        expect(calls.hashComparisons).toEqual([[DUMMY_HASH, sha256(unknownSecret)]]);
      });

      it("a known client with another app's valid secret: both lookups, a real comparison, then refused", async () => {
        const { res, calls } = await attempt(client.clientId, other.secret, style);
        expect(res.status).toBe(401);
        expect(calls.getAppByClientId).toEqual([client.clientId]);
        expect(calls.findApiTokenByHash).toEqual([sha256(other.secret)]);
        expect(calls.hashComparisons).toEqual([[sha256(other.secret), sha256(other.secret)]]);
      });

      it('a mistyped secret (bad checksum) skips the hash lookup but still looks up the client and compares once', async () => {
        const typo = mistype(client.secret);
        const { res, calls } = await attempt(client.clientId, typo, style);
        expect(res.status).toBe(401);
        expect(calls.getAppByClientId).toEqual([client.clientId]);
        expect(calls.findApiTokenByHash).toEqual([]);
        expect(calls.hashComparisons).toEqual([[DUMMY_HASH, sha256(typo)]]);
      });

      it('the answers of unknown client, wrong secret, foreign secret and mistyped secret are byte-identical', async () => {
        const answers = [
          await attempt(UNKNOWN_CLIENT, unknownSecret, style),
          await attempt(client.clientId, unknownSecret, style),
          await attempt(client.clientId, other.secret, style),
          await attempt(client.clientId, mistype(client.secret), style),
        ].map(({ res }) => observable(res));
        expect(answers[0]!.status).toBe(401);
        expect(JSON.parse(answers[0]!.body).error).toBe('invalid_client');
        if (style === 'basic') expect(answers[0]!.headers['www-authenticate']).toMatch(/^Basic realm=/);
        for (const a of answers.slice(1)) expect(a).toEqual(answers[0]);
      });

      it('every failing case calls timingSafeEqual the same number of times', async () => {
        const counts = [
          (await attempt(UNKNOWN_CLIENT, unknownSecret, style)).calls.timingSafeEqual,
          (await attempt(client.clientId, unknownSecret, style)).calls.timingSafeEqual,
          (await attempt(client.clientId, other.secret, style)).calls.timingSafeEqual,
          (await attempt(client.clientId, mistype(client.secret), style)).calls.timingSafeEqual,
        ];
        // One checksum comparison in the codec, one hash comparison in authenticateClient.
        expect(counts).toEqual([2, 2, 2, 2]);
      });
    });
  }

  it('the same holds at /oauth/introspect and /oauth/revoke (one client authentication for all)', async () => {
    for (const path of ['/oauth/introspect', '/oauth/revoke']) {
      const answers = [];
      for (const [id, secret, lookups] of [
        [UNKNOWN_CLIENT, unknownSecret, 1],
        [client.clientId, unknownSecret, 1],
        [client.clientId, mistype(client.secret), 0],
      ] as const) {
        const getApp = vi.spyOn(f.store, 'getAppByClientId');
        const findToken = vi.spyOn(f.store, 'findApiTokenByHash');
        const res = await request(f.app)
          .post(path)
          .type('form')
          .auth(encodeURIComponent(id), encodeURIComponent(secret))
          .send({ token: 'whatever' });
        expect(getApp, `${path} ${id}`).toHaveBeenCalledTimes(1);
        expect(findToken, `${path} ${id}`).toHaveBeenCalledTimes(lookups);
        getApp.mockRestore();
        findToken.mockRestore();
        answers.push(observable(res));
      }
      expect(answers[0]!.status).toBe(401);
      for (const a of answers.slice(1)) expect(a, path).toEqual(answers[0]);
    }
  });

  it('the client lockout counts an unknown client id exactly like a known one (no enumeration through 429)', async () => {
    const g = await setup({ clientLockout: { attempts: 3, window: 60, duration: 60 } });
    try {
      const known = await createClient(g.auth);
      const statuses = { known: [] as number[], unknown: [] as number[] };
      let lastKnown: Response | undefined;
      let lastUnknown: Response | undefined;
      for (let i = 0; i < 5; i++) {
        lastKnown = await tokenCall(g.app, known.clientId, unknownSecret, 'basic');
        lastUnknown = await tokenCall(g.app, UNKNOWN_CLIENT, unknownSecret, 'basic');
        statuses.known.push(lastKnown.status);
        statuses.unknown.push(lastUnknown.status);
      }
      expect(statuses.known).toEqual([401, 401, 401, 429, 429]);
      expect(statuses.unknown).toEqual(statuses.known);
      const strip = (res: Response) => {
        const o = observable(res);
        // Retry-After and the message count down by the second; both sides may straddle a tick.
        delete o.headers['retry-after'];
        delete o.headers['content-length'];
        return { ...o, body: JSON.parse(o.body).error as string };
      };
      expect(strip(lastUnknown!)).toEqual(strip(lastKnown!));
    } finally {
      await g.cleanup();
    }
  });
});
