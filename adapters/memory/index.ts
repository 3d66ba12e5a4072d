/**
 * An in-memory {@link Store}: for tests, examples and single-process deployments that can afford
 * to lose every app and token on restart.
 *
 * @module
 */

import { AppTokensError } from '../../src/core/errors.js';
import { ChangeFeed, USAGE_HOUR_MS, mergeUsageCounts, appNameKey, appsLimit, encodeAppCursor, encodeCursor, keysLimit, parseListAppsOptions, parseListOptions, tokensLimit } from '../../src/store.js';
import type {
  ApiTokenRecord,
  ApiTokenRevocationReason,
  AppPatch,
  AuditEventRecord,
  AppRecord,
  ChangeListener,
  CreateApiTokenOptions,
  AddClientKeyOptions,
  ClientKeyRecord,
  CreateAppOptions,
  UsedOnceKind,
  ExpiringTokensQuery,
  AppPage,
  ListAppsOptions,
  ListEventsOptions,
  Page,
  ReplaceApiTokenInput,
  RevokeFamilyInput,
  RevokedFamily,
  SigningKeyRecord,
  Store,
  Tombstone,
  TokenSummary,
  UsageCount,
  UsageQuery,
  UsageRow,
  UsageTotals,
} from '../../src/store.js';

/**
 * A {@link Store} kept in `Map`s. Every method does all of its checks and writes synchronously
 * (no `await` between them), which makes each call atomic in single-threaded JavaScript. Records
 * are cloned on the way in and out.
 */
export class MemoryStore implements Store {
  readonly #apps = new Map<string, AppRecord>();
  readonly #tokens = new Map<string, ApiTokenRecord>();
  /** hash → token id */
  readonly #tokenByHash = new Map<string, string>();
  /** family id → ids of its tokens */
  readonly #families = new Map<string, Set<string>>();
  readonly #keys = new Map<string, SigningKeyRecord>();
  /** id → public key of a private_key_jwt client */
  readonly #clientKeys = new Map<string, ClientKeyRecord>();
  /** `${kind}\u0000${key}` → expiresAt (epoch ms) */
  readonly #usedOnce = new Map<string, number>();
  /** Rate-limit counters ({@link MemoryStore.addRateUsage}): `key \0 windowStart` → total and expiry. */
  readonly #rateUsage = new Map<string, { used: number; expiresAt: number }>();
  /** `${kind}\u0000${id}` → tombstone */
  readonly #tombstones = new Map<string, Tombstone>();
  /** id → event */
  readonly #events = new Map<string, AuditEventRecord>();
  /**
   * `${tenantId}\u0000${appId}` → that app's events, sorted newest first (`at` desc, id desc).
   * Events without an app live in `#events` only: `listEvents` cannot name them.
   */
  readonly #eventsByApp = new Map<string, AuditEventRecord[]>();
  /** Usage counts ({@link MemoryStore.addUsage}), by tenant, app, token, hour and metric. */
  readonly #usage = new Map<string, UsageCount>();
  readonly #feed = new ChangeFeed();
  #closed = false;

  /** Nothing to prepare. Rejects after {@link MemoryStore.close}. */
  async init(): Promise<void> {
    this.#assertOpen();
  }

  /** Mark the store closed: later calls of other methods reject with `unavailable`. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
  }

  #assertOpen(): void {
    if (this.#closed) throw new AppTokensError('unavailable', 'The token store is closed.');
  }

  // ---- apps ---------------------------------------------------------------------------------

  /** @inheritDoc */
  async createApp(app: AppRecord, tokens: ApiTokenRecord[], options: CreateAppOptions = {}): Promise<void> {
    this.#assertOpen();
    if (options.maxAppsPerTenant !== undefined) {
      let count = 0;
      for (const a of this.#apps.values()) if (a.tenantId === app.tenantId && !a.ownerUserId) count++;
      if (count >= options.maxAppsPerTenant) throw appsLimit(options.maxAppsPerTenant);
    }
    if (app.ownerUserId) {
      for (const a of this.#apps.values()) {
        if (a.tenantId === app.tenantId && a.ownerUserId === app.ownerUserId) {
          throw new AppTokensError('conflict', 'That user already has a personal client.');
        }
      }
    }
    for (const token of tokens) {
      if (token.appId !== app.id || token.tenantId !== app.tenantId) {
        throw new AppTokensError('validation_failed', `Token ${token.id} does not belong to app ${app.id}.`);
      }
    }
    if (this.#apps.has(app.id)) throw new AppTokensError('conflict', `App ${app.id} already exists.`);
    this.#assertTokensAreNew(tokens);
    const keys = options.keys ?? [];
    const kids = new Set<string>();
    for (const key of keys) {
      if (key.appId !== app.id || key.tenantId !== app.tenantId) throw new AppTokensError('validation_failed', `Key ${key.id} does not belong to app ${app.id}.`);
      if (kids.has(key.kid) || this.#clientKeys.has(key.id)) throw new AppTokensError('conflict', `Key ${key.kid} already exists.`);
      kids.add(key.kid);
    }
    this.#apps.set(app.id, {
      ...structuredClone(app),
      roles: [...(app.roles ?? [])],
      ownerUserId: app.ownerUserId ?? null,
      tokenEndpointAuthMethod: app.tokenEndpointAuthMethod ?? 'client_secret_basic',
      jwksUri: app.jwksUri ?? null,
      dpopBoundAccessTokens: app.dpopBoundAccessTokens ?? false,
    });
    for (const token of tokens) this.#putToken(token);
    for (const key of keys) this.#clientKeys.set(key.id, structuredClone(key));
  }

  /** @inheritDoc */
  async getApp(tenantId: string, id: string): Promise<AppRecord | undefined> {
    this.#assertOpen();
    const app = this.#apps.get(id);
    return app && app.tenantId === tenantId ? structuredClone(app) : undefined;
  }

  /** @inheritDoc */
  async getAppByClientId(id: string): Promise<AppRecord | undefined> {
    this.#assertOpen();
    const app = this.#apps.get(id);
    return app && structuredClone(app);
  }

  /**
   * Keyset pagination on (sort key, `id`).
   * @throws AppTokensError `validation_failed` for a malformed cursor (or another sort's), or a `limit` that is not a positive integer.
   */
  async listApps(tenantId: string, options: ListAppsOptions): Promise<AppPage> {
    this.#assertOpen();
    const { limit, sort, after } = parseListAppsOptions(options);
    const { expiring, search, scope, role, unusedSince } = options;
    const expiringApps = new Set<string>();
    const lastUsed = new Map<string, number>();
    const [from, to] = [expiring?.after.getTime(), expiring?.before.getTime()];
    for (const t of this.#tokens.values()) {
      if (t.tenantId !== tenantId) continue;
      const used = t.lastUsedAt?.getTime();
      if (used !== undefined && used > (lastUsed.get(t.appId) ?? -1)) lastUsed.set(t.appId, used);
      const at = t.expiresAt?.getTime();
      if (from !== undefined && to !== undefined && t.revokedAt === null && t.replacedBy === null && at !== undefined && at > from && at <= to) {
        expiringApps.add(t.appId);
      }
    }
    const needle = search === undefined ? undefined : appNameKey(search);
    const cutoff = unusedSince?.getTime();
    const usage = new Map<string, number>();
    if (sort.by === 'usage') {
      const since = sort.usage!.since.getTime();
      const metrics = new Set(sort.usage!.metrics);
      for (const c of this.#usage.values()) {
        if (c.tenantId === tenantId && c.hour >= since && metrics.has(c.metric)) usage.set(c.appId, (usage.get(c.appId) ?? 0) + c.count);
      }
    }
    const keyOf = (app: AppRecord): number | string =>
      sort.by === 'name'
        ? appNameKey(app.name)
        : sort.by === 'lastUsed'
          ? (lastUsed.get(app.id) ?? -1)
          : sort.by === 'usage'
            ? (usage.get(app.id) ?? 0)
            : app.createdAt.getTime();
    const dir = sort.order === 'asc' ? 1 : -1;
    const compare = (ka: number | string, ida: string, kb: number | string, idb: string): number =>
      dir * ((typeof ka === 'number' ? ka - (kb as number) : compareStrings(ka, kb as string)) || compareStrings(ida, idb));
    const matching = [...this.#apps.values()]
      .filter((app) => app.tenantId === tenantId && !app.ownerUserId)
      .filter((app) => !expiring || expiringApps.has(app.id))
      .filter((app) => needle === undefined || appNameKey(app.name).includes(needle) || app.id.startsWith(search!))
      .filter((app) => scope === undefined || app.scopes.includes(scope))
      .filter((app) => role === undefined || (app.roles ?? []).includes(role))
      .filter((app) => cutoff === undefined || (app.createdAt.getTime() < cutoff && (lastUsed.get(app.id) ?? -1) < cutoff));
    const rows = matching
      .map((app) => ({ app, key: keyOf(app) }))
      .filter(({ app, key }) => !after || compare(key, app.id, after.key, after.id) > 0)
      .sort((a, b) => compare(a.key, a.app.id, b.key, b.app.id))
      .slice(0, limit + 1);
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return {
      items: page.map(({ app }) => structuredClone(app)),
      nextCursor: rows.length > limit && last ? encodeAppCursor(sort, last.key, last.app.id) : null,
      total: matching.length,
    };
  }

  /** @inheritDoc */
  async getPersonalApp(tenantId: string, userId: string): Promise<AppRecord | undefined> {
    this.#assertOpen();
    for (const app of this.#apps.values()) {
      if (app.tenantId === tenantId && app.ownerUserId === userId) return structuredClone(app);
    }
    return undefined;
  }

  /** @inheritDoc */
  async scanApps(options: { limit: number; after?: string | undefined }): Promise<AppRecord[]> {
    this.#assertOpen();
    const { after } = options;
    return [...this.#apps.values()]
      .filter((app) => after === undefined || compareStrings(app.id, after) > 0)
      .sort((a, b) => compareStrings(a.id, b.id))
      .slice(0, options.limit)
      .map((app) => structuredClone(app));
  }

  /** @inheritDoc */
  async updateApp(tenantId: string, id: string, patch: AppPatch, now: Date): Promise<AppRecord | undefined> {
    this.#assertOpen();
    const app = this.#apps.get(id);
    if (!app || app.tenantId !== tenantId) return undefined;
    const updated: AppRecord = structuredClone(app);
    if (patch.name !== undefined) updated.name = patch.name;
    if (patch.description !== undefined) updated.description = patch.description;
    if (patch.customClaims !== undefined) updated.customClaims = structuredClone(patch.customClaims);
    updated.updatedAt = new Date(now.getTime());
    this.#apps.set(id, updated);
    return structuredClone(updated);
  }

  /** @inheritDoc */
  async deleteApp(tenantId: string, id: string, tombstone: Tombstone): Promise<boolean> {
    this.#assertOpen();
    const app = this.#apps.get(id);
    if (!app || app.tenantId !== tenantId) return false;
    for (const token of [...this.#tokens.values()]) {
      if (token.appId === id) {
        this.#tokens.delete(token.id);
        this.#tokenByHash.delete(token.hash);
        this.#families.delete(token.familyId!);
      }
    }
    for (const key of [...this.#clientKeys.values()]) if (key.appId === id) this.#clientKeys.delete(key.id);
    this.#apps.delete(id);
    this.#putTombstone(tombstone);
    this.#feed.emit([structuredClone(tombstone)]);
    return true;
  }

  // ---- API tokens ---------------------------------------------------------------------------

  /**
   * @inheritDoc
   * @throws AppTokensError `conflict` if the id or hash exists; `not_found` if the app is absent in the token's tenant.
   */
  async createApiToken(token: ApiTokenRecord, options: CreateApiTokenOptions = {}): Promise<void> {
    this.#assertOpen();
    const app = this.#apps.get(token.appId);
    if (!app || app.tenantId !== token.tenantId) {
      throw new AppTokensError('not_found', `App ${token.appId} does not exist.`);
    }
    if (options.maxActive !== undefined) {
      const at = token.createdAt.getTime();
      let active = 0;
      for (const t of this.#tokens.values()) {
        if (t.appId === token.appId && t.revokedAt === null && (t.expiresAt === null || t.expiresAt.getTime() > at)) active++;
      }
      if (active >= options.maxActive) throw tokensLimit(options.maxActive);
    }
    this.#assertTokensAreNew([token]);
    this.#putToken(token);
  }

  /** @inheritDoc */
  async listActiveApiTokens(tenantId: string, appId: string, options: { limit: number; cursor?: string | undefined }): Promise<Page<ApiTokenRecord>> {
    this.#assertOpen();
    const { limit, after } = parseListOptions(options);
    const rows = [...this.#tokens.values()]
      .filter((t) => t.appId === appId && t.tenantId === tenantId && t.revokedAt === null)
      .filter((t) => {
        if (!after) return true;
        const c = t.createdAt.getTime();
        return c > after.createdAt || (c === after.createdAt && compareStrings(t.id, after.id) > 0);
      })
      .sort(compareByCreatedAtThenId)
      .slice(0, limit + 1);
    const items = rows.slice(0, limit).map((t) => structuredClone(t));
    const last = items[items.length - 1];
    return { items, nextCursor: rows.length > limit && last ? encodeCursor(last.createdAt, last.id) : null };
  }

  /** @inheritDoc */
  async getApiToken(tenantId: string, id: string): Promise<ApiTokenRecord | undefined> {
    this.#assertOpen();
    const token = this.#tokens.get(id);
    return token && token.tenantId === tenantId ? structuredClone(token) : undefined;
  }

  /** @inheritDoc */
  async findApiTokenByHash(hash: string): Promise<ApiTokenRecord | undefined> {
    this.#assertOpen();
    const id = this.#tokenByHash.get(hash);
    const token = id === undefined ? undefined : this.#tokens.get(id);
    return token && structuredClone(token);
  }

  /** @inheritDoc */
  async listApiTokens(tenantId: string, appId: string): Promise<ApiTokenRecord[]> {
    this.#assertOpen();
    return [...this.#tokens.values()]
      .filter((token) => token.appId === appId && token.tenantId === tenantId)
      .sort(compareByCreatedAtThenId)
      .map((token) => structuredClone(token));
  }

  /** @inheritDoc */
  async replaceApiToken(input: ReplaceApiTokenInput): Promise<boolean> {
    this.#assertOpen();
    const { tenantId, oldId, expectedHash, reason, replacement, tombstone, retireAt } = input;
    const old = this.#tokens.get(oldId);
    // A retiring token (replacedBy set, not yet revoked) was rotated out: it never yields a new one.
    if (!old || old.tenantId !== tenantId || old.hash !== expectedHash || old.revokedAt !== null || old.replacedBy !== null) return false;
    // Check the replacement before writing anything, so a conflict leaves the old token active.
    this.#assertTokensAreNew([replacement]);
    if (retireAt !== undefined) {
      const expiresAt = old.expiresAt !== null && old.expiresAt < retireAt ? old.expiresAt : retireAt;
      this.#tokens.set(oldId, { ...old, expiresAt: new Date(expiresAt.getTime()), replacedBy: replacement.id });
      this.#putToken({ ...replacement, familyId: old.familyId! });
      this.#putTombstone(tombstone);
      this.#feed.emit([structuredClone(tombstone)]);
      return true;
    }
    this.#tokens.set(oldId, {
      ...old,
      revokedAt: new Date(tombstone.createdAt.getTime()),
      revokedReason: reason,
      replacedBy: replacement.id,
    });
    this.#putToken({ ...replacement, familyId: old.familyId! });
    this.#putTombstone(tombstone);
    this.#feed.emit([structuredClone(tombstone)]);
    return true;
  }

  /** @inheritDoc */
  async revokeApiTokenFamily(input: RevokeFamilyInput): Promise<RevokedFamily> {
    this.#assertOpen();
    const { tenantId, reusedId, tombstone, now } = input;
    const reused = this.#tokens.get(reusedId);
    if (!reused || reused.tenantId !== tenantId) return { detected: false, revoked: [] };
    const detected = reused.revokedReason === 'refreshed';
    if (detected) this.#tokens.set(reusedId, { ...reused, revokedReason: 'reuse_detected' });
    const revoked: string[] = [];
    const written: Tombstone[] = [];
    for (const id of this.#families.get(reused.familyId!) ?? []) {
      const token = this.#tokens.get(id);
      if (!token || token.revokedAt !== null) continue;
      this.#tokens.set(id, { ...token, revokedAt: new Date(now.getTime()), revokedReason: 'reuse_detected' });
      revoked.push(id);
      const t: Tombstone = { kind: 'api_token', id, tenantId, createdAt: new Date(tombstone.createdAt.getTime()), expiresAt: new Date(tombstone.expiresAt.getTime()) };
      this.#putTombstone(t);
      written.push(t);
    }
    this.#feed.emit(written.map((t) => structuredClone(t)));
    return { detected, revoked };
  }

  /** @inheritDoc Only the tombstones of the ids actually revoked are written and emitted. */
  async revokeApiTokens(
    tenantId: string,
    ids: string[],
    reason: ApiTokenRevocationReason,
    tombstones: Tombstone[],
    now: Date,
  ): Promise<string[]> {
    this.#assertOpen();
    const revoked: string[] = [];
    for (const id of new Set(ids)) {
      const token = this.#tokens.get(id);
      if (!token || token.tenantId !== tenantId || token.revokedAt !== null) continue;
      this.#tokens.set(id, { ...token, revokedAt: new Date(now.getTime()), revokedReason: reason });
      revoked.push(id);
    }
    const revokedSet = new Set(revoked);
    const written = tombstones.filter((t) => revokedSet.has(t.id));
    for (const t of written) this.#putTombstone(t);
    this.#feed.emit(written.map((t) => structuredClone(t)));
    return revoked;
  }

  /** @inheritDoc Unknown ids are ignored. */
  async touchApiTokens(uses: ReadonlyMap<string, Date>): Promise<void> {
    this.#assertOpen();
    for (const [id, date] of uses) {
      const token = this.#tokens.get(id);
      if (!token) continue;
      if (token.lastUsedAt === null || token.lastUsedAt.getTime() < date.getTime()) {
        this.#tokens.set(id, { ...token, lastUsedAt: new Date(date.getTime()) });
      }
    }
  }

  /** @inheritDoc */
  async listExpiringApiTokens(query: ExpiringTokensQuery): Promise<Page<ApiTokenRecord>> {
    this.#assertOpen();
    const { limit, after: cursor } = parseListOptions(query);
    const [from, to] = [query.after.getTime(), query.before.getTime()];
    const rows = [...this.#tokens.values()]
      .filter((t) => {
        const at = t.expiresAt?.getTime();
        if (t.revokedAt !== null || t.replacedBy !== null || at === undefined || at <= from || at > to) return false;
        return !cursor || at > cursor.createdAt || (at === cursor.createdAt && compareStrings(t.id, cursor.id) > 0);
      })
      .sort((a, b) => a.expiresAt!.getTime() - b.expiresAt!.getTime() || compareStrings(a.id, b.id))
      .slice(0, limit + 1);
    const items = rows.slice(0, limit).map((t) => structuredClone(t));
    const last = items[items.length - 1];
    return { items, nextCursor: rows.length > limit && last ? encodeCursor(last.expiresAt!, last.id) : null };
  }

  /** @inheritDoc */
  async claimExpiryNotice(tenantId: string, tokenId: string, threshold: number): Promise<boolean> {
    this.#assertOpen();
    const token = this.#tokens.get(tokenId);
    if (!token || token.tenantId !== tenantId || token.revokedAt !== null) return false;
    if (token.notifiedBefore != null && token.notifiedBefore <= threshold) return false;
    this.#tokens.set(tokenId, { ...token, notifiedBefore: threshold });
    return true;
  }

  /** @inheritDoc */
  async summarizeApiTokens(tenantId: string, appIds: readonly string[], at: { now: Date; soonBefore: Date }): Promise<Map<string, TokenSummary>> {
    this.#assertOpen();
    const out = new Map<string, TokenSummary>();
    for (const id of appIds) {
      const app = this.#apps.get(id);
      if (app && app.tenantId === tenantId) out.set(id, { active: 0, expiringSoon: 0, lastUsedAt: null });
    }
    const [now, soon] = [at.now.getTime(), at.soonBefore.getTime()];
    for (const t of this.#tokens.values()) {
      const summary = t.tenantId === tenantId ? out.get(t.appId) : undefined;
      if (!summary) continue;
      if (t.lastUsedAt && (!summary.lastUsedAt || t.lastUsedAt > summary.lastUsedAt)) summary.lastUsedAt = new Date(t.lastUsedAt.getTime());
      const exp = t.expiresAt?.getTime();
      if (t.revokedAt !== null || (exp !== undefined && exp <= now)) continue;
      summary.active++;
      if (t.replacedBy === null && exp !== undefined && exp <= soon) summary.expiringSoon++;
    }
    return out;
  }

  // ---- client keys --------------------------------------------------------------------------

  /** @inheritDoc */
  async listClientKeys(tenantId: string, appId: string): Promise<ClientKeyRecord[]> {
    this.#assertOpen();
    return [...this.#clientKeys.values()]
      .filter((k) => k.appId === appId && k.tenantId === tenantId)
      .sort(compareByCreatedAtThenId)
      .map((k) => structuredClone(k));
  }

  /** @inheritDoc */
  async addClientKey(key: ClientKeyRecord, options: AddClientKeyOptions = {}): Promise<void> {
    this.#assertOpen();
    const app = this.#apps.get(key.appId);
    if (!app || app.tenantId !== key.tenantId) throw new AppTokensError('not_found', `App ${key.appId} does not exist.`);
    let count = 0;
    for (const k of this.#clientKeys.values()) {
      if (k.appId !== key.appId) continue;
      count++;
      if (k.kid === key.kid) throw new AppTokensError('conflict', `The app already has a key with kid ${key.kid}.`);
    }
    if (this.#clientKeys.has(key.id)) throw new AppTokensError('conflict', `Key ${key.id} already exists.`);
    if (options.maxPerApp !== undefined && count >= options.maxPerApp) throw keysLimit(options.maxPerApp);
    this.#clientKeys.set(key.id, structuredClone(key));
  }

  /** @inheritDoc */
  async deleteClientKey(
    tenantId: string,
    appId: string,
    kid: string,
    tombstone: { createdAt: Date; expiresAt: Date },
  ): Promise<ClientKeyRecord | undefined> {
    this.#assertOpen();
    const key = [...this.#clientKeys.values()].find((k) => k.appId === appId && k.tenantId === tenantId && k.kid === kid);
    if (!key) return undefined;
    this.#clientKeys.delete(key.id);
    const t: Tombstone = { kind: 'api_token', id: key.id, tenantId, createdAt: new Date(tombstone.createdAt.getTime()), expiresAt: new Date(tombstone.expiresAt.getTime()) };
    this.#putTombstone(t);
    this.#feed.emit([structuredClone(t)]);
    return structuredClone(key);
  }

  /** @inheritDoc */
  async useOnce(kind: UsedOnceKind, key: string, expiresAt: Date): Promise<boolean> {
    this.#assertOpen();
    const k = `${kind}\u0000${key}`;
    if (this.#usedOnce.has(k)) return false;
    this.#usedOnce.set(k, expiresAt.getTime());
    return true;
  }

  /** @inheritDoc */
  async addRateUsage(key: string, windowStart: number, count: number, expiresAt: Date): Promise<number> {
    this.#assertOpen();
    const k = `${key}\u0000${windowStart}`;
    const c = this.#rateUsage.get(k);
    if (c) {
      c.used += count;
      c.expiresAt = Math.max(c.expiresAt, expiresAt.getTime());
      return c.used;
    }
    this.#rateUsage.set(k, { used: count, expiresAt: expiresAt.getTime() });
    return count;
  }

  // ---- audit events -------------------------------------------------------------------------

  /**
   * @inheritDoc All or nothing: every id is checked (against the store and within the batch)
   * before any event is inserted.
   * @throws AppTokensError `conflict` if an id exists or appears twice in `events`.
   */
  async appendEvents(events: AuditEventRecord[]): Promise<void> {
    this.#assertOpen();
    const ids = new Set<string>();
    for (const event of events) {
      if (this.#events.has(event.id) || ids.has(event.id)) {
        throw new AppTokensError('conflict', `Event ${event.id} already exists.`);
      }
      ids.add(event.id);
    }
    // Clone everything before inserting anything, so a value structuredClone rejects leaves no trace.
    const copies = events.map((event) => structuredClone(event));
    for (const event of copies) {
      this.#events.set(event.id, event);
      if (event.appId === null) continue;
      const key = eventKey(event.tenantId, event.appId);
      let list = this.#eventsByApp.get(key);
      if (!list) {
        list = [];
        this.#eventsByApp.set(key, list);
      }
      // Oldest first, so that a new event (the usual case) is a push, not a shift of the whole list.
      const i = firstNotBefore(list, event.at.getTime(), event.id);
      if (i === list.length) list.push(event);
      else list.splice(i, 0, event);
    }
  }

  /**
   * Keyset pagination on (`at`, `id`), both descending.
   * @throws AppTokensError `validation_failed` for a malformed cursor or a `limit` that is not a positive integer.
   */
  async listEvents(tenantId: string, appId: string, options: ListEventsOptions): Promise<Page<AuditEventRecord>> {
    this.#assertOpen();
    const { limit, after } = parseListOptions(options);
    const types = options.types && options.types.length > 0 ? new Set<string>(options.types) : undefined;
    const list = this.#eventsByApp.get(eventKey(tenantId, appId)) ?? [];
    // The list is oldest first: newest first is read backwards from just before the cursor.
    const end = after ? firstNotBefore(list, after.createdAt, after.id) : list.length;
    const rows: AuditEventRecord[] = [];
    for (let i = end - 1; i >= 0 && rows.length <= limit; i -= 1) {
      if (!types || types.has(list[i]!.type)) rows.push(list[i]!);
    }
    const items = rows.slice(0, limit).map((event) => structuredClone(event));
    const last = items[items.length - 1];
    return { items, nextCursor: rows.length > limit && last ? encodeCursor(last.at, last.id) : null };
  }

  // ---- usage counts -------------------------------------------------------------------------

  /** @inheritDoc */
  async addUsage(counts: readonly UsageCount[]): Promise<void> {
    this.#assertOpen();
    for (const c of mergeUsageCounts(counts)) {
      const key = usageKey(c.tenantId, c.appId, c.tokenId, c.hour, c.metric);
      const row = this.#usage.get(key);
      if (row) row.count += c.count;
      else this.#usage.set(key, { ...c });
    }
  }

  /** @inheritDoc */
  async readUsage(tenantId: string, appId: string, query: UsageQuery): Promise<UsageRow[]> {
    this.#assertOpen();
    const [from, to] = [query.from.getTime(), query.to.getTime()];
    const size = query.interval === 'day' ? 24 * USAGE_HOUR_MS : USAGE_HOUR_MS;
    const sums = new Map<string, UsageRow>();
    for (const c of this.#usage.values()) {
      if (c.tenantId !== tenantId || c.appId !== appId || c.hour < from || c.hour >= to) continue;
      const start = c.hour - (c.hour % size);
      const key = `${start}\u0000${c.tokenId ?? ''}\u0000${c.metric}`;
      const row = sums.get(key);
      if (row) row.count += c.count;
      else sums.set(key, { start, tokenId: c.tokenId, metric: c.metric, count: c.count });
    }
    return [...sums.values()];
  }

  /** @inheritDoc */
  async summarizeUsage(tenantId: string, appIds: readonly string[], since: { since24h: Date; since30d: Date }): Promise<Map<string, UsageTotals>> {
    this.#assertOpen();
    const wanted = new Set(appIds);
    const [day, month] = [since.since24h.getTime(), since.since30d.getTime()];
    const out = new Map<string, UsageTotals>();
    for (const c of this.#usage.values()) {
      if (c.tenantId !== tenantId || !wanted.has(c.appId) || c.hour < month) continue;
      let totals = out.get(c.appId);
      if (!totals) out.set(c.appId, (totals = { last24h: {}, last30d: {} }));
      totals.last30d[c.metric] = (totals.last30d[c.metric] ?? 0) + c.count;
      if (c.hour >= day) totals.last24h[c.metric] = (totals.last24h[c.metric] ?? 0) + c.count;
    }
    return out;
  }

  /** @inheritDoc */
  async pruneUsage(before: Date, limit: number): Promise<number> {
    this.#assertOpen();
    const cutoff = before.getTime();
    let n = 0;
    for (const [key, c] of this.#usage) {
      if (n >= limit) break;
      if (c.hour < cutoff) {
        this.#usage.delete(key);
        n++;
      }
    }
    return n;
  }

  // ---- signing keys -------------------------------------------------------------------------

  /** @inheritDoc */
  async pruneEvents(before: Date, limit: number): Promise<number> {
    this.#assertOpen();
    const cutoff = before.getTime();
    const old = [...this.#events.values()]
      .filter((e) => e.at.getTime() < cutoff)
      .sort((a, b) => a.at.getTime() - b.at.getTime() || compareStrings(a.id, b.id))
      .slice(0, limit);
    for (const e of old) {
      this.#events.delete(e.id);
      if (e.appId !== null) {
        const key = eventKey(e.tenantId, e.appId);
        const list = this.#eventsByApp.get(key);
        if (list) {
          const i = list.findIndex((x) => x.id === e.id);
          if (i >= 0) list.splice(i, 1);
          if (list.length === 0) this.#eventsByApp.delete(key);
        }
      }
    }
    return old.length;
  }

  /** @inheritDoc */
  async listSigningKeys(): Promise<SigningKeyRecord[]> {
    this.#assertOpen();
    return [...this.#keys.values()]
      .sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || compareStrings(b.kid, a.kid))
      .map((key) => structuredClone(key));
  }

  /**
   * @inheritDoc The candidate is stored with `retiredAt = null` whatever it says.
   * @throws AppTokensError `conflict` if no key of that alg is active and `candidate.kid` is taken by a retired key.
   */
  async ensureSigningKey(candidate: SigningKeyRecord): Promise<SigningKeyRecord> {
    this.#assertOpen();
    for (const key of this.#keys.values()) {
      if (key.alg === candidate.alg && key.retiredAt === null) return structuredClone(key);
    }
    if (this.#keys.has(candidate.kid)) {
      throw new AppTokensError('conflict', `Signing key ${candidate.kid} already exists (retired).`);
    }
    const stored: SigningKeyRecord = { ...structuredClone(candidate), retiredAt: null };
    this.#keys.set(stored.kid, stored);
    return structuredClone(stored);
  }

  /** @inheritDoc */
  async rotateSigningKey(candidate: SigningKeyRecord, now: Date): Promise<string[]> {
    this.#assertOpen();
    if (this.#keys.has(candidate.kid)) {
      throw new AppTokensError('conflict', `Signing key ${candidate.kid} already exists.`);
    }
    const retired: string[] = [];
    for (const key of this.#keys.values()) {
      if (key.alg === candidate.alg && key.retiredAt === null) {
        key.retiredAt = new Date(now.getTime());
        retired.push(key.kid);
      }
    }
    this.#keys.set(candidate.kid, { ...structuredClone(candidate), retiredAt: null });
    return retired;
  }

  // ---- revocation ---------------------------------------------------------------------------

  /** @inheritDoc Every given tombstone is emitted, including ones that already existed. */
  async addTombstones(tombstones: Tombstone[]): Promise<void> {
    this.#assertOpen();
    for (const t of tombstones) this.#putTombstone(t);
    this.#feed.emit(tombstones.map((t) => structuredClone(t)));
  }

  /** @inheritDoc Expired means `expiresAt <= now`. Ordered by `createdAt`, then kind and id. */
  async listTombstones(now: Date, since?: Date): Promise<Tombstone[]> {
    this.#assertOpen();
    const nowMs = now.getTime();
    const sinceMs = since?.getTime();
    return [...this.#tombstones.values()]
      .filter((t) => t.expiresAt.getTime() > nowMs && (sinceMs === undefined || t.createdAt.getTime() >= sinceMs))
      .sort(
        (a, b) =>
          a.createdAt.getTime() - b.createdAt.getTime() || compareStrings(a.kind, b.kind) || compareStrings(a.id, b.id),
      )
      .map((t) => structuredClone(t));
  }

  /** @inheritDoc Deletes exactly what {@link MemoryStore.listTombstones} no longer returns (`expiresAt <= now`). */
  async purgeTombstones(now: Date): Promise<void> {
    this.#assertOpen();
    const nowMs = now.getTime();
    for (const [key, t] of this.#tombstones) {
      if (t.expiresAt.getTime() <= nowMs) this.#tombstones.delete(key);
    }
    for (const [key, expiresAt] of this.#usedOnce) if (expiresAt <= nowMs) this.#usedOnce.delete(key);
    for (const [key, c] of this.#rateUsage) if (c.expiresAt <= nowMs) this.#rateUsage.delete(key);
  }

  /** @inheritDoc */
  onChange(listener: ChangeListener): () => void {
    return this.#feed.subscribe(listener);
  }

  // ---- internals ----------------------------------------------------------------------------

  /** Throw `conflict` if a token id or hash is taken, in the store or within `tokens`. */
  #assertTokensAreNew(tokens: readonly ApiTokenRecord[]): void {
    const ids = new Set<string>();
    const hashes = new Set<string>();
    for (const token of tokens) {
      if (this.#tokens.has(token.id) || ids.has(token.id)) {
        throw new AppTokensError('conflict', `Token ${token.id} already exists.`);
      }
      if (this.#tokenByHash.has(token.hash) || hashes.has(token.hash)) {
        throw new AppTokensError('conflict', 'A token with that hash already exists.');
      }
      ids.add(token.id);
      hashes.add(token.hash);
    }
  }

  #putToken(token: ApiTokenRecord): void {
    const familyId = token.familyId ?? token.id;
    this.#tokens.set(token.id, { ...structuredClone(token), familyId, notifiedBefore: token.notifiedBefore ?? null });
    this.#tokenByHash.set(token.hash, token.id);
    let family = this.#families.get(familyId);
    if (!family) this.#families.set(familyId, (family = new Set()));
    family.add(token.id);
  }

  /** Insert unless a tombstone of that kind and id exists (the first one wins). */
  /** One per kind and id: a second merges (the earlier createdAt, the later expiresAt). */
  #putTombstone(tombstone: Tombstone): void {
    const key = `${tombstone.kind}\u0000${tombstone.id}`;
    const known = this.#tombstones.get(key);
    if (!known) {
      this.#tombstones.set(key, structuredClone(tombstone));
      return;
    }
    if (tombstone.createdAt < known.createdAt) known.createdAt = new Date(tombstone.createdAt.getTime());
    if (tombstone.expiresAt > known.expiresAt) known.expiresAt = new Date(tombstone.expiresAt.getTime());
  }
}

/** Code-unit order, the same as SQLite's BINARY and PostgreSQL's "C" collation for ASCII ids. */
function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function eventKey(tenantId: string, appId: string): string {
  return `${tenantId}\u0000${appId}`;
}

/**
 * Index of the first event of `list` (sorted by `at` desc, id desc) that comes strictly after the
 * position (`atMs`, `id`) in that order: `at < atMs`, or `at = atMs` and `id < id`.
 */
/** In a list sorted oldest first (`at`, then id), the index of the first event at or after (`atMs`, `id`). */
function firstNotBefore(list: readonly AuditEventRecord[], atMs: number, id: string): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const event = list[mid]!;
    const t = event.at.getTime();
    if (t < atMs || (t === atMs && event.id < id)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function compareByCreatedAtThenId(a: { createdAt: Date; id: string }, b: { createdAt: Date; id: string }): number {
  return a.createdAt.getTime() - b.createdAt.getTime() || compareStrings(a.id, b.id);
}

/** A fresh, empty {@link MemoryStore}. */
export function createMemoryStore(): MemoryStore {
  return new MemoryStore();
}

function usageKey(tenantId: string, appId: string, tokenId: string | null, hour: number, metric: string): string {
  return `${tenantId}\u0000${appId}\u0000${tokenId ?? ''}\u0000${hour}\u0000${metric}`;
}
