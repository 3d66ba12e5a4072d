/**
 * The storage contract. Every adapter (memory, SQL on SQLite or PostgreSQL, or a third party's)
 * implements this interface and passes the conformance suite in `test/store-contract.ts`.
 *
 * Rules every adapter keeps:
 * - Every read and write that names a `tenantId` is confined to that tenant: a record of another
 *   tenant is reported as absent (`undefined`, `false`), never returned.
 * - Dates are `Date` objects with millisecond precision; adapters store them as epoch milliseconds.
 * - Returned records are copies: mutating them never changes the store.
 * - Methods documented as atomic are all-or-nothing with respect to concurrent callers, in this
 *   process and (for shared databases) across processes.
 * - After a write that revokes something commits, the adapter emits the written tombstones to
 *   every `onChange` listener of this process. Other processes learn of them through
 *   `listTombstones` (polled) or an adapter-specific push channel.
 *
 * @module
 */
import { AppTokensError } from './core/errors.js';
import type { Logger } from './core/logger.js';

/** An OAuth 2.0 client acting for one tenant. `id` is its `client_id`. */
export interface AppRecord {
  id: string;
  tenantId: string;
  name: string;
  description: string | null;
  /** Fixed at creation. May hold wildcards (`storage:*`). */
  scopes: string[];
  /**
   * Names of host-declared roles (option `roles`), fixed at creation; resolved into scopes each
   * time a token is minted or verified. Adapters always return it (`[]` when none).
   */
  roles?: string[];
  /**
   * Set on a user's personal client (personal tokens act as that host user); `null` for an app.
   * At most one per tenant and user. Personal clients are not listed by {@link Store.listApps} and
   * do not count towards {@link CreateAppOptions.maxAppsPerTenant}. Adapters always return it.
   */
  ownerUserId?: string | null;
  /**
   * How the client authenticates at the OAuth endpoints (RFC 7591 §2 names): an API token as a
   * client secret (`client_secret_basic` or `client_secret_post`, both accepted), or a signed
   * assertion (`private_key_jwt`, RFC 7523 §2.2) checked against its keys. Adapters always return
   * it (`client_secret_basic` for older rows).
   */
  tokenEndpointAuthMethod?: ClientAuthMethod;
  /** `private_key_jwt`: where the client publishes its JWK Set, instead of keys stored here; `null` otherwise. */
  jwksUri?: string | null;
  /** RFC 9449 §5: every access token of this client must be DPoP-bound. Adapters always return it. */
  dpopBoundAccessTokens?: boolean;
  /** Extra claims copied into every access token minted for this app. */
  customClaims: Record<string, unknown>;
  createdAt: Date;
  updatedAt: Date;
}

/** Client authentication methods (RFC 7591 §2 `token_endpoint_auth_method`). */
export type ClientAuthMethod = 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';

/**
 * A public key of a `private_key_jwt` client (RFC 7523 §2.2): a credential like an API token. Its
 * `id` (`key_…`) is what access tokens minted with it name as `api_token_id`, so deleting the key
 * kills them through the same tombstones.
 */
export interface ClientKeyRecord {
  id: string;
  appId: string;
  tenantId: string;
  /** The JWK `kid`, unique per app. */
  kid: string;
  /** The one algorithm assertions signed with this key may use. */
  alg: string;
  /** JSON of the public JWK (no private member). */
  jwk: string;
  createdAt: Date;
  /** `null`: never expires. */
  expiresAt: Date | null;
}

/** What a replay guard records ({@link Store.useOnce}). */
export type UsedOnceKind = 'client_assertion' | 'dpop_proof';

/** Why an API token stopped working. */
export type ApiTokenRevocationReason =
  | 'deleted'
  | 'revoked'
  | 'refreshed'
  | 'regenerated'
  | 'reuse_detected'
  | 'app_deleted'
  /** Reported leaked by a secret scanner (`auth.secretScanning()`, onLeak `revoke`). */
  | 'leaked';

/** A long-lived secret of an app (its `client_secret`). The value itself is never stored. */
export interface ApiTokenRecord {
  id: string;
  appId: string;
  tenantId: string;
  name: string;
  /** SHA-256 of the secret value, lowercase hex. Unique across the store. */
  hash: string;
  /** A short, non-secret display hint such as `eat_…x9Qz`. */
  hint: string;
  /** A subset of the app's scopes, or `null` for all of the app's scopes. */
  scopes: string[] | null;
  createdAt: Date;
  /** `null`: never expires. */
  expiresAt: Date | null;
  lastUsedAt: Date | null;
  /** Set once the token is dead; a revoked record is kept so that its reuse can be detected. */
  revokedAt: Date | null;
  revokedReason: ApiTokenRevocationReason | null;
  /** The token this one was refreshed or regenerated into. */
  replacedBy: string | null;
  /**
   * The id of the first token of its rotation chain: a token starts its own family, and every
   * token it is refreshed or regenerated into joins it. The store sets it (on insert, when absent,
   * to the token's own id; on {@link Store.replaceApiToken}, to the old token's family, whatever
   * the replacement says), so that revoking a family is one write, whatever the chain's length.
   * Adapters always return it.
   */
  familyId?: string;
  /**
   * The smallest expiry-notice threshold (seconds before `expiresAt`) already announced for this
   * token, `null` before the first; set by {@link Store.claimExpiryNotice}. Adapters always return it.
   */
  notifiedBefore?: number | null;
}

/** A page of {@link Store.listExpiringApiTokens}. */
export interface ExpiringTokensQuery {
  /** Only tokens expiring strictly after this instant… */
  after: Date;
  /** …and at or before this one. */
  before: Date;
  limit: number;
  cursor?: string | undefined;
}

/** What {@link Store.summarizeApiTokens} reports of one app. */
export interface TokenSummary {
  /** Tokens that are not revoked and not expired at `now` (retiring ones included). */
  active: number;
  /** Of those, the ones not yet replaced that expire at or before `soonBefore`. */
  expiringSoon: number;
  /** The latest `lastUsedAt` of any token of the app, revoked ones included. */
  lastUsedAt: Date | null;
}

/** Options of {@link Store.listApps}. */
export interface ListAppsOptions {
  limit: number;
  cursor?: string | undefined;
  /**
   * Only apps with a token that is not revoked, not replaced (retiring), and expires in
   * (`after`, `before`].
   */
  expiring?: { after: Date; before: Date } | undefined;
  /**
   * Only apps whose name contains this text (ASCII letters compared case-insensitively, every other
   * character as is) or whose id starts with it.
   */
  search?: string | undefined;
  /** Only apps holding this scope as written (a wildcard matches only itself: `storage:*`). */
  scope?: string | undefined;
  /** Only apps with this role. */
  role?: string | undefined;
  /**
   * Only apps created before this instant none of whose tokens (revoked ones included) was used at
   * or after it: "unused for N days".
   */
  unusedSince?: Date | undefined;
  /**
   * The order, ties broken by id in the same direction. Default `created` ascending (oldest
   * first). `name` compares ASCII-lowercased names code unit by code unit; `lastUsed` is the latest
   * `lastUsedAt` of the app's tokens, never-used apps counting as before every date; `usage` the
   * sum of the usage counts {@link AppSort.usage} names (0 without any). A cursor is
   * valid only with the sort it was made for: another sort's cursor is `validation_failed` naming
   * `cursor`.
   */
  sort?: AppSort | undefined;
}

/** An order of {@link Store.listApps}. */
export interface AppSort {
  by: 'created' | 'name' | 'lastUsed' | 'usage';
  order: 'asc' | 'desc';
  /**
   * With `by: 'usage'` (required then): the sum of the app's usage counts ({@link Store.addUsage})
   * of these metrics in hours at or after `since`, every token of the app included.
   */
  usage?: { since: Date; metrics: readonly string[] } | undefined;
}

/** A page of {@link Store.listApps}. */
export interface AppPage extends Page<AppRecord> {
  /**
   * How many apps match the filters (the cursor aside), counted in the same call. Adapters of this
   * package always return it; a third-party adapter without it leaves the total unknown (`null`).
   */
  total?: number;
}

/**
 * One usage count ({@link Store.addUsage}): how many times `metric` happened in one UTC hour for
 * one app (and one of its credentials).
 */
export interface UsageCount {
  tenantId: string;
  appId: string;
  /** The API token (or client key) the credential descends from; `null`: the app alone. */
  tokenId: string | null;
  /** The start of the UTC hour, epoch ms (a multiple of 3 600 000). */
  hour: number;
  /** What happened: `accepted`, `refused:expired`, `grant:client_credentials`, … (printable ASCII, at most 64 characters). */
  metric: string;
  /** A positive whole number. */
  count: number;
}

/** What {@link Store.readUsage} reads. */
export interface UsageQuery {
  /** Hours starting at or after this instant (a multiple of the interval)… */
  from: Date;
  /** …and before this one. */
  to: Date;
  /** The bucket: an hour, or a UTC day (hours summed). */
  interval: 'hour' | 'day';
}

/** A sum of {@link Store.readUsage}: one bucket, one credential, one metric. */
export interface UsageRow {
  /** The bucket's start, epoch ms (UTC). */
  start: number;
  /** `null`: counts of the app not tied to a credential. */
  tokenId: string | null;
  metric: string;
  count: number;
}

/** What {@link Store.summarizeUsage} reports of one app: sums per metric. */
export interface UsageTotals {
  /** Hours starting at or after `since24h`. */
  last24h: Record<string, number>;
  /** Hours starting at or after `since30d`. */
  last30d: Record<string, number>;
}

/** Options of {@link Store.listEvents}. */
export interface ListEventsOptions {
  limit: number;
  cursor?: string | undefined;
  /** Only events of these types (none given or empty: every type). */
  types?: readonly AuditEventType[] | undefined;
}

/** A persisted signing key. `privateJwk` is a JSON JWK, or an `enc:v1:` envelope when encrypted at rest. */
export interface SigningKeyRecord {
  kid: string;
  alg: string;
  /** JSON of the public JWK (no private members). */
  publicJwk: string;
  /** JSON of the private JWK, or its AES-256-GCM envelope. */
  privateJwk: string;
  createdAt: Date;
  /** When the key stopped signing; `null` while it is the active key for its algorithm. */
  retiredAt: Date | null;
}

/** What a tombstone kills. */
export type TombstoneKind = 'app' | 'api_token' | 'access_token';

/**
 * A record that something was revoked: every access token whose `client_id` (kind `app`),
 * `api_token_id` (kind `api_token`) or `jti` (kind `access_token`) equals `id` is dead.
 * Kept until `expiresAt`, the moment the last access token it could kill has expired.
 */
export interface Tombstone {
  kind: TombstoneKind;
  id: string;
  tenantId: string;
  createdAt: Date;
  expiresAt: Date;
}

/** What an audit event records. */
export type AuditEventType =
  | 'app.created'
  | 'app.updated'
  | 'app.deleted'
  /** An admin cleared the app's lockout (`DELETE /apps/:id/lockout`); `data: {failures, throttledSources}` before. */
  | 'app.lockout_cleared'
  | 'token.created'
  | 'token.regenerated'
  | 'token.refreshed'
  | 'token.deleted'
  | 'token.reuse_detected'
  | 'token.refresh_refused'
  | 'token.expiring'
  | 'key.added'
  | 'key.deleted'
  | 'access_token.issued'
  | 'access_token.refused'
  | 'access_token.revoked'
  | 'management.refused'
  /** A live API token reported leaked by a secret scanner; `data: {source, url, type, action}`. */
  | 'token.leaked';

/**
 * An audit record: who did what to which app or token, when, and whether it was allowed.
 * Never carries a secret value, a hash or an access token.
 */
export interface AuditEventRecord {
  id: string;
  type: AuditEventType;
  /** `success`, or `failure` for a refusal. */
  outcome: 'success' | 'failure';
  tenantId: string;
  appId: string | null;
  tokenId: string | null;
  /** Who acted: a client id, a host user id, `cli`, or `null` when unauthenticated. */
  actorId: string | null;
  at: Date;
  /** Small, secret-free details (a reason, the scopes granted, the fields changed). */
  data: Record<string, unknown>;
}

/** One page of a listing. `nextCursor` is opaque; `null` on the last page. */
export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/** Editable fields of an app. Absent fields are left unchanged. */
export interface AppPatch {
  name?: string;
  description?: string | null;
  customClaims?: Record<string, unknown>;
}

/** Arguments of {@link Store.replaceApiToken}. */
export interface ReplaceApiTokenInput {
  tenantId: string;
  /** The token being replaced. */
  oldId: string;
  /** The hash the caller presented: the swap happens only if the old token still has it and is active. */
  expectedHash: string;
  reason: 'refreshed' | 'regenerated';
  /** The replacement, inserted in the same atomic step. */
  replacement: ApiTokenRecord;
  /**
   * The tombstone of the old token, written in the same atomic step. With `retireAt` its
   * `createdAt` is that instant: a tombstone takes effect from its `createdAt`.
   */
  tombstone: Tombstone;
  /**
   * Rotation with a grace period: the old token is not revoked but retires at this instant — its
   * `expiresAt` becomes the earlier of its own and this, and `replacedBy` is set.
   */
  retireAt?: Date;
}

/** Options of {@link Store.createApp}. */
export interface CreateAppOptions {
  /**
   * Throw `limit_exceeded` (writing nothing) when the tenant already has this many apps (personal
   * clients do not count); atomic.
   */
  maxAppsPerTenant?: number;
  /** Public keys of a `private_key_jwt` app, inserted in the same atomic step. */
  keys?: ClientKeyRecord[];
}

/** Options of {@link Store.addClientKey}. */
export interface AddClientKeyOptions {
  /** Throw `limit_exceeded` (inserting nothing) when the app already has this many keys; atomic. */
  maxPerApp?: number;
}

/** Options of {@link Store.createApiToken}. */
export interface CreateApiTokenOptions {
  /** Throw `limit_exceeded` when the app already has this many active tokens; atomic. */
  maxActive?: number;
}

/** Arguments of {@link Store.revokeApiTokenFamily}. */
export interface RevokeFamilyInput {
  tenantId: string;
  /** The revoked token that was presented again. */
  reusedId: string;
  /** Dates of the tombstone written for each token revoked (kind `api_token`, its id, the tenant). */
  tombstone: { createdAt: Date; expiresAt: Date };
  now: Date;
}

/** What {@link Store.revokeApiTokenFamily} did. */
export interface RevokedFamily {
  /** `true` for exactly one caller: the one that flipped the reused token from `refreshed` to `reuse_detected`. */
  detected: boolean;
  /** Ids of the family's tokens this call revoked (they were active). */
  revoked: string[];
}

/** Listener of committed revocations. */
export type ChangeListener = (tombstones: readonly Tombstone[]) => void;

export interface Store {
  /** Prepare the store (run migrations, open files). Idempotent; every other method may await it. */
  init(): Promise<void>;
  /** Release connections and timers. */
  close(): Promise<void>;

  // ---- apps ---------------------------------------------------------------------------------

  /**
   * Insert an app and, in the same atomic step, its first API tokens.
   * Throws if an app with that id or a token with that id or hash already exists, or (`conflict`)
   * if the app is a personal client and that tenant and user already have one.
   */
  createApp(app: AppRecord, tokens: ApiTokenRecord[], options?: CreateAppOptions): Promise<void>;
  /** The app, if it exists in that tenant. */
  getApp(tenantId: string, id: string): Promise<AppRecord | undefined>;
  /**
   * The app with that `client_id`, whatever its tenant. Only for client authentication, where
   * the tenant is what the credentials prove; never for tenant-scoped reads.
   */
  getAppByClientId(id: string): Promise<AppRecord | undefined>;
  /**
   * Apps of a tenant in creation order (oldest first, ties broken by id), `limit` at most;
   * personal clients ({@link AppRecord.ownerUserId}) are not apps and never listed. The cursor is
   * stable under concurrent inserts and deletes: no app is returned twice, and no app that existed
   * for the whole walk is skipped (under `sort: lastUsed`, for apps whose tokens are not used during
   * the walk: a use moves an app). With `expiring`, `search`, `scope`, `role`, `unusedSince` only
   * the apps matching every one given; `sort` orders them (see {@link ListAppsOptions}).
   */
  listApps(tenantId: string, options: ListAppsOptions): Promise<AppPage>;
  /** The personal client of a host user in that tenant, if one was created. */
  getPersonalApp(tenantId: string, userId: string): Promise<AppRecord | undefined>;
  /**
   * Optional: apps of every tenant in `id` order, `limit` at most, after the id `after`. Only for
   * whole-store maintenance (the start-up report of apps holding scopes the catalogue no longer
   * declares); never for serving a tenant.
   */
  scanApps?(options: { limit: number; after?: string | undefined }): Promise<AppRecord[]>;
  /** Apply the patch atomically; returns the updated app, or `undefined` if absent in that tenant. */
  updateApp(tenantId: string, id: string, patch: AppPatch, now: Date): Promise<AppRecord | undefined>;
  /**
   * Atomically delete the app, every API token and client key of it, and write the tombstone.
   * Returns `false` (and writes nothing) if the app is absent in that tenant.
   */
  deleteApp(tenantId: string, id: string, tombstone: Tombstone): Promise<boolean>;

  // ---- API tokens ---------------------------------------------------------------------------

  /**
   * Insert a token of an existing app. Throws if the id or hash exists. With `maxActive`, throws
   * `limit_exceeded` (and inserts nothing) when the app already has that many active tokens: not
   * revoked and not expired at `token.createdAt`. The count and the insert are atomic: concurrent
   * callers never overshoot.
   */
  createApiToken(token: ApiTokenRecord, options?: CreateApiTokenOptions): Promise<void>;
  /**
   * One page of the app's tokens that are not revoked (expired ones included), oldest first, ties
   * by id, with a cursor stable under concurrent inserts and revocations.
   */
  listActiveApiTokens(tenantId: string, appId: string, options: { limit: number; cursor?: string | undefined }): Promise<Page<ApiTokenRecord>>;
  /** The token, active or revoked, if it exists in that tenant. */
  getApiToken(tenantId: string, id: string): Promise<ApiTokenRecord | undefined>;
  /** The token (active or revoked) whose hash is `hash`, whatever its tenant. */
  findApiTokenByHash(hash: string): Promise<ApiTokenRecord | undefined>;
  /** Every token of an app, revoked ones included, oldest first. */
  listApiTokens(tenantId: string, appId: string): Promise<ApiTokenRecord[]>;
  /**
   * Compare-and-swap: if the token `oldId` is active, not retiring (`replacedBy` is `null`) and its
   * hash equals `expectedHash`, mark it revoked with `reason` and `replacedBy = replacement.id` (or,
   * with `retireAt`, let it retire then), insert the replacement and the tombstone, all atomically,
   * and return `true`. Otherwise change nothing and return `false`. Of any number of concurrent
   * callers for the same token, exactly one gets `true`; a token that retires after a grace period
   * is never replaced again, by refresh or regeneration (RFC 9700 §4.14.2: a rotated-out
   * credential never yields a new one), so the condition must be part of the same atomic write.
   */
  replaceApiToken(input: ReplaceApiTokenInput): Promise<boolean>;
  /**
   * Atomically mark the active tokens `ids` of the tenant revoked with `reason` and write their
   * tombstones (one per id, in `tombstones`). Returns the ids it revoked; already revoked or
   * absent ids are skipped.
   */
  revokeApiTokens(
    tenantId: string,
    ids: string[],
    reason: ApiTokenRevocationReason,
    tombstones: Tombstone[],
    now: Date,
  ): Promise<string[]>;
  /**
   * Refresh-token reuse (RFC 9700 §4.14.2): atomically, if the token `reusedId` of the tenant has
   * `revokedReason` `refreshed`, set it to `reuse_detected` (`detected: true`; of concurrent callers
   * exactly one sees it); and, in any case, revoke every active token of its family with reason
   * `reuse_detected`, writing and emitting one tombstone each. One write whatever the chain's
   * length. An absent token changes nothing.
   */
  revokeApiTokenFamily(input: RevokeFamilyInput): Promise<RevokedFamily>;
  /** Record last use, batched: sets `lastUsedAt` to the later of the stored and given dates. */
  touchApiTokens(uses: ReadonlyMap<string, Date>): Promise<void>;
  /**
   * Tokens of every tenant that are not revoked and not replaced (retiring) and expire in
   * (`after`, `before`], ordered by (`expiresAt`, `id`), with a cursor. Only for the expiry-notice
   * sweep; never for serving a tenant.
   */
  listExpiringApiTokens(query: ExpiringTokensQuery): Promise<Page<ApiTokenRecord>>;
  /**
   * Atomically: if the token is not revoked and its `notifiedBefore` is `null` or greater than
   * `threshold`, set it to `threshold` and return `true`. Of any number of concurrent callers (any
   * process sharing the database), exactly one gets `true` per token and threshold.
   */
  claimExpiryNotice(tenantId: string, tokenId: string, threshold: number): Promise<boolean>;
  /** For each of the apps `appIds` of the tenant, a summary of its tokens (absent apps are left out). */
  summarizeApiTokens(tenantId: string, appIds: readonly string[], at: { now: Date; soonBefore: Date }): Promise<Map<string, TokenSummary>>;

  // ---- client keys (private_key_jwt) --------------------------------------------------------

  /** The app's public keys, oldest first (expired ones included). */
  listClientKeys(tenantId: string, appId: string): Promise<ClientKeyRecord[]>;
  /** Insert a key of an existing app; `conflict` if the app already has that `kid` (or the id exists), `not_found` if the app is absent. */
  addClientKey(key: ClientKeyRecord, options?: AddClientKeyOptions): Promise<void>;
  /**
   * Atomically delete the app's key `kid` and write a tombstone (kind `api_token`, id = the key's
   * `id`, with these dates), so every access token minted with it dies. Returns the deleted key,
   * or `undefined` (writing nothing) if absent in that tenant and app.
   */
  deleteClientKey(
    tenantId: string,
    appId: string,
    kid: string,
    tombstone: { createdAt: Date; expiresAt: Date },
  ): Promise<ClientKeyRecord | undefined>;

  // ---- replay guard -------------------------------------------------------------------------

  /**
   * Record `key` of `kind` until `expiresAt`, atomically: `true` the first time, `false` while it
   * is recorded — of any number of concurrent callers, in this process and in every process
   * sharing the database, exactly one gets `true`. An entry stays recorded until
   * {@link Store.purgeTombstones} runs after its `expiresAt` (callers refuse an expired value anyway).
   * For single-use values: client-assertion `jti`s (RFC 7523 §3), DPoP proof `jti`s (RFC 9449 §11.1).
   * `key` is printable ASCII (callers pass a digest of client-chosen text), at most 200 characters.
   */
  useOnce(kind: UsedOnceKind, key: string, expiresAt: Date): Promise<boolean>;

  // ---- audit events -------------------------------------------------------------------------

  /** Append events (ids are unique; an existing id throws `conflict`). Batched: one call, many events. */
  appendEvents(events: AuditEventRecord[]): Promise<void>;
  /**
   * Events of one app of a tenant, newest first (`at` descending, ties by id descending), `limit`
   * at most, with a cursor stable under concurrent appends. Events outlive the app they name.
   * With `types`, only events of those types.
   */
  listEvents(tenantId: string, appId: string, options: ListEventsOptions): Promise<Page<AuditEventRecord>>;

  /**
   * Delete at most `limit` events (of any tenant) older than `before`, oldest first; returns how
   * many it deleted. Retention (`events.retention`) calls it in batches until fewer come back.
   */
  pruneEvents(before: Date, limit: number): Promise<number>;

  // ---- usage counts -------------------------------------------------------------------------

  /**
   * Add counts (an additive upsert: a row of the same tenant, app, token, hour and metric grows by
   * `count`, concurrent callers of every process each adding exactly theirs). All-or-nothing: a
   * failed call added nothing, so the caller may retry the same batch. One statement per chunk of
   * rows, never one per app.
   */
  addUsage(counts: readonly UsageCount[]): Promise<void>;
  /**
   * Sums of one app of the tenant in [`from`, `to`), per bucket start (`interval` `day`: UTC days),
   * credential and metric, in no particular order; nothing for another tenant's app.
   */
  readUsage(tenantId: string, appId: string, query: UsageQuery): Promise<UsageRow[]>;
  /** For each of the apps `appIds` of the tenant, its sums per metric since each instant (apps without counts are left out). */
  summarizeUsage(tenantId: string, appIds: readonly string[], since: { since24h: Date; since30d: Date }): Promise<Map<string, UsageTotals>>;
  /** Delete at most `limit` counts (of any tenant) of hours starting before `before`; returns how many it deleted. */
  pruneUsage(before: Date, limit: number): Promise<number>;

  // ---- signing keys -------------------------------------------------------------------------

  /** Every persisted key, retired ones included, newest first. */
  listSigningKeys(): Promise<SigningKeyRecord[]>;
  /**
   * Atomically: if no key of `candidate.alg` is active, insert `candidate` as active. Returns the
   * active key of that algorithm afterwards, so instances starting together agree on one key.
   */
  ensureSigningKey(candidate: SigningKeyRecord): Promise<SigningKeyRecord>;

  /**
   * Atomically retire every active key of `candidate.alg` (setting `retiredAt = now`) and insert
   * `candidate` as the active key of that algorithm. Returns the retired keys' kids.
   * Throws `conflict` if `candidate.kid` exists.
   */
  rotateSigningKey(candidate: SigningKeyRecord, now: Date): Promise<string[]>;

  // ---- revocation ---------------------------------------------------------------------------

  /**
   * Write tombstones and emit them to listeners. One per kind + id: writing another merges into it,
   * keeping the earlier `createdAt` (a tombstone takes effect from its `createdAt`) and the later
   * `expiresAt`.
   */
  addTombstones(tombstones: Tombstone[]): Promise<void>;
  /** Tombstones not yet expired at `now`, created at or after `since` when given. */
  listTombstones(now: Date, since?: Date): Promise<Tombstone[]>;
  /** Delete tombstones, replay-guard entries ({@link Store.useOnce}) and rate counters ({@link Store.addRateUsage}) expired before `now`. */
  purgeTombstones(now: Date): Promise<void>;
  /** Subscribe to tombstones committed by this process. Returns the unsubscribe function. */
  onChange(listener: ChangeListener): () => void;

  /**
   * Optional: a backend for rate-limiter-flexible that every instance on this store shares, so
   * that N instances together allow exactly the quota. Without it, limits are per process.
   */
  rateLimiterBackend?(): Promise<RateLimiterBackend>;

  /**
   * Optional (shared stores): atomically add `count` (≥ 0) to the rate-limit counter `key` of the
   * window starting at `windowStart` (epoch ms), creating it at 0, and return its total afterwards.
   * Concurrent calls of every instance each add exactly their count; `count: 0` only reads.
   * `expiresAt` is when the counter may go ({@link Store.purgeTombstones}). Rate-limit leases
   * (`src/core/rate-lease.ts`) use it when the store also has {@link Store.rateLimiterBackend}.
   * `key` is printable ASCII, at most 300 characters.
   */
  addRateUsage?(key: string, windowStart: number, count: number, expiresAt: Date): Promise<number>;

  /**
   * Optional (stores shared by several processes, with a change feed such as PostgreSQL
   * `LISTEN/NOTIFY`): the real-clock epoch ms before which every tombstone other processes
   * published has reached this process's {@link Store.onChange} listeners; `undefined` while the
   * feed is down. A store that has it is a shared view, whose revocation state can go stale: the
   * revocation view then fails closed past `advanced.revocationMaxStaleness`. A store without it
   * (memory, SQLite in one process) is this process's own view and never stale. Called on the
   * request path: it must return a field, no I/O.
   */
  changeFeedHeardAt?(): number | undefined;

  /** Optional: the AppTokens instance hands its (redacting) logger over at `ready()`, for faults met in the background. */
  useLogger?(logger: Logger): void;
}

/** A shared rate-limit backend an adapter offers (see {@link Store.rateLimiterBackend}). */
export interface RateLimiterBackend {
  type: 'postgres';
  /** A `pg` Pool. */
  pool: unknown;
}

/**
 * Validate list options for adapters: a positive integer `limit` and, when given, a cursor made by
 * {@link encodeCursor}. Throws `validation_failed` naming `limit` or `cursor`.
 */
export function parseListOptions(options: { limit: number; cursor?: string | undefined }): {
  limit: number;
  after: { createdAt: number; id: string } | undefined;
} {
  if (!Number.isSafeInteger(options.limit) || options.limit < 1) {
    throw new AppTokensError('validation_failed', 'limit must be a positive integer.', { field: 'limit' });
  }
  if (options.cursor === undefined) return { limit: options.limit, after: undefined };
  const after = decodeCursor(options.cursor);
  if (!after) throw new AppTokensError('validation_failed', 'The cursor is not valid.', { field: 'cursor' });
  return { limit: options.limit, after };
}

/** One hour, ms: the bucket of {@link UsageCount}. */
export const USAGE_HOUR_MS = 3_600_000;
const USAGE_METRIC = /^[\x21-\x7e]{1,64}$/;

/**
 * For adapters' {@link Store.addUsage}: validate the counts and merge those of one key, so that a
 * multi-row upsert never names a row twice (PostgreSQL refuses `ON CONFLICT DO UPDATE` affecting a
 * row twice). Throws `validation_failed` naming the row and field.
 */
export function mergeUsageCounts(counts: readonly UsageCount[]): UsageCount[] {
  const merged = new Map<string, UsageCount>();
  counts.forEach((c, i) => {
    if (!Number.isSafeInteger(c.count) || c.count < 1) {
      throw new AppTokensError('validation_failed', `counts[${i}].count must be a positive whole number`, { field: `counts[${i}].count` });
    }
    if (!Number.isSafeInteger(c.hour) || c.hour % USAGE_HOUR_MS !== 0) {
      throw new AppTokensError('validation_failed', `counts[${i}].hour must be the start of an hour (epoch ms)`, { field: `counts[${i}].hour` });
    }
    if (!USAGE_METRIC.test(c.metric)) {
      throw new AppTokensError('validation_failed', `counts[${i}].metric must be 1-64 printable ASCII characters`, { field: `counts[${i}].metric` });
    }
    const key = `${c.tenantId}\u0000${c.appId}\u0000${c.tokenId ?? ''}\u0000${c.hour}\u0000${c.metric}`;
    const seen = merged.get(key);
    if (seen) seen.count += c.count;
    else merged.set(key, { ...c });
  });
  return [...merged.values()];
}

/**
 * In-process fan-out of committed tombstones, for adapters. A throwing listener is isolated so
 * that it cannot break the write that emitted.
 */
export class ChangeFeed {
  readonly #listeners = new Set<ChangeListener>();

  subscribe(listener: ChangeListener): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  emit(tombstones: readonly Tombstone[]): void {
    if (tombstones.length === 0) return;
    for (const listener of this.#listeners) {
      try {
        listener(tombstones);
      } catch {
        // A listener's failure must not turn a committed revocation into a failed write.
      }
    }
  }
}

/** For adapters: the error of {@link CreateAppOptions.maxAppsPerTenant}. */
export function appsLimit(max: number): AppTokensError {
  return new AppTokensError('limit_exceeded', `limits.appsPerTenant: the tenant already has ${max} apps`, { field: 'limits.appsPerTenant' });
}

/** For adapters: the error of {@link CreateApiTokenOptions.maxActive}. */
export function tokensLimit(max: number): AppTokensError {
  return new AppTokensError('limit_exceeded', `limits.tokensPerApp: the app already has ${max} active tokens; delete one first`, {
    field: 'limits.tokensPerApp',
  });
}

/** For adapters: the error of {@link AddClientKeyOptions.maxPerApp}. */
export function keysLimit(max: number): AppTokensError {
  return new AppTokensError('limit_exceeded', `limits.keysPerApp: the app already has ${max} keys; delete one first`, { field: 'limits.keysPerApp' });
}

/** Encode a listing position as an opaque cursor. */
export function encodeCursor(createdAt: Date, id: string): string {
  return Buffer.from(JSON.stringify([createdAt.getTime(), id])).toString('base64url');
}

/** Decode a cursor made by {@link encodeCursor}; `undefined` when it is not one. */
export function decodeCursor(cursor: string): { createdAt: number; id: string } | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (
      Array.isArray(value) &&
      value.length === 2 &&
      Number.isSafeInteger(value[0]) &&
      typeof value[1] === 'string'
    ) {
      return { createdAt: value[0] as number, id: value[1] };
    }
  } catch {
    // fall through
  }
  return undefined;
}

/** For adapters: the sort key of an app's name under `sort: name` (ASCII letters lowercased, nothing else). */
export function appNameKey(name: string): string {
  return name.replace(/[A-Z]+/g, (s) => s.toLowerCase());
}

/** For adapters: {@link ListAppsOptions.sort}, defaulted, and checked. */
export function appSortOf(options: ListAppsOptions): AppSort {
  const sort = options.sort ?? { by: 'created', order: 'asc' };
  const usageOk = sort.by !== 'usage' || (sort.usage !== undefined && sort.usage.metrics.length > 0 && !Number.isNaN(sort.usage.since.getTime()));
  if (!['created', 'name', 'lastUsed', 'usage'].includes(sort.by) || !['asc', 'desc'].includes(sort.order) || !usageOk) {
    throw new AppTokensError('validation_failed', 'sort: not an order of this store.', { field: 'sort' });
  }
  return sort;
}

/**
 * For adapters: the cursor of an app listed in `sort` order at sort key `key` (epoch ms for
 * `created`, the latest use or -1 for `lastUsed`, the sum for `usage`, {@link appNameKey} for `name`). The default order
 * keeps the format of {@link encodeCursor}, so cursors handed out before sorting existed still work.
 */
export function encodeAppCursor(sort: AppSort, key: number | string, id: string): string {
  if (sort.by === 'created' && sort.order === 'asc') return encodeCursor(new Date(key as number), id);
  return Buffer.from(JSON.stringify(['apps', sort.by, sort.order, key, id])).toString('base64url');
}

/**
 * For adapters: validate {@link ListAppsOptions} like {@link parseListOptions}, and decode the
 * cursor for its sort. A cursor made for another sort (or not one at all) is `validation_failed`
 * naming `cursor`: reading it in another order would skip or repeat apps.
 */
export function parseListAppsOptions(options: ListAppsOptions): {
  limit: number;
  sort: AppSort;
  after: { key: number | string; id: string } | undefined;
} {
  const sort = appSortOf(options);
  const { limit } = parseListOptions({ limit: options.limit });
  if (options.cursor === undefined) return { limit, sort, after: undefined };
  const wrong = (): AppTokensError =>
    new AppTokensError('validation_failed', `cursor: not a cursor of this listing's sort (${sort.order === 'desc' ? '-' : ''}${sort.by}).`, {
      field: 'cursor',
    });
  if (sort.by === 'created' && sort.order === 'asc') {
    const legacy = decodeCursor(options.cursor);
    if (!legacy) throw wrong();
    return { limit, sort, after: { key: legacy.createdAt, id: legacy.id } };
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(options.cursor, 'base64url').toString('utf8'));
  } catch {
    throw wrong();
  }
  if (!Array.isArray(value) || value.length !== 5 || value[0] !== 'apps' || value[1] !== sort.by || value[2] !== sort.order) throw wrong();
  const [, , , key, id] = value as [string, string, string, unknown, unknown];
  const keyOk = sort.by === 'name' ? typeof key === 'string' && key.length <= 1000 : Number.isSafeInteger(key);
  if (!keyOk || typeof id !== 'string') throw wrong();
  return { limit, sort, after: { key: key as number | string, id } };
}
