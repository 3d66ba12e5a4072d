/**
 * Audit events: handed to the host's `onEvent` at once, and written to the store in batches.
 *
 * @module
 */
import type { AuditEventRecord, AuditEventType, Store } from '../store.js';
import { BatchWriter } from './batch.js';
import type { Logger } from './logger.js';
import { randomId } from './secrets.js';

/** An audit event as the host's `onEvent` and `GET /apps/:id/events` see it: the record, `at` in ISO 8601. Never a secret. */
export type AuditEvent = Omit<AuditEventRecord, 'at'> & { at: string };

/** What a caller of {@link EventLog.emit} supplies; the log adds `id` and `at`. */
export type EventInput = Omit<AuditEventRecord, 'id' | 'at' | 'appId' | 'tokenId' | 'actorId' | 'data' | 'outcome'> &
  Partial<Pick<AuditEventRecord, 'appId' | 'tokenId' | 'actorId' | 'data' | 'outcome'>>;

export function eventView(record: AuditEventRecord): AuditEvent {
  return { ...record, at: record.at.toISOString(), data: { ...record.data } };
}

export interface EventLogOptions {
  onEvent: ((event: AuditEvent) => void) | undefined;
  flushInterval: number;
  now: () => Date;
  /** `events.retention`, seconds; `null` keeps events forever. */
  retention?: number | null;
  /** Where a failing flush is reported: once when writes start failing, once when they succeed again. */
  log?: Pick<Logger, 'warn'> & { info?: Logger['info'] };
}

/** Events deleted per statement, and statements per pruning run (the rest waits for the next run). */
const PRUNE_BATCH = 1000;
const PRUNE_BATCHES_PER_RUN = 100;
/** How often retention runs, ms. */
export const PRUNE_INTERVAL_MS = 3_600_000;

export class EventLog extends BatchWriter<AuditEventRecord[]> {
  readonly #store: Store;
  readonly #options: EventLogOptions;
  #pending: AuditEventRecord[] = [];

  constructor(store: Store, options: EventLogOptions) {
    super(options.flushInterval, {
      log: options.log,
      failing: 'audit events could not be written to the store; kept in memory and retried at the next flush',
      recovered: 'audit events are written to the store again',
    });
    this.#store = store;
    this.#options = options;
  }

  protected override outageDetails(): Record<string, unknown> {
    return { pending: this.#pending.length };
  }

  /**
   * Delete events older than the retention, in bounded batches (at most
   * {@link PRUNE_BATCHES_PER_RUN} × {@link PRUNE_BATCH} per run). Returns how many went.
   */
  async prune(): Promise<number> {
    const { retention } = this.#options;
    if (retention === null || retention === undefined) return 0;
    const before = new Date(this.#options.now().getTime() - retention * 1000);
    let deleted = 0;
    for (let i = 0; i < PRUNE_BATCHES_PER_RUN; i++) {
      const n = await this.#store.pruneEvents(before, PRUNE_BATCH);
      deleted += n;
      if (n < PRUNE_BATCH) break;
    }
    return deleted;
  }

  /** Record an event: `onEvent` now (its failure is contained), the store on the next flush. */
  emit(input: EventInput): void {
    const record: AuditEventRecord = {
      id: randomId('evt'),
      outcome: 'success',
      appId: null,
      tokenId: null,
      actorId: null,
      data: {},
      ...input,
      at: this.#options.now(),
    };
    this.#pending.push(record);
    if (this.#options.onEvent) {
      try {
        this.#options.onEvent(eventView(record));
      } catch {
        // The host's listener must not turn a completed action into an error.
      }
    }
  }

  protected override get isEmpty(): boolean {
    return this.#pending.length === 0;
  }

  protected override take(): AuditEventRecord[] {
    const batch = this.#pending;
    this.#pending = [];
    return batch;
  }

  protected override restore(batch: AuditEventRecord[]): void {
    this.#pending = batch.concat(this.#pending);
  }

  protected override write(batch: AuditEventRecord[]): Promise<void> {
    return this.#store.appendEvents(batch);
  }
}
