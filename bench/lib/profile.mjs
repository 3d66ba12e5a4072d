/**
 * Summarise a V8 .cpuprofile: self time and inclusive time per function (name + file + line),
 * optionally restricted to a time window (the load, not the start-up).
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

const SPECIAL = new Set(['(idle)', '(program)', '(garbage collector)', '(root)']);

function shortUrl(url, root) {
  if (!url) return '';
  let u = url.startsWith('file://') ? decodeURIComponent(new URL(url).pathname) : url;
  const nm = u.lastIndexOf('/node_modules/');
  if (nm !== -1) return u.slice(nm + '/node_modules/'.length);
  if (u.startsWith('/')) u = relative(root, u);
  return u;
}

/** Which bucket a frame belongs to: ours (dist/src), a package, node internals, or V8 specials. */
export function bucketOf(url, functionName) {
  if (SPECIAL.has(functionName)) return functionName;
  if (!url) return '(native/V8)';
  if (url.startsWith('node:')) return 'node internals';
  if (url.includes('/dist/src/') || url.includes('/dist/adapters/')) return 'express-app-tokens';
  const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1];
  if (url.includes('/bench/')) return 'bench harness';
  return url;
}

/**
 * @param file the .cpuprofile
 * @param window optional {startUs, endUs} on the profile's clock
 */
export function summarize(file, { root = process.cwd(), window, top = 25 } = {}) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const keyOf = (n) => {
    const cf = n.callFrame;
    const name = cf.functionName || '(anonymous)';
    return SPECIAL.has(name) ? name : `${name} ${shortUrl(cf.url, root)}:${cf.lineNumber + 1}`;
  };
  const self = new Map();
  const inclusive = new Map();
  const buckets = new Map();
  let total = 0;
  let idle = 0;
  let t = profile.startTime;
  let used = 0;
  const { samples, timeDeltas } = profile;
  for (let i = 0; i < samples.length; i++) {
    t += timeDeltas[i];
    // The sample's weight: the time until the next sample (the last one gets the mean).
    const dt = i + 1 < samples.length ? timeDeltas[i + 1] : (profile.endTime - profile.startTime) / samples.length;
    if (window && (t < window.startUs || t > window.endUs)) continue;
    used++;
    const node = nodes.get(samples[i]);
    const cf = node.callFrame;
    if (cf.functionName === '(idle)') {
      idle += dt;
      continue;
    }
    total += dt;
    const key = keyOf(node);
    const s = self.get(key) ?? { key, bucket: bucketOf(cf.url, cf.functionName), us: 0 };
    s.us += dt;
    self.set(key, s);
    const b = bucketOf(cf.url, cf.functionName);
    buckets.set(b, (buckets.get(b) ?? 0) + dt);
    // Inclusive time, but not what runs downstream: a middleware that calls next() would
    // otherwise be charged for every later middleware and the handler. Walking from the leaf up,
    // once an Express/router frame is passed, the frames above it are not charged.
    const seen = new Set();
    let downstream = false;
    for (let id = node.id; id !== undefined; id = parent.get(id)) {
      const n = nodes.get(id);
      const k = keyOf(n);
      const b = bucketOf(n.callFrame.url, n.callFrame.functionName);
      if (b === 'router' || b === 'express') downstream = true;
      if (k === '(root)' || seen.has(k) || downstream) continue;
      seen.add(k);
      const e = inclusive.get(k) ?? { key: k, bucket: b, us: 0 };
      e.us += dt;
      inclusive.set(k, e);
    }
  }
  const pct = (us) => (total > 0 ? (100 * us) / total : 0);
  const list = (m, filter = () => true) =>
    [...m.values()]
      .filter(filter)
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((e) => ({ function: e.key, bucket: e.bucket, ms: +(e.us / 1000).toFixed(1), percent: +pct(e.us).toFixed(1) }));
  return {
    file,
    samples: samples.length,
    samplesInWindow: used,
    busyMs: +(total / 1000).toFixed(1),
    idleMs: +(idle / 1000).toFixed(1),
    topSelf: list(self),
    buckets: [...buckets.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([bucket, us]) => ({ bucket, ms: +(us / 1000).toFixed(1), percent: +pct(us).toFixed(1) })),
    oursInclusive: list(inclusive, (e) => e.bucket === 'express-app-tokens' || e.bucket === 'passport-http-bearer' || e.bucket === 'lru-cache'),
  };
}
