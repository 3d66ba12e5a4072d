/**
 * Issue 13, item 3: personal tokens. A host user (through `management.resolvePrincipal`, `actorId`
 * = the user) creates tokens that act as that user (`/me/tokens`); their scopes are at most the
 * user's at creation and are intersected with the user's current ones (`management.userScopes`) at
 * every use; access tokens minted from them have `sub` = the user and `client_id` = the personal
 * client (RFC 9068 §2.2); `auth.users.revoke` kills all of a user's tokens at once.
 */
import request from 'supertest';
import type { Express } from 'express';
import type { IncomingMessage } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import type { AppTokens, AppTokensOptions, Principal } from '../src/index.js';
import {
  CATALOGUE,
  Clock,
  accessToken,
  decodeJwt,
  expectBearerFailure,
  expectOAuthError,
  expectProblem,
  postgresInstances,
  setup,
  tokenRequest,
} from './helpers.js';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

const bearer = (t: string) => ({ Authorization: `Bearer ${t}` });

/** The host's users: tenant and scopes, mutable as the host's own records would be. */
class Users {
  readonly scopes = new Map<string, { tenant: string; scopes: string[] | null }>([
    ['alice', { tenant: 'acme', scopes: ['notarization:read', 'notarization:write', 'storage:read'] }],
    ['bob', { tenant: 'acme', scopes: ['notarization:read'] }],
    ['carol', { tenant: 'globex', scopes: ['notarization:*'] }],
  ]);
  calls = 0;

  /** The host session: a header names the signed-in user (a cookie session in a real host). */
  readonly resolvePrincipal = (req: IncomingMessage): Principal | null => {
    const user = req.headers['x-user'];
    const record = typeof user === 'string' ? this.scopes.get(user) : undefined;
    if (typeof user !== 'string' || !record || record.scopes === null) return null;
    return { tenantId: record.tenant, scopes: record.scopes, actorId: user };
  };

  readonly userScopes = (tenantId: string, userId: string): string[] | null => {
    this.calls++;
    const record = this.scopes.get(userId);
    return record && record.tenant === tenantId ? record.scopes : null;
  };

  options(ttl = 0): Pick<AppTokensOptions, 'management'> {
    return { management: { resolvePrincipal: this.resolvePrincipal, userScopes: this.userScopes, userScopesCacheTtl: ttl } };
  }
}

interface Target {
  auth: AppTokens;
  app: Express;
}

const as = (user: string) => ({ 'X-User': user });

function create(t: Target, user: string, body: object = {}) {
  return request(t.app).post('/me/tokens').set(as(user)).send(body);
}

function personalRules(name: string, make: (users: Users) => Promise<Target>): void {
  describe(`personal tokens (${name})`, () => {
    it('POST /me/tokens → 201 {token, value, clientId}; the token endpoint mints sub = the user, client_id = the personal client (RFC 9068 §2.2)', async () => {
      const users = new Users();
      const t = await make(users);
      const res = await create(t, 'alice', { name: 'laptop', scopes: ['notarization:read'] });
      expect(res.status, res.text).toBe(201);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.body.clientId).toMatch(/^pat_[0-9A-Za-z]{22}$/);
      expect(res.body.token).toMatchObject({ name: 'laptop', scopes: ['notarization:read'], appId: res.body.clientId, status: 'active' });
      const grant = await tokenRequest(t.app, res.body.clientId, res.body.value);
      expect(grant.status, grant.text).toBe(200);
      const { payload } = decodeJwt(grant.body.access_token);
      expect(payload).toMatchObject({ sub: 'alice', client_id: res.body.clientId, tenant_id: 'acme', scope: 'notarization:read' });
      // The host's middleware sees who acts: the user, through their personal client.
      const me = await request(t.app).get('/me').set(bearer(grant.body.access_token));
      expect(me.body).toMatchObject({ userId: 'alice', clientId: res.body.clientId, tenantId: 'acme' });
      const direct = await request(t.app).get('/me').set(bearer(res.body.value));
      expect(direct.body).toMatchObject({ kind: 'api_token', userId: 'alice', claims: { sub: 'alice' } });
      expect((await request(t.app).get('/stamps').set(bearer(res.body.value))).status).toBe(200);
      // Without scopes: a snapshot of what the user holds now.
      const all = await create(t, 'alice');
      expect(all.status).toBe(201);
      expect(all.body.token.scopes.sort()).toEqual(['notarization:read', 'notarization:write', 'storage:read']);
      expect(all.body.clientId).toBe(res.body.clientId); // one personal client per user
    });

    it('scopes at most the user’s at creation: a scope the user lacks → 403 naming scopes; an unknown one → 400; nothing is created', async () => {
      const users = new Users();
      const t = await make(users);
      expectProblem(await create(t, 'bob', { scopes: ['notarization:write'] }), 403, 'forbidden', 'scopes');
      expectProblem(await create(t, 'bob', { scopes: ['notarization:*'] }), 403, 'forbidden', 'scopes');
      expectProblem(await create(t, 'bob', { scopes: ['billing:read'] }), 400, 'validation_failed', 'scopes[0]');
      expectProblem(await create(t, 'bob', { scopes: [] }), 400, 'validation_failed', 'scopes');
      expectProblem(await create(t, 'bob', { expiresIn: 5 }), 400, 'validation_failed', 'expiresIn');
      expect((await request(t.app).get('/me/tokens').set(as('bob'))).body.items).toEqual([]);
    });

    it('every use is bounded by the user’s current scopes: a scope taken from the user is gone from the token at the token endpoint and as a bearer', async () => {
      const users = new Users();
      const t = await make(users);
      const res = await create(t, 'alice');
      // Used as a bearer first: the verification cache must not outlive the host's answer.
      expect((await request(t.app).post('/stamps').set(bearer(res.body.value))).status).toBe(201);
      users.scopes.set('alice', { tenant: 'acme', scopes: ['storage:read', 'notarization:read'] });
      expectBearerFailure(await request(t.app).post('/stamps').set(bearer(res.body.value)), 403, 'insufficient_scope', ['notarization:read', 'notarization:write']);
      const grant = await tokenRequest(t.app, res.body.clientId, res.body.value);
      expect(grant.body.scope.split(' ').sort()).toEqual(['notarization:read', 'storage:read']);
      expectOAuthError(await tokenRequest(t.app, res.body.clientId, res.body.value, { scope: 'notarization:write' }), 400, 'invalid_scope');
      users.scopes.set('alice', { tenant: 'acme', scopes: ['storage:read'] });
      expectBearerFailure(await request(t.app).get('/stamps').set(bearer(res.body.value)), 403, 'insufficient_scope', ['notarization:read']);
      // A scope given to the user later does not widen a token made before (its snapshot).
      users.scopes.set('alice', { tenant: 'acme', scopes: ['storage:read', 'notarization:read', 'notarization:write', 'streams:read'] });
      const wider = await tokenRequest(t.app, res.body.clientId, res.body.value);
      expect(wider.body.scope.split(' ')).not.toContain('streams:read');
    });

    it('the user gone (userScopes → null): the token endpoint says invalid_client, the bearer 401, refresh invalid_grant', async () => {
      const users = new Users();
      const t = await make(users);
      const res = await create(t, 'alice');
      users.scopes.delete('alice');
      expectOAuthError(await tokenRequest(t.app, res.body.clientId, res.body.value), 401, 'invalid_client');
      expectBearerFailure(await request(t.app).get('/stamps').set(bearer(res.body.value)), 401, 'invalid_token');
      const refresh = await request(t.app)
        .post('/tokens/refresh')
        .type('form')
        .send({ client_id: res.body.clientId, grant_type: 'token-exchange', refresh_token: res.body.value, scope: 'openid' });
      expect(refresh.status, refresh.text).toBe(400);
      expect(refresh.body.error).toBe('invalid_grant');
    });

    it('auth.users.revoke kills every token of the user at once, with the access tokens they minted; other users are untouched', async () => {
      const users = new Users();
      const t = await make(users);
      const a1 = await create(t, 'alice');
      const a2 = await create(t, 'alice', { name: 'second' });
      const b = await create(t, 'bob');
      const jwt = await accessToken(t.app, a1.body.clientId, a1.body.value);
      expect((await request(t.app).get('/stamps').set(bearer(jwt))).status).toBe(200);
      expect(await t.auth.users.revoke('acme', 'alice')).toBe(true);
      expectBearerFailure(await request(t.app).get('/stamps').set(bearer(jwt)), 401, 'invalid_token');
      expectOAuthError(await tokenRequest(t.app, a2.body.clientId, a2.body.value), 401, 'invalid_client');
      expectBearerFailure(await request(t.app).get('/stamps').set(bearer(a1.body.value)), 401, 'invalid_token');
      expect((await request(t.app).get('/me/tokens').set(as('alice'))).body.items).toEqual([]);
      expect((await tokenRequest(t.app, b.body.clientId, b.body.value)).status).toBe(200);
      expect(await t.auth.users.revoke('acme', 'alice')).toBe(false);
      // Alice may start again: a new personal client.
      const again = await create(t, 'alice');
      expect(again.status).toBe(201);
      expect(again.body.clientId).not.toBe(a1.body.clientId);
    });

    it('GET /me/tokens lists only the caller’s own; DELETE of another user’s token (same tenant) is 404 and changes nothing; DELETE of one’s own is 204 and kills it', async () => {
      const users = new Users();
      const t = await make(users);
      const a = await create(t, 'alice', { name: 'a' });
      const b = await create(t, 'bob', { name: 'b' });
      const listed = await request(t.app).get('/me/tokens').set(as('alice'));
      expect(listed.status).toBe(200);
      expect(listed.body.items.map((x: { id: string }) => x.id)).toEqual([a.body.token.id]);
      expect(JSON.stringify(listed.body)).not.toContain(a.body.value);
      expectProblem(await request(t.app).delete(`/me/tokens/${b.body.token.id}`).set(as('alice')), 404, 'not_found', 'tokenId');
      expect((await tokenRequest(t.app, b.body.clientId, b.body.value)).status).toBe(200);
      const jwt = await accessToken(t.app, a.body.clientId, a.body.value);
      expect((await request(t.app).delete(`/me/tokens/${a.body.token.id}`).set(as('alice'))).status).toBe(204);
      expectBearerFailure(await request(t.app).get('/stamps').set(bearer(jwt)), 401, 'invalid_token');
      expectOAuthError(await tokenRequest(t.app, a.body.clientId, a.body.value), 401, 'invalid_client');
      expectProblem(await request(t.app).delete(`/me/tokens/${a.body.token.id}`).set(as('alice')), 404, 'not_found', 'tokenId');
    });

    it('a personal client is not an app: not in GET /apps, 404 at /apps/:id and its token routes (so no app manager can mint a credential acting as the user)', async () => {
      const users = new Users();
      const t = await make(users);
      const a = await create(t, 'alice');
      const admin = { 'X-User': 'alice' };
      users.scopes.set('alice', { tenant: 'acme', scopes: [...CATALOGUE] });
      const apps = await request(t.app).get('/apps').set(admin);
      expect(apps.status).toBe(200);
      expect(apps.body.items.map((x: { id: string }) => x.id)).not.toContain(a.body.clientId);
      for (const [method, path] of [
        ['get', `/apps/${a.body.clientId}`],
        ['post', `/apps/${a.body.clientId}/tokens`],
        ['patch', `/apps/${a.body.clientId}`],
        ['delete', `/apps/${a.body.clientId}`],
        ['post', `/apps/${a.body.clientId}/tokens/${a.body.token.id}/regenerate`],
      ] as const) {
        const res = await request(t.app)[method](path).set(admin).send(method === 'patch' ? { name: 'x' } : {});
        expectProblem(res, 404, 'not_found', 'id');
      }
      expect((await tokenRequest(t.app, a.body.clientId, a.body.value)).status).toBe(200);
    });
  });
}

personalRules('memory', async (users) => {
  const f = await setup({ store: 'memory', ...users.options() });
  closers.push(() => f.cleanup());
  return f;
});
personalRules('sqlite', async (users) => {
  const f = await setup(users.options());
  closers.push(() => f.cleanup());
  return f;
});
personalRules('postgresql', async (users) => {
  const pg = await postgresInstances(1, users.options());
  closers.push(() => pg.close());
  return { auth: pg.instances[0]!, app: pg.apps[0]! };
});

describe('personal tokens: the doors that must stay shut', () => {
  it('the host session is required: without management.resolvePrincipal (bearer management) /me/tokens is 403, even for a token holding apps:*', async () => {
    const users = new Users();
    const f = await setup({ management: { userScopes: users.userScopes } });
    closers.push(() => f.cleanup());
    const admin = await f.auth.apps.create({ tenantId: 'acme', name: 'admin', scopes: [...CATALOGUE] });
    const jwt = await accessToken(f.app, admin.app.id, admin.value);
    expectProblem(await request(f.app).post('/me/tokens').set(bearer(jwt)).send({}), 403, 'forbidden');
    expectProblem(await request(f.app).get('/me/tokens').set(bearer(jwt)), 403, 'forbidden');
    // Not signed in at all: 401.
    expect((await request(f.app).get('/me/tokens')).status).toBe(401);
  });

  it('without management.userScopes personal tokens are disabled (403, nothing created); not signed in → 401; a POST that is not JSON → 415 (CSRF)', async () => {
    const users = new Users();
    const f = await setup({ management: { resolvePrincipal: users.resolvePrincipal } });
    closers.push(() => f.cleanup());
    const refused = expectProblem(await create(f, 'alice'), 403, 'forbidden');
    expect(refused.detail).toContain('management.userScopes');
    const g = await setup(users.options());
    closers.push(() => g.cleanup());
    expect((await request(g.app).post('/me/tokens').send({})).status).toBe(401);
    expectProblem(await request(g.app).post('/me/tokens').set(as('alice')).type('form').send('name=x'), 415, 'unsupported_media_type');
    expectProblem(await request(g.app).post('/me/tokens').set(as('alice')), 415, 'unsupported_media_type');
  });

  it('a principal without an actor id cannot have personal tokens (403); tenants never see each other’s', async () => {
    const users = new Users();
    const f = await setup({
      management: {
        resolvePrincipal: (req) => (req.headers['x-anonymous'] ? { tenantId: 'acme', scopes: ['notarization:read'], actorId: null } : users.resolvePrincipal(req)),
        userScopes: users.userScopes,
        userScopesCacheTtl: 0,
      },
    });
    closers.push(() => f.cleanup());
    expectProblem(await request(f.app).post('/me/tokens').set('X-Anonymous', '1').send({}), 403, 'forbidden');
    const c = await create(f, 'carol');
    expect(c.status).toBe(201);
    expect((await request(f.app).get('/me/tokens').set(as('alice'))).body.items).toEqual([]);
    expectProblem(await request(f.app).delete(`/me/tokens/${c.body.token.id}`).set(as('alice')), 404, 'not_found', 'tokenId');
    // carol's user id in another tenant names nobody there: the token is dead in acme's terms.
    expect(users.userScopes('acme', 'carol')).toBeNull();
  });

  it('userScopes answers are cached for userScopesCacheTtl: a change reaches the tokens within that bound, and users.revoke forgets at once', async () => {
    const users = new Users();
    const clock = new Clock();
    const f = await setup({ ...users.options(10), advanced: { now: clock.now, clientCacheTtl: 0 } });
    closers.push(() => f.cleanup());
    const a = await create(f, 'alice');
    const before = users.calls;
    for (let i = 0; i < 5; i++) expect((await tokenRequest(f.app, a.body.clientId, a.body.value)).status).toBe(200);
    expect(users.calls - before).toBeLessThanOrEqual(1);
    users.scopes.set('alice', { tenant: 'acme', scopes: ['storage:read'] });
    // Within the bound the cached answer is still used…
    clock.advance(5);
    expect((await tokenRequest(f.app, a.body.clientId, a.body.value)).body.scope.split(' ')).toContain('notarization:write');
    clock.advance(6);
    // …after it, the new answer applies.
    expect((await tokenRequest(f.app, a.body.clientId, a.body.value)).body.scope).toBe('storage:read');
  });

  it('a throwing userScopes is a 503 (never a grant), with the error not leaked', async () => {
    const users = new Users();
    let broken = false;
    const f = await setup({
      management: {
        resolvePrincipal: users.resolvePrincipal,
        userScopes: (tenant, user) => {
          if (broken) throw new Error('directory down: secret-internal-detail');
          return users.userScopes(tenant, user);
        },
        userScopesCacheTtl: 0,
      },
    });
    closers.push(() => f.cleanup());
    const a = await create(f, 'alice');
    broken = true;
    const res = await tokenRequest(f.app, a.body.clientId, a.body.value);
    expect(res.status).toBe(503);
    expect(res.text).not.toContain('secret-internal-detail');
    expect((await request(f.app).get('/stamps').set(bearer(a.body.value))).status).toBe(503);
  });

  it('programmatic API: auth.users.createToken / listTokens / deleteToken follow the same rules', async () => {
    const users = new Users();
    const f = await setup(users.options());
    closers.push(() => f.cleanup());
    const issued = await f.auth.users.createToken('acme', 'bob', { name: 'job' });
    expect(issued.token.scopes).toEqual(['notarization:read']);
    await expect(f.auth.users.createToken('acme', 'bob', { scopes: ['storage:read'] })).rejects.toMatchObject({ code: 'forbidden', field: 'scopes' });
    await expect(f.auth.users.createToken('acme', 'nobody')).rejects.toMatchObject({ code: 'forbidden' });
    expect((await f.auth.users.listTokens('acme', 'bob')).items.map((t) => t.id)).toEqual([issued.token.id]);
    await f.auth.users.deleteToken('acme', 'bob', issued.token.id);
    expect((await f.auth.users.listTokens('acme', 'bob')).items).toEqual([]);
    await expect(f.auth.users.revoke('acme', 'bad user id')).rejects.toMatchObject({ code: 'validation_failed', field: 'userId' });
  });
});
