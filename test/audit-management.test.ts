/**
 * Regressions of the black-box attack on the example server (issue 11) in the management API:
 * findings 3 (delegation beyond creation), 4 (the app view flags scopes outside the catalogue),
 * 5 (audit-log flooding), 6 (regenerating an expired token), 9 (caps and paged listings) and
 * 12 (names that display other than they read).
 */
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../src/index.js';
import { CATALOGUE, accessToken, expectProblem, setup, tokenRequest, Clock, type Fixture } from './helpers.js';

const fixtures: Fixture[] = [];
afterEach(async () => {
  for (const f of fixtures.splice(0)) await f.cleanup();
});

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

async function fixture(options: Parameters<typeof setup>[0] = {}) {
  const events: AuditEvent[] = [];
  const f = await setup({ onEvent: (e) => events.push(e), ...options });
  fixtures.push(f);
  return Object.assign(f, { events });
}

/** An app with `scopes` and an access token of it (all its scopes). */
async function principal(f: Fixture, scopes: string[], name = 'principal') {
  const c = await f.auth.apps.create({ tenantId: 'acme', name, scopes });
  return { id: c.app.id, tokenId: c.token.id, value: c.value, jwt: await accessToken(f.app, c.app.id, c.value) };
}

// ---- finding 3 ------------------------------------------------------------------------------------

describe('finding 3: acting on an app requires holding every scope it holds', () => {
  async function delegation() {
    const f = await fixture();
    const root = await principal(f, [...CATALOGUE], 'admin');
    const delegate = await principal(f, ['apps:read', 'apps:write'], 'delegate');
    const storage = await f.auth.apps.create({ tenantId: 'acme', name: 'storage', scopes: ['storage:read'] });
    return { f, root, delegate, storage };
  }

  it('a delegate without the app’s scopes cannot PATCH it (custom claims!) → 403, nothing changes, refusal audited', async () => {
    const { f, delegate, storage } = await delegation();
    const res = await request(f.app).patch(`/apps/${storage.app.id}`).set(bearer(delegate.jwt)).send({ customClaims: { role: 'root' } });
    const body = expectProblem(res, 403, 'forbidden', 'scopes');
    expect(body.detail).toContain('storage:read');
    expect((await f.auth.apps.get('acme', storage.app.id)).customClaims).toEqual({});
    await f.auth.apps.events('acme', storage.app.id); // flushes the log
    expect(f.events.filter((e) => e.type === 'management.refused' && e.appId === storage.app.id)).toHaveLength(1);
    expect(f.events.find((e) => e.type === 'management.refused')).toMatchObject({ actorId: delegate.id, data: { action: 'update_app', code: 'forbidden' } });
  });

  it('… cannot DELETE it, nor delete, regenerate or add tokens of it', async () => {
    const { f, delegate, storage } = await delegation();
    const as = (t: request.Test) => t.set(bearer(delegate.jwt));
    expectProblem(await as(request(f.app).delete(`/apps/${storage.app.id}`)), 403, 'forbidden', 'scopes');
    expectProblem(await as(request(f.app).delete(`/apps/${storage.app.id}/tokens/${storage.token.id}`)), 403, 'forbidden', 'scopes');
    expectProblem(await as(request(f.app).post(`/apps/${storage.app.id}/tokens/${storage.token.id}/regenerate`)), 403, 'forbidden', 'scopes');
    expectProblem(await as(request(f.app).post(`/apps/${storage.app.id}/tokens`).send({ name: 'x' })), 403, 'forbidden', 'scopes');
    // The app and its token are untouched and still work.
    expect((await tokenRequest(f.app, storage.app.id, storage.value)).status).toBe(200);
    expect((await f.auth.apps.listTokens('acme', storage.app.id)).items.map((t) => t.id)).toEqual([storage.token.id]);
  });

  it('… cannot mint a token for the tenant’s admin app with a subset of scopes (a credential carrying the admin’s identity)', async () => {
    const { f, root, delegate } = await delegation();
    const res = await request(f.app).post(`/apps/${root.id}/tokens`).set(bearer(delegate.jwt)).send({ name: 'mine', scopes: ['apps:read'] });
    expectProblem(res, 403, 'forbidden', 'scopes');
    expect((await f.auth.apps.listTokens('acme', root.id)).items).toHaveLength(1);
  });

  it('reading stays apps:read: the delegate lists and views the app', async () => {
    const { f, delegate, storage } = await delegation();
    expect((await request(f.app).get(`/apps/${storage.app.id}`).set(bearer(delegate.jwt))).status).toBe(200);
    expect((await request(f.app).get(`/apps/${storage.app.id}/tokens`).set(bearer(delegate.jwt))).status).toBe(200);
  });

  it('wildcards count: a storage:* holder acts on a storage:read app; the holder of every scope acts on any', async () => {
    const { f, root, storage } = await delegation();
    const wide = await principal(f, ['apps:read', 'apps:write', 'storage:*'], 'storage admin');
    const patched = await request(f.app).patch(`/apps/${storage.app.id}`).set(bearer(wide.jwt)).send({ name: 'renamed' });
    expect(patched.status, patched.text).toBe(200);
    const deleted = await request(f.app).delete(`/apps/${storage.app.id}`).set(bearer(root.jwt));
    expect(deleted.status).toBe(204);
  });
});

// ---- finding 4 (the view) ---------------------------------------------------------------------------

describe('finding 4: the app view flags stored scopes the catalogue no longer declares', () => {
  it('unknownScopes lists them (and is empty otherwise)', async () => {
    const before = await setup({ scopes: [...CATALOGUE, 'legacy:read'] });
    const created = await before.auth.apps.create({ tenantId: 'acme', name: 'old', scopes: ['notarization:read', 'legacy:read'] });
    const f = await before.restart({ scopes: CATALOGUE });
    fixtures.push(f);
    expect((await f.auth.apps.get('acme', created.app.id)).unknownScopes).toEqual(['legacy:read']);
    const fresh = await f.auth.apps.create({ tenantId: 'acme', name: 'new', scopes: ['notarization:read'] });
    expect(fresh.app.unknownScopes).toEqual([]);
  });
});

// ---- finding 5 ------------------------------------------------------------------------------------

describe('finding 5: the audit log cannot be flooded', () => {
  it('a path id that cannot be ours → 404 before any lookup, and no event (15,000 characters, odd alphabets)', async () => {
    const f = await fixture();
    const admin = await principal(f, [...CATALOGUE]);
    const long = 'a'.repeat(15_000);
    for (const [method, path] of [
      ['get', `/apps/${long}`],
      ['patch', `/apps/${long}`],
      ['delete', `/apps/${long}`],
      ['get', `/apps/${long}/tokens`],
      ['delete', `/apps/${admin.id}/tokens/${long}`],
      ['get', `/apps/${encodeURIComponent('app_x<script>')}`],
      ['get', `/apps/${encodeURIComponent('app_ü')}`],
    ] as const) {
      const res = await request(f.app)[method](path).set(bearer(admin.jwt)).set('Content-Type', 'application/json').send(method === 'patch' ? { name: 'x' } : undefined);
      expectProblem(res, 404, 'not_found');
      expect(res.text.length, path.slice(0, 40)).toBeLessThan(1000);
    }
    expect(f.events.filter((e) => e.type === 'management.refused')).toEqual([]);
  });

  it('refusals are recorded at most 20 per caller per minute; the rest are counted and reported with the next', async () => {
    const clock = new Clock();
    const warnings: string[] = [];
    const logger = { warn: (_: object, msg?: string) => warnings.push(msg ?? ''), error: () => undefined };
    const f = await fixture({ advanced: { now: clock.now }, logger });
    const reader = await principal(f, ['apps:read'], 'reader');
    for (let i = 0; i < 100; i++) {
      expect((await request(f.app).delete(`/apps/${reader.id}`).set(bearer(reader.jwt))).status).toBe(403);
    }
    const refused = () => f.events.filter((e) => e.type === 'management.refused');
    expect(refused()).toHaveLength(20);
    // The flood is visible to the operator: one log line per caller per window, not one per call.
    expect(warnings.filter((m) => m.startsWith('management refusals of this caller'))).toHaveLength(1);
    clock.advance(61);
    expect((await request(f.app).delete(`/apps/${reader.id}`).set(bearer(reader.jwt))).status).toBe(403);
    expect(refused()).toHaveLength(21);
    expect(refused()[20]!.data).toMatchObject({ suppressedBefore: 80 });
  });

  it('events.retention: events older than the retention are deleted in batches, newer ones kept', async () => {
    const clock = new Clock();
    const f = await fixture({ events: { retention: 3600 }, advanced: { now: clock.now } });
    const app = await f.auth.apps.create({ tenantId: 'acme', name: 'audited', scopes: ['notarization:read'] });
    await f.auth.apps.update('acme', app.app.id, { name: 'renamed' });
    await f.auth.apps.events('acme', app.app.id); // flush
    clock.advance(2 * 3600);
    await f.auth.apps.update('acme', app.app.id, { name: 'renamed again' });
    await f.auth.apps.events('acme', app.app.id);
    // The hourly run, now (a restart runs it at start too).
    const again = await f.restart({ events: { retention: 3600 }, advanced: { now: clock.now } });
    fixtures.splice(fixtures.indexOf(f), 1, again);
    await expect
      .poll(async () => (await again.auth.apps.events('acme', app.app.id)).items.map((e) => e.type))
      .toEqual(['app.updated']);
  });

  it('events.retention is validated at construction, naming the option', async () => {
    await expect(setup({ events: { retention: 10 } })).rejects.toMatchObject({ code: 'invalid_options', field: 'events.retention' });
  });
});

// ---- finding 6 ------------------------------------------------------------------------------------

describe('finding 6: an expired token stays dead', () => {
  it('regenerating an expired token → 409 naming tokenId, and it is not revived', async () => {
    const clock = new Clock();
    const f = await fixture({ advanced: { now: clock.now } });
    const admin = await f.auth.apps.create({ tenantId: 'acme', name: 'admin', scopes: [...CATALOGUE], token: { expiresIn: 86_400 * 30 } });
    const target = await f.auth.apps.create({ tenantId: 'acme', name: 'short', scopes: ['notarization:read'], token: { expiresIn: 120 } });
    clock.advance(121);
    const jwt = await accessToken(f.app, admin.app.id, admin.value);
    const res = await request(f.app).post(`/apps/${target.app.id}/tokens/${target.token.id}/regenerate`).set(bearer(jwt));
    expectProblem(res, 409, 'conflict', 'tokenId');
    expect((await tokenRequest(f.app, target.app.id, target.value)).status).toBe(401);
    await expect(f.auth.apps.regenerateToken('acme', target.app.id, target.token.id)).rejects.toMatchObject({ code: 'conflict' });
  });

  it('listings flag expired tokens: status "expired" next to "active"', async () => {
    const clock = new Clock();
    const f = await fixture({ advanced: { now: clock.now } });
    const target = await f.auth.apps.create({ tenantId: 'acme', name: 'mixed', scopes: ['notarization:read'], token: { expiresIn: 120 } });
    const long = await f.auth.apps.createToken('acme', target.app.id, { name: 'long' });
    expect(long.token.status).toBe('active');
    clock.advance(121);
    const statuses = Object.fromEntries((await f.auth.apps.get('acme', target.app.id)).tokens.map((t) => [t.id, t.status]));
    expect(statuses).toEqual({ [target.token.id]: 'expired', [long.token.id]: 'active' });
  });
});

// ---- finding 9 ------------------------------------------------------------------------------------

describe('finding 9: caps and paged token listings', () => {
  it('limits.tokensPerApp: the 51st active token → 409 naming the limit; deleting one makes room', async () => {
    const f = await fixture();
    const app = await f.auth.apps.create({ tenantId: 'acme', name: 'busy', scopes: ['notarization:read'] });
    const admin = await principal(f, [...CATALOGUE]);
    for (let i = 1; i < 50; i++) await f.auth.apps.createToken('acme', app.app.id, { name: `t${i}` });
    const res = await request(f.app).post(`/apps/${app.app.id}/tokens`).set(bearer(admin.jwt)).send({ name: 'one too many' });
    const body = expectProblem(res, 409, 'limit_exceeded', 'limits.tokensPerApp');
    expect(body.detail).toContain('50');
    await f.auth.apps.deleteToken('acme', app.app.id, app.token.id);
    expect((await request(f.app).post(`/apps/${app.app.id}/tokens`).set(bearer(admin.jwt)).send({ name: 'now' })).status).toBe(201);
  });

  it('expired tokens do not count towards the cap', async () => {
    const clock = new Clock();
    const f = await fixture({ limits: { tokensPerApp: 2 }, advanced: { now: clock.now } });
    const app = await f.auth.apps.create({ tenantId: 'acme', name: 'rotating', scopes: ['notarization:read'], token: { expiresIn: 60 } });
    await f.auth.apps.createToken('acme', app.app.id, { name: 'second' });
    await expect(f.auth.apps.createToken('acme', app.app.id, { name: 'third' })).rejects.toMatchObject({ code: 'limit_exceeded' });
    clock.advance(61);
    await f.auth.apps.createToken('acme', app.app.id, { name: 'third' });
  });

  it('limits.appsPerTenant: the next app → 409 naming the limit, per tenant', async () => {
    const f = await fixture({ limits: { appsPerTenant: 3 } });
    const admin = await principal(f, [...CATALOGUE]);
    await f.auth.apps.create({ tenantId: 'acme', name: 'two', scopes: ['notarization:read'] });
    await f.auth.apps.create({ tenantId: 'acme', name: 'three', scopes: ['notarization:read'] });
    const res = await request(f.app).post('/apps').set(bearer(admin.jwt)).send({ name: 'four', scopes: ['notarization:read'] });
    expectProblem(res, 409, 'limit_exceeded', 'limits.appsPerTenant');
    await f.auth.apps.create({ tenantId: 'globex', name: 'other tenant', scopes: ['notarization:read'] });
  });

  it('limits are validated at construction', async () => {
    await expect(setup({ limits: { tokensPerApp: 0 } })).rejects.toMatchObject({ code: 'invalid_options', field: 'limits.tokensPerApp' });
  });

  it('GET /apps/:id/tokens pages with limit and cursor; GET /apps/:id carries the first 50 and a cursor', async () => {
    const f = await fixture({ limits: { tokensPerApp: 60 } });
    const app = await f.auth.apps.create({ tenantId: 'acme', name: 'many', scopes: ['notarization:read'] });
    const ids = [app.token.id];
    for (let i = 1; i < 55; i++) ids.push((await f.auth.apps.createToken('acme', app.app.id, { name: `t${i}` })).token.id);
    const admin = await principal(f, [...CATALOGUE]);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res: request.Response = await request(f.app)
        .get(`/apps/${app.app.id}/tokens?limit=20${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`)
        .set(bearer(admin.jwt));
      expect(res.status, res.text).toBe(200);
      expect(res.body.items.length).toBeLessThanOrEqual(20);
      seen.push(...res.body.items.map((t: { id: string }) => t.id));
      cursor = res.body.nextCursor;
    } while (cursor);
    // Every live token once (tokens created in the same millisecond are ordered by id).
    expect(seen).toHaveLength(ids.length);
    expect([...seen].sort()).toEqual([...ids].sort());
    const view = await request(f.app).get(`/apps/${app.app.id}`).set(bearer(admin.jwt));
    expect(view.body.tokens).toHaveLength(50);
    expect(typeof view.body.tokensNextCursor).toBe('string');
    expectProblem(await request(f.app).get(`/apps/${app.app.id}/tokens?limit=1000`).set(bearer(admin.jwt)), 400, 'validation_failed');
  });
});

// ---- finding 12 -----------------------------------------------------------------------------------

describe('finding 12: names read as they display', () => {
  const hostile: Array<[string, string]> = [
    ['RLO override', 'invoice\u202Egpj.exe'],
    ['LRE embedding', '\u202Aadmin'],
    ['FSI isolate', 'a\u2068b\u2069'],
    ['byte-order mark', '\uFEFFadmin'],
    ['lone high surrogate', 'ab\uD800c'],
    ['lone low surrogate', 'ab\uDC00c'],
    ['C1 control', 'a\u0085b'],
  ];

  it('app names, token names and descriptions with bidi controls, a BOM or a lone surrogate → 400 naming the field', async () => {
    const f = await fixture();
    const admin = await principal(f, [...CATALOGUE]);
    for (const [label, text] of hostile) {
      const app = await request(f.app).post('/apps').set(bearer(admin.jwt)).send({ name: text, scopes: ['notarization:read'] });
      expectProblem(app, 400, 'validation_failed', 'name');
      const tokenName = await request(f.app).post(`/apps/${admin.id}/tokens`).set(bearer(admin.jwt)).send({ name: text });
      expectProblem(tokenName, 400, 'validation_failed', 'name');
      if (label !== 'C1 control') {
        const description = await request(f.app).patch(`/apps/${admin.id}`).set(bearer(admin.jwt)).send({ description: text });
        expectProblem(description, 400, 'validation_failed', 'description');
      }
    }
  });

  it('names are NFC-normalised: a decomposed é is stored composed', async () => {
    const f = await fixture();
    const created = await f.auth.apps.create({ tenantId: 'acme', name: 'Caf\u0065\u0301', scopes: ['notarization:read'] });
    expect(created.app.name).toBe('Caf\u00e9');
    expect((await f.auth.apps.get('acme', created.app.id)).name).toBe('Caf\u00e9');
  });
});
