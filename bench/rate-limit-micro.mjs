// Micro-benchmark: the rateLimit() middleware alone, new (dist) vs the previous code path
// (RateLimiterMemory + two promise hops + template headers), per call.
import { rateLimitMiddleware } from '../dist/src/http/rate-limit.js';
import { RateLimiterMemory } from 'rate-limiter-flexible';
const service = { options: { realm: 'x', store: {} } };
const auth = { tenantId: 'bench', appId: 'app_0ds7JgMKMO6570xPGxgg7c' };
const req = { auth, method: 'GET', baseUrl: '', route: { path: '/notarizations/stamps' } };
const res = { h: {}, setHeader(k, v) { this.h[k] = v; } };
const N = 200_000;
async function run(name, mw) {
  for (let i = 0; i < 20000; i++) await new Promise((r) => mw(req, res, r));
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) await new Promise((r) => mw(req, res, r));
  const ns = Number(process.hrtime.bigint() - t0) / N;
  console.log(`${name}: ${(ns / 1000).toFixed(2)} µs per request (await included)`);
}
const baseline = (_q, _s, next) => next();
const o = { points: 1e9, duration: 60, policy: 'default' };
let limiter;
const old = (req, res, next) => {
  limiter ??= Promise.resolve(new RateLimiterMemory({ points: o.points, duration: o.duration, keyPrefix: 'eat_rl_default' }));
  const method = req.method === 'HEAD' ? 'GET' : req.method;
  const endpoint = `${method} ${req.baseUrl}${typeof req.route?.path === 'string' ? req.route.path : req.path}`;
  limiter.then((l) => l.consume(`${req.auth.tenantId}:${req.auth.appId}:${endpoint}`)).then((r) => {
    res.setHeader('RateLimit-Policy', `"${o.policy}";q=${o.points};w=${o.duration}`);
    res.setHeader('RateLimit', `"${o.policy}";r=${Math.max(0, r.remainingPoints)};t=${Math.max(0, Math.ceil(r.msBeforeNext / 1000))}`);
    next();
  });
};
for (let k = 0; k < 2; k++) {
  await run('baseline (next only)', baseline);
  await run('previous (RateLimiterMemory + promises)', old);
  await run('new (LocalWindows, synchronous)', rateLimitMiddleware(service, { points: 1e9, duration: 60 }));
}
