/**
 * Schema migrations of the SQL adapter, kept in code (no migration files on disk) and run by
 * Kysely's `Migrator` from {@link SqlStore.init}.
 *
 * Rules for new migrations: append, never edit a shipped one; keep them portable between SQLite
 * and PostgreSQL, branching on the dialect flag where the two differ.
 *
 * @module
 */

import { Migrator, sql } from 'kysely';
import type { Kysely, Migration, MigrationProvider } from 'kysely';
import type { Database, SqlDialectName } from './schema.js';

/** Name of the table in which Kysely records applied migrations (distinct from Kysely's default, so a host app's own migrations don't collide). */
export const MIGRATION_TABLE = 'app_tokens_migrations';
/** Name of Kysely's migration lock table for this adapter. */
export const MIGRATION_LOCK_TABLE = 'app_tokens_migrations_lock';

/** The migrations of the adapter, keyed by name (applied in name order). */
export function migrations(dialect: SqlDialectName): Record<string, Migration> {
  // Keyset pagination orders by id: PostgreSQL must compare ids byte-wise like SQLite and the
  // memory adapter, whatever the database's default collation.
  const idType = dialect === 'postgres' ? sql`text collate "C"` : sql`text`;

  return {
    '0001_initial': {
      async up(db) {
        await db.schema
          .createTable('apps')
          .addColumn('id', idType, (c) => c.primaryKey())
          .addColumn('tenant_id', 'text', (c) => c.notNull())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('description', 'text')
          .addColumn('scopes', 'text', (c) => c.notNull())
          .addColumn('custom_claims', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createIndex('apps_tenant_created_id')
          .on('apps')
          .columns(['tenant_id', 'created_at', 'id'])
          .execute();

        await db.schema
          .createTable('api_tokens')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('app_id', 'text', (c) => c.notNull().references('apps.id'))
          .addColumn('tenant_id', 'text', (c) => c.notNull())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('hash', 'text', (c) => c.notNull())
          .addColumn('hint', 'text', (c) => c.notNull())
          .addColumn('scopes', 'text')
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('expires_at', 'bigint')
          .addColumn('last_used_at', 'bigint')
          .addColumn('revoked_at', 'bigint')
          .addColumn('revoked_reason', 'text')
          .addColumn('replaced_by', 'text')
          .execute();
        await db.schema.createIndex('api_tokens_hash').on('api_tokens').column('hash').unique().execute();
        await db.schema.createIndex('api_tokens_app_id').on('api_tokens').column('app_id').execute();

        await db.schema
          .createTable('signing_keys')
          .addColumn('kid', 'text', (c) => c.primaryKey())
          .addColumn('alg', 'text', (c) => c.notNull())
          .addColumn('public_jwk', 'text', (c) => c.notNull())
          .addColumn('private_jwk', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('retired_at', 'bigint')
          .execute();
        // At most one active key per algorithm: makes ensureSigningKey race-free on PostgreSQL
        // (READ COMMITTED), where two transactions may both see "no active key".
        await db.schema
          .createIndex('signing_keys_active_alg')
          .on('signing_keys')
          .column('alg')
          .unique()
          .where(sql.ref('retired_at'), 'is', null)
          .execute();

        await db.schema
          .createTable('tombstones')
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('id', 'text', (c) => c.notNull())
          .addColumn('tenant_id', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('expires_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('tombstones_pkey', ['kind', 'id'])
          .execute();
        await db.schema.createIndex('tombstones_expires_at').on('tombstones').column('expires_at').execute();
        await db.schema.createIndex('tombstones_created_at').on('tombstones').column('created_at').execute();
      },
      async down(db) {
        await db.schema.dropTable('tombstones').execute();
        await db.schema.dropTable('signing_keys').execute();
        await db.schema.dropTable('api_tokens').execute();
        await db.schema.dropTable('apps').execute();
      },
    },

    '0002_events': {
      async up(db) {
        // No foreign key to apps: events outlive the app they name.
        await db.schema
          .createTable('events')
          .addColumn('id', idType, (c) => c.primaryKey())
          .addColumn('type', 'text', (c) => c.notNull())
          .addColumn('outcome', 'text', (c) => c.notNull())
          .addColumn('tenant_id', 'text', (c) => c.notNull())
          .addColumn('app_id', 'text')
          .addColumn('token_id', 'text')
          .addColumn('actor_id', 'text')
          .addColumn('at', 'bigint', (c) => c.notNull())
          .addColumn('data', 'text', (c) => c.notNull())
          .execute();
        // Serves listEvents: equality on (tenant_id, app_id), keyset order on (at, id), scanned backwards.
        await db.schema
          .createIndex('events_tenant_app_at_id')
          .on('events')
          .columns(['tenant_id', 'app_id', 'at', 'id'])
          .execute();
      },
      async down(db) {
        await db.schema.dropTable('events').execute();
      },
    },

    '0003_token_family': {
      async up(db) {
        // Reuse detection revokes a whole rotation chain in one statement: each token names the
        // first token of its chain. Existing chains are linked by replaced_by; walk them forward
        // from their roots (a token nobody was replaced into), a generation per statement.
        await db.schema.alterTable('api_tokens').addColumn('family_id', 'text').execute();
        await sql`update api_tokens set family_id = id
          where not exists (select 1 from api_tokens p where p.replaced_by = api_tokens.id)`.execute(db);
        for (;;) {
          const result = await sql`update api_tokens set family_id =
              (select p.family_id from api_tokens p where p.replaced_by = api_tokens.id and p.family_id is not null)
            where family_id is null
              and exists (select 1 from api_tokens p where p.replaced_by = api_tokens.id and p.family_id is not null)`.execute(db);
          if (!result.numAffectedRows) break;
        }
        // A cycle cannot happen (ids are new on every rotation); anything left is its own family.
        await sql`update api_tokens set family_id = id where family_id is null`.execute(db);
        await db.schema.createIndex('api_tokens_family').on('api_tokens').columns(['family_id']).execute();
      },
      async down(db) {
        await db.schema.dropIndex('api_tokens_family').execute();
        await db.schema.alterTable('api_tokens').dropColumn('family_id').execute();
      },
    },

    '0004_listings_and_retention': {
      async up(db) {
        // Active tokens of an app in creation order (paged listings, the tokensPerApp count).
        await db.schema.createIndex('api_tokens_app_created_id').on('api_tokens').columns(['app_id', 'created_at', 'id']).execute();
        // Event retention deletes the oldest events of every tenant in batches.
        await db.schema.createIndex('events_at_id').on('events').columns(['at', 'id']).execute();
      },
      async down(db) {
        await db.schema.dropIndex('events_at_id').execute();
        await db.schema.dropIndex('api_tokens_app_created_id').execute();
      },
    },

    '0005_roles_personal_expiry': {
      async up(db) {
        // Roles (issue 13): names of host-declared scope bundles, fixed at creation.
        await db.schema.alterTable('apps').addColumn('roles', 'text', (c) => c.notNull().defaultTo('[]')).execute();
        // Personal clients: one per tenant and host user (NULLs, the apps, are never equal).
        await db.schema.alterTable('apps').addColumn('owner_user_id', 'text').execute();
        await db.schema.createIndex('apps_tenant_owner').on('apps').columns(['tenant_id', 'owner_user_id']).unique().execute();
        // Expiry notices: the smallest threshold announced, claimed by a conditional update.
        await db.schema.alterTable('api_tokens').addColumn('notified_before', 'integer').execute();
        // The sweep walks tokens by expiry.
        await db.schema.createIndex('api_tokens_expires_id').on('api_tokens').columns(['expires_at', 'id']).execute();
      },
      async down(db) {
        await db.schema.dropIndex('api_tokens_expires_id').execute();
        await db.schema.alterTable('api_tokens').dropColumn('notified_before').execute();
        await db.schema.dropIndex('apps_tenant_owner').execute();
        await db.schema.alterTable('apps').dropColumn('owner_user_id').execute();
        await db.schema.alterTable('apps').dropColumn('roles').execute();
      },
    },

    '0006_client_keys_and_replay': {
      async up(db) {
        // Issue 15: private_key_jwt clients (their keys, or a jwks_uri) and DPoP-bound clients.
        await db.schema
          .alterTable('apps')
          .addColumn('token_endpoint_auth_method', 'text', (c) => c.notNull().defaultTo('client_secret_basic'))
          .execute();
        await db.schema.alterTable('apps').addColumn('jwks_uri', 'text').execute();
        await db.schema.alterTable('apps').addColumn('dpop_bound', 'integer', (c) => c.notNull().defaultTo(0)).execute();
        await db.schema
          .createTable('client_keys')
          .addColumn('id', idType, (c) => c.primaryKey())
          .addColumn('app_id', idType, (c) => c.notNull())
          .addColumn('tenant_id', 'text', (c) => c.notNull())
          .addColumn('kid', 'text', (c) => c.notNull())
          .addColumn('alg', 'text', (c) => c.notNull())
          .addColumn('jwk', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('expires_at', 'bigint')
          .execute();
        await db.schema.createIndex('client_keys_app_kid').on('client_keys').columns(['app_id', 'kid']).unique().execute();
        // Single-use values (assertion and DPoP proof jtis): the primary key is the atomic check.
        await db.schema
          .createTable('used_once')
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('key', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('used_once_pk', ['kind', 'key'])
          .execute();
        await db.schema.createIndex('used_once_expires').on('used_once').column('expires_at').execute();
      },
      async down(db) {
        await db.schema.dropTable('used_once').execute();
        await db.schema.dropTable('client_keys').execute();
        await db.schema.alterTable('apps').dropColumn('dpop_bound').execute();
        await db.schema.alterTable('apps').dropColumn('jwks_uri').execute();
        await db.schema.alterTable('apps').dropColumn('token_endpoint_auth_method').execute();
      },
    },

    '0007_rate_leases': {
      async up(db) {
        // Issue 16: shared rate-limit counters that instances add to in leases, not per request.
        await db.schema
          .createTable('rate_usage')
          .addColumn('key', 'text', (c) => c.notNull())
          .addColumn('window_start', 'bigint', (c) => c.notNull())
          .addColumn('used', 'bigint', (c) => c.notNull())
          .addColumn('expires_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('rate_usage_pk', ['key', 'window_start'])
          .execute();
        await db.schema.createIndex('rate_usage_expires').on('rate_usage').column('expires_at').execute();
      },
      async down(db) {
        await db.schema.dropTable('rate_usage').execute();
      },
    },

    '0008_usage_counts': {
      async up(db) {
        // Issue 24: usage counts per app, credential ('' for none), hour and metric, added to by
        // every instance (INSERT … ON CONFLICT DO UPDATE SET count = count + excluded.count).
        await db.schema
          .createTable('usage_counts')
          .addColumn('tenant_id', 'text', (c) => c.notNull())
          .addColumn('app_id', idType, (c) => c.notNull())
          .addColumn('token_id', 'text', (c) => c.notNull())
          .addColumn('hour', 'bigint', (c) => c.notNull())
          .addColumn('metric', 'text', (c) => c.notNull())
          .addColumn('count', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('usage_counts_pk', ['tenant_id', 'app_id', 'hour', 'token_id', 'metric'])
          .execute();
        // Retention deletes the oldest hours first.
        await db.schema.createIndex('usage_counts_hour').on('usage_counts').column('hour').execute();
      },
      async down(db) {
        await db.schema.dropTable('usage_counts').execute();
      },
    },
  };
}

/** Bring the schema to the latest version. Safe to call on an up-to-date database. */
export async function migrateToLatest(db: Kysely<Database>, dialect: SqlDialectName): Promise<void> {
  const provider: MigrationProvider = {
    getMigrations: () => Promise.resolve(migrations(dialect)),
  };
  const migrator = new Migrator({
    db,
    provider,
    migrationTableName: MIGRATION_TABLE,
    migrationLockTableName: MIGRATION_LOCK_TABLE,
  });
  // Two stores migrating one fresh database at once (two processes, or two stores in one
  // process) can both try to create the schema; the loser's retry finds it recorded and stops.
  for (let attempt = 1; ; attempt++) {
    const { error } = await migrator.migrateToLatest();
    if (error === undefined) return;
    if (attempt >= 5) throw error;
    await new Promise((resolve) => setTimeout(resolve, 20 * attempt + Math.random() * 50));
  }
}
