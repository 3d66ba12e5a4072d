/**
 * Limiters (rate-limiter-flexible): in memory by default; shared through the store (PostgreSQL)
 * when the store offers a backend, with a per-process memory limiter as insurance while the
 * database is unreachable.
 *
 * @module
 */
import { LRUCache } from 'lru-cache';
import { RateLimiterMemory, RateLimiterPostgres, type IRateLimiterOptions, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Store } from '../store.js';
import { AppTokensError } from './errors.js';

/** A limiter on the store's shared backend when it has one, else in memory. Resolves once usable. */
export async function createLimiter(store: Store, options: IRateLimiterOptions & { keyPrefix: string }): Promise<RateLimiterAbstract> {
  const memory = new RateLimiterMemory(options);
  const backend = await store.rateLimiterBackend?.().catch(() => undefined);
  if (!backend) return memory;
  return new Promise((resolve) => {
    const limiter = new RateLimiterPostgres(
      { ...options, storeClient: backend.pool, tableName: 'app_tokens_rate_limits', insuranceLimiter: memory },
      (error?: unknown) => resolve(error ? memory : limiter),
    );
  });
}


/** How long a client id found not locked out is taken to stay so without asking the shared counter, ms. */
export const OPEN_MEMO_MS = 1000;

/** Options of the client lockout at the OAuth endpoints. */
export interface ClientLockoutOptions {
  /** Failed client authentications allowed per window. Default: 10. */
  attempts: number;
  /** The window, seconds. Default: 300. */
  window: number;
  /** How long the client id is then locked out, seconds. Default: 900. */
  duration: number;
}

/**
 * RFC 6749 §2.3.1: "the authorization server MUST protect any endpoint utilizing it against brute
 * force attacks". After `attempts` failed secret checks for one client id within `window`, that
 * client id is refused (429) for `duration`, whatever secret it sends.
 */
export class ClientLockout {
  readonly #limiter: Promise<RateLimiterAbstract>;
  readonly #options: ClientLockoutOptions;
  /** Client ids found open recently → epoch ms until which that answer stands. */
  readonly #open = new LRUCache<string, number>({ max: 10_000 });

  constructor(store: Store, options: ClientLockoutOptions) {
    this.#options = options;
    this.#limiter = createLimiter(store, { points: options.attempts, duration: options.window, keyPrefix: 'eat_lockout' });
  }

  /**
   * Throws `rate_limited` (429) while the client id is locked out. A client id found open is not
   * looked up again for {@link OPEN_MEMO_MS}, so that a busy client's grants do not each read the
   * shared counter (a PostgreSQL round trip); a failure in this process forgets that at once, and
   * failures counted by other instances lock it here within {@link OPEN_MEMO_MS}.
   */
  async assertOpen(clientId: string): Promise<void> {
    const openUntil = this.#open.get(clientId);
    if (openUntil !== undefined && openUntil > Date.now()) return;
    const res = await (await this.#limiter).get(clientId).catch(() => undefined);
    if (res === undefined) return; // the counter is unreachable: fail open, and look again next time
    if (res !== null && res.consumedPoints >= this.#options.attempts && res.msBeforeNext > 0) {
      const retryAfter = Math.ceil(res.msBeforeNext / 1000);
      throw new AppTokensError('rate_limited', `too many failed authentications for this client; retry in ${retryAfter} s`, {
        status: 429,
        retryAfter,
      });
    }
    this.#open.set(clientId, Date.now() + OPEN_MEMO_MS);
  }

  /**
   * Was the client id found open within the last {@link OPEN_MEMO_MS}? Synchronous, for cached
   * paths: `false` sends the caller down a path that awaits {@link assertOpen}.
   */
  isKnownOpen(clientId: string): boolean {
    const openUntil = this.#open.get(clientId);
    return openUntil !== undefined && openUntil > Date.now();
  }

  /** Count a failed secret check; the one that reaches `attempts` locks the client id for `duration`. */
  async failed(clientId: string): Promise<void> {
    this.#open.delete(clientId);
    const limiter = await this.#limiter;
    const res = await limiter.consume(clientId).catch((r: unknown) => r);
    if (typeof res === 'object' && res !== null && 'consumedPoints' in res && (res as { consumedPoints: number }).consumedPoints >= this.#options.attempts) {
      await limiter.block(clientId, this.#options.duration).catch(() => undefined);
    }
  }
}
