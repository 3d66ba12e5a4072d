/**
 * Issue 13, item 1: roles — named scope bundles declared by the host (option `roles`), given to an
 * app at creation, resolved into scopes every time a token is minted or verified, carried in the
 * access token's `roles` claim (RFC 9068 §2.2.3.1). Nobody assigns a role they could not grant.
 * Over HTTP on memory, SQLite and PostgreSQL.
 */
import request from 'supertest';
import type { Express } from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { EXAMPLE_ROLES } from '../src/cli.js';
import { createAppTokens, type AppTokens } from '../src/index.js';
import { createMemoryStore } from '../adapters/memory/index.js';
import {
  CATALOGUE,
  ISSUER,
  accessToken,
  decodeJwt,
  expectOAuthError,
  expectProblem,
  postgresInstances,
  setup,
  thrown,
  tokenRequest,
} from './helpers.js';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

const bearer = (t: string) => ({ Authorization: `Bearer ${t}` });
const ROLES = EXAMPLE_ROLES;

interface Target {
  auth: AppTokens;
  app: Express;
}

/** A management bearer holding `scopes` in tenant acme. */
async function managerWith(t: Target, scopes: string[]): Promise<string> {
  const created = await t.auth.apps.create({ tenantId: 'acme', name: 'manager', scopes });
  return accessToken(t.app, created.app.id, created.value);
}

function createApp(t: Target, admin: string, body: object) {
  return request(t.app).post('/apps').set(bearer(admin)).send(body);
}

/** The rules every store must give the same answers to. */
function roleRules(name: string, make: () => Promise<Target>): void {
  describe(`roles (${name})`, () => {
    it('POST /apps with roles: the view shows scopes, roles and effectiveScopes; the access token carries the roles claim (RFC 9068 §2.2.3.1) and the role scopes', async () => {
      const t = await make();
      const admin = await managerWith(t, ['notarization:*', 'storage:*', 'streams:*', 'apps:*']);
      const res = await createApp(t, admin, { name: 'reader', roles: ['viewer'], scopes: ['apps:read'] });
      expect(res.status, res.text).toBe(201);
      expect(res.body.app).toMatchObject({ scopes: ['apps:read'], roles: ['viewer'], unknownRoles: [] });
      expect(res.body.app.effectiveScopes.sort()).toEqual(['apps:read', 'notarization:read', 'storage:read', 'streams:read']);
      const grant = await tokenRequest(t.app, res.body.app.id, res.body.value);
      expect(grant.status, grant.text).toBe(200);
      expect(grant.body.scope.split(' ').sort()).toEqual(['apps:read', 'notarization:read', 'storage:read', 'streams:read']);
      const { payload } = decodeJwt(grant.body.access_token);
      expect(payload.roles).toEqual(['viewer']);
      // The role's scopes work at the host's routes; a scope outside the role does not.
      expect((await request(t.app).get('/stamps').set(bearer(grant.body.access_token))).status).toBe(200);
      expect((await request(t.app).post('/stamps').set(bearer(grant.body.access_token))).status).toBe(403);
      // The API token sent directly as a bearer resolves the same way, with the same claim.
      const direct = await request(t.app).get('/me').set(bearer(res.body.value));
      expect(direct.status).toBe(200);
      expect(direct.body.claims.roles).toEqual(['viewer']);
      expect([...direct.body.scopes].sort()).toEqual(['apps:read', 'notarization:read', 'storage:read', 'streams:read']);
      // The listing shows the same view.
      const listed = await request(t.app).get('/apps').set(bearer(admin));
      expect(listed.body.items.find((a: { id: string }) => a.id === res.body.app.id)).toMatchObject({ roles: ['viewer'] });
    });

    it('an app of roles only: scopes may be omitted; the token asks for a narrower scope within the roles', async () => {
      const t = await make();
      const admin = await managerWith(t, ['notarization:*', 'storage:*', 'streams:*', 'apps:*']);
      const res = await createApp(t, admin, { name: 'editor app', roles: ['editor', 'viewer'] });
      expect(res.status, res.text).toBe(201);
      expect(res.body.app.scopes).toEqual([]);
      expect(res.body.app.effectiveScopes).toHaveLength(6);
      const narrow = await tokenRequest(t.app, res.body.app.id, res.body.value, { scope: 'storage:write' });
      expect(narrow.status).toBe(200);
      expect(narrow.body.scope).toBe('storage:write');
      expect(decodeJwt(narrow.body.access_token).payload.roles).toEqual(['editor', 'viewer']);
      expectOAuthError(await tokenRequest(t.app, res.body.app.id, res.body.value, { scope: 'apps:read' }), 400, 'invalid_scope');
      // A token limited to a subset of the role scopes at creation.
      const tok = await request(t.app).post(`/apps/${res.body.app.id}/tokens`).set(bearer(admin)).send({ scopes: ['streams:read'] });
      expect(tok.status, tok.text).toBe(201);
      const limited = await tokenRequest(t.app, res.body.app.id, tok.body.value);
      expect(limited.body.scope).toBe('streams:read');
      // A token scope outside the app's scopes and roles: 400 naming it.
      expectProblem(await request(t.app).post(`/apps/${res.body.app.id}/tokens`).set(bearer(admin)).send({ scopes: ['apps:read'] }), 400, 'validation_failed', 'scopes');
    });

    it('neither scopes nor roles → 400 naming scopes; empty roles alone → 400 naming roles; an unknown role → 400 naming roles[i]; not an array → 400 naming roles', async () => {
      const t = await make();
      const admin = await managerWith(t, ['apps:*', 'notarization:*']);
      expectProblem(await createApp(t, admin, { name: 'x' }), 400, 'validation_failed', 'scopes');
      expectProblem(await createApp(t, admin, { name: 'x', scopes: [] }), 400, 'validation_failed', 'scopes');
      expectProblem(await createApp(t, admin, { name: 'x', roles: [] }), 400, 'validation_failed', 'roles');
      const unknown = expectProblem(await createApp(t, admin, { name: 'x', roles: ['viewer', 'superuser'] }), 400, 'validation_failed', 'roles[1]');
      expect(unknown.detail).toContain("'superuser'");
      expectProblem(await createApp(t, admin, { name: 'x', roles: 'viewer' }), 400, 'validation_failed', 'roles');
      expectProblem(await createApp(t, admin, { name: 'x', roles: [42] }), 400, 'validation_failed', 'roles[0]');
      // Nothing was created by any of these.
      const listed = await request(t.app).get('/apps').set(bearer(admin));
      expect(listed.body.items.map((a: { name: string }) => a.name)).not.toContain('x');
    });

    it('delegation: nobody assigns a role unless they hold every scope in it (wildcards respected) → 403 naming the role', async () => {
      const t = await make();
      const partial = await managerWith(t, ['apps:write', 'apps:read', 'notarization:read', 'storage:read']);
      const refused = expectProblem(await createApp(t, partial, { name: 'sneaky', roles: ['viewer'] }), 403, 'forbidden', 'roles[0]');
      expect(refused.detail).toContain("'viewer'");
      expect(refused.detail).toContain("'streams:read'");
      // Roles and scopes together: the scopes are checked too.
      expectProblem(await createApp(t, partial, { name: 'sneaky', scopes: ['storage:write'] }), 403, 'forbidden', 'scopes');
      // A holder of the wildcards may assign editor, whose scopes are concrete.
      const wide = await managerWith(t, ['apps:*', 'notarization:*', 'storage:*', 'streams:*']);
      expect((await createApp(t, wide, { name: 'ok', roles: ['editor'] })).status).toBe(201);
      // apps-admin cannot be assigned by someone who holds only apps:write.
      const writer = await managerWith(t, ['apps:write', 'apps:read', 'notarization:*']);
      expectProblem(await createApp(t, writer, { name: 'admin maker', roles: ['viewer', 'apps-admin'] }), 403, 'forbidden', 'roles[0]');
    });

    it("acting on an app requires holding every scope of its roles (issue 11's rule extended): edit, delete, issue are refused otherwise", async () => {
      const t = await make();
      const wide = await managerWith(t, ['apps:*', 'notarization:*', 'storage:*', 'streams:*']);
      const target = await createApp(t, wide, { name: 'editor app', roles: ['editor'] });
      const narrow = await managerWith(t, ['apps:write', 'apps:read', 'notarization:*']);
      const id = target.body.app.id as string;
      expectProblem(await request(t.app).patch(`/apps/${id}`).set(bearer(narrow)).send({ name: 'mine' }), 403, 'forbidden', 'scopes');
      expectProblem(await request(t.app).post(`/apps/${id}/tokens`).set(bearer(narrow)).send({}), 403, 'forbidden', 'scopes');
      expectProblem(await request(t.app).delete(`/apps/${id}`).set(bearer(narrow)), 403, 'forbidden', 'scopes');
      // Reading is apps:read alone.
      expect((await request(t.app).get(`/apps/${id}`).set(bearer(narrow))).status).toBe(200);
    });

    it('roles are fixed at creation: PATCH with roles → 400 naming roles; the customClaims key roles is reserved', async () => {
      const t = await make();
      const wide = await managerWith(t, ['apps:*', 'notarization:*', 'storage:*', 'streams:*']);
      const target = await createApp(t, wide, { name: 'viewer app', roles: ['viewer'] });
      const id = target.body.app.id as string;
      expectProblem(await request(t.app).patch(`/apps/${id}`).set(bearer(wide)).send({ roles: ['editor'] }), 400, 'validation_failed', 'roles');
      expectProblem(await request(t.app).patch(`/apps/${id}`).set(bearer(wide)).send({ customClaims: { roles: ['admin'] } }), 400, 'validation_failed', 'customClaims.roles');
      expectProblem(await createApp(t, wide, { name: 'forger', scopes: ['notarization:read'], customClaims: { roles: ['admin'] } }), 400, 'validation_failed', 'customClaims.roles');
      expect((await request(t.app).get(`/apps/${id}`).set(bearer(wide))).body.roles).toEqual(['viewer']);
    });
  });
}

roleRules('memory', async () => {
  const f = await setup({ store: 'memory', roles: ROLES });
  closers.push(() => f.cleanup());
  return f;
});
roleRules('sqlite', async () => {
  const f = await setup({ roles: ROLES });
  closers.push(() => f.cleanup());
  return f;
});
roleRules('postgresql', async () => {
  const pg = await postgresInstances(1, { roles: ROLES });
  closers.push(() => pg.close());
  return { auth: pg.instances[0]!, app: pg.apps[0]! };
});

describe('roles: a changed definition changes every token minted afterwards (README: tokens already minted live until they expire)', () => {
  it('after a restart with viewer narrowed, new access tokens and the API token as a bearer carry the new scopes; the old access token keeps its own until exp; a removed role grants nothing and is flagged', async () => {
    const f = await setup({ roles: ROLES });
    closers.push(() => f.cleanup());
    const created = await f.auth.apps.create({ tenantId: 'acme', name: 'reader', roles: ['viewer'] });
    const before = await accessToken(f.app, created.app.id, created.value);
    expect(decodeJwt(before).payload.scope).toBe('notarization:read storage:read streams:read');

    const narrowed = ROLES.map((r) => (r.name === 'viewer' ? { ...r, scopes: ['storage:read'] } : r));
    const g = await f.restart({ roles: narrowed });
    const after = await tokenRequest(g.app, created.app.id, created.value);
    expect(after.body.scope).toBe('storage:read');
    expect((await request(g.app).get('/stamps').set(bearer(after.body.access_token))).status).toBe(403);
    // The access token minted before the change keeps its scopes until it expires (the bound).
    expect((await request(g.app).get('/stamps').set(bearer(before))).status).toBe(200);
    const direct = await request(g.app).get('/me').set(bearer(created.value));
    expect(direct.body.scopes).toEqual(['storage:read']);
    // A token created with an explicit subset narrows with the role too.
    const subset = await g.auth.apps.createToken('acme', created.app.id, { scopes: ['storage:read'] });
    expect((await tokenRequest(g.app, created.app.id, subset.value)).body.scope).toBe('storage:read');

    // The role removed: the app holds nothing through it, and its view says so.
    const h = await g.restart({ roles: ROLES.filter((r) => r.name !== 'viewer') });
    const view = await h.auth.apps.get('acme', created.app.id);
    expect(view).toMatchObject({ roles: ['viewer'], unknownRoles: ['viewer'], effectiveScopes: [] });
    expectOAuthError(await tokenRequest(h.app, created.app.id, created.value), 400, 'invalid_scope');
    f.cleanup = h.cleanup;
  });

  it('option validation: names [a-z][a-z0-9_-]*, declared once, at least one scope, every scope in the catalogue (wildcards allowed) → invalid_options naming the field', () => {
    const make = (roles: unknown) => () => createAppTokens({ store: createMemoryStore(), issuer: ISSUER, scopes: CATALOGUE, roles: roles as never });
    expect(thrown(make([{ name: 'Viewer', scopes: ['storage:read'] }]))).toMatchObject({ code: 'invalid_options', field: 'roles[0].name' });
    expect(thrown(make([{ name: '', scopes: ['storage:read'] }]))).toMatchObject({ code: 'invalid_options', field: 'roles[0].name' });
    expect(thrown(make([{ name: 'a', scopes: [] }]))).toMatchObject({ code: 'invalid_options', field: 'roles[0].scopes' });
    expect(thrown(make([{ name: 'a', scopes: ['storage:read'] }, { name: 'a', scopes: ['storage:read'] }]))).toMatchObject({
      code: 'invalid_options',
      field: 'roles[1].name',
    });
    expect(thrown(make([{ name: 'a', scopes: ['storage:read', 'billing:read'] }]))).toMatchObject({ code: 'invalid_options', field: 'roles[0].scopes[1]' });
    expect(thrown(make([{ name: 'a', scopes: ['storage:read'], extra: 1 }]))).toMatchObject({ code: 'invalid_options' });
    // A wildcard of the catalogue is a valid role scope.
    expect(() => make([{ name: 'storage-admin', scopes: ['storage:*'] }])()).not.toThrow();
  });
});
