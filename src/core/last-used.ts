/**
 * `lastUsedDate` without a write per request: uses are collected in memory and flushed in one
 * batched store call every `interval` ms (and on close).
 *
 * @module
 */
import type { Store } from '../store.js';
import { BatchWriter } from './batch.js';
import type { Logger } from './logger.js';

export class LastUsedBatcher extends BatchWriter<Map<string, Date>> {
  readonly #store: Store;
  #pending = new Map<string, Date>();

  /** @param log - where a failing flush is reported, once per run of failures */
  constructor(store: Store, interval: number, log?: Pick<Logger, 'warn'> & { info?: Logger['info'] }) {
    super(interval, {
      log,
      failing: 'lastUsedDate updates could not be written to the store; kept in memory and retried at the next flush',
      recovered: 'lastUsedDate updates are written to the store again',
    });
    this.#store = store;
  }

  protected override outageDetails(): Record<string, unknown> {
    return { pending: this.#pending.size };
  }

  /** Note a use of an API token. O(1), no I/O. */
  record(apiTokenId: string, at: Date): void {
    this.#pending.set(apiTokenId, at);
  }

  /** The use recorded but not yet written for a token, if any. */
  pending(apiTokenId: string): Date | undefined {
    return this.#pending.get(apiTokenId);
  }

  protected override get isEmpty(): boolean {
    return this.#pending.size === 0;
  }

  protected override take(): Map<string, Date> {
    const batch = this.#pending;
    this.#pending = new Map();
    return batch;
  }

  protected override restore(batch: Map<string, Date>): void {
    // A newer use recorded meanwhile wins over the failed batch's.
    for (const [id, at] of batch) if (!this.#pending.has(id)) this.#pending.set(id, at);
  }

  protected override write(batch: Map<string, Date>): Promise<void> {
    return this.#store.touchApiTokens(batch);
  }
}
