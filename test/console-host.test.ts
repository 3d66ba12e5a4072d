/**
 * The admin console with the host's session (`management.resolvePrincipal`): no sign-in form, the
 * host's cookies, JSON on every POST and PATCH (the CSRF defence), "My tokens"; and mounting: a
 * sub-path behind a path-rewriting proxy, the host's own CSP nonce, options refused by name.
 */
import type { IncomingMessage } from 'node:http';
import type { Browser } from 'playwright-core';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppTokensError } from '../src/core/errors.js';
import type { Principal } from '../src/index.js';
import { checkAccessibility, consoleServer, HAVE_CHROMIUM, launch, openTab, signIn, TEST_TIMEOUT, type ConsoleServer } from './console-harness.js';
import { EXAMPLE_ROLES } from '../src/cli.js';
import { CATALOGUE, createClient, setup, tokenRequest } from './helpers.js';

const ADMIN_SCOPES = [...new Set([...CATALOGUE, 'apps:read', 'apps:write'])];
const USERS: Record<string, Principal> = {
  alice: { tenantId: 'acme', scopes: ADMIN_SCOPES, actorId: 'alice' },
  bob: { tenantId: 'acme', scopes: ['apps:read', 'storage:read'], actorId: 'bob' },
  /** Issue 25 item 5: a user with personal tokens only (no apps:read). */
  carol: { tenantId: 'acme', scopes: ['storage:read', 'streams:read'], actorId: 'carol' },
};

/** The host's session: a cookie naming the user (a real host checks a signed session). */
function resolvePrincipal(req: IncomingMessage): Principal | null {
  const user = /(?:^|;\s*)session=(\w+)/.exec(req.headers.cookie ?? '')?.[1];
  return user ? (USERS[user] ?? null) : null;
}
const userScopes = (_tenant: string, user: string) => USERS[user]?.scopes ?? null;

describe.skipIf(!HAVE_CHROMIUM)('the console', { timeout: TEST_TIMEOUT }, () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launch();
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
  });

  describe('with the host session', () => {
    let server: ConsoleServer;
    beforeAll(async () => {
      server = await consoleServer({ management: { resolvePrincipal, userScopes }, roles: EXAMPLE_ROLES });
    }, 120_000);
    afterAll(async () => {
      await server?.close();
    });

    async function as(user: string | null, options: { allowErrors?: RegExp } = {}) {
      const tab = await openTab(browser, options);
      if (user) await tab.context.addCookies([{ name: 'session', value: user, url: server.url }]);
      await tab.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
      return tab;
    }

    it('uses the session: no sign-in form, no Sign out; every POST and PATCH declares JSON and carries no bearer token', async () => {
      const tab = await as('alice');
      const { page } = tab;
      const writes: Array<{ method: string; type: string | undefined; auth: string | undefined }> = [];
      page.on('request', (r) => {
        if (r.method() === 'POST' || r.method() === 'PATCH') writes.push({ method: r.method(), type: r.headers()['content-type'], auth: r.headers().authorization });
      });
      await page.goto(server.consoleUrl);
      await page.getByRole('heading', { name: 'Apps', level: 1 }).waitFor();
      expect(await page.getByLabel('Client secret').count()).toBe(0);
      expect(await page.getByRole('button', { name: 'Sign out' }).count()).toBe(0);
      await page.getByRole('link', { name: 'My tokens' }).waitFor();

      await page.getByRole('button', { name: 'Create app' }).click();
      // The declared roles (GET /me/principal) the user may give, each with its scopes and description.
      const roles = page.getByRole('group', { name: 'Roles' });
      for (const role of EXAMPLE_ROLES) {
        await expect.poll(() => roles.getByRole('checkbox', { name: new RegExp(`^${role.name} `) }).count()).toBe(1);
        expect(await roles.textContent()).toContain(role.description);
      }
      await checkAccessibility(page, 'create-app-roles');
      await page.getByLabel('Name', { exact: true }).fill('Session made');
      await page.getByRole('checkbox', { name: 'streams:read', exact: true }).check();
      // Issue 13: a role as well; the app is created with it and its effective scopes.
      await roles.getByRole('checkbox', { name: /^viewer / }).check();
      await page.getByRole('button', { name: 'Create', exact: true }).click();
      await page.getByRole('heading', { name: 'Save the client secret of Session made' }).waitFor();
      const withRole = (await server.fixture.auth.apps.list('acme', { limit: 100 })).items.find((a) => a.name === 'Session made');
      expect(withRole).toMatchObject({ scopes: ['streams:read'], roles: ['viewer'] });
      expect([...withRole!.effectiveScopes].sort()).toEqual(['notarization:read', 'storage:read', 'streams:read']);
      await page.getByRole('button', { name: 'Done' }).click();
      await page.getByRole('dialog').getByRole('button', { name: 'Leave' }).click();
      await page.getByRole('heading', { name: 'Session made', level: 1 }).waitFor();
      await page.getByLabel('Description', { exact: true }).fill('made with the host session');
      await page.getByRole('button', { name: 'Save changes' }).click();
      await expect.poll(() => page.getByRole('status').filter({ hasText: 'Saved the app.' }).count()).toBe(1);

      const [made] = (await server.fixture.auth.apps.list('acme')).items.filter((a) => a.name === 'Session made');
      expect(made!.description).toBe('made with the host session');
      const events = await server.fixture.auth.apps.events('acme', made!.id);
      expect(events.items.map((e) => e.actorId)).toContain('alice');
      // Issue 25 item 5: every event of the session names the user, in the API and in the audit list.
      expect(new Set(events.items.map((e) => e.actorId))).toEqual(new Set(['alice']));
      await expect.poll(() => page.getByRole('banner').textContent()).toContain('Signed in as alice');
      const audit = page.getByRole('table', { name: 'Audit events of this app, newest first' });
      await expect.poll(() => audit.getByRole('row').count()).toBeGreaterThan(2);
      const who = await audit.locator('td[data-label="Who"]').allTextContents();
      expect(who.length).toBe(events.items.length);
      expect(new Set(who)).toEqual(new Set(['you (alice)']));
      expect(writes.map((w) => w.method).sort()).toEqual(['PATCH', 'POST']);
      for (const w of writes) {
        expect(w.type).toBe('application/json');
        expect(w.auth).toBeUndefined();
      }
      expect(tab.errors).toEqual([]);
      await tab.close();
    });

    it('"My tokens": creates a personal token shown once, lists it, deletes it', async () => {
      const tab = await as('alice');
      const { page } = tab;
      await page.goto(`${server.consoleUrl}#/my-tokens`);
      await page.getByRole('heading', { name: 'My tokens', level: 1 }).waitFor();
      await page.getByText('You have no personal tokens.').waitFor();
      await checkAccessibility(page, 'my-tokens');
      await page.getByLabel('Token name', { exact: true }).fill('laptop');
      await page.getByRole('checkbox', { name: 'storage:read', exact: true }).check();
      await page.getByRole('button', { name: 'Add token' }).click();
      await page.getByRole('heading', { name: /Save the client secret/ }).waitFor();
      await page.getByRole('button', { name: 'Reveal' }).click();
      const secret = (await page.locator('code.secret-value').textContent())!;
      const clientId = (await page.locator('#secret-client-id').textContent())!;
      expect((await tokenRequest(server.fixture.app, clientId, secret)).status).toBe(200);
      await page.getByRole('button', { name: 'Done' }).click();
      await page.getByRole('dialog').getByRole('button', { name: 'Leave' }).click();
      const list = page.getByRole('table', { name: 'Your personal tokens' });
      await list.getByRole('rowheader', { name: 'laptop' }).waitFor();
      expect(await page.content()).not.toContain(secret);
      await list.getByRole('button', { name: 'Delete token' }).click();
      const dialog = page.getByRole('dialog', { name: 'Delete token laptop?' });
      expect(await dialog.textContent()).toContain('This cannot be undone.');
      await dialog.getByRole('button', { name: 'Delete', exact: true }).click();
      await page.getByText('You have no personal tokens.').waitFor();
      expect((await tokenRequest(server.fixture.app, clientId, secret)).status).toBe(401);
      expect(tab.errors).toEqual([]);
      await tab.close();
    });

    it('issue 25: a host user without apps:read lands on My tokens (no dead end), sees only what they may use, picks the scopes a token carries', async () => {
      // Issue 25 item 5: GET /me/principal answers every signed-in user about itself: no refusal logged.
      const tab = await as('carol');
      const { page } = tab;
      await page.goto(server.consoleUrl);
      await page.getByRole('heading', { name: 'My tokens', level: 1 }).waitFor();
      const nav = page.getByRole('navigation', { name: 'Console' });
      expect(await nav.getByRole('link').allTextContents()).toEqual(['My tokens']);
      expect(await page.getByRole('alert').count()).toBe(0);
      // Named, and offered only the scopes carol holds, none picked.
      await expect.poll(() => page.getByRole('banner').textContent()).toContain('Signed in as carol');
      expect(await page.getByRole('main').textContent()).toContain('act as you (carol)');
      const offered = page.getByRole('group', { name: 'Scopes this token carries' }).getByRole('checkbox');
      await expect.poll(() => offered.count()).toBe(2);
      expect(await page.getByRole('group', { name: 'Scopes this token carries' }).locator('label').allTextContents()).toEqual(['storage:read', 'streams:read']);
      for (const box of await offered.all()) expect(await box.isChecked()).toBe(false);
      await checkAccessibility(page, 'my-tokens-no-apps-read');
      // An app's address leads here too, not to a refusal.
      await page.goto(`${server.consoleUrl}#/apps/app_whatever`);
      await page.getByRole('heading', { name: 'My tokens', level: 1 }).waitFor();
      // Nothing is preselected, and nothing chosen is refused beside the scopes, which are focused.
      await page.getByLabel('Token name', { exact: true }).fill('backup script');
      await page.getByRole('button', { name: 'Add token' }).click();
      await expect.poll(() => page.getByRole('alert').textContent()).toBe('Choose at least one scope for this token to carry.');
      const first = page.getByRole('group', { name: 'Scopes this token carries' }).getByRole('checkbox').first();
      await expect
        .poll(() => page.evaluate(`(() => { const el = document.activeElement; return el ? [el.type, el.getAttribute('aria-invalid'), el.closest('fieldset')?.querySelector('legend')?.textContent] : null; })()`))
        .toEqual(['checkbox', 'true', 'Scopes this token carries']);
      expect(await first.getAttribute('aria-invalid')).toBe('true');
      await page.getByRole('checkbox', { name: 'storage:read', exact: true }).check();
      await page.getByRole('button', { name: 'Add token' }).click();
      await page.getByRole('heading', { name: /Save the client secret/ }).waitFor();
      await page.getByRole('button', { name: 'Done' }).click();
      await page.getByRole('dialog').getByRole('button', { name: 'Leave' }).click();
      const row = page.getByRole('table', { name: 'Your personal tokens' }).getByRole('row').filter({ hasText: 'backup script' });
      await expect.poll(() => row.textContent()).toContain('storage:read');
      expect(await row.textContent()).not.toContain('streams:read');
      await checkAccessibility(page, 'my-tokens-personal');
      expect(tab.errors).toEqual([]);
      await tab.close();
    });

    it('a read-only host user sees no write control', async () => {
      const tab = await as('bob');
      const { page } = tab;
      await page.goto(server.consoleUrl);
      await page.getByRole('heading', { name: 'Apps', level: 1 }).waitFor();
      await page.getByText('read-only').waitFor();
      expect(await page.getByRole('button', { name: 'Create app' }).count()).toBe(0);
      await checkAccessibility(page, 'apps-read-only');
      expect(tab.errors).toEqual([]);
      await tab.close();
    });

    it('without a session it says to sign in to the host', async () => {
      const tab = await as(null, { allowErrors: /status of 401/ });
      await tab.page.goto(server.consoleUrl);
      await expect.poll(() => tab.page.getByRole('alert').textContent()).toContain('You are not signed in to this site');
      expect(tab.errors).toEqual([]);
      await tab.close();
    });
  });

  describe('mounted under a sub-path behind a path-rewriting proxy', () => {
    let server: ConsoleServer;
    beforeAll(async () => {
      // The proxy serves the whole host under /gateway and strips it: the page finds routes() one level up.
      server = await consoleServer({}, { path: '/admin/console', prefix: '/gateway', console: { apiBase: '../..', title: 'Gateway admin' } });
    }, 120_000);
    afterAll(async () => {
      await server?.close();
    });

    it('redirects to the slash, loads its assets relative to itself, and reaches the API through apiBase', async () => {
      const admin = await createClient(server.fixture.auth, { scopes: ADMIN_SCOPES });
      const tab = await openTab(browser);
      const { page } = tab;
      const paths: string[] = [];
      page.on('request', (r) => paths.push(new URL(r.url()).pathname));
      await page.goto(server.consoleUrl.replace(/\/$/, ''));
      expect(new URL(page.url()).pathname).toBe('/gateway/admin/console/');
      await page.getByRole('heading', { name: 'Gateway admin' }).waitFor();
      await signIn(page, admin.clientId, admin.secret);
      await page.getByRole('heading', { name: 'Apps', level: 1 }).waitFor();
      expect(paths).toContain('/gateway/oauth/token');
      expect(paths).toContain('/gateway/me/principal');
      expect(paths.filter((p) => !p.startsWith('/gateway/'))).toEqual([]);
      expect(tab.errors).toEqual([]);
      await tab.close();
    });
  });
});

describe('auth.console() options and headers', () => {
  it("honours the host's CSP nonce and frame-ancestors", async () => {
    const f = await setup();
    try {
      f.app.use((_req, res, next) => {
        res.locals.cspNonce = 'aG9zdC1zdXBwbGllZC1ub25jZQ==';
        next();
      });
      f.app.use('/console', f.auth.console({ nonce: (_req, res) => res.locals.cspNonce as string, frameAncestors: ["'self'", 'https://admin.example.com'] }));
      const res = await request(f.app).get('/console/');
      expect(res.status).toBe(200);
      expect(res.headers['content-security-policy']).toContain("script-src 'nonce-aG9zdC1zdXBwbGllZC1ub25jZQ=='");
      expect(res.headers['content-security-policy']).toContain("frame-ancestors 'self' https://admin.example.com");
      expect(res.headers['x-frame-options']).toBeUndefined();
      expect(res.text).toContain('nonce="aG9zdC1zdXBwbGllZC1ub25jZQ=="');
    } finally {
      await f.cleanup();
    }
  });

  it('answers 500 without a page when the host nonce is not a nonce', async () => {
    const f = await setup({ logger: { warn() {}, error() {} } });
    try {
      f.app.use('/console', f.auth.console({ nonce: () => 'short' }));
      const res = await request(f.app).get('/console/');
      expect(res.status).toBe(500);
      expect(res.text).not.toContain('<script');
    } finally {
      await f.cleanup();
    }
  });

  it('refuses bad options by name', async () => {
    const f = await setup();
    try {
      const refused = (options: unknown) => {
        try {
          f.auth.console(options as never);
        } catch (error) {
          expect(error).toBeInstanceOf(AppTokensError);
          return (error as AppTokensError).message;
        }
        throw new Error('accepted');
      };
      expect(refused({ apiBase: 'https://evil.example/' })).toMatch(/^"console\.apiBase" must be a path/);
      expect(refused({ apiBase: '//evil.example/' })).toMatch(/^"console\.apiBase"/);
      expect(refused({ apiBase: '/auth?x=1' })).toMatch(/^"console\.apiBase"/);
      expect(refused({ frameAncestors: ["'unsafe-inline'"] })).toMatch(/^"console\.frameAncestors\[0\]"/);
      expect(refused({ frameAncestors: [] })).toMatch(/^"console\.frameAncestors"/);
      expect(refused({ nonce: 'fixed' })).toMatch(/^"console\.nonce" must be a function/);
      expect(refused({ colour: 'red' })).toBe('"console.colour" is not an option');
    } finally {
      await f.cleanup();
    }
  });
});
