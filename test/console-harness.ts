/**
 * The console's browser tests: a real Chromium (Debian's, driven by playwright-core) against the
 * real routers on a real SQLite file, listening on loopback. One browser per test file; each test
 * gets a fresh context (no shared cookies, storage or clipboard) whose console errors and page
 * errors fail it. axe-core checks each screen in light and dark.
 *
 * `CONSOLE_SCREENSHOTS=1` also writes each screen to docs/console/<name>-<scheme>.png (for the
 * README); CI leaves them alone.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { AxeBuilder } from '@axe-core/playwright';
import express from 'express';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { expect } from 'vitest';
import type { ConsoleOptions } from '../src/index.js';
import { setup, type Fixture, type FixtureOptions } from './helpers.js';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** Without Chromium the browser tests skip on a developer's machine, and fail in CI. */
export const HAVE_CHROMIUM = existsSync(CHROMIUM);
if (!HAVE_CHROMIUM && process.env.CI === 'true') {
  throw new Error(`the console tests need Chromium at ${CHROMIUM} (apt-get install -y chromium; .ci/run does it)`);
}

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SHOTS = process.env.CONSOLE_SCREENSHOTS === '1' ? join(ROOT, 'docs/console') : undefined;

/** Generous on a slow 2-core CI machine; a passing step takes a fraction of it. */
export const STEP_TIMEOUT = 15_000;
export const TEST_TIMEOUT = 90_000;

export async function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60_000,
    // As root, and on a machine whose network is closed: no sandbox, no background traffic.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
}

export interface ConsoleServer {
  fixture: Fixture;
  url: string;
  /** The console page's URL. */
  consoleUrl: string;
  close(): Promise<void>;
}

/**
 * setup() (SQLite in a temp dir, the test host app whose every response of ours is checked against
 * the OpenAPI document) with the console mounted at `path`, listening on 127.0.0.1.
 */
export async function consoleServer(
  options: FixtureOptions = {},
  mount: {
    path?: string;
    console?: ConsoleOptions;
    before?: (app: Fixture['app']) => void;
    /** Serve the whole host under this prefix, stripped before it reaches the host (as a rewriting proxy does). */
    prefix?: string;
  } = {},
): Promise<ConsoleServer> {
  const fixture = await setup(options);
  const path = mount.path ?? '/console';
  mount.before?.(fixture.app);
  fixture.app.use(path, fixture.auth.console(mount.console));
  let handler = fixture.app;
  if (mount.prefix) {
    handler = express();
    handler.use(mount.prefix, fixture.app);
  }
  const server: Server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    fixture,
    url,
    consoleUrl: `${url}${mount.prefix ?? ''}${path}/`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await fixture.cleanup();
    },
  };
}

export interface Tab {
  context: BrowserContext;
  page: Page;
  /** Console errors, page errors and failed requests seen so far. */
  errors: string[];
  close(): Promise<void>;
}

/** A fresh context and page; every console error or uncaught page error is recorded. */
export async function openTab(browser: Browser, options: { colorScheme?: 'light' | 'dark'; allowErrors?: RegExp } = {}): Promise<Tab> {
  const context = await browser.newContext({
    acceptDownloads: true,
    colorScheme: options.colorScheme ?? 'light',
    viewport: { width: 1200, height: 860 },
    deviceScaleFactor: 1,
    locale: 'en-US',
    timezoneId: 'UTC',
  });
  context.setDefaultTimeout(STEP_TIMEOUT);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    const text = message.text();
    // The browser logs every non-2xx fetch as a console error; expected refusals are allowed by name.
    if (options.allowErrors?.test(text)) return;
    errors.push(`console: ${text}`);
  });
  page.on('pageerror', (error) => errors.push(`pageerror: ${error.message}`));
  return {
    context,
    page,
    errors,
    async close() {
      await context.close();
    },
  };
}

/** No serious or critical axe violation on the current screen, in light and in dark. */
export async function checkAccessibility(page: Page, name: string): Promise<void> {
  for (const colorScheme of ['light', 'dark'] as const) {
    await page.emulateMedia({ colorScheme });
    // Wait for the scheme's colours to apply (no transition; one frame).
    await page.evaluate('new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)))');
    const result = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']).analyze();
    const bad = result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(', ')}`);
    expect(bad, `axe on ${name} (${colorScheme})`).toEqual([]);
    if (SHOTS) {
      mkdirSync(SHOTS, { recursive: true });
      // A modal's backdrop covers the viewport only: show a dialog as the user sees it.
      const modal = (await page.locator('dialog[open]').count()) > 0;
      const file = join(SHOTS, `${name}-${colorScheme}.png`);
      await page.screenshot({ path: file, fullPage: !modal, animations: 'disabled', caret: 'hide' });
      // Smaller files for the repository and the package (Debian's pngquant, when installed).
      if (existsSync('/usr/bin/pngquant')) spawnSync('/usr/bin/pngquant', ['--force', '--skip-if-larger', '--quality', '65-90', '--speed', '1', '--output', file, file]);
    }
  }
  await page.emulateMedia({ colorScheme: 'light' });
}

/** The total gzipped size of the built console script and stylesheet, bytes. */
export function bundleSize(): { script: number; style: number; total: number } {
  const dir = join(ROOT, 'dist/console');
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { script: string; style: string };
  const gz = (f: string) => gzipSync(readFileSync(join(dir, f)), { level: 9 }).length;
  const script = gz(manifest.script);
  const style = gz(manifest.style);
  return { script, style, total: script + style };
}

/** Sign in through the form with an app's client id and secret. */
export async function signIn(page: Page, clientId: string, secret: string): Promise<void> {
  await page.getByLabel('Client ID').fill(clientId);
  await page.getByLabel('Client secret').fill(secret);
  await page.getByRole('button', { name: 'Sign in' }).click();
}
