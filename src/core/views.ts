/**
 * Public shapes of records: what the management API and the programmatic API return.
 * Never a hash, never a value.
 *
 * @module
 */
import type { ApiTokenRecord, AppRecord } from '../store.js';
import type { LockoutState } from './limits.js';
import type { UsageSummary } from './usage.js';

/** An app as shown to its managers. */
export interface AppView {
  id: string;
  /** Same as `id`: the OAuth 2.0 `client_id`. */
  clientId: string;
  tenantId: string;
  name: string;
  description: string | null;
  scopes: string[];
  /** Names of the host-declared roles the app was given at creation (fixed). */
  roles: string[];
  /** How it authenticates at the token endpoint (RFC 7591 §2): a client secret, or `private_key_jwt`. */
  tokenEndpointAuthMethod: 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';
  /** `private_key_jwt` with published keys: their URL; otherwise `null`. */
  jwksUri: string | null;
  /** Every access token must be DPoP-bound (RFC 9449 §5). */
  dpopBoundAccessTokens: boolean;
  /** Role names the host no longer declares (normally empty): they grant nothing. */
  unknownRoles: string[];
  /**
   * What the app's tokens may carry today: its scopes and those of its roles as the host defines
   * them now, within the catalogue.
   */
  effectiveScopes: string[];
  /**
   * Stored scopes the current catalogue no longer declares (normally empty): no token carries
   * them. Recreate the app, or declare the scope again.
   */
  unknownScopes: string[];
  customClaims: Record<string, unknown>;
  creationDate: string;
  updateDate: string;
}

/** API-token metadata. The value is shown only by the response that creates it. */
export interface ApiTokenView {
  id: string;
  appId: string;
  name: string;
  /** A short non-secret hint such as `eat_…x9Qz`. */
  hint: string;
  /** `null`: all of the app's scopes. */
  scopes: string[] | null;
  creationDate: string;
  expirationDate: string | null;
  lastUsedDate: string | null;
  /**
   * `expired`: past its expiration date, refused everywhere; delete it or issue another.
   * `retiring`: regenerated with a grace period; it works until `expirationDate`, then retires.
   */
  status: 'active' | 'retiring' | 'expired';
  /** Active, not retiring, and expiring within the widest `notifyBeforeExpiry` threshold (7 days by default). */
  expiringSoon: boolean;
}

/** What `GET /apps` shows of an app's tokens. */
export interface TokenSummaryView {
  /** Tokens that work now (retiring ones included). */
  active: number;
  /** Of those, how many expire soon (see {@link ApiTokenView.expiringSoon}). */
  expiringSoon: number;
  /** The last use of any of the app's tokens. */
  lastUsedDate: string | null;
}

/** An app in a listing: its view and a summary of its tokens. */
export type AppListItem = AppView & {
  tokenSummary: TokenSummaryView;
  /** Requests and refusals of the app's credentials in the last 24 hours and 30 days (usage counts, issue 24). */
  usage: UsageSummary;
};

/** A secret value with the token it belongs to: shown once. */
export interface IssuedApiToken {
  token: ApiTokenView;
  value: string;
}

/** What a view needs of the current catalogue and roles. */
export interface ViewContext {
  /** The catalogue's test (a scope, or a wildcard covering one of its scopes). */
  knows(scope: string): boolean;
  /** Is this role declared? */
  hasRole(name: string): boolean;
  /** The app's effective scopes now. */
  effectiveScopes(app: AppRecord): readonly string[];
}

export function appView(app: AppRecord, context: ViewContext): AppView {
  const roles = app.roles ?? [];
  return {
    id: app.id,
    clientId: app.id,
    tenantId: app.tenantId,
    name: app.name,
    description: app.description,
    scopes: [...app.scopes],
    roles: [...roles],
    tokenEndpointAuthMethod: app.tokenEndpointAuthMethod ?? 'client_secret_basic',
    jwksUri: app.jwksUri ?? null,
    dpopBoundAccessTokens: app.dpopBoundAccessTokens ?? false,
    unknownRoles: roles.filter((r) => !context.hasRole(r)),
    effectiveScopes: [...context.effectiveScopes(app)],
    unknownScopes: app.scopes.filter((s) => !context.knows(s)),
    customClaims: { ...app.customClaims },
    creationDate: app.createdAt.toISOString(),
    updateDate: app.updatedAt.toISOString(),
  };
}

/**
 * The failed authentications naming an app (`GET /apps/:id`): failures are throttled per source,
 * never by refusing the app's correct credential; `DELETE /apps/:id/lockout` clears them.
 */
export interface LockoutView {
  /** Failed authentications naming the app's client id, from every source, in the current window. */
  failures: number;
  /** The last of them; `null`: none recently. */
  lastFailureAt: string | null;
  /** Sources (addresses; IPv6 by /64) throttled for this client in the current lockout period. */
  throttledSources: number;
  /** When the last of them is let through again; `null`: none is throttled. */
  until: string | null;
}

export function lockoutView(state: LockoutState): LockoutView {
  return {
    failures: state.failures,
    lastFailureAt: state.lastFailureAt?.toISOString() ?? null,
    throttledSources: state.throttledSources,
    until: state.until?.toISOString() ?? null,
  };
}

/** `soonBefore`: the end of the "expiring soon" window. */
export function tokenView(token: ApiTokenRecord, now: Date, soonBefore: Date): ApiTokenView {
  const expired = token.expiresAt !== null && token.expiresAt <= now;
  const retiring = token.replacedBy !== null && token.revokedAt === null;
  return {
    id: token.id,
    appId: token.appId,
    name: token.name,
    hint: token.hint,
    scopes: token.scopes ? [...token.scopes] : null,
    creationDate: token.createdAt.toISOString(),
    expirationDate: token.expiresAt?.toISOString() ?? null,
    lastUsedDate: token.lastUsedAt?.toISOString() ?? null,
    status: expired ? 'expired' : retiring ? 'retiring' : 'active',
    expiringSoon: !expired && !retiring && token.revokedAt === null && token.expiresAt !== null && token.expiresAt <= soonBefore,
  };
}
