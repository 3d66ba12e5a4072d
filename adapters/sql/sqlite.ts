/**
 * The SQLite flavour of {@link SqlStore}, on better-sqlite3 (an optional peer dependency, loaded
 * on first use).
 *
 * @module
 */

import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { CompiledQuery, Kysely, SqliteDialect, SqliteDriver } from 'kysely';
import type { DatabaseConnection, Driver, SqliteDatabase, SqliteDialectConfig, SqliteStatement } from 'kysely';
import { LRUCache } from 'lru-cache';
import { AppTokensError } from '../../src/core/errors.js';
import type { Database } from './schema.js';
import { SqlStore } from './sql-store.js';

/** Options of {@link createSqliteStore}. */
export interface SqliteStoreOptions {
  /** Path of the database file (its directory is created if missing), or `':memory:'`. */
  filename: string;
}

/**
 * A SQLite driver whose transactions start with `BEGIN IMMEDIATE`: the write lock is taken up
 * front, so a transaction that reads before it writes waits (`busy_timeout`) for another
 * process's writer instead of failing with `SQLITE_BUSY` when it upgrades.
 */
class ImmediateSqliteDriver extends SqliteDriver {
  readonly #fileLock: FileLock | undefined;

  constructor(config: SqliteDialectConfig, filename: string) {
    super(config);
    this.#fileLock = fileLock(filename);
  }

  override async acquireConnection(): Promise<DatabaseConnection> {
    // better-sqlite3 is synchronous: a second connection of this process waiting on the file's
    // write lock (busy_timeout) would block the event loop, and with it the holder, for the whole
    // timeout. So stores of one process on one file take turns here, asynchronously.
    await this.#fileLock?.acquire();
    try {
      return await super.acquireConnection();
    } catch (error) {
      this.#fileLock?.release();
      throw error;
    }
  }

  override async releaseConnection(): Promise<void> {
    await super.releaseConnection();
    this.#fileLock?.release();
  }

  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
}

/** A FIFO async lock. */
class FileLock {
  #held = false;
  readonly #waiters: Array<() => void> = [];

  acquire(): Promise<void> {
    if (!this.#held) {
      this.#held = true;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  release(): void {
    const next = this.#waiters.shift();
    if (next) next();
    else this.#held = false;
  }
}

/** One lock per database file of this process (none for `:memory:`, which is private to its connection). */
const fileLocks = new Map<string, FileLock>();
function fileLock(filename: string): FileLock | undefined {
  if (filename === ':memory:' || filename === '') return undefined;
  const key = resolve(filename);
  let lock = fileLocks.get(key);
  if (!lock) fileLocks.set(key, (lock = new FileLock()));
  return lock;
}

/** {@link SqliteDialect} with {@link ImmediateSqliteDriver}. */
class ImmediateSqliteDialect extends SqliteDialect {
  readonly #config: SqliteDialectConfig;
  readonly #filename: string;

  constructor(config: SqliteDialectConfig, filename: string) {
    super(config);
    this.#config = config;
    this.#filename = filename;
  }

  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.#config, this.#filename);
  }
}

/** Prepared statements kept per connection, by SQL text (the store issues a few dozen shapes). */
const STATEMENT_CACHE_MAX = 256;

/**
 * Kysely's `SqliteDriver` calls `prepare(sql)` for every query, and preparing is a parse and a plan
 * in SQLite: about 7% of a token grant. better-sqlite3 statements are reusable, and the one
 * connection is used by one query at a time (Kysely's driver serialises it), so this hands Kysely
 * a database whose `prepare` returns the statement prepared earlier for the same text.
 * (Typed structurally, not as better-sqlite3's `Database`, so the published types of the SQLite
 * entry point need no `@types/better-sqlite3`.)
 */
export function withStatementCache(db: SqliteDatabase): SqliteDatabase {
  const statements = new LRUCache<string, SqliteStatement>({ max: STATEMENT_CACHE_MAX });
  return {
    close: () => db.close(),
    prepare(sql: string): SqliteStatement {
      let statement = statements.get(sql);
      if (statement === undefined) {
        statement = db.prepare(sql);
        statements.set(sql, statement);
      }
      return statement;
    },
  };
}

/** Open a better-sqlite3 database with the adapter's pragmas. */
async function openSqlite(filename: string): Promise<SqliteDatabase> {
  let BetterSqlite: typeof import('better-sqlite3');
  try {
    BetterSqlite = (await import('better-sqlite3')).default;
  } catch (error) {
    throw new AppTokensError(
      'invalid_options',
      'The SQLite store needs the optional dependency better-sqlite3: npm install better-sqlite3',
      { cause: error },
    );
  }
  const inMemory = filename === ':memory:' || filename === '';
  if (!inMemory) mkdirSync(dirname(filename), { recursive: true });
  const db = new BetterSqlite(filename);
  if (!inMemory) db.pragma('journal_mode = WAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  return withStatementCache(db);
}

/**
 * A {@link SqlStore} on a SQLite file (or `':memory:'`). Nothing is opened until `init()` (or the
 * first call of any method); the file's directory is created then if missing.
 *
 * @example
 * ```ts
 * import { createSqliteStore } from 'express-app-tokens/adapters/sqlite';
 * const store = createSqliteStore({ filename: './data/app-tokens.sqlite' });
 * await store.init();
 * ```
 */
export function createSqliteStore(options: SqliteStoreOptions): SqlStore {
  const { filename } = options;
  const db = new Kysely<Database>({
    dialect: new ImmediateSqliteDialect({ database: () => openSqlite(filename) }, filename),
  });
  return new SqlStore({ db, dialect: 'sqlite' });
}
