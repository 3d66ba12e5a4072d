/**
 * Table types of the SQL adapter, shared by SQLite and PostgreSQL.
 *
 * Dates are `bigint` epoch-millisecond columns. SQLite hands them back as numbers and the pg
 * driver as strings (bigint may exceed 2^53 in general), so every read goes through `Number()`.
 * JSON values (scopes, custom claims, JWKs) are `text` columns.
 *
 * @module
 */

import type { ColumnType, Selectable } from 'kysely';
import type { ApiTokenRevocationReason, AuditEventRecord, AuditEventType, TombstoneKind } from '../../src/store.js';

/** The SQL dialects the adapter speaks. */
export type SqlDialectName = 'sqlite' | 'postgres';

/** An epoch-millisecond column: written as a number; read as a number (SQLite) or a string (pg). */
export type EpochMsColumn = ColumnType<number | string | bigint, number, number>;

/** A nullable epoch-millisecond column. */
export type NullableEpochMsColumn = ColumnType<
  number | string | bigint | null,
  number | null | undefined,
  number | null
>;

/** Table `apps`: one row per OAuth client. */
export interface AppsTable {
  id: string;
  tenant_id: string;
  name: string;
  description: string | null;
  /** JSON array of strings. */
  scopes: string;
  /** JSON object. */
  custom_claims: string;
  created_at: EpochMsColumn;
  updated_at: EpochMsColumn;
  /** JSON array of role names (migration 0005; `'[]'` for older rows). */
  roles: ColumnType<string, string | undefined, string>;
  /** The host user of a personal client; `null` for an app. Unique per tenant (migration 0005). */
  owner_user_id: ColumnType<string | null, string | null | undefined, string | null>;
  /** Migration 0006: `client_secret_basic` (older rows), `client_secret_post` or `private_key_jwt`. */
  token_endpoint_auth_method: ColumnType<string, string | undefined, string>;
  /** Migration 0006: the client's JWK Set URL (private_key_jwt), or `null`. */
  jwks_uri: ColumnType<string | null, string | null | undefined, string | null>;
  /** Migration 0006: 1 when every access token must be DPoP-bound (RFC 9449 §5). */
  dpop_bound: ColumnType<number | string, number | undefined, number>;
}

/** Table `client_keys` (migration 0006): public keys of private_key_jwt clients; unique (`app_id`, `kid`). */
export interface ClientKeysTable {
  id: string;
  app_id: string;
  tenant_id: string;
  kid: string;
  alg: string;
  jwk: string;
  created_at: EpochMsColumn;
  expires_at: NullableEpochMsColumn;
}

/** Table `used_once` (migration 0006): the replay guard; primary key (`kind`, `key`). */
export interface UsedOnceTable {
  kind: string;
  key: string;
  expires_at: EpochMsColumn;
}

/** Table `rate_usage` (migration 0007): rate-limit counters per key and window; primary key (`key`, `window_start`). */
export interface RateUsageTable {
  key: string;
  window_start: EpochMsColumn;
  used: number;
  expires_at: EpochMsColumn;
}

/**
 * Table `usage_counts` (migration 0008): usage counts; primary key (`tenant_id`, `app_id`, `hour`,
 * `token_id`, `metric`), `token_id` `''` for counts not tied to a credential.
 */
export interface UsageCountsTable {
  tenant_id: string;
  app_id: string;
  token_id: string;
  hour: EpochMsColumn;
  metric: string;
  count: ColumnType<number | string | bigint, number, number>;
}

/** Table `api_tokens`: one row per API token, revoked ones included. */
export interface ApiTokensTable {
  id: string;
  app_id: string;
  tenant_id: string;
  name: string;
  /** Unique. */
  hash: string;
  hint: string;
  /** JSON array of strings, or `null` for all of the app's scopes. */
  scopes: string | null;
  created_at: EpochMsColumn;
  expires_at: NullableEpochMsColumn;
  last_used_at: NullableEpochMsColumn;
  revoked_at: NullableEpochMsColumn;
  revoked_reason: ApiTokenRevocationReason | null;
  replaced_by: string | null;
  /** The first token of its rotation chain (migration 0003). */
  family_id: string;
  /** Smallest expiry-notice threshold announced, seconds (migration 0005). */
  notified_before: ColumnType<number | string | null, number | null | undefined, number | null>;
}

/** Table `signing_keys`: at most one row per `alg` has `retired_at IS NULL`. */
export interface SigningKeysTable {
  kid: string;
  alg: string;
  public_jwk: string;
  private_jwk: string;
  created_at: EpochMsColumn;
  retired_at: NullableEpochMsColumn;
}

/** Table `tombstones`: primary key (`kind`, `id`). */
export interface TombstonesTable {
  kind: TombstoneKind;
  id: string;
  tenant_id: string;
  created_at: EpochMsColumn;
  expires_at: EpochMsColumn;
}

/** Table `events`: the audit log, append-only. Rows outlive the app they name (no foreign key). */
export interface EventsTable {
  id: string;
  type: AuditEventType;
  outcome: AuditEventRecord['outcome'];
  tenant_id: string;
  app_id: string | null;
  token_id: string | null;
  actor_id: string | null;
  at: EpochMsColumn;
  /** JSON object. */
  data: string;
}

/** The Kysely database type of the adapter. */
export interface Database {
  apps: AppsTable;
  api_tokens: ApiTokensTable;
  signing_keys: SigningKeysTable;
  tombstones: TombstonesTable;
  events: EventsTable;
  client_keys: ClientKeysTable;
  used_once: UsedOnceTable;
  rate_usage: RateUsageTable;
  usage_counts: UsageCountsTable;
}

/** A selected `client_keys` row. */
export type ClientKeyRow = Selectable<ClientKeysTable>;

/** A selected `apps` row. */
export type AppRow = Selectable<AppsTable>;
/** A selected `api_tokens` row. */
export type ApiTokenRow = Selectable<ApiTokensTable>;
/** A selected `signing_keys` row. */
export type SigningKeyRow = Selectable<SigningKeysTable>;
/** A selected `tombstones` row. */
export type TombstoneRow = Selectable<TombstonesTable>;
/** A selected `events` row. */
export type EventRow = Selectable<EventsTable>;
