/**
 * The example server's Prometheus metrics (issue 24 item 4): the built server in a child process
 * with METRICS_PORT, a real SQLite file, real grants and refusals over HTTP, and a scrape of
 * `/metrics` before and after: the counters move by exactly what was done. `npm test` builds dist/.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const SERVER = join(ROOT, 'dist/examples/server.js');
const CLI = join(ROOT, 'dist/src/cli.js');
const dir = mkdtempSync(join(tmpdir(), 'eat-metrics-'));
const children: ChildProcess[] = [];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function startServer(env: Record<string, string>): Promise<{ child: ChildProcess; output: () => string }> {
  const child = spawn(process.execPath, [SERVER], { cwd: dir, env: { ...process.env, ...env }, stdio: 'pipe' });
  children.push(child);
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${output}`)), 30_000);
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

/** The samples of a Prometheus text exposition: `name{labels} value`. */
function parse(text: string): Array<{ name: string; labels: Record<string, string>; value: number }> {
  const out: Array<{ name: string; labels: Record<string, string>; value: number }> = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

function total(samples: ReturnType<typeof parse>, name: string, match: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((n, s) => n + s.value, 0);
}

beforeAll(() => {
  if (!existsSync(SERVER) || !existsSync(CLI)) throw new Error('run `npm run build` first (npm test does)');
});
afterAll(async () => {
  for (const child of children) {
    if (child.exitCode === null) {
      await new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      });
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('example server: Prometheus metrics (METRICS_PORT)', () => {
  it('a scrape shows the counters move after real grants, refusals, bearer requests and a 429', async () => {
    const databaseUrl = `sqlite:${join(dir, 'metrics.db')}`;
    const boot = spawnSync(process.execPath, [CLI, 'bootstrap', '--tenant', 'acme'], {
      cwd: dir,
      env: { ...process.env, DATABASE_URL: databaseUrl },
      encoding: 'utf8',
    });
    expect(boot.status, boot.stderr).toBe(0);
    const creds = JSON.parse(boot.stdout.trim().split('\n').pop()!) as { client_id: string; client_secret: string };
    const [port, metricsPort] = [await freePort(), await freePort()];
    const { output } = await startServer({
      PORT: String(port),
      METRICS_PORT: String(metricsPort),
      DATABASE_URL: databaseUrl,
      RATE_LIMIT: '2/60',
      SIGNING_ALGORITHM: 'EdDSA',
    });
    expect(output()).toContain(`metrics: http://127.0.0.1:${metricsPort}/metrics`);
    const base = `http://127.0.0.1:${port}`;
    const scrape = async () => {
      const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      expect(res.status).toBe(200);
      return parse(await res.text());
    };
    const basic = (secret: string) => `Basic ${Buffer.from(`${creds.client_id}:${secret}`).toString('base64')}`;
    const grant = (secret: string, form: Record<string, string> = {}) =>
      fetch(`${base}/oauth/token`, {
        method: 'POST',
        headers: { authorization: basic(secret), 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials', ...form }).toString(),
      });

    const before = await scrape();
    const ok1 = await grant(creds.client_secret, { scope: 'notarization:read' });
    expect(ok1.status).toBe(200);
    const { access_token: jwt } = (await ok1.json()) as { access_token: string };
    expect((await grant(creds.client_secret)).status).toBe(200);
    expect((await grant(`${creds.client_secret.slice(0, -1)}x`)).status).toBe(401);
    expect((await grant(creds.client_secret, { scope: 'nothing:here' })).status).toBe(400);
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) {
      statuses.push((await fetch(`${base}/notarizations/stamps`, { headers: { authorization: `Bearer ${jwt}` } })).status);
    }
    expect(statuses).toEqual([200, 200, 429]);
    expect((await fetch(`${base}/notarizations/stamps`, { headers: { authorization: 'Bearer not-a-token' } })).status).toBe(401);
    const after = await scrape();
    const delta = (name: string, match: Record<string, string> = {}) => total(after, name, match) - total(before, name, match);

    expect(delta('app_tokens_token_grants_total', { app_tokens_outcome: 'issued', oauth_grant_type: 'client_credentials', oauth_client_auth_method: 'client_secret_basic' })).toBe(2);
    expect(delta('app_tokens_token_grants_total', { app_tokens_outcome: 'refused', error_type: 'invalid_scope' })).toBe(1);
    expect(delta('app_tokens_client_auth_failures_total', { oauth_client_auth_method: 'client_secret_basic' })).toBe(1);
    expect(delta('app_tokens_bearer_verifications_total', { app_tokens_outcome: 'accepted', app_tokens_credential_kind: 'access_token' })).toBe(3);
    expect(delta('app_tokens_bearer_verifications_total', { app_tokens_outcome: 'refused', error_type: 'malformed' })).toBe(1);
    expect(delta('app_tokens_rate_limit_rejections_total')).toBe(1);
    expect(delta('app_tokens_bearer_cache_lookups_total', { app_tokens_cache_result: 'hit' })).toBe(2);
    // No credential, id or tenant in any label of the exposition.
    const labels = after.flatMap((s) => Object.values(s.labels));
    expect(labels).not.toContain(creds.client_id);
    expect(labels).not.toContain('acme');
    expect(labels.join(' ')).not.toContain(creds.client_secret);
    expect(labels.join(' ')).not.toContain(jwt);
  }, 90_000);

  it('METRICS_PORT that is not a port is refused at start, naming the variable', async () => {
    await expect(startServer({ PORT: String(await freePort()), METRICS_PORT: 'abc', DATABASE_URL: 'memory:' })).rejects.toThrow(/METRICS_PORT: must be a port number/);
  });
});
