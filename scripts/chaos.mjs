#!/usr/bin/env node
/**
 * Fault experiments as a command: the BUILT example server (dist/examples/server.js) as separate
 * processes, on a real PostgreSQL (embedded, started here) and real SQLite files, under load while
 * the database is killed, shut down, cut off, filled, made read-only or corrupted, and instances
 * are killed. Each scenario reports PASS or FAIL with its evidence; the exit code is 1 if any
 * scenario failed (a broken guarantee, or a scenario that did not complete), else 0. A scenario
 * this machine cannot run (the file-system faults need root) is reported SKIP and fails the run
 * only with CHAOS_STRICT=1.
 *
 *   npm run chaos                          # npm run build && node scripts/chaos.mjs
 *   node scripts/chaos.mjs --only pg-sigkill,sqlite-full
 *   node scripts/chaos.mjs --list
 *
 * Guarantees and the scenario that checks each: docs/DEPLOYMENT.md; how to run: docs/guides/chaos.md.
 * Loopback only. Every loop is bounded in count and time, each scenario has a time limit, and the
 * whole run a hard deadline; every child process, the database and the temporary files are removed
 * on every exit path. Needs root for the SQLite file-system faults (mount, chattr): without it
 * those scenarios are reported SKIPPED.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CLI, SERVER, killAllSync } from './chaos/instance.mjs';
import { startPostgres } from './chaos/postgres.mjs';
import { GUARANTEES, scenarios } from './chaos/scenarios.mjs';
import { freePort } from './chaos/util.mjs';

const { values: args } = parseArgs({
  options: {
    only: { type: 'string' },
    list: { type: 'boolean' },
    'keep-logs': { type: 'boolean' },
  },
});

const int = (name, fallback) => {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  if (!/^\d+$/.test(text)) {
    console.error(`${name}: must be a whole number of ms (or a count), got '${text}'`);
    process.exit(2);
  }
  return Number(text);
};

const ctx = {
  /** No answer within this long is a hang: the store's connection wait (3 s) + query deadline (6 s) + slack. */
  answerWithinMs: int('CHAOS_ANSWER_WITHIN_MS', 12_000),
  /** How long the database stays dead (kill, shutdown, full, read-only), ms. */
  outageMs: int('CHAOS_OUTAGE_MS', 8000),
  /** How long the path stays silent, ms: longer than the store's query deadline. */
  partitionMs: int('CHAOS_PARTITION_MS', 15_000),
  /** Writes must succeed again within this long after the cause is gone, ms. */
  recoveryMs: int('CHAOS_RECOVERY_MS', 30_000),
  /** The staleness bound of the example server (advanced.revocationMaxStaleness), ms. */
  stalenessMs: int('CHAOS_STALENESS_MS', 5000),
  /** Allowed beyond the bound: request time and the probe interval, ms. */
  stalenessSlackMs: int('CHAOS_STALENESS_SLACK_MS', 2000),
  /** Load before and after each fault, ms. */
  baselineMs: int('CHAOS_BASELINE_MS', 3000),
  workers: int('CHAOS_WORKERS', 6),
  tmpfsMb: int('CHAOS_TMPFS_MB', 16),
  scenarioLimitMs: int('CHAOS_SCENARIO_LIMIT_MS', 180_000),
  workdir: '',
  logDir: '',
  issuerPort: 0,
  pg: undefined,
  cleanups: [],
};

/** A failed run keeps its instances' logs: the cause of a 500 or an exit is in them. */
let keepForFailure = false;

if (args.list) {
  for (const s of scenarios) console.log(`${s.name.padEnd(20)} ${s.title}\n${' '.repeat(21)}checks: ${s.guarantees.join('; ')}`);
  console.log('\nguarantees:');
  for (const [name, meaning] of Object.entries(GUARANTEES)) console.log(`  ${name.padEnd(38)} ${meaning}`);
  process.exit(0);
}
const only = args.only ? new Set(args.only.split(',').map((s) => s.trim())) : undefined;
if (only) {
  const unknown = [...only].filter((n) => !scenarios.some((s) => s.name === n));
  if (unknown.length) {
    console.error(`--only: unknown scenario(s) ${unknown.join(', ')}; see --list`);
    process.exit(2);
  }
}
if (!existsSync(SERVER) || !existsSync(CLI)) {
  console.error(`chaos: ${SERVER} or ${CLI} is missing; run \`npm run build\` first (npm run chaos does).`);
  process.exit(2);
}

ctx.workdir = mkdtempSync(join(tmpdir(), 'eat-chaos-'));
ctx.logDir = join(ctx.workdir, 'logs');
mkdirSync(ctx.logDir);
ctx.issuerPort = await freePort();

function cleanupSync() {
  killAllSync();
  ctx.pg?.destroySync();
  for (const dir of [join(ctx.workdir, 'full')]) {
    try {
      execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
    } catch {
      // not mounted
    }
  }
  try {
    execFileSync('chattr', ['-R', '-i', ctx.workdir], { stdio: 'ignore' });
  } catch {
    // nothing immutable, or no chattr
  }
  if (!args['keep-logs'] && !keepForFailure) rmSync(ctx.workdir, { recursive: true, force: true });
  else console.error(`chaos: logs kept in ${ctx.logDir}`);
}
process.on('exit', cleanupSync);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    console.error(`chaos: ${signal}, stopping`);
    process.exit(130);
  });
}
// Hard deadline for the whole run, whatever happens.
// Controls (scenarios that must FAIL, to show a check can) run only when named with --only.
const selected = scenarios.filter((s) => (only ? only.has(s.name) : !s.control));
const hardStop = setTimeout(() => {
  console.error('chaos: hard deadline reached');
  process.exit(1);
}, selected.length * ctx.scenarioLimitMs + 120_000);
hardStop.unref();

const capable = {
  postgres: true,
  sqlite: true,
  mount: process.getuid?.() === 0,
  chattr: (() => {
    if (process.getuid?.() !== 0) return false;
    const probe = join(ctx.workdir, 'chattr-probe');
    try {
      writeFileSync(probe, 'x');
      execFileSync('chattr', ['+i', probe], { stdio: 'ignore' });
      execFileSync('chattr', ['-i', probe], { stdio: 'ignore' });
      rmSync(probe);
      return true;
    } catch {
      return false;
    }
  })(),
};

const results = [];
const started = Date.now();
console.log(`chaos: ${selected.length} scenario(s); logs in ${ctx.logDir}${args['keep-logs'] ? '' : ' (removed at exit unless a scenario fails; --keep-logs keeps them)'}`);

for (const scenario of selected) {
  const t0 = Date.now();
  console.log(`\n--- ${scenario.name}: ${scenario.title}`);
  if (!capable[scenario.needs]) {
    results.push({ scenario, verdict: 'SKIP', evidence: [`needs ${scenario.needs === 'mount' || scenario.needs === 'chattr' ? `root and ${scenario.needs}` : scenario.needs}`], violations: [] });
    console.log(`SKIP (needs ${scenario.needs})`);
    continue;
  }
  if (scenario.needs === 'postgres' && !ctx.pg) {
    ctx.pg = await startPostgres();
    console.log(`PostgreSQL (embedded) on 127.0.0.1:${ctx.pg.port}`);
  }
  let outcome;
  try {
    let timer;
    outcome = await Promise.race([
      scenario.run(ctx),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`scenario time limit (${ctx.scenarioLimitMs} ms) reached`)), ctx.scenarioLimitMs);
      }),
    ]).finally(() => clearTimeout(timer));
  } catch (error) {
    const where = error instanceof Error ? (error.stack ?? '').split('\n').find((l) => l.includes('/scripts/chaos/'))?.trim() : undefined;
    outcome = {
      evidence: [
        `the scenario could not complete: ${(error instanceof Error ? error.message : String(error)).replace(/\s+/g, ' ').slice(0, 600)}${where ? ` (${where})` : ''}`,
      ],
      violations: [{ guarantee: '(harness)', detail: 'scenario did not complete' }],
    };
  }
  for (const cleanup of ctx.cleanups.splice(0)) await cleanup().catch(() => undefined);
  // The database must be up for the next scenario, whatever this one did to it.
  if (ctx.pg && scenario.needs === 'postgres') await ctx.pg.start().catch(() => undefined);
  const verdict = outcome.violations.length === 0 ? 'PASS' : 'FAIL';
  results.push({ scenario, verdict, evidence: outcome.evidence, violations: outcome.violations, ms: Date.now() - t0 });
  for (const line of outcome.evidence) console.log(`  ${line}`);
  if (verdict === 'FAIL') {
    const byGuarantee = {};
    for (const v of outcome.violations) (byGuarantee[v.guarantee] ??= []).push(v.detail);
    for (const [g, details] of Object.entries(byGuarantee)) {
      console.log(`  BROKEN: ${g} (${details.length}×), e.g.`);
      for (const d of details.slice(0, 3)) console.log(`    - ${d}`);
    }
  }
  console.log(`${verdict} ${scenario.name} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
}

if (ctx.pg) await ctx.pg.destroy();
ctx.pg = undefined;

console.log('\n=== chaos report ===');
for (const r of results) {
  const broken = [...new Set(r.violations.map((v) => v.guarantee))];
  console.log(`${r.verdict.padEnd(4)} ${r.scenario.name.padEnd(20)} ${r.verdict === 'FAIL' ? `broken: ${broken.join('; ')}` : r.verdict === 'SKIP' ? r.evidence[0] : `held: ${r.scenario.guarantees.join('; ')}`}`);
}
console.log(`total ${((Date.now() - started) / 1000).toFixed(0)} s`);
console.log(`CHAOS_RESULT ${JSON.stringify(Object.fromEntries(results.map((r) => [r.scenario.name, r.verdict])))}`);
const failed = results.some((r) => r.verdict === 'FAIL' || (r.verdict === 'SKIP' && process.env.CHAOS_STRICT === '1'));
keepForFailure = results.some((r) => r.verdict === 'FAIL');
process.exit(failed ? 1 : 0);
