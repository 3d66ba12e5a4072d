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
  type CreateAppInput,
  type CreateTokenInput,
  type CreatedApp,
  type PageView,
  type Principal,
  type RegenerateTokenInput,
  type UpdateAppInput,
} from './core/management.js';
import type { AppTokensOptions } from './core/options.js';
import { resolveOptions } from './core/options.js';
import { AppTokensService } from './core/service.js';
import type { ApiTokenView, AppView, IssuedApiToken } from './core/views.js';
import { bearer, type AppTokensStrategy, type AuthenticateOptions } from './http/bearer.js';
import { rateLimitMiddleware, type RateLimitOptions } from './http/rate-limit.js';
import { openApiDocument, type OpenApiDocument } from './http/openapi.js';
import { createRouter, wellKnownRouter } from './http/router.js';

/**
 * Programmatic app management for trusted server-side code (the CLI, a host's admin jobs): the
 * same rules as the management API, confined to `tenantId`, without a caller's scope limit.
 */
export interface AppsApi {
  /** Create an app with its first API token; the value is returned once. */
  create(input: CreateAppInput & { tenantId: string }): Promise<CreatedApp>;
  /** Apps of a tenant, oldest first; `limit` 1–100 (default 20), `cursor` from the previous page. */
  list(tenantId: string, options?: { limit?: number; cursor?: string }): Promise<PageView<AppView>>;
  /** The app with its live tokens' metadata. `not_found` for another tenant's app. */
  get(tenantId: string, appId: string): Promise<AppDetails>;
  /** Edit `name`, `description`, `customClaims`. */
  update(tenantId: string, appId: string, patch: UpdateAppInput): Promise<AppView>;
  /** Delete the app; every token of it and every access token they minted dies at once. */
  delete(tenantId: string, appId: string): Promise<void>;
  /** Issue another API token for the app. */
  createToken(tenantId: string, appId: string, input?: CreateTokenInput): Promise<IssuedApiToken>;
  /** One page of the metadata of the app's live tokens (`limit` 1–100, default 20). */
  listTokens(tenantId: string, appId: string, options?: { limit?: number; cursor?: string }): Promise<PageView<ApiTokenView>>;
  /** A new value for a token (new id; same name, scopes and lifetime; fresh expiry); the old value dies at once. */
  regenerateToken(tenantId: string, appId: string, tokenId: string, options?: RegenerateTokenInput): Promise<IssuedApiToken>;
  /** Delete one API token; it and the access tokens it minted die at once. */
  deleteToken(tenantId: string, appId: string, tokenId: string): Promise<void>;
  /** The app's audit log, newest first. */
  events(tenantId: string, appId: string, options?: { limit?: number; cursor?: string }): Promise<PageView<AuditEvent>>;
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
  /** Programmatic management. */
  readonly apps: AppsApi;
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
  const service = new AppTokensService(resolveOptions(options));
  const management = new AppManagement(service);
  const guards = bearer(service);
  const system = (tenantId: string): Principal => ({ tenantId, scopes: null, actorId: 'system' });
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
    apps: {
      create: ({ tenantId, ...input }) => run(() => management.createApp(system(tenantId), input)),
      list: (tenantId, opts) => run(() => management.listApps(system(tenantId), opts)),
      get: (tenantId, appId) => run(() => management.getApp(system(tenantId), appId)),
      update: (tenantId, appId, patch) => run(() => management.updateApp(system(tenantId), appId, patch)),
      delete: (tenantId, appId) => run(() => management.deleteApp(system(tenantId), appId)),
      createToken: (tenantId, appId, input) => run(() => management.createToken(system(tenantId), appId, input)),
      listTokens: (tenantId, appId, opts) => run(() => management.listTokens(system(tenantId), appId, opts)),
      regenerateToken: (tenantId, appId, tokenId, opts) =>
        run(() => management.regenerateToken(system(tenantId), appId, tokenId, opts)),
      deleteToken: (tenantId, appId, tokenId) => run(() => management.deleteToken(system(tenantId), appId, tokenId)),
      events: (tenantId, appId, opts) => run(() => management.listEvents(system(tenantId), appId, opts)),
    },
    rotateKeys: () => service.rotateKeys(),
    ready: () => service.ready(),
    close: () => service.close(),
  };
}
