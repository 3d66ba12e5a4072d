/**
 * The SQLite store, on better-sqlite3 (an optional peer dependency, loaded on first use). This
 * entry point needs neither `pg` nor `@types/pg`.
 *
 * @example
 * ```ts
 * import { createSqliteStore } from 'express-app-tokens/adapters/sqlite';
 * const store = createSqliteStore({ filename: './data/app-tokens.db' });
 * ```
 *
 * @module
 */

export { createSqliteStore } from '../sql/sqlite.js';
export type { SqliteStoreOptions } from '../sql/sqlite.js';
export { SqlStore } from '../sql/sql-store.js';
export type { SqlStoreOptions } from '../sql/sql-store.js';
export { migrations, MIGRATION_TABLE, MIGRATION_LOCK_TABLE } from '../sql/migrations.js';
export type {
  Database,
  SqlDialectName,
  AppsTable,
  ApiTokensTable,
  SigningKeysTable,
  TombstonesTable,
  EpochMsColumn,
  NullableEpochMsColumn,
} from '../sql/schema.js';
