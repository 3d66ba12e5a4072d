import { existsSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect, sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSqliteStore, migrations, MIGRATION_LOCK_TABLE, MIGRATION_TABLE } from '../adapters/sql/index.js';
import type { Database, SqlStore } from '../adapters/sql/index.js';
import type { ApiTokenRecord } from '../src/store.js';
import { withStatementCache } from '../adapters/sql/sqlite.js';
import { adapters, makeTempDir } from './adapters.js';
import { at, makeApp, makeEvent, makeKey, makeToken, makeTombstone, storeContract } from './store-contract.js';

for (const adapter of adapters) storeContract(adapter.name, adapter.make);

describe('sqlite (file): persistence', () => {
  const opened: SqlStore[] = [];
  let temp: ReturnType<typeof makeTempDir>;

  beforeEach(() => {
    temp = makeTempDir();
  });

  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close();
    await temp.cleanup();
  });

  function open(filename: string): SqlStore {
    const store = createSqliteStore({ filename });
    opened.push(store);
    return store;
  }

  it('keeps apps, tokens, signing keys and tombstones across close and reopen of the same file', async () => {
    const filename = join(temp.dir, 'data', 'store.sqlite');
    const app = makeApp();
    const token = makeToken(app, { scopes: ['invoices:read'], expiresAt: at(86_400_000) });
    const key = makeKey();
    const tombstone = makeTombstone('access_token', 'jti-1');

    const first = open(filename);
    await first.init();
    await first.createApp(app, [token]);
    await first.ensureSigningKey(key);
    await first.addTombstones([tombstone]);
    await first.close();
    expect(existsSync(filename)).toBe(true);

    const second = open(filename);
    await second.init();
    expect(await second.getApp(app.tenantId, app.id)).toEqual(app);
    expect(await second.findApiTokenByHash(token.hash)).toEqual(token);
    expect(await second.listSigningKeys()).toEqual([key]);
    expect(await second.ensureSigningKey(makeKey())).toEqual(key);
    expect(await second.listTombstones(at(0))).toEqual([tombstone]);
  });

  it('two stores of one process write one file at the same time without blocking (regression: SQLITE_BUSY after busy_timeout)', async () => {
    const filename = join(temp.dir, 'turns.sqlite');
    const [a, b] = [open(filename), open(filename)];
    await a.init();
    await b.init();
    const started = Date.now();
    const [x, y] = await Promise.all([a.ensureSigningKey(makeKey()), b.ensureSigningKey(makeKey())]);
    expect(x).toEqual(y);
    // Without the per-file lock the second writer blocked the event loop for the whole busy_timeout (5 s).
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('two stores migrating one fresh file at the same time both come up (regression: "table apps already exists")', async () => {
    const filename = join(temp.dir, 'race.sqlite');
    const [a, b] = [open(filename), open(filename)];
    await Promise.all([a.init(), b.init()]);
    const app = makeApp();
    await a.createApp(app, []);
    expect(await b.getApp(app.tenantId, app.id)).toEqual(app);
  });

  it('init on an existing database is idempotent and runs no migration twice', async () => {
    const filename = join(temp.dir, 'idempotent.sqlite');
    const first = open(filename);
    await first.init();
    await first.createApp(makeApp(), []);
    await first.close();

    const second = open(filename);
    await Promise.all([second.init(), second.init()]);
    await second.init();
    const applied = await sql<{ name: string }>`select name from app_tokens_migrations order by name`.execute(second.db);
    expect(applied.rows.map((row) => row.name)).toEqual(Object.keys(migrations('sqlite')));
    expect((await second.listApps('tenant-a', { limit: 10 })).items).toHaveLength(1);
  });

  it('upgrades a database made by migration 0001 only: 0002 runs once and events persist across reopen', async () => {
    const filename = join(temp.dir, 'upgrade.sqlite');
    const app = makeApp();

    // A database as a release with only 0001_initial left it, holding one app.
    const old = new Kysely<Database>({ dialect: new SqliteDialect({ database: new BetterSqlite(filename) }) });
    try {
      const migrator = new Migrator({
        db: old,
        provider: { getMigrations: async () => ({ '0001_initial': migrations('sqlite')['0001_initial']! }) },
        migrationTableName: MIGRATION_TABLE,
        migrationLockTableName: MIGRATION_LOCK_TABLE,
      });
      const { error } = await migrator.migrateToLatest();
      expect(error).toBeUndefined();
      await old
        .insertInto('apps')
        .values({
          id: app.id,
          tenant_id: app.tenantId,
          name: app.name,
          description: app.description,
          scopes: JSON.stringify(app.scopes),
          custom_claims: JSON.stringify(app.customClaims),
          created_at: app.createdAt.getTime(),
          updated_at: app.updatedAt.getTime(),
        })
        .execute();
      const tables = await sql<{ name: string }>`select name from sqlite_master where type = 'table' and name = 'events'`.execute(old);
      expect(tables.rows).toEqual([]);
    } finally {
      await old.destroy();
    }

    const events = [
      makeEvent({ appId: app.id, type: 'app.created', at: at(1) }),
      makeEvent({ appId: app.id, type: 'token.created', at: at(2), data: { deep: { list: [1, { two: null }] } } }),
    ];
    const first = open(filename);
    await first.init();
    expect(await first.getApp(app.tenantId, app.id)).toEqual(app);
    await first.appendEvents(events);
    await first.close();

    const second = open(filename);
    await Promise.all([second.init(), second.init()]);
    const applied = await sql<{ name: string }>`select name from app_tokens_migrations order by name`.execute(second.db);
    expect(applied.rows.map((row) => row.name)).toEqual(Object.keys(migrations('sqlite')));
    expect(await second.getApp(app.tenantId, app.id)).toEqual(app);
    expect(await second.listEvents(app.tenantId, app.id, { limit: 10 })).toEqual({
      items: [events[1], events[0]],
      nextCursor: null,
    });
    await expect(second.appendEvents([events[0]!])).rejects.toMatchObject({ code: 'conflict' });
  });

  it('migration 0003 gives every existing token its family: a refreshed chain shares its root, a lone token is its own', async () => {
    const filename = join(temp.dir, 'families.sqlite');
    const app = makeApp();
    const [a, b, c, lone] = [
      makeToken(app, { createdAt: at(1), revokedAt: at(10), revokedReason: 'refreshed' }),
      makeToken(app, { createdAt: at(2), revokedAt: at(20), revokedReason: 'refreshed' }),
      makeToken(app, { createdAt: at(3) }),
      makeToken(app, { createdAt: at(4) }),
    ] as [ApiTokenRecord, ApiTokenRecord, ApiTokenRecord, ApiTokenRecord];
    a.replacedBy = b.id;
    b.replacedBy = c.id;
    // A database as a release with 0001 and 0002 left it (no family_id column).
    const old = new Kysely<Database>({ dialect: new SqliteDialect({ database: new BetterSqlite(filename) }) });
    try {
      const all = migrations('sqlite');
      const migrator = new Migrator({
        db: old,
        provider: { getMigrations: async () => ({ '0001_initial': all['0001_initial']!, '0002_events': all['0002_events']! }) },
        migrationTableName: MIGRATION_TABLE,
        migrationLockTableName: MIGRATION_LOCK_TABLE,
      });
      expect((await migrator.migrateToLatest()).error).toBeUndefined();
      await sql`insert into apps (id, tenant_id, name, description, scopes, custom_claims, created_at, updated_at)
        values (${app.id}, ${app.tenantId}, ${app.name}, null, '[]', '{}', 0, 0)`.execute(old);
      // Inserted newest first, so that the backfill cannot rely on row order.
      for (const t of [c, lone, b, a]) {
        await sql`insert into api_tokens (id, app_id, tenant_id, name, hash, hint, scopes, created_at, expires_at, last_used_at, revoked_at, revoked_reason, replaced_by)
          values (${t.id}, ${t.appId}, ${t.tenantId}, ${t.name}, ${t.hash}, ${t.hint}, null, ${t.createdAt.getTime()}, null, null,
            ${t.revokedAt?.getTime() ?? null}, ${t.revokedReason}, ${t.replacedBy})`.execute(old);
      }
    } finally {
      await old.destroy();
    }
    const store = open(filename);
    await store.init();
    for (const t of [a, b, c]) expect((await store.getApiToken(app.tenantId, t.id))?.familyId).toBe(a.id);
    expect((await store.getApiToken(app.tenantId, lone.id))?.familyId).toBe(lone.id);
    const swept = await store.revokeApiTokenFamily({
      tenantId: app.tenantId,
      reusedId: a.id,
      tombstone: { createdAt: at(HOUR_MS), expiresAt: at(2 * HOUR_MS) },
      now: at(HOUR_MS),
    });
    expect(swept).toEqual({ detected: true, revoked: [c.id] });
  });
});

const HOUR_MS = 3_600_000;

describe('sqlite: prepared statements are reused', () => {
  /** A database behind the statement cache, and how many statements SQLite itself prepared. */
  function counted() {
    const raw = new BetterSqlite(':memory:');
    const counter = { prepared: 0 };
    const prepare = raw.prepare.bind(raw);
    raw.prepare = ((text: string) => (counter.prepared++, prepare(text))) as typeof raw.prepare;
    return { db: withStatementCache(raw), counter };
  }

  it('prepares each SQL text once per connection, and a reused statement gives fresh results', () => {
    const { db, counter } = counted();
    db.prepare('create table t (x integer)').run([]);
    const insert = 'insert into t (x) values (?)';
    const count = 'select count(*) as n from t where x > ?';
    for (let i = 0; i < 50; i++) db.prepare(insert).run([i]);
    expect(db.prepare(count).all([10])).toEqual([{ n: 39 }]);
    expect(db.prepare(count).all([40])).toEqual([{ n: 9 }]);
    expect(db.prepare(insert)).toBe(db.prepare(insert));
    expect(counter.prepared).toBe(3);
    db.close();
  });

  it('stays bounded: past the bound the oldest texts are prepared again, with the same results', () => {
    const { db, counter } = counted();
    const texts = Array.from({ length: 300 }, (_, i) => `select ${i} as v`);
    for (const text of texts) db.prepare(text).all([]);
    expect(counter.prepared).toBe(300);
    expect(db.prepare(texts[299]!).all([])).toEqual([{ v: 299 }]);
    expect(counter.prepared).toBe(300); // recent: still cached
    expect(db.prepare(texts[0]!).all([])).toEqual([{ v: 0 }]);
    expect(counter.prepared).toBe(301); // evicted: prepared again
    db.close();
  });
});
