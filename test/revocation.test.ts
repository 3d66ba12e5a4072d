import request from 'supertest';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createAppTokens } from '../src/index.js';
import { createSqliteStore } from '../adapters/sql/index.js';
import { CATALOGUE, ISSUER, accessToken, createClient, expectBearerFailure, hostApp, setup, type Fixture } from './helpers.js';
import { join } from 'node:path';

let f: Fixture;
beforeEach(async () => {
  f = await setup();
});
afterEach(async () => {
  await f.cleanup();
});

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

async function warm(app: Parameters<typeof request>[0], token: string): Promise<void> {
  // A first request puts the token in the verification cache: revocation must beat the cache.
  expect((await request(app).get('/stamps').set(bearer(token))).status).toBe(200);
}

describe('revocation within one process is immediate', () => {
  it('deleting an app kills its cached access tokens and its API tokens at once', async () => {
    const c = await createClient(f.auth);
    const jwt = await accessToken(f.app, c.clientId, c.secret);
    await warm(f.app, jwt);
    await warm(f.app, c.secret);
    await f.auth.apps.delete(c.tenant, c.clientId);
    expectBearerFailure(await request(f.app).get('/stamps').set(bearer(jwt)), 401, 'invalid_token');
    expectBearerFailure(await request(f.app).get('/stamps').set(bearer(c.secret)), 401, 'invalid_token');
  });

  it('deleting an API token kills the access tokens it minted, not those of its siblings', async () => {
    const c = await createClient(f.auth);
    const sibling = await f.auth.apps.createToken(c.tenant, c.clientId, { name: 'sibling' });
    const doomed = await accessToken(f.app, c.clientId, c.secret);
    const survivor = await accessToken(f.app, c.clientId, sibling.value);
    await warm(f.app, doomed);
    await warm(f.app, survivor);
    await f.auth.apps.deleteToken(c.tenant, c.clientId, c.tokenId);
    expectBearerFailure(await request(f.app).get('/stamps').set(bearer(doomed)), 401, 'invalid_token');
    expectBearerFailure(await request(f.app).get('/stamps').set(bearer(c.secret)), 401, 'invalid_token');
    expect((await request(f.app).get('/stamps').set(bearer(survivor))).status).toBe(200);
    expect((await request(f.app).get('/stamps').set(bearer(sibling.value))).status).toBe(200);
  });

  it("deleting another tenant's app is not_found and kills nothing", async () => {
    const c = await createClient(f.auth, { tenant: 'acme' });
    const jwt = await accessToken(f.app, c.clientId, c.secret);
    await expect(f.auth.apps.delete('globex', c.clientId)).rejects.toMatchObject({ code: 'not_found' });
    await expect(f.auth.apps.deleteToken('globex', c.clientId, c.tokenId)).rejects.toMatchObject({ code: 'not_found' });
    expect((await request(f.app).get('/stamps').set(bearer(jwt))).status).toBe(200);
  });
});

describe('revocation survives restarts and reaches other instances', () => {
  it('tombstones are loaded on start: a deleted app stays dead after a restart', async () => {
    const c = await createClient(f.auth);
    const jwt = await accessToken(f.app, c.clientId, c.secret);
    await f.auth.apps.delete(c.tenant, c.clientId);
    const g = await f.restart();
    f = g;
    expectBearerFailure(await request(g.app).get('/stamps').set(bearer(jwt)), 401, 'invalid_token');
  });

  it('a deleted API token stays dead after a restart', async () => {
    const c = await createClient(f.auth);
    const jwt = await accessToken(f.app, c.clientId, c.secret);
    await f.auth.apps.deleteToken(c.tenant, c.clientId, c.tokenId);
    const g = await f.restart();
    f = g;
    expectBearerFailure(await request(g.app).get('/stamps').set(bearer(jwt)), 401, 'invalid_token');
  });

  it('another instance on the same database refuses a deleted app within its sync interval', async () => {
    const other = createAppTokens({
      store: createSqliteStore({ filename: join(f.dir, 'tokens.db') }),
      issuer: ISSUER,
      scopes: CATALOGUE,
      advanced: { revocationSyncInterval: 100, lastUsedFlushInterval: 0 },
    });
    await other.ready();
    const otherApp = hostApp(other);
    try {
      const c = await createClient(f.auth);
      const jwt = await accessToken(f.app, c.clientId, c.secret);
      await warm(otherApp, jwt); // signed on instance 1, verified and cached on instance 2
      const deletedAt = Date.now();
      await f.auth.apps.delete(c.tenant, c.clientId);
      let status = 200;
      while (status === 200 && Date.now() - deletedAt < 3000) {
        await new Promise((r) => setTimeout(r, 25));
        status = (await request(otherApp).get('/stamps').set(bearer(jwt))).status;
      }
      expect(status).toBe(401);
      // Bounded staleness: a few sync intervals, far below the token lifetime.
      expect(Date.now() - deletedAt).toBeLessThan(2000);
    } finally {
      await other.close();
    }
  });

  it('tombstones expire once every token they could kill has expired', async () => {
    let now = Date.now();
    const g = await f.restart({ accessTokenTtl: 60, advanced: { now: () => new Date(now) } });
    f = g;
    const c = await createClient(g.auth);
    await g.auth.apps.delete(c.tenant, c.clientId);
    expect((await g.store.listTombstones(new Date(now))).map((t) => t.id)).toContain(c.clientId);
    now += 10 * 60_000;
    expect((await g.store.listTombstones(new Date(now))).map((t) => t.id)).not.toContain(c.clientId);
  });
});
