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
import type { AuthInfo } from '../core/access-tokens.js';
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
      ? new RateLeases(store.addRateUsage.bind(store), o.points, o.duration, o.points * o.leaseShare, keyPrefix, {
          // Said once per outage: a silent or failing store never holds a request past the lease wait.
          onFallback: (cause) =>
            cause === undefined
              ? service.log.info({ policy: o.policy }, 'rate-limit counts are shared through the store again')
              : service.log.warn(
                  { policy: o.policy, cause },
                  'rate-limit lease reports fail or are late; counting in this process until the store answers',
                ),
        })
      : undefined;
  let limiter: Promise<RateLimiterAbstract> | undefined;

  const allow = (res: Response, next: NextFunction, remaining: number, msBeforeNext: number): void => {
    res.setHeader('RateLimit-Policy', policyHeader);
    res.setHeader('RateLimit', `${remainingPrefix}${Math.max(0, remaining)};t=${Math.max(0, Math.ceil(msBeforeNext / 1000))}`);
    next();
  };
  const refuse = (res: Response, msBeforeNext: number, auth: AuthInfo): void => {
    service.signals.rateLimited({ tenantId: auth.tenantId, appId: auth.appId, apiTokenId: auth.apiTokenId });
    res.setHeader('RateLimit-Policy', policyHeader);
    res.setHeader('RateLimit', `${remainingPrefix}0;t=${Math.max(0, Math.ceil(msBeforeNext / 1000))}`);
    const retry = Math.max(1, Math.ceil(msBeforeNext / 1000));
    res.setHeader('Retry-After', String(retry));
    res.status(429).json({ error: 'rate_limited', error_description: `${limitText}${retry} s` });
  };
  const decide = (res: Response, next: NextFunction, d: RateDecision, auth: AuthInfo): void => {
    if (d.allowed) allow(res, next, d.remaining, d.msBeforeNext);
    else refuse(res, d.msBeforeNext, auth);
  };

  const middleware = (req: Request, res: Response, next: NextFunction) => {
    const auth = req.auth;
    if (!auth) return sendBearerError(res, new AppTokensError('missing_token', 'a bearer token is required'), realm);
    // HEAD is GET without a body (RFC 9110 §9.3.2): one bucket for both, or HEAD doubles the quota.
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    const key = `${auth.tenantId}:${auth.appId}:${method} ${routeKey(req, middleware)}`;
    if (local !== undefined) {
      const now = Date.now();
      const w = local.consume(key, now);
      if (w.count <= o.points) allow(res, next, o.points - w.count, w.resetAt - now);
      else refuse(res, w.resetAt - now, auth);
      return;
    }
    if (leases !== undefined) {
      const d = leases.consume(key, Date.now());
      if (d instanceof Promise) d.then((r) => decide(res, next, r, auth), next);
      else decide(res, next, d, auth);
      return;
    }
    limiter ??= createLimiter(store, { points: o.points, duration: o.duration, keyPrefix });
    limiter
      .then((l) => l.consume(key))
      .then(
        (r) => allow(res, next, r.remainingPoints, r.msBeforeNext),
        (r: unknown) => {
          if (!(r instanceof RateLimiterRes)) return next(r);
          refuse(res, r.msBeforeNext, auth);
        },
      );
  };
  return middleware;
}

/** Enough of an Express (4 or 5) router layer to read the pattern it was defined with. */
interface LayerLike {
  route?: unknown;
  handle?: unknown;
  /** router ≥ 2.3 (Express 5): the path as defined. */
  rawPath?: unknown;
  /** Express 4: the compiled pattern. */
  regexp?: RegExp & { fast_slash?: boolean };
}

interface AppLike {
  mountpath?: unknown;
  parent?: AppLike;
  _router?: { stack?: unknown };
  router?: { stack?: unknown };
}

/** Route (or middleware) → its endpoint key. Bounded by the routes the host defined. */
const endpointKeys = new WeakMap<object, string>();

/**
 * The endpoint of a request as the host defined it: the mount patterns of the routers it went
 * through and the route's own pattern, never the URL as typed. Express matches `/V1/stamps/`
 * (case, trailing slash) and `/t/anything` (a parameter in a mount path) to one route; a key
 * built from `req.baseUrl` gave each spelling its own quota (issue 21, finding 2).
 *
 * The key depends only on the definitions, so every instance running the same code derives the
 * same one (shared counts on PostgreSQL). Found once per route by walking the host's routers
 * (`docs/decisions/2026-12-rate-limit-route-key.md`); when the walk cannot place it, the
 * fallback merges endpoints (stricter), never splits them.
 */
function routeKey(req: Request, self: RequestHandler): string {
  const route = req.route as { path?: unknown } | undefined;
  // Used with use() (no route matched yet): the endpoint is where that middleware is mounted.
  const target: object = typeof route === 'object' && route !== null ? route : self;
  let key = endpointKeys.get(target);
  if (key === undefined) {
    const app = req.app as unknown as AppLike | undefined;
    const found = app === undefined ? undefined : mountOf(app, target);
    const own = target === route ? patternText(route.path) : ' (middleware)';
    key = (found ?? '(unplaced)') + own;
    endpointKeys.set(target, key);
  }
  return key;
}

/** The mount patterns leading to `target` (a route, or a middleware function) in `app`. */
function mountOf(app: AppLike, target: object): string | undefined {
  let prefix = '';
  // A sub-application's own mount patterns, up to the top application.
  for (let a: AppLike | undefined = app; a?.parent !== undefined; a = a.parent) prefix = patternText(a.mountpath) + prefix;
  let root: { stack?: unknown } | undefined;
  try {
    // Express 4 keeps the router in _router (its `router` getter throws); Express 5 in `router`.
    root = app._router ?? app.router;
  } catch {
    root = undefined;
  }
  const inner = root === undefined ? undefined : search(root.stack, target, new Set());
  return inner === undefined ? undefined : prefix + inner;
}

function search(stack: unknown, target: object, seen: Set<unknown>): string | undefined {
  if (!Array.isArray(stack) || seen.has(stack)) return undefined;
  seen.add(stack);
  for (let i = 0; i < stack.length; i++) {
    const layer = stack[i] as LayerLike;
    if (typeof layer !== 'object' || layer === null) continue;
    // A route's own pattern is added by the caller (route.path); a middleware's is its mount.
    if (layer.route === target) return '';
    if (layer.route === undefined && layer.handle === target) return layerPattern(layer, i);
    if (layer.route !== undefined) continue;
    const nested = (layer.handle as { stack?: unknown } | undefined)?.stack;
    const found = search(nested, target, seen);
    if (found !== undefined) return layerPattern(layer, i) + found;
  }
  return undefined;
}

/** The pattern a layer was defined with: router 2.3's rawPath, Express 4's regexp, or its position. */
function layerPattern(layer: LayerLike, index: number): string {
  if ('rawPath' in layer) return patternText(layer.rawPath);
  if (layer.regexp instanceof RegExp) return layer.regexp.fast_slash === true ? '' : `re(${layer.regexp.source})`;
  return `#${index}`;
}

/** A defined path (string, RegExp, or an array of them) as key text; the root mount adds nothing. */
function patternText(path: unknown): string {
  if (typeof path === 'string') return path === '/' ? '' : path;
  if (path instanceof RegExp) return `re(${path.source})`;
  if (Array.isArray(path)) return `[${path.map(patternText).join(',')}]`;
  return '(unnamed)';
}
