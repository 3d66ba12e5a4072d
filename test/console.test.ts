/**
 * The admin console (issue 14) without a host session: the sign-in form, every screen and flow in
 * a real Chromium, on SQLite, by accessible names; axe on each screen, light and dark; no console
 * error anywhere. Host sessions (resolvePrincipal, My tokens) and mounting: console-host.test.ts.
 */
import { readFileSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleSize, checkAccessibility, consoleServer, HAVE_CHROMIUM, launch, openTab, signIn, TEST_TIMEOUT, type ConsoleServer } from './console-harness.js';
import { generateKeyPair, SignJWT } from 'jose';
import { accessToken, CATALOGUE, createClient, decodeJwt, ISSUER, ourSigningKey, tokenRequest } from './helpers.js';

const ADMIN_SCOPES = [...new Set([...CATALOGUE, 'apps:read', 'apps:write'])];

describe.skipIf(!HAVE_CHROMIUM)('the console, signed in with client credentials', { timeout: TEST_TIMEOUT }, () => {
  let browser: Browser;
  let server: ConsoleServer;
  let admin: { clientId: string; secret: string };

  beforeAll(async () => {
    browser = await launch();
    server = await consoleServer({ accessTokenTtl: 600 });
    const auth = server.fixture.auth;
    const made = await auth.apps.create({ tenantId: 'acme', name: 'Console admin', scopes: ADMIN_SCOPES, token: { name: 'console' } });
    admin = { clientId: made.app.id, secret: made.value };
    // A few apps as a tenant would have them (the screenshots show this list).
    await auth.apps.create({ tenantId: 'acme', name: 'Invoice webhook', description: 'Posts notarized invoices', scopes: ['notarization:read', 'notarization:write'] });
    await auth.apps.create({ tenantId: 'acme', name: 'Nightly backup', scopes: ['storage:read', 'storage:write'], token: { name: 'cron', expiresIn: 3 * 86_400 } });
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  /** A tab signed in as `who`, on the apps list. */
  async function signedIn(who = admin, options: { allowErrors?: RegExp } = {}) {
    const tab = await openTab(browser, options);
    await tab.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
    await tab.page.goto(server.consoleUrl);
    await signIn(tab.page, who.clientId, who.secret);
    await tab.page.getByRole('heading', { name: 'Apps', level: 1 }).waitFor();
    return tab;
  }

  async function download(page: Page, button: string): Promise<{ name: string; text: string }> {
    const [file] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: button, exact: true }).click()]);
    const path = await file.path();
    return { name: file.suggestedFilename(), text: readFileSync(path!, 'utf8') };
  }

  it('serves the page with a strict CSP and a fresh nonce, no-store; hashed assets cached for good', async () => {
    const app = server.fixture.app;
    const redirect = await request(app).get('/console?x=1');
    expect(redirect.status).toBe(308);
    expect(redirect.headers.location).toBe('console/?x=1');

    const [a, b] = [await request(app).get('/console/'), await request(app).get('/console/')];
    expect(a.status).toBe(200);
    expect(a.headers['content-type']).toMatch(/^text\/html/);
    expect(a.headers['cache-control']).toBe('no-store');
    expect(a.headers['referrer-policy']).toBe('no-referrer');
    expect(a.headers['x-content-type-options']).toBe('nosniff');
    expect(a.headers['x-frame-options']).toBe('DENY');
    const csp = a.headers['content-security-policy'] as string;
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|\*/);
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("default-src 'none'");
    const nonce = /script-src 'nonce-([^']+)'/.exec(csp)![1]!;
    expect(a.text).toContain(`nonce="${nonce}"`);
    expect(/script-src 'nonce-([^']+)'/.exec(b.headers['content-security-policy'] as string)![1]).not.toBe(nonce);
    // No inline script that would need the nonce, no third-party origin; assets relative to the page.
    expect(a.text).not.toMatch(/https?:\/\/(?!auth\.example\.test)/);
    const [, script] = /src="(assets\/console-[A-Z0-9]+\.js)"/.exec(a.text)!;
    const [, style] = /href="(assets\/console-[A-Z0-9]+\.css)"/.exec(a.text)!;
    for (const asset of [script!, style!]) {
      const res = await request(app).get(`/console/${asset}`);
      expect(res.status, asset).toBe(200);
      expect(res.headers['cache-control']).toBe('public, max-age=31536000, immutable');
      expect(res.headers['x-content-type-options']).toBe('nosniff');
    }
    expect((await request(app).get('/console/assets/console-NOPE1234.js')).status).toBe(404);
    expect((await request(app).get('/console/assets/..%2Fmanifest.json')).status).toBe(404);
    expect((await request(app).get('/console/other')).status).toBe(404);
    expect((await request(app).post('/console/')).status).toBe(405);
  });

  it('fits the budget: all scripts and styles together at most 60 KB gzipped', () => {
    const size = bundleSize();
    console.log(`console bundle: script ${(size.script / 1024).toFixed(1)} KB + style ${(size.style / 1024).toFixed(1)} KB = ${(size.total / 1024).toFixed(1)} KB gzipped`);
    expect(size.total).toBeLessThanOrEqual(60 * 1024);
  });

  it('signs in with a client id and secret, keeps the access token in memory only, and signs out', async () => {
    const tab = await openTab(browser, { allowErrors: /status of 401/ });
    const { page } = tab;
    await page.goto(server.consoleUrl);
    await checkAccessibility(page, 'sign-in');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('Enter the client ID and the client secret');
    await signIn(page, admin.clientId, 'eat_wrong');
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('The client ID or client secret is not right.');
    await signIn(page, admin.clientId, admin.secret);
    await page.getByRole('heading', { name: 'Apps', level: 1 }).waitFor();
    // Never in storage, a cookie or the URL.
    const stored = await page.evaluate<string>('JSON.stringify({ local: { ...localStorage }, session: { ...sessionStorage }, cookie: document.cookie, url: location.href })');
    expect(stored).not.toContain(admin.secret);
    expect(stored).not.toMatch(/eyJ/);
    expect(await tab.context.cookies()).toEqual([]);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    expect(await page.getByLabel('Client secret').inputValue()).toBe('');
    expect(tab.errors).toEqual([]);
    await tab.close();
  });

  it('an app without apps:read cannot sign in', async () => {
    const plain = await createClient(server.fixture.auth, { scopes: ['storage:read'] });
    const tab = await openTab(browser, { allowErrors: /status of 403/ });
    await tab.page.goto(server.consoleUrl);
    await signIn(tab.page, plain.clientId, plain.secret);
    await expect.poll(() => tab.page.getByRole('alert').textContent()).toMatch(/apps:read/);
    expect(tab.errors).toEqual([]);
    await tab.close();
  });

  it('returns to the sign-in form when the access token expires', async () => {
    const tab = await openTab(browser);
    await tab.page.clock.install();
    await tab.page.goto(server.consoleUrl);
    await signIn(tab.page, admin.clientId, admin.secret);
    await tab.page.getByRole('heading', { name: 'Apps', level: 1 }).waitFor();
    await tab.page.clock.fastForward(601_000);
    await expect.poll(() => tab.page.getByRole('status').first().textContent()).toContain('Your session expired');
    await tab.page.getByRole('button', { name: 'Sign in' }).waitFor();
    expect(tab.errors).toEqual([]);
    await tab.close();
  });

  it('creates an app and shows its secret once: masked, reveal, copy announced, downloads, curl, a guard, gone after Done and a reload', async () => {
    const tab = await signedIn();
    const { page } = tab;
    await checkAccessibility(page, 'apps');
    await page.getByRole('button', { name: 'Create app' }).click();
    await page.getByRole('heading', { name: 'Create app', level: 1 }).waitFor();
    // Permissions: one checkbox per scope the principal holds, labelled with the exact scope.
    for (const scope of ADMIN_SCOPES) await expect.poll(() => page.getByRole('checkbox', { name: scope, exact: true }).count()).toBe(1);
    await checkAccessibility(page, 'create-app');

    await page.getByLabel('Name', { exact: true }).fill('Billing exporter');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('Choose at least one permission');
    await page.getByRole('checkbox', { name: 'notarization:read', exact: true }).check();
    await page.getByRole('checkbox', { name: 'storage:write', exact: true }).check();
    await page.getByLabel('Description', { exact: true }).fill('Nightly export of invoices');
    await page.getByLabel('Custom claims (JSON)').fill('{"plan": ');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('Custom claims: not valid JSON');
    await page.getByLabel('Custom claims (JSON)').fill('["a"]');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('must be a JSON object');
    await page.getByLabel('Custom claims (JSON)').fill('{"plan": "pro"}');
    await page.getByLabel('Token name', { exact: true }).fill('ci');
    await page.getByLabel('Expires in').selectOption({ label: 'On a date…' });
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('Choose an expiration date');
    await page.getByLabel('Expires in').selectOption({ label: '30 days' });
    await page.getByRole('button', { name: 'Create', exact: true }).click();

    await page.getByRole('heading', { name: 'Save the client secret of Billing exporter' }).waitFor();
    const [app] = (await server.fixture.auth.apps.list('acme', { limit: 100 })).items.filter((a) => a.name === 'Billing exporter');
    expect(app).toMatchObject({ description: 'Nightly export of invoices', customClaims: { plan: 'pro' }, scopes: ['notarization:read', 'storage:write'] });
    const [token] = (await server.fixture.auth.apps.get('acme', app!.id)).tokens;
    expect(token!.name).toBe('ci');
    expect(Date.parse(token!.expirationDate!) - Date.now()).toBeGreaterThan(29.9 * 86_400_000);
    // Masked until revealed.
    const main = page.getByRole('main');
    expect(await main.textContent()).not.toMatch(/eat_[A-Za-z0-9]{20,}/);
    await checkAccessibility(page, 'secret');
    await page.getByRole('button', { name: 'Reveal' }).click();
    const secret = (await main.locator('code.secret-value').textContent())!;
    expect(secret).toMatch(/^eat_[A-Za-z0-9]{49}$/);
    await page.getByRole('button', { name: 'Hide' }).click();
    expect(await main.textContent()).not.toContain(secret);
    // The secret works.
    expect((await tokenRequest(server.fixture.app, app!.id, secret)).status).toBe(200);

    await page.getByRole('button', { name: 'Copy', exact: true }).click();
    await expect.poll(() => page.getByRole('status').filter({ hasText: 'Copied' }).textContent()).toBe('Copied the client secret to the clipboard.');
    expect(await page.evaluate<string>('navigator.clipboard.readText()')).toBe(secret);

    const vars = { CLIENT_ID: app!.id, CLIENT_SECRET: secret, ISSUER, TOKEN_URL: `${ISSUER}/oauth/token` };
    const env = await download(page, 'Download .env');
    expect(env.name).toBe(`billing-exporter-${token!.id}.env`);
    expect(env.text).toBe(`${Object.entries(vars).map(([k, v]) => `${k}='${v}'`).join('\n')}\n`);
    // The same bytes the API writes with ?format=env (apart from the values of another token).
    const fromApi = await request(server.fixture.app)
      .post(`/apps/${app!.id}/tokens?format=env`)
      .set('Authorization', `Bearer ${await accessToken(server.fixture.app, admin.clientId, admin.secret)}`)
      .send({ name: 'api' });
    expect(fromApi.status).toBe(201);
    expect(fromApi.text.replace(/'[^']*'/g, "''")).toBe(env.text.replace(/'[^']*'/g, "''"));
    const postman = await download(page, 'Download Postman environment');
    expect(postman.name).toBe(`billing-exporter-${token!.id}.postman_environment.json`);
    expect(JSON.parse(postman.text)).toEqual({
      id: token!.id,
      name: 'Billing exporter (ci)',
      values: Object.entries(vars).map(([key, value]) => ({ key, value, type: key === 'CLIENT_SECRET' ? 'secret' : 'default', enabled: true })),
      _postman_variable_scope: 'environment',
    });
    const txt = await download(page, 'Download .txt');
    expect(txt.name).toBe(`billing-exporter-${token!.id}.txt`);
    expect(txt.text).toContain(`Client ID: ${app!.id}\n`);
    expect(txt.text).toContain(`Client secret: ${secret}\n`);
    expect(txt.text).toContain(`Token URL: ${ISSUER}/oauth/token\n`);
    // The curl snippet reads the .env file: it never holds the secret.
    const snippet = await page.locator('pre.code').textContent();
    expect(snippet).toContain(`. ./billing-exporter-${token!.id}.env`);
    expect(snippet).toContain('-u "$CLIENT_ID:$CLIENT_SECRET"');
    expect(snippet).not.toContain(secret);

    // Leaving the tab asks first (beforeunload); staying keeps the secret.
    const asked: string[] = [];
    page.once('dialog', (d) => {
      asked.push(d.type());
      void d.dismiss();
    });
    await page.reload({ timeout: 3_000 }).catch(() => undefined);
    await expect.poll(() => asked).toEqual(['beforeunload']);
    await page.getByRole('heading', { name: 'Save the client secret of Billing exporter' }).waitFor();

    // Done asks for confirmation; Cancel keeps the secret, Leave drops it.
    await page.getByRole('button', { name: 'Done' }).click();
    const dialog = page.getByRole('dialog', { name: 'Is the secret saved?' });
    await dialog.waitFor();
    expect(await dialog.textContent()).toContain('will not be shown again');
    await checkAccessibility(page, 'secret-confirm');
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await page.getByRole('button', { name: 'Done' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Leave' }).click();
    await page.getByRole('heading', { name: 'Billing exporter', level: 1 }).waitFor();
    expect(await page.content()).not.toContain(secret);
    // A reload: a fresh sign-in, and the secret nowhere.
    await page.reload();
    await signIn(page, admin.clientId, admin.secret);
    await page.getByRole('heading', { name: 'Billing exporter', level: 1 }).waitFor();
    expect(await page.content()).not.toContain(secret);
    expect(tab.errors).toEqual([]);
    await tab.close();
  });

  it('app page: edits details, adds, regenerates (with a grace period) and deletes tokens, pages the audit log, deletes the app', async () => {
    const created = await server.fixture.auth.apps.create({ tenantId: 'acme', name: 'Warehouse sync', scopes: ['storage:read'], token: { name: 'first' } });
    const tab = await signedIn();
    const { page } = tab;
    await page.getByRole('link', { name: 'Warehouse sync' }).click();
    await page.getByRole('heading', { name: 'Warehouse sync', level: 1 }).waitFor();
    // Scopes are read-only: no checkbox, no field.
    expect(await page.getByRole('checkbox').count()).toBe(0);
    await checkAccessibility(page, 'app');

    await page.getByLabel('Name', { exact: true }).fill('Warehouse sync v2');
    await page.getByLabel('Description', { exact: true }).fill('Pulls stock levels');
    await page.getByLabel('Custom claims (JSON)').fill('{"region": "eu"');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('not valid JSON');
    await page.getByLabel('Custom claims (JSON)').fill('{"region": "eu"}');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.getByRole('heading', { name: 'Warehouse sync v2', level: 1 }).waitFor();
    expect(await server.fixture.auth.apps.get('acme', created.app.id)).toMatchObject({ name: 'Warehouse sync v2', description: 'Pulls stock levels', customClaims: { region: 'eu' } });

    // Add token → its secret, once.
    await page.getByRole('button', { name: 'Add token' }).click();
    await page.getByLabel('Token name', { exact: true }).fill('second');
    await page.getByLabel('Expires in').selectOption({ label: '7 days' });
    await checkAccessibility(page, 'add-token');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await page.getByRole('heading', { name: 'Save the client secret of Warehouse sync v2' }).waitFor();
    await page.getByRole('button', { name: 'Done' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Leave' }).click();
    const tokens = page.getByRole('table', { name: 'Tokens of this app' });
    await tokens.getByRole('rowheader', { name: 'second' }).waitFor();

    // Regenerate "first" with a one-hour grace period: the old value keeps working, listed as retiring.
    const firstRow = tokens.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'first' }) });
    await firstRow.getByRole('button', { name: 'Regenerate' }).click();
    const regen = page.getByRole('dialog', { name: 'Regenerate token first?' });
    await regen.waitFor();
    expect(await regen.textContent()).toContain('cannot be undone');
    await regen.getByLabel('Grace period').selectOption({ label: '1 hour' });
    expect(await regen.textContent()).toContain('keeps working until the grace period ends');
    await checkAccessibility(page, 'regenerate');
    await regen.getByRole('button', { name: 'Regenerate' }).click();
    await page.getByRole('heading', { name: 'Save the client secret of Warehouse sync v2' }).waitFor();
    await page.getByRole('button', { name: 'Done' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Leave' }).click();
    await expect.poll(() => tokens.getByText('retiring').count()).toBe(1);
    expect((await tokenRequest(server.fixture.app, created.app.id, created.value)).status).toBe(200);

    // Delete "second": Cancel first, then Delete.
    const secondRow = tokens.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'second' }) });
    await secondRow.getByRole('button', { name: 'Delete token' }).click();
    const del = page.getByRole('dialog', { name: 'Delete token second?' });
    expect(await del.textContent()).toContain('This cannot be undone.');
    await checkAccessibility(page, 'delete-token');
    await del.getByRole('button', { name: 'Cancel' }).click();
    await expect.poll(() => page.getByRole('dialog').count()).toBe(0);
    await secondRow.getByRole('button', { name: 'Delete token' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete', exact: true }).click();
    await expect.poll(() => tokens.getByRole('rowheader', { name: 'second' }).count()).toBe(0);

    // The audit log, newest first, 10 a page.
    const events = page.getByRole('table', { name: /Audit events/ });
    await expect.poll(() => events.getByText('token.deleted').count()).toBe(1);
    for (let i = 0; i < 10; i++) await server.fixture.auth.apps.update('acme', created.app.id, { description: `edit ${i}` });
    await page.reload();
    await signIn(page, admin.clientId, admin.secret);
    // The hash keeps the screen across a reload.
    await page.getByRole('heading', { name: 'Warehouse sync v2', level: 1 }).waitFor();
    await expect.poll(() => events.getByRole('row').count()).toBe(11);
    await page.getByRole('button', { name: 'Older events' }).click();
    await expect.poll(() => events.getByText('app.created').count()).toBe(1);
    await page.getByRole('button', { name: 'Newer events' }).click();
    await expect.poll(() => events.getByText('app.created').count()).toBe(0);

    // Delete the app.
    await page.getByRole('button', { name: 'Delete app' }).click();
    const delApp = page.getByRole('dialog', { name: 'Delete app Warehouse sync v2?' });
    expect(await delApp.textContent()).toContain('This cannot be undone.');
    await checkAccessibility(page, 'delete-app');
    await delApp.getByRole('button', { name: 'Delete', exact: true }).click();
    await page.getByRole('heading', { name: 'Apps', level: 1 }).waitFor();
    await expect.poll(() => page.getByRole('link', { name: 'Warehouse sync v2' }).count()).toBe(0);
    expect((await tokenRequest(server.fixture.app, created.app.id, created.value)).status).toBe(401);
    expect(tab.errors).toEqual([]);
    await tab.close();
  });

  it('issue 21: the app page shows the lockout in words, and an admin clears it behind a confirmation; the throttled address is served at once', async () => {
    const { auth, app: host } = server.fixture;
    host.set('trust proxy', true);
    const created = await auth.apps.create({ tenantId: 'acme', name: 'Ledger sync', scopes: ['notarization:read'] });
    const guess = (source: string) => tokenRequest(host, created.app.id, 'eat_guess').set('X-Forwarded-For', source);
    for (const source of ['198.51.100.1', '198.51.100.2']) for (let i = 0; i < 10; i++) expect((await guess(source)).status).toBe(401);
    expect((await guess('198.51.100.3')).status).toBe(401);
    const right = () => tokenRequest(host, created.app.id, created.value).set('X-Forwarded-For', '198.51.100.1');
    expect((await right()).status).toBe(429);

    const tab = await signedIn();
    const { page } = tab;
    await page.getByRole('link', { name: 'Ledger sync', exact: true }).click();
    const card = page.getByRole('region', { name: 'Lockout' });
    await card.waitFor();
    const until = new Date(Date.parse((await auth.apps.get('acme', created.app.id)).lockout!.until!));
    const hhmm = `${String(until.getUTCHours()).padStart(2, '0')}:${String(until.getUTCMinutes()).padStart(2, '0')}`;
    expect(await card.textContent()).toContain(`21 failed attempts recently; 2 addresses throttled until ${hhmm} UTC.`);
    expect(await card.textContent()).toContain('its correct credential keeps working from any other address');
    await checkAccessibility(page, 'lockout');

    // Cancel first: nothing changes.
    await card.getByRole('button', { name: 'Clear lockout' }).click();
    const dialog = page.getByRole('dialog', { name: 'Clear the lockout of Ledger sync?' });
    await dialog.waitFor();
    expect(await dialog.textContent()).toContain('The 2 throttled addresses of Ledger sync may try again at once');
    expect(await dialog.textContent()).toContain('This cannot be undone.');
    await checkAccessibility(page, 'clear-lockout');
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await expect.poll(() => page.getByRole('dialog').count()).toBe(0);
    expect((await right()).status).toBe(429);

    await card.getByRole('button', { name: 'Clear lockout' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Clear lockout' }).click();
    await expect.poll(() => card.textContent()).toContain('No failed attempts recently.');
    expect(await card.getByRole('button', { name: 'Clear lockout' }).count()).toBe(0);
    expect((await right()).status).toBe(200);
    const events = page.getByRole('table', { name: /Audit events/ });
    await expect.poll(() => events.getByText('app.lockout_cleared').count()).toBe(1);
    expect(tab.errors).toEqual([]);
    await tab.close();
  });

  it('pages the apps list', async () => {
    const tenant = 'paged';
    const pager = await createClient(server.fixture.auth, { tenant, scopes: ['apps:read'] });
    for (let i = 1; i <= 21; i++) await server.fixture.auth.apps.create({ tenantId: tenant, name: `app ${String(i).padStart(2, '0')}`, scopes: ['storage:read'] });
    const tab = await signedIn(pager);
    const { page } = tab;
    const rows = page.getByRole('table', { name: 'Apps of this tenant' }).getByRole('row');
    await expect.poll(() => rows.count()).toBe(21);
    // Newest first by default (issue 25).
    await page.getByRole('link', { name: 'app 21' }).waitFor();
    await page.getByRole('button', { name: 'Next page' }).click();
    await expect.poll(() => rows.count()).toBe(3);
    await page.getByRole('link', { name: 'app 01' }).waitFor();
    await page.getByRole('button', { name: 'Previous page' }).click();
    await page.getByRole('link', { name: 'app 21' }).waitFor();
    expect(tab.errors).toEqual([]);
    await tab.close();
  });

  it('a read-only principal (apps:read) sees no write control', async () => {
    const reader = await createClient(server.fixture.auth, { scopes: ['apps:read'] });
    const target = await server.fixture.auth.apps.create({ tenantId: 'acme', name: 'Read me', scopes: ['streams:read'], customClaims: { team: 'ops' } });
    const tab = await signedIn(reader);
    const { page } = tab;
    await page.getByText('read-only').waitFor();
    expect(await page.getByRole('button', { name: 'Create app' }).count()).toBe(0);
    await page.getByRole('link', { name: 'Read me' }).click();
    await page.getByRole('heading', { name: 'Read me', level: 1 }).waitFor();
    await page.getByRole('table', { name: 'Tokens of this app' }).waitFor();
    for (const name of ['Add token', 'Regenerate', 'Delete token', 'Delete app', 'Save changes']) {
      expect(await page.getByRole('button', { name }).count(), name).toBe(0);
    }
    expect(await page.getByRole('textbox').count()).toBe(0);
    expect(await page.getByRole('main').textContent()).toContain('"team": "ops"');
    await checkAccessibility(page, 'app-read-only');
    // The create screen is not reachable by URL either.
    await page.goto(`${server.consoleUrl}#/apps/new`);
    await page.getByRole('heading', { name: 'Apps', level: 1 }).waitFor();
    expect(await page.getByLabel('Name', { exact: true }).count()).toBe(0);
    expect(target.app.id).toMatch(/^app_/);
    expect(tab.errors).toEqual([]);
    await tab.close();
  });

  it("another tenant's app is invisible: not listed, not found by id, its token not active", async () => {
    const foreign = await server.fixture.auth.apps.create({ tenantId: 'globex', name: 'Globex secret app', scopes: ['storage:read'] });
    const foreignJwt = await accessToken(server.fixture.app, foreign.app.id, foreign.value);
    const tab = await signedIn(admin, { allowErrors: /status of 404/ });
    const { page } = tab;
    await page.getByRole('table', { name: 'Apps of this tenant' }).waitFor();
    expect(await page.getByText('Globex secret app').count()).toBe(0);
    await page.goto(`${server.consoleUrl}#/apps/${foreign.app.id}`);
    await expect.poll(() => page.getByRole('alert').textContent()).toBe('No such app in this tenant.');
    expect(await page.getByText('Globex secret app').count()).toBe(0);
    for (const token of [foreignJwt, foreign.value]) {
      await page.getByRole('link', { name: 'Token debugger' }).click();
      await page.getByLabel('Token', { exact: true }).fill(token);
      await page.getByRole('button', { name: 'Inspect' }).click();
      await page.getByText('Not active').waitFor();
    }
    expect(tab.errors).toEqual([]);
    await tab.close();
  });

  it('token debugger: decodes a JWT, shows what the server says with an expiry countdown, and says why not', async () => {
    const subject = await createClient(server.fixture.auth, { scopes: ['notarization:read'] });
    const jwt = await accessToken(server.fixture.app, subject.clientId, subject.secret);
    const tab = await signedIn();
    const { page } = tab;
    await page.getByRole('link', { name: 'Token debugger' }).click();
    await page.getByRole('heading', { name: 'Token debugger', level: 1 }).waitFor();
    await page.getByRole('button', { name: 'Inspect' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('Paste an access token');
    await page.getByLabel('Token', { exact: true }).fill(jwt);
    await page.getByRole('button', { name: 'Inspect' }).click();
    await page.getByText('Active', { exact: true }).waitFor();
    const main = page.getByRole('main');
    expect(await main.textContent()).toContain('"typ": "at+jwt"');
    expect(await main.textContent()).toContain(`"client_id": "${subject.clientId}"`);
    expect(await main.textContent()).toContain('notarization:read');
    await expect.poll(async () => /Expiresin 9 min \d+ s/.test((await main.textContent()) ?? '')).toBe(true);
    await checkAccessibility(page, 'debugger');

    // An API token: opaque, active.
    await page.getByLabel('Token', { exact: true }).fill(subject.secret);
    await page.getByRole('button', { name: 'Inspect' }).click();
    await page.getByText('An API token: an opaque value').waitFor();
    await page.getByText('Active', { exact: true }).waitFor();

    // A revoked one, and a malformed one.
    await server.fixture.auth.apps.deleteToken('acme', subject.clientId, subject.tokenId);
    await page.getByLabel('Token', { exact: true }).fill(jwt);
    await page.getByRole('button', { name: 'Inspect' }).click();
    await page.getByText('Not active').waitFor();
    expect(await main.textContent()).toContain('revoked');
    await page.getByLabel('Token', { exact: true }).fill('not a token');
    await page.getByRole('button', { name: 'Inspect' }).click();
    await page.getByText('Not a JWT').waitFor();
    expect(tab.errors).toEqual([]);
    await tab.close();
  });
  it("issue 25 item 7: the debugger says in a sentence why a token of this tenant is not active; another tenant's token stays unexplained", async () => {
    const auth = server.fixture.auth;
    const gone = await createClient(auth, { scopes: ['storage:read'] });
    const goneJwt = await accessToken(server.fixture.app, gone.clientId, gone.secret);
    await auth.apps.delete('acme', gone.clientId);
    const revoked = await createClient(auth, { scopes: ['storage:read'] });
    await auth.apps.deleteToken('acme', revoked.clientId, revoked.tokenId);
    const foreign = await createClient(auth, { tenant: 'globex', scopes: ['storage:read'] });
    const foreignJwt = await accessToken(server.fixture.app, foreign.clientId, foreign.secret);
    await auth.apps.deleteToken('globex', foreign.clientId, foreign.tokenId);
    // Expired an hour ago, signed by our own key for this tenant (as a token minted then would be).
    const live = await createClient(auth, { scopes: ['storage:read'] });
    const { header, payload } = decodeJwt(await accessToken(server.fixture.app, live.clientId, live.secret));
    const now = Math.floor(Date.now() / 1000);
    const expired = await new SignJWT({ ...payload, iat: now - 4200, exp: now - 3600 }).setProtectedHeader(header as never).sign(await ourSigningKey(server.fixture.store));
    const { privateKey } = await generateKeyPair('RS256');
    const unknownKey = await new SignJWT(payload).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: 'not-ours' }).sign(privateKey);

    const tab = await signedIn();
    const { page } = tab;
    await page.getByRole('link', { name: 'Token debugger' }).click();
    await page.getByRole('heading', { name: 'Token debugger', level: 1 }).waitFor();
    const verdict = page.getByRole('region', { name: 'What the server says' });
    const inspect = async (token: string) => {
      await page.getByLabel('Token', { exact: true }).fill(token);
      await page.getByRole('button', { name: 'Inspect' }).click();
      await verdict.getByText('Not active').waitFor();
      const text = (await verdict.textContent()) ?? '';
      return text;
    };
    expect(await inspect(expired)).toMatch(/Not active It expired .+ \(1 hour ago\)\./);
    await expect.poll(async () => inspect(goneJwt)).toContain('Its app was deleted, and every token of that app with it.');
    await checkAccessibility(page, 'debugger-not-active');
    await expect.poll(async () => inspect(revoked.secret)).toContain('It was deleted (revoked): it no longer works.');
    await expect.poll(async () => inspect(unknownKey)).toContain('It was not signed by any key of this server.');
    // Another tenant's revoked token: nothing said of it, not even that it is dead for a reason.
    for (const token of [foreignJwt, foreign.secret]) {
      await expect.poll(async () => inspect(token)).toContain('The server says no more');
      expect(await verdict.textContent()).not.toMatch(/revoked|deleted|expired/);
    }
    expect(tab.errors).toEqual([]);
    await tab.close();
  });

  it('issue 15: a private_key_jwt app shows its public keys; Add key (a JWK, a PEM) and Delete key behind a confirmation; a private key is refused before sending', async () => {
    const { generateKeyPair, exportJWK, exportSPKI } = await import('jose');
    const first = { ...(await exportJWK((await generateKeyPair('ES256', { extractable: true })).publicKey)), kid: 'laptop-2026' };
    const created = await server.fixture.auth.apps.create({
      tenantId: 'acme',
      name: 'Key signer',
      scopes: ['notarization:read'],
      tokenEndpointAuthMethod: 'private_key_jwt',
      jwks: { keys: [first] },
    });
    const tab = await signedIn(admin, { allowErrors: /status of 400/ });
    const { page } = tab;
    await page.goto(`${server.consoleUrl}#/apps/${created.app.id}`);
    await page.getByRole('heading', { name: 'Public keys' }).waitFor();
    await page.getByRole('cell', { name: 'laptop-2026', exact: true }).waitFor();
    expect(await page.getByRole('button', { name: 'Add token' }).count()).toBe(0);
    // A private key pasted by mistake never leaves the page.
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    await page.getByLabel('Public key', { exact: true }).fill(JSON.stringify(await exportJWK(privateKey)));
    await page.getByRole('button', { name: 'Add key' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('private key');
    expect((await server.fixture.auth.apps.listKeys('acme', created.app.id)).items).toHaveLength(1);
    // A PEM public key is added.
    const pem = await exportSPKI((await generateKeyPair('ES256', { extractable: true })).publicKey);
    await page.getByLabel('Public key', { exact: true }).fill(pem);
    await page.getByRole('button', { name: 'Add key' }).click();
    await expect.poll(async () => (await server.fixture.auth.apps.listKeys('acme', created.app.id)).items.length).toBe(2);
    await checkAccessibility(page, 'keys');
    // Delete the first key, behind a dialog that says it cannot be undone.
    await page.getByRole('button', { name: 'Delete key laptop-2026' }).click();
    const dialog = page.getByRole('dialog');
    expect(await dialog.textContent()).toContain('cannot be undone');
    await checkAccessibility(page, 'delete-key');
    await dialog.getByRole('button', { name: 'Delete' }).click();
    await expect.poll(async () => (await server.fixture.auth.apps.listKeys('acme', created.app.id)).items.map((k) => k.kid)).not.toContain('laptop-2026');
    await expect.poll(() => page.getByRole('cell', { name: 'laptop-2026', exact: true }).count()).toBe(0);
    expect(tab.errors).toEqual([]);
    await tab.close();
  });
});
