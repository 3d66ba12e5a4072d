/**
 * SQL storage for express-app-tokens, on Kysely: SQLite (better-sqlite3) and PostgreSQL (pg) on
 * the same code. Kept for compatibility: its types name both drivers, so a TypeScript consumer
 * without `skipLibCheck` needs `@types/pg` too. Prefer `express-app-tokens/adapters/sqlite` or
 * `express-app-tokens/adapters/postgres`, which each need only their own driver.
 *
 * @module
 */

export { SqlStore } from './sql-store.js';
export type { SqlStoreOptions } from './sql-store.js';
export { createSqliteStore } from './sqlite.js';
export type { SqliteStoreOptions } from './sqlite.js';
export { migrations, MIGRATION_TABLE, MIGRATION_LOCK_TABLE } from './migrations.js';
export type {
  Database,
  SqlDialectName,
  AppsTable,
  ApiTokensTable,
  SigningKeysTable,
  TombstonesTable,
  EpochMsColumn,
  NullableEpochMsColumn,
} from './schema.js';
export { PostgresStore, createPostgresStore } from './postgres.js';
export type { PostgresStoreOptions } from './postgres.js';
