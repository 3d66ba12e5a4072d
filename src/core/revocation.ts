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

  /** Record tombstones. Idempotent. */
  add(tombstones: readonly Tombstone[]): void {
    for (const t of tombstones) {
      const map = this.#dead[t.kind];
      const expiresAt = t.expiresAt.getTime();
      if ((map.get(t.id) ?? 0) < expiresAt) map.set(t.id, expiresAt);
    }
  }

  /** Is a credential of this app, API token or jti revoked? */
  isRevoked(appId: string, apiTokenId: string, jti?: string): boolean {
    return (
      this.#dead.app.has(appId) ||
      this.#dead.api_token.has(apiTokenId) ||
      (jti !== undefined && this.#dead.access_token.has(jti))
    );
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
    for (const map of Object.values(this.#dead)) {
      for (const [id, expiresAt] of map) if (expiresAt <= nowMs) map.delete(id);
    }
  }
}
