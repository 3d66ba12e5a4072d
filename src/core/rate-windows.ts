/**
 * In-process rate-limit windows, counted synchronously: the hot path of `rateLimit()` on a store
 * without shared counters, and the per-process fallback of the shared ones.
 *
 * The semantics are rate-limiter-flexible's `RateLimiterMemory` (which this replaces on the hot
 * path): a key's window opens at its first request and lasts `duration` seconds; every request,
 * refused ones included, counts; a request is allowed while the count is at most `points`.
 *
 * @module
 */

/** A key's current window: requests counted so far and the epoch ms at which it closes. */
export interface RateWindow {
  count: number;
  resetAt: number;
}

/** Fixed windows per key, in memory, without a promise or a timer per key. */
export class LocalWindows {
  readonly points: number;
  readonly #durationMs: number;
  readonly #windows = new Map<string, RateWindow>();
  /** Expired windows are swept at most once per window length, when a new window opens. */
  #nextSweep = 0;

  constructor(points: number, durationSeconds: number) {
    this.points = points;
    this.#durationMs = durationSeconds * 1000;
  }

  /**
   * Count one request of `key` at `now` and return its window (the caller reads it at once: it
   * is the live record). Allowed when `count <= points`.
   */
  consume(key: string, now: number): RateWindow {
    const w = this.#windows.get(key);
    if (w !== undefined && w.resetAt > now) {
      w.count++;
      return w;
    }
    if (now >= this.#nextSweep) this.#sweep(now);
    const fresh = { count: 1, resetAt: now + this.#durationMs };
    this.#windows.set(key, fresh);
    return fresh;
  }

  /** How many keys have a window (open or not yet swept). */
  get size(): number {
    return this.#windows.size;
  }

  #sweep(now: number): void {
    this.#nextSweep = now + this.#durationMs;
    for (const [key, w] of this.#windows) if (w.resetAt <= now) this.#windows.delete(key);
  }
}
