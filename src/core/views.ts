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
}

/** A secret value with the token it belongs to: shown once. */
export interface IssuedApiToken {
  token: ApiTokenView;
  value: string;
}

export function appView(app: AppRecord): AppView {
  return {
    id: app.id,
    clientId: app.id,
    tenantId: app.tenantId,
    name: app.name,
    description: app.description,
    scopes: [...app.scopes],
    customClaims: { ...app.customClaims },
    creationDate: app.createdAt.toISOString(),
    updateDate: app.updatedAt.toISOString(),
  };
}

export function tokenView(token: ApiTokenRecord): ApiTokenView {
  return {
    id: token.id,
    appId: token.appId,
    name: token.name,
    hint: token.hint,
    scopes: token.scopes ? [...token.scopes] : null,
    creationDate: token.createdAt.toISOString(),
    expirationDate: token.expiresAt?.toISOString() ?? null,
    lastUsedDate: token.lastUsedAt?.toISOString() ?? null,
  };
}
