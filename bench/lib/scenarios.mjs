/**
 * The scenarios. Each starts its contenders (one child process each), checks that every one
 * answers correctly, measures them in interleaved rounds, and stops them.
 */
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { AUDIENCE, ISSUER, KEY_SECRET, SCOPES, TOKEN_BODY, basic, mintMany, protectedFixture, scaleFixture } from './fixtures.mjs';
import { spawnChild, stopAll } from './children.mjs';
import { cannon, runInterleaved } from './load.mjs';
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
    const refs = { oidc: `oidc-provider-${alg}`, sign: `sign-${alg}` };
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
    for (const variant of ['oidc-provider', 'oauth2-server']) {
      contenders.push({
        id: `${variant}-${alg}`,
        label: `${variant}, ${alg}`,
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
      { ...opts.token, refColumns: { oidc: 'vs oidc-provider (same alg)', sign: 'vs signing limit (same alg)' } },
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
