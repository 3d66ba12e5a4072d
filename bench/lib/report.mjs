/** Targets, and the markdown report. */

const fmt = (n, digits = 0) =>
  n === null || n === undefined || Number.isNaN(n) ? '–' : Number(n).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const x = (r) => (r === null || r === undefined ? '–' : `${r.toFixed(2)}×`);

function find(scenario, id) {
  return scenario?.contenders.find((c) => c.id === id);
}

function ratioTarget(name, scenario, id, column, threshold, { op = '>=', explain } = {}) {
  const c = find(scenario, id);
  const r = c?.ratios?.[column];
  if (!c || !r) return { name, value: null, threshold, pass: null, note: 'not measured' };
  return { name, value: r.ratio, paired: r.paired, threshold, op, pass: op === '>=' ? r.ratio >= threshold : r.ratio <= threshold, explain };
}

/** Every target of the brief that the run measured. */
export function evaluateTargets(results) {
  const targets = [];
  const s = results.scenarios;
  if (s.protected) {
    targets.push(ratioTarget('protected: ours (JWT) ≥ 0.90× bare Express', s.protected, 'ours-jwt', 'bare', 0.9));
    targets.push(ratioTarget('protected: ours (JWT) ≥ 1.5× express-oauth2-jwt-bearer', s.protected, 'ours-jwt', 'o2jb', 1.5));
    // Issue 15: what a fresh DPoP proof per request costs against the bearer path (signature + replay insert).
    targets.push(
      ratioTarget('protected: ours (DPoP, fresh proof per request) ≥ 0.15× ours (JWT as Bearer)', s.protected, 'ours-dpop', 'jwt', 0.15, {
        explain: 'an ES256 proof verified and its jti inserted into the shared replay guard on every request',
      }),
    );
  }
  if (s.ratelimit) {
    // Issue 16: the example server's rate-limited route, and the same stack without rateLimit.
    targets.push(ratioTarget('ratelimit: example GET /notarizations/stamps (authenticate + rateLimit + requireScopes) ≥ 0.95× its GET /health', s.ratelimit, 'stamps', 'health', 0.95));
    targets.push(ratioTarget('ratelimit: the same route without rateLimit ≥ 1.0× GET /health', s.ratelimit, 'stamps-no-limit', 'health', 1.0));
    targets.push(ratioTarget('ratelimit: the rate-limited route with counting on (usage + telemetry) ≥ 0.95× counting off (issue 24)', s.ratelimit, 'stamps', 'off', 0.95));
  }
  if (s.shared) {
    targets.push(ratioTarget('shared: 3 instances on PostgreSQL, leased counts ≥ 0.9× no limiter', s.shared, 'pg3-leases', 'none', 0.9));
    const k = s.shared.counts;
    if (k) {
      targets.push({
        name: `shared: allowed within [quota, quota + 3 × lease] = [${k.quota}, ${k.upper}]`,
        value: k.ok,
        threshold: 0,
        pass: k.crossedWindow ? null : k.ok >= k.quota && k.ok <= k.upper,
        note: `${k.ok} of ${k.sent} allowed`,
      });
    }
  }
  if (s.token) {
    for (const c of s.token.contenders) {
      if (!c.id.startsWith('ours-')) continue;
      // Issue 13: what resolving roles or a user's scopes costs a grant, against the same grant of a plain app.
      if (c.meta.clientKind) {
        targets.push(ratioTarget(`token: ${c.id} ≥ 0.85× the plain app's grant (${c.meta.alg})`, s.token, c.id, 'plain', 0.85));
        continue;
      }
      // Issue 24: against the floor of any Express endpoint, and against oidc-provider (the earlier 3× is out of reach: docs/PERFORMANCE.md).
      if (c.meta.alg === 'EdDSA') targets.push(ratioTarget(`token: ${c.id} ≥ 1.3× oidc-provider (EdDSA)`, s.token, c.id, 'oidc', 1.3));
      if (c.meta.alg === 'EdDSA') targets.push(ratioTarget(`token: ${c.id} ≥ 0.75× a bare Express POST (EdDSA)`, s.token, c.id, 'bare', 0.75));
      // Issue 16 sets this target at 0.6× (the earlier 0.85× is out of reach for any Express endpoint here: docs/PERFORMANCE.md).
      if (c.meta.alg === 'RS256') targets.push(ratioTarget(`token: ${c.id} ≥ 0.6× the RS256 signing limit`, s.token, c.id, 'sign', 0.6));
    }
  }
  for (const key of ['scale-protected', 'scale-token']) {
    const sc = s[key];
    if (!sc) continue;
    const stores = [...new Set(sc.contenders.map((c) => c.meta.store))];
    for (const store of stores) {
      const list = sc.contenders.filter((c) => c.meta.store === store).sort((a, b) => a.meta.apps - b.meta.apps);
      const largest = list[list.length - 1];
      const smallest = list[0];
      if (largest === smallest) continue;
      targets.push(
        ratioTarget(
          `${key}: ${store} with ${largest.meta.apps.toLocaleString('en-US')} apps ≥ 1/1.1 (0.909×) of ${smallest.meta.apps} apps`,
          sc,
          largest.id,
          'smallest',
          1 / 1.1,
        ),
      );
    }
  }
  for (const [key, sc] of Object.entries(s)) {
    if (!sc) continue;
    const bad = sc.contenders.filter((c) => c.non2xx > 0 || c.errors > 0);
    targets.push({
      name: `${key}: every measured response 2xx, no socket errors`,
      value: bad.length,
      threshold: 0,
      pass: bad.length === 0,
      note: bad.map((c) => `${c.id}: ${c.non2xx} non-2xx, ${c.errors} errors`).join('; ') || undefined,
    });
  }
  return targets;
}

function scenarioTable(sc) {
  const cols = Object.entries(sc.refColumns ?? {});
  const head = ['contender', 'median req/s', 'min – max', 'IQR', '(max−min)/median', ...cols.map(([, t]) => t), 'server CPU', 'load gen. CPU', 'other CPU (cores)', 'p50 / p99 ms'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`];
  for (const c of sc.contenders) {
    const ratios = cols.map(([k]) => {
      const r = c.ratios?.[k];
      return r ? `${x(r.ratio)} (paired ${x(r.paired)})` : '';
    });
    const flag = c.non2xx > 0 || c.errors > 0 ? ` ⚠ ${c.non2xx} non-2xx, ${c.errors} errors` : '';
    lines.push(
      `| ${c.label}${flag} | ${fmt(c.rps.median)} | ${fmt(c.rps.min)} – ${fmt(c.rps.max)} | ${fmt(c.rps.q1)} – ${fmt(c.rps.q3)} | ${fmt(c.rps.spreadPercent, 0)}% | ${ratios.join(' | ')}${cols.length ? ' | ' : ''}${c.cpuPercent === null ? '–' : `${fmt(c.cpuPercent)}%`} | ${c.loadGeneratorCpu === null ? '–' : `${fmt(c.loadGeneratorCpu)}%`} | ${c.otherCores === null ? '–' : fmt(c.otherCores, 2)} | ${c.p50 === null ? '–' : `${fmt(c.p50, 0)} / ${fmt(c.p99, 0)}`} |`,
    );
  }
  return lines.join('\n');
}

export function markdown(results) {
  const out = [];
  const m = results.meta;
  out.push(`# express-app-tokens bench — ${m.date}`);
  out.push('');
  out.push(`Mode: **${m.options.quick ? 'quick' : 'full'}**; ${m.options.connections} connections, pipelining 1; took ${Math.round(m.seconds)} s.`);
  out.push(`Machine: ${m.machine.nproc} CPUs (${m.machine.cpu}), ${m.machine.memory}; Node ${m.machine.node}; ${m.machine.os}; load average at start ${m.machine.loadavgStart.map((l) => l.toFixed(2)).join(' ')}, at end ${m.machine.loadavgEnd?.map((l) => l.toFixed(2)).join(' ') ?? '–'}.`);
  out.push('');
  out.push('## Targets');
  out.push('');
  out.push('| target | measured | threshold | result |');
  out.push('|---|---:|---:|---|');
  for (const t of results.targets) {
    const value = typeof t.value === 'number' && t.threshold !== 0 ? `${x(t.value)}${t.paired ? ` (paired ${x(t.paired)})` : ''}` : fmt(t.value);
    const threshold = t.threshold === 0 ? '0' : x(t.threshold);
    out.push(`| ${t.name} | ${value} | ${threshold} | ${t.pass === null ? 'not measured' : t.pass ? 'PASS' : '**FAIL**'}${t.note ? ` (${t.note})` : ''} |`);
  }
  for (const sc of Object.values(results.scenarios)) {
    if (!sc) continue;
    out.push('');
    out.push(`## ${sc.title}`);
    out.push('');
    out.push(`${sc.rounds} interleaved rounds × ${sc.duration} s per contender (after a ${sc.warmup} s warm-up each); ${sc.seconds} s in all. Medians over rounds; ratios are of medians, "paired" is the median of the per-round ratios.`);
    for (const n of sc.notes ?? []) out.push(`${n}`);
    out.push('');
    out.push(scenarioTable(sc));
    const extra = sc.contenders.filter((c) => c.meta?.tokenLength || c.meta?.rows);
    if (extra.length) {
      out.push('');
      for (const c of extra) {
        const bits = [];
        if (c.meta.tokenLength) bits.push(`token ${c.meta.tokenLength} chars`);
        if (c.meta.rows) bits.push(`${c.meta.rows.apps.toLocaleString('en-US')} apps / ${c.meta.rows.apiTokens.toLocaleString('en-US')} API tokens in the store${c.meta.loadSeconds > 0.05 ? `, bulk load ${c.meta.loadSeconds.toFixed(1)} s` : ''}`);
        out.push(`- ${c.label}: ${bits.join('; ')}`);
      }
    }
  }
  if (results.memory) {
    const mem = results.memory;
    out.push('');
    out.push(`## Memory: ${mem.tokens.toLocaleString('en-US')} distinct live ${mem.alg} access tokens (${mem.tokenLength} chars each), each verified once`);
    out.push('');
    out.push(`Minted through the service (\`issueClientCredentials\`) in ${mem.mintSeconds.toFixed(1)} s in the orchestrator, then each sent once to a fresh server process's protected route; RSS and heap after a forced GC (--expose-gc), before and after.`);
    out.push('');
    out.push('| cacheMax | cached after | RSS before → after (MB) | Δ RSS (MB) | heap used before → after (MB) | Δ heap (MB) | bytes per cached token (heap / RSS) | uncached verification req/s |');
    out.push('|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of mem.runs) {
      out.push(
        `| ${r.cacheMax.toLocaleString('en-US')}${r.defaultBound ? ' (default)' : ''} | ${r.retained.toLocaleString('en-US')} | ${fmt(r.before.rss / 2 ** 20, 1)} → ${fmt(r.after.rss / 2 ** 20, 1)} | ${fmt(r.rssDeltaMB, 1)} | ${fmt(r.before.heapUsed / 2 ** 20, 1)} → ${fmt(r.after.heapUsed / 2 ** 20, 1)} | ${fmt(r.heapUsedDeltaMB, 1)} | ${fmt(r.heapBytesPerToken)} / ${fmt(r.rssBytesPerToken)} | ${fmt(r.verifyRps)} |`,
      );
    }
  }
  for (const [i, p] of (results.profile ?? []).entries()) {
    const main = i === 0;
    const top = main ? 25 : 12;
    out.push('');
    out.push(`## CPU profile: ${p.title} — ${p.seconds} s of load at ${fmt(p.rps)} req/s`);
    out.push('');
    out.push(`\`node --cpu-prof --cpu-prof-interval=200\`; ${p.samplesInWindow} samples in the load window${p.windowIgnored ? ' (window not found: whole profile)' : ''}; ${fmt(p.busyMs)} ms busy, ${fmt(p.idleMs)} ms idle (≈ ${fmt((1000 * p.busyMs) / (p.rps * p.seconds) , 0)} µs of main-thread time per request). Percentages are of busy time.`);
    out.push('');
    out.push('By package (self time):');
    out.push('');
    out.push('| where | ms | % |');
    out.push('|---|---:|---:|');
    for (const b of p.buckets.slice(0, main ? 14 : 8)) out.push(`| ${b.bucket} | ${fmt(b.ms)} | ${fmt(b.percent, 1)} |`);
    out.push('');
    out.push('Top functions by self time:');
    out.push('');
    out.push('| function (file:line) | package | self ms | % |');
    out.push('|---|---|---:|---:|');
    for (const f of p.topSelf.slice(0, top)) out.push(`| \`${f.function}\` | ${f.bucket} | ${fmt(f.ms)} | ${fmt(f.percent, 1)} |`);
    out.push('');
    out.push('Our functions (and passport-http-bearer, lru-cache) by inclusive time, not counting what runs after they call `next()` (later middleware, the handler):');
    out.push('');
    out.push('| function (file:line) | package | inclusive ms | % |');
    out.push('|---|---|---:|---:|');
    for (const f of p.oursInclusive.slice(0, top)) out.push(`| \`${f.function}\` | ${f.bucket} | ${fmt(f.ms)} | ${fmt(f.percent, 1)} |`);
  }
  out.push('');
  return out.join('\n');
}
