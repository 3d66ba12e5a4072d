/**
 * Issue 21, finding 9: a host bootstraps the first admin of its *own* app. `--config` reads the
 * host's createAppTokens() options (catalogue, token prefix, store), a second admin for a tenant is
 * refused unless `--force`, and where the secret is printed it says when it expires.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from '../src/cli.js';
import { createAppTokens } from '../src/create-app-tokens.js';
import { createSqliteStore } from '../adapters/sql/index.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'eat-cli-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function run(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string[]; stderr: string[] }> {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const code = await runCli(args, { env, stdout: (l) => stdout.push(l), stderr: (l) => stderr.push(l) });
  return { code, stdout, stderr };
}

describe('bootstrap for the host’s own app (issue 21, finding 9)', () => {
  it('--config: the admin holds the root of the host’s catalogue, its secret has the host’s prefix, and it works against the host’s instance', async () => {
    const dir = tempDir();
    const db = join(dir, 'host.db');
    const config = join(dir, 'auth.config.mjs');
    writeFileSync(
      config,
      `export default { scopes: ['invoices:read', 'invoices:write', 'apps:read', 'apps:write'], tokenPrefix: 'inv', issuer: 'https://api.example.com' };\n`,
    );
    const out = await run(['bootstrap', '--tenant', 'acme', '--config', config], { DATABASE_URL: `sqlite:${db}` });
    expect(out.code, out.stderr.join('\n')).toBe(0);
    expect(out.stdout).toHaveLength(1);
    const creds = JSON.parse(out.stdout[0]!) as { tenant: string; client_id: string; client_secret: string };
    expect(Object.keys(creds)).toEqual(['tenant', 'client_id', 'client_secret']);
    expect(creds.client_secret.startsWith('inv_')).toBe(true);
    // No note about the example's catalogue: the host's was used.
    expect(out.stderr.join('\n')).not.toContain("example server's catalogue");
    const auth = createAppTokens({
      store: createSqliteStore({ filename: db }),
      issuer: 'https://api.example.com',
      scopes: ['invoices:read', 'invoices:write', 'apps:read', 'apps:write'],
      tokenPrefix: 'inv',
    });
    try {
      const app = await auth.apps.get('acme', creds.client_id);
      expect(app.scopes).toEqual(['invoices:*', 'apps:*']);
      expect(app.effectiveScopes).toEqual(expect.arrayContaining(['invoices:*', 'apps:*']));
    } finally {
      await auth.close();
    }
  });

  it('--config may export a function returning the options; a config without scopes or that cannot load is exit 2 naming --config', async () => {
    const dir = tempDir();
    const fn = join(dir, 'fn.mjs');
    writeFileSync(fn, `export default async () => ({ scopes: ['reports:read'] });\n`);
    const ok = await run(['bootstrap', '--tenant', 'acme', '--config', fn], { DATABASE_URL: 'memory:' });
    expect(ok.code, ok.stderr.join('\n')).toBe(0);
    const none = join(dir, 'none.mjs');
    writeFileSync(none, `export default { issuer: 'https://x.example' };\n`);
    for (const [args, message] of [
      [['--config', none], /--config: .*no "scopes"/],
      [['--config', join(dir, 'missing.mjs')], /--config: cannot load/],
      [['--config', fn, '--scopes', 'a:read'], /--config: the scopes come from the config file/],
    ] as Array<[string[], RegExp]>) {
      const res = await run(['bootstrap', '--tenant', 'acme', ...args], { DATABASE_URL: 'memory:' });
      expect(res.code, args.join(' ')).toBe(2);
      expect(res.stdout).toEqual([]);
      expect(res.stderr.join('\n')).toMatch(message);
    }
  });

  it('without --scopes, SCOPES or --config it says that the example server’s catalogue was used', async () => {
    const res = await run(['bootstrap', '--tenant', 'acme'], { DATABASE_URL: 'memory:' });
    expect(res.code).toBe(0);
    expect(res.stderr.join('\n')).toMatch(/example server's catalogue \(notarization:\* storage:\* streams:\* apps:\*\)/);
  });

  it('a second admin for the same tenant is refused (exit 2, naming the existing admin) unless --force; another tenant is unaffected', async () => {
    const dir = tempDir();
    const env = { DATABASE_URL: `sqlite:${join(dir, 'tokens.db')}` };
    const first = await run(['bootstrap', '--tenant', 'acme'], env);
    expect(first.code).toBe(0);
    const { client_id } = JSON.parse(first.stdout[0]!) as { client_id: string };
    const again = await run(['bootstrap', '--tenant', 'acme'], env);
    expect(again.code).toBe(2);
    expect(again.stdout).toEqual([]);
    expect(again.stderr.join('\n')).toContain(client_id);
    expect(again.stderr.join('\n')).toContain('--force');
    const other = await run(['bootstrap', '--tenant', 'globex'], env);
    expect(other.code).toBe(0);
    const forced = await run(['bootstrap', '--tenant', 'acme', '--force'], env);
    expect(forced.code).toBe(0);
    expect((JSON.parse(forced.stdout[0]!) as { client_id: string }).client_id).not.toBe(client_id);
  });

  it('an app that does not hold the whole root is no admin: bootstrap still creates one', async () => {
    const dir = tempDir();
    const db = join(dir, 'tokens.db');
    const auth = createAppTokens({ store: createSqliteStore({ filename: db }), issuer: 'http://localhost:3000', scopes: ['storage:read', 'apps:read', 'apps:write'] });
    await auth.apps.create({ tenantId: 'acme', name: 'reader', scopes: ['storage:read'] });
    await auth.close();
    const res = await run(['bootstrap', '--tenant', 'acme', '--scopes', 'storage:read apps:read apps:write'], { DATABASE_URL: `sqlite:${db}` });
    expect(res.code, res.stderr.join('\n')).toBe(0);
  });

  it('says when the secret expires, after the JSON line (stdout stays one JSON line)', async () => {
    const res = await run(['bootstrap', '--tenant', 'acme'], { DATABASE_URL: 'memory:' });
    expect(res.code).toBe(0);
    expect(res.stdout).toHaveLength(1);
    const note = res.stderr.find((l) => l.includes('expires on'));
    expect(note).toBeDefined();
    const date = /expires on (\S+)/.exec(note!)![1]!;
    const days = (Date.parse(date) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(89);
    expect(days).toBeLessThan(91);
    expect(note).toContain('POST /tokens/refresh');
  });
});
