/**
 * Issue 25: the console as operators use it, in a real Chromium on SQLite, driven by accessible
 * names. Every screen at 390×844 and 1280×900, light and dark: no horizontal overflow, every
 * action inside the viewport, axe clean (screenshots with CONSOLE_SCREENSHOTS=1). The apps list
 * searches, sorts, filters and counts; confirmations are visible; form errors sit by their field;
 * the audit log filters by event and names the actor; the curl snippet has its own Copy.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkAccessibility, consoleServer, HAVE_CHROMIUM, launch, openTab, signIn, TEST_TIMEOUT, type ConsoleServer } from './console-harness.js';
import { CATALOGUE, tokenRequest } from './helpers.js';

const ADMIN_SCOPES = [...new Set([...CATALOGUE, 'apps:read', 'apps:write'])];
const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1280, height: 900 };

/** Nothing scrolls sideways, and every button and link on screen lies inside the viewport. */
async function expectFits(page: Page, screen: string): Promise<void> {
  const result = await page.evaluate(`(() => {
    const width = document.documentElement.clientWidth;
    const overflow = document.documentElement.scrollWidth - width;
    const outside = [...document.querySelectorAll('main button, main a, main select, main input, main textarea, header a, header button')]
      .filter((el) => el.getClientRects().length > 0)
      .map((el) => [el.textContent.trim() || el.getAttribute('aria-label') || el.id || el.tagName, el.getBoundingClientRect()])
      .filter(([, r]) => r.left < -1 || r.right > width + 1)
      .map(([name, r]) => name + ' [' + Math.round(r.left) + ', ' + Math.round(r.right) + ']');
    return { overflow, outside };
  })()`);
  expect(result, `${screen}: horizontal overflow or controls off-screen`).toEqual({ overflow: 0, outside: [] });
}

describe.skipIf(!HAVE_CHROMIUM)('issue 25: the console as operators use it', { timeout: TEST_TIMEOUT * 2 }, () => {
  let browser: Browser;
  let server: ConsoleServer;
  let admin: { clientId: string; secret: string };

  beforeAll(async () => {
    browser = await launch();
    server = await consoleServer({ accessTokenTtl: 600, clientLockout: { attempts: 3, window: 300, duration: 900 } });
    server.fixture.app.set('trust proxy', true);
    const auth = server.fixture.auth;
    const made = await auth.apps.create({ tenantId: 'ops', name: 'Console admin', scopes: ADMIN_SCOPES, token: { name: 'console' } });
    admin = { clientId: made.app.id, secret: made.value };
    const webhook = await auth.apps.create({
      tenantId: 'ops',
      name: 'Invoice webhook with a rather long name for phones',
      description: 'Posts notarized invoices',
      scopes: ['notarization:read', 'notarization:write'],
      token: { name: 'primary' },
    });
    // Distinct creation instants (the list sorts newest first; one millisecond has no order).
    await new Promise((resolve) => setTimeout(resolve, 3));
    await auth.apps.create({ tenantId: 'ops', name: 'Nightly backup', scopes: ['storage:read', 'storage:write'], token: { name: 'cron', expiresIn: 3 * 86_400 } });
    await new Promise((resolve) => setTimeout(resolve, 3));
    await auth.apps.create({ tenantId: 'ops', name: 'Stream reader', scopes: ['streams:read'] });
    // Used, so that the list shows a last use and usage.
    expect((await tokenRequest(server.fixture.app, webhook.app.id, webhook.value)).status).toBe(200);
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  async function signedIn(viewport = DESKTOP) {
    const tab = await openTab(browser, { allowErrors: /status of 4\d\d/ });
    await tab.page.setViewportSize(viewport);
    await tab.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
    await tab.page.goto(server.consoleUrl);
    await signIn(tab.page, admin.clientId, admin.secret);
    await tab.page.getByRole('heading', { name: 'Apps', level: 1 }).waitFor();
    return tab;
  }

  for (const [size, viewport] of [
    ['phone', PHONE],
    ['desktop', DESKTOP],
  ] as const) {
    it(`every screen at ${viewport.width} px, light and dark: no horizontal overflow, actions on screen, axe clean`, async () => {
      const tab = await signedIn(viewport);
      const { page } = tab;
      const suffix = size === 'phone' ? '-phone' : '';
      const screen = async (name: string) => {
        await expectFits(page, name);
        await checkAccessibility(page, `${name}${suffix}`);
        await expectFits(page, `${name} (after axe)`);
      };
      await page.getByRole('link', { name: 'Nightly backup' }).waitFor();
      await screen('apps');

      await page.getByRole('link', { name: /Invoice webhook/ }).click();
      await page.getByRole('heading', { name: /Invoice webhook/, level: 1 }).waitFor();
      await page.getByRole('table', { name: 'Tokens of this app' }).getByRole('button', { name: 'Regenerate' }).waitFor();
      await screen('app');
      // The row actions are reachable: the buttons are on screen and work.
      await page.getByRole('table', { name: 'Tokens of this app' }).getByRole('button', { name: 'Regenerate' }).click();
      await page.getByRole('dialog', { name: 'Regenerate token primary?' }).waitFor();
      await screen('regenerate');
      await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();

      await page.getByRole('link', { name: 'Apps', exact: true }).click();
      await page.getByRole('button', { name: 'Create app' }).click();
      await page.getByRole('heading', { name: 'Create app', level: 1 }).waitFor();
      await screen('create-app');
      await page.getByLabel('Name', { exact: true }).fill(`Phone check ${size}`);
      await page.getByRole('checkbox', { name: 'streams:read', exact: true }).check();
      await page.getByRole('button', { name: 'Create', exact: true }).click();
      await page.getByRole('heading', { name: `Save the client secret of Phone check ${size}` }).waitFor();
      await screen('secret');
      await page.getByRole('button', { name: 'Done' }).click();
      await page.getByRole('dialog', { name: 'Is the secret saved?' }).waitFor();
      await screen('secret-confirm');
      await page.getByRole('dialog').getByRole('button', { name: 'Leave' }).click();

      await page.getByRole('link', { name: 'Token debugger' }).click();
      await page.getByRole('heading', { name: 'Token debugger', level: 1 }).waitFor();
      await screen('debugger');
      expect(tab.errors).toEqual([]);
      await tab.close();
    });
  }

  it('the apps list: newest first, a total, search by name or client id, sort, filters; last use in words', async () => {
    const tab = await signedIn();
    const { page } = tab;
    const table = page.getByRole('table', { name: 'Apps of this tenant' });
    const names = async () => (await table.getByRole('link').allTextContents()).map((t) => t.trim());
    const count = page.getByRole('status').filter({ hasText: /apps?\b/ });
    await expect.poll(names).toEqual(expect.arrayContaining(['Stream reader', 'Nightly backup']));
    // Newest first: the apps created by the screens test come before the seeded ones.
    const first = await names();
    expect(first.indexOf('Stream reader')).toBeLessThan(first.indexOf('Nightly backup'));
    expect(first.indexOf('Nightly backup')).toBeLessThan(first.indexOf('Console admin'));
    await expect.poll(() => count.textContent()).toMatch(/^\d+ apps$/);
    // The used app says when, in words.
    const used = table.getByRole('row').filter({ hasText: 'Invoice webhook' });
    await expect.poll(() => used.textContent()).toMatch(/just now|minute ago|minutes ago/);
    // Each row draws its 14-day trend from the usage API: the used app's has its grant, another's is flat.
    await used.getByRole('img', { name: /^Requests per day, last 14 days: [1-9]\d* in all, at most [1-9]\d* a day$/ }).waitFor();
    await table.getByRole('row').filter({ hasText: 'Stream reader' }).getByRole('img', { name: /^Requests per day, last 14 days: 0 in all/ }).waitFor();

    await page.getByLabel('Search by name or client ID').fill('NIGHTLY');
    await expect.poll(names).toEqual(['Nightly backup']);
    await expect.poll(() => count.textContent()).toBe('1 matching app');
    await page.getByLabel('Search by name or client ID').fill(admin.clientId.slice(0, 14));
    await expect.poll(names).toEqual(['Console admin']);
    await page.getByLabel('Search by name or client ID').fill('nothing like this');
    await page.getByText('No app matches. Change the search or the filters.').waitFor();
    await page.getByLabel('Search by name or client ID').fill('');

    await page.getByLabel('Sort by').selectOption({ label: 'Name, A to Z' });
    await expect.poll(async () => (await names()).slice(0, 2)).toEqual(['Console admin', 'Invoice webhook with a rather long name for phones']);
    await page.getByLabel('Sort by').selectOption({ label: 'Most requests, 30 days' });
    await expect.poll(async () => (await names()).slice(0, 2).sort()).toEqual(['Console admin', 'Invoice webhook with a rather long name for phones']);
    await page.getByLabel('Sort by').selectOption({ label: 'Recently used first' });
    await expect.poll(async () => (await names())[0]).toMatch(/Invoice webhook|Console admin/);

    await page.getByLabel('Scope').selectOption('storage:read');
    // The admin holds every scope of the catalogue, storage:read among them.
    await expect.poll(names).toEqual(['Console admin', 'Nightly backup']);
    await page.getByLabel('Scope').selectOption({ label: 'Any scope' });
    await page.getByLabel('Show').selectOption({ label: 'With a token expiring soon' });
    await expect.poll(names).toEqual(['Nightly backup']);
    await page.getByLabel('Show').selectOption({ label: 'Unused for 30 days' });
    await page.getByText('No app matches. Change the search or the filters.').waitFor();

    // Locked: three wrong secrets from one address throttle it for this app.
    const target = (await server.fixture.auth.apps.list('ops', { search: 'Stream reader' })).items[0]!;
    for (let i = 0; i < 3; i++) {
      await tokenRequest(server.fixture.app, target.id, 'eat_wrong').set('X-Forwarded-For', '198.51.100.7');
    }
    await page.getByLabel('Show').selectOption({ label: 'Locked out now' });
    await expect.poll(names).toEqual(['Stream reader']);
    await expect.poll(() => count.textContent()).toBe('1 app on this page');
    expect(tab.errors).toEqual([]);
    await tab.close();
  });

  it('visible feedback: a save shows a confirmation on screen; a form error sits by its field, marked and focused', async () => {
    const tab = await signedIn();
    const { page } = tab;
    await page.getByRole('button', { name: 'Create app' }).click();
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    const name = page.getByLabel('Name', { exact: true });
    await expect.poll(() => name.getAttribute('aria-invalid')).toBe('true');
    await expect.poll(() => page.evaluate('document.activeElement && document.activeElement.id')).toBe('app-name');
    await expect.poll(() => page.getByRole('alert').textContent()).toBe('Give the app a name.');
    await name.fill('Feedback check');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await expect.poll(() => page.evaluate('document.activeElement && document.activeElement.id')).toBe('app-scope-first');
    await page.getByRole('checkbox', { name: 'streams:read', exact: true }).check();
    await page.getByLabel('Custom claims (JSON)').fill('{"iss": "x"}');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    // The server's refusal names customClaims: it lands beside that field.
    const claims = page.getByLabel('Custom claims (JSON)');
    await expect.poll(() => claims.getAttribute('aria-invalid')).toBe('true');
    await expect.poll(() => page.evaluate('document.activeElement && document.activeElement.id')).toBe('app-claims');
    await claims.fill('');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await page.getByRole('heading', { name: 'Save the client secret of Feedback check' }).waitFor();

    // The curl snippet has its own Copy, and the guard says how to get a new secret.
    await page.getByRole('button', { name: 'Copy curl command' }).click();
    const toast = page.locator('.toast');
    await expect.poll(() => toast.textContent()).toBe('Copied the curl command to the clipboard.');
    expect(await toast.isVisible()).toBe(true);
    expect(await page.evaluate<string>('navigator.clipboard.readText()')).toContain('curl');
    await page.getByRole('button', { name: 'Done' }).click();
    const guard = page.getByRole('dialog', { name: 'Is the secret saved?' });
    expect(await guard.textContent()).toContain('will not be shown again');
    expect(await guard.textContent()).toContain('Regenerate');
    await guard.getByRole('button', { name: 'Leave' }).click();

    await page.getByRole('heading', { name: 'Feedback check', level: 1 }).waitFor();
    await page.getByLabel('Description', { exact: true }).fill('Checks feedback');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await expect.poll(() => toast.textContent()).toBe('Saved the app.');
    expect(await toast.isVisible()).toBe(true);
    await checkAccessibility(page, 'saved-toast');
    expect(tab.errors).toEqual([]);
    await tab.close();
  });

  it('the app page: tokens first with their state and scopes; the audit log names who acted and filters by event', async () => {
    const tab = await signedIn();
    const { page } = tab;
    await page.getByRole('link', { name: 'Nightly backup' }).click();
    await page.getByRole('heading', { name: 'Nightly backup', level: 1 }).waitFor();
    // Tokens come before the details form.
    const order = await page.evaluate(`(() => {
      const tokens = document.getElementById('tokens-title');
      const name = document.querySelector('main form');
      return tokens && name ? Boolean(tokens.compareDocumentPosition(name) & Node.DOCUMENT_POSITION_FOLLOWING) : null;
    })()`);
    expect(order).toBe(true);
    const tokens = page.getByRole('table', { name: 'Tokens of this app' });
    const cron = tokens.getByRole('row').filter({ has: page.getByRole('rowheader', { name: /cron/ }) });
    await expect.poll(() => cron.textContent()).toMatch(/Expiring soon/);
    await expect.poll(() => cron.textContent()).toMatch(/in 3 days|in 2 days/);

    await page.getByLabel('Description', { exact: true }).fill('Backs up at night');
    await page.getByRole('button', { name: 'Save changes' }).click();
    const log = page.getByRole('table', { name: 'Audit events of this app, newest first' });
    await expect.poll(() => log.getByRole('row').nth(1).textContent()).toContain('App edited');
    await expect.poll(() => log.getByRole('row').nth(1).textContent()).toContain(`you (${admin.clientId})`);
    await page.getByLabel('Event', { exact: true }).selectOption({ label: 'Token created' });
    await expect.poll(async () => (await log.getByRole('row').allTextContents()).slice(1).map((t) => /Token created/.test(t))).toEqual([true]);
    await page.getByLabel('Event', { exact: true }).selectOption({ label: 'Key deleted' });
    await page.getByText('No events of this kind.').waitFor();

    // The usage chart (GET /apps/:id/usage): the webhook's grant shows as accepted, per hour, then per day.
    await page.getByRole('link', { name: 'Apps', exact: true }).click();
    await page.getByRole('link', { name: /Invoice webhook/ }).click();
    await page.getByRole('img', { name: /^Requests per hour in the last 24 hours: [1-9]\d* accepted, 0 refused, 0 rate-limited\.$/ }).waitFor();
    await page.getByRole('group', { name: 'Usage period' }).getByRole('button', { name: '30 days' }).click();
    await page.getByRole('img', { name: /^Requests per day in the last 30 days: [1-9]\d* accepted/ }).waitFor();
    expect(await page.getByRole('button', { name: '30 days' }).getAttribute('aria-pressed')).toBe('true');
    expect(tab.errors).toEqual([]);
    await tab.close();
  });
});
