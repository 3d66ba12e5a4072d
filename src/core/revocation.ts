/**
 * The in-memory revocation view: what was deleted or revoked, kept until the last token it could
 * kill has expired. Fed by the store's change events (instant within a process), by a periodic
 * catch-up read (other processes), and loaded from the store's tombstones on start.
 *
 * A check is three `Map` lookups: no I/O on the hot path.
 *
 * @module
 */
import type { Store, Tombstone, TombstoneKind } from '../store.js';

export interface RevocationViewOptions {
  /** How often to read tombstones written by other processes, ms. 0 disables polling. */
  syncInterval: number;
  now: () => Date;
}

/** Tombstones written by another instance may carry a createdAt this far behind our clock. */
const CLOCK_SKEW_MS = 60_000;

export class RevocationView {
  readonly #store: Store;
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

  constructor(store: Store, options: RevocationViewOptions) {
    this.#store = store;
    this.#options = options;
  }

  /** Subscribe to changes first (so nothing written during the load is missed), then load. */
  async start(): Promise<void> {
    this.#unsubscribe = this.#store.onChange((t) => this.add(t));
    await this.sync();
    if (this.#options.syncInterval > 0) {
      this.#timer = setInterval(() => {
        this.sync().catch(() => {
          // The next tick retries; revocations of this process arrive through onChange anyway.
        });
      }, this.#options.syncInterval);
      this.#timer.unref();
    }
  }

  /** Read tombstones written since the last sync (with overlap for clock skew), drop expired ones. */
  async sync(): Promise<void> {
    const now = this.#options.now();
    const since = this.#lastSync === 0 ? undefined : new Date(this.#lastSync - CLOCK_SKEW_MS);
    const tombstones = await this.#store.listTombstones(now, since);
    this.#lastSync = now.getTime();
    this.add(tombstones);
    this.#purge(now.getTime());
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
