#!/usr/bin/env node
/**
 * express-app-tokens benchmarks. Run after `npm run build` (it imports the built library from dist/):
 *
 *   node bench/run.mjs [--quick] [--scenarios=protected,ratelimit,shared,token,scale,memory,profile] [--rounds=N]
 *                      [--duration=S] [--warmup=S] [--connections=N] [--algs=RS256,ES256,EdDSA]
 *                      [--stores=memory,sqlite,postgres] [--no-sign1] [--scale=10,10000,1000000]
 *                      [--scale-stores=sqlite,postgres] [--memory-tokens=N] [--memory-alg=RS256]
 *                      [--profiles=jwt,passport,token,token-sqlite] [--profile-seconds=S]
 *                      [--out=bench/results] [--no-fail]
 *
 * Full mode (default, ~15 min on 2 cores): protected 8 rounds × 2.5 s, token and scale 5 × 2 s,
 * all algorithms and stores, 10 / 10^4 / 10^6 apps, 100,000 RS256 tokens for the memory test,
 * three profiles. --quick (~3–4 min): 2 rounds × 2 s everywhere, RS256 and EdDSA, memory and
 * SQLite at the token endpoint (PostgreSQL still in the scale test), 10 / 10^4 apps, 20,000 EdDSA
 * tokens, the JWT profile only. --rounds / --duration / --warmup override every scenario.
 *
 * Every option may also be given as an environment variable: BENCH_QUICK=1, BENCH_SCENARIOS=…,
 * BENCH_ROUNDS=…, BENCH_DURATION=…, and so on (upper case, dashes as underscores).
 *
 * Each contender runs in a child process of its own (bench/server.mjs); autocannon runs here, in
 * the main thread, and nothing else runs while it measures. Results: <out>/latest.md and
 * <out>/latest.json. Exits 1 when a target is missed (unless --no-fail), 2 on a harness error.
 */
import { execSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { installCleanup, onExitSync, setLogDir } from './lib/children.mjs';
import { protectedFixture } from './lib/fixtures.mjs';
import { startPostgres } from './lib/pg.mjs';
import { evaluateTargets, markdown } from './lib/report.mjs';
import { memoryScenario, profileScenario, protectedScenario, rateLimitScenario, scaleScenarios, sharedScenario, tokenScenario } from './lib/scenarios.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ALL_SCENARIOS = ['protected', 'ratelimit', 'shared', 'token', 'scale', 'memory', 'profile'];

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const eq = a.indexOf('=');
    if (eq !== -1) args[a.slice(2, eq)] = a.slice(eq + 1);
    else if (a.startsWith('--no-')) args[a.slice(5)] = 'false';
    else if (argv[i + 1] !== undefined && !argv[i + 1].startsWith('--')) args[a.slice(2)] = argv[++i];
    else args[a.slice(2)] = 'true';
  }
  return args;
}

const KNOWN = [
  'quick', 'scenarios', 'rounds', 'duration', 'warmup', 'connections', 'algs', 'stores', 'sign1', 'scale', 'scale-stores',
  'memory-tokens', 'memory-alg', 'profiles', 'profile-seconds', 'out', 'fail', 'help',
];

function usage() {
  const text = readFileSync(fileURLToPath(import.meta.url), 'utf8');
  const doc = text.slice(text.indexOf('/**') + 3, text.indexOf('*/'));
  return doc.split('\n').map((l) => l.replace(/^ \* ?/, '')).join('\n').trim();
}

function options() {
  const args = parseArgs(process.argv.slice(2));
  for (const name of Object.keys(args)) {
    if (!KNOWN.includes(name)) throw new Error(`unknown option --${name} (try --help)`);
  }
  if (args.help !== undefined) {
    console.log(usage());
    process.exit(0);
  }
  const get = (name) => args[name] ?? process.env[`BENCH_${name.toUpperCase().replace(/-/g, '_')}`];
  const bool = (name, dflt) => {
    const v = get(name);
    return v === undefined ? dflt : !['0', 'false', 'no', ''].includes(String(v).toLowerCase());
  };
  const num = (name, dflt) => {
    const v = get(name);
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name}: not a positive number: ${v}`);
    return n;
  };
  const list = (name, dflt, allowed) => {
    const v = get(name);
    const out = v === undefined ? dflt : String(v).split(',').map((s) => s.trim()).filter(Boolean);
    if (allowed) for (const e of out) if (!allowed.includes(e)) throw new Error(`--${name}: '${e}' is not one of ${allowed.join(', ')}`);
    return out;
  };
  const quick = bool('quick', false);
  const rounds = num('rounds', undefined);
  const duration = num('duration', undefined);
  const warmup = num('warmup', undefined);
  const per = (r, d, w) => ({ rounds: rounds ?? r, duration: duration ?? d, warmup: warmup ?? w });
  return {
    quick,
    scenarios: list('scenarios', ALL_SCENARIOS, ALL_SCENARIOS),
    connections: num('connections', 50),
    protected: quick ? per(2, 2, 1) : per(8, 2.5, 2),
    token: quick ? per(2, 2, 1) : per(5, 2, 1),
    scale: quick ? per(2, 2, 1) : per(5, 2, 1),
    algs: list('algs', quick ? ['RS256', 'EdDSA'] : ['RS256', 'ES256', 'EdDSA'], ['RS256', 'ES256', 'EdDSA']),
    stores: list('stores', quick ? ['memory', 'sqlite'] : ['memory', 'sqlite', 'postgres'], ['memory', 'sqlite', 'postgres']),
    signOneAtATime: bool('sign1', !quick),
    scaleStores: list('scale-stores', ['sqlite', 'postgres'], ['sqlite', 'postgres']),
    scaleSizes: list('scale', quick ? ['10', '10000'] : ['10', '10000', '1000000']).map((s) => {
      const n = Number(s);
      if (!Number.isInteger(n) || n < 1) throw new Error(`--scale: not a positive integer: ${s}`);
      return n;
    }),
    memoryTokens: num('memory-tokens', quick ? 20_000 : 100_000),
    memoryAlg: list('memory-alg', [quick ? 'EdDSA' : 'RS256'], ['RS256', 'ES256', 'EdDSA'])[0],
    profiles: list('profiles', quick ? ['jwt'] : ['jwt', 'passport', 'token'], ['jwt', 'passport', 'token', 'token-sqlite']),
    profileSeconds: num('profile-seconds', quick ? 3 : 8),
    out: resolve(get('out') ?? join(ROOT, 'bench/results')),
    fail: bool('fail', true),
  };
}

function machine() {
  let memory = `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM`;
  let freeH = '';
  try {
    freeH = execSync('free -h', { encoding: 'utf8' }).trim();
    const mem = freeH.split('\n').find((l) => l.startsWith('Mem:'))?.split(/\s+/);
    if (mem) memory = `${mem[1]} RAM (${mem[6] ?? mem[3]} available)`;
  } catch {
    // not Linux
  }
  let nproc = os.availableParallelism?.() ?? os.cpus().length;
  try {
    nproc = Number(execSync('nproc', { encoding: 'utf8' }).trim());
  } catch {
    // keep Node's count
  }
  return {
    nproc,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    memory,
    freeH,
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    loadavgStart: os.loadavg(),
  };
}

async function main() {
  let opts;
  try {
    opts = options();
  } catch (error) {
    console.error(error.message);
    process.exit(2);
  }
  if (!existsSync(join(ROOT, 'dist/src/index.js'))) {
    console.error('dist/ is missing: run `npm run build` first (or `npm run bench`).');
    process.exit(2);
  }
  const started = Date.now();
  const dir = mkdtempSync(join(os.tmpdir(), 'eat-bench-'));
  mkdirSync(opts.out, { recursive: true });
  const logDir = join(dir, 'logs');
  mkdirSync(logDir);
  setLogDir(logDir);
  let pg;
  let pgStarting;
  const cleanup = async () => {
    await pg?.destroy();
    rmSync(dir, { recursive: true, force: true });
  };
  installCleanup(cleanup);
  onExitSync(() => {
    pg?.killSync();
    rmSync(dir, { recursive: true, force: true });
  });

  const log = (...a) => console.log(...a);
  let protectedFx;
  const ctx = {
    opts,
    dir,
    outDir: opts.out,
    log,
    async postgres() {
      pgStarting ??= startPostgres().then((p) => {
        pg = p;
        log(`  embedded PostgreSQL on 127.0.0.1:${p.port}`);
        return p;
      });
      return pgStarting;
    },
    async protectedFixture() {
      protectedFx ??= protectedFixture(dir, 'RS256');
      return protectedFx;
    },
  };

  const meta = {
    date: new Date().toISOString(),
    options: opts,
    machine: machine(),
  };
  log(
    `express-app-tokens bench (${opts.quick ? 'quick' : 'full'}): ${opts.scenarios.join(', ')}; ${opts.connections} connections; ` +
      `${meta.machine.nproc} CPUs, Node ${process.version}`,
  );
  const results = { meta, scenarios: {}, memory: undefined, profile: undefined, targets: [] };
  const want = (s) => opts.scenarios.includes(s);
  const timed = async (name, fn) => {
    const t0 = Date.now();
    log(`\n[${name}]`);
    const r = await fn();
    log(`  (${Math.round((Date.now() - t0) / 1000)} s)`);
    return r;
  };

  if (want('protected')) results.scenarios.protected = await timed('protected route', () => protectedScenario(ctx));
  if (want('ratelimit')) results.scenarios.ratelimit = await timed('example server: rate-limited route', () => rateLimitScenario(ctx));
  if (want('shared')) results.scenarios.shared = await timed('shared counts on PostgreSQL, 3 instances', () => sharedScenario(ctx));
  if (want('token')) results.scenarios.token = await timed('token endpoint', () => tokenScenario(ctx));
  if (want('scale')) {
    const [a, b] = await timed('scale', () => scaleScenarios(ctx));
    results.scenarios['scale-protected'] = a;
    results.scenarios['scale-token'] = b;
  }
  if (want('memory')) results.memory = await timed('memory', () => memoryScenario(ctx));
  if (want('profile')) results.profile = await timed('profile', () => profileScenario(ctx));

  meta.seconds = (Date.now() - started) / 1000;
  meta.machine.loadavgEnd = os.loadavg();
  results.targets = evaluateTargets(results);
  writeFileSync(join(opts.out, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
  const md = markdown(results);
  writeFileSync(join(opts.out, 'latest.md'), md);

  log(`\nwrote ${join(opts.out, 'latest.md')} and latest.json (${Math.round(meta.seconds)} s)\n`);
  log('targets:');
  for (const t of results.targets) {
    const v = typeof t.value === 'number' && t.threshold !== 0 ? `${t.value.toFixed(3)}× (threshold ${t.threshold.toFixed(3)}×)` : String(t.value);
    log(`  ${t.pass === null ? 'n/a ' : t.pass ? 'PASS' : 'FAIL'}  ${t.name}: ${v}${t.note ? ` — ${t.note}` : ''}`);
  }
  const missed = results.targets.filter((t) => t.pass === false);
  await cleanup();
  if (missed.length > 0) {
    log(`\n${missed.length} target(s) missed:`);
    for (const t of missed) log(`  - ${t.name}`);
    process.exit(opts.fail ? 1 : 0);
  }
  process.exit(0);
}

main().catch((error) => {
  console.error(error?.stack ?? error);
  process.exitCode = 2;
  // The exit hook kills the children and the embedded PostgreSQL.
  process.exit(2);
});
