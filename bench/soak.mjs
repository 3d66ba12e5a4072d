#!/usr/bin/env node
/**
 * Soak test: the BUILT example server under sustained load and churn, on loopback, watching for
 * errors and for memory that does not level off.
 *
 *   npm run soak                       # 60 s (npm run build && node bench/soak.mjs)
 *   node bench/soak.mjs --seconds 600  # or SOAK_SECONDS=600
 *
 * What it does:
 *   1. starts `node dist/examples/server.js` as a child process on a free loopback port, on a
 *      fresh SQLite file (DATABASE_URL=sqlite:<tmp>/soak.db) with a rate limit too high to trip;
 *   2. bootstraps an admin app with `node dist/src/cli.js bootstrap --tenant soak`;
 *   3. for SOAK_SECONDS runs, at the same time,
 *      - protected-route load, concurrency 20 (SOAK_CONCURRENCY): a pool of access tokens and
 *        API tokens on GET /notarizations/stamps (200), GET /storage/objects (403, scope missing)
 *        and a garbage bearer (401);
 *      - churn, one cycle every ~100 ms: POST /apps, a client_credentials grant, a protected call,
 *        POST /tokens/refresh (the old access token must then be refused), regenerate, create and
 *        delete another API token, DELETE /apps/:id (the new access token must then be refused);
 *      - the server's RSS sampled every 5 s from /proc/<pid>/status (VmRSS);
 *   4. prints a report: requests, errors (any 5xx, any unexpected status, any network error),
 *      latency, RSS over time, and whether RSS plateaued: the max over the last third of the run
 *      is within 15% of the max over the middle third.
 *
 * `--heap` (or SOAK_HEAP=1) also loads bench/lib/heap-probe.mjs into the server: every minute a
 * forced full GC and the heap used after it, reported next to RSS (live memory vs kept memory).
 *
 * `--heapsnapshot DIR` (implies `--heap`) also has the server write V8 heap snapshots into DIR at
 * the minutes of `--heapsnapshot-at` (default `2,8`; SIGUSR2 to the server takes one more), for
 * `node bench/lib/heap-diff.mjs A B`: what grew between two snapshots, by constructor and holder.
 * A snapshot stops the server for seconds and raises its RSS for the rest of the run (measured:
 * +130 MB), so runs whose RSS curve matters take none.
 *
 * SOAK_NODE_OPTIONS is passed to the server only (e.g. `--max-old-space-size=96` to tell a leak,
 * which then crashes the server, from a lazily collected heap, which then stays flat).
 *
 * Exit code 0 only with zero errors and a plateau. The child is killed on every exit path.
 * Loopback only; bounded by the duration (and a hard deadline of duration + 60 s).
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SERVER = join(ROOT, 'dist/examples/server.js');
const CLI = join(ROOT, 'dist/src/cli.js');

// ---- configuration --------------------------------------------------------------------------------

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string' },
    concurrency: { type: 'string' },
    'churn-interval': { type: 'string' },
    'sample-interval': { type: 'string' },
    heap: { type: 'boolean' },
    heapsnapshot: { type: 'string' },
    'heapsnapshot-at': { type: 'string' },
  },
});
const positiveInt = (name, text, fallback) => {
  if (text === undefined || text === '') return fallback;
  if (!/^\d+$/.test(text) || Number(text) < 1) {
    console.error(`${name}: must be a positive whole number, got '${text}'`);
    process.exit(2);
  }
  return Number(text);
};
const SECONDS = positiveInt('--seconds', args.seconds ?? process.env.SOAK_SECONDS, 60);
const CONCURRENCY = positiveInt('--concurrency', args.concurrency ?? process.env.SOAK_CONCURRENCY, 20);
const CHURN_MS = positiveInt('--churn-interval', args['churn-interval'], 100);
const SAMPLE_MS = positiveInt('--sample-interval', args['sample-interval'], 5000);
const PLATEAU_TOLERANCE = 0.15;
/** `--heap`: the server also reports its heap after a forced full GC every minute (bench/lib/heap-probe.mjs). */
const HEAP = args.heap === true || args.heapsnapshot !== undefined || process.env.SOAK_HEAP === '1';
/**
 * `--heapsnapshot DIR` (implies `--heap`): the server writes V8 heap snapshots into DIR, at the
 * minutes of `--heapsnapshot-at` (default `2,8`), for comparing retained sizes by constructor
 * (bench/lib/heap-diff.mjs). DIR is kept after the run; the snapshots pause the server for seconds.
 */
const SNAPSHOT_DIR = args.heapsnapshot ? resolve(args.heapsnapshot) : undefined;
const SNAPSHOT_AT = args['heapsnapshot-at'] ?? '2,8';
if (SNAPSHOT_AT !== undefined && !/^\d+(\.\d+)?(,\d+(\.\d+)?)*$/.test(SNAPSHOT_AT)) {
  console.error(`--heapsnapshot-at: minutes, comma-separated (e.g. 2,8), got '${SNAPSHOT_AT}'`);
  process.exit(2);
}

if (!existsSync(SERVER) || !existsSync(CLI)) {
  console.error(`soak: ${SERVER} or ${CLI} is missing; run \`npm run build\` first (npm run soak does).`);
  process.exit(2);
}

// ---- the child server -----------------------------------------------------------------------------

const workdir = mkdtempSync(join(tmpdir(), 'eat-soak-'));
const databaseUrl = `sqlite:${join(workdir, 'soak.db')}`;
/** @type {import('node:child_process').ChildProcess | undefined} */
let child;
let childOutput = '';
let childExited = false;
let stopping = false;

function killChild(signal = 'SIGTERM') {
  if (child && !childExited && child.pid !== undefined) {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

function cleanupSync() {
  killChild('SIGKILL');
  try {
    rmSync(workdir, { recursive: true, force: true });
  } catch {
    // best effort
  }
}
process.on('exit', cleanupSync);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    console.error(`soak: ${signal}, stopping`);
    cleanupSync();
    process.exit(130);
  });
}

function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {net.AddressInfo} */ (srv.address());
      srv.close(() => resolvePort(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- HTTP client ----------------------------------------------------------------------------------

const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY + 8 });
let PORT = 0;

/**
 * One request on loopback. Resolves `{status, body, json}`; rejects on a network error or after 30 s.
 * @param {string} method
 * @param {string} path
 * @param {{headers?: Record<string, string>, body?: string}} [options]
 */
function call(method, path, { headers = {}, body } = {}) {
  return new Promise((resolveCall, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: PORT,
        method,
        path,
        agent,
        headers: { ...headers, ...(body !== undefined ? { 'Content-Length': Buffer.byteLength(body) } : {}) },
        timeout: 30_000,
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          resolveCall({ status: res.statusCode ?? 0, body: text, json });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout after 30 s: ${method} ${path}`)));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

const form = (o) => new URLSearchParams(o).toString();
const basic = (id, secret) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
const bearer = (t) => ({ Authorization: `Bearer ${t}` });
const jsonHeaders = (t) => ({ ...bearer(t), 'Content-Type': 'application/json' });

// ---- accounting -----------------------------------------------------------------------------------

const stats = {
  requests: 0,
  errors: 0,
  byKind: /** @type {Record<string, {count: number, errors: number}>} */ ({}),
  churnCycles: 0,
  /** First error details, for the report. */
  samples: /** @type {string[]} */ ([]),
};
/** Latency histogram of protected requests: 0.1 ms buckets up to 1 s, then one overflow bucket. */
const LAT_BUCKETS = 10_000;
const latency = new Uint32Array(LAT_BUCKETS + 1);
let latencyCount = 0;

function recordError(kind, detail) {
  stats.errors++;
  (stats.byKind[kind] ??= { count: 0, errors: 0 }).errors++;
  if (stats.samples.length < 20) stats.samples.push(`${new Date().toISOString()} ${kind}: ${detail}`);
}

/**
 * A request that must answer `expected` (a status or a list of statuses). Anything else, a 5xx or a
 * network error counts as an error. Returns the response, or undefined on error.
 */
async function expectCall(kind, expected, method, path, options) {
  const ok = Array.isArray(expected) ? expected : [expected];
  stats.requests++;
  const k = (stats.byKind[kind] ??= { count: 0, errors: 0 });
  k.count++;
  const started = performance.now();
  let res;
  try {
    res = await call(method, path, options);
  } catch (error) {
    if (!stopping) recordError(kind, `network error: ${error.message}`);
    return undefined;
  }
  if (kind.startsWith('load')) {
    const tenths = Math.min(LAT_BUCKETS, Math.floor((performance.now() - started) * 10));
    latency[tenths]++;
    latencyCount++;
  }
  if (res.status >= 500 || !ok.includes(res.status)) {
    recordError(kind, `${method} ${path} → ${res.status} (expected ${ok.join('/')}): ${res.body.slice(0, 200)}`);
    return undefined;
  }
  return res;
}

function percentile(p) {
  if (latencyCount === 0) return NaN;
  const target = Math.ceil(latencyCount * p);
  let seen = 0;
  for (let i = 0; i <= LAT_BUCKETS; i++) {
    seen += latency[i];
    if (seen >= target) return i / 10;
  }
  return LAT_BUCKETS / 10;
}

// ---- RSS sampling ---------------------------------------------------------------------------------

/** @type {Array<{t: number, rssKb: number}>} */
const rss = [];
/** With `--heap`: the server's heap used after a full GC, and its RSS then. @type {Array<{t: number, heapUsedKb: number, rssKb: number}>} */
const heap = [];
let t0 = 0;

function readRssKb(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

function sampleRss() {
  const kb = readRssKb(child.pid);
  if (kb !== undefined) rss.push({ t: (performance.now() - t0) / 1000, rssKb: kb });
}

// ---- scenario -------------------------------------------------------------------------------------

async function bootstrap() {
  const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'bootstrap', '--tenant', 'soak'], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: databaseUrl, PORT: String(PORT) },
    timeout: 60_000,
  });
  const creds = JSON.parse(stdout.trim().split('\n').pop());
  if (!creds.client_id || !creds.client_secret) throw new Error(`bootstrap printed no credentials: ${stdout}`);
  return creds;
}

async function grant(kind, clientId, secret, scope) {
  const res = await expectCall(kind, 200, 'POST', '/oauth/token', {
    headers: { Authorization: basic(clientId, secret), 'Content-Type': 'application/x-www-form-urlencoded' },
    body: form({ grant_type: 'client_credentials', ...(scope ? { scope } : {}) }),
  });
  return res?.json?.access_token;
}

/** The load's credentials: access tokens of a few long-lived apps, and their API tokens. */
async function buildPool(admin) {
  const pool = { jwts: [], apiTokens: [], grants: [] };
  for (let i = 0; i < 5; i++) {
    const created = await expectCall('setup', 201, 'POST', '/apps', {
      headers: jsonHeaders(admin),
      body: JSON.stringify({ name: `load-${i}`, scopes: ['notarization:read', 'notarization:write'], token: { name: 'load' } }),
    });
    if (!created) throw new Error('could not create the load apps');
    const { app, value } = created.json;
    for (let j = 0; j < 4; j++) pool.grants.push({ clientId: app.id, secret: value, scope: j % 2 ? 'notarization:read' : undefined });
    pool.apiTokens.push(value);
  }
  if (!(await renewPool(pool))) throw new Error('could not get the load access tokens');
  return pool;
}

/**
 * (Re)mint the load's access tokens. They live one hour (the default), so a run longer than that
 * renews them every ten minutes, as a real client would before expiry.
 */
async function renewPool(pool) {
  const fresh = [];
  for (const g of pool.grants) {
    const t = await grant('setup', g.clientId, g.secret, g.scope);
    if (!t) return false;
    fresh.push(t);
  }
  pool.jwts = fresh;
  return true;
}

async function loadWorker(pool, deadline) {
  let n = 0;
  while (performance.now() < deadline && !childExited) {
    n++;
    const r = n % 20;
    if (r < 14) {
      const t = pool.jwts[n % pool.jwts.length];
      await expectCall('load: jwt GET /notarizations/stamps', 200, 'GET', '/notarizations/stamps', { headers: bearer(t) });
    } else if (r < 16) {
      const t = pool.apiTokens[n % pool.apiTokens.length];
      await expectCall('load: api token GET /notarizations/stamps', 200, 'GET', '/notarizations/stamps', { headers: bearer(t) });
    } else if (r < 18) {
      const t = pool.jwts[n % pool.jwts.length];
      await expectCall('load: jwt GET /storage/objects (403)', 403, 'GET', '/storage/objects', { headers: bearer(t) });
    } else {
      await expectCall('load: garbage bearer (401)', 401, 'GET', '/notarizations/stamps', { headers: bearer(`garbage-${n}`) });
    }
  }
}

/** One churn cycle: an app's whole life. */
async function churnCycle(adminRef, i) {
  const admin = adminRef.token;
  const created = await expectCall('churn: POST /apps', 201, 'POST', '/apps', {
    headers: jsonHeaders(admin),
    body: JSON.stringify({ name: `churn-${i}`, scopes: ['notarization:read'], token: { name: 'first', expiresIn: 3600 } }),
  });
  if (!created) return;
  const { app, value } = created.json;
  const appPath = `/apps/${encodeURIComponent(app.id)}`;
  try {
    const jwt = await grant('churn: POST /oauth/token', app.id, value);
    if (jwt) await expectCall('churn: protected call', 200, 'GET', '/notarizations/stamps', { headers: bearer(jwt) });

    const refreshed = await expectCall('churn: POST /tokens/refresh', 200, 'POST', '/tokens/refresh', {
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ client_id: app.id, grant_type: 'token-exchange', refresh_token: value, scope: 'openid' }),
    });
    if (!refreshed) return;
    // The refreshed token's access tokens died with it.
    if (jwt) await expectCall('churn: old access token refused', 401, 'GET', '/notarizations/stamps', { headers: bearer(jwt) });
    const newId = refreshed.json.token.id;

    const regenerated = await expectCall('churn: regenerate', 200, 'POST', `${appPath}/tokens/${encodeURIComponent(newId)}/regenerate`, {
      headers: jsonHeaders(admin),
    });
    const live = regenerated?.json?.value;
    const jwt2 = live ? await grant('churn: POST /oauth/token', app.id, live) : undefined;

    const extra = await expectCall('churn: POST /apps/:id/tokens', 201, 'POST', `${appPath}/tokens`, {
      headers: jsonHeaders(admin),
      body: JSON.stringify({ name: 'extra', expiresIn: 600 }),
    });
    if (extra) {
      await expectCall('churn: DELETE /apps/:id/tokens/:tokenId', 204, 'DELETE', `${appPath}/tokens/${encodeURIComponent(extra.json.token.id)}`, {
        headers: bearer(admin),
      });
    }
    if (i % 10 === 0) await expectCall('churn: GET /apps/:id/events', 200, 'GET', `${appPath}/events?limit=5`, { headers: bearer(admin) });
    if (i % 10 === 5) await expectCall('churn: GET /apps', 200, 'GET', '/apps?limit=5', { headers: bearer(admin) });

    await expectCall('churn: DELETE /apps/:id', 204, 'DELETE', appPath, { headers: bearer(admin) });
    // Deleting the app killed everything it minted.
    if (jwt2) await expectCall('churn: deleted app token refused', 401, 'GET', '/notarizations/stamps', { headers: bearer(jwt2) });
  } finally {
    stats.churnCycles++;
  }
}

async function churnLoop(adminRef, deadline) {
  let i = 0;
  while (performance.now() < deadline && !childExited) {
    const started = performance.now();
    await churnCycle(adminRef, i++);
    const wait = CHURN_MS - (performance.now() - started);
    if (wait > 0) await sleep(wait);
  }
}

// ---- report ---------------------------------------------------------------------------------------

function plateau(samples, duration) {
  const third = duration / 3;
  const middle = samples.filter((s) => s.t >= third && s.t < 2 * third).map((s) => s.rssKb);
  const last = samples.filter((s) => s.t >= 2 * third).map((s) => s.rssKb);
  if (middle.length === 0 || last.length === 0) return { judged: false, ok: false, middleMax: NaN, lastMax: NaN, growth: NaN };
  const middleMax = Math.max(...middle);
  const lastMax = Math.max(...last);
  const growth = lastMax / middleMax - 1;
  return { judged: true, ok: growth <= PLATEAU_TOLERANCE, middleMax, lastMax, growth };
}

const mb = (kb) => `${(kb / 1024).toFixed(1)} MB`;

// ---- main -----------------------------------------------------------------------------------------

async function main() {
  PORT = await freePort();
  const nodeFlags = (process.env.SOAK_NODE_OPTIONS ?? '').split(/\s+/).filter(Boolean);
  if (HEAP || SNAPSHOT_DIR) nodeFlags.push('--expose-gc', '--import', new URL('./lib/heap-probe.mjs', import.meta.url).href);
  if (SNAPSHOT_DIR) mkdirSync(SNAPSHOT_DIR, { recursive: true });
  child = spawn(process.execPath, [...nodeFlags, SERVER], {
    cwd: workdir,
    env: {
      ...process.env,
      PORT: String(PORT),
      ISSUER: `http://localhost:${PORT}`,
      DATABASE_URL: databaseUrl,
      RATE_LIMIT: '100000000/1',
      NODE_ENV: process.env.NODE_ENV ?? 'development',
      ...(SNAPSHOT_DIR ? { SOAK_HEAPSNAPSHOT_DIR: SNAPSHOT_DIR, SOAK_HEAPSNAPSHOT_AT: SNAPSHOT_AT } : {}),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const keep = (c) => {
    childOutput = (childOutput + c.toString()).slice(-8000);
  };
  let pendingLine = '';
  child.stdout.on('data', (c) => {
    keep(c);
    if (!HEAP && !SNAPSHOT_DIR) return;
    const lines = (pendingLine + c.toString()).split('\n');
    pendingLine = lines.pop() ?? '';
    for (const line of lines) {
      if (line.startsWith('SOAK_HEAPSNAPSHOT ')) console.log(`  heap snapshot: ${line.slice('SOAK_HEAPSNAPSHOT '.length)}`);
      if (!line.startsWith('SOAK_HEAP ') || t0 === 0) continue;
      const m = JSON.parse(line.slice('SOAK_HEAP '.length));
      const h = { t: (performance.now() - t0) / 1000, heapUsedKb: m.heapUsed / 1024, rssKb: m.rss / 1024 };
      heap.push(h);
      console.log(
        `  t=${h.t.toFixed(0).padStart(4)} s  after a full GC: heap used ${mb(h.heapUsedKb)} of ${mb(m.heapTotal / 1024)}, ` +
          `external ${mb(m.external / 1024)} (array buffers ${mb(m.arrayBuffers / 1024)}), RSS ${mb(h.rssKb)}`,
      );
    }
  });
  child.stderr.on('data', keep);
  child.on('exit', (code, signal) => {
    childExited = true;
    if (!stopping) recordError('server', `the server exited (code ${code}, signal ${signal}): ${childOutput.slice(-2000)}`);
  });

  // Wait for the server.
  const startBy = performance.now() + 30_000;
  for (;;) {
    if (childExited) throw new Error(`the server did not start:\n${childOutput}`);
    try {
      const res = await call('GET', '/health');
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (performance.now() > startBy) throw new Error(`the server did not answer /health within 30 s:\n${childOutput}`);
    await sleep(100);
  }

  const creds = await bootstrap();
  const adminRef = { token: await grant('setup', creds.client_id, creds.client_secret) };
  if (!adminRef.token) throw new Error('the admin could not get an access token');
  const pool = await buildPool(adminRef.token);

  console.log(
    `soak: ${SECONDS} s on http://127.0.0.1:${PORT} (pid ${child.pid}), concurrency ${CONCURRENCY}, churn every ${CHURN_MS} ms, ` +
      `RSS every ${SAMPLE_MS / 1000} s, ${databaseUrl}${nodeFlags.length ? `, server flags ${nodeFlags.join(' ')}` : ''}`,
  );
  t0 = performance.now();
  const deadline = t0 + SECONDS * 1000;
  sampleRss();
  const sampler = setInterval(() => {
    sampleRss();
    const last = rss.at(-1);
    if (last) {
      console.log(
        `  t=${last.t.toFixed(0).padStart(4)} s  RSS ${mb(last.rssKb).padStart(9)}  requests ${String(stats.requests).padStart(8)}  ` +
          `errors ${stats.errors}  churn cycles ${stats.churnCycles}`,
      );
    }
  }, SAMPLE_MS);
  // Renew the admin's and the load's access tokens well before they expire (the default lifetime is 1 h).
  const renew = setInterval(() => {
    void grant('setup', creds.client_id, creds.client_secret).then((t) => {
      if (t) adminRef.token = t;
    });
    void renewPool(pool);
  }, 10 * 60_000);
  // Hard stop, whatever happens.
  const hardStop = setTimeout(() => {
    console.error('soak: hard deadline reached');
    cleanupSync();
    process.exit(1);
  }, SECONDS * 1000 + 60_000);
  hardStop.unref();

  await Promise.all([
    churnLoop(adminRef, deadline),
    ...Array.from({ length: CONCURRENCY }, () => loadWorker(pool, deadline)),
  ]);
  const elapsed = (performance.now() - t0) / 1000;
  clearInterval(sampler);
  clearInterval(renew);
  sampleRss();

  // The server must still be there.
  const alive = await expectCall('final', 200, 'GET', '/.well-known/jwks.json');
  stopping = true;

  const p = plateau(rss, elapsed);
  const passed = stats.errors === 0 && p.ok && alive !== undefined;
  console.log('\n=== soak report ===');
  console.log(`duration          ${elapsed.toFixed(1)} s`);
  console.log(`requests          ${stats.requests} (${(stats.requests / elapsed).toFixed(0)} req/s)`);
  console.log(`churn cycles      ${stats.churnCycles} (apps created and deleted)`);
  console.log(`errors            ${stats.errors}${stats.errors === 0 ? '' : '  <-- must be 0'}`);
  console.log(`latency (load)    p50 ${percentile(0.5)} ms, p99 ${percentile(0.99)} ms, p99.9 ${percentile(0.999)} ms`);
  console.log('by kind:');
  for (const [kind, k] of Object.entries(stats.byKind).sort()) {
    console.log(`  ${kind.padEnd(48)} ${String(k.count).padStart(8)}  errors ${k.errors}`);
  }
  console.log('RSS samples (s: MB):');
  console.log(`  ${rss.map((s) => `${s.t.toFixed(0)}: ${(s.rssKb / 1024).toFixed(1)}`).join(', ')}`);
  const all = rss.map((s) => s.rssKb);
  console.log(`RSS first ${mb(all[0])}, min ${mb(Math.min(...all))}, max ${mb(Math.max(...all))}, last ${mb(all.at(-1))}`);
  console.log(
    p.judged
      ? `plateau           ${p.ok ? 'yes' : 'NO'}: max over the last third ${mb(p.lastMax)} vs the middle third ${mb(p.middleMax)} ` +
          `(${(p.growth * 100).toFixed(1)}%, limit ${PLATEAU_TOLERANCE * 100}%)`
      : 'plateau           not judged: too few samples (run longer)',
  );
  let heapPlateau;
  if (HEAP) {
    heapPlateau = plateau(heap.map((h) => ({ t: h.t, rssKb: h.heapUsedKb })), elapsed);
    console.log('heap used after a full GC (s: MB):');
    console.log(`  ${heap.map((h) => `${h.t.toFixed(0)}: ${(h.heapUsedKb / 1024).toFixed(1)}`).join(', ')}`);
    console.log(
      heapPlateau.judged
        ? `heap plateau      ${heapPlateau.ok ? 'yes' : 'NO'}: max over the last third ${mb(heapPlateau.lastMax)} vs the middle third ${mb(heapPlateau.middleMax)} ` +
            `(${(heapPlateau.growth * 100).toFixed(1)}%, informational)`
        : 'heap plateau      not judged: too few samples',
    );
  }
  if (stats.samples.length > 0) {
    console.log('first errors:');
    for (const s of stats.samples) console.log(`  ${s}`);
  }
  console.log(
    `SOAK_RESULT ${JSON.stringify({
      seconds: Number(elapsed.toFixed(1)),
      requests: stats.requests,
      rps: Math.round(stats.requests / elapsed),
      churnCycles: stats.churnCycles,
      errors: stats.errors,
      p50ms: percentile(0.5),
      p99ms: percentile(0.99),
      rssMb: rss.map((s) => [Math.round(s.t), Number((s.rssKb / 1024).toFixed(1))]),
      plateau: p.ok,
      plateauGrowthPct: Number((p.growth * 100).toFixed(1)),
      ...(HEAP ? { heapUsedMb: heap.map((h) => [Math.round(h.t), Number((h.heapUsedKb / 1024).toFixed(1))]) } : {}),
    })}`,
  );
  console.log(passed ? 'soak: PASS' : 'soak: FAIL');
  return passed ? 0 : 1;
}

let code = 1;
try {
  code = await main();
} catch (error) {
  console.error(`soak: ${error instanceof Error ? error.message : String(error)}`);
  code = 1;
} finally {
  stopping = true;
  agent.destroy();
  if (child && !childExited) {
    killChild('SIGTERM');
    const gone = await Promise.race([new Promise((r) => child.once('exit', () => r(true))), sleep(5000).then(() => false)]);
    if (!gone) killChild('SIGKILL');
  }
}
process.exit(code);
