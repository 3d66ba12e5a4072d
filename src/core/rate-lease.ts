/**
 * Shared rate-limit counts without a database round trip per request: each instance admits
 * requests against a local allowance (a lease) and adds what it admitted to the store's counter
 * in the background ({@link Store.addRateUsage}), learning the total of every instance in return.
 *
 * **The bound.** Windows are fixed and aligned to the epoch (`floor(now / duration)`), so every
 * instance counts into the same window. An instance admits a request only while
 * `known + unreported < points` and `unreported < lease`, where `known` is the store's total at
 * its last report and `unreported` what it admitted since. Hence, per window, with N instances:
 * - **at most `points + N × leaseMax` are allowed**: every instance admits at most `lease ≤ leaseMax`
 *   requests that the others have not yet seen, beyond a total that was below `points`;
 * - **at least `points` are allowed** (given the demand): an instance refuses only when
 *   `known + unreported ≥ points`, and both terms count requests that were really admitted.
 *
 * The lease follows the observed rate (about {@link LEASE_HORIZON_MS} of traffic, at most
 * `leaseMax`), and a report starts when half of it is spent, so the next one is usually there
 * before it runs out; otherwise the request waits for that report, at most {@link LEASE_WAIT_MS}.
 * When the store fails, or does not answer within that wait (a silent database, issue 22), requests
 * that need it are counted by the per-process limiter instead (as rate-limiter-flexible's
 * insurance limiter does), said once through `onFallback`, and the store is tried again after
 * {@link RETRY_MS}. While counting locally each instance allows up to `points` on its own.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import type { Store } from '../store.js';
import { LocalWindows } from './rate-windows.js';

/** The traffic a lease covers: at the observed rate, a lease lasts about this long, ms. */
export const LEASE_HORIZON_MS = 250;
/** Admitted requests are reported at least this often, even when the lease is far from spent, ms. */
export const FLUSH_MS = 1000;
/** After a failed report, the store is not asked again for this long, ms. */
export const RETRY_MS = 1000;
/** The longest a request waits for a lease report before it is counted locally, ms. */
export const LEASE_WAIT_MS = 250;

/** Optional behaviour of {@link RateLeases}. */
export interface RateLeaseOptions {
  /** The longest a request waits for the store's answer, ms. Default: {@link LEASE_WAIT_MS}. */
  waitMs?: number;
  /** Told when counting falls back to this process (the cause) and when shared counting is back (`undefined`); once each. */
  onFallback?: (cause: unknown) => void;
}

/** What `rateLimit()` answers: allowed or not, the remaining count, and when the window ends. */
export interface RateDecision {
  allowed: boolean;
  remaining: number;
  msBeforeNext: number;
}

interface LeaseState {
  /** The window this state counts (epoch ms of its start). */
  windowStart: number;
  /** The store's total for the window at the last report (every instance's admissions). */
  known: number;
  /** Admitted here and not yet confirmed by the store (an in-flight report's count included). */
  unreported: number;
  /** How many may be admitted here beyond `known` before the store is asked. */
  lease: number;
  pending: Promise<void> | undefined;
  lastReport: number;
  /** No report before this epoch ms (the store failed). */
  retryAt: number;
  /** The counter's key in the store. */
  storeKey: string;
}

type AddRateUsage = NonNullable<Store['addRateUsage']>;

/** Leased counts of one `rateLimit()` policy on a shared store. */
export class RateLeases {
  readonly #add: AddRateUsage;
  readonly #points: number;
  readonly #durationMs: number;
  readonly #leaseMax: number;
  readonly #prefix: string;
  readonly #fallback: LocalWindows;
  readonly #states = new Map<string, LeaseState>();
  readonly #waitMs: number;
  readonly #onFallback: ((cause: unknown) => void) | undefined;
  /** Counting locally since a report failed or was too slow; said once, until a report succeeds. */
  #degraded = false;
  #nextSweep = 0;

  /**
   * @param add the store's {@link Store.addRateUsage}, bound
   * @param leaseMax the largest lease, ≥ 1: the bound's excess per instance
   * @param prefix distinguishes policies (name, points, duration) in the store's keys
   */
  constructor(add: AddRateUsage, points: number, durationSeconds: number, leaseMax: number, prefix: string, options: RateLeaseOptions = {}) {
    this.#add = add;
    this.#waitMs = options.waitMs ?? LEASE_WAIT_MS;
    this.#onFallback = options.onFallback;
    this.#points = points;
    this.#durationMs = durationSeconds * 1000;
    this.#leaseMax = Math.max(1, Math.floor(leaseMax));
    this.#prefix = prefix;
    this.#fallback = new LocalWindows(points, durationSeconds);
  }

  /** The largest lease: N instances together allow at most `points + N × leaseMax` per window. */
  get leaseMax(): number {
    return this.#leaseMax;
  }

  /** Count one request of `key`: synchronous while the lease allows it, else after the store answered. */
  consume(key: string, now: number): RateDecision | Promise<RateDecision> {
    const windowStart = now - (now % this.#durationMs);
    let s = this.#states.get(key);
    if (s === undefined) {
      if (now >= this.#nextSweep) this.#sweep(now);
      s = {
        windowStart,
        known: 0,
        unreported: 0,
        lease: 1,
        pending: undefined,
        lastReport: now,
        retryAt: 0,
        // A digest: keys carry route patterns of any length and alphabet.
        storeKey: `eat_rl:${createHash('sha256').update(`${this.#prefix}\u0000${key}`).digest('base64url')}`,
      };
      this.#states.set(key, s);
    } else if (s.windowStart !== windowStart) {
      // A new window: the store's counter starts at 0; the lease size (the observed rate) stays.
      s.windowStart = windowStart;
      s.known = 0;
      s.unreported = 0;
      s.lastReport = now;
    }
    return this.#decide(s, key, now);
  }

  #decide(s: LeaseState, key: string, now: number): RateDecision | Promise<RateDecision> {
    const msBeforeNext = s.windowStart + this.#durationMs - now;
    const counted = s.known + s.unreported;
    // Both terms are requests really admitted: refusing here never allows less than the quota.
    if (counted >= this.#points) return { allowed: false, remaining: 0, msBeforeNext };
    if (s.unreported < s.lease) {
      s.unreported++;
      if (s.pending === undefined && now >= s.retryAt && (s.unreported * 2 >= s.lease || now - s.lastReport >= FLUSH_MS)) {
        void this.#report(s);
      }
      return { allowed: true, remaining: this.#points - counted - 1, msBeforeNext };
    }
    // The lease is spent and the store has not answered yet (or is failing).
    if (now < s.retryAt) return this.#local(key, now);
    const windowStart = s.windowStart;
    let timer: NodeJS.Timeout | undefined;
    // A silent store must not hold the request: past the wait, count it here (and say so).
    const waited = new Promise<'late'>((resolve) => {
      timer = setTimeout(resolve, this.#waitMs, 'late');
    });
    return Promise.race([this.#report(s), waited]).then((outcome) => {
      clearTimeout(timer);
      const later = Date.now();
      if (outcome === 'late') {
        if (s.pending !== undefined) s.retryAt = Math.max(s.retryAt, later + RETRY_MS);
        this.#fellBack(new Error(`the store did not answer a rate-limit report within ${this.#waitMs} ms`));
        return this.#local(key, later);
      }
      if (later < s.retryAt && s.windowStart === windowStart) return this.#local(key, later);
      return this.consume(key, later);
    });
  }

  #fellBack(cause: unknown): void {
    if (this.#degraded) return;
    this.#degraded = true;
    this.#onFallback?.(cause);
  }

  /** The per-process count, while the store fails. */
  #local(key: string, now: number): RateDecision {
    const w = this.#fallback.consume(key, now);
    return { allowed: w.count <= this.#points, remaining: Math.max(0, this.#points - w.count), msBeforeNext: w.resetAt - now };
  }

  /** Add what was admitted here to the store's counter; learn the total; size the next lease. */
  #report(s: LeaseState): Promise<void> {
    if (s.pending !== undefined) return s.pending;
    const windowStart = s.windowStart;
    const count = s.unreported;
    const since = s.lastReport;
    // The counter outlives its window by one more, for clocks a little apart.
    const expiresAt = new Date(windowStart + 2 * this.#durationMs);
    s.pending = this.#add(s.storeKey, windowStart, count, expiresAt)
      .then(
        (total) => {
          if (this.#degraded) {
            this.#degraded = false;
            this.#onFallback?.(undefined);
          }
          s.retryAt = 0;
          if (s.windowStart !== windowStart) return;
          const at = Date.now();
          s.unreported -= count;
          s.known = Math.max(s.known, total);
          s.lastReport = at;
          const rate = count / Math.max(at - since, 10);
          s.lease = Math.min(this.#leaseMax, Math.max(1, Math.ceil(rate * LEASE_HORIZON_MS)));
        },
        (error: unknown) => {
          s.retryAt = Date.now() + RETRY_MS;
          this.#fellBack(error);
        },
      )
      .finally(() => {
        s.pending = undefined;
      });
    return s.pending;
  }

  /** Forget keys idle for a whole window (at most once per window length). */
  #sweep(now: number): void {
    this.#nextSweep = now + this.#durationMs;
    const current = now - (now % this.#durationMs);
    for (const [key, s] of this.#states) {
      if (s.windowStart < current && s.pending === undefined) this.#states.delete(key);
    }
  }
}
