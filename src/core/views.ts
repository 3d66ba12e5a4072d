/**
 * Public shapes of records: what the management API and the programmatic API return.
 * Never a hash, never a value.
 *
 * @module
 */
import type { ApiTokenRecord, AppRecord } from '../store.js';

/** An app as shown to its managers. */
export interface AppView {
  id: string;
  /** Same as `id`: the OAuth 2.0 `client_id`. */
  clientId: string;
  tenantId: string;
  name: string;
  description: string | null;
  scopes: string[];
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
}

/** A secret value with the token it belongs to: shown once. */
export interface IssuedApiToken {
  token: ApiTokenView;
  value: string;
}

/** `knows`: the current catalogue's test (a scope, or a wildcard covering one of its scopes). */
export function appView(app: AppRecord, knows: (scope: string) => boolean): AppView {
  return {
    id: app.id,
    clientId: app.id,
    tenantId: app.tenantId,
    name: app.name,
    description: app.description,
    scopes: [...app.scopes],
    unknownScopes: app.scopes.filter((s) => !knows(s)),
    customClaims: { ...app.customClaims },
    creationDate: app.createdAt.toISOString(),
    updateDate: app.updatedAt.toISOString(),
  };
}

export function tokenView(token: ApiTokenRecord, now: Date): ApiTokenView {
  return {
    id: token.id,
    appId: token.appId,
    name: token.name,
    hint: token.hint,
    scopes: token.scopes ? [...token.scopes] : null,
    creationDate: token.createdAt.toISOString(),
    expirationDate: token.expiresAt?.toISOString() ?? null,
    lastUsedDate: token.lastUsedAt?.toISOString() ?? null,
    status: token.expiresAt !== null && token.expiresAt <= now ? 'expired' : token.replacedBy !== null && token.revokedAt === null ? 'retiring' : 'active',
  };
}
