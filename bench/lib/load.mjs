/**
 * Load generation (autocannon, in the orchestrator's main thread, which does nothing else while a
 * measurement runs) and the interleaved-rounds runner.
 */
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';
import { median, summary } from './stats.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Run autocannon and resolve with its result. */
export function cannon(opts) {
  return new Promise((resolve, reject) => {
    const instance = autocannon({ pipelining: 1, ...opts }, (err, res) => (err ? reject(err) : resolve(res)));
    // autocannon prints nothing unless asked; keep it that way.
    void instance;
  });
}

function cpuPercent(s0, s1) {
  const us = s1.cpu.user - s0.cpu.user + (s1.cpu.system - s0.cpu.system);
  const ms = s1.at - s0.at;
  return ms > 0 ? (100 * us) / 1000 / ms : NaN;
}

/** The autocannon options of an HTTP contender (url + method/headers/body or requests). */
function httpOptions(c, connections) {
  return { url: `http://127.0.0.1:${c.child.port}${c.http.path}`, connections, ...c.http.options };
}

/** Busy and total jiffies of the whole machine (Linux /proc/stat), or undefined elsewhere. */
function machineTicks() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, idle, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
    const busy = user + nice + system + irq + softirq + steal;
    return { busy, total: busy + idle + iowait, at: performance.now() };
  } catch {
    return undefined;
  }
}

const CLK_TCK = 100;

/**
 * Everything else the machine did meanwhile, in cores: all busy CPU minus the orchestrator (load
 * generator) minus the contender's server process. It includes PostgreSQL's backends when the
 * contender uses it, and any other tenant of the machine.
 */
function otherCores(m0, m1, orch, serverCpuPercent) {
  if (!m0 || !m1) return null;
  const seconds = (m1.at - m0.at) / 1000;
  const machine = (m1.busy - m0.busy) / CLK_TCK / seconds;
  const load = (orch.user + orch.system) / 1e6 / seconds;
  return { machine, loadGenerator: load, other: Math.max(0, machine - load - (serverCpuPercent ?? 0) / 100) };
}

/** One measurement of a contender for `seconds`. */
export async function measure(c, seconds, connections) {
  if (c.loop) {
    const m0 = machineTicks();
    const o0 = process.cpuUsage();
    const r = await c.child.request(c.loop.cmd, { duration: seconds, concurrency: connections, ...c.loop.args });
    const cores = otherCores(m0, machineTicks(), process.cpuUsage(o0), r.cpuPercent);
    return { rps: r.ops / r.seconds, cpu: r.cpuPercent, non2xx: 0, errors: 0, p50: null, p99: null, otherCores: cores?.other ?? null };
  }
  const s0 = await c.child.stats();
  const m0 = machineTicks();
  const o0 = process.cpuUsage();
  const res = await cannon({ ...httpOptions(c, connections), duration: seconds });
  const o1 = process.cpuUsage(o0);
  const m1 = machineTicks();
  const s1 = await c.child.stats();
  const cpu = cpuPercent(s0, s1);
  const cores = otherCores(m0, m1, o1, cpu);
  return {
    rps: res['2xx'] / res.duration,
    cpu,
    loadGeneratorCpu: cores ? cores.loadGenerator * 100 : null,
    otherCores: cores?.other ?? null,
    non2xx: res.non2xx,
    errors: res.errors + res.timeouts,
    p50: res.latency.p50,
    p99: res.latency.p99,
    statusCodes: res.statusCodeStats,
  };
}

/**
 * Interleaved rounds: round r runs the contenders rotated by r (A B C, B C A, C A B, …), each for
 * `duration` s, with a pause of `c.settle` s after each (the contender's batched writes land
 * before the next one is measured). A warm-up run of `warmup` s per contender comes first.
 */
export async function runInterleaved(contenders, { rounds, duration, warmup, connections, log = console.log }) {
  if (warmup > 0) {
    for (const c of contenders) {
      await measure(c, warmup, connections);
      await sleep((c.settle ?? 0.3) * 1000);
    }
  }
  for (const c of contenders) c.samples = [];
  for (let r = 0; r < rounds; r++) {
    const order = contenders.map((_, i) => contenders[(i + r) % contenders.length]);
    const line = [];
    for (const c of order) {
      const s = await measure(c, duration, connections);
      s.round = r + 1;
      c.samples.push(s);
      line.push(`${c.id} ${Math.round(s.rps)}`);
      await sleep((c.settle ?? 0.3) * 1000);
    }
    log(`    round ${r + 1}/${rounds}: ${line.join(' | ')}`);
  }
  return summarize(contenders);
}

/**
 * Per contender: median req/s, spread, and for each reference named in `c.refs` ({column: id}) the
 * ratio of medians and the median of the per-round (paired) ratios.
 */
export function summarize(contenders) {
  const byId = new Map(contenders.map((c) => [c.id, c]));
  return contenders.map((c) => {
    const rps = summary(c.samples.map((s) => s.rps));
    const ratios = {};
    for (const [column, refId] of Object.entries(c.refs ?? {})) {
      const ref = byId.get(refId);
      if (!ref || ref === c) continue;
      const refMedian = median(ref.samples.map((s) => s.rps));
      ratios[column] = {
        ref: refId,
        ratio: rps.median / refMedian,
        paired: median(c.samples.map((s, i) => s.rps / ref.samples[i].rps)),
      };
    }
    const nums = (k) => c.samples.map((s) => s[k]).filter((x) => typeof x === 'number' && Number.isFinite(x));
    return {
      id: c.id,
      label: c.label ?? c.id,
      group: c.group ?? null,
      rps,
      ratios,
      cpuPercent: nums('cpu').length ? median(nums('cpu')) : null,
      loadGeneratorCpu: nums('loadGeneratorCpu').length ? median(nums('loadGeneratorCpu')) : null,
      otherCores: nums('otherCores').length ? median(nums('otherCores')) : null,
      p50: nums('p50').length ? median(nums('p50')) : null,
      p99: nums('p99').length ? median(nums('p99')) : null,
      non2xx: c.samples.reduce((a, s) => a + (s.non2xx ?? 0), 0),
      errors: c.samples.reduce((a, s) => a + (s.errors ?? 0), 0),
      samples: c.samples.map(({ statusCodes: _s, ...rest }) => rest),
      meta: c.meta ?? {},
    };
  });
}
