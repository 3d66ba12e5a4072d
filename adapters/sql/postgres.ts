/**
 * The PostgreSQL flavour of {@link SqlStore}, on pg (an optional peer dependency, loaded on first
 * use): a connection pool with timeouts, connection failures reported as `unavailable` (503), and
 * a change feed across instances with `LISTEN/NOTIFY` plus a catch-up read after a reconnect.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import type { Pool, PoolClient, PoolConfig } from 'pg';
import {
  Kysely,
  PostgresDialect,
  PostgresDriver,
  type CompiledQuery,
  type DatabaseConnection,
  type Driver,
  type PostgresDialectConfig,
  type QueryResult,
} from 'kysely';
import { AppTokensError } from '../../src/core/errors.js';
import type { RateLimiterBackend, Tombstone } from '../../src/store.js';
import type { Database } from './schema.js';
import { SqlStore } from './sql-store.js';

/** Options of {@link createPostgresStore}. */
export interface PostgresStoreOptions {
  /** `postgres://user:password@host:5432/database`. */
  connectionString: string;
  /** Pool size per instance. Default: 10. */
  max?: number;
  /** How long a request waits for a connection before it fails with 503, ms. Default: 3000. */
  connectionTimeout?: number;
  /** Server-side limit of one statement, ms. Default: 5000. */
  statementTimeout?: number;
  /** The NOTIFY channel of the change feed. Default: `app_tokens_changes`. */
  channel?: string;
}

/** NOTIFY payloads are limited to 8000 bytes; stay well below. */
const MAX_PAYLOAD = 7000;
/** Catch-up after a reconnect re-reads tombstones written this long before the outage began. */
const CATCH_UP_OVERLAP_MS = 60_000;

/** SQLSTATE classes and Node errors that mean "the database is not reachable right now". */
function isConnectionError(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (typeof code === 'string') {
    if (/^(08|57P0|53)/.test(code)) return true; // connection exception, admin shutdown, insufficient resources
    if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', '57014'].includes(code)) return true;
  }
  return typeof message === 'string' && /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|connect ECONNREFUSED/i.test(message);
}

function unavailable(cause: unknown): AppTokensError {
  return new AppTokensError('unavailable', 'the token store is unavailable; retry shortly', { cause });
}

/** Map a pg failure: a connection problem becomes `unavailable`; anything else is left as is. */
function mapped(error: unknown): unknown {
  return isConnectionError(error) ? unavailable(error) : error;
}

/** The pg driver, with connection failures surfacing as `unavailable` rather than raw pg errors. */
class GuardedPostgresDriver extends PostgresDriver {
  /** Connections whose executeQuery is already guarded (pg reuses them through the pool). */
  readonly #guarded = new WeakSet<DatabaseConnection>();

  override async acquireConnection(): Promise<DatabaseConnection> {
    let connection: DatabaseConnection;
    try {
      connection = await super.acquireConnection();
    } catch (error) {
      throw mapped(error);
    }
    if (!this.#guarded.has(connection)) {
      const execute = connection.executeQuery.bind(connection);
      connection.executeQuery = async <R>(query: CompiledQuery): Promise<QueryResult<R>> => {
        try {
          return await execute<R>(query);
        } catch (error) {
          throw mapped(error);
        }
      };
      this.#guarded.add(connection);
    }
    return connection;
  }
}

class GuardedPostgresDialect extends PostgresDialect {
  readonly #config: PostgresDialectConfig;

  constructor(config: PostgresDialectConfig) {
    super(config);
    this.#config = config;
  }

  override createDriver(): Driver {
    return new GuardedPostgresDriver(this.#config);
  }
}

async function loadPg(): Promise<typeof import('pg')> {
  try {
    const mod = (await import('pg')) as typeof import('pg') & { default?: typeof import('pg') };
    return mod.default ?? mod;
  } catch (error) {
    throw new AppTokensError('invalid_options', 'The PostgreSQL store needs the optional dependency pg: npm install pg', {
      cause: error,
    });
  }
}

/**
 * A {@link SqlStore} on PostgreSQL. Every instance of an application points at one database;
 * revocations written by one reach the others through `LISTEN/NOTIFY` (and through the periodic
 * `listTombstones` read of the revocation view, which also covers a missed notification).
 */
export class PostgresStore extends SqlStore {
  readonly #pool: Promise<Pool>;
  readonly #channel: string;
  /** Tells our own notifications from other instances'. */
  readonly #instance = randomUUID();
  #listener: PoolClient | undefined;
  #listening: Promise<void> | undefined;
  #closing = false;
  #reconnectTimer: NodeJS.Timeout | undefined;
  /** When the listener connection was lost; the catch-up after a reconnect reads from here. */
  #lostAt: number | undefined;

  constructor(db: Kysely<Database>, pool: Promise<Pool>, channel: string) {
    super({ db, dialect: 'postgres' });
    this.#pool = pool;
    this.#channel = channel;
  }

  override async init(): Promise<void> {
    await super.init();
    this.#listening ??= this.#listen().catch((error: unknown) => {
      this.#listening = undefined;
      throw error instanceof AppTokensError ? error : unavailable(error);
    });
    await this.#listening;
  }

  override async close(): Promise<void> {
    this.#closing = true;
    if (this.#reconnectTimer) clearTimeout(this.#reconnectTimer);
    const listener = this.#listener;
    this.#listener = undefined;
    if (listener) {
      try {
        listener.release(true);
      } catch {
        // already gone
      }
    }
    await super.close();
  }

  /** Rate limits shared by every instance: rate-limiter-flexible on this database. */
  async rateLimiterBackend(): Promise<RateLimiterBackend> {
    return { type: 'postgres', pool: await this.#pool };
  }

  /** Publish committed tombstones to the other instances, after handing them to ours. */
  protected override committed(tombstones: Tombstone[]): void {
    super.committed(tombstones);
    void this.#notify(tombstones).catch(() => {
      // Other instances still learn of them through their periodic tombstone read.
    });
  }

  async #notify(tombstones: Tombstone[]): Promise<void> {
    const pool = await this.#pool;
    let batch: unknown[] = [];
    let size = 64;
    const flush = async () => {
      if (batch.length === 0) return;
      await pool.query('select pg_notify($1, $2)', [this.#channel, JSON.stringify({ from: this.#instance, items: batch })]);
      batch = [];
      size = 64;
    };
    for (const t of tombstones) {
      const item = [t.kind, t.id, t.tenantId, t.createdAt.getTime(), t.expiresAt.getTime()];
      const itemSize = Buffer.byteLength(JSON.stringify(item)) + 1;
      if (size + itemSize > MAX_PAYLOAD) await flush();
      batch.push(item);
      size += itemSize;
    }
    await flush();
  }

  async #listen(): Promise<void> {
    const pool = await this.#pool;
    const client = await pool.connect();
    client.on('notification', (message) => {
      if (message.channel !== this.#channel || !message.payload) return;
      try {
        const { from, items } = JSON.parse(message.payload) as {
          from: string;
          items: Array<[Tombstone['kind'], string, string, number, number]>;
        };
        // Our own notifications: this process's listeners had them at commit.
        if (from === this.#instance) return;
        this.deliver(
          items.map(([kind, id, tenantId, createdAt, expiresAt]) => ({
            kind,
            id,
            tenantId,
            createdAt: new Date(createdAt),
            expiresAt: new Date(expiresAt),
          })),
        );
      } catch {
        // A foreign payload on our channel: ignore it.
      }
    });
    const lost = () => {
      if (this.#listener !== client) return;
      this.#listener = undefined;
      this.#lostAt ??= Date.now();
      try {
        client.release(true);
      } catch {
        // already released
      }
      this.#scheduleReconnect(250);
    };
    client.on('error', lost);
    client.on('end', lost);
    await client.query(`LISTEN "${this.#channel.replace(/"/g, '""')}"`);
    this.#listener = client;
  }

  #scheduleReconnect(delay: number): void {
    if (this.#closing || this.#reconnectTimer) return;
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      void this.#reconnect(delay);
    }, delay);
    this.#reconnectTimer.unref();
  }

  async #reconnect(delay: number): Promise<void> {
    if (this.#closing) return;
    try {
      await this.#listen();
      // Nothing is missed: whatever was revoked while we were not listening is read back now.
      const since = new Date((this.#lostAt ?? Date.now()) - CATCH_UP_OVERLAP_MS);
      this.#lostAt = undefined;
      this.deliver(await this.listTombstones(new Date(), since));
    } catch {
      // A refused connection costs nothing: retry often, so that revocations pushed by other
      // instances flow again within about a second of the database's return.
      this.#scheduleReconnect(Math.min(delay * 2, 1000));
    }
  }
}

/**
 * A {@link SqlStore} on PostgreSQL. Nothing connects until `init()`; `init()` runs the migrations
 * and starts listening for revocations of other instances.
 *
 * @example
 * ```ts
 * import { createPostgresStore } from 'express-app-tokens/adapters/postgres';
 * const store = createPostgresStore({ connectionString: process.env.DATABASE_URL! });
 * ```
 */
export function createPostgresStore(options: PostgresStoreOptions): PostgresStore {
  const config: PoolConfig = {
    connectionString: options.connectionString,
    max: options.max ?? 10,
    connectionTimeoutMillis: options.connectionTimeout ?? 3000,
    statement_timeout: options.statementTimeout ?? 5000,
    // Without a handler an idle client's error (the server restarting) would crash the process.
  };
  const pool = loadPg().then((pg) => {
    const p = new pg.Pool(config);
    p.on('error', () => undefined);
    return p;
  });
  // pg returns bigint (int8) as a string; the adapter converts with Number() where it reads them.
  const db = new Kysely<Database>({ dialect: new GuardedPostgresDialect({ pool: () => pool }) });
  return new PostgresStore(db, pool, options.channel ?? 'app_tokens_changes');
}
