/**
 * Writes collected in memory and flushed in one store call on an interval and on close, with a
 * failed write put back for the next flush, so that nothing is lost and nothing is written per
 * request.
 *
 * @module
 */
/** Where a writer says, once per run of failures, that the store refuses its writes, and that it is back. */
export interface BatchOutageLog {
  /** The logger (the library's redacting one); none: nothing is said. */
  log?: { warn(obj: Record<string, unknown>, msg: string): void; info?(obj: Record<string, unknown>, msg: string): void } | undefined;
  /** The line logged at the first failure of a run (with its cause and what is pending). */
  failing: string;
  /** The line logged at the first success after it. */
  recovered: string;
}

export abstract class BatchWriter<B> {
  #flushing: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  readonly #outage: BatchOutageLog | undefined;
  #failing = false;

  /**
   * @param interval - ms between flushes; 0 flushes only on demand and on close.
   * @param outage - what to log when writes start failing and when they succeed again.
   */
  constructor(interval: number, outage?: BatchOutageLog) {
    this.#outage = outage;
    if (interval > 0) {
      this.#timer = setInterval(() => void this.flush().catch(() => undefined), interval);
      this.#timer.unref();
    }
  }

  /** Whether anything waits to be written. */
  protected abstract get isEmpty(): boolean;
  /** Detach and return everything pending. */
  protected abstract take(): B;
  /** Put a batch whose write failed back in front of what arrived since. */
  protected abstract restore(batch: B): void;
  /** Write one batch to the store. */
  protected abstract write(batch: B): Promise<void>;
  /** What a failure line says about what is pending (counts, never values). */
  protected abstract outageDetails(): Record<string, unknown>;

  /**
   * Write what is pending; on failure it stays pending and the error is thrown. Calls while a
   * write is in flight join it, never queue behind it: if it fails they fail with it (what it
   * held is pending again, for the next flush), so that while the store is unreachable a caller
   * waits for at most one write, however many flushes (timer ticks, requests) pile up; if it
   * succeeds, what arrived meanwhile goes in one more write, shared by all of them.
   */
  async flush(): Promise<void> {
    try {
      await this.#flush();
    } catch (error) {
      // The background flush swallows the error: the first failure of a run is logged with its
      // cause (the store down, never a crash), and so is the recovery after it.
      if (!this.#failing) {
        this.#failing = true;
        this.#outage?.log?.warn({ cause: error, ...this.outageDetails() }, this.#outage.failing);
      }
      throw error;
    }
    if (this.#failing) {
      this.#failing = false;
      this.#outage?.log?.info?.(this.outageDetails(), this.#outage.recovered);
    }
  }

  async #flush(): Promise<void> {
    if (this.#flushing) {
      await this.#flushing;
      // Another caller may already have started the write of what arrived meanwhile: join it.
      const next = this.#flushing as Promise<void> | undefined;
      if (next) return next;
    }
    if (this.isEmpty) return;
    const batch = this.take();
    const flushing = this.write(batch).catch((error: unknown) => {
      this.restore(batch);
      throw error;
    });
    this.#flushing = flushing;
    try {
      await flushing;
    } finally {
      if (this.#flushing === flushing) this.#flushing = undefined;
    }
  }

  /** Stop the timer and write what is pending (after a write in flight, even a failed one: its batch too). */
  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#flushing?.catch(() => undefined);
    await this.flush();
  }
}
