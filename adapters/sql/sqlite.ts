/**
 * The SQLite flavour of {@link SqlStore}, on better-sqlite3 (an optional peer dependency, loaded
 * on first use).
 *
 * @module
 */

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { CompiledQuery, Kysely, SqliteDialect, SqliteDriver } from 'kysely';
import type { DatabaseConnection, Driver, SqliteDatabase, SqliteDialectConfig } from 'kysely';
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
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
}

/** {@link SqliteDialect} with {@link ImmediateSqliteDriver}. */
class ImmediateSqliteDialect extends SqliteDialect {
  readonly #config: SqliteDialectConfig;

  constructor(config: SqliteDialectConfig) {
    super(config);
    this.#config = config;
  }

  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.#config);
  }
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
  return db;
}

/**
 * A {@link SqlStore} on a SQLite file (or `':memory:'`). Nothing is opened until `init()` (or the
 * first call of any method); the file's directory is created then if missing.
 *
 * @example
 * ```ts
 * import { createSqliteStore } from 'express-app-tokens/adapters/sql';
 * const store = createSqliteStore({ filename: './data/app-tokens.sqlite' });
 * await store.init();
 * ```
 */
export function createSqliteStore(options: SqliteStoreOptions): SqlStore {
  const { filename } = options;
  const db = new Kysely<Database>({
    dialect: new ImmediateSqliteDialect({ database: () => openSqlite(filename) }),
  });
  return new SqlStore({ db, dialect: 'sqlite' });
}
