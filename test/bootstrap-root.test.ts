/**
 * Issue 13, item 2: the bootstrap admin is the tenant's root. It holds the wildcard of every
 * resource of the catalogue, so that it may grant wildcards (a `storage:*` app), which it could not
 * when it held the catalogue's scopes one by one.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from '../src/cli.js';
import { rootScopes } from '../src/core/scopes.js';
import { CATALOGUE, accessToken, setup, type Fixture } from './helpers.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

describe('issue 13 item 2: the bootstrap admin is the tenant’s root', () => {
  it('rootScopes: one wildcard per resource, scopes without a resource kept, order of first appearance', () => {
    expect(rootScopes(['storage:read', 'storage:write', 'openid', 'a:b:read', 'apps:read'])).toEqual(['storage:*', 'openid', 'a:b:*', 'apps:*']);
  });

  it('bootstrap creates an app holding notarization:* storage:* streams:* apps:*, which may create a storage:* app', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'eat-root-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const out: string[] = [];
    const code = await runCli(['bootstrap', '--tenant', 'acme'], {
      env: { DATABASE_URL: `sqlite:${join(dir, 'tokens.db')}` },
      stdout: (l) => out.push(l),
      stderr: (l) => out.push(l),
    });
    expect(code, out.join('\n')).toBe(0);
    const creds = JSON.parse(out[0]!) as { client_id: string; client_secret: string };
    const f: Fixture = await setup({}, dir);
    cleanups.unshift(() => f.cleanup());
    expect((await f.auth.apps.get('acme', creds.client_id)).scopes).toEqual(['notarization:*', 'storage:*', 'streams:*', 'apps:*']);
    const jwt = await accessToken(f.app, creds.client_id, creds.client_secret);
    const res = await request(f.app).post('/apps').set('Authorization', `Bearer ${jwt}`).send({ name: 'storage admin', scopes: ['storage:*'] });
    expect(res.status, res.text).toBe(201);
    // The root acts on any app of its tenant (it holds every scope any app can hold).
    const narrow = await f.auth.apps.create({ tenantId: 'acme', name: 'narrow', scopes: ['streams:read'] });
    expect((await request(f.app).delete(`/apps/${narrow.app.id}`).set('Authorization', `Bearer ${jwt}`)).status).toBe(204);
    expect(CATALOGUE.every((s) => rootScopes(CATALOGUE).includes(`${s.split(':')[0]}:*`))).toBe(true);
  });
});
