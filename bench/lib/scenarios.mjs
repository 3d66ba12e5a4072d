/**
 * The scenarios. Each starts its contenders (one child process each), checks that every one
 * answers correctly, measures them in interleaved rounds, and stops them.
 */
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { AUDIENCE, ISSUER, KEY_SECRET, SCOPES, TOKEN_BODY, basic, mintMany, protectedFixture, scaleFixture } from './fixtures.mjs';
import { spawnChild, stopAll } from './children.mjs';
import { cannon, runInterleaved, summarize } from './load.mjs';
import { freshDatabase } from './pg.mjs';
import { summarize as summarizeProfile } from './profile.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const oursConfig = (name, store, extra = {}) => ({
  kind: 'ours',
  name,
  store,
  issuer: ISSUER,
  scopes: SCOPES,
  keyEncryptionSecret: KEY_SECRET,
  alg: 'RS256',
  ...extra,
});

const getWith = (path, bearer) => ({ path, options: { method: 'GET', headers: { authorization: `Bearer ${bearer}` } } });

/**
 * RFC 9449: `Authorization: DPoP <token>` and a fresh proof for every request, made by the load
 * generator in autocannon's per-request hook (the smoke test reads `headers`, also fresh).
 */
const dpopGet = (path, { jwt, signer }) => {
  const headers = () => ({ authorization: `DPoP ${jwt}`, dpop: signer.proof('GET', `${ISSUER}${path}`, jwt) });
  const request = {
    method: 'GET',
    path,
    get headers() {
      return headers();
    },
    setupRequest: (req) => ({ ...req, headers: headers() }),
  };
  return { path, options: { requests: [request] } };
};

const tokenPost = (path, client) => ({
  path,
  options: {
    method: 'POST',
    headers: { authorization: basic(client.clientId, client.secret), 'content-type': 'application/x-www-form-urlencoded' },
    body: TOKEN_BODY,
  },
});

function decodeJwt(jwt) {
  const [h, p] = jwt.split('.');
  return { header: JSON.parse(Buffer.from(h, 'base64url').toString()), payload: JSON.parse(Buffer.from(p, 'base64url').toString()) };
}

/** One request with the contender's own parameters; throws unless it is the expected success. */
async function smoke(c) {
  if (c.loop) return;
  const { path, options } = c.http;
  const first = options.requests?.[0];
  const res = await fetch(`http://127.0.0.1:${c.child.port}${first?.path ?? path}`, {
    method: first?.method ?? options.method,
    headers: first?.headers ?? options.headers,
    body: first?.body ?? options.body,
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${c.id}: smoke request answered ${res.status}: ${text.slice(0, 300)}`);
  const body = JSON.parse(text);
  if (c.expect === 'ok' && body.ok !== true) throw new Error(`${c.id}: unexpected body ${text.slice(0, 200)}`);
  if (c.expect === 'token') {
    if (typeof body.access_token !== 'string' || !/^bearer$/i.test(body.token_type)) {
      throw new Error(`${c.id}: not a token response: ${text.slice(0, 200)}`);
    }
    const { header, payload } = decodeJwt(body.access_token);
    if (header.alg !== c.meta.alg) throw new Error(`${c.id}: token signed with ${header.alg}, expected ${c.meta.alg}`);
    if (header.typ !== 'at+jwt') throw new Error(`${c.id}: typ ${header.typ}`);
    for (const claim of ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'client_id', 'scope', 'tenant_id', 'app_name', 'api_token_id']) {
      if (payload[claim] === undefined) throw new Error(`${c.id}: token lacks the claim ${claim}`);
    }
    c.meta.tokenLength = body.access_token.length;
  }
}

/** Start the contenders' processes (a few at a time: nothing is being measured yet), smoke-test each. */
async function startAll(contenders, log, parallel = 3) {
  const queue = [...contenders];
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      for (let c = queue.shift(); c; c = queue.shift()) {
        c.child = await spawnChild(c.config, c.spawnOptions ?? {});
        if (c.afterSpawn) await c.afterSpawn(c);
      }
    }),
  );
  for (const c of contenders) await smoke(c);
  log(`    ${contenders.length} contenders up and answering correctly`);
}

async function measureScenario(ctx, id, title, contenders, params, notes = []) {
  const { log } = ctx;
  const started = Date.now();
  log(`  ${title}: ${contenders.length} contenders × ${params.rounds} rounds × ${params.duration} s (warm-up ${params.warmup} s each)`);
  const results = await runInterleaved(contenders, { ...params, connections: ctx.opts.connections, log });
  return {
    id,
    title,
    rounds: params.rounds,
    duration: params.duration,
    warmup: params.warmup,
    connections: ctx.opts.connections,
    refColumns: params.refColumns,
    notes,
    seconds: Math.round((Date.now() - started) / 1000),
    contenders: results,
  };
}

// ---- 2. protected route ------------------------------------------------------------------------

export async function protectedScenario(ctx) {
  const { opts, log } = ctx;
  const fx = await ctx.protectedFixture();
  const sqlite = { kind: 'sqlite', filename: fx.filename };
  const peers = (variant) => ({ kind: 'protected-peers', name: `protected-${variant}`, variant, issuer: ISSUER, audience: AUDIENCE, jwks: fx.jwks });
  const refs = { bare: 'bare', o2jb: 'oauth2-jwt-bearer' };
  const contenders = [
    { id: 'bare', label: 'bare Express (no auth)', config: peers('bare'), http: getWith('/protected', fx.jwt) },
    { id: 'ours-jwt', label: 'ours, JWT (authenticate + requireScopes)', config: oursConfig('protected-ours-jwt', sqlite), http: getWith('/protected', fx.jwt) },
    {
      id: 'ours-dpop',
      label: 'ours, DPoP-bound JWT + fresh ES256 proof per request (RFC 9449)',
      config: oursConfig('protected-ours-dpop', sqlite),
      http: dpopGet('/protected', fx.dpop),
      refs: { ...refs, jwt: 'ours-jwt' },
    },
    { id: 'ours-api-token', label: 'ours, API token as bearer', config: oursConfig('protected-ours-api', sqlite), http: getWith('/protected', fx.client.secret) },
    {
      id: 'ours-jwt-no-routes',
      label: 'ours, JWT, without app.use(auth.routes())',
      config: oursConfig('protected-ours-jwt-no-routes', sqlite, { mountRoutes: false }),
      http: getWith('/protected', fx.jwt),
    },
    {
      id: 'ours-passport',
      label: "ours via host passport.authenticate('app-tokens')",
      config: oursConfig('protected-ours-passport', sqlite, { mode: 'passport' }),
      http: getWith('/protected', fx.jwt),
    },
    { id: 'oauth2-jwt-bearer', label: 'express-oauth2-jwt-bearer', config: peers('oauth2-jwt-bearer'), http: getWith('/protected', fx.jwt) },
    { id: 'express-jwt', label: 'express-jwt + jwks-rsa', config: peers('express-jwt'), http: getWith('/protected', fx.jwt) },
    { id: 'passport-jwt', label: 'passport-jwt + jwks-rsa', config: peers('passport-jwt'), http: getWith('/protected', fx.jwt) },
  ].map((c) => ({ ...c, expect: 'ok', refs: c.refs ?? refs, settle: 0.3 }));
  try {
    await startAll(contenders, log);
    return await measureScenario(
      ctx,
      'protected',
      'Protected route (GET, RS256 JWT, notarization:read)',
      contenders,
      { ...opts.protected, refColumns: { bare: 'vs bare Express', o2jb: 'vs express-oauth2-jwt-bearer', jwt: 'vs ours, JWT as Bearer' } },
      [
        `JWT: ${fx.jwt.length} chars, RS256, minted by our token endpoint; every server verifies this same token.`,
        'DPoP row: the same client\'s token bound to an ES256 key (cnf.jkt); the load generator signs a fresh proof (jti, iat, ath) per request, ' +
          'and the server verifies it (jose, EmbeddedJWK) and inserts its jti into the shared replay guard (SQLite used_once) on every request.',
      ],
    );
  } finally {
    await stopAll(contenders.map((c) => c.child).filter(Boolean));
  }
}

// ---- 3. token endpoint -------------------------------------------------------------------------

export async function tokenScenario(ctx) {
  const { opts, log } = ctx;
  const contenders = [];
  for (const alg of opts.algs) {
    const refs = { oidc: `oidc-provider-${alg}`, sign: `sign-${alg}`, bare: `bare-post-${alg}` };
    for (const storeKind of opts.stores) {
      let store;
      if (storeKind === 'memory') store = { kind: 'memory' };
      else if (storeKind === 'sqlite') store = { kind: 'sqlite', filename: join(ctx.dir, `token-${alg}.db`) };
      else store = { kind: 'postgres', url: await freshDatabase((await ctx.postgres()).url, `token_${alg.toLowerCase()}`) };
      contenders.push({
        id: `ours-${storeKind}-${alg}`,
        label: `ours, ${storeKind}, ${alg}`,
        group: alg,
        config: oursConfig(`token-ours-${storeKind}-${alg}`, store, { alg, createClient: true }),
        afterSpawn: (c) => {
          c.http = tokenPost('/oauth/token', c.child.info.client);
        },
        expect: 'token',
        refs,
        settle: 1.0,
        meta: { alg, store: storeKind },
      });
    }
    // Issue 13: the same grant for an app of two roles, and for a personal token (the user's
    // scopes from management.userScopes, cached), on the memory store: what resolution costs.
    for (const clientKind of ['roles', 'personal']) {
      contenders.push({
        id: `ours-memory-${clientKind}-${alg}`,
        label: `ours, memory, ${alg}, ${clientKind === 'roles' ? 'app of two roles' : 'personal token'}`,
        group: alg,
        config: oursConfig(`token-ours-memory-${clientKind}-${alg}`, { kind: 'memory' }, { alg, createClient: true, clientKind }),
        afterSpawn: (c) => {
          c.http = tokenPost('/oauth/token', c.child.info.client);
        },
        expect: 'token',
        refs: { ...refs, plain: `ours-memory-${alg}` },
        settle: 1.0,
        meta: { alg, store: 'memory', clientKind },
      });
    }
    for (const variant of ['oidc-provider', 'oauth2-server', 'bare']) {
      contenders.push({
        id: variant === 'bare' ? `bare-post-${alg}` : `${variant}-${alg}`,
        label: variant === 'bare' ? `bare Express POST (same body and Basic parsing, fixed JSON of the same size), ${alg}` : `${variant}, ${alg}`,
        group: alg,
        config: { kind: 'token-peers', name: `token-${variant}-${alg}`, variant, alg, issuer: ISSUER, audience: AUDIENCE },
        afterSpawn: (c) => {
          c.http = tokenPost(c.child.info.path, c.child.info.client);
        },
        expect: 'token',
        refs,
        settle: 0.2,
        meta: { alg },
      });
    }
    contenders.push({
      id: `sign-${alg}`,
      label: `signing limit: jose SignJWT.sign(), ${alg}, ${opts.connections} in flight (ops/s)`,
      group: alg,
      config: { kind: 'sign', name: `sign-${alg}`, alg, issuer: ISSUER, audience: AUDIENCE },
      loop: { cmd: 'sign', args: {} },
      refs,
      settle: 0.2,
      meta: { alg },
    });
    if (opts.signOneAtATime) contenders.push({
      id: `sign1-${alg}`,
      label: `signing, one at a time (await in a loop), ${alg} (ops/s)`,
      group: alg,
      config: { kind: 'sign', name: `sign1-${alg}`, alg, issuer: ISSUER, audience: AUDIENCE },
      loop: { cmd: 'sign', args: { concurrency: 1 } },
      refs,
      settle: 0.2,
      meta: { alg },
    });
  }
  try {
    await startAll(contenders, log);
    return await measureScenario(
      ctx,
      'token',
      'Token endpoint (POST /oauth/token, client_credentials, client_secret_basic)',
      contenders,
      { ...opts.token, refColumns: { oidc: 'vs oidc-provider (same alg)', bare: 'vs bare Express POST (same alg)', sign: 'vs signing limit (same alg)' } },
      [
        `Signing limit: jose SignJWT + sign() alone in a loop in its own process, same claims and header, ${opts.connections} signatures in flight (as many as the HTTP connections: WebCrypto signs on libuv's thread pool, so a server with ${opts.connections} requests in flight can sign in parallel); the target is against this one. "One at a time" awaits each signature before the next.`,
        'Every grant uses correct credentials (our client lockout counts failures only).',
      ],
    );
  } finally {
    await stopAll(contenders.map((c) => c.child).filter(Boolean));
  }
}

// ---- 4. scale -----------------------------------------------------------------------------------

export async function scaleScenarios(ctx) {
  const { opts, log } = ctx;
  const sizes = opts.scaleSizes;
  const fixtures = [];
  log(`  scale fixtures: ${sizes.join(', ')} apps in ${opts.scaleStores.join(' and ')}`);
  for (const storeKind of opts.scaleStores) {
    for (const n of sizes) {
      const spec =
        storeKind === 'sqlite'
          ? { kind: 'sqlite', filename: join(ctx.dir, `scale-${n}.db`) }
          : { kind: 'postgres', url: await freshDatabase((await ctx.postgres()).url, `scale_${n}`) };
      const fx = await scaleFixture(spec, n, { log });
      fixtures.push({ storeKind, n, spec, fx });
    }
  }
  const smallest = Math.min(...sizes);
  const label = (n) => (n >= 1e6 ? `${n / 1e6}M` : n >= 1e3 ? `${n / 1e3}k` : String(n));
  const servers = [];
  try {
    for (const f of fixtures) {
      const config = oursConfig(`scale-${f.storeKind}-${f.n}`, f.spec, { alg: 'EdDSA' });
      servers.push({ ...f, child: await spawnChild(config) });
    }
    const make = (kind) =>
      servers.map((s) => ({
        id: `${s.storeKind}-${label(s.n)}`,
        label: `${s.storeKind}, ${s.n.toLocaleString('en-US')} apps`,
        group: s.storeKind,
        child: s.child,
        http:
          kind === 'protected'
            ? { path: '/protected', options: { requests: s.fx.jwts.map((j) => ({ method: 'GET', path: '/protected', headers: { authorization: `Bearer ${j}` } })) } }
            : {
                path: '/oauth/token',
                options: {
                  requests: s.fx.clients.map((c) => ({
                    method: 'POST',
                    path: '/oauth/token',
                    headers: { authorization: basic(c.clientId, c.secret), 'content-type': 'application/x-www-form-urlencoded' },
                    body: TOKEN_BODY,
                  })),
                },
              },
        expect: kind === 'protected' ? 'ok' : 'token',
        refs: { smallest: `${s.storeKind}-${label(smallest)}` },
        settle: kind === 'protected' ? 0.3 : 1.0,
        meta: { store: s.storeKind, apps: s.n, rows: s.fx.counts, loadSeconds: s.fx.loadSeconds, alg: 'EdDSA' },
      }));
    const protectedC = make('protected');
    for (const c of protectedC) await smoke(c);
    const a = await measureScenario(
      ctx,
      'scale-protected',
      'Scale: protected route (10 RS256 JWTs of 10 apps, cycled)',
      protectedC,
      { ...opts.scale, refColumns: { smallest: `vs ${label(smallest)} apps (same store)` } },
      ['Filler apps (one API token each) bulk-inserted through the store’s Kysely instance; 10 real apps created through the API.'],
    );
    const tokenC = make('token');
    for (const c of tokenC) await smoke(c);
    const b = await measureScenario(
      ctx,
      'scale-token',
      'Scale: token endpoint (10 clients cycled, EdDSA)',
      tokenC,
      { ...opts.scale, refColumns: { smallest: `vs ${label(smallest)} apps (same store)` } },
      ['EdDSA, the cheapest signature, so that the store’s share of a grant is as visible as it can be.'],
    );
    return [a, b];
  } finally {
    await stopAll(servers.map((s) => s.child));
  }
}

// ---- 5. memory ----------------------------------------------------------------------------------

export async function memoryScenario(ctx) {
  const { opts, log } = ctx;
  const alg = opts.memoryAlg;
  const count = opts.memoryTokens;
  const fx = await protectedFixture(ctx.dir, alg, `memory-${alg}.db`);
  const t0 = performance.now();
  const tokens = await mintMany(fx.filename, fx.client, count, {
    alg,
    concurrency: 16,
    onProgress: (i) => i > 0 && log(`    minted ${i.toLocaleString('en-US')}`),
  });
  const mintSeconds = (performance.now() - t0) / 1000;
  if (new Set(tokens).size !== count) throw new Error('memory: minted tokens are not distinct');
  log(`  memory: ${count.toLocaleString('en-US')} distinct ${alg} access tokens minted through the service in ${mintSeconds.toFixed(1)} s`);
  const runs = [];
  for (const cacheMax of [undefined, 100_000]) {
    const name = `memory-cache-${cacheMax ?? 'default'}`;
    const child = await spawnChild(oursConfig(name, { kind: 'sqlite', filename: fx.filename }, { alg, ...(cacheMax ? { cacheMax } : {}) }), {
      execArgv: ['--expose-gc'],
    });
    try {
      const url = `http://127.0.0.1:${child.port}/protected`;
      // Warm-up with a token outside the set: JIT, connections, one cache entry.
      await cannon({ url, connections: opts.connections, duration: 1, headers: { authorization: `Bearer ${fx.jwt}` } });
      const before = await child.request('gc');
      let i = 0;
      const s0 = await child.stats();
      const res = await cannon({
        url,
        connections: opts.connections,
        amount: count,
        requests: [
          {
            method: 'GET',
            path: '/protected',
            setupRequest: (req) => ({ ...req, headers: { ...req.headers, authorization: `Bearer ${tokens[i++ % count]}` } }),
          },
        ],
      });
      const s1 = await child.stats();
      const after = await child.request('gc');
      if (res['2xx'] !== count) throw new Error(`${name}: ${res['2xx']} of ${count} verifications succeeded (non-2xx ${res.non2xx}, errors ${res.errors})`);
      const retained = Math.min(count, cacheMax ?? 10_000);
      const d = (k) => after.mem[k] - before.mem[k];
      runs.push({
        cacheMax: cacheMax ?? 10_000,
        defaultBound: cacheMax === undefined,
        verified: res['2xx'],
        retained,
        verifyRps: res['2xx'] / res.duration,
        verifyCpuPercent: (100 * (s1.cpu.user - s0.cpu.user + s1.cpu.system - s0.cpu.system)) / 1000 / (s1.at - s0.at),
        before: before.mem,
        after: after.mem,
        rssDeltaMB: d('rss') / 2 ** 20,
        heapUsedDeltaMB: d('heapUsed') / 2 ** 20,
        rssBytesPerToken: d('rss') / retained,
        heapBytesPerToken: d('heapUsed') / retained,
        gc: after.gc,
      });
      log(
        `    cacheMax ${cacheMax ?? '10000 (default)'}: RSS ${(before.mem.rss / 2 ** 20).toFixed(1)} → ${(after.mem.rss / 2 ** 20).toFixed(1)} MB, ` +
          `heap ${(before.mem.heapUsed / 2 ** 20).toFixed(1)} → ${(after.mem.heapUsed / 2 ** 20).toFixed(1)} MB, ` +
          `${Math.round(d('heapUsed') / retained)} B heap per cached token; uncached verification ${Math.round(res['2xx'] / res.duration)} req/s`,
      );
    } finally {
      await child.stop();
    }
  }
  return { alg, tokens: count, tokenLength: tokens[0].length, mintSeconds, runs };
}

// ---- 6. profile ---------------------------------------------------------------------------------

/**
 * CPU profiles under load: ours with a JWT (the hot path), and, shorter, ours through the host's
 * passport and our token endpoint (memory store, EdDSA) for comparison.
 */
export async function profileScenario(ctx) {
  const { opts, log } = ctx;
  const fx = await ctx.protectedFixture();
  const sqlite = { kind: 'sqlite', filename: fx.filename };
  const jwtGet = { method: 'GET', headers: { authorization: `Bearer ${fx.jwt}` } };
  const short = Math.max(2, Math.round(opts.profileSeconds / 2));
  const targets = [
    { id: 'ours-jwt', title: 'ours with a JWT: GET /protected', config: oursConfig('profile-ours-jwt', sqlite), path: '/protected', request: jwtGet, seconds: opts.profileSeconds },
    {
      id: 'ours-jwt-no-routes',
      label: 'ours, JWT, without app.use(auth.routes())',
      config: oursConfig('protected-ours-jwt-no-routes', sqlite, { mountRoutes: false }),
      http: getWith('/protected', fx.jwt),
    },
    {
      id: 'ours-passport',
      title: "ours through the host's passport.authenticate('app-tokens'): GET /protected",
      config: oursConfig('profile-ours-passport', sqlite, { mode: 'passport' }),
      path: '/protected',
      request: jwtGet,
      seconds: short,
    },
    {
      id: 'ours-token-sqlite',
      title: 'our token endpoint (SQLite, EdDSA): POST /oauth/token',
      config: oursConfig('profile-ours-token-sqlite', { kind: 'sqlite', filename: join(ctx.dir, 'profile-token.db') }, { alg: 'EdDSA', createClient: true }),
      path: '/oauth/token',
      request: (child) => tokenPost('/oauth/token', child.info.client).options,
      seconds: opts.profileSeconds,
    },
    {
      id: 'ours-token',
      title: 'our token endpoint (memory store, EdDSA): POST /oauth/token',
      config: oursConfig('profile-ours-token', { kind: 'memory' }, { alg: 'EdDSA', createClient: true }),
      path: '/oauth/token',
      request: (child) => tokenPost('/oauth/token', child.info.client).options,
      seconds: short,
    },
  ];
  const out = [];
  for (const t of targets.filter((t) => opts.profiles.includes(t.id.replace(/^ours-/, '')))) {
    const dir = join(ctx.outDir, 'profile', t.id);
    mkdirSync(dir, { recursive: true });
    for (const f of readdirSync(dir)) if (f.endsWith('.cpuprofile')) rmSync(join(dir, f));
    const child = await spawnChild(t.config, { execArgv: ['--cpu-prof', `--cpu-prof-dir=${dir}`, '--cpu-prof-interval=200'] });
    let window;
    let rps;
    try {
      const request = typeof t.request === 'function' ? t.request(child) : t.request;
      const url = `http://127.0.0.1:${child.port}${t.path}`;
      await cannon({ url, connections: opts.connections, duration: 1, ...request });
      await sleep(300);
      const s0 = await child.request('hrtime');
      const res = await cannon({ url, connections: opts.connections, duration: t.seconds, ...request });
      const s1 = await child.request('hrtime');
      if (res.non2xx > 0) throw new Error(`profile ${t.id}: ${res.non2xx} non-2xx answers`);
      window = { startUs: s0.us, endUs: s1.us };
      rps = res['2xx'] / res.duration;
    } finally {
      await child.stop();
    }
    const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
    if (!file) throw new Error(`profile ${t.id}: no .cpuprofile written`);
    let summary = summarizeProfile(join(dir, file), { window });
    if (summary.samplesInWindow < 100) summary = { ...summarizeProfile(join(dir, file)), windowIgnored: true };
    log(`  profile ${t.id}: ${summary.samplesInWindow} samples, ${t.seconds} s of load at ${Math.round(rps)} req/s → ${join(dir, file)}`);
    out.push({ id: t.id, title: t.title, ...summary, seconds: t.seconds, rps, file: join(dir, file) });
  }
  return out;
}

// ---- 7. the example server's rate-limited route (issue 16) -------------------------------------

/** A contender on another port of an already started child (same process, same JIT, same auth). */
const onPort = (child, port) => ({ ...child, port, stats: () => child.stats(), request: (...a) => child.request(...a) });

/**
 * The example server itself (`createExampleApp`, memory store): its bare `GET /health`, its
 * `GET /notarizations/stamps` (authenticate + rateLimit + requireScopes) and the same route stack
 * without rateLimit, all served by one process. The quota is large enough never to refuse.
 */
export async function rateLimitScenario(ctx) {
  const { opts, log } = ctx;
  const config = {
    kind: 'example',
    name: 'example-memory',
    store: { kind: 'memory' },
    issuer: ISSUER,
    keyEncryptionSecret: KEY_SECRET,
    points: 1_000_000_000,
    duration: 60,
  };
  const child = await spawnChild(config);
  // Issue 24: the same server with usage counts and OpenTelemetry off, in a process of its own.
  const off = await spawnChild({ ...config, name: 'example-memory-counting-off', counting: false });
  const { jwt, ports } = child.info;
  const refs = { health: 'health', off: 'stamps-counting-off' };
  const contenders = [
    { id: 'health', label: 'example server: GET /health (bare)', child, http: { path: '/health', options: { method: 'GET' } }, expect: 'status' },
    { id: 'stamps', label: 'example server: GET /notarizations/stamps (authenticate + rateLimit + requireScopes)', child, http: getWith('/notarizations/stamps', jwt), expect: 'items' },
    {
      id: 'stamps-no-limit',
      label: 'the same route without rateLimit',
      child: onPort(child, ports.unlimited),
      http: getWith('/notarizations/stamps', jwt),
      expect: 'items',
    },
    {
      id: 'stamps-counting-off',
      label: 'the same rate-limited route, usage counts and telemetry off (own process)',
      child: off,
      http: getWith('/notarizations/stamps', off.info.jwt),
      expect: 'items',
    },
  ].map((c) => ({ ...c, refs, settle: 0.3 }));
  try {
    for (const c of contenders) {
      const res = await fetch(`http://127.0.0.1:${c.child.port}${c.http.path}`, { headers: c.http.options.headers });
      if (res.status !== 200) throw new Error(`${c.id}: smoke request answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
      if (c.id === 'stamps' && !res.headers.get('ratelimit')) throw new Error('stamps: no RateLimit header');
    }
    log(`    ${contenders.length} contenders up and answering correctly`);
    return await measureScenario(
      ctx,
      'ratelimit',
      'Example server: rate-limited route vs its own GET /health (memory store)',
      contenders,
      { ...opts.protected, refColumns: { health: 'vs GET /health', off: 'vs counting off' } },
      ['One process serves all three (createExampleApp from dist/examples/server.js, on two ports); RATE_LIMIT 10^9/60 so that nothing is refused.'],
    );
  } finally {
    await stopAll([child, off]);
  }
}

// ---- 8. shared counts on PostgreSQL, three instances (issue 16) ---------------------------------

/** Load all `children` at once (connections split between them) for `seconds`; summed req/s and CPU. */
async function measureMany(children, port, path, headers, seconds, connections, extra = {}) {
  const s0 = await Promise.all(children.map((c) => c.stats()));
  const per = Math.max(1, Math.round(connections / children.length));
  const results = await Promise.all(
    children.map((c) => cannon({ url: `http://127.0.0.1:${port(c)}${path}`, connections: per, duration: seconds, headers, ...extra })),
  );
  const s1 = await Promise.all(children.map((c) => c.stats()));
  const cpu = s0.reduce((a, s, i) => a + (100 * (s1[i].cpu.user - s.cpu.user + s1[i].cpu.system - s.cpu.system)) / 1000 / (s1[i].at - s.at), 0);
  return {
    rps: results.reduce((a, r) => a + r['2xx'] / r.duration, 0),
    cpu,
    non2xx: results.reduce((a, r) => a + r.non2xx, 0),
    errors: results.reduce((a, r) => a + r.errors + r.timeouts, 0),
    ok: results.reduce((a, r) => a + r['2xx'], 0),
    p50: null,
    p99: null,
  };
}

/**
 * Three example-server processes on one PostgreSQL database. Throughput (connections split over
 * the three, all loaded at once): the route without a limiter, with leased shared counts, and
 * with the exact per-request count (rate-limiter-flexible's PostgreSQL limiter). Then the counts:
 * three fresh instances with a quota of `quota` per day, loaded past it, 200s counted.
 */
export async function sharedScenario(ctx) {
  const { opts, log } = ctx;
  const pg = await ctx.postgres();
  const base = (name, url, extra) => ({
    kind: 'example',
    name,
    store: { kind: 'postgres', url },
    issuer: ISSUER,
    keyEncryptionSecret: KEY_SECRET,
    duration: 60,
    ...extra,
  });
  const startThree = async (prefix, url, extra) => {
    const first = await spawnChild(base(`${prefix}-1`, url, extra));
    const rest = await Promise.all([2, 3].map((i) => spawnChild(base(`${prefix}-${i}`, url, { ...extra, jwt: first.info.jwt }))));
    return [first, ...rest];
  };
  const children = await startThree('shared', await freshDatabase(pg.url, 'shared_rate'), { points: 1_000_000_000, exact: true });
  const jwt = children[0].info.jwt;
  const headers = { authorization: `Bearer ${jwt}` };
  const path = '/notarizations/stamps';
  const contenders = [
    { id: 'pg3-no-limit', label: '3 instances, the route without rateLimit', port: (c) => c.info.ports.unlimited },
    { id: 'pg3-leases', label: '3 instances, rateLimit with leased shared counts', port: (c) => c.info.ports.limited },
    { id: 'pg3-exact', label: '3 instances, rateLimit counted exactly per request (rate-limiter-flexible PostgreSQL)', port: (c) => c.info.ports.exact },
  ].map((c) => ({ ...c, refs: { none: 'pg3-no-limit' }, samples: [] }));
  const p = opts.protected;
  const started = Date.now();
  let counts;
  try {
    log(`  shared counts: 3 instances × ${contenders.length} contenders × ${p.rounds} rounds × ${p.duration} s`);
    for (const c of contenders) await measureMany(children, c.port, path, headers, p.warmup, opts.connections);
    for (let r = 0; r < p.rounds; r++) {
      const order = contenders.map((_, i) => contenders[(i + r) % contenders.length]);
      const line = [];
      for (const c of order) {
        const s = await measureMany(children, c.port, path, headers, p.duration, opts.connections);
        s.round = r + 1;
        c.samples.push(s);
        line.push(`${c.id} ${Math.round(s.rps)}`);
        await sleep(300);
      }
      log(`    round ${r + 1}/${p.rounds}: ${line.join(' | ')}`);
    }
  } finally {
    await stopAll(children);
  }
  // Counts against the quota: fresh instances (fresh counters), loaded past the quota.
  const quota = 30_000;
  const perInstance = 14_000;
  const counted = await startThree('shared-count', await freshDatabase(pg.url, 'shared_count'), { points: quota, duration: 86_400 });
  try {
    const h = { authorization: `Bearer ${counted[0].info.jwt}` };
    const day = Math.floor(Date.now() / 86_400_000);
    const results = await Promise.all(
      counted.map((c) => cannon({ url: `http://127.0.0.1:${c.info.ports.limited}${path}`, connections: 16, amount: perInstance, headers: h })),
    );
    const ok = results.reduce((a, r) => a + r['2xx'], 0);
    const refused = results.reduce((a, r) => a + (r.statusCodeStats?.['429']?.count ?? 0), 0);
    const leaseMax = Math.floor(quota * 0.01);
    counts = { quota, sent: 3 * perInstance, ok, refused, leaseMax, upper: quota + 3 * leaseMax, crossedWindow: Math.floor(Date.now() / 86_400_000) !== day };
    log(`    counts: ${ok} allowed of ${3 * perInstance} sent, quota ${quota}, bound [${quota}, ${quota + 3 * leaseMax}]; ${refused} × 429`);
  } finally {
    await stopAll(counted);
  }
  return {
    id: 'shared',
    title: 'Shared counts on PostgreSQL: three example-server instances on one database, loaded together',
    rounds: p.rounds,
    duration: p.duration,
    warmup: p.warmup,
    connections: opts.connections,
    refColumns: { none: 'vs no limiter' },
    notes: [
      `req/s summed over the three instances (${Math.round(opts.connections / 3)} connections each, loaded at once); server CPU summed over them; PostgreSQL's CPU is in "other".`,
      `Counts: three fresh instances, quota ${quota} per day, ${perInstance} requests sent to each at once: ${counts.ok} allowed (bound ${quota}–${counts.upper}).`,
    ],
    seconds: Math.round((Date.now() - started) / 1000),
    contenders: summarize(contenders),
    counts,
  };
}
