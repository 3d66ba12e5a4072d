/**
 * Issue 16: shared rate-limit counts in leases. N instances together allow at least the quota and
 * at most quota + N × leaseMax per window; small quotas stay exact; a failing store leaves the
 * per-process limiter in charge.
 */
import type { AddressInfo } from 'node:net';
import { createServer, type Server } from 'node:http';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { RETRY_MS, RateLeases, type RateDecision } from '../src/core/rate-lease.js';
import { accessToken, createClient, postgresInstances } from './helpers.js';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An in-memory stand-in of Store.addRateUsage with a round-trip delay, shared by several instances. */
function fakeStore(delayMs = 2) {
  const counters = new Map<string, number>();
  let calls = 0;
  let failing = false;
  return {
    get calls() {
      return calls;
    },
    set failing(v: boolean) {
      failing = v;
    },
    total: (windowStart: number) => [...counters].filter(([k]) => k.endsWith(`@${windowStart}`)).reduce((a, [, v]) => a + v, 0),
    add: async (key: string, windowStart: number, count: number): Promise<number> => {
      calls++;
      await sleep(delayMs);
      if (failing) throw new Error('connection refused');
      const k = `${key}@${windowStart}`;
      const total = (counters.get(k) ?? 0) + count;
      counters.set(k, total);
      return total;
    },
  };
}

async function decide(leases: RateLeases, key: string): Promise<RateDecision> {
  return leases.consume(key, Date.now());
}

describe('rate-limit leases (issue 16)', () => {
  it('three instances on one counter allow at least the quota and at most quota + 3 × leaseMax, without a store call per request', async () => {
    const store = fakeStore();
    const points = 2000;
    const leaseMax = 40;
    // A window long enough that the test never crosses one.
    const instances = [0, 1, 2].map(() => new RateLeases(store.add, points, 86_400, leaseMax, 'p'));
    const results: boolean[] = [];
    // 3,600 requests, 12 in flight per instance, unevenly spread (the first instance takes half).
    let sent = 0;
    await Promise.all(
      instances.flatMap((leases, i) =>
        Array.from({ length: 12 }, async () => {
          while (sent < 3600) {
            sent++;
            const target = i === 0 || sent % 2 === 0 ? leases : instances[1 + (sent % 2)]!;
            results.push((await decide(target, 'tenant:app:GET /x')).allowed);
            if (sent % 50 === 0) await sleep(1);
          }
        }),
      ),
    );
    const allowed = results.filter(Boolean).length;
    expect(allowed).toBeGreaterThanOrEqual(points);
    expect(allowed).toBeLessThanOrEqual(points + 3 * leaseMax);
    // Leases, not a round trip per request.
    expect(store.calls).toBeLessThan(results.length / 5);
  });

  it('an instance that the others never told about their traffic still stops within one lease of learning it', async () => {
    const store = fakeStore(1);
    const points = 1000;
    const [busy, idle] = [0, 1].map(() => new RateLeases(store.add, points, 86_400, 25, 'p')) as [RateLeases, RateLeases];
    let allowed = 0;
    for (let i = 0; i < 1100; i++) if ((await decide(busy, 'k')).allowed) allowed++;
    expect(allowed).toBeGreaterThanOrEqual(points);
    // The idle instance starts from an empty view: it may admit at most one lease, then it knows.
    let late = 0;
    for (let i = 0; i < 100; i++) if ((await decide(idle, 'k')).allowed) late++;
    expect(allowed + late).toBeLessThanOrEqual(points + 2 * 25);
  });

  it('the store down: the per-process limiter still applies, and the store is asked again later', async () => {
    const store = fakeStore(1);
    store.failing = true;
    const leases = new RateLeases(store.add, 1000, 86_400, 10, 'p');
    let allowed = 0;
    for (let i = 0; i < 1200; i++) if ((await decide(leases, 'k')).allowed) allowed++;
    // The first lease went out before the failure was known; the rest is the process's own quota.
    expect(allowed).toBeGreaterThanOrEqual(1000);
    expect(allowed).toBeLessThanOrEqual(1000 + 10);
    const callsWhileDown = store.calls;
    expect(callsWhileDown).toBeLessThan(10);
    store.failing = false;
    await sleep(RETRY_MS + 50);
    await decide(leases, 'k');
    await sleep(20);
    expect(store.calls).toBeGreaterThan(callsWhileDown);
  });
});

describe('rate-limit leases on PostgreSQL (issue 16)', () => {
  /** Each instance's host app with a route limited to `points` per day, listening on a port. */
  async function hosts(points: number, shared: { exactBelow?: number; leaseShare?: number }) {
    const pg = await postgresInstances(3);
    closers.push(pg.close);
    const servers: Server[] = [];
    const urls: string[] = [];
    for (const auth of pg.instances) {
      const app = express();
      app.use(auth.routes());
      app.get('/limited', auth.authenticate(), auth.rateLimit({ points, duration: 86_400, shared }), (_req, res) => {
        res.json({ ok: true });
      });
      const server = createServer(app);
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      servers.push(server);
      urls.push(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    }
    closers.push(async () => {
      for (const s of servers) {
        s.closeAllConnections();
        await new Promise((r) => s.close(r));
      }
    });
    const c = await createClient(pg.instances[0]!);
    const app0 = express();
    app0.use(pg.instances[0]!.routes());
    const jwt = await accessToken(app0, c.clientId, c.secret);
    return { urls, jwt };
  }

  /** `total` GETs spread over the instances, `perInstance` in flight on each; the statuses. */
  async function burst(urls: string[], jwt: string, total: number, perInstance: number): Promise<number[]> {
    const statuses: number[] = [];
    let sent = 0;
    await Promise.all(
      urls.flatMap((url) =>
        Array.from({ length: perInstance }, async () => {
          while (sent < total) {
            sent++;
            const res = await fetch(`${url}/limited`, { headers: { authorization: `Bearer ${jwt}` } });
            await res.arrayBuffer();
            statuses.push(res.status);
          }
        }),
      ),
    );
    return statuses;
  }

  it('three instances (postgresInstances(3)) together allow at least the quota and at most quota + 3 × leaseMax', async () => {
    const points = 1000;
    const leaseShare = 0.05; // leaseMax = 50
    const { urls, jwt } = await hosts(points, { leaseShare });
    const day = Math.floor(Date.now() / 86_400_000);
    const statuses = await burst(urls, jwt, 1600, 8);
    if (Math.floor(Date.now() / 86_400_000) !== day) return; // crossed midnight UTC: two windows
    const ok = statuses.filter((s) => s === 200).length;
    expect(statuses.filter((s) => s !== 200 && s !== 429)).toEqual([]);
    expect(ok).toBeGreaterThanOrEqual(points);
    expect(ok).toBeLessThanOrEqual(points + 3 * points * leaseShare);
  });

  it('a quota below shared.exactBelow is counted exactly, per request', async () => {
    const { urls, jwt } = await hosts(100, { exactBelow: 1000 });
    const statuses = await burst(urls, jwt, 160, 4);
    expect(statuses.filter((s) => s === 200)).toHaveLength(100);
  });
});
