/**
 * {@link SqlStore}: the {@link Store} on a Kysely database, SQLite or PostgreSQL.
 *
 * Every query goes through Kysely's builder so that one code path serves both dialects; the few
 * differences (row locks) branch on {@link SqlStore.dialect}.
 *
 * @module
 */

import { sql, type Insertable, type Kysely, type Updateable } from 'kysely';
import { AppTokensError } from '../../src/core/errors.js';
import { ChangeFeed, USAGE_HOUR_MS, mergeUsageCounts, appNameKey, appsLimit, encodeAppCursor, encodeCursor, keysLimit, parseListAppsOptions, parseListOptions, tokensLimit } from '../../src/store.js';
import type {
  ApiTokenRecord,
  ApiTokenRevocationReason,
  AppPatch,
  AppRecord,
  AuditEventRecord,
  ChangeListener,
  CreateApiTokenOptions,
  AddClientKeyOptions,
  ClientAuthMethod,
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
import { migrateToLatest } from './migrations.js';
import type {
  ApiTokenRow,
  ApiTokensTable,
  AppRow,
  ClientKeyRow,
  ClientKeysTable,
  AppsTable,
  Database,
  EventRow,
  EventsTable,
  SigningKeyRow,
  SigningKeysTable,
  SqlDialectName,
  TombstoneRow,
  TombstonesTable,
} from './schema.js';

/** Options of {@link SqlStore}. */
export interface SqlStoreOptions {
  /** The Kysely instance; the store owns it and destroys it on {@link SqlStore.close}. */
  db: Kysely<Database>;
  /** Which SQL dialect `db` speaks. */
  dialect: SqlDialectName;
}

/** Bound parameters per statement stay far below SQLite's and PostgreSQL's limits. */
const CHUNK = 200;
/** Usage rows per upsert: 6 parameters each, 12 000 per statement (SQLite allows 32 766, PostgreSQL 65 535). */
const USAGE_CHUNK = 2000;

/**
 * A {@link Store} on SQLite or PostgreSQL through Kysely. Migrations run on {@link SqlStore.init},
 * which every other method awaits. Atomic methods run in one database transaction; tombstones
 * are emitted to `onChange` listeners after the transaction commits.
 */
export class SqlStore implements Store {
  /** The Kysely instance (exposed for tests and diagnostics; do not write through it). */
  readonly db: Kysely<Database>;
  /** The dialect of {@link SqlStore.db}. */
  readonly dialect: SqlDialectName;

  readonly #feed = new ChangeFeed();
  #init: Promise<void> | undefined;
  #closed: Promise<void> | undefined;

  /** Wrap a Kysely instance. Nothing touches the database before {@link SqlStore.init}. */
  constructor(options: SqlStoreOptions) {
    this.db = options.db;
    this.dialect = options.dialect;
  }

  /** Run pending migrations. Idempotent; concurrent calls share one run; a failed run may be retried. */
  init(): Promise<void> {
    if (this.#closed) return Promise.reject(closedError());
    this.#init ??= migrateToLatest(this.db, this.dialect).catch((error: unknown) => {
      this.#init = undefined;
      throw error instanceof AppTokensError
        ? error
        : new AppTokensError('unavailable', 'The token store could not be initialised.', { cause: error });
    });
    return this.#init;
  }

  /** Destroy the Kysely instance (closing its connections). Idempotent; later calls of other methods reject. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      await this.#init?.catch(() => undefined);
      await this.db.destroy();
    })();
    return this.#closed;
  }

  /**
   * Called after a transaction that wrote tombstones has committed: hands them to this process's
   * listeners. A subclass may also publish them to other processes (PostgreSQL NOTIFY).
   */
  protected committed(tombstones: Tombstone[]): void {
    this.#feed.emit(tombstones);
  }

  /** Hand tombstones learnt from elsewhere (another process) to this process's listeners. */
  protected deliver(tombstones: Tombstone[]): void {
    this.#feed.emit(tombstones);
  }

  async #ready(): Promise<Kysely<Database>> {
    if (this.#closed) throw closedError();
    await this.init();
    return this.db;
  }

  // ---- apps ---------------------------------------------------------------------------------

  /** @inheritDoc */
  async createApp(app: AppRecord, tokens: ApiTokenRecord[], options: CreateAppOptions = {}): Promise<void> {
    const db = await this.#ready();
    for (const token of tokens) checkTokenOfApp(token, app);
    try {
      await db.transaction().execute(async (trx) => {
        if (options.maxAppsPerTenant !== undefined) {
          // PostgreSQL: one creator per tenant at a time, so that the count and the insert are one
          // step (SQLite transactions are IMMEDIATE: writers are serialised already).
          if (this.dialect === 'postgres') await sql`select pg_advisory_xact_lock(hashtext(${`eat-apps:${app.tenantId}`}))`.execute(trx);
          const { n } = await trx
            .selectFrom('apps')
            .select((eb) => eb.fn.countAll<number | string | bigint>().as('n'))
            .where('tenant_id', '=', app.tenantId)
            .where('owner_user_id', 'is', null)
            .executeTakeFirstOrThrow();
          if (Number(n) >= options.maxAppsPerTenant) throw appsLimit(options.maxAppsPerTenant);
        }
        const existing = await trx.selectFrom('apps').select('id').where('id', '=', app.id).executeTakeFirst();
        if (existing) throw new AppTokensError('conflict', `App ${app.id} already exists.`);
        await assertTokensAreNew(trx, tokens);
        await trx.insertInto('apps').values(appToRow(app)).execute();
        for (const part of chunk(tokens, CHUNK / 10)) {
          await trx.insertInto('api_tokens').values(part.map(tokenToRow)).execute();
        }
        for (const key of options.keys ?? []) {
          if (key.appId !== app.id || key.tenantId !== app.tenantId) {
            throw new AppTokensError('validation_failed', `Key ${key.id} does not belong to app ${app.id}.`);
          }
          await trx.insertInto('client_keys').values(keyRecordToRow(key)).execute();
        }
      });
    } catch (error) {
      throw mapWriteError(error);
    }
  }

  /** @inheritDoc */
  async getApp(tenantId: string, id: string): Promise<AppRecord | undefined> {
    const db = await this.#ready();
    const row = await db
      .selectFrom('apps')
      .selectAll()
      .where('id', '=', id)
      .where('tenant_id', '=', tenantId)
      .executeTakeFirst();
    return row && rowToApp(row);
  }

  /** @inheritDoc */
  async getAppByClientId(id: string): Promise<AppRecord | undefined> {
    const db = await this.#ready();
    const row = await db.selectFrom('apps').selectAll().where('id', '=', id).executeTakeFirst();
    return row && rowToApp(row);
  }

  /**
   * Keyset pagination on (sort key, `id`); the total is a `count(*)` of the same filters.
   * @throws AppTokensError `validation_failed` for a malformed cursor (or another sort's), or a `limit` that is not a positive integer.
   */
  async listApps(tenantId: string, options: ListAppsOptions): Promise<AppPage> {
    const { limit, sort, after } = parseListAppsOptions(options);
    const { expiring, search, scope, role, unusedSince } = options;
    const db = await this.#ready();
    const pg = this.dialect === 'postgres';
    // Both dialects compare names ASCII-lowercased, byte by byte (PostgreSQL's lower() under the
    // "C" collation folds ASCII only, like SQLite's), so the same order and cursors on each.
    const nameKey = pg ? sql<string>`lower(apps.name collate "C")` : sql<string>`lower(apps.name)`;
    const contains = (haystack: ReturnType<typeof sql>, needle: string) =>
      pg ? sql<boolean>`strpos(${haystack}, ${needle}) > 0` : sql<boolean>`instr(${haystack}, ${needle}) > 0`;
    const lastUsed = sql<number | string>`(select coalesce(max(t.last_used_at), -1) from api_tokens t where t.app_id = apps.id)`;
    const usage = sort.usage
      ? sql<number | string>`(select coalesce(sum(u.count), 0) from usage_counts u where u.tenant_id = apps.tenant_id and u.app_id = apps.id and u.hour >= ${sort.usage.since.getTime()} and u.metric in (${sql.join(sort.usage.metrics.map((m) => sql`${m}`))}))`
      : undefined;
    const key = sort.by === 'name' ? nameKey : sort.by === 'lastUsed' ? lastUsed : sort.by === 'usage' ? usage! : sql<number | string>`apps.created_at`;
    const filtered = db
      .selectFrom('apps')
      .where('apps.tenant_id', '=', tenantId)
      .where('apps.owner_user_id', 'is', null)
      .$if(expiring !== undefined, (qb) =>
        qb.where(({ exists, selectFrom }) =>
          exists(
            selectFrom('api_tokens as t')
              .select('t.id')
              .whereRef('t.app_id', '=', 'apps.id')
              .where('t.revoked_at', 'is', null)
              .where('t.replaced_by', 'is', null)
              .where('t.expires_at', '>', expiring!.after.getTime())
              .where('t.expires_at', '<=', expiring!.before.getTime()),
          ),
        ),
      )
      .$if(search !== undefined, (qb) =>
        qb.where(sql<boolean>`(${contains(nameKey, appNameKey(search!))} or substr(apps.id, 1, ${search!.length}) = ${search!})`),
      )
      // Scopes and roles are JSON arrays of strings that need no escaping: a quoted token matches one element exactly.
      .$if(scope !== undefined, (qb) => qb.where(contains(sql`apps.scopes`, JSON.stringify(scope))))
      .$if(role !== undefined, (qb) => qb.where(contains(sql`apps.roles`, JSON.stringify(role))))
      .$if(unusedSince !== undefined, (qb) =>
        qb
          .where('apps.created_at', '<', unusedSince!.getTime())
          .where(({ not, exists, selectFrom }) =>
            not(
              exists(
                selectFrom('api_tokens as u')
                  .select('u.id')
                  .whereRef('u.app_id', '=', 'apps.id')
                  .where('u.last_used_at', '>=', unusedSince!.getTime()),
              ),
            ),
          ),
      );
    const cmp = sort.order === 'asc' ? sql.raw('>') : sql.raw('<');
    const dir = sort.order;
    const [rows, count] = await Promise.all([
      filtered
        .selectAll('apps')
        .select(key.as('sort_key'))
        .$if(after !== undefined, (qb) =>
          qb.where(sql<boolean>`(${key} ${cmp} ${after!.key} or (${key} = ${after!.key} and apps.id ${cmp} ${after!.id}))`),
        )
        .orderBy(key, dir)
        .orderBy('apps.id', dir)
        .limit(limit + 1)
        .execute(),
      filtered.select((eb) => eb.fn.countAll<number | string | bigint>().as('n')).executeTakeFirstOrThrow(),
    ]);
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    const lastKey = last === undefined ? undefined : sort.by === 'name' ? String(last.sort_key) : Number(last.sort_key);
    return {
      items: page.map(rowToApp),
      nextCursor: rows.length > limit && last ? encodeAppCursor(sort, lastKey!, last.id) : null,
      total: Number(count.n),
    };
  }

  /** @inheritDoc */
  async getPersonalApp(tenantId: string, userId: string): Promise<AppRecord | undefined> {
    const db = await this.#ready();
    const row = await db
      .selectFrom('apps')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('owner_user_id', '=', userId)
      .executeTakeFirst();
    return row && rowToApp(row);
  }

  /** @inheritDoc */
  async scanApps(options: { limit: number; after?: string | undefined }): Promise<AppRecord[]> {
    const db = await this.#ready();
    let query = db.selectFrom('apps').selectAll().orderBy('id', 'asc').limit(options.limit);
    if (options.after !== undefined) query = query.where('id', '>', options.after);
    return (await query.execute()).map(rowToApp);
  }

  /** @inheritDoc */
  async updateApp(tenantId: string, id: string, patch: AppPatch, now: Date): Promise<AppRecord | undefined> {
    const db = await this.#ready();
    const set: Updateable<AppsTable> = { updated_at: now.getTime() };
    if (patch.name !== undefined) set.name = patch.name;
    if (patch.description !== undefined) set.description = patch.description;
    if (patch.customClaims !== undefined) set.custom_claims = JSON.stringify(patch.customClaims);
    // One statement: atomic on both dialects.
    const row = await db
      .updateTable('apps')
      .set(set)
      .where('id', '=', id)
      .where('tenant_id', '=', tenantId)
      .returningAll()
      .executeTakeFirst();
    return row && rowToApp(row);
  }

  /** @inheritDoc */
  async deleteApp(tenantId: string, id: string, tombstone: Tombstone): Promise<boolean> {
    const db = await this.#ready();
    const deleted = await db.transaction().execute(async (trx) => {
      const found = await trx
        .selectFrom('apps')
        .select('id')
        .where('id', '=', id)
        .where('tenant_id', '=', tenantId)
        .$if(this.dialect === 'postgres', (qb) => qb.forUpdate())
        .executeTakeFirst();
      if (!found) return false;
      await trx.deleteFrom('api_tokens').where('app_id', '=', id).execute();
      await trx.deleteFrom('client_keys').where('app_id', '=', id).execute();
      const result = await trx.deleteFrom('apps').where('id', '=', id).executeTakeFirst();
      if (result.numDeletedRows !== 1n) return false;
      await insertTombstones(trx, [tombstone]);
      return true;
    });
    if (deleted) this.committed([copyTombstone(tombstone)]);
    return deleted;
  }

  // ---- API tokens ---------------------------------------------------------------------------

  /**
   * @inheritDoc
   * @throws AppTokensError `conflict` if the id or hash exists; `not_found` if the app is absent in the token's tenant.
   */
  async createApiToken(token: ApiTokenRecord, options: CreateApiTokenOptions = {}): Promise<void> {
    const db = await this.#ready();
    try {
      await db.transaction().execute(async (trx) => {
        // The app's row lock (PostgreSQL) makes concurrent issuers for one app count one at a time.
        const app = await trx
          .selectFrom('apps')
          .select('id')
          .where('id', '=', token.appId)
          .where('tenant_id', '=', token.tenantId)
          .$if(this.dialect === 'postgres' && options.maxActive !== undefined, (qb) => qb.forUpdate())
          .executeTakeFirst();
        if (!app) throw new AppTokensError('not_found', `App ${token.appId} does not exist.`);
        if (options.maxActive !== undefined) {
          const at = token.createdAt.getTime();
          const { n } = await trx
            .selectFrom('api_tokens')
            .select((eb) => eb.fn.countAll<number | string | bigint>().as('n'))
            .where('app_id', '=', token.appId)
            .where('revoked_at', 'is', null)
            .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', at)]))
            .executeTakeFirstOrThrow();
          if (Number(n) >= options.maxActive) throw tokensLimit(options.maxActive);
        }
        await assertTokensAreNew(trx, [token]);
        await trx.insertInto('api_tokens').values(tokenToRow(token)).execute();
      });
    } catch (error) {
      throw mapWriteError(error);
    }
  }

  /** @inheritDoc */
  async getApiToken(tenantId: string, id: string): Promise<ApiTokenRecord | undefined> {
    const db = await this.#ready();
    const row = await db
      .selectFrom('api_tokens')
      .selectAll()
      .where('id', '=', id)
      .where('tenant_id', '=', tenantId)
      .executeTakeFirst();
    return row && rowToToken(row);
  }

  /** @inheritDoc */
  async findApiTokenByHash(hash: string): Promise<ApiTokenRecord | undefined> {
    const db = await this.#ready();
    const row = await db.selectFrom('api_tokens').selectAll().where('hash', '=', hash).executeTakeFirst();
    return row && rowToToken(row);
  }

  /** @inheritDoc */
  async listActiveApiTokens(tenantId: string, appId: string, options: { limit: number; cursor?: string | undefined }): Promise<Page<ApiTokenRecord>> {
    const { limit, after } = parseListOptions(options);
    const db = await this.#ready();
    const rows = await db
      .selectFrom('api_tokens')
      .selectAll()
      .where('app_id', '=', appId)
      .where('tenant_id', '=', tenantId)
      .where('revoked_at', 'is', null)
      .$if(after !== undefined, (qb) => qb.where(sql<boolean>`(created_at > ${after!.createdAt} or (created_at = ${after!.createdAt} and id > ${after!.id}))`))
      .orderBy('created_at', 'asc')
      .orderBy('id', 'asc')
      .limit(limit + 1)
      .execute();
    return keysetPage(rows, limit, rowToToken);
  }

  /** @inheritDoc */
  async listApiTokens(tenantId: string, appId: string): Promise<ApiTokenRecord[]> {
    const db = await this.#ready();
    const rows = await db
      .selectFrom('api_tokens')
      .selectAll()
      .where('app_id', '=', appId)
      .where('tenant_id', '=', tenantId)
      .orderBy('created_at', 'asc')
      .orderBy('id', 'asc')
      .execute();
    return rows.map(rowToToken);
  }

  /** @inheritDoc */
  async replaceApiToken(input: ReplaceApiTokenInput): Promise<boolean> {
    const db = await this.#ready();
    const { tenantId, oldId, expectedHash, reason, replacement, tombstone, retireAt } = input;
    const retiring = retireAt !== undefined;
    let swapped: boolean;
    try {
      swapped = await db.transaction().execute(async (trx) => {
        // Lock order app → tokens, as deleteApp takes it: the insert's foreign-key check would
        // otherwise lock the app row after this token row, and a concurrent deletion of the app
        // (app row, then its tokens) deadlocks with it (issue 22, found by npm run chaos).
        if (this.dialect === 'postgres') {
          const app = await trx
            .selectFrom('apps')
            .select('id')
            .where('id', '=', replacement.appId)
            .where('tenant_id', '=', tenantId)
            .forKeyShare()
            .executeTakeFirst();
          if (app === undefined) return false;
        }
        // The compare-and-swap: only one caller can flip revoked_at from NULL (or, with a grace
        // period, set replaced_by on a still active token). A retiring token (replaced_by set)
        // never matches: a rotated-out credential yields no new one (RFC 9700 §4.14.2).
        const result = await trx
          .updateTable('api_tokens')
          .set(
            retiring
              ? {
                  replaced_by: replacement.id,
                  expires_at: sql<number>`case when expires_at is not null and expires_at < ${retireAt.getTime()} then expires_at else ${retireAt.getTime()} end`,
                }
              : { revoked_at: tombstone.createdAt.getTime(), revoked_reason: reason, replaced_by: replacement.id },
          )
          .where('id', '=', oldId)
          .where('tenant_id', '=', tenantId)
          .where('hash', '=', expectedHash)
          .where('revoked_at', 'is', null)
          .where('replaced_by', 'is', null)
          .returning('family_id')
          .executeTakeFirst();
        if (result === undefined) return false;
        await assertTokensAreNew(trx, [replacement]);
        // The replacement joins the old token's family, whatever the caller set.
        await trx.insertInto('api_tokens').values({ ...tokenToRow(replacement), family_id: result.family_id }).execute();
        await insertTombstones(trx, [tombstone]);
        return true;
      });
    } catch (error) {
      throw mapWriteError(error);
    }
    if (swapped) this.committed([copyTombstone(tombstone)]);
    return swapped;
  }

  /** @inheritDoc Only the tombstones of the ids actually revoked are written and emitted. */
  async revokeApiTokens(
    tenantId: string,
    ids: string[],
    reason: ApiTokenRevocationReason,
    tombstones: Tombstone[],
    now: Date,
  ): Promise<string[]> {
    const db = await this.#ready();
    const wanted = [...new Set(ids)];
    if (wanted.length === 0) return [];
    const { revoked, written } = await db.transaction().execute(async (trx) => {
      const revokedIds = new Set<string>();
      for (const part of chunk(wanted, CHUNK)) {
        const rows = await trx
          .updateTable('api_tokens')
          .set({ revoked_at: now.getTime(), revoked_reason: reason })
          .where('tenant_id', '=', tenantId)
          .where('id', 'in', part)
          .where('revoked_at', 'is', null)
          .returning('id')
          .execute();
        for (const row of rows) revokedIds.add(row.id);
      }
      const toWrite = tombstones.filter((t) => revokedIds.has(t.id));
      await insertTombstones(trx, toWrite);
      return { revoked: wanted.filter((id) => revokedIds.has(id)), written: toWrite };
    });
    this.committed(written.map(copyTombstone));
    return revoked;
  }

  /** @inheritDoc */
  async revokeApiTokenFamily(input: RevokeFamilyInput): Promise<RevokedFamily> {
    const db = await this.#ready();
    const { tenantId, reusedId, tombstone, now } = input;
    const { detected, revoked, written } = await db.transaction().execute(async (trx) => {
      // The flip is the compare-and-swap that makes exactly one caller the detector.
      const flipped = await trx
        .updateTable('api_tokens')
        .set({ revoked_reason: 'reuse_detected' })
        .where('id', '=', reusedId)
        .where('tenant_id', '=', tenantId)
        .where('revoked_reason', '=', 'refreshed')
        .returning('family_id')
        .executeTakeFirst();
      const family =
        flipped?.family_id ??
        (await trx.selectFrom('api_tokens').select('family_id').where('id', '=', reusedId).where('tenant_id', '=', tenantId).executeTakeFirst())
          ?.family_id;
      if (family === undefined) return { detected: false, revoked: [] as string[], written: [] as Tombstone[] };
      const rows = await trx
        .updateTable('api_tokens')
        .set({ revoked_at: now.getTime(), revoked_reason: 'reuse_detected' })
        .where('tenant_id', '=', tenantId)
        .where('family_id', '=', family)
        .where('revoked_at', 'is', null)
        .returning('id')
        .execute();
      const toWrite: Tombstone[] = rows.map((r) => ({ kind: 'api_token', id: r.id, tenantId, createdAt: tombstone.createdAt, expiresAt: tombstone.expiresAt }));
      await insertTombstones(trx, toWrite);
      return { detected: flipped !== undefined, revoked: rows.map((r) => r.id), written: toWrite };
    });
    this.committed(written.map(copyTombstone));
    return { detected, revoked };
  }

  /** @inheritDoc Unknown ids are ignored. */
  async touchApiTokens(uses: ReadonlyMap<string, Date>): Promise<void> {
    const db = await this.#ready();
    if (uses.size === 0) return;
    await db.transaction().execute(async (trx) => {
      for (const [id, date] of uses) {
        const ms = date.getTime();
        await trx
          .updateTable('api_tokens')
          .set({ last_used_at: ms })
          .where('id', '=', id)
          .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<', ms)]))
          .execute();
      }
    });
  }

  /** @inheritDoc */
  async listExpiringApiTokens(query: ExpiringTokensQuery): Promise<Page<ApiTokenRecord>> {
    const { limit, after: cursor } = parseListOptions(query);
    const db = await this.#ready();
    const rows = await db
      .selectFrom('api_tokens')
      .selectAll()
      .where('expires_at', '>', query.after.getTime())
      .where('expires_at', '<=', query.before.getTime())
      .where('revoked_at', 'is', null)
      .where('replaced_by', 'is', null)
      .$if(cursor !== undefined, (qb) => qb.where(sql<boolean>`(expires_at > ${cursor!.createdAt} or (expires_at = ${cursor!.createdAt} and id > ${cursor!.id}))`))
      .orderBy('expires_at', 'asc')
      .orderBy('id', 'asc')
      .limit(limit + 1)
      .execute();
    const items = rows.slice(0, limit).map(rowToToken);
    const last = items[items.length - 1];
    return { items, nextCursor: rows.length > limit && last ? encodeCursor(last.expiresAt!, last.id) : null };
  }

  /** @inheritDoc One conditional UPDATE: the database decides which caller claims. */
  async claimExpiryNotice(tenantId: string, tokenId: string, threshold: number): Promise<boolean> {
    const db = await this.#ready();
    const result = await db
      .updateTable('api_tokens')
      .set({ notified_before: threshold })
      .where('id', '=', tokenId)
      .where('tenant_id', '=', tenantId)
      .where('revoked_at', 'is', null)
      .where((eb) => eb.or([eb('notified_before', 'is', null), eb('notified_before', '>', threshold)]))
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /** @inheritDoc One grouped query per chunk of apps. */
  async summarizeApiTokens(tenantId: string, appIds: readonly string[], at: { now: Date; soonBefore: Date }): Promise<Map<string, TokenSummary>> {
    const db = await this.#ready();
    const out = new Map<string, TokenSummary>();
    const [now, soon] = [at.now.getTime(), at.soonBefore.getTime()];
    for (const part of chunk([...new Set(appIds)], CHUNK)) {
      if (part.length === 0) continue;
      const rows = await db
        .selectFrom('apps')
        .leftJoin('api_tokens as t', 't.app_id', 'apps.id')
        .select((eb) => [
          'apps.id as id',
          eb.fn.max('t.last_used_at').as('last_used_at'),
          eb.fn
            .sum<number | string | null>(
              sql`case when t.id is not null and t.revoked_at is null and (t.expires_at is null or t.expires_at > ${now}) then 1 else 0 end`,
            )
            .as('active'),
          eb.fn
            .sum<number | string | null>(
              sql`case when t.revoked_at is null and t.replaced_by is null and t.expires_at > ${now} and t.expires_at <= ${soon} then 1 else 0 end`,
            )
            .as('soon'),
        ])
        .where('apps.tenant_id', '=', tenantId)
        .where('apps.id', 'in', part)
        .groupBy('apps.id')
        .execute();
      for (const row of rows) {
        out.set(row.id, {
          active: Number(row.active ?? 0),
          expiringSoon: Number(row.soon ?? 0),
          lastUsedAt: dateOrNull(row.last_used_at as number | string | bigint | null),
        });
      }
    }
    return out;
  }

  // ---- client keys --------------------------------------------------------------------------

  /** @inheritDoc */
  async listClientKeys(tenantId: string, appId: string): Promise<ClientKeyRecord[]> {
    const db = await this.#ready();
    const rows = await db
      .selectFrom('client_keys')
      .selectAll()
      .where('app_id', '=', appId)
      .where('tenant_id', '=', tenantId)
      .orderBy('created_at', 'asc')
      .orderBy('id', 'asc')
      .execute();
    return rows.map(rowToKeyRecord);
  }

  /** @inheritDoc */
  async addClientKey(key: ClientKeyRecord, options: AddClientKeyOptions = {}): Promise<void> {
    const db = await this.#ready();
    try {
      await db.transaction().execute(async (trx) => {
        // The app row, locked: one key writer per app at a time, so the count and the insert are one step.
        const app = await trx
          .selectFrom('apps')
          .select('id')
          .where('id', '=', key.appId)
          .where('tenant_id', '=', key.tenantId)
          .$if(this.dialect === 'postgres', (qb) => qb.forUpdate())
          .executeTakeFirst();
        if (!app) throw new AppTokensError('not_found', `App ${key.appId} does not exist.`);
        if (options.maxPerApp !== undefined) {
          const { n } = await trx
            .selectFrom('client_keys')
            .select((eb) => eb.fn.countAll<number | string | bigint>().as('n'))
            .where('app_id', '=', key.appId)
            .executeTakeFirstOrThrow();
          if (Number(n) >= options.maxPerApp) throw keysLimit(options.maxPerApp);
        }
        await trx.insertInto('client_keys').values(keyRecordToRow(key)).execute();
      });
    } catch (error) {
      throw mapWriteError(error);
    }
  }

  /** @inheritDoc */
  async deleteClientKey(
    tenantId: string,
    appId: string,
    kid: string,
    tombstone: { createdAt: Date; expiresAt: Date },
  ): Promise<ClientKeyRecord | undefined> {
    const db = await this.#ready();
    const result = await db.transaction().execute(async (trx) => {
      const row = await trx
        .deleteFrom('client_keys')
        .where('app_id', '=', appId)
        .where('tenant_id', '=', tenantId)
        .where('kid', '=', kid)
        .returningAll()
        .executeTakeFirst();
      if (!row) return undefined;
      const t: Tombstone = { kind: 'api_token', id: row.id, tenantId, createdAt: tombstone.createdAt, expiresAt: tombstone.expiresAt };
      await insertTombstones(trx, [t]);
      return { key: rowToKeyRecord(row), tombstone: t };
    });
    if (!result) return undefined;
    this.committed([copyTombstone(result.tombstone)]);
    return result.key;
  }

  /** @inheritDoc One INSERT … ON CONFLICT DO NOTHING: the primary key decides. */
  async useOnce(kind: UsedOnceKind, key: string, expiresAt: Date): Promise<boolean> {
    const db = await this.#ready();
    const result = await db
      .insertInto('used_once')
      .values({ kind, key, expires_at: expiresAt.getTime() })
      .onConflict((oc) => oc.columns(['kind', 'key']).doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0n) === 1;
  }

  /** @inheritDoc One INSERT … ON CONFLICT DO UPDATE … RETURNING: the row lock makes the addition atomic. */
  async addRateUsage(key: string, windowStart: number, count: number, expiresAt: Date): Promise<number> {
    const db = await this.#ready();
    const row = await db
      .insertInto('rate_usage')
      .values({ key, window_start: windowStart, used: count, expires_at: expiresAt.getTime() })
      .onConflict((oc) => oc.columns(['key', 'window_start']).doUpdateSet((eb) => ({ used: eb('rate_usage.used', '+', count) })))
      .returning('used')
      .executeTakeFirstOrThrow();
    return Number(row.used);
  }

  // ---- usage counts -------------------------------------------------------------------------

  /**
   * @inheritDoc One multi-row `INSERT … ON CONFLICT DO UPDATE SET count = count + excluded.count`
   * per {@link USAGE_CHUNK} rows, in one transaction when there are several.
   */
  async addUsage(counts: readonly UsageCount[]): Promise<void> {
    const db = await this.#ready();
    const rows = mergeUsageCounts(counts).map((c) => ({
      tenant_id: c.tenantId,
      app_id: c.appId,
      token_id: c.tokenId ?? '',
      hour: c.hour,
      metric: c.metric,
      count: c.count,
    }));
    if (rows.length === 0) return;
    const write = async (trx: Kysely<Database>) => {
      for (const part of chunk(rows, USAGE_CHUNK)) {
        await trx
          .insertInto('usage_counts')
          .values(part)
          .onConflict((oc) =>
            oc
              .columns(['tenant_id', 'app_id', 'hour', 'token_id', 'metric'])
              .doUpdateSet((eb) => ({ count: eb('usage_counts.count', '+', eb.ref('excluded.count')) })),
          )
          .execute();
      }
    };
    // One statement is atomic by itself; several must add all or nothing, so a retried batch never counts twice.
    if (rows.length <= USAGE_CHUNK) await write(db);
    else await db.transaction().execute(write);
  }

  /** @inheritDoc One grouped query. */
  async readUsage(tenantId: string, appId: string, query: UsageQuery): Promise<UsageRow[]> {
    const db = await this.#ready();
    const size = query.interval === 'day' ? 24 * USAGE_HOUR_MS : USAGE_HOUR_MS;
    const start = sql<number | string>`hour - (hour % ${sql.lit(size)})`;
    const rows = await db
      .selectFrom('usage_counts')
      .select((eb) => [start.as('start'), 'token_id', 'metric', eb.fn.sum<number | string>('count').as('count')])
      .where('tenant_id', '=', tenantId)
      .where('app_id', '=', appId)
      .where('hour', '>=', query.from.getTime())
      .where('hour', '<', query.to.getTime())
      .groupBy([start, 'token_id', 'metric'])
      .execute();
    return rows.map((r) => ({ start: Number(r.start), tokenId: r.token_id === '' ? null : r.token_id, metric: r.metric, count: Number(r.count) }));
  }

  /** @inheritDoc One grouped query per chunk of apps. */
  async summarizeUsage(tenantId: string, appIds: readonly string[], since: { since24h: Date; since30d: Date }): Promise<Map<string, UsageTotals>> {
    const db = await this.#ready();
    const out = new Map<string, UsageTotals>();
    const day = since.since24h.getTime();
    for (const part of chunk([...new Set(appIds)], CHUNK)) {
      if (part.length === 0) continue;
      const rows = await db
        .selectFrom('usage_counts')
        .select((eb) => [
          'app_id',
          'metric',
          eb.fn.sum<number | string>(sql`case when hour >= ${day} then count else 0 end`).as('day'),
          eb.fn.sum<number | string>('count').as('month'),
        ])
        .where('tenant_id', '=', tenantId)
        .where('app_id', 'in', part)
        .where('hour', '>=', since.since30d.getTime())
        .groupBy(['app_id', 'metric'])
        .execute();
      for (const r of rows) {
        let totals = out.get(r.app_id);
        if (!totals) out.set(r.app_id, (totals = { last24h: {}, last30d: {} }));
        totals.last30d[r.metric] = Number(r.month);
        const d = Number(r.day);
        if (d > 0) totals.last24h[r.metric] = d;
      }
    }
    return out;
  }

  /** @inheritDoc Oldest hours first through the `hour` index, a bounded batch per statement. */
  async pruneUsage(before: Date, limit: number): Promise<number> {
    const db = await this.#ready();
    const row = this.dialect === 'postgres' ? sql.raw('ctid') : sql.raw('rowid');
    const result = await sql`delete from usage_counts where ${row} in (select ${row} from usage_counts where hour < ${before.getTime()} order by hour limit ${limit})`.execute(db);
    return Number(result.numAffectedRows ?? 0n);
  }

  // ---- audit events -------------------------------------------------------------------------

  /**
   * @inheritDoc All rows go in one transaction: a conflict anywhere in the batch leaves none of it.
   * @throws AppTokensError `conflict` if an id exists or appears twice in `events`.
   */
  async appendEvents(events: AuditEventRecord[]): Promise<void> {
    const db = await this.#ready();
    if (events.length === 0) return;
    const rows = events.map(eventToRow);
    try {
      await db.transaction().execute(async (trx) => {
        for (const part of chunk(rows, CHUNK / 10)) {
          await trx.insertInto('events').values(part).execute();
        }
      });
    } catch (error) {
      throw mapWriteError(error);
    }
  }

  /** @inheritDoc */
  async pruneEvents(before: Date, limit: number): Promise<number> {
    const db = await this.#ready();
    // Oldest first through the `at` index (migration 0004), a bounded batch per statement.
    const doomed = db.selectFrom('events').select('id').where('at', '<', before.getTime()).orderBy('at', 'asc').orderBy('id', 'asc').limit(limit);
    const result = await db.deleteFrom('events').where('id', 'in', doomed).executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  /**
   * Keyset pagination on (`at`, `id`), both descending.
   * @throws AppTokensError `validation_failed` for a malformed cursor or a `limit` that is not a positive integer.
   */
  async listEvents(tenantId: string, appId: string, options: ListEventsOptions): Promise<Page<AuditEventRecord>> {
    const { limit, after } = parseListOptions(options);
    const types = options.types && options.types.length > 0 ? [...options.types] : undefined;
    const db = await this.#ready();
    const rows = await db
      .selectFrom('events')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('app_id', '=', appId)
      .$if(types !== undefined, (qb) => qb.where('type', 'in', types!))
      .$if(after !== undefined, (qb) =>
        qb.where((eb) =>
          eb.or([
            eb('at', '<', after!.createdAt),
            eb.and([eb('at', '=', after!.createdAt), eb('id', '<', after!.id)]),
          ]),
        ),
      )
      .orderBy('at', 'desc')
      .orderBy('id', 'desc')
      .limit(limit + 1)
      .execute();
    const items = rows.slice(0, limit).map(rowToEvent);
    const last = items[items.length - 1];
    return { items, nextCursor: rows.length > limit && last ? encodeCursor(last.at, last.id) : null };
  }

  // ---- signing keys -------------------------------------------------------------------------

  /** @inheritDoc */
  async listSigningKeys(): Promise<SigningKeyRecord[]> {
    const db = await this.#ready();
    const rows = await db
      .selectFrom('signing_keys')
      .selectAll()
      .orderBy('created_at', 'desc')
      .orderBy('kid', 'desc')
      .execute();
    return rows.map(rowToKey);
  }

  /**
   * @inheritDoc The candidate is stored with `retiredAt = null` whatever it says.
   * @throws AppTokensError `conflict` if no key of that alg is active and `candidate.kid` is taken by a retired key.
   */
  async ensureSigningKey(candidate: SigningKeyRecord): Promise<SigningKeyRecord> {
    const db = await this.#ready();
    const active = await db.transaction().execute(async (trx) => {
      const selectActive = () =>
        trx
          .selectFrom('signing_keys')
          .selectAll()
          .where('alg', '=', candidate.alg)
          .where('retired_at', 'is', null)
          .executeTakeFirst();
      const existing = await selectActive();
      if (existing) return existing;
      // On PostgreSQL a concurrent transaction may insert first: the partial unique index on
      // (alg) WHERE retired_at IS NULL turns our insert into a no-op, and the re-read (a fresh
      // snapshot under READ COMMITTED) sees the winner.
      await trx
        .insertInto('signing_keys')
        .values(keyToRow({ ...candidate, retiredAt: null }))
        .onConflict((oc) => oc.doNothing())
        .execute();
      return selectActive();
    });
    if (!active) {
      throw new AppTokensError('conflict', `Signing key ${candidate.kid} already exists (retired).`);
    }
    return rowToKey(active);
  }

  /** @inheritDoc */
  async rotateSigningKey(candidate: SigningKeyRecord, now: Date): Promise<string[]> {
    const db = await this.#ready();
    try {
      return await db.transaction().execute(async (trx) => {
        const retired = await trx
          .updateTable('signing_keys')
          .set({ retired_at: now.getTime() })
          .where('alg', '=', candidate.alg)
          .where('retired_at', 'is', null)
          .returning('kid')
          .execute();
        await trx.insertInto('signing_keys').values(keyToRow({ ...candidate, retiredAt: null })).execute();
        return retired.map((r) => r.kid);
      });
    } catch (error) {
      throw mapWriteError(error);
    }
  }

  // ---- revocation ---------------------------------------------------------------------------

  /** @inheritDoc Every given tombstone is emitted, including ones that already existed. */
  async addTombstones(tombstones: Tombstone[]): Promise<void> {
    const db = await this.#ready();
    if (tombstones.length === 0) return;
    await db.transaction().execute((trx) => insertTombstones(trx, tombstones));
    this.committed(tombstones.map(copyTombstone));
  }

  /** @inheritDoc Expired means `expiresAt <= now`. Ordered by `createdAt`, then kind and id. */
  async listTombstones(now: Date, since?: Date): Promise<Tombstone[]> {
    const db = await this.#ready();
    const rows = await db
      .selectFrom('tombstones')
      .selectAll()
      .where('expires_at', '>', now.getTime())
      .$if(since !== undefined, (qb) => qb.where('created_at', '>=', since!.getTime()))
      .orderBy('created_at', 'asc')
      .orderBy('kind', 'asc')
      .orderBy('id', 'asc')
      .execute();
    return rows.map(rowToTombstone);
  }

  /** @inheritDoc Deletes exactly what {@link SqlStore.listTombstones} no longer returns (`expiresAt <= now`). */
  async purgeTombstones(now: Date): Promise<void> {
    const db = await this.#ready();
    await db.deleteFrom('tombstones').where('expires_at', '<=', now.getTime()).execute();
    await db.deleteFrom('used_once').where('expires_at', '<=', now.getTime()).execute();
    await db.deleteFrom('rate_usage').where('expires_at', '<=', now.getTime()).execute();
  }

  /** @inheritDoc */
  onChange(listener: ChangeListener): () => void {
    return this.#feed.subscribe(listener);
  }
}

// ---- helpers ----------------------------------------------------------------------------------

/** A keyset page from `limit + 1` rows ordered by (`created_at`, `id`): the extra row says there is more. */
function keysetPage<R, T extends { createdAt: Date; id: string }>(rows: R[], limit: number, map: (row: R) => T): Page<T> {
  const items = rows.slice(0, limit).map(map);
  const last = items[items.length - 1];
  return { items, nextCursor: rows.length > limit && last ? encodeCursor(last.createdAt, last.id) : null };
}

function closedError(): AppTokensError {
  return new AppTokensError('unavailable', 'The token store is closed.');
}

function chunk<T>(items: readonly T[], size: number): T[][] {
  const parts: T[][] = [];
  for (let i = 0; i < items.length; i += size) parts.push(items.slice(i, i + size));
  return parts;
}

function checkTokenOfApp(token: ApiTokenRecord, app: AppRecord): void {
  if (token.appId !== app.id || token.tenantId !== app.tenantId) {
    throw new AppTokensError('validation_failed', `Token ${token.id} does not belong to app ${app.id}.`);
  }
}

/** Throw `conflict` if a token id or hash is taken, in the store or within `tokens`. */
async function assertTokensAreNew(db: Kysely<Database>, tokens: readonly ApiTokenRecord[]): Promise<void> {
  if (tokens.length === 0) return;
  const ids = new Set<string>();
  const hashes = new Set<string>();
  for (const token of tokens) {
    if (ids.has(token.id)) throw new AppTokensError('conflict', `Token ${token.id} appears twice.`);
    if (hashes.has(token.hash)) throw new AppTokensError('conflict', 'Two tokens share a hash.');
    ids.add(token.id);
    hashes.add(token.hash);
  }
  for (const part of chunk(tokens, CHUNK / 2)) {
    const clash = await db
      .selectFrom('api_tokens')
      .select(['id', 'hash'])
      .where((eb) =>
        eb.or([
          eb('id', 'in', part.map((t) => t.id)),
          eb('hash', 'in', part.map((t) => t.hash)),
        ]),
      )
      .executeTakeFirst();
    if (clash) {
      throw new AppTokensError(
        'conflict',
        ids.has(clash.id) ? `Token ${clash.id} already exists.` : 'A token with that hash already exists.',
      );
    }
  }
}

async function insertTombstones(db: Kysely<Database>, tombstones: readonly Tombstone[]): Promise<void> {
  // PostgreSQL refuses to upsert one row twice in a statement: merge repeats within the batch first.
  const merged = new Map<string, Tombstone>();
  for (const t of tombstones) {
    const key = `${t.kind}\u0000${t.id}`;
    const known = merged.get(key);
    merged.set(
      key,
      known === undefined
        ? t
        : { ...t, createdAt: t.createdAt < known.createdAt ? t.createdAt : known.createdAt, expiresAt: t.expiresAt > known.expiresAt ? t.expiresAt : known.expiresAt },
    );
  }
  for (const part of chunk([...merged.values()], CHUNK / 5)) {
    // One tombstone per kind and id: a second one merges, taking effect from the earlier createdAt
    // (a token deleted during its rotation's grace period dies now, not at the deadline) and
    // lasting to the later expiresAt. CASE is portable where least()/min() are not.
    await db
      .insertInto('tombstones')
      .values(part.map(tombstoneToRow))
      .onConflict((oc) =>
        oc.columns(['kind', 'id']).doUpdateSet({
          created_at: sql`case when excluded.created_at < tombstones.created_at then excluded.created_at else tombstones.created_at end`,
          expires_at: sql`case when excluded.expires_at > tombstones.expires_at then excluded.expires_at else tombstones.expires_at end`,
        }),
      )
      .execute();
  }
}

/** Map a driver's constraint violation (raced past our pre-checks) to an {@link AppTokensError}. */
function mapWriteError(error: unknown): unknown {
  if (error instanceof AppTokensError) return error;
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  // PostgreSQL SQLSTATE 23505 / better-sqlite3 extended result codes.
  if (code === '23505' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE') {
    return new AppTokensError('conflict', 'A record with that id or hash already exists.', { cause: error });
  }
  if (code === '23503' || code === 'SQLITE_CONSTRAINT_FOREIGNKEY') {
    return new AppTokensError('not_found', 'The app of that token does not exist.', { cause: error });
  }
  return error;
}

function ms(value: number | string | bigint): number {
  return Number(value);
}

function msOrNull(value: number | string | bigint | null): number | null {
  return value === null ? null : Number(value);
}

function dateOrNull(value: number | string | bigint | null): Date | null {
  const n = msOrNull(value);
  return n === null ? null : new Date(n);
}

function appToRow(app: AppRecord): Insertable<AppsTable> {
  return {
    id: app.id,
    tenant_id: app.tenantId,
    name: app.name,
    description: app.description,
    scopes: JSON.stringify(app.scopes),
    custom_claims: JSON.stringify(app.customClaims),
    created_at: app.createdAt.getTime(),
    updated_at: app.updatedAt.getTime(),
    roles: JSON.stringify(app.roles ?? []),
    owner_user_id: app.ownerUserId ?? null,
    token_endpoint_auth_method: app.tokenEndpointAuthMethod ?? 'client_secret_basic',
    jwks_uri: app.jwksUri ?? null,
    dpop_bound: app.dpopBoundAccessTokens ? 1 : 0,
  };
}

function rowToApp(row: AppRow): AppRecord {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    name: row.name,
    description: row.description,
    scopes: JSON.parse(row.scopes) as string[],
    customClaims: JSON.parse(row.custom_claims) as Record<string, unknown>,
    createdAt: new Date(ms(row.created_at)),
    updatedAt: new Date(ms(row.updated_at)),
    roles: JSON.parse(row.roles) as string[],
    ownerUserId: row.owner_user_id,
    tokenEndpointAuthMethod: row.token_endpoint_auth_method as ClientAuthMethod,
    jwksUri: row.jwks_uri,
    dpopBoundAccessTokens: Number(row.dpop_bound) === 1,
  };
}

function keyRecordToRow(key: ClientKeyRecord): Insertable<ClientKeysTable> {
  return {
    id: key.id,
    app_id: key.appId,
    tenant_id: key.tenantId,
    kid: key.kid,
    alg: key.alg,
    jwk: key.jwk,
    created_at: key.createdAt.getTime(),
    expires_at: key.expiresAt?.getTime() ?? null,
  };
}

function rowToKeyRecord(row: ClientKeyRow): ClientKeyRecord {
  return {
    id: row.id,
    appId: row.app_id,
    tenantId: row.tenant_id,
    kid: row.kid,
    alg: row.alg,
    jwk: row.jwk,
    createdAt: new Date(ms(row.created_at)),
    expiresAt: dateOrNull(row.expires_at),
  };
}

function tokenToRow(token: ApiTokenRecord): Insertable<ApiTokensTable> {
  return {
    id: token.id,
    app_id: token.appId,
    tenant_id: token.tenantId,
    name: token.name,
    hash: token.hash,
    hint: token.hint,
    scopes: token.scopes === null ? null : JSON.stringify(token.scopes),
    created_at: token.createdAt.getTime(),
    expires_at: token.expiresAt?.getTime() ?? null,
    last_used_at: token.lastUsedAt?.getTime() ?? null,
    revoked_at: token.revokedAt?.getTime() ?? null,
    revoked_reason: token.revokedReason,
    replaced_by: token.replacedBy,
    family_id: token.familyId ?? token.id,
    notified_before: token.notifiedBefore ?? null,
  };
}

function rowToToken(row: ApiTokenRow): ApiTokenRecord {
  return {
    id: row.id,
    appId: row.app_id,
    tenantId: row.tenant_id,
    name: row.name,
    hash: row.hash,
    hint: row.hint,
    scopes: row.scopes === null ? null : (JSON.parse(row.scopes) as string[]),
    createdAt: new Date(ms(row.created_at)),
    expiresAt: dateOrNull(row.expires_at),
    lastUsedAt: dateOrNull(row.last_used_at),
    revokedAt: dateOrNull(row.revoked_at),
    revokedReason: row.revoked_reason,
    replacedBy: row.replaced_by,
    familyId: row.family_id,
    notifiedBefore: row.notified_before === null ? null : Number(row.notified_before),
  };
}

function keyToRow(key: SigningKeyRecord): Insertable<SigningKeysTable> {
  return {
    kid: key.kid,
    alg: key.alg,
    public_jwk: key.publicJwk,
    private_jwk: key.privateJwk,
    created_at: key.createdAt.getTime(),
    retired_at: key.retiredAt?.getTime() ?? null,
  };
}

function rowToKey(row: SigningKeyRow): SigningKeyRecord {
  return {
    kid: row.kid,
    alg: row.alg,
    publicJwk: row.public_jwk,
    privateJwk: row.private_jwk,
    createdAt: new Date(ms(row.created_at)),
    retiredAt: dateOrNull(row.retired_at),
  };
}

function tombstoneToRow(t: Tombstone): Insertable<TombstonesTable> {
  return {
    kind: t.kind,
    id: t.id,
    tenant_id: t.tenantId,
    created_at: t.createdAt.getTime(),
    expires_at: t.expiresAt.getTime(),
  };
}

function rowToTombstone(row: TombstoneRow): Tombstone {
  return {
    kind: row.kind,
    id: row.id,
    tenantId: row.tenant_id,
    createdAt: new Date(ms(row.created_at)),
    expiresAt: new Date(ms(row.expires_at)),
  };
}

function eventToRow(event: AuditEventRecord): Insertable<EventsTable> {
  return {
    id: event.id,
    type: event.type,
    outcome: event.outcome,
    tenant_id: event.tenantId,
    app_id: event.appId,
    token_id: event.tokenId,
    actor_id: event.actorId,
    at: event.at.getTime(),
    data: JSON.stringify(event.data),
  };
}

function rowToEvent(row: EventRow): AuditEventRecord {
  return {
    id: row.id,
    type: row.type,
    outcome: row.outcome,
    tenantId: row.tenant_id,
    appId: row.app_id,
    tokenId: row.token_id,
    actorId: row.actor_id,
    at: new Date(ms(row.at)),
    data: JSON.parse(row.data) as Record<string, unknown>,
  };
}

function copyTombstone(t: Tombstone): Tombstone {
  return { ...t, createdAt: new Date(t.createdAt.getTime()), expiresAt: new Date(t.expiresAt.getTime()) };
}
