/**
 * `createAppTokens(options)`: the one entry point.
 *
 * @module
 */
import type { RequestHandler, Router } from 'express';
import type { AppTokensOptions } from './core/options.js';
import { resolveOptions } from './core/options.js';
import {
  AppTokensService,
  type CreateAppInput,
  type CreateTokenInput,
  type CreatedApp,
} from './core/service.js';
import type { ApiTokenView, AppView, IssuedApiToken } from './core/views.js';
import { bearer, type AppTokensStrategy } from './http/bearer.js';
import { createRouter } from './http/router.js';

/** Programmatic app management (what the management routes and the CLI use). */
export interface AppsApi {
  /** Create an app with its first API token; the value is returned once. */
  create(input: CreateAppInput): Promise<CreatedApp>;
  /** The app with its live tokens' metadata. `not_found` for another tenant's app. */
  get(tenantId: string, appId: string): Promise<AppView & { tokens: ApiTokenView[] }>;
  /** Delete the app; every token of it and every access token they minted dies at once. */
  delete(tenantId: string, appId: string): Promise<void>;
  /** Issue another API token for the app. */
  createToken(tenantId: string, appId: string, input?: CreateTokenInput): Promise<IssuedApiToken>;
  /** Delete one API token; it and the access tokens it minted die at once. */
  deleteToken(tenantId: string, appId: string, tokenId: string): Promise<void>;
}

/** What {@link createAppTokens} returns. */
export interface AppTokens {
  /** The HTTP contract's routes: mount at the issuer's path, e.g. `app.use(auth.routes())`. */
  routes(): Router;
  /** Bearer middleware (RFC 6750): sets `req.auth` or answers 400/401. */
  authenticate(): RequestHandler;
  /** 403 `insufficient_scope` unless the token grants every one of `scopes`. */
  requireScopes(...scopes: string[]): RequestHandler;
  /** 403 `insufficient_scope` unless the token grants at least one of `scopes`. */
  requireAnyScope(...scopes: string[]): RequestHandler;
  /** The same bearer check as a passport strategy named `app-tokens`, for hosts that run passport. */
  readonly strategy: AppTokensStrategy;
  /** Programmatic management. */
  readonly apps: AppsApi;
  /** Resolves once the store is initialised and the signing key loaded (routes also wait for it). */
  ready(): Promise<void>;
  /** Flush batched writes and stop timers. Does not close the store. */
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
 * import { createSqliteStore } from 'express-app-tokens/adapters/sql';
 *
 * const auth = createAppTokens({
 *   store: createSqliteStore({ filename: './data/app-tokens.db' }),
 *   issuer: 'https://api.example.com',
 *   scopes: ['stamps:read', 'stamps:write'],
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
  const guards = bearer(service);
  const ensure = async <T>(fn: () => Promise<T>): Promise<T> => {
    await service.options.store.init();
    return fn();
  };
  return {
    routes: () => createRouter(service),
    authenticate: guards.authenticate,
    requireScopes: guards.requireScopes,
    requireAnyScope: guards.requireAnyScope,
    strategy: guards.strategy,
    apps: {
      create: (input) => ensure(() => service.createApp(input)),
      get: (tenantId, appId) => ensure(() => service.getApp(tenantId, appId)),
      delete: (tenantId, appId) => service.ready().then(() => service.deleteApp(tenantId, appId)),
      createToken: (tenantId, appId, input) => ensure(() => service.createToken(tenantId, appId, input)),
      deleteToken: (tenantId, appId, tokenId) =>
        service.ready().then(() => service.deleteToken(tenantId, appId, tokenId)),
    },
    ready: () => service.ready(),
    close: () => service.close(),
  };
}
