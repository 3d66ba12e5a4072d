/**
 * Writes collected in memory and flushed in one store call on an interval and on close, with a
 * failed write put back for the next flush, so that nothing is lost and nothing is written per
 * request.
 *
 * @module
 */
export abstract class BatchWriter<B> {
  #flushing: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;

  /** @param interval - ms between flushes; 0 flushes only on demand and on close. */
  constructor(interval: number) {
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

  /** Write what is pending; on failure it stays pending and the error is thrown. */
  async flush(): Promise<void> {
    while (this.#flushing) await this.#flushing.catch(() => undefined);
    if (this.isEmpty) return;
    const batch = this.take();
    this.#flushing = this.write(batch).catch((error: unknown) => {
      this.restore(batch);
      throw error;
    });
    try {
      await this.#flushing;
    } finally {
      this.#flushing = undefined;
    }
  }

  /** Stop the timer and write what is pending. */
  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.flush();
  }
}
