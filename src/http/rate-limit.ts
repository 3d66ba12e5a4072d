/**
 * `auth.rateLimit()`: per app and per endpoint on protected routes. Counted in process and
 * synchronously on a store without shared counters (`core/rate-windows.ts`); on a shared store
 * (PostgreSQL), in leases taken from the database in the background (`core/rate-lease.ts`), or,
 * below `shared.exactBelow` points, exactly per request with rate-limiter-flexible's PostgreSQL
 * limiter (`core/limits.ts`).
 *
 * Answers carry the IETF RateLimit fields in draft-10 syntax:
 * `RateLimit-Policy: "default";q=100;w=60` and `RateLimit: "default";r=0;t=30`.
 *
 * @module
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { AppTokensError } from '../core/errors.js';
import { createLimiter } from '../core/limits.js';
import { RateLeases, type RateDecision } from '../core/rate-lease.js';
import { LocalWindows } from '../core/rate-windows.js';
import type { AppTokensService } from '../core/service.js';
import { sendBearerError } from './bearer.js';

/** Options of `auth.rateLimit()`. */
export interface RateLimitOptions {
  /** Requests allowed per app per endpoint in each window. */
  points: number;
  /** The window, seconds. */
  duration: number;
  /** The policy name in the RateLimit headers. Default: `default`. */
  policy?: string;
  /** Counts shared by the instances of a shared store (PostgreSQL); ignored on other stores. */
  shared?: SharedRateLimitOptions;
}

/**
 * How instances on one shared store (PostgreSQL) count together. Windows are then fixed and
 * aligned to the clock (every instance counts into the same one). With `points` of at least
 * `exactBelow`, an instance takes a lease of at most `leaseMax = max(1, floor(points × leaseShare))`
 * requests, counts it locally and adds it to the database in the background: N instances together
 * allow at least `points` and at most `points + N × leaseMax` per window. Below `exactBelow`,
 * every request is counted in the database (one round trip each), exactly.
 */
export interface SharedRateLimitOptions {
  /** Quotas below this are counted exactly, one database round trip per request. Default: 1000. */
  exactBelow?: number;
  /** The largest lease as a share of `points`, more than 0 and at most 0.25. Default: 0.01. */
  leaseShare?: number;
}

interface CheckedOptions {
  points: number;
  duration: number;
  policy: string;
  exactBelow: number;
  leaseShare: number;
}

const POLICY = /^[a-z][a-z0-9_-]{0,31}$/;

function check(options: RateLimitOptions): CheckedOptions {
  const { points, duration, policy = 'default', shared = {} } = options ?? ({} as RateLimitOptions);
  if (!Number.isSafeInteger(points) || points < 1) {
    throw new AppTokensError('invalid_options', 'rateLimit(): "points" must be a whole number of at least 1', { field: 'points' });
  }
  if (!Number.isSafeInteger(duration) || duration < 1 || duration > 86_400) {
    throw new AppTokensError('invalid_options', 'rateLimit(): "duration" must be a whole number of seconds from 1 to 86400', {
      field: 'duration',
    });
  }
  if (!POLICY.test(policy)) {
    throw new AppTokensError('invalid_options', 'rateLimit(): "policy" must be a short lowercase token', { field: 'policy' });
  }
  if (typeof shared !== 'object' || shared === null) {
    throw new AppTokensError('invalid_options', 'rateLimit(): "shared" must be an object', { field: 'shared' });
  }
  const { exactBelow = 1000, leaseShare = 0.01 } = shared;
  if (!Number.isSafeInteger(exactBelow) || exactBelow < 0) {
    throw new AppTokensError('invalid_options', 'rateLimit(): "shared.exactBelow" must be a whole number of at least 0', {
      field: 'shared.exactBelow',
    });
  }
  if (typeof leaseShare !== 'number' || !(leaseShare > 0 && leaseShare <= 0.25)) {
    throw new AppTokensError('invalid_options', 'rateLimit(): "shared.leaseShare" must be a number more than 0 and at most 0.25', {
      field: 'shared.leaseShare',
    });
  }
  return { points, duration, policy, exactBelow, leaseShare };
}

/**
 * `auth.rateLimit({points, duration})`: after `authenticate()`, at most `points` requests per app
 * per endpoint (method + route pattern) per `duration` seconds; then 429 with `Retry-After`.
 */
export function rateLimitMiddleware(service: AppTokensService, options: RateLimitOptions): RequestHandler {
  const o = check(options);
  const { realm, store } = service.options;
  const keyPrefix = `eat_rl_${o.policy}_${o.points}_${o.duration}`;
  // The header strings: one constant, one concatenation per answer.
  const policyHeader = `"${o.policy}";q=${o.points};w=${o.duration}`;
  const remainingPrefix = `"${o.policy}";r=`;
  const limitText = `rate limit of ${o.points} per ${o.duration} s exceeded; retry in `;
  // Without a shared backend every count is this process's: synchronous, no promise, no timer.
  const shared = typeof store.rateLimiterBackend === 'function';
  const local = shared ? undefined : new LocalWindows(o.points, o.duration);
  const leases =
    shared && typeof store.addRateUsage === 'function' && o.points >= o.exactBelow
      ? new RateLeases(store.addRateUsage.bind(store), o.points, o.duration, o.points * o.leaseShare, keyPrefix)
      : undefined;
  let limiter: Promise<RateLimiterAbstract> | undefined;

  const allow = (res: Response, next: NextFunction, remaining: number, msBeforeNext: number): void => {
    res.setHeader('RateLimit-Policy', policyHeader);
    res.setHeader('RateLimit', `${remainingPrefix}${Math.max(0, remaining)};t=${Math.max(0, Math.ceil(msBeforeNext / 1000))}`);
    next();
  };
  const refuse = (res: Response, msBeforeNext: number): void => {
    res.setHeader('RateLimit-Policy', policyHeader);
    res.setHeader('RateLimit', `${remainingPrefix}0;t=${Math.max(0, Math.ceil(msBeforeNext / 1000))}`);
    const retry = Math.max(1, Math.ceil(msBeforeNext / 1000));
    res.setHeader('Retry-After', String(retry));
    res.status(429).json({ error: 'rate_limited', error_description: `${limitText}${retry} s` });
  };
  const decide = (res: Response, next: NextFunction, d: RateDecision): void => {
    if (d.allowed) allow(res, next, d.remaining, d.msBeforeNext);
    else refuse(res, d.msBeforeNext);
  };

  return (req: Request, res: Response, next: NextFunction) => {
    const auth = req.auth;
    if (!auth) return sendBearerError(res, new AppTokensError('missing_token', 'a bearer token is required'), realm);
    // The route pattern, not the URL: /stamps/1 and /stamps/2 are one endpoint.
    // HEAD is GET without a body (RFC 9110 §9.3.2): one bucket for both, or HEAD doubles the quota.
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    const route = req.route as { path?: unknown } | undefined;
    const key = `${auth.tenantId}:${auth.appId}:${method} ${req.baseUrl}${typeof route?.path === 'string' ? route.path : req.path}`;
    if (local !== undefined) {
      const now = Date.now();
      const w = local.consume(key, now);
      if (w.count <= o.points) allow(res, next, o.points - w.count, w.resetAt - now);
      else refuse(res, w.resetAt - now);
      return;
    }
    if (leases !== undefined) {
      const d = leases.consume(key, Date.now());
      if (d instanceof Promise) d.then((r) => decide(res, next, r), next);
      else decide(res, next, d);
      return;
    }
    limiter ??= createLimiter(store, { points: o.points, duration: o.duration, keyPrefix });
    limiter
      .then((l) => l.consume(key))
      .then(
        (r) => allow(res, next, r.remainingPoints, r.msBeforeNext),
        (r: unknown) => {
          if (!(r instanceof RateLimiterRes)) return next(r);
          refuse(res, r.msBeforeNext);
        },
      );
  };
}
