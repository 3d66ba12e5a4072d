/**
 * The SQLite flavour of {@link SqlStore}, on better-sqlite3 (an optional peer dependency, loaded
 * on first use).
 *
 * Faults (issue 22): a full disk, a read-only file, a lock held too long, an I/O error, a damaged
 * or foreign file surface as `unavailable` (503 with `Retry-After`), never as a bug (500), and the
 * real SQLite code is logged. SQLite rolls a transaction back by itself on some of these
 * (`SQLITE_FULL`, `SQLITE_IOERR`); the driver then skips its own `ROLLBACK`, whose "no transaction
 * is active" would otherwise replace the real cause.
 *
 * @module
 */

import { accessSync, constants, existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { CompiledQuery, Kysely, SqliteDialect, SqliteDriver } from 'kysely';
import type { DatabaseConnection, Driver, QueryResult, SqliteDatabase, SqliteDialectConfig, SqliteStatement } from 'kysely';
import { LRUCache } from 'lru-cache';
import { AppTokensError } from '../../src/core/errors.js';
import { safeLogger, type Logger } from '../../src/core/logger.js';
import type { Database } from './schema.js';
import { SqlStore } from './sql-store.js';

/** Options of {@link createSqliteStore}. */
export interface SqliteStoreOptions {
  /** Path of the database file (its directory is created if missing), or `':memory:'`. */
  filename: string;
  /**
   * Where the store reports the faults it meets (`SQLITE_FULL`, `SQLITE_READONLY`, …). Default: the
   * logger of the AppTokens instance using this store (handed over through `useLogger`), else the
   * console. Lines are redacted and carry the SQLite code and message, never a row.
   */
  logger?: Logger;
}

/**
 * SQLite result codes that mean "the database cannot serve this now": the disk is full, the file
 * or its directory is read-only, another connection holds the lock past the busy timeout, the
 * disk failed, the file is damaged or is not a database. Answered 503, never 500. (Constraint
 * errors are not here: they are the store's own conflicts, mapped where they happen.)
 */
const FAULT = /^SQLITE_(FULL|READONLY|BUSY|LOCKED|IOERR|CANTOPEN|CORRUPT|NOTADB|NOMEM|PROTOCOL|PERM)(_|$)/;

/** File-system errors of opening the file (creating its directory) that are the host's to fix. */
const FS_FAULT = /^(ENOTDIR|EACCES|EPERM|EROFS|EEXIST|ENOSPC|EIO|ENOENT|EISDIR)$/;

/** At most one fault log line per this long, ms, per code (a full disk fails every write alike). */
const LOG_EVERY_MS = 10_000;

/** `error` or the first of its causes that carries a SQLite fault or file-system code. */
function faultOf(error: unknown): unknown {
  for (let e: unknown = error, depth = 0; e !== null && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = codeOf(e);
    if (code !== undefined && (FAULT.test(code) || FS_FAULT.test(code))) return e;
  }
  return undefined;
}

/** The last of `error`'s causes (its own message says more than our wrappers' do). */
function innermost(error: unknown): unknown {
  let e = error;
  for (let depth = 0; depth < 5 && e instanceof Error && e.cause !== undefined; depth++) e = e.cause;
  return e;
}

function codeOf(error: unknown): string | undefined {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : undefined;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** What a runtime fault answers: the cause stays on the error (and in the log), not in the body. */
function unavailable(cause: unknown): AppTokensError {
  return new AppTokensError('unavailable', 'the token store is unavailable; retry shortly', { cause });
}

/**
 * Why the store could not start, for the operator: the code, what it means for `filename`, and
 * what to do. (Shown at start-up, by the example server and the CLI; a request never sees it: no
 * route is served before the store is ready.)
 */
function explainOpenFailure(error: unknown, filename: string): string {
  const root = faultOf(error) ?? innermost(error);
  const code = codeOf(root);
  const detail = messageOf(root);
  const file = filename;
  // Extended codes (SQLITE_READONLY_DIRECTORY, SQLITE_IOERR_WRITE) share their primary's advice.
  switch (code?.startsWith('SQLITE_') ? code.split('_').slice(0, 2).join('_') : code) {
    case 'SQLITE_NOTADB':
      return `SQLITE_NOTADB: ${file} is not a SQLite database. Point the store at another file, or move this one away (a new database is then created in its place).`;
    case 'SQLITE_CORRUPT':
      return `SQLITE_CORRUPT: ${file} is damaged (${detail}). Restore it from a backup (or try \`sqlite3 ${file} .recover\`); starting on a new file would lose every app and token.`;
    case 'SQLITE_CANTOPEN':
      return `SQLITE_CANTOPEN: ${file} cannot be opened (${detail}): ${whyCannotOpen(file)}`;
    case 'SQLITE_READONLY':
    case 'SQLITE_PERM':
      return `${code}: ${file} is read-only (${detail}). The store writes the file and its -wal and -shm files beside it: make them and their directory writable, or point the store at a writable file.`;
    case 'SQLITE_FULL':
    case 'ENOSPC':
      return `${code}: the disk holding ${file} is full. Free space, then start again.`;
    case 'SQLITE_BUSY':
    case 'SQLITE_LOCKED':
      return `${code}: ${file} is locked by another process for longer than the busy timeout. Stop that process or start again later.`;
    case 'SQLITE_IOERR':
    case 'EIO':
      return `${code}: reading or writing ${file} failed (${detail}). Check the disk and the file system.`;
    case 'ENOTDIR':
    case 'EEXIST':
    case 'ENOENT':
    case 'EISDIR':
      return `SQLITE_CANTOPEN (${code}): the directory of ${file} cannot be created (${detail}). A file stands where a directory is needed: fix the path.`;
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return `SQLITE_CANTOPEN (${code}): the directory of ${file} cannot be created (${detail}). Make it writable, or point the store at a writable place.`;
    default:
      return `${code ? `${code}: ` : ''}${file} could not be opened or migrated (${detail}).`;
  }
}

/**
 * A SQLite driver whose transactions start with `BEGIN IMMEDIATE`: the write lock is taken up
 * front, so a transaction that reads before it writes waits (`busy_timeout`) for another
 * process's writer instead of failing with `SQLITE_BUSY` when it upgrades.
 */
class ImmediateSqliteDriver extends SqliteDriver {
  readonly #fileLock: FileLock | undefined;
  readonly #hooks: DriverHooks;
  /** Connections whose executeQuery is already guarded (there is one, reused). */
  readonly #guarded = new WeakSet<DatabaseConnection>();

  constructor(config: SqliteDialectConfig, filename: string, hooks: DriverHooks) {
    super(config);
    this.#fileLock = fileLock(filename);
    this.#hooks = hooks;
  }

  override async acquireConnection(): Promise<DatabaseConnection> {
    // better-sqlite3 is synchronous: a second connection of this process waiting on the file's
    // write lock (busy_timeout) would block the event loop, and with it the holder, for the whole
    // timeout. So stores of one process on one file take turns here, asynchronously.
    await this.#fileLock?.acquire();
    let connection: DatabaseConnection;
    try {
      connection = await super.acquireConnection();
    } catch (error) {
      this.#fileLock?.release();
      throw error;
    }
    if (!this.#guarded.has(connection)) {
      const execute = connection.executeQuery.bind(connection);
      const report = this.#hooks.report;
      connection.executeQuery = async <R>(query: CompiledQuery): Promise<QueryResult<R>> => {
        try {
          return await execute<R>(query);
        } catch (error) {
          const code = codeOf(error);
          if (code === undefined || !FAULT.test(code)) throw error;
          report(error);
          throw unavailable(error);
        }
      };
      this.#guarded.add(connection);
    }
    return connection;
  }

  override async releaseConnection(): Promise<void> {
    await super.releaseConnection();
    this.#fileLock?.release();
  }

  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    // A transaction left open by a ROLLBACK that failed (an I/O error) would make every later
    // BEGIN fail with "cannot start a transaction within a transaction": end it first.
    if (this.#hooks.inTransaction()) await connection.executeQuery(CompiledQuery.raw('rollback'));
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }

  override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    // SQLite has already rolled back on SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM and some
    // SQLITE_BUSY: our ROLLBACK would throw "cannot rollback - no transaction is active", and
    // Kysely would throw that in place of the real cause.
    if (!this.#hooks.inTransaction()) return;
    try {
      await connection.executeQuery(CompiledQuery.raw('rollback'));
    } catch {
      // The transaction's own error is the one to report (Kysely throws it after this); a
      // transaction still open is ended by the next beginTransaction.
    }
  }
}

/** What the driver needs from the store: the open handle's transaction state, and where faults go. */
interface DriverHooks {
  /** better-sqlite3's `inTransaction` of the open database (`false` before it is open). */
  inTransaction(): boolean;
  /** Report a fault (logged, throttled). */
  report(cause: unknown): void;
}

/**
 * SQLITE_CANTOPEN says only "unable to open database file": look at the path to say which of the
 * usual reasons it is, and what to do. (Start-up only; `access(W_OK)` reports a read-only file
 * system even to root, whom permissions do not stop.)
 */
function whyCannotOpen(file: string): string {
  const dir = dirname(resolve(file));
  const probe = (path: string): string | undefined => {
    try {
      accessSync(path, constants.W_OK);
      return undefined;
    } catch (error) {
      return codeOf(error) ?? 'EACCES';
    }
  };
  try {
    if (statSync(file).isDirectory()) return 'it is a directory. Point the store at a file path.';
  } catch {
    // absent: its directory decides
  }
  const dirCode = probe(dir);
  if (dirCode === 'EROFS') {
    return `its directory ${dir} is on a read-only file system. The store writes the file and its -wal and -shm files beside it: mount it read-write or point the store at a writable place.`;
  }
  if (dirCode === 'ENOENT') return `its directory ${dir} does not exist. Create it or fix the path.`;
  if (dirCode !== undefined) return `this process may not write its directory ${dir} (${dirCode}). Fix the permissions or point the store at a writable place.`;
  const fileCode = existsSync(file) ? probe(file) : undefined;
  if (fileCode !== undefined) return `this process may not write the file (${fileCode}). Fix its permissions.`;
  return 'the path must name a file in a directory that exists and that this process may write (the -wal and -shm files are made beside it). Fix the path or its permissions.';
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
  readonly #hooks: DriverHooks;

  constructor(config: SqliteDialectConfig, filename: string, hooks: DriverHooks) {
    super(config);
    this.#config = config;
    this.#filename = filename;
    this.#hooks = hooks;
  }

  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.#config, this.#filename, this.#hooks);
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
export function withStatementCache<D extends SqliteDatabase>(db: D): SqliteDatabase & { readonly inTransaction: boolean } {
  const statements = new LRUCache<string, SqliteStatement>({ max: STATEMENT_CACHE_MAX });
  return {
    get inTransaction(): boolean {
      return (db as { inTransaction?: unknown }).inTransaction === true;
    },
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
async function openSqlite(filename: string): Promise<SqliteDatabase & { readonly inTransaction: boolean }> {
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
  try {
    // The first read of the file: a file that is not a database (SQLITE_NOTADB) fails here.
    if (!inMemory) db.pragma('journal_mode = WAL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
  } catch (error) {
    db.close();
    throw error;
  }
  return withStatementCache(db);
}

/**
 * {@link SqlStore} on SQLite: start-up failures explained (code, file, what to do), runtime faults
 * reported once per {@link LOG_EVERY_MS} per code.
 */
class SqliteStore extends SqlStore {
  readonly #filename: string;
  #log: Required<Logger>;
  readonly #ownLogger: boolean;
  readonly #lastLogged = new Map<string, number>();
  #initialised = false;

  constructor(db: Kysely<Database>, filename: string, logger: Logger | undefined) {
    super({ db, dialect: 'sqlite' });
    this.#filename = filename;
    this.#log = safeLogger(logger);
    this.#ownLogger = logger !== undefined;
  }

  /** Take the AppTokens instance's logger, unless the `logger` option chose one. */
  useLogger(logger: Logger): void {
    if (!this.#ownLogger) this.#log = safeLogger(logger);
  }

  override async init(): Promise<void> {
    if (this.#initialised) return super.init();
    try {
      await super.init();
      this.#initialised = true;
    } catch (error) {
      if (isClosed(error)) throw error;
      const explained = explainOpenFailure(error, this.#filename);
      // Also logged: a host that does not await ready() sees only 503s from its routes.
      this.#logOnce(codeOf(faultOf(error)) ?? 'open', { code: codeOf(faultOf(error)), filename: this.#filename }, `SQLite store cannot start: ${explained}`);
      throw new AppTokensError('unavailable', `The token store could not be initialised: ${explained}`, { cause: error });
    }
  }

  /** A fault met by a query: logged with its code, at most once per {@link LOG_EVERY_MS} per code. */
  reportFault(cause: unknown): void {
    const code = codeOf(cause) ?? 'SQLITE_ERROR';
    this.#logOnce(
      code,
      { code, message: messageOf(cause), filename: this.#filename },
      `SQLite store unavailable (${code}: ${messageOf(cause)}); requests that need it answer 503 with Retry-After until it clears`,
    );
  }

  #logOnce(key: string, fields: object, message: string): void {
    const now = Date.now();
    if (now - (this.#lastLogged.get(key) ?? -Infinity) < LOG_EVERY_MS) return;
    this.#lastLogged.set(key, now);
    this.#log.warn(fields, message);
  }
}

function isClosed(error: unknown): boolean {
  return error instanceof AppTokensError && error.message === 'The token store is closed.';
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
  let handle: { readonly inTransaction: boolean } | undefined;
  let store: SqliteStore | undefined;
  const hooks: DriverHooks = {
    inTransaction: () => handle?.inTransaction === true,
    report: (cause) => store?.reportFault(cause),
  };
  const open = async () => (handle = await openSqlite(filename));
  const db = new Kysely<Database>({ dialect: new ImmediateSqliteDialect({ database: open }, filename, hooks) });
  store = new SqliteStore(db, filename, options.logger);
  return store;
}
