/**
 * Issue 13, item 4: rotation with a grace period. `POST /apps/:id/tokens/:tokenId/regenerate` with
 * `{gracePeriod}`: the old value keeps working (token endpoint, bearer; never refresh: issue 21 item 1) until the deadline,
 * listed as `retiring`, then dies on time on every instance with the access tokens it minted.
 */
import request from 'supertest';
import type { Express } from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import type { AppTokens } from '../src/index.js';
import { CATALOGUE, accessToken, expectOAuthError, expectProblem, setup, tokenRequest, Clock, postgresInstances, type Fixture } from './helpers.js';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

const bearer = (t: string) => ({ Authorization: `Bearer ${t}` });

async function fixture(clock: Clock): Promise<{ f: Fixture; admin: string; target: Awaited<ReturnType<AppTokens['apps']['create']>> }> {
  const f = await setup({ advanced: { now: clock.now } });
  closers.push(() => f.cleanup());
  const root = await f.auth.apps.create({ tenantId: 'acme', name: 'admin', scopes: [...CATALOGUE] });
  const target = await f.auth.apps.create({ tenantId: 'acme', name: 'rotating', scopes: ['notarization:read'], token: { expiresIn: 30 * 86_400 } });
  return { f, admin: await accessToken(f.app, root.app.id, root.value), target };
}

function regenerate(app: Express, admin: string, appId: string, tokenId: string, body?: object) {
  const t = request(app).post(`/apps/${appId}/tokens/${tokenId}/regenerate`).set(bearer(admin));
  return body === undefined ? t : t.send(body);
}

describe('issue 13 item 4: regenerate with a grace period', () => {
  it('the old value keeps working until the deadline, listed as retiring; then it and its access tokens die', async () => {
    const clock = new Clock();
    const { f, admin, target } = await fixture(clock);
    const appId = target.app.id;
    const oldJwt = await accessToken(f.app, appId, target.value);
    expect((await request(f.app).get('/stamps').set(bearer(target.value))).status).toBe(200); // cached as a bearer
    const res = await regenerate(f.app, admin, appId, target.token.id, { gracePeriod: 60 });
    expect(res.status, res.text).toBe(200);
    const fresh = res.body.value as string;
    // Both values work during the grace period, at every door.
    expect((await tokenRequest(f.app, appId, target.value)).status).toBe(200);
    expect((await tokenRequest(f.app, appId, fresh)).status).toBe(200);
    expect((await request(f.app).get('/stamps').set(bearer(target.value))).status).toBe(200);
    expect((await request(f.app).get('/stamps').set(bearer(oldJwt))).status).toBe(200);
    const listed = await request(f.app).get(`/apps/${appId}/tokens`).set(bearer(admin));
    const old = listed.body.items.find((t: { id: string }) => t.id === target.token.id);
    expect(old).toMatchObject({ status: 'retiring', expirationDate: new Date(clock.t + 60_000).toISOString() });
    expect(listed.body.items.find((t: { id: string }) => t.id === res.body.token.id)).toMatchObject({ status: 'active' });
    // An access token minted from the old value during the grace period never outlives it.
    const graceJwt = await accessToken(f.app, appId, target.value);
    expect(JSON.parse(Buffer.from(graceJwt.split('.')[1]!, 'base64url').toString()).exp).toBeLessThanOrEqual(Math.floor(clock.t / 1000) + 60);

    clock.advance(61);
    expect((await tokenRequest(f.app, appId, target.value)).status).toBe(401);
    expect((await request(f.app).get('/stamps').set(bearer(target.value))).status).toBe(401);
    expect((await request(f.app).get('/stamps').set(bearer(graceJwt))).status).toBe(401);
    // The access token minted before the regeneration lives an hour by its own exp: it dies now too.
    expect((await request(f.app).get('/stamps').set(bearer(oldJwt))).status).toBe(401);
    expect((await tokenRequest(f.app, appId, fresh)).status).toBe(200);
    // Retired: no longer listed; the regeneration is audited with the grace period.
    const after = await request(f.app).get(`/apps/${appId}/tokens`).set(bearer(admin));
    expect(after.body.items.map((t: { id: string }) => t.id)).toEqual([res.body.token.id]);
    const events = await f.auth.apps.events('acme', appId);
    expect(events.items.find((e) => e.type === 'token.regenerated')?.data).toMatchObject({ previousTokenId: target.token.id, gracePeriod: 60 });
  });

  it('without gracePeriod (or 0) the old value dies at once, as before', async () => {
    const clock = new Clock();
    const { f, admin, target } = await fixture(clock);
    expect((await regenerate(f.app, admin, target.app.id, target.token.id, { gracePeriod: 0 })).status).toBe(200);
    expect((await tokenRequest(f.app, target.app.id, target.value)).status).toBe(401);
  });

  it('gracePeriod out of range or not a whole number → 400 naming gracePeriod, nothing regenerated', async () => {
    const clock = new Clock();
    const { f, admin, target } = await fixture(clock);
    for (const gracePeriod of [-1, 86_401, 1.5, '60', null]) {
      const res = await regenerate(f.app, admin, target.app.id, target.token.id, { gracePeriod });
      expectProblem(res, 400, 'validation_failed', 'gracePeriod');
    }
    await expect(f.auth.apps.regenerateToken('acme', target.app.id, target.token.id, { gracePeriod: 86_401 })).rejects.toMatchObject({
      field: 'gracePeriod',
    });
    expect((await tokenRequest(f.app, target.app.id, target.value)).status).toBe(200);
  });

  it('RFC 9700 §4.14.2: a retiring token can be neither regenerated again (409 conflict) nor refreshed (400 invalid_grant saying it is retiring); it keeps working until the deadline', async () => {
    const clock = new Clock();
    const { f, admin, target } = await fixture(clock);
    const regenerated = await regenerate(f.app, admin, target.app.id, target.token.id, { gracePeriod: 600 });
    expect(regenerated.status).toBe(200);
    const conflict = expectProblem(await regenerate(f.app, admin, target.app.id, target.token.id, { gracePeriod: 600 }), 409, 'conflict', 'tokenId');
    expect(conflict.detail).toContain('retiring');
    const refreshed = await request(f.app)
      .post('/tokens/refresh')
      .send({ client_id: target.app.id, grant_type: 'token-exchange', refresh_token: target.value, scope: 'openid' });
    expectOAuthError(refreshed, 400, 'invalid_grant');
    expect(refreshed.body.error_description).toContain('retiring');
    // Refused, not consumed: the old value still works until its deadline, the successor as well.
    expect((await tokenRequest(f.app, target.app.id, target.value)).status).toBe(200);
    expect((await tokenRequest(f.app, target.app.id, regenerated.body.value)).status).toBe(200);
    clock.advance(601);
    expect((await tokenRequest(f.app, target.app.id, target.value)).status).toBe(401);
  });

  it('deleting a retiring token kills it and its access tokens at once, also after a restart (the tombstones merge to the earlier time)', async () => {
    const clock = new Clock();
    const { f, admin, target } = await fixture(clock);
    const jwt = await accessToken(f.app, target.app.id, target.value);
    expect((await regenerate(f.app, admin, target.app.id, target.token.id, { gracePeriod: 3600 })).status).toBe(200);
    expect((await request(f.app).delete(`/apps/${target.app.id}/tokens/${target.token.id}`).set(bearer(admin))).status).toBe(204);
    expect((await tokenRequest(f.app, target.app.id, target.value)).status).toBe(401);
    expect((await request(f.app).get('/stamps').set(bearer(jwt))).status).toBe(401);
    const restarted = await f.restart({ advanced: { now: clock.now } });
    closers.splice(0, 1, () => restarted.cleanup());
    expect((await request(restarted.app).get('/stamps').set(bearer(jwt))).status).toBe(401);
  });

  it('two instances on one PostgreSQL database: the old value works on both until the deadline, and dies on both on time', async () => {
    const clock = new Clock();
    const pg = await postgresInstances(2, { advanced: { now: clock.now } });
    closers.push(pg.close);
    const { instances } = pg;
    const [a, b] = pg.apps as [Express, Express];
    const target = await instances[0]!.apps.create({ tenantId: 'acme', name: 'rotating', scopes: ['notarization:read'] });
    const jwtOnB = await accessToken(b, target.app.id, target.value);
    expect((await request(b).get('/stamps').set(bearer(target.value))).status).toBe(200);
    await instances[0]!.apps.regenerateToken('acme', target.app.id, target.token.id, { gracePeriod: 30 });
    clock.advance(29);
    expect((await tokenRequest(b, target.app.id, target.value)).status).toBe(200);
    expect((await request(b).get('/stamps').set(bearer(jwtOnB))).status).toBe(200);
    clock.advance(2);
    for (const app of [a, b]) {
      expect((await tokenRequest(app, target.app.id, target.value)).status).toBe(401);
      expect((await request(app).get('/stamps').set(bearer(target.value))).status).toBe(401);
    }
    // The access token minted on B before the regeneration (its exp an hour away) dies on B on time:
    // A's tombstone, effective at the deadline, reached B through LISTEN/NOTIFY when it was written.
    expect((await request(b).get('/stamps').set(bearer(jwtOnB))).status).toBe(401);
    expect((await request(a).get('/stamps').set(bearer(jwtOnB))).status).toBe(401);
  });
});
