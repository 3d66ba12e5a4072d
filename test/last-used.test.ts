import request from 'supertest';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { accessToken, createClient, setup, type Fixture } from './helpers.js';

let f: Fixture;
beforeEach(async () => {
  f = await setup();
});
afterEach(async () => {
  await f.cleanup();
});

describe('lastUsedDate', () => {
  it('is kept current by batched writes, not one write per request', async () => {
    const c = await createClient(f.auth);
    const touch = vi.spyOn(f.store, 'touchApiTokens');
    const before = await f.store.getApiToken(c.tenant, c.tokenId);
    expect(before?.lastUsedAt).toBeNull();

    const jwt = await accessToken(f.app, c.clientId, c.secret); // a use at the token endpoint
    for (let i = 0; i < 5; i++) {
      expect((await request(f.app).get('/stamps').set('Authorization', `Bearer ${c.secret}`)).status).toBe(200);
    }
    expect((await request(f.app).get('/stamps').set('Authorization', `Bearer ${jwt}`)).status).toBe(200);
    expect(touch).not.toHaveBeenCalled(); // nothing written per request

    await f.auth.close(); // flushes
    expect(touch).toHaveBeenCalledTimes(1);
    const after = await f.store.getApiToken(c.tenant, c.tokenId);
    expect(after?.lastUsedAt).toBeInstanceOf(Date);
    expect(Date.now() - after!.lastUsedAt!.getTime()).toBeLessThan(60_000);
  });

  it('is flushed on the configured interval', async () => {
    const g = await f.restart({ advanced: { lastUsedFlushInterval: 50 } });
    f = g;
    const c = await createClient(g.auth);
    await accessToken(g.app, c.clientId, c.secret);
    await vi.waitFor(
      async () => {
        expect((await g.store.getApiToken(c.tenant, c.tokenId))?.lastUsedAt).toBeInstanceOf(Date);
      },
      { timeout: 2000, interval: 25 },
    );
  });

  it('a failed flush keeps the uses for the next one', async () => {
    const c = await createClient(f.auth);
    await accessToken(f.app, c.clientId, c.secret);
    const touch = vi.spyOn(f.store, 'touchApiTokens').mockRejectedValueOnce(new Error('database is down'));
    await expect(f.auth.close()).rejects.toThrow('database is down');
    touch.mockRestore();
    await f.auth.close();
    expect((await f.store.getApiToken(c.tenant, c.tokenId))?.lastUsedAt).toBeInstanceOf(Date);
  });
});
