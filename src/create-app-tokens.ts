/**
 * `createAppTokens(options)`: the one entry point.
 *
 * @module
 */
import type { RequestHandler, Router } from 'express';
import type { AuditEvent } from './core/events.js';
import {
  AppManagement,
  type AppDetails,
  type AppListPage,
  type ListAppsInput,
  type ListEventsInput,
  type CreateAppInput,
  type CreateTokenInput,
  type CreatedApp,
  type CreatedKeyApp,
  type PageView,
  type Principal,
  type RegenerateTokenInput,
  type UpdateAppInput,
} from './core/management.js';
import type { AppTokensOptions } from './core/options.js';
import type { IssuedPersonalToken } from './core/personal-tokens.js';
import type { ClientKeyView } from './core/client-keys.js';
import type { AddKeyInput } from './core/key-management.js';
import { resolveOptions } from './core/options.js';
import { instrument, withTelemetry } from './core/telemetry.js';
import { AppTokensService } from './core/service.js';
import type { ApiTokenView, AppListItem, AppView, IssuedApiToken } from './core/views.js';
import type { UsageQueryInput, UsageSeries } from './core/usage.js';
import { bearer, type AppTokensStrategy, type AuthenticateOptions } from './http/bearer.js';
import { rateLimitMiddleware, type RateLimitOptions } from './http/rate-limit.js';
import { openApiDocument, type OpenApiDocument } from './http/openapi.js';
import { createRouter, wellKnownRouter } from './http/router.js';
import { consoleRouter, type ConsoleOptions } from './console/router.js';
import { secretScanningRouter, type SecretScanningOptions } from './http/secret-scanning.js';

/**
 * Programmatic app management for trusted server-side code (the CLI, a host's admin jobs): the
 * same rules as the management API, confined to `tenantId`, without a caller's scope limit.
 */
export interface AppsApi {
  /** Create a `private_key_jwt` app (RFC 7523 §2.2) with its public keys (`jwks`) or a `jwksUri`: it has no secret. */
  create(input: CreateAppInput & { tenantId: string; tokenEndpointAuthMethod: 'private_key_jwt' }): Promise<CreatedKeyApp>;
  /** Create an app with its first API token; the value is returned once. */
  create(input: CreateAppInput & { tenantId: string; tokenEndpointAuthMethod?: 'client_secret_basic' | 'client_secret_post' | undefined }): Promise<CreatedApp>;
  /** The app's public keys (private_key_jwt). */
  listKeys(tenantId: string, appId: string): Promise<{ items: ClientKeyView[] }>;
  /** Register another public key of a private_key_jwt app (a JWK, or a PEM with its alg). */
  addKey(tenantId: string, appId: string, input: AddKeyInput): Promise<ClientKeyView>;
  /** Delete a key: every access token minted with it dies at once. */
  deleteKey(tenantId: string, appId: string, kid: string): Promise<void>;
  /**
   * Apps of a tenant (oldest first unless `sort`), with how many match (`total`); `limit` 1–100
   * (default 20), `cursor` from the previous page of the same sort; filters `search`, `scope`,
   * `role`, `expiringWithin`, `expiringSoon`, `locked`, `unusedFor` (days), as `GET /apps` takes them.
   */
  list(tenantId: string, options?: ListAppsInput): Promise<AppListPage>;
  /** The app with its live tokens' metadata. `not_found` for another tenant's app. */
  get(tenantId: string, appId: string): Promise<AppDetails>;
  /** Edit `name`, `description`, `customClaims`. */
  update(tenantId: string, appId: string, patch: UpdateAppInput): Promise<AppView>;
  /** Delete the app; every token of it and every access token they minted dies at once. */
  delete(tenantId: string, appId: string): Promise<void>;
  /**
   * Clear the app's lockout (`get()` shows it): its failure tally, and every source throttled for
   * its client id, on every instance at once. Audited as `app.lockout_cleared`.
   */
  clearLockout(tenantId: string, appId: string): Promise<void>;
  /** Issue another API token for the app. */
  createToken(tenantId: string, appId: string, input?: CreateTokenInput): Promise<IssuedApiToken>;
  /** One page of the metadata of the app's live tokens (`limit` 1–100, default 20). */
  listTokens(tenantId: string, appId: string, options?: { limit?: number; cursor?: string }): Promise<PageView<ApiTokenView>>;
  /** A new value for a token (new id; same name, scopes and lifetime; fresh expiry); the old value dies at once. */
  regenerateToken(tenantId: string, appId: string, tokenId: string, options?: RegenerateTokenInput): Promise<IssuedApiToken>;
  /** Delete one API token; it and the access tokens it minted die at once. */
  deleteToken(tenantId: string, appId: string, tokenId: string): Promise<void>;
  /** The app's audit log, newest first; `types` keeps only events of those types. */
  events(tenantId: string, appId: string, options?: ListEventsInput): Promise<PageView<AuditEvent>>;
  /**
   * The app's usage counts per hour or UTC day, zero-filled (as `GET /apps/:id/usage`): `from`/`to`
   * (ISO 8601 or `Date`), `interval` `hour` (≤ 168 hours) or `day` (≤ `usage.retention`), `byToken`.
   * Default: the last 24 hours by hour.
   *
   * @example
   * ```ts
   * const week = await auth.apps.usage('acme', appId, { interval: 'day', from: new Date(Date.now() - 7 * 86_400_000) });
   * ```
   */
  usage(tenantId: string, appId: string, query?: UsageQueryInput): Promise<UsageSeries>;
}

/**
 * Personal tokens for trusted server-side code: the same rules as `/me/tokens` — a token's scopes
 * are at most what `management.userScopes` says the user holds, now and at every use.
 */
export interface UsersApi {
  /** A personal token acting as the user; the value is returned once. `clientId` is the user's personal client. */
  createToken(tenantId: string, userId: string, input?: CreateTokenInput): Promise<IssuedPersonalToken>;
  /** One page of the user's live personal tokens' metadata. */
  listTokens(tenantId: string, userId: string, options?: { limit?: number; cursor?: string }): Promise<PageView<ApiTokenView>>;
  /** Delete one personal token of the user; it and its access tokens die at once. */
  deleteToken(tenantId: string, userId: string, tokenId: string): Promise<void>;
  /**
   * Revoke every personal token of the user at once, with every access token they minted, on every
   * instance (for an offboarded user). Resolves `false` when the user had none.
   */
  revoke(tenantId: string, userId: string): Promise<boolean>;
}

/** What {@link createAppTokens} returns. */
export interface AppTokens {
  /** The HTTP contract's routes: mount at the issuer's path, e.g. `app.use(auth.routes())`. */
  routes(): Router;
  /**
   * RFC 8414 §3 discovery for an issuer with a path (`https://api.example.com/auth`): mount at the
   * host's root to serve `/.well-known/oauth-authorization-server/auth`.
   */
  wellKnown(): Router;
  /**
   * The OpenAPI 3.1 document of {@link AppTokens.routes}, as `GET /openapi.json` serves it: every
   * route, generated from the zod schemas that validate the requests; `servers` is the `issuer`.
   * A fresh copy each call, for hosts that publish or merge it elsewhere.
   *
   * @example
   * ```ts
   * import { writeFileSync } from 'node:fs';
   * writeFileSync('openapi.json', JSON.stringify(auth.openapi(), null, 2));
   * ```
   */
  openapi(): OpenApiDocument;
  /**
   * Bearer middleware (RFC 6750): sets `req.auth` or answers 400/401. With `{ audience }`, only
   * tokens for that resource server (RFC 8707) pass.
   */
  authenticate(options?: AuthenticateOptions): RequestHandler;
  /**
   * After `authenticate()`: at most `points` requests per app per endpoint (method + route pattern)
   * per `duration` seconds, then 429 with `Retry-After`; IETF RateLimit headers (draft-10) on every
   * answer. Shared by all instances when the store is PostgreSQL, else per process.
   */
  rateLimit(options: RateLimitOptions): RequestHandler;
  /** 403 `insufficient_scope` unless the token grants every one of `scopes`. */
  requireScopes(...scopes: string[]): RequestHandler;
  /** 403 `insufficient_scope` unless the token grants at least one of `scopes`. */
  requireAnyScope(...scopes: string[]): RequestHandler;
  /** The same bearer check as a passport strategy named `app-tokens`, for hosts that run passport. */
  readonly strategy: AppTokensStrategy;
  /**
   * The admin web console: a page and its prebuilt assets, which call the public HTTP contract of
   * {@link AppTokens.routes} (mount `routes()` too). Without `management.resolvePrincipal` it shows
   * a sign-in form (the client id and secret of an app holding `apps:read`/`apps:write`, exchanged
   * for an access token kept in memory only); with it, the host's session is used, so guard the
   * path as the rest of the host's admin area. Strict CSP (a fresh nonce per page, or the host's
   * through `nonce`), `frame-ancestors 'none'`, `no-store`. Options are validated here; a bad one
   * throws `invalid_options`.
   *
   * @example
   * ```ts
   * app.use(auth.routes());
   * app.use('/console', auth.console());
   * ```
   */
  console(options?: ConsoleOptions): Router;
  /**
   * The receiving end of GitHub's secret scanning partner program: mount it where the program
   * POSTs its reports. Each request is verified first (ECDSA P-256 signature over the raw body,
   * keys from `keysUrl`, GitHub's by default): a missing or bad signature answers 401 and nothing
   * else happens. Each token of ours that is live is then revoked with every access token it
   * minted (`onLeak: 'revoke'`, the default) or only reported (`'notify'`); both emit
   * `token.leaked` (with the URL where it leaked, never the value). Answers the program's feedback
   * list. Options are validated here; a bad one throws `invalid_options`.
   *
   * @example
   * ```ts
   * app.use('/secret-scanning', auth.secretScanning());
   * ```
   */
  secretScanning(options?: SecretScanningOptions): Router;
  /** Programmatic management. */
  readonly apps: AppsApi;
  /** Personal tokens of host users (`management.userScopes` enables them). */
  readonly users: UsersApi;
  /**
   * Rotate the signing key: the new public key is published at once and signs new tokens from
   * `activatesAt` (after `advanced.keyActivationDelay`, 90 s); the old public key stays in the
   * JWKS, and old tokens keep verifying on every instance, until the last of them has expired.
   */
  rotateKeys(): Promise<{ kid: string; retired: string[]; activatesAt: Date }>;
  /** Resolves once the store is initialised and the signing key loaded (routes also wait for it). */
  ready(): Promise<void>;
  /** Flush batched writes (last use, audit events) and stop timers. Does not close the store. */
  close(): Promise<void>;
}

/**
 * Create the authorization server and the resource-server middleware of one Express app.
 * Options are validated here, once; a bad option throws an `AppTokensError` (`invalid_options`)
 * naming it.
 *
 * @example
 * ```ts
 * import express from 'express';
 * import { createAppTokens } from 'express-app-tokens';
 * import { createSqliteStore } from 'express-app-tokens/adapters/sqlite';
 *
 * const auth = createAppTokens({
 *   store: createSqliteStore({ filename: './data/app-tokens.db' }),
 *   issuer: 'https://api.example.com',
 *   scopes: ['stamps:read', 'stamps:write', 'apps:read', 'apps:write'],
 * });
 * const app = express();
 * app.use(auth.routes());
 * app.get('/stamps', auth.authenticate(), auth.requireScopes('stamps:read'), (req, res) => {
 *   res.json({ tenant: req.auth!.tenantId });
 * });
 * ```
 */
export function createAppTokens(options: AppTokensOptions): AppTokens {
  // OpenTelemetry (option `telemetry`): the token path's store calls traced, the observer counting.
  const { options: resolved, observer: telemetry } = withTelemetry(resolveOptions(options));
  const service = new AppTokensService(resolved);
  const management = new AppManagement(service);
  instrument(service, management, telemetry, resolved.telemetry.tenantAttribute);
  const guards = bearer(service);
  const system = (tenantId: string): Principal => ({ tenantId, scopes: null, actorId: 'system' });
  // Personal tokens of a user, bounded by what management.userScopes says the user holds.
  const user = (tenantId: string, userId: string): Principal => ({ tenantId, scopes: null, actorId: userId });
  // Management needs the store only: no signing key is created by, say, the CLI. A revocation
  // made before this instance is ready reaches its view through the tombstones it loads on start.
  const run = async <T>(fn: () => Promise<T>): Promise<T> => {
    await service.options.store.init();
    return fn();
  };
  return {
    routes: () => createRouter(service, management),
    wellKnown: () => wellKnownRouter(service),
    openapi: () => openApiDocument(service),
    authenticate: guards.authenticate,
    rateLimit: (opts) => rateLimitMiddleware(service, opts),
    requireScopes: guards.requireScopes,
    requireAnyScope: guards.requireAnyScope,
    strategy: guards.strategy,
    console: (opts) => consoleRouter(service, opts),
    secretScanning: (opts) => secretScanningRouter(service, opts),
    apps: {
      create: (({ tenantId, ...input }: CreateAppInput & { tenantId: string }) => run(() => management.createApp(system(tenantId), input))) as AppsApi['create'],
      listKeys: (tenantId, appId) => run(() => management.keys.list(system(tenantId), appId)),
      addKey: (tenantId, appId, input) => run(() => management.keys.add(system(tenantId), appId, input)),
      deleteKey: (tenantId, appId, kid) => run(() => management.keys.delete(system(tenantId), appId, kid)),
      list: (tenantId, opts) => run(() => management.listApps(system(tenantId), opts)),
      get: (tenantId, appId) => run(() => management.getApp(system(tenantId), appId)),
      update: (tenantId, appId, patch) => run(() => management.updateApp(system(tenantId), appId, patch)),
      delete: (tenantId, appId) => run(() => management.deleteApp(system(tenantId), appId)),
      clearLockout: (tenantId, appId) => run(() => management.clearLockout(system(tenantId), appId)),
      createToken: (tenantId, appId, input) => run(() => management.createToken(system(tenantId), appId, input)),
      listTokens: (tenantId, appId, opts) => run(() => management.listTokens(system(tenantId), appId, opts)),
      regenerateToken: (tenantId, appId, tokenId, opts) =>
        run(() => management.regenerateToken(system(tenantId), appId, tokenId, opts)),
      deleteToken: (tenantId, appId, tokenId) => run(() => management.deleteToken(system(tenantId), appId, tokenId)),
      events: (tenantId, appId, opts) => run(() => management.listEvents(system(tenantId), appId, opts)),
      usage: (tenantId, appId, query) => run(() => management.usage(system(tenantId), appId, query)),
    },
    users: {
      createToken: (tenantId, userId, input) => run(() => management.personal.create(user(tenantId, userId), input)),
      listTokens: (tenantId, userId, opts) => run(() => management.personal.list(user(tenantId, userId), opts)),
      deleteToken: (tenantId, userId, tokenId) => run(() => management.personal.delete(user(tenantId, userId), tokenId)),
      revoke: (tenantId, userId) => run(() => management.personal.revokeUser(tenantId, userId)),
    },
    rotateKeys: () => service.rotateKeys(),
    ready: () => service.ready(),
    close: () => service.close(),
  };
}
