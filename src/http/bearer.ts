/**
 * The bearer middleware (RFC 6750) built on passport-http-bearer, and the scope guards.
 *
 * @module
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { Strategy as BearerStrategy } from 'passport-http-bearer';
import { GRANTED, type AuthInfo, type AuthInfo as AppTokensAuthInfo, type InternalAuthInfo } from '../core/access-tokens.js';
import { AppTokensError, isAppTokensError } from '../core/errors.js';
import { compileRequirement } from '../core/scopes.js';
import type { AppTokensService } from '../core/service.js';
import { markRefusal, refusalOf, type BearerRefusal } from '../core/signals.js';
import { toAppTokensError } from './responses.js';
import { downgradeError, dpopChallenge, dpopRequiredError, isDpopScheme, offerNonce, sendDpopError, verifyDpopRequest, wantsDpop } from './dpop.js';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** Set by `auth.authenticate()`: who is calling, with which scopes. */
      // Aliased: inside `namespace Express`, a bare `AuthInfo` would be passport's empty interface.
      auth?: AppTokensAuthInfo;
    }
  }
}

/** A passport strategy (structurally `passport.Strategy`), named `app-tokens`. */
export interface AppTokensStrategy {
  name: string;
  authenticate(req: Request, options?: unknown): void;
}

/** Requests that authenticated with DPoP: their scope failures are challenged with DPoP (RFC 9449 §7.1). */
const VIA_DPOP = new WeakSet<Request>();

/** Why the request failed, handed from the verify callback to `fail()`. */
const FAILURE = Symbol('express-app-tokens.failure');
type WithFailure = Request & { [FAILURE]?: AppTokensError };

/** Tell the observers (usage counts, telemetry) that a bearer got through `authenticate()`. */
function accepted(service: AppTokensService, info: AuthInfo, cached: boolean): void {
  service.signals.bearerAccepted({ tenantId: info.tenantId, appId: info.appId, apiTokenId: info.apiTokenId, kind: info.kind, cached });
}

/**
 * Tell the observers that a bearer was refused: whose it was only from verified data (`owner`, or
 * what the verifier attached to the error), never from what the request claims.
 */
function refusedBearer(service: AppTokensService, error: AppTokensError, owner?: AuthInfo): void {
  if (error.status >= 500) return;
  const known = refusalOf(error);
  if (known !== undefined && owner === undefined) return service.signals.bearerRefused(known);
  service.signals.bearerRefused({
    tenantId: owner?.tenantId ?? null,
    appId: owner?.appId ?? null,
    apiTokenId: owner?.apiTokenId ?? null,
    reason: known?.reason ?? refusalReason(error),
  });
}

function refusalReason(error: AppTokensError): BearerRefusal {
  if (error.code === 'invalid_dpop_proof' || error.code === 'use_dpop_nonce' || wantsDpop(error)) return 'dpop';
  if (error.code === 'insufficient_scope') return 'insufficient_scope';
  if (error.code === 'invalid_request') return 'malformed';
  return 'other';
}

function queryToken(req: Request): boolean {
  // Express 5 parses the query string on every read of req.query: skip it when there is none.
  if (!req.url.includes('?')) return false;
  const q = req.query as Record<string, unknown> | undefined;
  return q !== undefined && q !== null && q.access_token !== undefined;
}

/** RFC 6750 §2.2: a form-body `access_token` (from a body the host parsed) must be a string. */
function badBodyToken(req: Request): boolean {
  const body = req.body as Record<string, unknown> | undefined;
  return typeof body === 'object' && body !== null && body.access_token !== undefined && typeof body.access_token !== 'string';
}

/**
 * passport-http-bearer, with two refusals it lacks: a token in the query string (RFC 6750 §2.3
 * allows it only where nothing else works; we never accept it) and a mismatch-proof error handoff.
 */
class Strategy extends BearerStrategy {
  // Plain properties, not #private: passport runs each request on Object.create(strategy), which
  // inherits properties but not private fields.
  private readonly appTokens: AppTokensService;
  private readonly audience: string;

  constructor(service: AppTokensService, audience: string) {
    super({ realm: service.options.realm, passReqToCallback: true }, (req, token, done) => {
      // RFC 9449 §7.2: a DPoP-bound token never passes as a bearer token.
      const accept = (info: InternalAuthInfo) => {
        if (info.claims.cnf === undefined) return done(null, info);
        const e = markRefusal(downgradeError(), { reason: 'dpop', tenantId: info.tenantId, appId: info.appId, apiTokenId: info.apiTokenId });
        (req as WithFailure)[FAILURE] = e;
        done(null, false, e.message);
      };
      const cached = service.cachedBearer(token, audience);
      if (cached) return accept(cached);
      service.verifyBearer(token, audience, req.ip).then(
        accept,
        (error: unknown) => {
          const e = toAppTokensError(error, service.log);
          if (e.code === 'invalid_token') {
            (req as WithFailure)[FAILURE] = e;
            done(null, false, e.message);
          } else {
            done(e);
          }
        },
      );
    });
    this.name = 'app-tokens';
    this.appTokens = service;
    this.audience = audience;
  }

  override authenticate(req: Request, options?: unknown): void {
    if (queryToken(req)) {
      (req as WithFailure)[FAILURE] = tokenInQuery();
      return this.fail(400);
    }
    if (badBodyToken(req)) {
      (req as WithFailure)[FAILURE] = new AppTokensError('invalid_request', 'access_token: must be a string', {
        field: 'access_token',
      });
      return this.fail(400);
    }
    if (req.headers.authorization !== undefined && repeatedAuthorization(req)) {
      (req as WithFailure)[FAILURE] = twoCredentials();
      return this.fail(400);
    }
    // RFC 9449 §7.1: `Authorization: DPoP` with a proof, which passport-http-bearer does not read.
    if (isDpopScheme(req.headers.authorization)) {
      const res = (req as Request & { res?: Response }).res;
      verifyDpopRequest(this.appTokens, req, this.audience).then(
        ({ info, proof }) => {
          if (res) offerNonce(this.appTokens, res, proof);
          req.auth = info;
          accepted(this.appTokens, info, false);
          this.success(info);
        },
        (error: unknown) => {
          const e = toAppTokensError(error, this.appTokens.log);
          if (e.status >= 500) return this.error(e);
          refusedBearer(this.appTokens, e);
          if (res && e.code === 'use_dpop_nonce') res.setHeader('DPoP-Nonce', this.appTokens.dpop.currentNonce()!);
          (req as WithFailure)[FAILURE] = e;
          this.fail(dpopChallenge(e), 401);
        },
      );
      return;
    }
    // Hosts that run passport get the same cached fast path as authenticate(): no verify callback.
    const token = headerToken(req);
    const cached =
      token === undefined || req.body?.access_token !== undefined ? undefined : this.appTokens.cachedBearer(token, this.audience);
    if (cached && cached.claims.cnf === undefined) {
      req.auth = cached;
      accepted(this.appTokens, cached, true);
      return this.success(cached);
    }
    // passport sets req.user; mirror it on req.auth for hosts that use passport directly.
    const success = this.success;
    this.success = (user: unknown, info?: unknown) => {
      req.auth = user as AuthInfo;
      accepted(this.appTokens, req.auth, false);
      success.call(this, user, info);
    };
    const fail = this.fail;
    this.fail = ((challenge?: unknown, status?: number) => {
      const e = (req as WithFailure)[FAILURE];
      refusedBearer(this.appTokens, e ?? new AppTokensError('missing_token', 'a bearer token is required'));
      (fail as (c?: unknown, s?: number) => void).call(this, challenge, status);
    }) as typeof this.fail;
    super.authenticate(req, options);
  }
}

/**
 * Node keeps only the first `Authorization` line in `req.headers`: count the raw lines, so that a
 * second credential cannot hide behind the first (RFC 6750 §2: one method, one credential).
 */
export function repeatedAuthorization(req: Request): boolean {
  let seen = 0;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 13 && name.toLowerCase() === 'authorization' && ++seen > 1) return true;
  }
  return false;
}

/** RFC 6750 §2.3 is not offered: a token in the URI would end up in logs and histories. */
function tokenInQuery(): AppTokensError {
  return new AppTokensError('invalid_request', 'access_token: tokens in the query string are refused; send Authorization: Bearer', {
    field: 'access_token',
  });
}

function twoCredentials(): AppTokensError {
  return new AppTokensError('invalid_request', 'Authorization: sent more than once', { field: 'Authorization' });
}

/** `Authorization: Bearer <token>` parsed as passport-http-bearer does (scheme case-insensitive). */
function headerToken(req: Request): string | undefined {
  const header = req.headers.authorization;
  if (header === undefined) return undefined;
  const space = header.indexOf(' ');
  if (space !== 6 || header.indexOf(' ', 7) !== -1) return undefined;
  if (header.slice(0, 6).toLowerCase() !== 'bearer') return undefined;
  return header.slice(7) || undefined;
}

/**
 * The bearer credential of a request, verified, for callers that answer errors their own way
 * (the management API answers RFC 9457). Throws `missing_token`, `invalid_request` or
 * `invalid_token`.
 */
export async function verifyRequestBearer(service: AppTokensService, req: Request): Promise<InternalAuthInfo> {
  if (queryToken(req)) {
    throw tokenInQuery();
  }
  if (req.headers.authorization !== undefined && repeatedAuthorization(req)) throw twoCredentials();
  if (isDpopScheme(req.headers.authorization)) {
    // The caller answers errors its own way, so the nonce headers (§8) are set here, on req.res.
    const res = (req as Request & { res?: Response }).res;
    try {
      const { info, proof } = await verifyDpopRequest(service, req);
      if (res) offerNonce(service, res, proof);
      return info;
    } catch (error) {
      if (res && isAppTokensError(error, 'use_dpop_nonce')) res.setHeader('DPoP-Nonce', service.dpop.currentNonce()!);
      throw error;
    }
  }
  const token = headerToken(req);
  if (token === undefined) {
    const header = req.headers.authorization;
    if (header !== undefined && /^bearer(\s|$)/i.test(header)) {
      throw new AppTokensError('invalid_request', 'malformed Authorization header', { field: 'Authorization' });
    }
    throw new AppTokensError('missing_token', 'a bearer token is required');
  }
  await service.ready();
  const info = service.cachedBearer(token) ?? (await service.verifyBearer(token, undefined, req.ip));
  // RFC 9449 §7.2: a DPoP-bound token is refused as a bearer token at every door.
  if (info.claims.cnf !== undefined) throw downgradeError();
  return info;
}

/** Write an RFC 6750 §3 error response. */
export function sendBearerError(res: Response, error: AppTokensError, realm: string): void {
  res.setHeader('X-Content-Type-Options', 'nosniff');
  const challenge = error.bearerChallenge(realm);
  if (challenge) res.setHeader('WWW-Authenticate', challenge);
  if (error.code === 'missing_token') {
    // RFC 6750 §3.1: no error information when the request carried no credentials.
    res.status(401).end();
    return;
  }
  if (error.retryAfter !== undefined) res.setHeader('Retry-After', String(error.retryAfter));
  const code = challenge ? error.code : error.status >= 500 && error.status !== 503 ? 'server_error' : error.code;
  res.status(error.status).json({ error: code, error_description: error.message });
}

/** Options of `authenticate()`. */
export interface AuthenticateOptions {
  /**
   * The audience this route serves: the default `audience` option, or the `id` of one of the
   * declared `resources` (RFC 8707). Tokens for any other audience are refused. Default: the
   * default audience.
   */
  audience?: string;
  /**
   * RFC 9449 DPoP on this route. `'allowed'`: bearer tokens as before, and `Authorization: DPoP`
   * with a proof for DPoP-bound tokens (a bound token sent as Bearer is refused). `'required'`:
   * only DPoP-bound tokens with a proof; anything else answers 401 with a `DPoP` challenge.
   * Default: `'allowed'`.
   */
  dpop?: 'allowed' | 'required';
}

/** The bearer middleware factory and scope guards of one AppTokens instance. */
export function bearer(service: AppTokensService) {
  const { realm } = service.options;
  const strategy = new Strategy(service, service.options.audience);

  const fail = (req: Request, res: Response, challenge?: string | number): void => {
    let error = (req as WithFailure)[FAILURE];
    if (!error) {
      error =
        typeof challenge === 'number'
          ? // passport-http-bearer answers 400 for a malformed header or two credentials at once.
            new AppTokensError('invalid_request', 'malformed Authorization header, or more than one bearer credential')
          : new AppTokensError('missing_token', 'a bearer token is required');
    }
    refusedBearer(service, error);
    // A DPoP-bound token (or a DPoP-bound app's API token) sent as Bearer: the Bearer error, and the scheme to use instead (§7.1).
    if (wantsDpop(error)) return sendDpopError(service, res, error, error.bearerChallenge(realm));
    sendBearerError(res, error, realm);
  };

  /** Count a refusal, then answer it. */
  const refuse = (res: Response, error: AppTokensError, send: (e: AppTokensError) => void, owner?: AuthInfo): void => {
    refusedBearer(service, error, owner);
    send(error);
  };

  /** RFC 9449 §7.1: `Authorization: DPoP <token>` and one proof. */
  const dpopRequest = (req: Request, res: Response, next: NextFunction, audience: string): void => {
    if (queryToken(req)) return refuse(res, tokenInQuery(), (e) => sendDpopError(service, res, e));
    verifyDpopRequest(service, req, audience).then(
      ({ info, proof }) => {
        offerNonce(service, res, proof);
        req.auth = info;
        VIA_DPOP.add(req);
        accepted(service, info, false);
        next();
      },
      (error: unknown) => refuse(res, unavailable(error, service), (e) => sendDpopError(service, res, e)),
    );
  };

  const middlewareFor = (audience: string, strategy: Strategy, mode: 'allowed' | 'required'): RequestHandler => (req, res, next) => {
    if (req.headers.authorization !== undefined && repeatedAuthorization(req)) {
      return refuse(res, twoCredentials(), (e) => (mode === 'required' ? sendDpopError(service, res, e) : sendBearerError(res, e, realm)));
    }
    if (isDpopScheme(req.headers.authorization)) return dpopRequest(req, res, next, audience);
    if (mode === 'required') {
      const none = req.headers.authorization === undefined && !queryToken(req) && (req.body === undefined || req.body?.access_token === undefined);
      const error = none ? new AppTokensError('missing_token', 'a DPoP-bound access token is required') : dpopRequiredError();
      return refuse(res, error, (e) => sendDpopError(service, res, e));
    }
    // Fast path: a cached, unrevoked token in a well-formed header. No passport work, no I/O.
    const token = headerToken(req);
    if (token !== undefined && !queryToken(req) && (req.body === undefined || req.body?.access_token === undefined)) {
      const cached = service.cachedBearer(token, audience);
      if (cached) {
        // RFC 9449 §7.2: a DPoP-bound token is not a bearer token (one property read on the hot path).
        if (cached.claims.cnf !== undefined) {
          return refuse(res, downgradeError(), (e) => sendDpopError(service, res, e, e.bearerChallenge(realm)), cached);
        }
        req.auth = cached;
        accepted(service, cached, true);
        return next();
      }
    }
    const run = Object.create(strategy) as Strategy;
    run.success = (user: unknown) => {
      req.auth = user as AuthInfo;
      accepted(service, req.auth, false);
      next();
    };
    run.fail = (challenge?: string | number) => fail(req, res, challenge);
    run.error = (error: unknown) => refuse(res, toAppTokensError(error, service.log), (e) => sendBearerError(res, e, realm));
    const go = () => BearerStrategy.prototype.authenticate.call(run, req);
    if (queryToken(req) || badBodyToken(req)) {
      run.authenticate(req);
    } else if (service.isReady) {
      go();
    } else {
      service.ready().then(go, (error: unknown) => sendBearerError(res, unavailable(error, service), realm));
    }
  };

  const guard = (mode: 'all' | 'any', scopes: string[]): RequestHandler => {
    const requirement = compileRequirement(service.catalogue, mode, scopes);
    return (req: Request, res: Response, next: NextFunction) => {
      const auth = req.auth as InternalAuthInfo | undefined;
      const granted = auth?.[GRANTED];
      if (!granted) {
        // authenticate() did not run before this guard, or another library set req.auth.
        return sendBearerError(res, new AppTokensError('missing_token', 'a bearer token is required'), realm);
      }
      if (requirement.check(granted).length > 0) {
        const wanted = requirement.scopes.join(mode === 'all' ? ' and ' : ' or ');
        const error = new AppTokensError('insufficient_scope', `this request needs the scope ${wanted}`, { scopes: requirement.scopes });
        // A DPoP request is challenged in its own scheme (RFC 9449 §7.1).
        return refuse(res, error, (e) => (VIA_DPOP.has(req) ? sendDpopError(service, res, e) : sendBearerError(res, e, realm)), auth);
      }
      next();
    };
  };

  const defaultMiddleware = middlewareFor(service.options.audience, strategy, 'allowed');
  const authenticate = (options: AuthenticateOptions = {}): RequestHandler => {
    const audience = options.audience ?? service.options.audience;
    const dpop = options.dpop ?? 'allowed';
    if (dpop !== 'allowed' && dpop !== 'required') {
      throw new AppTokensError('invalid_options', `authenticate(): "dpop" must be 'allowed' or 'required'`, { field: 'dpop' });
    }
    if (audience === service.options.audience && dpop === 'allowed') return defaultMiddleware;
    if (!service.audiences.includes(audience)) {
      throw new AppTokensError('invalid_options', `authenticate(): "audience" '${audience}' is neither the default audience nor one of "resources"`, {
        field: 'audience',
      });
    }
    return middlewareFor(audience, audience === service.options.audience ? strategy : new Strategy(service, audience), dpop);
  };

  return {
    strategy: strategy as AppTokensStrategy,
    authenticate,
    requireScopes: (...scopes: string[]): RequestHandler => guard('all', scopes),
    requireAnyScope: (...scopes: string[]): RequestHandler => guard('any', scopes),
  };
}

function unavailable(error: unknown, service: AppTokensService): AppTokensError {
  const e = toAppTokensError(error, service.log);
  return e.status >= 500 ? new AppTokensError('unavailable', 'authentication is temporarily unavailable', { cause: error }) : e;
}
