/**
 * `auth.rateLimit()`: per app and per endpoint on protected routes, with rate-limiter-flexible
 * (see `core/limits.ts` for the backends).
 *
 * Answers carry the IETF RateLimit fields in draft-10 syntax:
 * `RateLimit-Policy: "default";q=100;w=60` and `RateLimit: "default";r=0;t=30`.
 *
 * @module
 */
import type { Request, RequestHandler, Response } from 'express';
import { RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { AppTokensError } from '../core/errors.js';
import { createLimiter } from '../core/limits.js';
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
}

const POLICY = /^[a-z][a-z0-9_-]{0,31}$/;

function check(options: RateLimitOptions): Required<RateLimitOptions> {
  const { points, duration, policy = 'default' } = options ?? ({} as RateLimitOptions);
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
  return { points, duration, policy };
}

function setHeaders(res: Response, o: Required<RateLimitOptions>, remaining: number, msBeforeNext: number): void {
  res.setHeader('RateLimit-Policy', `"${o.policy}";q=${o.points};w=${o.duration}`);
  res.setHeader('RateLimit', `"${o.policy}";r=${Math.max(0, remaining)};t=${Math.max(0, Math.ceil(msBeforeNext / 1000))}`);
}

/**
 * `auth.rateLimit({points, duration})`: after `authenticate()`, at most `points` requests per app
 * per endpoint (method + route pattern) per `duration` seconds; then 429 with `Retry-After`.
 */
export function rateLimitMiddleware(service: AppTokensService, options: RateLimitOptions): RequestHandler {
  const o = check(options);
  const { realm, store } = service.options;
  let limiter: Promise<RateLimiterAbstract> | undefined;
  return (req: Request, res: Response, next) => {
    const auth = req.auth;
    if (!auth) return sendBearerError(res, new AppTokensError('missing_token', 'a bearer token is required'), realm);
    limiter ??= createLimiter(store, {
      points: o.points,
      duration: o.duration,
      keyPrefix: `eat_rl_${o.policy}_${o.points}_${o.duration}`,
    });
    // The route pattern, not the URL: /stamps/1 and /stamps/2 are one endpoint.
    // HEAD is GET without a body (RFC 9110 §9.3.2): one bucket for both, or HEAD doubles the quota.
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    const endpoint = `${method} ${req.baseUrl}${typeof req.route?.path === 'string' ? req.route.path : req.path}`;
    limiter
      .then((l) => l.consume(`${auth.tenantId}:${auth.appId}:${endpoint}`))
      .then(
        (r) => {
          setHeaders(res, o, r.remainingPoints, r.msBeforeNext);
          next();
        },
        (r: unknown) => {
          if (!(r instanceof RateLimiterRes)) return next(r);
          setHeaders(res, o, 0, r.msBeforeNext);
          const retry = Math.max(1, Math.ceil(r.msBeforeNext / 1000));
          res.setHeader('Retry-After', String(retry));
          res.status(429).json({ error: 'rate_limited', error_description: `rate limit of ${o.points} per ${o.duration} s exceeded; retry in ${retry} s` });
        },
      );
  };
}
