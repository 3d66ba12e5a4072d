/**
 * The fault scenarios. Each takes the harness context and returns
 * `{evidence: string[], violations: Array<{guarantee, detail}>}`; the runner turns a violation
 * into FAIL. Every wait is bounded; every scenario stops its own instances.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, rmSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { freshDatabase } from './postgres.mjs';
import { startProxy } from './proxy.mjs';
import { bootstrap, startInstance } from './instance.mjs';
import { createWorkload } from './workload.mjs';
import { basic, bearer, form, sleep } from './util.mjs';

/** Guarantees, by the name the report and docs/DEPLOYMENT.md use. */
export const GUARANTEES = {
  'no instance exits': 'No instance exits because of a database fault.',
  'never a 500': 'Every answer is 2xx/4xx or 503: never a 500 (nor another 5xx).',
  '503 with Retry-After': 'Every 503 carries Retry-After (delay-seconds).',
  'no hang': 'Every request is answered within the store deadline (plus slack).',
  'no acknowledged write lost': 'An acknowledged create, regeneration or deletion is there after recovery.',
  'no revoked credential accepted': 'A deleted or regenerated credential is refused at once where it was revoked, everywhere after recovery.',
  'writes resume by themselves': 'Writes succeed again once the cause is gone, without a restart.',
  'fails closed past the staleness bound': 'An instance cut off from revocations refuses what depends on them past the bound.',
  'start-up names the cause': 'A database that cannot be opened stops start-up with the cause named, no stack trace.',
};

const statusLine = (stats) =>
  `${stats.requests} requests: ${Object.entries(stats.byStatus)
    .sort()
    .map(([k, v]) => `${k}×${v}`)
    .join(', ')}; slowest answer ${stats.slowest} ms${stats.slowestWhat ? ` (${stats.slowestWhat})` : ''}`;

const ledgerLine = (ledger) => {
  const deletedApps = ledger.apps.filter((a) => a.deleted).length;
  const deletedTokens = ledger.tokens.filter((t) => t.deleted).length;
  return `acknowledged: ${ledger.apps.length} apps created (${deletedApps} deleted), ${ledger.tokens.length} tokens created (${deletedTokens} deleted), ${ledger.regenerations.length} regenerations`;
};

function exitsCheck(instances, wl) {
  for (const i of instances) {
    for (const e of i.unexpectedExits) {
      // First in the list: the exit itself is the evidence, the refused connections follow from it.
      wl.violations.unshift({
        guarantee: 'no instance exits',
        detail: `${i.name} exited (code ${e.code}, signal ${e.signal}) at ${e.at}; its log ends: ${i.log().slice(-600).replace(/\s+/g, ' ')}`,
      });
    }
  }
}

/** N instances on a fresh database of the shared PostgreSQL; `proxied[i]`: instance i goes through its own silenceable proxy. */
async function pgCluster(ctx, name, { n = 3, proxied = [] } = {}) {
  const databaseUrl = await freshDatabase(ctx.pg.url);
  const admin = await bootstrap(databaseUrl, 'chaos', ctx.workdir);
  const proxies = [];
  const instances = [];
  const issuer = `http://localhost:${ctx.issuerPort}`;
  for (let i = 0; i < n; i++) {
    let url = databaseUrl;
    if (proxied.includes(i)) {
      const proxy = await startProxy({ targetPort: ctx.pg.port });
      proxies[i] = proxy;
      const u = new URL(databaseUrl);
      u.port = String(proxy.port);
      url = u.href;
    }
    instances.push(await startInstance({ name: `${name}-${String.fromCharCode(97 + i)}`, databaseUrl: url, issuer, logDir: ctx.logDir }));
  }
  ctx.cleanups.push(async () => {
    for (const i of instances) await i.stop().catch(() => undefined);
    for (const p of proxies) await p?.close();
  });
  return { databaseUrl, admin, instances, proxies };
}

async function stopAll(instances, proxies = []) {
  for (const i of instances) await i.stop().catch(() => undefined);
  for (const p of proxies) await p?.close();
}

/** The shared skeleton: load, fault, load through it, heal, writes resume, ledger holds. */
async function faultUnderLoad(ctx, { instances, admin, fault, heal, faultMs, evidence, killedDuringFault = [] }) {
  const wl = createWorkload({ instances, admin, deadlineMs: ctx.answerWithinMs });
  await wl.setup();
  const load = wl.start(ctx.workers, 120_000 + faultMs);
  await sleep(ctx.baselineMs);
  const before = { ...wl.stats, byStatus: { ...wl.stats.byStatus } };
  evidence.push(`before the fault: ${statusLine(before)}`);
  for (const name of killedDuringFault) wl.killed.add(name);
  const faultAt = Date.now();
  await fault();
  evidence.push(`fault injected; load kept running for ${faultMs} ms`);
  await sleep(faultMs);
  await heal();
  evidence.push(`cause removed after ${Date.now() - faultAt} ms`);
  const took = await wl.awaitWrites(ctx.recoveryMs);
  evidence.push(`first acknowledged write after the cause was gone: ${Object.entries(took).map(([k, v]) => `${k} ${v === undefined ? 'NONE' : `${v} ms`}`).join(', ')}`);
  await sleep(ctx.baselineMs);
  await load.stop();
  evidence.push(`whole run: ${statusLine(wl.stats)}; 503s with Retry-After: ${wl.stats.retryAfter503}`);
  evidence.push(ledgerLine(wl.ledger));
  exitsCheck(instances, wl);
  const checks = await wl.verifyLedger();
  evidence.push(`ledger verified after recovery: ${checks} checks on ${instances.filter((i) => !i.exited).length} instances`);
  return wl;
}

// ---- PostgreSQL ---------------------------------------------------------------------------------

async function pgDeath(ctx, kind) {
  const evidence = [];
  const { admin, instances } = await pgCluster(ctx, kind === 'kill' ? 'pgkill' : 'pgfast');
  const wl = await faultUnderLoad(ctx, {
    instances,
    admin,
    evidence,
    faultMs: ctx.outageMs,
    fault: () => (kind === 'kill' ? ctx.pg.kill9() : ctx.pg.fastShutdown()),
    heal: () => ctx.pg.start(),
  });
  await stopAll(instances);
  return { evidence, violations: wl.violations };
}

/**
 * kill -9 of a SQLite instance mid-write, restarted on the same file. The control rolls the file
 * back to a copy taken before the last writes (what a lost fsync or a restored backup would do):
 * the ledger check must then report lost writes, which shows it can.
 */
async function sqliteCrash(ctx, { control }) {
  const evidence = [];
  const dir = join(ctx.workdir, control ? 'control' : 'crash');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'tokens.db');
  const databaseUrl = `sqlite:${file}`;
  const admin = await bootstrap(databaseUrl, 'chaos', ctx.workdir);
  const instance = await startInstance({ name: control ? 'control' : 'sqlite-crash', databaseUrl, issuer: `http://localhost:${ctx.issuerPort}`, logDir: ctx.logDir });
  const wl = createWorkload({ instances: [instance], admin, deadlineMs: ctx.answerWithinMs });
  await wl.setup();
  const load = wl.start(ctx.workers, 60_000);
  for (let round = 0; round < 2; round++) {
    await sleep(ctx.baselineMs);
    let copy;
    if (control && round === 1) {
      copy = join(dir, 'earlier.db');
      const side = new Database(file);
      await side.backup(copy);
      side.close();
      evidence.push('control: copy of the database taken; the load goes on writing');
      await sleep(ctx.baselineMs);
    }
    wl.killed.add(instance.name);
    await instance.kill9();
    evidence.push(`kill -9 ${instance.name} (pid ${instance.proc.pid}) with ${ctx.workers} workers writing`);
    if (copy) {
      for (const f of ['', '-wal', '-shm']) if (existsSync(file + f)) rmSync(file + f);
      execFileSync('cp', [copy, file]);
      evidence.push('control: database rolled back to the copy');
    }
    await instance.restart();
    wl.killed.delete(instance.name);
    evidence.push(`${instance.name} restarted`);
  }
  await sleep(ctx.baselineMs);
  await load.stop();
  evidence.push(`whole run: ${statusLine(wl.stats)}`);
  evidence.push(ledgerLine(wl.ledger));
  exitsCheck([instance], wl);
  const checks = await wl.verifyLedger();
  evidence.push(`ledger verified after the restarts: ${checks} checks`);
  await instance.stop();
  return { evidence, violations: wl.violations };
}

export const scenarios = [
  {
    name: 'pg-sigkill',
    title: 'PostgreSQL SIGKILLed under load (postmaster and backends), then started again',
    guarantees: ['no instance exits', 'never a 500', '503 with Retry-After', 'no hang', 'no acknowledged write lost', 'no revoked credential accepted', 'writes resume by themselves'],
    needs: 'postgres',
    run: (ctx) => pgDeath(ctx, 'kill'),
  },
  {
    name: 'pg-fast-shutdown',
    title: 'PostgreSQL fast shutdown (SIGINT: a failover, a managed restart) under load, then started again',
    guarantees: ['no instance exits', 'never a 500', '503 with Retry-After', 'no hang', 'no acknowledged write lost', 'no revoked credential accepted', 'writes resume by themselves'],
    needs: 'postgres',
    run: (ctx) => pgDeath(ctx, 'fast'),
  },
  {
    name: 'pg-partition',
    title: 'The path to PostgreSQL goes silent (no RST, sockets stay open) for every instance, then heals',
    guarantees: ['no instance exits', 'never a 500', '503 with Retry-After', 'no hang', 'no acknowledged write lost', 'no revoked credential accepted', 'writes resume by themselves'],
    needs: 'postgres',
    async run(ctx) {
      const evidence = [];
      const { admin, instances, proxies } = await pgCluster(ctx, 'partition', { proxied: [0, 1, 2] });
      const wl = await faultUnderLoad(ctx, {
        instances,
        admin,
        evidence,
        faultMs: ctx.partitionMs,
        fault: async () => proxies.forEach((p) => p.silence()),
        heal: async () => proxies.forEach((p) => p.heal()),
      });
      await stopAll(instances, proxies);
      return { evidence, violations: wl.violations };
    },
  },
  {
    name: 'pg-stale-instance',
    title: 'One instance cut off (silent path) while another deletes an app: it must fail closed past the staleness bound',
    guarantees: ['fails closed past the staleness bound', 'no revoked credential accepted', 'never a 500', '503 with Retry-After', 'no hang', 'no instance exits', 'writes resume by themselves'],
    needs: 'postgres',
    async run(ctx) {
      const evidence = [];
      const { admin, instances, proxies } = await pgCluster(ctx, 'stale', { proxied: [2] });
      const [a, , c] = instances;
      const wl = createWorkload({ instances, admin, deadlineMs: ctx.answerWithinMs });
      await wl.setup();
      // The victim app: created on A, its secret and access token used on C (both cached there).
      const victim = await wl.createApp(a, 'victim');
      if (!victim?.jwt) throw new Error('could not create the victim app');
      // The scenario deletes the victim itself; the load must not do it first.
      victim.keep = true;
      const jwtOnC = await wl.grant(c, victim.id, victim.value);
      const warm = [
        await wl.req(c, 'GET', '/notarizations/stamps', { headers: bearer(victim.jwt) }),
        await wl.req(c, 'GET', '/notarizations/stamps', { headers: bearer(victim.value) }),
      ];
      if (!jwtOnC || warm.some((r) => r.status !== 200)) throw new Error(`the victim's credentials did not work on C before the partition: ${warm.map((r) => r.status)}`);
      const load = wl.start(2, 120_000);
      await sleep(1000);
      const cutAt = Date.now();
      proxies[2].silence();
      evidence.push(`${c.name} cut off from PostgreSQL (silent proxy)`);
      const del = await wl.req(a, 'DELETE', `/apps/${encodeURIComponent(victim.id)}`, { headers: bearer(wl.adminToken) });
      if (del.status !== 204) throw new Error(`DELETE of the victim on A answered ${del.status}`);
      victim.deleted = true;
      const deletedAt = Date.now();
      evidence.push(`victim app deleted on ${a.name} (204) ${deletedAt - cutAt} ms after the cut`);
      // Probe C with the deleted app's access token, API token and secret for bound + slack + 5 s.
      const bound = ctx.stalenessMs + ctx.stalenessSlackMs;
      let last200 = -1;
      const seen = {};
      // Each probe's time is when it was sent: a 200 sent before the bound and answered after it is fine.
      const probe = async (what, method, path, options) => {
        const sentAt = Date.now() - cutAt;
        const res = await wl.req(c, method, path, options);
        const k = `${what} ${res.status || res.error}`;
        seen[k] = (seen[k] ?? 0) + 1;
        if (res.status === 200) {
          last200 = Math.max(last200, sentAt);
          if (sentAt > bound) {
            wl.note('fails closed past the staleness bound', `${c.name}: the deleted app's ${what} got 200, sent ${sentAt} ms after the cut (bound ${ctx.stalenessMs} ms + slack ${ctx.stalenessSlackMs} ms)`);
          }
        }
      };
      while (Date.now() - cutAt < bound + 5000) {
        await Promise.all([
          probe('jwt', 'GET', '/notarizations/stamps', { headers: bearer(victim.jwt) }),
          probe('api token', 'GET', '/notarizations/stamps', { headers: bearer(victim.value) }),
          probe('grant', 'POST', '/oauth/token', {
            headers: { Authorization: basic(victim.id, victim.value), 'Content-Type': 'application/x-www-form-urlencoded' },
            body: form({ grant_type: 'client_credentials' }),
          }),
        ]);
        await sleep(250);
      }
      evidence.push(`on ${c.name} during the partition: ${Object.entries(seen).map(([k, v]) => `${k}×${v}`).join(', ')}`);
      evidence.push(last200 < 0 ? `the deleted app's credentials never got 200 on ${c.name} after the cut` : `last 200 for a deleted-app credential on ${c.name}: sent ${last200} ms after the cut (allowed up to ${bound} ms)`);
      proxies[2].heal();
      const healedAt = Date.now();
      const took = await wl.awaitWrites(ctx.recoveryMs);
      evidence.push(`writes after heal: ${Object.entries(took).map(([k, v]) => `${k} ${v === undefined ? 'NONE' : `${v} ms`}`).join(', ')}`);
      // Healed: the revocation reaches C: 401 (not 503) within the recovery bound.
      let after;
      while (Date.now() - healedAt < ctx.recoveryMs) {
        after = await wl.req(c, 'GET', '/notarizations/stamps', { headers: bearer(victim.jwt) });
        if (after.status === 401) break;
        if (after.status === 200) wl.note('no revoked credential accepted', `${c.name}: the deleted app's access token got 200 after the path healed`);
        await sleep(250);
      }
      evidence.push(`after heal, the deleted app's access token on ${c.name}: ${after?.status} (${Date.now() - healedAt} ms after heal)`);
      if (after?.status !== 401) wl.note('writes resume by themselves', `${c.name}: revocations did not reach it within ${ctx.recoveryMs} ms after heal (last answer ${after?.status})`);
      await load.stop();
      evidence.push(`whole run: ${statusLine(wl.stats)}`);
      exitsCheck(instances, wl);
      await stopAll(instances, proxies);
      return { evidence, violations: wl.violations };
    },
  },
  {
    name: 'instance-kill9',
    title: 'Instances killed (kill -9) one after another mid-write and restarted, on PostgreSQL',
    guarantees: ['no acknowledged write lost', 'no revoked credential accepted', 'never a 500', '503 with Retry-After', 'no hang'],
    needs: 'postgres',
    async run(ctx) {
      const evidence = [];
      const { admin, instances } = await pgCluster(ctx, 'crash');
      const wl = createWorkload({ instances, admin, deadlineMs: ctx.answerWithinMs });
      await wl.setup();
      const load = wl.start(ctx.workers, 120_000);
      await sleep(ctx.baselineMs);
      for (let round = 0; round < 3; round++) {
        const victim = instances[round % instances.length];
        wl.killed.add(victim.name);
        await victim.kill9();
        evidence.push(`kill -9 ${victim.name} (pid ${victim.proc.pid}) with ${ctx.workers} workers writing`);
        await sleep(1000);
        await victim.restart();
        wl.killed.delete(victim.name);
        evidence.push(`${victim.name} restarted`);
        await sleep(2000);
      }
      await load.stop();
      evidence.push(`whole run: ${statusLine(wl.stats)}`);
      evidence.push(ledgerLine(wl.ledger));
      exitsCheck(instances, wl);
      const checks = await wl.verifyLedger();
      evidence.push(`ledger verified after the restarts: ${checks} checks`);
      await stopAll(instances);
      return { evidence, violations: wl.violations };
    },
  },
  // ---- SQLite -----------------------------------------------------------------------------------
  {
    name: 'sqlite-kill9',
    title: 'The SQLite instance killed (kill -9) mid-write and restarted, twice',
    guarantees: ['no acknowledged write lost', 'no revoked credential accepted', 'never a 500', '503 with Retry-After', 'no hang'],
    needs: 'sqlite',
    run: (ctx) => sqliteCrash(ctx, { control: false }),
  },
  {
    name: 'control-lost-writes',
    title: 'CONTROL, not run by default: like sqlite-kill9, but the file is rolled back to an earlier copy before the restart; it must FAIL',
    guarantees: ['no acknowledged write lost'],
    needs: 'sqlite',
    control: true,
    run: (ctx) => sqliteCrash(ctx, { control: true }),
  },
  {
    name: 'sqlite-full',
    title: 'The SQLite file system fills up (a small tmpfs, filled by another file) under load, then space is freed',
    guarantees: ['no instance exits', 'never a 500', '503 with Retry-After', 'no hang', 'no acknowledged write lost', 'no revoked credential accepted', 'writes resume by themselves'],
    needs: 'mount',
    async run(ctx) {
      const evidence = [];
      const dir = join(ctx.workdir, 'full');
      mkdirSync(dir, { recursive: true });
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${ctx.tmpfsMb}m`, 'tmpfs', dir]);
      ctx.cleanups.push(async () => {
        try {
          execFileSync('umount', ['-l', dir]);
        } catch {
          // gone
        }
      });
      const databaseUrl = `sqlite:${join(dir, 'tokens.db')}`;
      const admin = await bootstrap(databaseUrl, 'chaos', ctx.workdir);
      const instance = await startInstance({ name: 'sqlite-full', databaseUrl, issuer: `http://localhost:${ctx.issuerPort}`, logDir: ctx.logDir });
      const filler = join(dir, 'filler');
      const wl = await faultUnderLoad(ctx, {
        instances: [instance],
        admin,
        evidence,
        faultMs: ctx.outageMs,
        async fault() {
          // Fill every free byte: ENOSPC for SQLite's next write (SQLITE_FULL).
          const fd = openSync(filler, 'w');
          const block = Buffer.alloc(64 * 1024, 0x5a);
          let written = 0;
          try {
            for (let i = 0; i < 100_000; i++) written += writeSync(fd, block);
          } catch (error) {
            if (error.code !== 'ENOSPC') throw error;
          } finally {
            closeSync(fd);
          }
          evidence.push(`tmpfs of ${ctx.tmpfsMb} MB filled (${(written / 1048576).toFixed(1)} MB of filler)`);
        },
        async heal() {
          unlinkSync(filler);
        },
      });
      const log = instance.log();
      evidence.push(`the instance's log names the cause: ${/SQLITE_FULL|disk is full/i.test(log) ? 'yes (SQLITE_FULL / disk is full)' : 'NO'}`);
      await instance.stop();
      return { evidence, violations: wl.violations };
    },
  },
  {
    name: 'sqlite-readonly',
    title: 'The SQLite database file, its WAL and directory made immutable (chattr +i: read-only even for root) under load, then writable again',
    guarantees: ['no instance exits', 'never a 500', '503 with Retry-After', 'no hang', 'no acknowledged write lost', 'no revoked credential accepted', 'writes resume by themselves'],
    needs: 'chattr',
    async run(ctx) {
      const evidence = [];
      const dir = join(ctx.workdir, 'readonly');
      mkdirSync(dir, { recursive: true });
      const databaseUrl = `sqlite:${join(dir, 'tokens.db')}`;
      const admin = await bootstrap(databaseUrl, 'chaos', ctx.workdir);
      const instance = await startInstance({ name: 'sqlite-readonly', databaseUrl, issuer: `http://localhost:${ctx.issuerPort}`, logDir: ctx.logDir });
      // The database file, its WAL and the directory; not the -shm: SQLite maps it into memory, and
      // a write fault on a mapping of an immutable file is SIGBUS from the kernel, which kills any
      // process (measured: the instance died with SIGBUS). That is the mapping, not the library.
      const files = () => [dir, ...readdirSync(dir).filter((f) => !f.endsWith('-shm')).map((f) => join(dir, f))];
      let locked = [];
      const unlock = () => {
        for (const f of locked) {
          try {
            execFileSync('chattr', ['-i', f]);
          } catch {
            // gone
          }
        }
        locked = [];
      };
      ctx.cleanups.push(async () => unlock());
      const wl = await faultUnderLoad(ctx, {
        instances: [instance],
        admin,
        evidence,
        faultMs: ctx.outageMs,
        async fault() {
          locked = files().reverse();
          for (const f of locked) execFileSync('chattr', ['+i', f]);
          evidence.push(`chattr +i on ${locked.map((f) => f.slice(dir.length) || '(directory)').join(', ')}`);
        },
        async heal() {
          unlock();
        },
      });
      const log = instance.log();
      const cause = /SQLITE_[A-Z_]+/.exec(log.split('\n').filter((l) => /SQLITE_(READONLY|IOERR|CANTOPEN|PERM)/.test(l)).join('\n'))?.[0];
      evidence.push(`the instance's log names the cause: ${cause ?? 'NO SQLITE_READONLY/IOERR/PERM line'}`);
      await instance.stop();
      return { evidence, violations: wl.violations };
    },
  },
  {
    name: 'sqlite-corrupt',
    title: 'The SQLite file corrupted under load (pages overwritten), then the instance restarted on it; and on a file whose header is garbage',
    guarantees: ['no instance exits', 'never a 500', '503 with Retry-After', 'no hang', 'start-up names the cause'],
    needs: 'sqlite',
    async run(ctx) {
      const evidence = [];
      const dir = join(ctx.workdir, 'corrupt');
      mkdirSync(dir, { recursive: true });
      const file = join(dir, 'tokens.db');
      const databaseUrl = `sqlite:${file}`;
      const admin = await bootstrap(databaseUrl, 'chaos', ctx.workdir);
      const instance = await startInstance({ name: 'sqlite-corrupt', databaseUrl, issuer: `http://localhost:${ctx.issuerPort}`, logDir: ctx.logDir });
      const wl = createWorkload({ instances: [instance], admin, deadlineMs: ctx.answerWithinMs });
      await wl.setup();
      const load = wl.start(ctx.workers, 60_000);
      await sleep(ctx.baselineMs);
      // Move the WAL into the main file (so the garbage is not hidden behind newer frames), then
      // overwrite every page after the first with garbage: tables and indexes, not the header.
      const side = new Database(file);
      side.pragma('busy_timeout = 5000');
      side.pragma('wal_checkpoint(TRUNCATE)');
      side.close();
      const size = statSync(file).size;
      const fd = openSync(file, 'r+');
      const garbage = Buffer.alloc(4096, 0xa5);
      for (let offset = 4096; offset < size; offset += 8192) writeSync(fd, garbage, 0, garbage.length, offset);
      closeSync(fd);
      evidence.push(`every other page after the first of a ${(size / 1024).toFixed(0)} KB database overwritten while ${ctx.workers} workers ran`);
      await sleep(ctx.outageMs);
      await load.stop();
      evidence.push(`during the corruption: ${statusLine(wl.stats)}`);
      exitsCheck([instance], wl);
      await instance.stop();
      // Start-up on the corrupted file: it may start (SQLite finds corruption lazily), or it must
      // refuse with the cause named.
      const checkStartup = async (what) => {
        try {
          const again = await startInstance({ name: `sqlite-corrupt-restart-${what}`, databaseUrl, issuer: `http://localhost:${ctx.issuerPort}`, logDir: ctx.logDir });
          const probe = await wl.req(again, 'GET', '/.well-known/jwks.json');
          evidence.push(`restart on the ${what} file: it started; GET /.well-known/jwks.json → ${probe.status}`);
          await again.stop();
        } catch (error) {
          const text = String(error.message);
          const named = /SQLITE_(CORRUPT|NOTADB)/.test(text);
          const stack = /\n\s+at .+:\d+:\d+/.test(text);
          evidence.push(`restart on the ${what} file: refused; ${named ? 'names the cause' : 'does NOT name SQLITE_CORRUPT/SQLITE_NOTADB'}${stack ? ', prints a STACK TRACE' : ''}: ${text.split('\n').slice(1).join(' ').trim().slice(0, 240)}`);
          if (!named) wl.note('start-up names the cause', `refused start-up on the ${what} file without naming SQLITE_CORRUPT or SQLITE_NOTADB`);
          if (stack) wl.note('start-up names the cause', `refused start-up on the ${what} file with a stack trace`);
        }
      };
      await checkStartup('corrupted');
      const fd2 = openSync(file, 'r+');
      writeSync(fd2, Buffer.alloc(100, 0x42), 0, 100, 0);
      closeSync(fd2);
      for (const f of ['-wal', '-shm']) if (existsSync(file + f)) rmSync(file + f);
      await checkStartup('garbage-header');
      return { evidence, violations: wl.violations };
    },
  },
];
