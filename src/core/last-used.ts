/**
 * `lastUsedDate` without a write per request: uses are collected in memory and flushed in one
 * batched store call every `interval` ms (and on close).
 *
 * @module
 */
import type { Store } from '../store.js';

export class LastUsedBatcher {
  readonly #store: Store;
  #pending = new Map<string, Date>();
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;

  constructor(store: Store, interval: number) {
    this.#store = store;
    if (interval > 0) {
      this.#timer = setInterval(() => void this.flush().catch(() => undefined), interval);
      this.#timer.unref();
    }
  }

  /** Note a use of an API token. O(1), no I/O. */
  record(apiTokenId: string, at: Date): void {
    this.#pending.set(apiTokenId, at);
  }

  /** The use recorded but not yet written for a token, if any. */
  pending(apiTokenId: string): Date | undefined {
    return this.#pending.get(apiTokenId);
  }

  /** Write pending uses. A failed write puts them back for the next flush, so no use is lost. */
  async flush(): Promise<void> {
    if (this.#flushing) await this.#flushing;
    if (this.#pending.size === 0) return;
    const batch = this.#pending;
    this.#pending = new Map();
    this.#flushing = this.#store.touchApiTokens(batch).then(
      () => undefined,
      (error: unknown) => {
        for (const [id, at] of batch) if (!this.#pending.has(id)) this.#pending.set(id, at);
        throw error;
      },
    );
    try {
      await this.#flushing;
    } finally {
      this.#flushing = undefined;
    }
  }

  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.flush();
  }
}
