/**
 * What a DPoP request costs the server beyond a bearer request, without HTTP: `auth.authenticate()`
 * called in-process on a cached RS256 JWT sent as Bearer, against the same middleware on a
 * DPoP-bound token with a fresh ES256 proof per call (proof check + replay-guard insert), on the
 * memory store and on SQLite; and the proof check alone and the replay insert alone
 * (`DpopVerifier.check` / `consume`). Proofs are signed before the clock starts: that is the
 * client's work, not the server's.
 *
 *   npm run build && node bench/dpop-micro.mjs [--n=20000]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import { createAppTokens } from '../dist/src/index.js';
import { createMemoryStore } from '../dist/adapters/memory/index.js';
import { createSqliteStore } from '../dist/adapters/sql/index.js';
import { DpopVerifier } from '../dist/src/core/dpop.js';
import { ISSUER, SCOPES, basic, dpopSigner, fetchToken, TOKEN_BODY } from './lib/fixtures.mjs';
import { listen } from './servers/common.mjs';

const N = Number(process.argv.find((a) => a.startsWith('--n='))?.slice(4) ?? 20_000);
const PATH = '/protected';

function fakeReq(authorization, proof) {
  const rawHeaders = ['Authorization', authorization];
  if (proof !== undefined) rawHeaders.push('DPoP', proof);
  return { method: 'GET', url: PATH, originalUrl: PATH, headers: { authorization }, rawHeaders, body: undefined };
}

function fakeRes() {
  return {
    statusCode: 200,
    setHeader() {},
    status(code) {
      this.statusCode = code;
      return this;
    },
    json(body) {
      throw new Error(`refused: ${this.statusCode} ${JSON.stringify(body)}`);
    },
    end() {
      throw new Error(`refused: ${this.statusCode}`);
    },
  };
}

/** Run `handler` on each request in turn, awaiting `next()`; µs per call. */
async function time(handler, reqs) {
  const t0 = performance.now();
  for (const req of reqs) {
    await new Promise((resolve, reject) => {
      try {
        handler(req, fakeRes(), (err) => (err ? reject(err) : resolve()));
      } catch (e) {
        reject(e);
      }
    });
  }
  return ((performance.now() - t0) * 1000) / reqs.length;
}

async function scenario(label, store) {
  const auth = createAppTokens({
    store,
    issuer: ISSUER,
    scopes: SCOPES,
    advanced: { revocationSyncInterval: 0, lastUsedFlushInterval: 0, keyReloadInterval: 0 },
  });
  await auth.ready();
  const created = await auth.apps.create({ tenantId: 'bench', name: 'bench app', scopes: ['notarization:read'] });
  const app = express();
  app.use(auth.routes());
  const server = await listen(app);
  const base = `http://127.0.0.1:${server.address().port}`;
  const signer = dpopSigner();
  const bearer = await fetchToken(base, created.app.id, created.value);
  const res = await fetch(`${base}/oauth/token`, {
    method: 'POST',
    headers: { authorization: basic(created.app.id, created.value), 'content-type': 'application/x-www-form-urlencoded', dpop: signer.proof('POST', `${ISSUER}/oauth/token`) },
    body: TOKEN_BODY,
  });
  const bound = (await res.json()).access_token;
  server.closeAllConnections?.();
  server.close();

  const mw = auth.authenticate();
  // Warm: both tokens verified once and cached.
  await time(mw, [fakeReq(`Bearer ${bearer}`)]);
  await time(mw, [fakeReq(`DPoP ${bound}`, signer.proof('GET', `${ISSUER}${PATH}`, bound))]);

  const bearerReqs = Array.from({ length: N * 5 }, () => fakeReq(`Bearer ${bearer}`));
  const dpopReqs = Array.from({ length: N }, () => fakeReq(`DPoP ${bound}`, signer.proof('GET', `${ISSUER}${PATH}`, bound)));
  const warmDpop = Array.from({ length: 500 }, () => fakeReq(`DPoP ${bound}`, signer.proof('GET', `${ISSUER}${PATH}`, bound)));
  await time(mw, bearerReqs.slice(0, 5000));
  await time(mw, warmDpop);
  const bearerUs = await time(mw, bearerReqs);
  const dpopUs = await time(mw, dpopReqs);
  await auth.close();
  return { label, bearerUs, dpopUs, ratio: bearerUs / dpopUs };
}

async function components() {
  const store = createMemoryStore();
  await store.init();
  const verifier = new DpopVerifier(store, { baseUrl: ISSUER, iatWindow: 60, clockTolerance: 5, nonceLifetime: 300, nowMs: Date.now });
  const signer = dpopSigner();
  const token = 'x'.repeat(800);
  const requests = Array.from({ length: N }, () => ({ proofs: [signer.proof('GET', `${ISSUER}${PATH}`, token)], method: 'GET', path: PATH, accessToken: token }));
  for (const r of requests.slice(0, 500)) await verifier.check(r);
  let t0 = performance.now();
  const checked = [];
  for (const r of requests) checked.push(await verifier.check(r));
  const checkUs = ((performance.now() - t0) * 1000) / N;
  t0 = performance.now();
  for (const p of checked) await verifier.consume(p);
  const consumeMemoryUs = ((performance.now() - t0) * 1000) / N;
  await store.close();

  const dir = mkdtempSync(join(tmpdir(), 'dpop-micro-'));
  const sqlite = createSqliteStore({ filename: join(dir, 'replay.db') });
  await sqlite.init();
  const onSqlite = new DpopVerifier(sqlite, { baseUrl: ISSUER, iatWindow: 60, clockTolerance: 5, nonceLifetime: 300, nowMs: Date.now });
  t0 = performance.now();
  for (const p of checked) await onSqlite.consume(p);
  const consumeSqliteUs = ((performance.now() - t0) * 1000) / N;
  await sqlite.close();
  rmSync(dir, { recursive: true, force: true });
  return { checkUs, consumeMemoryUs, consumeSqliteUs };
}

const dir = mkdtempSync(join(tmpdir(), 'dpop-micro-'));
try {
  const rows = [await scenario('memory store', createMemoryStore()), await scenario('SQLite store', createSqliteStore({ filename: join(dir, 'tokens.db') }))];
  const parts = await components();
  const f = (n, d = 1) => n.toFixed(d);
  console.log(`DPoP micro-benchmark: ${N} DPoP calls, ${N * 5} bearer calls per store, Node ${process.version}, one core (in-process, no HTTP)`);
  console.log('');
  console.log('| store | authenticate(), cached JWT as Bearer (µs/call) | authenticate(), DPoP-bound JWT + fresh ES256 proof (µs/call) | DPoP extra (µs) | bearer/DPoP throughput ratio |');
  console.log('|---|---:|---:|---:|---:|');
  for (const r of rows) console.log(`| ${r.label} | ${f(r.bearerUs, 2)} | ${f(r.dpopUs)} | ${f(r.dpopUs - r.bearerUs)} | ${f(r.ratio, 3)}× |`);
  console.log('');
  console.log(`Components: DpopVerifier.check (ES256 signature, jwk import, thumbprint, htu/ath) ${f(parts.checkUs)} µs; consume (replay insert) memory ${f(parts.consumeMemoryUs, 2)} µs, SQLite ${f(parts.consumeSqliteUs)} µs.`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
