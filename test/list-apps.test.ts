/**
 * `GET /apps` search, filters, sort and total, `auth.apps.list`, and `GET /apps/:id/events?type=`
 * (issue 25 item 3, the wave-3 contract), over HTTP against the real routers on a real SQLite file.
 * Each adapter's side (every filter and sort, cursors per sort) is pinned by `test/store-contract.ts`.
 */
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { accessToken, createClient, expectProblem, setup, type Fixture } from './helpers.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function fixture(options: Parameters<typeof setup>[0] = {}): Promise<Fixture & { admin: string; get: (path: string, token?: string) => request.Test }> {
  const f = await setup({ ...options });
  f.app.set('trust proxy', true);
  cleanups.push(() => f.cleanup());
  const admin = await createClient(f.auth, { scopes: ['apps:read', 'apps:write', 'notarization:*', 'storage:*'] });
  const token = await accessToken(f.app, admin.clientId, admin.secret);
  const get = (path: string, t = token) => request(f.app).get(path).set('Authorization', `Bearer ${t}`);
  return Object.assign(f, { admin: admin.clientId, get });
}

/** Four apps of acme (besides the admin), one of another tenant. */
async function seed(f: Fixture): Promise<Record<string, string>> {
  const ids: Record<string, string> = {};
  for (const [name, scopes] of [
    ['Billing sync', ['notarization:read']],
    ['billing export', ['storage:read']],
    ['Stamps', ['notarization:read', 'notarization:write']],
    ['Archive', ['storage:read', 'notarization:read']],
  ] as const) {
    ids[name] = (await f.auth.apps.create({ tenantId: 'acme', name, scopes: [...scopes] })).app.id;
    // Distinct creation instants: two apps made in one millisecond have no creation order to sort by.
    await new Promise((resolve) => setTimeout(resolve, 3));
  }
  await f.auth.apps.create({ tenantId: 'globex', name: 'Billing sync', scopes: ['notarization:read'] });
  return ids;
}

describe('GET /apps: search, filters, sort and a total count (issue 25)', () => {
  it('answers {items, nextCursor, total}; sort=-created is newest first; the cursor walks the same order', async () => {
    const f = await fixture();
    const ids = await seed(f);
    const p1 = await f.get('/apps?sort=-created&limit=3');
    expect(p1.status, p1.text).toBe(200);
    expect(p1.body.total).toBe(5);
    expect(p1.body.items.map((a: { id: string }) => a.id)).toEqual([ids['Archive'], ids['Stamps'], ids['billing export']]);
    const p2 = await f.get(`/apps?sort=-created&limit=3&cursor=${p1.body.nextCursor}`);
    expect(p2.body).toMatchObject({ total: 5, nextCursor: null });
    expect(p2.body.items.map((a: { id: string }) => a.id)).toEqual([ids['Billing sync'], f.admin]);
    // The default stays oldest first, for programmatic callers paging as before.
    expect((await f.get('/apps')).body.items[0].id).toBe(f.admin);
  });

  it('search matches the name (ASCII case-insensitively) or a client id prefix; scope and sort=name combine; never another tenant', async () => {
    const f = await fixture();
    const ids = await seed(f);
    const billing = await f.get('/apps?search=BILLING&sort=name');
    expect(billing.body.items.map((a: { name: string }) => a.name)).toEqual(['billing export', 'Billing sync']);
    expect(billing.body.total).toBe(2);
    const byId = await f.get(`/apps?search=${encodeURIComponent(ids['Stamps']!.slice(0, 12))}`);
    expect(byId.body.items.map((a: { id: string }) => a.id)).toEqual([ids['Stamps']]);
    const storage = await f.get('/apps?scope=storage:read&sort=-name');
    expect(storage.body.items.map((a: { name: string }) => a.name)).toEqual(['billing export', 'Archive']);
    expect((await f.get('/apps?scope=notarization:read&search=billing')).body.total).toBe(1);
  });

  it('unusedFor and sort=-lastUsed follow the last use of the tokens, uses not yet flushed included', async () => {
    const f = await fixture();
    const used = await createClient(f.auth, { scopes: ['notarization:read'] });
    await accessToken(f.app, used.clientId, used.secret);
    const byUse = await f.get('/apps?sort=-lastUsed');
    // Both were used (the admin to get its token); the most recent first, the never-used last.
    expect(byUse.body.items.map((a: { id: string }) => a.id).slice(0, 2)).toEqual([used.clientId, f.admin]);
    expect(byUse.body.items[0].tokenSummary.lastUsedDate).toEqual(expect.any(String));
    // Nothing is older than a day in this test: no app is unused for a day.
    expect((await f.get('/apps?unusedFor=1')).body).toEqual({ items: [], nextCursor: null, total: 0 });
  });

  it('sort=-usage: the most requests of the last 30 days first, the same count each item shows as usage.requests30d', async () => {
    const f = await fixture();
    const busy = await createClient(f.auth, { scopes: ['notarization:read'] });
    const some = await createClient(f.auth, { scopes: ['notarization:read'] });
    const idle = await createClient(f.auth, { scopes: ['notarization:read'] });
    for (let i = 0; i < 4; i++) await accessToken(f.app, busy.clientId, busy.secret);
    await accessToken(f.app, some.clientId, some.secret);
    // A wrong secret counts as a request (a client-auth failure) of that app too.
    await request(f.app).post('/oauth/token').auth(some.clientId, 'eat_wrong').type('form').send({ grant_type: 'client_credentials' });
    const res = await f.get('/apps?sort=-usage');
    expect(res.status, res.text).toBe(200);
    const items = res.body.items as Array<{ id: string; usage: { requests30d: number } }>;
    expect(items.map((a) => a.id)).toEqual([busy.clientId, some.clientId, f.admin, idle.clientId]);
    expect(items.map((a) => a.usage.requests30d)).toEqual([4, 2, 1, 0]);
    const asc = await f.get('/apps?sort=usage&limit=2');
    expect(asc.body.items.map((a: { id: string }) => a.id)).toEqual([idle.clientId, f.admin]);
    const next = await f.get(`/apps?sort=usage&limit=2&cursor=${asc.body.nextCursor}`);
    expect(next.body.items.map((a: { id: string }) => a.id)).toEqual([some.clientId, busy.clientId]);
    expectProblem(await f.get(`/apps?sort=-usage&cursor=${asc.body.nextCursor}`), 400, 'validation_failed', 'cursor');
  });

  it('expiringSoon=true lists the apps with a token in the expiring-soon window', async () => {
    const f = await fixture();
    const soon = await createClient(f.auth, { scopes: ['notarization:read'], expiresIn: 3600 });
    await createClient(f.auth, { scopes: ['notarization:read'] });
    const res = await f.get('/apps?expiringSoon=true');
    expect(res.body.items.map((a: { id: string }) => a.id)).toEqual([soon.clientId]);
    expect(res.body.items[0].tokenSummary.expiringSoon).toBe(1);
    expect((await f.get('/apps?expiringSoon=false')).body.total).toBe(3);
  });

  it('locked=true lists the apps whose lockout throttles a source now; total is null (filtered per page)', async () => {
    const f = await fixture({ clientLockout: { attempts: 3, window: 300, duration: 900 } });
    const victim = await createClient(f.auth, { scopes: ['notarization:read'] });
    await createClient(f.auth, { scopes: ['notarization:read'] });
    expect((await f.get('/apps?locked=true')).body).toEqual({ items: [], nextCursor: null, total: null });
    for (let i = 0; i < 3; i++) {
      await request(f.app).post('/oauth/token').set('X-Forwarded-For', '203.0.113.9').auth(victim.clientId, 'eat_guess').type('form').send({ grant_type: 'client_credentials' });
    }
    const locked = await f.get('/apps?locked=true');
    expect(locked.body.items.map((a: { id: string }) => a.id)).toEqual([victim.clientId]);
    expect(locked.body.total).toBeNull();
    // A short page still hands over the cursor, so that the walk goes on.
    const paged = await f.get('/apps?locked=true&limit=1');
    expect(paged.body.items).toEqual([]);
    expect(paged.body.nextCursor).toEqual(expect.any(String));
  });

  it('each bad value is a 400 problem naming its field, never a 5xx', async () => {
    const f = await fixture();
    const cases: Array<[string, string]> = [
      ['sort=usage2', 'sort'],
      ['sort=', 'sort'],
      ['sort=name&sort=-name', 'sort'],
      ['search=', 'search'],
      [`search=${'x'.repeat(201)}`, 'search'],
      ['search=a&search=b', 'search'],
      [`search=${encodeURIComponent('a\u202eb')}`, 'search'],
      ['scope=has%20space', 'scope'],
      ['scope=a"b', 'scope'],
      ['scope=a&scope=b', 'scope'],
      ['role=', 'role'],
      ['locked=yes', 'locked'],
      ['expiringSoon=1', 'expiringSoon'],
      ['unusedFor=0', 'unusedFor'],
      ['unusedFor=3651', 'unusedFor'],
      ['unusedFor=-1', 'unusedFor'],
      ['unusedFor=1.5', 'unusedFor'],
      ['orderBy=name', 'orderBy'],
    ];
    for (const [query, field] of cases) {
      const res = await f.get(`/apps?${query}`);
      expectProblem(res, 400, 'validation_failed', field);
    }
  });

  it("a cursor from another sort is a 400 naming cursor (it would skip or repeat apps)", async () => {
    const f = await fixture();
    await seed(f);
    const byName = await f.get('/apps?sort=name&limit=2');
    expectProblem(await f.get(`/apps?sort=-name&limit=2&cursor=${byName.body.nextCursor}`), 400, 'validation_failed', 'cursor');
    expectProblem(await f.get(`/apps?limit=2&cursor=${byName.body.nextCursor}`), 400, 'validation_failed', 'cursor');
    const byCreated = await f.get('/apps?limit=2');
    expectProblem(await f.get(`/apps?sort=lastUsed&cursor=${byCreated.body.nextCursor}`), 400, 'validation_failed', 'cursor');
  });

  it('needs apps:read, and filters reveal nothing of another tenant (a client id prefix of theirs finds nothing)', async () => {
    const f = await fixture();
    await seed(f);
    const theirs = (await f.auth.apps.list('globex')).items[0]!;
    expect((await f.get(`/apps?search=${theirs.id}`)).body).toEqual({ items: [], nextCursor: null, total: 0 });
    const plain = await createClient(f.auth, { scopes: ['notarization:read'] });
    const token = await accessToken(f.app, plain.clientId, plain.secret);
    expect((await f.get('/apps?search=Billing', token)).status).toBe(403);
    expect((await request(f.app).get('/apps?search=Billing')).status).toBe(401);
  });

  it('auth.apps.list takes the same options and answers the same total', async () => {
    const f = await fixture();
    await seed(f);
    const page = await f.auth.apps.list('acme', { search: 'billing', sort: '-name', limit: 1 });
    expect(page.items.map((a) => a.name)).toEqual(['Billing sync']);
    expect(page.total).toBe(2);
    const next = await f.auth.apps.list('acme', { search: 'billing', sort: '-name', limit: 1, cursor: page.nextCursor! });
    expect(next.items.map((a) => a.name)).toEqual(['billing export']);
    await expect(f.auth.apps.list('acme', { sort: 'popular' as never })).rejects.toMatchObject({ code: 'validation_failed', field: 'sort' });
    await expect(f.auth.apps.list('acme', { unusedFor: 0 })).rejects.toMatchObject({ code: 'validation_failed', field: 'unusedFor' });
  });
});

describe('GET /apps/:id/events?type= (issue 25 item 4)', () => {
  it('keeps only the types asked for (repeated or comma-separated), newest first, paged; an unknown type is a 400 naming type', async () => {
    const f = await fixture();
    const c = await createClient(f.auth, { scopes: ['notarization:read'] });
    await f.auth.apps.update('acme', c.clientId, { name: 'renamed' });
    const extra = await f.auth.apps.createToken('acme', c.clientId, { name: 'second' });
    await f.auth.apps.deleteToken('acme', c.clientId, extra.token.id);
    const created = await f.get(`/apps/${c.clientId}/events?type=token.created`);
    expect(created.status, created.text).toBe(200);
    expect(created.body.items.map((e: { type: string }) => e.type)).toEqual(['token.created', 'token.created']);
    const p1 = await f.get(`/apps/${c.clientId}/events?type=token.deleted,app.updated&limit=1`);
    expect(p1.body.items.map((e: { type: string }) => e.type)).toEqual(['token.deleted']);
    const p2 = await f.get(`/apps/${c.clientId}/events?type=token.deleted&type=app.updated&limit=1&cursor=${p1.body.nextCursor}`);
    expect(p2.body.items.map((e: { type: string }) => e.type)).toEqual(['app.updated']);
    expectProblem(await f.get(`/apps/${c.clientId}/events?type=token.stolen`), 400, 'validation_failed', 'type');
    expectProblem(await f.get(`/apps/${c.clientId}/events?type=token.created,nope`), 400, 'validation_failed', 'type[1]');
    expect((await f.auth.apps.events('acme', c.clientId, { types: ['app.updated'] })).items.map((e) => e.type)).toEqual(['app.updated']);
  });
});
