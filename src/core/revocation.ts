/**
 * The in-memory revocation view: what was deleted or revoked, kept until the last token it could
 * kill has expired. Fed by the store's change events (instant within a process), by a periodic
 * catch-up read (other processes), and loaded from the store's tombstones on start.
 *
 * A check is three `Map` lookups: no I/O on the hot path.
 *
 * **Staleness (issue 22).** On a store shared by several processes (one with
 * {@link Store.changeFeedHeardAt}), this view is only as fresh as its last contact with the
 * database: the start of its last successful tombstone read, or the last time the store's change
 * feed proved it had delivered everything. {@link RevocationView.isStale} says when that is more
 * than `maxStaleness` ago; what depends on the view then fails closed (503) instead of serving
 * credentials another instance may have revoked. A store without a feed is this process's own
 * view (memory, SQLite in one process) and is never stale. The check is a clock read and a
 * compare, measured on the real clock (not the injected `now`): the bound is elapsed time.
 *
 * @module
 */
import type { Logger } from './logger.js';
import type { Store, Tombstone, TombstoneKind } from '../store.js';

/** What the view reads of the store: the tombstones, their change feed and how fresh that feed is. */
export type RevocationSource = Pick<Store, 'listTombstones' | 'onChange' | 'changeFeedHeardAt'>;

export interface RevocationViewOptions {
  /** How often to read tombstones written by other processes, ms. 0 disables polling. */
  syncInterval: number;
  now: () => Date;
  /**
   * `advanced.revocationMaxStaleness`: the longest this view serves from state it could not
   * refresh, ms (shared stores only). Default: 5000.
   */
  maxStaleness?: number;
  /** Where going stale and fresh again, and failed reads, are reported. */
  log?: Pick<Logger, 'warn' | 'error'> & { info?: Logger['info'] };
  /** The real clock, epoch ms (tests may inject one). Default: `Date.now`. */
  realNow?: () => number;
}

/** Tombstones written by another instance may carry a createdAt this far behind our clock. */
const CLOCK_SKEW_MS = 60_000;

export class RevocationView {
  readonly #store: RevocationSource;
  readonly #options: RevocationViewOptions;
  readonly #dead: Record<TombstoneKind, Map<string, number>> = {
    app: new Map(),
    api_token: new Map(),
    access_token: new Map(),
  };
  /** `${kind}\0${id}` → epoch ms from which a tombstone written ahead of time takes effect. */
  readonly #notBefore = new Map<string, number>();
  #unsubscribe: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #lastSync = 0;
  /** Real-clock epoch ms at which the last successful tombstone read started. */
  #syncedAt = 0;
  #syncing: Promise<void> | undefined;
  /** The store's feed freshness, when it is a shared store; `undefined`: never stale. */
  readonly #feed: (() => number | undefined) | undefined;
  readonly #maxStaleness: number;
  readonly #realNow: () => number;
  #stale = false;
  #syncFailing = false;

  constructor(store: RevocationSource, options: RevocationViewOptions) {
    this.#store = store;
    this.#options = options;
    this.#feed = typeof store.changeFeedHeardAt === 'function' ? store.changeFeedHeardAt.bind(store) : undefined;
    this.#maxStaleness = options.maxStaleness ?? 5000;
    this.#realNow = options.realNow ?? Date.now;
  }

  /**
   * Whether this view may be missing revocations for longer than `maxStaleness`: its last
   * contact with the database (a tombstone read, or the change feed's last proof of delivery) is
   * older than that. Always `false` on a store that is this process's own view. No I/O.
   */
  isStale(): boolean {
    if (this.#feed === undefined || this.#syncedAt === 0) return false;
    const now = this.#realNow();
    const heard = this.#feed() ?? 0;
    const stale = now - (heard > this.#syncedAt ? heard : this.#syncedAt) > this.#maxStaleness;
    if (stale !== this.#stale) this.#transition(stale, now - Math.max(heard, this.#syncedAt));
    return stale;
  }

  /** Ms since the last contact with the database (0 on a store that is its own view). */
  get age(): number {
    if (this.#feed === undefined || this.#syncedAt === 0) return 0;
    return Math.max(0, this.#realNow() - Math.max(this.#feed() ?? 0, this.#syncedAt));
  }

  #transition(stale: boolean, ageMs: number): void {
    this.#stale = stale;
    if (stale) {
      this.#options.log?.warn(
        { lastContactMs: ageMs, maxStaleness: this.#maxStaleness },
        'revocation state could not be refreshed within advanced.revocationMaxStaleness; protected requests and cached clients answer 503 until the store is reachable',
      );
    } else {
      this.#options.log?.info?.({}, 'revocation state is fresh again; serving from it');
    }
  }

  /** Subscribe to changes first (so nothing written during the load is missed), then load. */
  async start(): Promise<void> {
    this.#unsubscribe = this.#store.onChange((t) => this.add(t));
    await this.sync();
    if (this.#options.syncInterval > 0) {
      this.#timer = setInterval(() => {
        this.sync().then(
          () => {
            if (this.#syncFailing) this.#options.log?.info?.({}, 'tombstone read succeeded again');
            this.#syncFailing = false;
          },
          (error: unknown) => {
            // The next tick retries; revocations of this process arrive through onChange anyway.
            if (!this.#syncFailing) {
              this.#options.log?.warn(
                { cause: error },
                'periodic tombstone read failed; retrying at every revocationSyncInterval',
              );
            }
            this.#syncFailing = true;
          },
        );
      }, this.#options.syncInterval);
      this.#timer.unref();
    }
  }

  /**
   * Read tombstones written since the last sync (with overlap for clock skew), drop expired ones.
   * One read at a time: a read that hangs (a silent database, until the store's deadline) is not
   * joined by another at every tick.
   */
  sync(): Promise<void> {
    this.#syncing ??= this.#sync().finally(() => {
      this.#syncing = undefined;
    });
    return this.#syncing;
  }

  async #sync(): Promise<void> {
    const startedAt = this.#realNow();
    const now = this.#options.now();
    const since = this.#lastSync === 0 ? undefined : new Date(this.#lastSync - CLOCK_SKEW_MS);
    const tombstones = await this.#store.listTombstones(now, since);
    this.#lastSync = now.getTime();
    this.add(tombstones);
    this.#purge(now.getTime());
    if (startedAt > this.#syncedAt) this.#syncedAt = startedAt;
    // Say "fresh again" even when no request asked in between.
    if (this.#stale) this.isStale();
  }

  /**
   * Record tombstones. Idempotent. A tombstone takes effect from its `createdAt`: one written
   * ahead of time (a rotation's grace deadline) kills from then on; the earliest one of an id wins.
   */
  add(tombstones: readonly Tombstone[]): void {
    const nowMs = this.#options.now().getTime();
    for (const t of tombstones) {
      const map = this.#dead[t.kind];
      const key = `${t.kind}\u0000${t.id}`;
      const from = t.createdAt.getTime();
      const known = map.has(t.id);
      const pending = this.#notBefore.get(key);
      if (from <= nowMs) this.#notBefore.delete(key);
      else if (!known || pending !== undefined) this.#notBefore.set(key, Math.min(pending ?? Infinity, from));
      const expiresAt = t.expiresAt.getTime();
      if ((map.get(t.id) ?? 0) < expiresAt) map.set(t.id, expiresAt);
    }
  }

  /** Is a credential of this app, API token or jti revoked? */
  isRevoked(appId: string, apiTokenId: string, jti?: string): boolean {
    return this.#hit('app', appId) || this.#hit('api_token', apiTokenId) || (jti !== undefined && this.#hit('access_token', jti));
  }

  /**
   * When a tombstone written ahead of time for this id (a rotation's grace deadline) takes effect,
   * epoch ms; `undefined` when none is waiting. What is minted from a retiring credential ends then.
   */
  pendingFrom(kind: TombstoneKind, id: string): number | undefined {
    if (this.#notBefore.size === 0) return undefined;
    return this.#notBefore.get(`${kind}\u0000${id}`);
  }

  #hit(kind: TombstoneKind, id: string): boolean {
    if (!this.#dead[kind].has(id)) return false;
    // The hot path: no tombstone is waiting for its time.
    if (this.#notBefore.size === 0) return true;
    const from = this.#notBefore.get(`${kind}\u0000${id}`);
    return from === undefined || from <= this.#options.now().getTime();
  }

  /** Number of live tombstones held, by kind (for diagnostics and tests). */
  get size(): Record<TombstoneKind, number> {
    return {
      app: this.#dead.app.size,
      api_token: this.#dead.api_token.size,
      access_token: this.#dead.access_token.size,
    };
  }

  stop(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #purge(nowMs: number): void {
    for (const [kind, map] of Object.entries(this.#dead)) {
      for (const [id, expiresAt] of map) {
        if (expiresAt <= nowMs) {
          map.delete(id);
          this.#notBefore.delete(`${kind}\u0000${id}`);
        }
      }
    }
    for (const [key, from] of this.#notBefore) if (from <= nowMs) this.#notBefore.delete(key);
  }
}
