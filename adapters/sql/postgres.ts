/**
 * The PostgreSQL flavour of {@link SqlStore}, on pg (an optional peer dependency, loaded on first
 * use): a connection pool with timeouts, connection failures reported as `unavailable` (503), and
 * a change feed across instances with `LISTEN/NOTIFY` plus a catch-up read after a reconnect.
 *
 * Faults (issue 22): every pg client has an `error` listener for its whole life, checked out or
 * idle, so a database that dies mid-query fails that query and never the process; every query
 * has a client-side deadline (`queryTimeout`), after which its connection is thrown away (its
 * answer may still be on the wire), and TCP keepalive; the LISTEN connection is probed every
 * {@link FEED_HEARTBEAT_MS}, which also tells the revocation view how fresh it is.
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
import { safeLogger, type Logger } from '../../src/core/logger.js';
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
  /**
   * Client-side deadline of one query, ms: a query without an answer by then fails with
   * `unavailable` (503 with `Retry-After`) and its connection is discarded. This is what bounds a
   * request when the path to the database goes silent (a partition, a dead host: no reset), which
   * `statementTimeout`, enforced by the server, cannot. Keep it above `statementTimeout` so that a
   * slow statement on a live connection is cancelled by the server first. Default:
   * `statementTimeout + 1000` (6000).
   */
  queryTimeout?: number;
  /**
   * Where the store reports faults it meets (a connection lost, the change feed down and back).
   * Default: the logger of the AppTokens instance using this store (handed over at `ready()`),
   * else the console. Lines are redacted; the connection string is never logged.
   */
  logger?: Logger;
  /** The NOTIFY channel of the change feed. Default: `app_tokens_changes`. */
  channel?: string;
}

/** NOTIFY payloads are limited to 8000 bytes; stay well below. */
const MAX_PAYLOAD = 7000;
/** Catch-up after a reconnect re-reads tombstones written this long before the outage began. */
const CATCH_UP_OVERLAP_MS = 60_000;
/** How often the LISTEN connection is probed (`select 1`), ms: a silent path is noticed within this plus `queryTimeout`. */
export const FEED_HEARTBEAT_MS = 1000;
/** TCP keepalive: the first probe after this long without traffic, ms. */
const KEEPALIVE_DELAY_MS = 10_000;
/** At most one "unavailable" log line per this long, ms (a dead database fails every request). */
const LOG_EVERY_MS = 10_000;
/** pg's message when `query_timeout` fires, and ours for a connection discarded after it. */
const QUERY_TIMEOUT = /^Query read timeout$|^connection discarded after a query timeout/;

/** SQLSTATE classes and Node errors that mean "the database is not reachable right now". */
function isConnectionError(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (typeof code === 'string') {
    if (/^(08|57P0|53)/.test(code)) return true; // connection exception, admin shutdown, insufficient resources
    if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', '57014'].includes(code)) return true;
  }
  return (
    typeof message === 'string' &&
    (QUERY_TIMEOUT.test(message) ||
      /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|connect ECONNREFUSED|Client was closed and is not queryable|Connection ended/i.test(
        message,
      ))
  );
}

/** A pg error as a log field: its code and message, never a connection string or a parameter. */
function describeFault(error: unknown): { code?: string; message: string } {
  if (typeof error !== 'object' || error === null) return { message: String(error) };
  const { code, message } = error as { code?: unknown; message?: unknown };
  // pg messages name the host and port at most; the logger redacts secret-looking values anyway.
  return { ...(typeof code === 'string' ? { code } : {}), message: typeof message === 'string' ? message.replace(/postgres(ql)?:\/\/\S*/gi, '[connection string]') : 'unknown error' };
}

function unavailable(cause: unknown): AppTokensError {
  return new AppTokensError('unavailable', 'the token store is unavailable; retry shortly', { cause });
}

/** Where connection failures are reported (the store's throttled log line). */
type OnUnavailable = (cause: unknown) => void;

/**
 * SQLSTATE 40P01 (deadlock detected) and 40001 (serialization failure): the database rolled the
 * transaction back and a retry may succeed, so the answer is 503 with `Retry-After`, never a 500.
 */
function isTransient(error: unknown): boolean {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return code === '40P01' || code === '40001';
}

/** Map a pg failure: a connection problem or a rolled-back transaction becomes `unavailable` (and is reported); anything else is left as is. */
function mapped(error: unknown, report: OnUnavailable): unknown {
  if (!isConnectionError(error) && !isTransient(error)) return error;
  report(error);
  return unavailable(error);
}

/** The pg driver, with connection failures surfacing as `unavailable` rather than raw pg errors. */
class GuardedPostgresDriver extends PostgresDriver {
  /** Connections whose executeQuery is already guarded (pg reuses them through the pool). */
  readonly #guarded = new WeakSet<DatabaseConnection>();
  readonly #report: OnUnavailable;

  constructor(config: PostgresDialectConfig, report: OnUnavailable) {
    super(config);
    this.#report = report;
  }

  override async acquireConnection(): Promise<DatabaseConnection> {
    let connection: DatabaseConnection;
    try {
      connection = await super.acquireConnection();
    } catch (error) {
      throw mapped(error, this.#report);
    }
    if (!this.#guarded.has(connection)) {
      const execute = connection.executeQuery.bind(connection);
      connection.executeQuery = async <R>(query: CompiledQuery): Promise<QueryResult<R>> => {
        try {
          return await execute<R>(query);
        } catch (error) {
          throw mapped(error, this.#report);
        }
      };
      this.#guarded.add(connection);
    }
    return connection;
  }
}

class GuardedPostgresDialect extends PostgresDialect {
  readonly #config: PostgresDialectConfig;
  readonly #report: OnUnavailable;

  constructor(config: PostgresDialectConfig, report: OnUnavailable) {
    super(config);
    this.#config = config;
    this.#report = report;
  }

  override createDriver(): Driver {
    return new GuardedPostgresDriver(this.#config, this.#report);
  }
}

/**
 * The pool Kysely draws from: pg's, with every checked-out client guarded. After a query timed
 * out on the client side, pg keeps that query active on the connection: every later query would
 * queue behind it, on the same silent path, for another full deadline. So later queries on it fail
 * at once (a transaction's rollback included) and releasing it discards it, never returns it to
 * the pool.
 */
function guardedPool(pool: Promise<Pool>): { connect(): Promise<PoolClient>; end(): Promise<void> } {
  const broken = new WeakSet<PoolClient>();
  const patched = new WeakSet<PoolClient>();
  const discarded = () => new Error('connection discarded after a query timeout');
  return {
    async connect() {
      const client = await (await pool).connect();
      if (!patched.has(client)) {
        patched.add(client);
        const query = client.query.bind(client) as (...args: unknown[]) => unknown;
        (client as { query: unknown }).query = (...args: unknown[]) => {
          if (broken.has(client)) return Promise.reject(discarded());
          const result = query(...args);
          if (!(result instanceof Promise)) return result;
          return result.catch((error: unknown) => {
            if (error instanceof Error && QUERY_TIMEOUT.test(error.message)) broken.add(client);
            throw error;
          });
        };
      }
      // pg-pool sets a fresh `release` at every checkout; a truthy argument destroys the client.
      const release = client.release.bind(client);
      client.release = (destroy?: Error | boolean) => release(destroy ?? (broken.has(client) ? discarded() : undefined));
      return client;
    },
    end: async () => (await pool).end(),
  };
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
  #log: Required<Logger>;
  /** Whether the logger was chosen by the host for this store (then the service's is not taken). */
  readonly #ownLogger: boolean;
  #listener: PoolClient | undefined;
  #listening: Promise<void> | undefined;
  #closing = false;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  /** When the listener connection was lost; the catch-up after a reconnect reads from here. */
  #lostAt: number | undefined;
  /** Epoch ms: every notification published before this has reached us (see {@link changeFeedHeardAt}). */
  #heardAt: number | undefined;
  #lastUnavailableLog = 0;

  constructor(db: Kysely<Database>, pool: Promise<Pool>, channel: string, logger?: Logger) {
    super({ db, dialect: 'postgres' });
    this.#pool = pool;
    this.#channel = channel;
    this.#log = safeLogger(logger);
    this.#ownLogger = logger !== undefined;
  }

  /** Take the AppTokens instance's logger, unless the `logger` option chose one. */
  useLogger(logger: Logger): void {
    if (!this.#ownLogger) this.#log = safeLogger(logger);
  }

  /**
   * The real-clock epoch ms before which every revocation another instance published has reached
   * this one: the start of the last answered probe of the LISTEN connection, once whatever was
   * missed while it was down has been read back. `undefined` while the feed is down.
   */
  changeFeedHeardAt(): number | undefined {
    return this.#heardAt;
  }

  override async init(): Promise<void> {
    await super.init();
    this.#listening ??= this.#listen().catch((error: unknown) => {
      this.#listening = undefined;
      throw error instanceof AppTokensError ? error : unavailable(error);
    });
    await this.#listening;
    this.#startHeartbeat();
  }

  override async close(): Promise<void> {
    this.#closing = true;
    if (this.#reconnectTimer) clearTimeout(this.#reconnectTimer);
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#heardAt = undefined;
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

  /** @internal A connection failure, logged at most once per {@link LOG_EVERY_MS} (every request fails alike). */
  reportUnavailable(cause: unknown): void {
    const now = Date.now();
    if (now - this.#lastUnavailableLog < LOG_EVERY_MS) return;
    this.#lastUnavailableLog = now;
    this.#log.warn({ cause: describeFault(cause) }, 'PostgreSQL is unavailable; requests that need it answer 503 until it is back');
  }

  /** @internal A pg client's `error` event (the server went away under it): logged, never thrown. */
  clientError(error: unknown): void {
    this.reportUnavailable(error);
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
    const lost = (cause?: unknown) => {
      if (this.#listener !== client) return;
      this.#listener = undefined;
      this.#heardAt = undefined;
      this.#lostAt ??= Date.now();
      if (!this.#closing) {
        this.#log.warn(
          { cause: describeFault(cause ?? 'the connection ended') },
          'PostgreSQL change feed (LISTEN) lost; reconnecting, revocations of other instances are read back when it is up',
        );
      }
      try {
        client.release(true);
      } catch {
        // already released
      }
      this.#scheduleReconnect(250);
    };
    client.on('error', lost);
    client.on('end', () => lost());
    try {
      await client.query(`LISTEN "${this.#channel.replace(/"/g, '""')}"`);
    } catch (error) {
      try {
        client.release(true);
      } catch {
        // already released
      }
      throw error;
    }
    this.#listener = client;
    // A fresh start has nothing to catch up on (the revocation view loads every tombstone).
    if (this.#lostAt === undefined) this.#heardAt = Date.now();
  }

  /**
   * Probe the LISTEN connection: an answered `select 1` proves that every notification sent before
   * it has arrived (PostgreSQL delivers them in order, before the answer). An unanswered one within
   * `queryTimeout` means a silent path: the connection is dropped and re-made.
   */
  #startHeartbeat(): void {
    if (this.#heartbeat || this.#closing) return;
    let busy = false;
    this.#heartbeat = setInterval(() => {
      const client = this.#listener;
      if (busy || client === undefined || this.#lostAt !== undefined) return;
      busy = true;
      const sentAt = Date.now();
      client
        .query('select 1')
        .then(
          () => {
            if (this.#listener === client && this.#lostAt === undefined) this.#heardAt = sentAt;
          },
          (error: unknown) => {
            if (this.#listener !== client) return;
            // Dropped, not kept: its next answer, if one comes, may be the one we stopped waiting for.
            client.emit('error', error instanceof Error ? error : new Error(String(error)));
          },
        )
        .finally(() => {
          busy = false;
        });
    }, FEED_HEARTBEAT_MS);
    this.#heartbeat.unref();
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
      const readFrom = Date.now();
      const lostAt = this.#lostAt ?? readFrom;
      this.deliver(await this.listTombstones(new Date(), new Date(lostAt - CATCH_UP_OVERLAP_MS)));
      this.#lostAt = undefined;
      if (this.#listener !== undefined) this.#heardAt = readFrom;
      this.#log.info({ downForMs: readFrom - lostAt }, 'PostgreSQL change feed (LISTEN) is back; missed revocations read back');
    } catch {
      // A refused connection costs nothing: retry often, so that revocations pushed by other
      // instances flow again within about a second of the database's return. The listener, if
      // it connected, stays; the next attempt reads back from the same point.
      if (this.#listener !== undefined && this.#lostAt !== undefined) {
        const listener = this.#listener;
        this.#listener = undefined;
        try {
          listener.release(true);
        } catch {
          // already released
        }
      }
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
 * const store = createPostgresStore({ connectionString: process.env.DATABASE_URL!, queryTimeout: 3000 });
 * ```
 */
export function createPostgresStore(options: PostgresStoreOptions): PostgresStore {
  const statementTimeout = options.statementTimeout ?? 5000;
  const queryTimeout = options.queryTimeout ?? statementTimeout + 1000;
  if (!Number.isSafeInteger(queryTimeout) || queryTimeout < 100) {
    throw new AppTokensError('invalid_options', 'createPostgresStore(): "queryTimeout" must be a whole number of ms, at least 100', {
      field: 'queryTimeout',
    });
  }
  const config: PoolConfig = {
    connectionString: options.connectionString,
    max: options.max ?? 10,
    connectionTimeoutMillis: options.connectionTimeout ?? 3000,
    statement_timeout: statementTimeout,
    query_timeout: queryTimeout,
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_DELAY_MS,
  };
  let store: PostgresStore | undefined;
  const report: OnUnavailable = (cause) => store?.reportUnavailable(cause);
  const pool = loadPg().then((pg) => {
    const p = new pg.Pool(config);
    // pg emits a client's `error` on the client; the Pool listens only while the client is idle.
    // A client checked out (by Kysely, by the LISTEN feed, by the rate limiter) when the server
    // goes away would have no listener, and an `error` event without one ends the process.
    p.on('connect', (client) => {
      client.on('error', (error: unknown) => store?.clientError(error));
    });
    p.on('error', (error: unknown) => store?.clientError(error));
    return p;
  });
  // pg returns bigint (int8) as a string; the adapter converts with Number() where it reads them.
  const db = new Kysely<Database>({ dialect: new GuardedPostgresDialect({ pool: guardedPool(pool) as unknown as Pool }, report) });
  store = new PostgresStore(db, pool, options.channel ?? 'app_tokens_changes', options.logger);
  return store;
}
