/**
 * The example server and the CLI as a user runs them: built JavaScript in child processes, real
 * HTTP on a listening port, a real SQLite file. `npm test` builds dist/ before vitest runs.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freshDatabase } from './postgres-server.js';

const ROOT = join(import.meta.dirname, '..');
const SERVER = join(ROOT, 'dist/examples/server.js');
const CLI = join(ROOT, 'dist/src/cli.js');
const dir = mkdtempSync(join(tmpdir(), 'eat-example-'));

function startServer(env: Record<string, string>): Promise<{ child: ChildProcess; output: () => string }> {
  const child = spawn(process.execPath, [SERVER], { cwd: dir, env: { ...process.env, ...env }, stdio: 'pipe' });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${output}`)), 20_000);
    child.stdout!.on('data', () => {
      if (output.includes('listening on')) {
        clearTimeout(timer);
        resolve({ child, output: () => output });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}: ${output}`));
    });
  });
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

function cli(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [CLI, ...args], { cwd: dir, env: { ...process.env, ...env }, encoding: 'utf8' });
}

beforeAll(() => {
  if (!existsSync(SERVER) || !existsSync(CLI)) throw new Error('run `npm run build` first (npm test does)');
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('README walkthrough', () => {
  it('runs verbatim: bootstrap → token → protected route → insufficient scope', async () => {
    const databaseUrl = `sqlite:${join(dir, 'walkthrough.db')}`;
    const server = await startServer({ PORT: '3000', DATABASE_URL: databaseUrl });
    try {
      const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
      const block = /<!-- walkthrough:start -->\s*```sh\n([\s\S]*?)```\s*<!-- walkthrough:end -->/.exec(readme)?.[1];
      expect(block, 'README walkthrough block').toBeTruthy();
      const run = spawnSync('bash', ['-euo', 'pipefail', '-c', block!], {
        cwd: ROOT,
        env: { ...process.env, DATABASE_URL: databaseUrl },
        encoding: 'utf8',
        timeout: 120_000,
      });
      expect(run.status, run.stderr).toBe(0);
      const lines = run.stdout.trim().split('\n');
      const creds = JSON.parse(lines[0]!) as Record<string, string>;
      expect(Object.keys(creds)).toEqual(['tenant', 'client_id', 'client_secret']);
      expect(creds.tenant).toBe('acme');
      expect(creds.client_secret).toMatch(/^eat_[0-9A-Za-z]{49}$/);
      // The token response the README describes, shown by the walkthrough itself.
      const grant = JSON.parse(lines[1]!) as Record<string, unknown>;
      expect(Object.keys(grant).sort()).toEqual(['access_token', 'expires_in', 'scope', 'token_type']);
      expect(grant).toMatchObject({ token_type: 'Bearer', expires_in: 3600, scope: 'notarization:read' });
      expect(grant.access_token).toMatch(/^eyJ/);
      expect(lines[2]).toBe('{"items":[]}');
      expect(lines[3]).toMatch(/^HTTP\/1\.1 403 Forbidden/);
      // The secret never reaches the server's log.
      expect(server.output()).not.toContain(creds.client_secret);
    } finally {
      await stop(server.child);
    }
  }, 180_000);
});

describe('example server', () => {
  it('serves a public health check and protects its routes, on memory: too', async () => {
    const server = await startServer({ PORT: '3917', DATABASE_URL: 'memory:' });
    try {
      const health = await fetch('http://localhost:3917/health');
      expect(health.status).toBe(200);
      expect(await health.json()).toEqual({ status: 'ok' });
      const denied = await fetch('http://localhost:3917/storage/objects');
      expect(denied.status).toBe(401);
      expect(denied.headers.get('www-authenticate')).toBe('Bearer realm="express-app-tokens"');
      const meta = (await (await fetch('http://localhost:3917/.well-known/oauth-authorization-server')).json()) as {
        issuer: string;
        scopes_supported: string[];
      };
      expect(meta.issuer).toBe('http://localhost:3917');
      expect(meta.scopes_supported).toEqual([
        'notarization:read',
        'notarization:write',
        'storage:read',
        'storage:write',
        'streams:read',
        'streams:write',
        'apps:read',
        'apps:write',
      ]);
    } finally {
      await stop(server.child);
    }
  });

  it('refuses a bad environment variable at start, naming it', async () => {
    for (const [env, message] of [
      [{ PORT: 'abc' }, 'PORT'],
      [{ PORT: '3918', RATE_LIMIT: 'lots' }, 'RATE_LIMIT'],
      [{ PORT: '3918', DATABASE_URL: 'mysql://x' }, 'DATABASE_URL'],
      [{ PORT: '3918', ISSUER: 'ftp://x' }, 'issuer'],
      [{ PORT: '3918', SIGNING_ALGORITHM: 'HS256' }, 'SIGNING_ALGORITHM'],
      [{ PORT: '3918', TRUST_PROXY: 'not an address' }, 'TRUST_PROXY'],
      [{ PORT: '3918', TRUST_PROXY: '99' }, 'TRUST_PROXY'],
    ] as const) {
      const run = spawnSync(process.execPath, [SERVER], { cwd: dir, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 20_000 });
      expect(run.status, JSON.stringify(env)).toBe(1);
      expect(run.stderr).toContain(message);
      expect(run.stderr).not.toMatch(/\n\s+at /); // no stack trace
    }
  });

  it('TRUST_PROXY sets the source the lockout throttles (issue 21, finding 3): past the threshold one forwarded address gets 429, another is served with the right secret', async () => {
    const databaseUrl = `sqlite:${join(dir, 'trust-proxy.db')}`;
    const boot = cli(['bootstrap', '--tenant', 'acme'], { DATABASE_URL: databaseUrl });
    expect(boot.status, boot.stderr).toBe(0);
    const { client_id, client_secret } = JSON.parse(boot.stdout) as { client_id: string; client_secret: string };
    const server = await startServer({ PORT: '3923', DATABASE_URL: databaseUrl, TRUST_PROXY: 'loopback' });
    const grant = (secret: string, from: string) =>
      fetch('http://localhost:3923/oauth/token', {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${client_id}:${secret}`).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
          'x-forwarded-for': from,
        },
        body: 'grant_type=client_credentials',
      });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 11; i++) statuses.push((await grant(`${client_secret.slice(0, -4)}XXXX`, '203.0.113.5')).status);
      expect(statuses.slice(0, 10).every((s) => s === 401)).toBe(true);
      expect(statuses[10]).toBe(429);
      const throttled = await grant(client_secret, '203.0.113.5');
      expect(throttled.status).toBe(429);
      expect(Number(throttled.headers.get('retry-after'))).toBeGreaterThan(0);
      expect((await grant(client_secret, '198.51.100.7')).status).toBe(200);
    } finally {
      await stop(server.child);
    }
  });

  it('runs on DATABASE_URL=postgres://…, and the CLI bootstraps into the same database', async () => {
    const databaseUrl = await freshDatabase(inject('postgresUrl'));
    const server = await startServer({ PORT: '3920', DATABASE_URL: databaseUrl });
    try {
      const boot = cli(['bootstrap', '--tenant', 'pg-tenant'], { DATABASE_URL: databaseUrl });
      expect(boot.status, boot.stderr).toBe(0);
      const creds = JSON.parse(boot.stdout) as { client_id: string; client_secret: string };
      const basic = Buffer.from(`${creds.client_id}:${creds.client_secret}`).toString('base64');
      const grant = await fetch('http://localhost:3920/oauth/token', {
        method: 'POST',
        headers: { Authorization: `Basic ${basic}`, 'Content-Type': 'application/x-www-form-urlencoded' },
        body: 'grant_type=client_credentials&scope=storage:read',
      });
      expect(grant.status).toBe(200);
      const { access_token } = (await grant.json()) as { access_token: string };
      const objects = await fetch('http://localhost:3920/storage/objects', { headers: { Authorization: `Bearer ${access_token}` } });
      expect(objects.status).toBe(200);
      expect(((await objects.json()) as { tenant: string }).tenant).toBe('pg-tenant');
      // The start-up line names the database without its password (issue 22, found by npm run chaos).
      const password = new URL(databaseUrl).password;
      expect(password).not.toBe('');
      expect(server.output()).toContain('listening on');
      expect(server.output()).not.toContain(`:${password}@`);
    } finally {
      await stop(server.child);
    }
  });

  it('declares the roles viewer, editor and apps-admin (issue 13): the bootstrap admin creates a viewer app whose tokens carry the role', async () => {
    const databaseUrl = `sqlite:${join(dir, 'roles.db')}`;
    const server = await startServer({ PORT: '3921', DATABASE_URL: databaseUrl });
    try {
      const boot = cli(['bootstrap', '--tenant', 'acme'], { DATABASE_URL: databaseUrl, PORT: '3921' });
      expect(boot.status, boot.stderr).toBe(0);
      const creds = JSON.parse(boot.stdout) as { client_id: string; client_secret: string };
      const grant = async (id: string, secret: string, scope?: string) => {
        const res = await fetch('http://localhost:3921/oauth/token', {
          method: 'POST',
          headers: { Authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`, 'Content-Type': 'application/x-www-form-urlencoded' },
          body: `grant_type=client_credentials${scope ? `&scope=${scope}` : ''}`,
        });
        expect(res.status).toBe(200);
        return (await res.json()) as { access_token: string; scope: string };
      };
      const admin = await grant(creds.client_id, creds.client_secret, 'apps:write notarization:* storage:* streams:*');
      const expected = {
        viewer: ['notarization:read', 'storage:read', 'streams:read'],
        editor: ['notarization:read', 'notarization:write', 'storage:read', 'storage:write', 'streams:read', 'streams:write'],
        'apps-admin': ['apps:read', 'apps:write'],
      } as const;
      for (const [role, scopes] of Object.entries(expected)) {
        const created = await fetch('http://localhost:3921/apps', {
          method: 'POST',
          headers: { Authorization: `Bearer ${admin.access_token}`, 'Content-Type': 'application/json' },
          body: JSON.stringify({ name: `${role} app`, roles: [role] }),
        });
        if (role === 'apps-admin') {
          // The admin's token above was narrowed to exclude apps:read: it may not assign apps-admin.
          expect(created.status).toBe(403);
          continue;
        }
        expect(created.status).toBe(201);
        const body = (await created.json()) as { app: { id: string; effectiveScopes: string[] }; value: string };
        expect([...body.app.effectiveScopes].sort()).toEqual([...scopes].sort());
        const token = await grant(body.app.id, body.value);
        expect(token.scope.split(' ').sort()).toEqual([...scopes].sort());
        expect(JSON.parse(Buffer.from(token.access_token.split('.')[1]!, 'base64url').toString()).roles).toEqual([role]);
      }
    } finally {
      await stop(server.child);
    }
  });

  it('uses ./data/app-tokens.db by default', async () => {
    const server = await startServer({ PORT: '3919', DATABASE_URL: '' });
    await stop(server.child);
    expect(existsSync(join(dir, 'data', 'app-tokens.db'))).toBe(true);
  });
});

/** A port this test holds, on every interface (as the example server listens). */
function holdPort(): Promise<{ port: number; release: () => Promise<void> }> {
  return new Promise((resolve, reject) => {
    const holder = createServer();
    holder.once('error', reject);
    holder.listen(0, () => {
      const { port } = holder.address() as AddressInfo;
      resolve({ port, release: () => new Promise((done) => holder.close(() => done())) });
    });
  });
}

describe('npm start', () => {
  it('exits non-zero saying the port is in use when it is, instead of claiming to listen', async () => {
    const held = await holdPort();
    try {
      const run = spawnSync(process.execPath, [SERVER], {
        cwd: dir,
        env: { ...process.env, PORT: String(held.port), DATABASE_URL: 'memory:' },
        encoding: 'utf8',
        timeout: 20_000,
      });
      expect(run.status).toBe(1);
      expect(run.stderr.trim()).toBe(`port ${held.port} is already in use (set PORT)`);
      expect(run.stdout).not.toContain('listening on');
    } finally {
      await held.release();
    }
  });

  it('prints its URL and the next command, and GET / names where to go', async () => {
    const server = await startServer({ PORT: '3921', DATABASE_URL: 'memory:' });
    try {
      await expect.poll(() => server.output()).toContain('next: npm run cli -- bootstrap --tenant acme');
      expect(server.output()).toContain('listening on http://localhost:3921');
      const landing = await fetch('http://localhost:3921/');
      expect(landing.status).toBe(200);
      const body = (await landing.json()) as Record<string, string>;
      expect(body).toMatchObject({ discovery: '/.well-known/oauth-authorization-server', jwks: '/.well-known/jwks.json', next: 'npm run cli -- bootstrap --tenant acme' });
      expect(body.readme).toContain('README.md');
      // The paths it names are served.
      for (const path of [body.discovery, body.jwks]) expect((await fetch(`http://localhost:3921${path}`)).status, path).toBe(200);
    } finally {
      await stop(server.child);
    }
  });

  it('signs with SIGNING_ALGORITHM, the variable rotate-keys reads', async () => {
    const server = await startServer({ PORT: '3922', DATABASE_URL: 'memory:', SIGNING_ALGORITHM: 'ES256' });
    try {
      const { keys } = (await (await fetch('http://localhost:3922/.well-known/jwks.json')).json()) as { keys: Array<{ alg: string; kty: string }> };
      expect(keys.map((k) => [k.kty, k.alg])).toEqual([['EC', 'ES256']]);
    } finally {
      await stop(server.child);
    }
  });
});

describe('CLI', () => {
  it('bootstrap prints one JSON line with working credentials; a second admin for the tenant only with --force (issue 21, finding 9)', () => {
    const env = { DATABASE_URL: `sqlite:${join(dir, 'cli.db')}` };
    const a = cli(['bootstrap', '--tenant', 'acme'], env);
    const refused = cli(['bootstrap', '--tenant', 'acme'], env);
    const b = cli(['bootstrap', '--tenant', 'acme', '--force'], env);
    expect(a.status, a.stderr).toBe(0);
    expect(a.stdout.trim().split('\n')).toHaveLength(1);
    // The expiry of the secret is said where it is printed (stderr: stdout stays one JSON line).
    expect(a.stderr).toMatch(/expires on \d{4}-\d\d-\d\dT/);
    const first = JSON.parse(a.stdout) as { client_id: string };
    expect(refused.status).toBe(2);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toContain(first.client_id);
    expect(refused.stderr).toContain('--force');
    expect(b.status, b.stderr).toBe(0);
    const second = JSON.parse(b.stdout) as { client_id: string };
    expect(first.client_id).not.toBe(second.client_id);
  });

  it('refuses bad arguments with exit code 2, naming the argument', () => {
    const cases: Array<[string[], RegExp]> = [
      [['bootstrap'], /--tenant: required/],
      [['bootstrap', '--tenant', 'bad tenant!'], /--tenant/],
      [['launch'], /unknown command/],
      [['bootstrap', '--tenant', 'acme', '--bogus'], /bogus/],
      [['bootstrap', '--tenant', 'acme', '--scopes', 'ok bad"scope'], /scopes\[1\]/],
    ];
    for (const [args, message] of cases) {
      const run = cli(args, { DATABASE_URL: 'memory:' });
      expect(run.status, args.join(' ')).toBe(2);
      expect(run.stderr).toMatch(message);
    }
  });

  it('--help prints usage', () => {
    const run = cli(['--help']);
    expect(run.status).toBe(0);
    expect(run.stdout).toContain('bootstrap --tenant NAME');
  });
});
