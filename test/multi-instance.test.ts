/**
 * Several instances of one application on one real PostgreSQL database, each with its own pool,
 * its own LISTEN connection, its own revocation view and verification cache, and its own HTTP
 * server. What one instance revokes, the others enforce within a second (NOTIFY), well before
 * their periodic tombstone read (every 5 s here) could have told them; keys rotated on one are
 * used and accepted by the others; batched writes of one show in another's listings.
 */
import { performance } from 'node:perf_hooks';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createAppTokens, type AppTokens, type AppTokensOptions } from '../src/index.js';
import { createPostgresStore, type PostgresStore } from '../adapters/sql/index.js';
import { CATALOGUE, ISSUER, createClient, decodeJwt, listening, type Listening } from './helpers.js';
import { freshDatabase } from './postgres-server.js';

/** The target of every cross-instance revocation: refused everywhere within this many ms. */
const TARGET_MS = 1000;
/** Give up waiting for one refusal after this long (the lag is then recorded as this, and fails). */
const GIVE_UP_MS = 2500;

type Advanced = NonNullable<AppTokensOptions['advanced']>;

interface Instance extends Listening {
  name: string;
  auth: AppTokens;
  store: PostgresStore;
  connectionString: string;
}

async function startInstance(name: string, connectionString: string, advanced: Advanced = {}): Promise<Instance> {
  const store = createPostgresStore({ connectionString });
  const auth = createAppTokens({
    store,
    issuer: ISSUER,
    scopes: CATALOGUE,
    advanced: { revocationSyncInterval: 5000, lastUsedFlushInterval: 0, ...advanced },
  });
  await auth.ready();
  return { name, auth, store, connectionString, ...(await listening(auth, store)) };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** GET /stamps on an instance with a bearer credential; the status, and the challenge on a 401. */
async function stamps(instance: Instance, bearer: string): Promise<{ status: number; challenge: string | null }> {
  const res = await fetch(`${instance.url}/stamps`, { headers: { authorization: `Bearer ${bearer}` } });
  await res.arrayBuffer();
  return { status: res.status, challenge: res.headers.get('www-authenticate') };
}

/** client_credentials on an instance; the access token. */
async function mint(instance: Instance, clientId: string, secret: string): Promise<string> {
  const res = await request(instance.url)
    .post('/oauth/token')
    .auth(encodeURIComponent(clientId), encodeURIComponent(secret))
    .type('form')
    .send({ grant_type: 'client_credentials' });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.access_token as string;
}

/** Use a credential once on each instance (200 each), so that each has it in its verification cache. */
async function warm(instances: Instance[], bearer: string): Promise<void> {
  for (const instance of instances) expect((await stamps(instance, bearer)).status, instance.name).toBe(200);
}

/**
 * Poll GET /stamps on one instance every ~5 ms until it answers 401 `invalid_token`; ms since
 * `since` (performance.now()). A 200 keeps polling; anything else fails. Gives up after GIVE_UP_MS
 * and returns the elapsed time (which then fails the target).
 */
async function refusedAfter(instance: Instance, bearer: string, since: number): Promise<number> {
  for (;;) {
    const { status, challenge } = await stamps(instance, bearer);
    const elapsed = performance.now() - since;
    if (status === 401) {
      expect(challenge, `${instance.name}: WWW-Authenticate`).toContain('error="invalid_token"');
      return elapsed;
    }
    expect(status, `${instance.name}: still accepted or failing`).toBe(200);
    if (elapsed >= GIVE_UP_MS) return elapsed;
    await sleep(5);
  }
}

/** ms until every one of `bearers` is refused by every one of `instances`. */
async function lagUntilRefusedEverywhere(instances: Instance[], bearers: string[], since: number): Promise<number> {
  const lags = await Promise.all(instances.flatMap((i) => bearers.map((b) => refusedAfter(i, b, since))));
  return Math.max(...lags);
}

/** Nearest-rank percentile. */
function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function report(what: string, lags: number[]): { p50: number; p99: number } {
  const p50 = percentile(lags, 50);
  const p99 = percentile(lags, 99);
  console.log(
    `cross-instance revocation lag over ${lags.length} ${what}: p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, ` +
      `max ${Math.max(...lags).toFixed(1)} ms (target <= ${TARGET_MS} ms; periodic sync every 5000 ms)`,
  );
  return { p50, p99 };
}

describe('three instances on one PostgreSQL database: revocation', () => {
  let a: Instance;
  let b: Instance;
  let c: Instance;

  beforeAll(async () => {
    const connectionString = await freshDatabase(inject('postgresUrl'));
    a = await startInstance('A', connectionString);
    [b, c] = await Promise.all([startInstance('B', connectionString), startInstance('C', connectionString)]);
  });

  afterAll(async () => {
    await Promise.all([a, b, c].filter(Boolean).map((i) => i.close()));
  });

  it('deleting an app on one instance is enforced by the other two within 1 s (NOTIFY), p50/p99 reported', async () => {
    const clients = [];
    for (let i = 0; i < 20; i++) {
      const client = await createClient(a.auth);
      const jwt = await mint(a, client.clientId, client.secret);
      await warm([a, b, c], jwt);
      clients.push({ ...client, jwt });
    }
    const lags: number[] = [];
    for (const client of clients) {
      await a.auth.apps.delete(client.tenant, client.clientId);
      const since = performance.now();
      // The deleting instance itself: at once, through its own change feed.
      expect((await stamps(a, client.jwt)).status).toBe(401);
      lags.push(await lagUntilRefusedEverywhere([b, c], [client.jwt], since));
    }
    const { p99 } = report('app deletions', lags);
    expect(p99).toBeLessThanOrEqual(TARGET_MS);
  }, 90_000);

  it('deleting one API token on one instance kills it and its access tokens on the other two within 1 s; the sibling token lives', async () => {
    const lags: number[] = [];
    for (let i = 0; i < 10; i++) {
      const client = await createClient(a.auth);
      const sibling = await a.auth.apps.createToken(client.tenant, client.clientId, { name: 'sibling' });
      const doomedJwt = await mint(a, client.clientId, client.secret);
      const siblingJwt = await mint(a, client.clientId, sibling.value);
      // The API token itself as a bearer, the access token it minted, and the sibling's: all cached.
      for (const bearer of [client.secret, doomedJwt, siblingJwt]) await warm([b, c], bearer);

      await a.auth.apps.deleteToken(client.tenant, client.clientId, client.tokenId);
      const since = performance.now();
      lags.push(await lagUntilRefusedEverywhere([b, c], [doomedJwt, client.secret], since));
      // Only that token died: the app's other token and its access token still pass everywhere.
      for (const instance of [a, b, c]) {
        expect((await stamps(instance, siblingJwt)).status, instance.name).toBe(200);
        expect((await stamps(instance, sibling.value)).status, instance.name).toBe(200);
      }
    }
    const { p99 } = report('API-token deletions', lags);
    expect(p99).toBeLessThanOrEqual(TARGET_MS);
  }, 90_000);

  it('an access token revoked at POST /oauth/revoke on one instance is refused by the other two within 1 s; its siblings live', async () => {
    const lags: number[] = [];
    for (let i = 0; i < 10; i++) {
      const client = await createClient(a.auth);
      const revokedJwt = await mint(a, client.clientId, client.secret);
      const otherJwt = await mint(a, client.clientId, client.secret);
      for (const bearer of [revokedJwt, otherJwt]) await warm([b, c], bearer);

      const res = await request(a.url)
        .post('/oauth/revoke')
        .auth(encodeURIComponent(client.clientId), encodeURIComponent(client.secret))
        .type('form')
        .send({ token: revokedJwt });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const since = performance.now();
      expect((await stamps(a, revokedJwt)).status).toBe(401);
      lags.push(await lagUntilRefusedEverywhere([b, c], [revokedJwt], since));
      // Only that jti: another access token of the same client still passes everywhere.
      for (const instance of [a, b, c]) expect((await stamps(instance, otherJwt)).status, instance.name).toBe(200);
    }
    const { p99 } = report('access-token revocations', lags);
    expect(p99).toBeLessThanOrEqual(TARGET_MS);
  }, 90_000);

  describe('batched writes of one instance in the listings of another', () => {
    let admin: string;

    beforeAll(async () => {
      const owner = await createClient(a.auth, { scopes: ['apps:read', 'apps:write'] });
      admin = await mint(a, owner.clientId, owner.secret);
    });

    /** A's management API: the token's metadata and the app's audit log. */
    async function listingOnA(appId: string, tokenId: string) {
      const tokens = await request(a.url).get(`/apps/${appId}/tokens`).set('Authorization', `Bearer ${admin}`);
      expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
      const events = await request(a.url).get(`/apps/${appId}/events?limit=100`).set('Authorization', `Bearer ${admin}`);
      expect(events.status, JSON.stringify(events.body)).toBe(200);
      const token = (tokens.body.items as Array<{ id: string; lastUsedDate: string | null }>).find((t) => t.id === tokenId);
      expect(token, 'the token in A’s listing').toBeDefined();
      return {
        lastUsedDate: token!.lastUsedDate,
        events: events.body.items as Array<{ type: string; tokenId: string | null; data: Record<string, unknown> }>,
      };
    }

    it('lastUsedDate and audit events batched on another instance appear in A’s management listing once it flushes on close, not before', async () => {
      const d = await startInstance('D', a.connectionString, {
        eventFlushInterval: 0,
      });
      try {
        const client = await createClient(a.auth);
        const jwt = await mint(d, client.clientId, client.secret); // a use of the API token, and an audit event, on D
        const { jti } = decodeJwt(jwt).payload;
        expect((await stamps(d, client.secret)).status).toBe(200); // another use, as a bearer

        const before = await listingOnA(client.clientId, client.tokenId);
        expect(before.lastUsedDate, 'nothing written per request').toBeNull();
        expect(before.events.some((e) => e.data.jti === jti), 'events are batched').toBe(false);

        const closedAt = Date.now();
        await d.close(); // flushes lastUsedDate and the audit events
        const after = await listingOnA(client.clientId, client.tokenId);
        expect(after.lastUsedDate).not.toBeNull();
        expect(Math.abs(Date.parse(after.lastUsedDate!) - closedAt)).toBeLessThan(10_000);
        const issued = after.events.find((e) => e.type === 'access_token.issued' && e.data.jti === jti);
        expect(issued, JSON.stringify(after.events)).toBeDefined();
        expect(issued!.tokenId).toBe(client.tokenId);
      } finally {
        await d.close();
      }
    });

    it('lastUsedDate and audit events of another instance appear in A’s listing on that instance’s flush interval, without a close', async () => {
      const e = await startInstance('E', a.connectionString, { lastUsedFlushInterval: 100, eventFlushInterval: 100 });
      try {
        const client = await createClient(a.auth);
        const jwt = await mint(e, client.clientId, client.secret);
        const { jti } = decodeJwt(jwt).payload;
        const started = performance.now();
        let seen: Awaited<ReturnType<typeof listingOnA>> | undefined;
        while (performance.now() - started < 5000) {
          const listing = await listingOnA(client.clientId, client.tokenId);
          if (listing.lastUsedDate !== null && listing.events.some((x) => x.type === 'access_token.issued' && x.data.jti === jti)) {
            seen = listing;
            break;
          }
          await sleep(50);
        }
        expect(seen, 'lastUsedDate and the access_token.issued event in A’s listing within 5 s').toBeDefined();
      } finally {
        await e.close();
      }
    });
  });
});

describe('three instances on one PostgreSQL database: signing keys', () => {
  let a: Instance;
  let b: Instance;
  let c: Instance;

  beforeAll(async () => {
    const connectionString = await freshDatabase(inject('postgresUrl'));
    // Started together, as a deployment starts its replicas: they must still agree on one key.
    const start = (name: string) => startInstance(name, connectionString, { keyActivationDelay: 0, keyReloadInterval: 200 });
    [a, b, c] = await Promise.all([start('A'), start('B'), start('C')]);
  });

  afterAll(async () => {
    await Promise.all([a, b, c].filter(Boolean).map((i) => i.close()));
  });

  async function jwks(instance: Instance): Promise<Array<{ kid: string }>> {
    const res = await request(instance.url).get('/.well-known/jwks.json');
    expect(res.status).toBe(200);
    return res.body.keys as Array<{ kid: string }>;
  }

  it('instances started together publish the same one-key JWKS, and a token minted on B verifies on C', async () => {
    const [ka, kb, kc] = await Promise.all([a, b, c].map(jwks));
    expect(ka).toHaveLength(1);
    expect(kb).toEqual(ka);
    expect(kc).toEqual(ka);

    const client = await createClient(a.auth);
    const jwt = await mint(b, client.clientId, client.secret);
    expect(decodeJwt(jwt).header.kid).toBe(ka![0]!.kid);
    expect((await stamps(c, jwt)).status).toBe(200);
    expect((await stamps(a, jwt)).status).toBe(200);
  });

  it('a key rotated on A signs on B and is accepted by C within 1 s; tokens of the old key keep verifying everywhere', async () => {
    const client = await createClient(a.auth);
    const [oldKey] = await jwks(a);
    const oldJwt = await mint(b, client.clientId, client.secret);
    expect(decodeJwt(oldJwt).header.kid).toBe(oldKey!.kid);

    const rotated = await a.auth.rotateKeys();
    const since = performance.now();
    expect(rotated.retired).toEqual([oldKey!.kid]);

    let newJwt: string | undefined;
    while (performance.now() - since < 3000) {
      const jwt = await mint(b, client.clientId, client.secret);
      if (decodeJwt(jwt).header.kid === rotated.kid) {
        newJwt = jwt;
        break;
      }
      await sleep(20);
    }
    const signedAfter = performance.now() - since;
    expect(newJwt, 'B signs with the rotated-in key').toBeDefined();
    expect((await stamps(c, newJwt!)).status, 'C accepts it').toBe(200);
    const acceptedAfter = performance.now() - since;
    console.log(`key rotation on A: B signs with the new kid after ${signedAfter.toFixed(0)} ms, C accepts it after ${acceptedAfter.toFixed(0)} ms`);
    expect(acceptedAfter).toBeLessThanOrEqual(1000);

    // Every instance publishes both keys; the token of the old key still passes on each.
    await sleep(400); // two reload ticks
    for (const instance of [a, b, c]) {
      expect((await jwks(instance)).map((k) => k.kid).sort(), instance.name).toEqual([oldKey!.kid, rotated.kid].sort());
      expect((await stamps(instance, oldJwt)).status, instance.name).toBe(200);
      expect((await stamps(instance, newJwt!)).status, instance.name).toBe(200);
    }
  });
});

