/**
 * App management and the API-token lifecycle: create, list, view, update, delete apps; issue,
 * regenerate, refresh and delete API tokens; read the audit log. Every operation is confined to
 * the caller's tenant, and nobody grants a scope they do not hold.
 *
 * @module
 */
import { LRUCache } from 'lru-cache';
import type { ApiTokenRecord, AppPatch, AppRecord, AppSort, AuditEventType, ListAppsOptions } from '../store.js';
import { RESERVED_CLAIMS } from './access-tokens.js';
import { AppTokensError } from './errors.js';
import { eventView, type AuditEvent } from './events.js';
import { PersonalTokens } from './personal-tokens.js';
import { KeyManagement } from './key-management.js';
import { clientKeyView, type ClientKeyView } from './client-keys.js';
import { jwksUriProblem } from './remote-jwks.js';
import type { ClientAuthMethod } from '../store.js';
import { GrantedScopes, printable } from './scopes.js';
import { sourceKey } from './limits.js';
import { BEARER_REFUSALS } from './signals.js';
import { hashSecret, randomId } from './secrets.js';
import type { AppTokensService } from './service.js';
import { appView, lockoutView, tokenView, type ApiTokenView, type AppListItem, type AppView, type IssuedApiToken, type LockoutView, type ViewContext } from './views.js';
import { UsageCounter, type UsageQueryInput, type UsageSeries } from './usage.js';

/**
 * Who manages apps: a tenant, the scopes the caller holds (`null`: unrestricted, for trusted
 * server-side code such as the CLI), and an actor id for the audit log.
 */
export interface Principal {
  tenantId: string;
  /** Scopes the caller holds; wildcards count. `null`: may grant anything in the catalogue. */
  scopes: readonly string[] | null;
  /** Recorded in audit events: a client id, a user id. */
  actorId: string | null;
}

/** Input of {@link AppManagement.createApp}. */
export interface CreateAppInput {
  name: string;
  description?: string | null | undefined;
  /** Fixed for the app's life; catalogue scopes or wildcards (`storage:*`). At least one of `scopes` and `roles` is non-empty. */
  scopes?: string[] | undefined;
  /** Names of host-declared roles (option `roles`), fixed for the app's life. */
  roles?: string[] | undefined;
  customClaims?: Record<string, unknown> | undefined;
  /** The first API token (not for `private_key_jwt` apps, which have no secret). */
  token?: CreateTokenInput | undefined;
  /** RFC 7591 §2: `client_secret_basic` (default) and `client_secret_post` are one method here (both accepted); `private_key_jwt` (RFC 7523 §2.2) needs `jwks` or `jwksUri`. */
  tokenEndpointAuthMethod?: ClientAuthMethod | undefined;
  /** `private_key_jwt`: the client's public keys, as a JWK Set. */
  jwks?: { keys: unknown[] } | undefined;
  /** `private_key_jwt`: where the client publishes its JWK Set (https; fetched and cached). */
  jwksUri?: string | undefined;
  /** RFC 9449 §5: the client must present a DPoP proof at the token endpoint; its access tokens are all bound. */
  dpopBoundAccessTokens?: boolean | undefined;
}

/** Input of {@link AppManagement.createToken}. */
export interface CreateTokenInput {
  /** Default: `default`. */
  name?: string | undefined;
  /** Lifetime in seconds; default and maximum come from the `apiTokenTtl` option. */
  expiresIn?: number | undefined;
  /** A subset of the app's scopes; default: all of them. */
  scopes?: string[] | undefined;
}

/** Input of {@link AppManagement.regenerateToken}. */
export interface RegenerateTokenInput {
  /**
   * Seconds the old value keeps working (token endpoint, bearer) before it retires, on every
   * instance, with the access tokens it minted; 0–86400. Default: 0 (it dies at once). A retiring
   * value yields no new credential: it cannot be refreshed or regenerated (RFC 9700 §4.14.2), and
   * nothing minted from it outlives the deadline.
   */
  gracePeriod?: number | undefined;
}

/** Input of {@link AppManagement.updateApp}: only these fields are editable. */
export type UpdateAppInput = AppPatch;

/** The result of creating an app: the app, its first token, and that token's value (shown once). */
export interface CreatedApp extends IssuedApiToken {
  app: AppView;
}

/** The result of creating a `private_key_jwt` app: no secret exists, so none is shown. */
export interface CreatedKeyApp {
  app: AppView;
  token: null;
  value: null;
  /** The registered public keys (none for a `jwksUri` app). */
  keys: ClientKeyView[];
}

/**
 * An app with the first page of its live API tokens' metadata; `tokensNextCursor` pages on through
 * `GET /apps/:id/tokens?cursor=` (`null`: that was all of them). `lockout`: the failed
 * authentications naming it (`null` when `clientLockout` is off).
 */
export type AppDetails = AppView & { tokens: ApiTokenView[]; tokensNextCursor: string | null; lockout: LockoutView | null };

/** One page of a listing with an opaque cursor for the next. */
export interface PageView<T> {
  items: T[];
  nextCursor: string | null;
}

/** The orders of {@link AppManagement.listApps}: a key, descending with a leading `-`. */
export const APP_SORTS = ['created', '-created', 'name', '-name', 'lastUsed', '-lastUsed', 'usage', '-usage'] as const;
/** One of {@link APP_SORTS}. */
export type AppListSort = (typeof APP_SORTS)[number];

/** Options of {@link AppManagement.listApps} (`GET /apps` query, `auth.apps.list`). */
export interface ListAppsInput {
  /** Page size, 1–100; default 20. */
  limit?: number | undefined;
  /** `nextCursor` of the previous page, made for the same `sort`. */
  cursor?: string | undefined;
  /**
   * Default `created` (oldest first); `-created` is newest first, `-lastUsed` most recently used
   * first, `-usage` the most requests of the last 30 days first (the `usage.requests30d` of each item).
   */
  sort?: AppListSort | undefined;
  /** Name contains it (ASCII letters case-insensitively) or the client id starts with it; 1–200 characters. */
  search?: string | undefined;
  /** Only apps holding this scope as written (`storage:*` matches apps holding `storage:*`, not `storage:read`). */
  scope?: string | undefined;
  /** Only apps with this role. */
  role?: string | undefined;
  /** Only apps with a token (not revoked, not retiring) expiring within this many seconds, 1 – 10 years. */
  expiringWithin?: number | undefined;
  /** Only apps with a token expiring soon (the `expiryNotices` window the token views flag). */
  expiringSoon?: boolean | undefined;
  /**
   * Only apps whose lockout holds a throttled source now. Applied to each page the store returns
   * (lockout state is the rate limiter's, not a column): a page may be short or empty while
   * `nextCursor` is not null, and `total` is `null`.
   */
  locked?: boolean | undefined;
  /** Only apps older than this many days none of whose tokens was used in them (1–3650). */
  unusedFor?: number | undefined;
}

/** A page of {@link AppManagement.listApps}: `total` is how many apps match, `null` when not known (`locked`). */
export interface AppListPage extends PageView<AppListItem> {
  total: number | null;
}

/** Options of {@link AppManagement.listEvents}. */
export interface ListEventsInput {
  limit?: number | undefined;
  cursor?: string | undefined;
  /** Only events of these types (each one of {@link AUDIT_EVENT_TYPES}; empty: every type). */
  types?: readonly string[] | undefined;
}

const TENANT_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
/**
 * Every id this library makes (`app_…`, `tok_…`: 22 base62 characters after the prefix) fits, and
 * so do the ids of stores that make their own; a path id that does not is refused before any
 * lookup or audit event (issue 11, finding 5: 15,000-character ids were stored verbatim).
 */
export const ID_SHAPE = /^[A-Za-z0-9_-]{1,64}$/;
/** Refusal events recorded per caller per window; the rest are counted and reported with the next one. */
const REFUSALS_PER_WINDOW = 20;
const REFUSAL_WINDOW_MS = 60_000;
/** Tokens shown with an app (the first page of `GET /apps/:id/tokens`). */
const APP_VIEW_TOKENS = 50;
/** Marks an error that must not become an audit event (its input cannot name anything of ours). */
const UNRECORDED = Symbol('express-app-tokens.unrecorded');
const MAX_NAME = 100;
const MAX_DESCRIPTION = 1000;
const MAX_CUSTOM_CLAIMS_BYTES = 4096;
/** `GET /apps?expiringWithin=` bound: ten years, in seconds. */
const MAX_EXPIRING_WITHIN = 3650 * 86_400;
/** Page sizes: default and bound. */
export const PAGE_SIZE = { default: 20, max: 100 } as const;

export function invalid(field: string, message: string): AppTokensError {
  return new AppTokensError('validation_failed', `${field}: ${message}`, { field });
}

export function notFound(what: 'app' | 'token', id: string): AppTokensError {
  return new AppTokensError('not_found', `${what} ${printable(id)} not found`, { field: what === 'app' ? 'id' : 'tokenId' });
}

/** `not_found` for an id that cannot be one, without a lookup and without an audit event. */
export function checkId(id: unknown, what: 'app' | 'token'): string {
  if (typeof id === 'string' && ID_SHAPE.test(id)) return id;
  const error = notFound(what, typeof id === 'string' ? id : String(id));
  Object.defineProperty(error, UNRECORDED, { value: true });
  throw error;
}

/** Per-caller window of recorded refusals. */
interface RefusalWindow {
  start: number;
  recorded: number;
  suppressed: number;
  /** Whether this window's suppression was logged (once per caller per window). */
  logged: boolean;
}

export class AppManagement {
  readonly #s: AppTokensService;
  /** Refusal events per caller (tenant + actor), bounded. */
  readonly #refusals = new LRUCache<string, RefusalWindow>({ max: 10_000 });

  /** Personal tokens of host users (`/me/tokens`). */
  readonly personal: PersonalTokens;
  /** Public keys of private_key_jwt apps (`/apps/:id/keys`). */
  readonly keys: KeyManagement;

  constructor(service: AppTokensService) {
    this.#s = service;
    this.personal = new PersonalTokens(service, this);
    this.keys = new KeyManagement(service, this);
  }

  /** Create an app and its first API token. The value is returned once and never again. */
  createApp(p: Principal, input: CreateAppInput): Promise<CreatedApp | CreatedKeyApp> {
    return this.#audited(p, 'create_app', null, async () => {
      const tenantId = tenantOf(p);
      const now = this.#now();
      const scopes = input.scopes === undefined ? [] : this.scopeList(input.scopes, 'scopes');
      const roles = input.roles === undefined ? [] : this.#s.roles.checkAssignable(input.roles, p.scopes === null ? null : new GrantedScopes(p.scopes));
      if (scopes.length === 0 && roles.length === 0) {
        throw invalid(input.roles === undefined ? 'scopes' : 'roles', 'give at least one scope in "scopes" or one role in "roles"');
      }
      this.#assertMayGrant(p, scopes, 'scopes');
      const description = checkDescription(input.description);
      const method = input.tokenEndpointAuthMethod ?? 'client_secret_basic';
      if (!['client_secret_basic', 'client_secret_post', 'private_key_jwt'].includes(method)) {
        throw invalid('tokenEndpointAuthMethod', 'must be client_secret_basic, client_secret_post or private_key_jwt');
      }
      if (input.dpopBoundAccessTokens !== undefined && typeof input.dpopBoundAccessTokens !== 'boolean') throw invalid('dpopBoundAccessTokens', 'must be a boolean');
      const keyed = method === 'private_key_jwt';
      if (!keyed && input.jwks !== undefined) throw invalid('jwks', 'only for tokenEndpointAuthMethod private_key_jwt');
      if (!keyed && input.jwksUri !== undefined) throw invalid('jwksUri', 'only for tokenEndpointAuthMethod private_key_jwt');
      if (keyed && input.token !== undefined) throw invalid('token', 'a private_key_jwt app has no secret: register keys instead');
      if (keyed && (input.jwks === undefined) === (input.jwksUri === undefined)) throw invalid('jwks', 'a private_key_jwt app needs exactly one of "jwks" and "jwksUri"');
      if (input.jwksUri !== undefined) {
        const problem = typeof input.jwksUri === 'string' ? jwksUriProblem(input.jwksUri, this.#s.options.clientJwks.allowPrivateAddresses) : 'must be a URL string';
        if (problem) throw invalid('jwksUri', problem);
      }
      const parsedKeys = input.jwks !== undefined ? await this.keys.parseSet(input.jwks) : [];
      const app: AppRecord = {
        id: randomId('app'),
        tenantId,
        name: checkName(input.name, 'name'),
        description,
        scopes,
        roles,
        ownerUserId: null,
        tokenEndpointAuthMethod: method,
        jwksUri: input.jwksUri ?? null,
        dpopBoundAccessTokens: input.dpopBoundAccessTokens ?? false,
        customClaims: checkCustomClaims(input.customClaims),
        createdAt: now,
        updatedAt: now,
      };
      if (keyed) {
        const keys = parsedKeys.map((k) => this.keys.record(app.id, tenantId, k, now, null));
        await this.#s.options.store.createApp(app, [], { maxAppsPerTenant: this.#s.options.limits.appsPerTenant, keys });
        this.#event(p, 'app.created', app.id, null, { name: app.name, scopes: app.scopes, method, ...(roles.length > 0 ? { roles } : {}) });
        return { app: this.#appView(app), token: null, value: null, keys: await Promise.all(keys.map((k) => clientKeyView(k, now))) };
      }
      const { record, value } = this.#newToken(app, input.token ?? {}, 'token.', now);
      await this.#s.options.store.createApp(app, [record], { maxAppsPerTenant: this.#s.options.limits.appsPerTenant });
      this.#event(p, 'app.created', app.id, null, { name: app.name, scopes: app.scopes, ...(roles.length > 0 ? { roles } : {}) });
      this.#event(p, 'token.created', app.id, record.id, { name: record.name });
      return { app: this.#appView(app), token: this.tokenView(record, now), value };
    });
  }

  /**
   * Apps of the caller's tenant, each with a summary of its tokens, oldest first unless `sort` says
   * otherwise, and how many match (`total`). Filters combine (every one given must hold); each bad
   * value is `validation_failed` naming its field. See {@link ListAppsInput}.
   *
   * @example
   * ```ts
   * await management.listApps(principal, { sort: '-lastUsed', scope: 'storage:read', unusedFor: 30 });
   * ```
   */
  listApps(p: Principal, options: ListAppsInput = {}): Promise<AppListPage> {
    return this.#audited(p, 'list_apps', null, async () => {
      const tenantId = tenantOf(p);
      const now = this.#now();
      const within = options.expiringWithin;
      if (within !== undefined && (!Number.isSafeInteger(within) || within < 1 || within > MAX_EXPIRING_WITHIN)) {
        throw invalid('expiringWithin', `must be a whole number of seconds from 1 to ${MAX_EXPIRING_WITHIN}`);
      }
      if (options.expiringSoon !== undefined && typeof options.expiringSoon !== 'boolean') throw invalid('expiringSoon', 'must be true or false');
      if (options.locked !== undefined && typeof options.locked !== 'boolean') throw invalid('locked', 'must be true or false');
      const before = [
        ...(within !== undefined ? [now.getTime() + within * 1000] : []),
        ...(options.expiringSoon === true ? [this.#soonBefore(now).getTime()] : []),
      ];
      const unusedFor = options.unusedFor;
      if (unusedFor !== undefined && (!Number.isSafeInteger(unusedFor) || unusedFor < 1 || unusedFor > 3650)) {
        throw invalid('unusedFor', 'must be a whole number of days from 1 to 3650');
      }
      const query: ListAppsOptions = {
        limit: checkLimit(options.limit),
        cursor: options.cursor,
        ...(before.length > 0 ? { expiring: { after: now, before: new Date(Math.min(...before)) } } : {}),
        ...(options.search !== undefined ? { search: checkSearch(options.search) } : {}),
        ...(options.scope !== undefined ? { scope: checkFilterToken(options.scope, 'scope') } : {}),
        ...(options.role !== undefined ? { role: checkFilterToken(options.role, 'role') } : {}),
        ...(unusedFor !== undefined ? { unusedSince: new Date(now.getTime() - unusedFor * 86_400_000) } : {}),
        sort: parseAppSort(options.sort, () => ({ since: this.#s.usage.summaryWindows().since30d, metrics: REQUEST_METRICS })),
      };
      const { store } = this.#s.options;
      // Uses not yet flushed count too, for the last-used sort and filter as for the summary (a
      // failed flush is kept for the next one; the listing goes on).
      await this.#s.lastUsed.flush().catch(unlessUnavailable);
      const { lockout } = this.#s;
      if (options.locked === true && !lockout) return { items: [], nextCursor: null, total: 0 };
      // Sorting by usage reads the counts from the store: this instance's unflushed ones first.
      if (query.sort?.by === 'usage') await this.#s.usage.flush().catch(unlessUnavailable);
      const page = await store.listApps(tenantId, query);
      let apps = page.items;
      if (options.locked === true && lockout) {
        // Lockout state lives in the rate limiter's counters, not in the store: the filter applies
        // to the page the store returned, so a page may hold fewer than `limit` apps (even none)
        // while nextCursor is not null, and the total is not known.
        const states = await Promise.all(apps.map((a) => lockout.state(a.id)));
        apps = apps.filter((_, i) => states[i]!.until !== null);
      }
      const ids = apps.map((a) => a.id);
      // Counts not yet flushed by this instance show too (a failed flush is kept; the listing goes on).
      await this.#s.usage.flush().catch(unlessUnavailable);
      const [summaries, usage] = await Promise.all([
        store.summarizeApiTokens(tenantId, ids, { now, soonBefore: this.#soonBefore(now) }),
        store.summarizeUsage(tenantId, ids, this.#s.usage.summaryWindows()),
      ]);
      return {
        items: apps.map((a) => {
          const summary = summaries.get(a.id);
          return {
            ...this.#appView(a),
            tokenSummary: {
              active: summary?.active ?? 0,
              expiringSoon: summary?.expiringSoon ?? 0,
              lastUsedDate: summary?.lastUsedAt?.toISOString() ?? null,
            },
            usage: UsageCounter.summary(usage.get(a.id)),
          };
        }),
        nextCursor: page.nextCursor,
        total: options.locked === true ? null : (page.total ?? null),
      };
    });
  }

  /** The app with its live tokens' metadata; `not_found` for another tenant's app. */
  getApp(p: Principal, appId: string): Promise<AppDetails> {
    return this.#audited(p, 'get_app', appId, async () => {
      const app = await this.#app(p, appId);
      const [page, lockout] = await Promise.all([this.liveTokensOf(app, { limit: APP_VIEW_TOKENS }), this.#s.lockout?.state(app.id)]);
      return { ...this.#appView(app), tokens: page.items, tokensNextCursor: page.nextCursor, lockout: lockout ? lockoutView(lockout) : null };
    });
  }

  /**
   * Clear the app's lockout: its failure tally, and every source throttled for its client id, on
   * every instance at once. Acting on the app: the caller must hold its scopes. Audited as
   * `app.lockout_cleared` with what was cleared. Throttles of a source over all client ids stay.
   */
  clearLockout(p: Principal, appId: string): Promise<void> {
    return this.#audited(p, 'clear_lockout', appId, async () => {
      const app = await this.#app(p, appId);
      this.assertMayActOn(p, app);
      const { lockout } = this.#s;
      const before = lockout ? await lockout.state(app.id) : undefined;
      await lockout?.clear(app.id);
      this.#event(p, 'app.lockout_cleared', app.id, null, before ? { failures: before.failures, throttledSources: before.throttledSources } : {});
    });
  }

  /** Edit `name`, `description`, `customClaims`. New access tokens carry the new claims. */
  updateApp(p: Principal, appId: string, input: UpdateAppInput): Promise<AppView> {
    return this.#audited(p, 'update_app', appId, async () => {
      const patch: AppPatch = {};
      if ('scopes' in input) throw invalid('scopes', 'fixed at creation; create a new app for other scopes');
      if ('roles' in input) throw invalid('roles', 'fixed at creation; create a new app for other roles');
      if (input.name !== undefined) patch.name = checkName(input.name, 'name');
      if (input.description !== undefined) patch.description = checkDescription(input.description);
      if (input.customClaims !== undefined) patch.customClaims = checkCustomClaims(input.customClaims);
      if (Object.keys(patch).length === 0) throw invalid('body', 'give at least one of name, description, customClaims');
      this.assertMayActOn(p, await this.#app(p, appId));
      const app = await this.#s.options.store.updateApp(tenantOf(p), appId, patch, this.#now());
      if (!app) throw notFound('app', appId);
      this.#s.forgetClient(app.id);
      this.#event(p, 'app.updated', app.id, null, { fields: Object.keys(patch) });
      return this.#appView(app);
    });
  }

  /** Delete an app: every token of it, and every access token they minted, dies at once. */
  deleteApp(p: Principal, appId: string): Promise<void> {
    return this.#audited(p, 'delete_app', appId, async () => {
      const tenantId = tenantOf(p);
      this.assertMayActOn(p, await this.#app(p, appId));
      const deleted = await this.#s.options.store.deleteApp(tenantId, appId, this.#s.tombstone('app', appId, tenantId));
      if (!deleted) throw notFound('app', appId);
      this.#event(p, 'app.deleted', appId, null, {});
    });
  }

  /** One page of the metadata of the app's live (unrevoked) tokens, oldest first; never a value. */
  listTokens(
    p: Principal,
    appId: string,
    options: { limit?: number | undefined; cursor?: string | undefined } = {},
  ): Promise<PageView<ApiTokenView>> {
    return this.#audited(p, 'list_tokens', appId, async () =>
      this.liveTokensOf(await this.#app(p, appId), { limit: checkLimit(options.limit), cursor: options.cursor }),
    );
  }

  /** Issue another API token. The caller must hold every scope the token will carry. */
  createToken(p: Principal, appId: string, input: CreateTokenInput = {}): Promise<IssuedApiToken> {
    return this.#audited(p, 'create_token', appId, async () => {
      const app = await this.#app(p, appId);
      // A token carries the app's identity: issuing one acts on the app, whatever its own scopes.
      this.assertMayActOn(p, app);
      if (app.tokenEndpointAuthMethod === 'private_key_jwt') {
        throw new AppTokensError('conflict', `id: app ${printable(app.id)} authenticates with private_key_jwt and has no secret; add a key instead`, { field: 'id' });
      }
      const now = this.#now();
      const { record, value } = this.#newToken(app, input, '', now);
      this.#assertMayGrant(p, record.scopes ?? this.#s.roles.scopesOf(app), 'scopes');
      await this.#s.options.store.createApiToken(record, { maxActive: this.#s.options.limits.tokensPerApp });
      this.#event(p, 'token.created', app.id, record.id, { name: record.name });
      return { token: this.tokenView(record, now), value };
    });
  }

  /**
   * A new value for a token: same name, scopes and lifetime (a fresh expiry), a new id; the old
   * value and every access token it minted die in the same atomic step.
   */
  regenerateToken(p: Principal, appId: string, tokenId: string, options: RegenerateTokenInput = {}): Promise<IssuedApiToken> {
    return this.#audited(p, 'regenerate_token', appId, async () => {
      const grace = checkGracePeriod(options.gracePeriod);
      const app = await this.#app(p, appId);
      this.assertMayActOn(p, app);
      const old = await this.#liveToken(app, tokenId);
      if (old.replacedBy !== null) throw retiringConflict(tokenId);
      // An expired token is dead everywhere (refresh refuses it too): a new value must not revive it.
      if (old.expiresAt !== null && old.expiresAt <= this.#now()) {
        throw new AppTokensError('conflict', `tokenId: token ${printable(tokenId)} expired at ${old.expiresAt.toISOString()}; issue a new token or delete it`, {
          field: 'tokenId',
        });
      }
      this.#assertMayGrant(p, old.scopes ?? this.#s.roles.scopesOf(app), 'scopes');
      const retireAt = grace > 0 ? new Date(this.#now().getTime() + grace * 1000) : undefined;
      const { record, value, swapped } = await this.#swap(old, 'regenerated', retireAt);
      if (!swapped) {
        // The store refuses a retiring token in the same write (a concurrent regeneration won): say so.
        const now = await this.#s.options.store.getApiToken(app.tenantId, tokenId);
        if (now !== undefined && now.revokedAt === null && now.replacedBy !== null) throw retiringConflict(tokenId);
        throw notFound('token', tokenId);
      }
      // The old record's expiry just moved: this process forgets the copy it may hold, so that
      // access tokens minted from it meanwhile never outlive the deadline (the deadline's tombstone
      // kills them everywhere in any case; another instance's copy is at most clientCacheTtl old).
      if (retireAt) this.#s.forgetClient(app.id);
      this.#event(p, 'token.regenerated', app.id, record.id, {
        previousTokenId: old.id,
        ...(retireAt ? { gracePeriod: grace, previousRetiresAt: retireAt.toISOString() } : {}),
      });
      return { token: this.tokenView(record, this.#now()), value };
    });
  }

  /** Delete an API token: it and the access tokens it minted die at once. */
  deleteToken(p: Principal, appId: string, tokenId: string): Promise<void> {
    return this.#audited(p, 'delete_token', appId, async () => {
      const app = await this.#app(p, appId);
      this.assertMayActOn(p, app);
      await this.#liveToken(app, tokenId);
      const revoked = await this.#s.options.store.revokeApiTokens(
        app.tenantId,
        [tokenId],
        'deleted',
        [this.#s.tombstone('api_token', tokenId, app.tenantId)],
        this.#now(),
      );
      if (revoked.length === 0) throw notFound('token', tokenId);
      this.#event(p, 'token.deleted', app.id, tokenId, {});
    });
  }

  /** The app's audit log, newest first; with `types`, only events of those types. */
  listEvents(p: Principal, appId: string, options: ListEventsInput = {}): Promise<PageView<AuditEvent>> {
    return this.#audited(p, 'list_events', appId, async () => {
      const types = options.types === undefined ? undefined : checkEventTypes(options.types);
      const app = await this.#app(p, appId);
      await this.#s.events.flush();
      const page = await this.#s.options.store.listEvents(app.tenantId, app.id, {
        limit: checkLimit(options.limit),
        cursor: options.cursor,
        ...(types ? { types } : {}),
      });
      return { items: page.items.map(eventView), nextCursor: page.nextCursor };
    });
  }

  /**
   * The app's usage series (issue 24): grants, bearer requests accepted and refused by reason,
   * 429s, client-authentication failures and refreshes per hour or UTC day, zero-filled; with
   * `byToken`, also one series per credential. An hourly range spans at most 168 hours, a daily
   * one at most `usage.retention`; default: the last 24 hours. `validation_failed` naming `from`,
   * `to`, `interval` or `byToken`; `not_found` for another tenant's app.
   *
   * @example
   * ```ts
   * await management.usage(principal, appId, { from: '2026-12-01T00:00:00Z', to: '2026-12-08T00:00:00Z', interval: 'day' });
   * ```
   */
  usage(p: Principal, appId: string, query: UsageQueryInput = {}): Promise<UsageSeries> {
    return this.#audited(p, 'get_usage', appId, async () => {
      const q = this.#s.usage.parseQuery(query);
      const app = await this.#app(p, appId);
      // This instance's counts not yet flushed show too.
      await this.#s.usage.flush().catch(unlessUnavailable);
      const rows = await this.#s.options.store.readUsage(app.tenantId, app.id, { from: new Date(q.from), to: new Date(q.to), interval: q.interval });
      return UsageCounter.series(rows, q);
    });
  }

  /**
   * Rotate an API token with itself as the credential (`POST /tokens/refresh`): a new token with
   * the old one's name, scopes and lifetime and a fresh expiry, the old one dead in the
   * same compare-and-swap. Of concurrent refreshes of one token exactly one wins. Presenting a
   * token that was already refreshed (after the race window) revokes its whole family: every
   * token it was refreshed into, onwards. Every failure is `invalid_grant`.
   */
  async refresh(clientId: string, value: string, source?: string): Promise<IssuedApiToken & { appName: string }> {
    const { store } = this.#s.options;
    const actorId = clientId.slice(0, 128);
    const { lockout } = this.#s;
    // The refresh token is the client's secret: failures throttle the request's source (req.ip) for
    // this client id, never the client id itself (issue 21 item 3).
    const from = sourceKey(source);
    await lockout?.assertOpen(from, actorId);
    const refused = async (reason: string, token?: ApiTokenRecord): Promise<never> => {
      if (token) {
        this.#s.events.emit({
          type: 'token.refresh_refused',
          outcome: 'failure',
          tenantId: token.tenantId,
          appId: token.appId,
          tokenId: token.id,
          actorId,
          data: { reason },
        });
      }
      // A lost race, or a retry within the race window, is the client's own, with the right secret.
      if (reason !== 'raced' && reason !== 'refreshed') await lockout?.failed(from, actorId);
      throw new AppTokensError('invalid_grant', 'refresh_token: not a valid API token of this client', {
        field: 'refresh_token',
      });
    };
    if (!this.#s.secrets.isWellFormed(value)) return refused('malformed');
    const token = await store.findApiTokenByHash(hashSecret(value));
    if (!token || token.appId !== clientId) return refused('unknown');
    const now = this.#now();
    if (token.revokedAt !== null) {
      if (await this.#s.reuse.presented(token, 'refresh', clientId)) {
        await lockout?.failed(from, actorId);
        throw new AppTokensError(
          'invalid_grant',
          'refresh_token: this token was already refreshed; every token refreshed from it has been revoked',
          { field: 'refresh_token' },
        );
      }
      return refused(token.revokedReason ?? 'revoked', token);
    }
    if (token.expiresAt !== null && token.expiresAt <= now) return refused('expired', token);
    // RFC 9700 §4.14.2: a rotated-out credential never yields a new one. Not counted towards the
    // lockout: the value is the client's own, and still works until its deadline.
    const retiring = (t: ApiTokenRecord): never => {
      this.#s.events.emit({
        type: 'token.refresh_refused',
        outcome: 'failure',
        tenantId: t.tenantId,
        appId: t.appId,
        tokenId: t.id,
        actorId,
        data: { reason: 'retiring' },
      });
      const until = t.expiresAt === null ? '' : ` and retires at ${t.expiresAt.toISOString()}`;
      throw new AppTokensError('invalid_grant', `refresh_token: this token is retiring (it was regenerated${until}); a retiring token cannot be refreshed: use its successor`, {
        field: 'refresh_token',
      });
    };
    if (token.replacedBy !== null) return retiring(token);
    const app = await store.getApp(token.tenantId, token.appId);
    if (!app) return refused('unknown', token);
    // A personal token dies with its user (management.userScopes answers null).
    if (app.ownerUserId && (await this.#s.userScopes.get(app.tenantId, app.ownerUserId)) === null) return refused('user_gone', token);
    const { record, value: newValue, swapped } = await this.#swap(token, 'refreshed');
    if (!swapped) {
      // Lost the compare-and-swap: to a concurrent refresh, or to a regeneration that made it retiring.
      const current = await store.getApiToken(token.tenantId, token.id);
      if (current !== undefined && current.revokedAt === null && current.replacedBy !== null) return retiring(current);
      return refused('raced', token);
    }
    this.#s.events.emit({
      type: 'token.refreshed',
      tenantId: token.tenantId,
      appId: token.appId,
      tokenId: record.id,
      actorId: clientId,
      data: { previousTokenId: token.id },
    });
    this.#s.signals.refreshed({ tenantId: token.tenantId, appId: token.appId, apiTokenId: record.id });
    return { token: this.tokenView(record, now), value: newValue, appName: app.name };
  }

  // ---- helpers ----------------------------------------------------------------------------------

  #now(): Date {
    return this.#s.options.advanced.now();
  }

  /** Record a refused management call (a 4xx) as a `management.refused` event of the caller's tenant. */
  recordRefusal(p: Principal, action: string, appId: string | null, error: unknown): void {
    if (!(error instanceof AppTokensError) || error.status >= 500 || !TENANT_ID.test(p.tenantId)) return;
    if ((error as { [UNRECORDED]?: boolean })[UNRECORDED]) return;
    // Any bearer of the tenant can provoke refusals: a bounded number per caller per minute reach
    // the audit log; the rest are counted and reported with the next one recorded.
    const key = `${p.tenantId}\u0000${p.actorId ?? ''}`;
    const nowMs = this.#now().getTime();
    let w = this.#refusals.get(key);
    if (w === undefined || nowMs - w.start >= REFUSAL_WINDOW_MS) {
      w = { start: nowMs, recorded: 0, suppressed: w?.suppressed ?? 0, logged: false };
      this.#refusals.set(key, w);
    }
    if (w.recorded >= REFUSALS_PER_WINDOW) {
      w.suppressed++;
      if (!w.logged) {
        // One line per caller per window, so that the operator sees the flood the log does not hold.
        w.logged = true;
        this.#s.log.warn(
          { tenantId: p.tenantId, actorId: p.actorId, recorded: REFUSALS_PER_WINDOW, windowSeconds: REFUSAL_WINDOW_MS / 1000 },
          'management refusals of this caller are no longer audited until the window ends; the next audited one carries data.suppressedBefore',
        );
      }
      return;
    }
    w.recorded++;
    const suppressed = w.suppressed;
    w.suppressed = 0;
    this.#s.events.emit({
      type: 'management.refused',
      outcome: 'failure',
      tenantId: p.tenantId,
      appId: appId !== null && ID_SHAPE.test(appId) ? appId : null,
      actorId: p.actorId,
      data: { action, code: error.code, ...(error.field ? { field: error.field } : {}), ...(suppressed > 0 ? { suppressedBefore: suppressed } : {}) },
    });
  }

  /** Run a management action; a refusal is recorded. */
  audited<T>(p: Principal, action: string, appId: string | null, fn: () => Promise<T>): Promise<T> {
    return this.#audited(p, action, appId, fn);
  }

  async #audited<T>(p: Principal, action: string, appId: string | null, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      this.recordRefusal(p, action, appId, error);
      throw error;
    }
  }

  #event(p: Principal, type: 'app.created' | 'app.updated' | 'app.deleted' | 'app.lockout_cleared' | 'token.created' | 'token.regenerated' | 'token.deleted', appId: string, tokenId: string | null, data: Record<string, unknown>): void {
    this.#s.events.emit({ type, tenantId: p.tenantId, appId, tokenId, actorId: p.actorId, data });
  }

  #appView(app: AppRecord): AppView {
    return appView(app, this.#viewContext);
  }

  readonly #viewContext: ViewContext = {
    knows: (s) => this.#s.catalogue.knows(s),
    hasRole: (name) => this.#s.roles.get(name) !== undefined,
    effectiveScopes: (app) => this.#s.roles.scopesOf(app),
  };

  /** The end of the "expiring soon" window (the widest expiry-notice threshold) from `now`. */
  #soonBefore(now: Date): Date {
    return new Date(now.getTime() + this.#s.expiry.soonSeconds * 1000);
  }

  /** A token's public view as of `now` (with its "expiring soon" flag). */
  tokenView(token: ApiTokenRecord, now: Date): ApiTokenView {
    return tokenView(token, now, this.#soonBefore(now));
  }

  /** An app of the caller's tenant (`not_found` otherwise, and for a personal client). */
  appOf(p: Principal, appId: string): Promise<AppRecord> {
    return this.#app(p, appId);
  }

  /** An app of the caller's tenant; a personal client is not an app (`not_found`). */
  async #app(p: Principal, appId: string): Promise<AppRecord> {
    checkId(appId, 'app');
    const app = await this.#s.options.store.getApp(tenantOf(p), appId);
    if (!app || app.ownerUserId) throw notFound('app', appId);
    return app;
  }

  async #liveToken(app: AppRecord, tokenId: string): Promise<ApiTokenRecord> {
    checkId(tokenId, 'token');
    const token = await this.#s.options.store.getApiToken(app.tenantId, tokenId);
    if (!token || token.appId !== app.id || token.revokedAt !== null) throw notFound('token', tokenId);
    return token;
  }

  /** One page of the app's live tokens as views (unflushed last uses included). */
  async liveTokensOf(app: AppRecord, options: { limit: number; cursor?: string | undefined }): Promise<PageView<ApiTokenView>> {
    const page = await this.#s.options.store.listActiveApiTokens(app.tenantId, app.id, options);
    const now = this.#now();
    return {
      // A token that retired after a grace period has been replaced: it is no longer listed.
      items: page.items.filter((t) => !(t.replacedBy !== null && t.expiresAt !== null && t.expiresAt <= now)).map((t) => {
        // Uses not yet flushed count too: the batch is a write optimisation, not a delay users see.
        const pending = this.#s.lastUsed.pending(t.id);
        return this.tokenView(pending && (!t.lastUsedAt || pending > t.lastUsedAt) ? { ...t, lastUsedAt: pending } : t, now);
      }),
      nextCursor: page.nextCursor,
    };
  }

  /**
   * Acting on an app (edit, delete, issue or regenerate a token, delete a token) requires holding
   * every scope it holds, wildcards respected (issue 11, finding 3): otherwise a delegate with
   * `apps:write` alone could rewrite an admin app's claims or mint a credential carrying its identity.
   * Scopes the catalogue no longer declares do not count: no token can carry them.
   */
  assertMayActOn(p: Principal, app: AppRecord): void {
    if (p.scopes === null) return;
    const missing = new GrantedScopes(p.scopes).missing(this.#s.roles.scopesOf(app));
    if (missing.length > 0) {
      throw new AppTokensError(
        'forbidden',
        `scopes: you cannot act on app ${printable(app.id)}: it holds ${missing.map((s) => `'${printable(s)}'`).join(', ')}, which you do not hold`,
        { field: 'scopes' },
      );
    }
  }

  /** Nobody grants a scope they do not hold (wildcards respected). */
  #assertMayGrant(p: Principal, scopes: readonly string[], field: string): void {
    if (p.scopes === null) return;
    const missing = new GrantedScopes(p.scopes).missing(scopes);
    if (missing.length > 0) {
      throw new AppTokensError('forbidden', `${field}: you cannot grant ${missing.map((s) => `'${printable(s)}'`).join(', ')}, which you do not hold`, {
        field,
      });
    }
  }

  /** A list of catalogue scopes (or wildcards), deduplicated; 400 naming `field[i]` otherwise. */
  scopeList(value: unknown, field: string): string[] {
    if (!Array.isArray(value)) throw invalid(field, 'must be an array of scopes');
    value.forEach((s, i) => {
      if (typeof s !== 'string') throw invalid(`${field}[${i}]`, 'must be a string');
    });
    this.#s.catalogue.assertKnown(value as string[], field, 'validation_failed');
    return [...new Set(value as string[])];
  }

  #newToken(app: AppRecord, input: CreateTokenInput, prefix: string, now: Date): { record: ApiTokenRecord; value: string } {
    const ttl = this.lifetime(input.expiresIn, `${prefix}expiresIn`);
    let scopes: string[] | null = null;
    if (input.scopes !== undefined) {
      scopes = this.scopeList(input.scopes, `${prefix}scopes`);
      if (scopes.length === 0) throw invalid(`${prefix}scopes`, 'must list at least one scope, or be omitted for all of the app’s');
      const missing = new GrantedScopes(this.#s.roles.scopesOf(app)).missing(scopes);
      if (missing.length > 0) {
        throw invalid(`${prefix}scopes`, `not within the app's scopes: ${missing.map(printable).join(' ')}`);
      }
    }
    const name = input.name === undefined ? 'default' : checkName(input.name, `${prefix}name`);
    return this.newRecord(app.id, app.tenantId, name, scopes, now, ttl === null ? null : new Date(now.getTime() + ttl * 1000));
  }

  /** A requested token lifetime in seconds (`apiTokenTtl` default and bound); `null`: no expiry. */
  lifetime(expiresIn: number | undefined, field: string): number | null {
    const { apiTokenTtl } = this.#s.options;
    if (expiresIn === undefined) return apiTokenTtl.default;
    if (!Number.isSafeInteger(expiresIn) || expiresIn < 60 || expiresIn > apiTokenTtl.max) {
      throw invalid(field, `must be a whole number of seconds between 60 and ${apiTokenTtl.max}`);
    }
    return expiresIn;
  }

  /**
   * Replace a token (regenerate, refresh) in one compare-and-swap: the successor has the same app,
   * name, scopes and lifetime, a new id and value, and a fresh expiry — so a lifetime never
   * shrinks across rotations; the old token dies with its access tokens (its tombstone).
   */
  async #swap(
    old: ApiTokenRecord,
    reason: 'regenerated' | 'refreshed',
    retireAt?: Date,
  ): Promise<{ record: ApiTokenRecord; value: string; swapped: boolean }> {
    const now = this.#now();
    // A retiring token never gets here (the store refuses it too): its expiry is still its own.
    const lifetime = old.expiresAt === null ? null : old.expiresAt.getTime() - old.createdAt.getTime();
    const expiresAt = lifetime === null ? null : new Date(now.getTime() + lifetime);
    const { record, value } = this.newRecord(old.appId, old.tenantId, old.name, old.scopes, now, expiresAt);
    const swapped = await this.#s.options.store.replaceApiToken({
      tenantId: old.tenantId,
      oldId: old.id,
      expectedHash: old.hash,
      reason,
      replacement: record,
      // With a grace period the tombstone takes effect at the deadline: then the old value and every
      // access token it minted die, on every instance, whatever their own expiry.
      tombstone: this.#s.tombstone('api_token', old.id, old.tenantId, retireAt),
      ...(retireAt ? { retireAt } : {}),
    });
    return { record, value, swapped };
  }

  /** A new API-token record and its value (shown once), for an app or a personal client. */
  newRecord(
    appId: string,
    tenantId: string,
    name: string,
    scopes: string[] | null,
    createdAt: Date,
    expiresAt: Date | null,
  ): { record: ApiTokenRecord; value: string } {
    const secret = this.#s.secrets.generate();
    return {
      value: secret.value,
      record: {
        id: randomId('tok'),
        appId,
        tenantId,
        name,
        hash: secret.hash,
        hint: secret.hint,
        scopes: scopes ? [...scopes] : null,
        createdAt,
        expiresAt,
        lastUsedAt: null,
        revokedAt: null,
        revokedReason: null,
        replacedBy: null,
      },
    };
  }
}

export function tenantOf(p: Principal): string {
  if (typeof p.tenantId !== 'string' || !TENANT_ID.test(p.tenantId)) {
    throw invalid('tenantId', 'must be 1–128 letters, digits, ".", "_", ":" or "-", starting with a letter or digit');
  }
  return p.tenantId;
}

/** A retiring token (regenerated with a grace period) is never regenerated again: 409 naming it. */
function retiringConflict(tokenId: string): AppTokensError {
  return new AppTokensError('conflict', `tokenId: token ${printable(tokenId)} is retiring (already regenerated); regenerate its successor`, {
    field: 'tokenId',
  });
}

function checkGracePeriod(value: unknown): number {
  if (value === undefined) return 0;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > 86_400) {
    throw invalid('gracePeriod', 'must be a whole number of seconds from 0 to 86400');
  }
  return value;
}

export function checkLimit(limit: number | undefined): number {
  if (limit === undefined) return PAGE_SIZE.default;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > PAGE_SIZE.max) {
    throw invalid('limit', `must be a whole number from 1 to ${PAGE_SIZE.max}`);
  }
  return limit;
}

/** Every {@link AuditEventType}, for `?type=` (the check below fails to compile when one is missing). */
export const AUDIT_EVENT_TYPES = [
  'app.created',
  'app.updated',
  'app.deleted',
  'app.lockout_cleared',
  'token.created',
  'token.regenerated',
  'token.refreshed',
  'token.deleted',
  'token.reuse_detected',
  'token.refresh_refused',
  'token.expiring',
  'key.added',
  'key.deleted',
  'access_token.issued',
  'access_token.refused',
  'access_token.revoked',
  'management.refused',
  'token.leaked',
] as const satisfies readonly AuditEventType[];
type MissingEventType = Exclude<AuditEventType, (typeof AUDIT_EVENT_TYPES)[number]>;
const everyEventType: [MissingEventType] extends [never] ? true : MissingEventType = true;
void everyEventType;

function checkEventTypes(value: readonly unknown[]): AuditEventType[] {
  if (!Array.isArray(value) || value.length > AUDIT_EVENT_TYPES.length) throw invalid('type', 'must be a list of event types');
  for (const [i, t] of value.entries()) {
    if (typeof t !== 'string' || !(AUDIT_EVENT_TYPES as readonly string[]).includes(t)) {
      throw invalid(value.length > 1 ? `type[${i}]` : 'type', `must be one of ${AUDIT_EVENT_TYPES.join(', ')}`);
    }
  }
  return value as AuditEventType[];
}

/**
 * The `catch` of a flush a read does first so that its answer includes this instance's unflushed
 * writes: any failure is kept for the next flush and the read goes on, except an unreachable
 * store, which the read would then wait for again (one more deadline): it answers 503 at once.
 */
function unlessUnavailable(error: unknown): undefined {
  if (error instanceof AppTokensError && error.code === 'unavailable') throw error;
  return undefined;
}

function parseAppSort(value: unknown, usage: () => NonNullable<AppSort['usage']>): AppSort {
  if (value === undefined) return { by: 'created', order: 'asc' };
  if (typeof value !== 'string' || !(APP_SORTS as readonly string[]).includes(value)) {
    throw invalid('sort', `must be one of ${APP_SORTS.join(', ')}`);
  }
  const by = value.replace(/^-/, '') as AppSort['by'];
  return { by, order: value.startsWith('-') ? 'desc' : 'asc', ...(by === 'usage' ? { usage: usage() } : {}) };
}

/**
 * The usage metrics under which a request is counted once, where it entered (the rule of
 * `requests30d` in `core/usage.ts`): what `sort=usage` sums. A refusal after acceptance (a missing
 * scope) and a 429 are not requests of their own.
 */
const REQUEST_METRICS: readonly string[] = [
  'accepted',
  'refreshed',
  'client_auth_failed',
  ...['client_credentials', 'token_exchange', 'other'].map((g) => `grant:${g}`),
  ...BEARER_REFUSALS.filter((r) => r !== 'insufficient_scope').map((r) => `refused:${r}`),
];

function checkSearch(value: unknown): string {
  if (typeof value !== 'string' || value.length < 1 || value.length > 200) throw invalid('search', 'must be 1 to 200 characters');
  checkText(value, 'search');
  return value.normalize('NFC');
}

/** A scope or role to filter by: the printable token characters of RFC 6749 §3.3, at most 128. */
function checkFilterToken(value: unknown, field: 'scope' | 'role'): string {
  if (typeof value !== 'string' || !/^[\x21\x23-\x5b\x5d-\x7e]{1,128}$/.test(value)) {
    throw invalid(field, `must be one ${field} name (printable ASCII without spaces, quotes or backslashes, at most 128 characters)`);
  }
  return value;
}

/**
 * Text that reads one way and displays another (Trojan Source, CVE-2021-42574): the bidi embedding,
 * override and isolate controls; the byte-order mark; and lone surrogates, which are not text.
 */
const BIDI_CONTROLS = /[\u202a-\u202e\u2066-\u2069\ufeff]/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function checkText(value: string, field: string): void {
  if (LONE_SURROGATE.test(value)) throw invalid(field, 'must be valid Unicode text (a lone surrogate was found)');
  if (BIDI_CONTROLS.test(value)) throw invalid(field, 'must not contain bidirectional controls (U+202A–U+202E, U+2066–U+2069) or a BOM');
}

/** A name: trimmed, NFC-normalised (one spelling per name), printable, short. */
export function checkName(value: unknown, field: string): string {
  if (typeof value !== 'string') throw invalid(field, 'must be a string');
  checkText(value, field);
  const name = value.normalize('NFC').trim();
  if (name.length === 0 || name.length > MAX_NAME) throw invalid(field, `must be 1–${MAX_NAME} characters`);
  if (/[\x00-\x1f\x7f-\x9f]/.test(name)) throw invalid(field, 'must not contain control characters');
  return name;
}

function checkDescription(value: unknown): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string') throw invalid('description', 'must be a string or null');
  checkText(value, 'description');
  const text = value.normalize('NFC');
  if (text.length > MAX_DESCRIPTION) throw invalid('description', `must be at most ${MAX_DESCRIPTION} characters`);
  return text;
}

/** Custom claims: a small JSON object that cannot override registered or library claims. */
function checkCustomClaims(value: unknown): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw invalid('customClaims', 'must be a JSON object');
  let json: string;
  try {
    json = JSON.stringify(value);
  } catch {
    throw invalid('customClaims', 'must be a JSON object');
  }
  if (Buffer.byteLength(json) > MAX_CUSTOM_CLAIMS_BYTES) {
    throw invalid('customClaims', `must be at most ${MAX_CUSTOM_CLAIMS_BYTES} bytes of JSON`);
  }
  for (const key of Object.keys(value)) {
    if (RESERVED_CLAIMS.has(key)) throw invalid(`customClaims.${key}`, 'is a registered claim and cannot be set');
  }
  return JSON.parse(json) as Record<string, unknown>;
}
