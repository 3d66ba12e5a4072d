/**
 * The PostgreSQL store, on pg (an optional peer dependency, loaded on first use). This entry point
 * needs neither `better-sqlite3` nor its types; TypeScript users need `@types/pg`.
 *
 * @example
 * ```ts
 * import { createPostgresStore } from 'express-app-tokens/adapters/postgres';
 * const store = createPostgresStore({ connectionString: process.env.DATABASE_URL! });
 * ```
 *
 * @module
 */

export { PostgresStore, createPostgresStore } from '../sql/postgres.js';
export type { PostgresStoreOptions } from '../sql/postgres.js';
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
