/**
 * Issue 13, item 5: expiry notices. `onEvent` receives `token.expiring` once per token per
 * threshold (`notifyBeforeExpiry`, default 7 days and 1 day), from a periodic sweep that claims
 * each notice in the store, so instances sharing a PostgreSQL database emit it exactly once.
 * `GET /apps?expiringWithin=SECONDS` lists the apps with a token expiring that soon; token views
 * mark `expiringSoon`; listings summarise each app's tokens.
 */
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../src/index.js';
import { CATALOGUE, Clock, accessToken, expectProblem, postgresInstances, setup, type FixtureOptions } from './helpers.js';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

const DAY = 86_400;
const bearer = (t: string) => ({ Authorization: `Bearer ${t}` });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Wait until `check` holds (the sweep runs on a timer), or fail after `ms`. */
async function eventually(check: () => boolean, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error('condition not reached in time');
    await sleep(20);
  }
}

function expiring(events: AuditEvent[]): AuditEvent[] {
  return events.filter((e) => e.type === 'token.expiring');
}

async function fixture(clock: Clock, more: FixtureOptions = {}) {
  const events: AuditEvent[] = [];
  const f = await setup({ onEvent: (e) => events.push(e), ...more, advanced: { now: clock.now, expirySweepInterval: 40, ...more.advanced } });
  closers.push(() => f.cleanup());
  return { f, events };
}

describe('issue 13 item 5: token.expiring notices', () => {
  it('once per token per threshold (7 days, then 1 day), with the deadline and the threshold; never for a token that lived less than the threshold', async () => {
    const clock = new Clock();
    const { f, events } = await fixture(clock);
    const month = await f.auth.apps.create({ tenantId: 'acme', name: 'monthly', scopes: ['notarization:read'], token: { name: 'ci', expiresIn: 30 * DAY } });
    const short = await f.auth.apps.create({ tenantId: 'acme', name: 'short', scopes: ['notarization:read'], token: { expiresIn: 12 * 3600 } });
    const forever = await f.auth.apps.create({ tenantId: 'acme', name: 'forever', scopes: ['notarization:read'], token: { expiresIn: undefined } });
    await sleep(150);
    expect(expiring(events)).toEqual([]);

    clock.advance(23 * DAY + 60); // 7 days minus a minute left
    await eventually(() => expiring(events).length === 1);
    const [week] = expiring(events);
    expect(week).toMatchObject({
      tenantId: 'acme',
      appId: month.app.id,
      tokenId: month.token.id,
      outcome: 'success',
      actorId: null,
      data: { name: 'ci', threshold: 7 * DAY, expiresAt: month.token.expirationDate },
    });
    await sleep(200); // more sweeps: nothing new
    expect(expiring(events)).toHaveLength(1);

    clock.advance(6 * DAY); // under a day left
    await eventually(() => expiring(events).length === 2);
    expect(expiring(events)[1]).toMatchObject({ tokenId: month.token.id, data: { threshold: DAY } });
    await sleep(200);
    expect(expiring(events)).toHaveLength(2);
    // The 12-hour token never crossed a threshold it lived through; the one without expiry never will.
    expect(expiring(events).map((e) => e.tokenId)).not.toContain(short.token.id);
    expect(expiring(events).map((e) => e.tokenId)).not.toContain(forever.token.id);
    // The audit log holds the notices too.
    const log = await f.auth.apps.events('acme', month.app.id);
    expect(log.items.filter((e) => e.type === 'token.expiring')).toHaveLength(2);
  });

  it('a token that first appears inside the narrow threshold gets only that notice; a deleted or regenerated one gets none', async () => {
    const clock = new Clock();
    const { f, events } = await fixture(clock);
    const a = await f.auth.apps.create({ tenantId: 'acme', name: 'a', scopes: ['notarization:read'], token: { expiresIn: 30 * DAY } });
    const b = await f.auth.apps.create({ tenantId: 'acme', name: 'b', scopes: ['notarization:read'], token: { expiresIn: 30 * DAY } });
    const c = await f.auth.apps.create({ tenantId: 'acme', name: 'c', scopes: ['notarization:read'], token: { expiresIn: 30 * DAY } });
    await f.auth.apps.deleteToken('acme', b.app.id, b.token.id);
    const regenerated = await f.auth.apps.regenerateToken('acme', c.app.id, c.token.id);
    clock.advance(29 * DAY + 3600); // jumped straight past the 7-day threshold to under a day
    await eventually(() => expiring(events).length >= 1);
    await sleep(200);
    // a: only the 1-day notice; b (deleted) and c's old value (regenerated, revoked): none.
    expect(expiring(events).find((e) => e.tokenId === a.token.id)!.data.threshold).toBe(DAY);
    expect(expiring(events).filter((e) => e.tokenId === a.token.id)).toHaveLength(1);
    expect(expiring(events).map((e) => e.tokenId)).not.toContain(b.token.id);
    expect(expiring(events).map((e) => e.tokenId)).not.toContain(c.token.id);
    // The successor is a token of its own, announced on its own schedule.
    expect(expiring(events).map((e) => e.tokenId)).toContain(regenerated.token.id);
  });

  it('notifyBeforeExpiry: custom thresholds; false disables the sweep; bad values → invalid_options naming the option', async () => {
    const clock = new Clock();
    const { f, events } = await fixture(clock, { notifyBeforeExpiry: [3600] });
    await f.auth.apps.create({ tenantId: 'acme', name: 'a', scopes: ['notarization:read'], token: { expiresIn: 2 * DAY } });
    clock.advance(2 * DAY - 1800);
    await eventually(() => expiring(events).length === 1);
    expect(expiring(events)[0]!.data.threshold).toBe(3600);

    const off = await fixture(clock, { notifyBeforeExpiry: false });
    await off.f.auth.apps.create({ tenantId: 'acme', name: 'a', scopes: ['notarization:read'], token: { expiresIn: 2 * DAY } });
    clock.advance(2 * DAY - 60);
    await sleep(200);
    expect(expiring(off.events)).toEqual([]);

    for (const [value, field] of [
      [[30], 'notifyBeforeExpiry[0]'],
      [[DAY, DAY], 'notifyBeforeExpiry'],
      ['7d', 'notifyBeforeExpiry'],
      [[90.5], 'notifyBeforeExpiry[0]'],
      [[400 * DAY], 'notifyBeforeExpiry[0]'],
    ] as const) {
      await expect(setup({ notifyBeforeExpiry: value as never })).rejects.toMatchObject({ code: 'invalid_options', field });
    }
  });

  it('exactly once across two instances on one PostgreSQL database, both sweeping', async () => {
    const clock = new Clock();
    const events: AuditEvent[] = [];
    const pg = await postgresInstances(2, { onEvent: (e) => events.push(e), advanced: { now: clock.now, expirySweepInterval: 25 } });
    closers.push(() => pg.close());
    const created = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        pg.instances[i % 2]!.apps.create({ tenantId: 'acme', name: `app ${i}`, scopes: ['notarization:read'], token: { expiresIn: 30 * DAY } }),
      ),
    );
    clock.advance(23 * DAY + 60);
    await eventually(() => expiring(events).length >= 20);
    await sleep(400); // many more sweeps of both instances
    const notices = expiring(events);
    expect(notices).toHaveLength(20);
    expect(new Set(notices.map((e) => e.tokenId))).toEqual(new Set(created.map((c) => c.token.id)));
    clock.advance(6 * DAY + 60);
    await eventually(() => expiring(events).length >= 40);
    await sleep(400);
    expect(expiring(events)).toHaveLength(40);
  });
});

describe('issue 13 item 5: GET /apps?expiringWithin, expiringSoon and tokenSummary', () => {
  it('lists only apps with a live token expiring within the window; the app view marks expiringSoon; the listing summarises tokens', async () => {
    const clock = new Clock();
    const { f } = await fixture(clock);
    const admin = await f.auth.apps.create({ tenantId: 'acme', name: 'admin', scopes: [...CATALOGUE], token: { expiresIn: 365 * DAY } });
    const jwt = await accessToken(f.app, admin.app.id, admin.value);
    clock.advance(1);
    const soon = await f.auth.apps.create({ tenantId: 'acme', name: 'soon', scopes: ['notarization:read'], token: { expiresIn: 3 * DAY } });
    clock.advance(1);
    await f.auth.apps.createToken('acme', soon.app.id, { expiresIn: 300 * DAY });
    clock.advance(1);
    await f.auth.apps.create({ tenantId: 'acme', name: 'later', scopes: ['notarization:read'], token: { expiresIn: 60 * DAY } });
    const other = await f.auth.apps.create({ tenantId: 'globex', name: 'other tenant', scopes: ['notarization:read'], token: { expiresIn: DAY } });

    const res = await request(f.app).get(`/apps?expiringWithin=${7 * DAY}`).set(bearer(jwt));
    expect(res.status, res.text).toBe(200);
    expect(res.body.items.map((a: { name: string }) => a.name)).toEqual(['soon']);
    expect(res.body.items[0].tokenSummary).toEqual({ active: 2, expiringSoon: 1, lastUsedDate: null });
    expect(JSON.stringify(res.body)).not.toContain(other.app.id);
    expect((await request(f.app).get(`/apps?expiringWithin=${90 * DAY}`).set(bearer(jwt))).body.items.map((a: { name: string }) => a.name)).toEqual(['soon', 'later']);

    const all = await request(f.app).get('/apps').set(bearer(jwt));
    expect(all.body.items.map((a: { name: string }) => a.name)).toEqual(['admin', 'soon', 'later']);
    expect(all.body.items[0].tokenSummary.lastUsedDate).not.toBeNull(); // the admin token was just used

    const detail = await request(f.app).get(`/apps/${soon.app.id}`).set(bearer(jwt));
    expect(detail.body.tokens.map((t: { expiringSoon: boolean }) => t.expiringSoon)).toEqual([true, false]);

    for (const bad of ['0', '-1', 'soon', '1.5', `${3650 * DAY + 1}`, '99999999999']) {
      expectProblem(await request(f.app).get(`/apps?expiringWithin=${bad}`).set(bearer(jwt)), 400, 'validation_failed', 'expiringWithin');
    }
  });

  it('paging with expiringWithin keeps the filter; a retiring token (grace period) does not make its app expiring', async () => {
    const clock = new Clock();
    const { f } = await fixture(clock);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const c = await f.auth.apps.create({ tenantId: 'acme', name: `app ${i}`, scopes: ['notarization:read'], token: { expiresIn: (i % 2 === 0 ? 2 : 40) * DAY } });
      ids.push(c.app.id);
      clock.advance(1);
    }
    const first = await f.auth.apps.list('acme', { limit: 2, expiringWithin: 7 * DAY });
    expect(first.items.map((a) => a.id)).toEqual([ids[0], ids[2]]);
    const rest = await f.auth.apps.list('acme', { limit: 2, expiringWithin: 7 * DAY, cursor: first.nextCursor! });
    expect(rest).toMatchObject({ items: [{ id: ids[4] }], nextCursor: null });

    const rotating = await f.auth.apps.create({ tenantId: 'acme', name: 'rotating', scopes: ['notarization:read'], token: { expiresIn: 40 * DAY } });
    await f.auth.apps.regenerateToken('acme', rotating.app.id, rotating.token.id, { gracePeriod: 3600 });
    const listed = await f.auth.apps.list('acme', { limit: 100, expiringWithin: 7 * DAY });
    expect(listed.items.map((a) => a.id)).not.toContain(rotating.app.id);
    const view = await f.auth.apps.get('acme', rotating.app.id);
    expect(view.tokens.find((t) => t.id === rotating.token.id)).toMatchObject({ status: 'retiring', expiringSoon: false });
  });
});
