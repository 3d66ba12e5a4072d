/**
 * Limiters (rate-limiter-flexible): in memory by default; shared through the store (PostgreSQL)
 * when the store offers a backend, with a per-process memory limiter as insurance while the
 * database is unreachable.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import { LRUCache } from 'lru-cache';
import { RateLimiterMemory, RateLimiterPostgres, type IRateLimiterOptions, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Store } from '../store.js';
import { AppTokensError } from './errors.js';

/** A shared limiter → its per-process memory insurance (what this process knows when the backend does not answer). */
const insurances = new WeakMap<RateLimiterAbstract, RateLimiterMemory>();

/** A limiter on the store's shared backend when it has one, else in memory. Resolves once usable. */
export async function createLimiter(store: Pick<Store, 'rateLimiterBackend'>, options: IRateLimiterOptions & { keyPrefix: string }): Promise<RateLimiterAbstract> {
  const memory = new RateLimiterMemory(options);
  const backend = await store.rateLimiterBackend?.().catch(() => undefined);
  if (!backend) return memory;
  return new Promise((resolve) => {
    const limiter = new RateLimiterPostgres(
      { ...options, storeClient: backend.pool, tableName: 'app_tokens_rate_limits', insuranceLimiter: memory },
      (error?: unknown) => {
        if (!error) insurances.set(limiter, memory);
        resolve(error ? memory : limiter);
      },
    );
  });
}

/**
 * How long a request waits for the shared lockout counters, ms. Past it (a silent path to the
 * database: each query would wait for its full `queryTimeout`, before the store's own query of
 * the request does the same) the request goes on with what this process knows (its memory
 * insurance: failures counted while the backend failed, and throttles it has seen), and the
 * shared call finishes in the background.
 */
export const LOCKOUT_WAIT_MS = 500;


/** How long a (source, client id) found not throttled is taken to stay so without asking the shared counters, ms. */
export const OPEN_MEMO_MS = 1000;

/** Options of the failed-authentication throttle at the doors that check a client's credentials. */
export interface ClientLockoutOptions {
  /** Failed authentications allowed from one source for one client id per window. Default: 10. */
  attempts: number;
  /** Failed authentications allowed from one source for all client ids together per window. Default: 100. */
  sourceAttempts: number;
  /** The window, seconds. Default: 300. */
  window: number;
  /** How long a source is then throttled, seconds. Default: 900. */
  duration: number;
}

/** What an app's managers see of the failed authentications against it (`GET /apps/:id`). */
export interface LockoutState {
  /** Failed authentications naming this client, from every source, in the current window. */
  failures: number;
  /** The last of them (kept for the longer of `window` and `duration`); `null`: none recently. */
  lastFailureAt: Date | null;
  /** Sources throttled for this client in the current lockout period (one `duration` from the first). */
  throttledSources: number;
  /** When the last throttled source is let through again; `null`: none is throttled. */
  until: Date | null;
}

/** Counters never meant to refuse: a bound RateLimiter-flexible accepts, no number of failures reaches. */
const TALLY_POINTS = 2_000_000_000;

/**
 * The source of a request as the throttle keys it: an IPv4 address; an IPv6 address by its /64
 * (one host holds a whole /64 and can rotate through it: RFC 4291 §2.5.4); an IPv4-mapped IPv6
 * address as its IPv4 address. Anything else (an `X-Forwarded-For` value a host trusts blindly)
 * by a digest, so that the key stays short and printable. `undefined` (a programmatic caller, a
 * closed socket) is the one source `unknown`.
 *
 * @example
 * ```ts
 * sourceKey('2001:db8:1:2:3:4:5:6'); // '2001:db8:1:2::/64'
 * sourceKey('::ffff:192.0.2.7');     // '192.0.2.7'
 * ```
 */
export function sourceKey(address: string | undefined): string {
  if (address === undefined || address === '') return 'unknown';
  const ip = address.length <= 64 ? address.replace(/%.*$/, '') : address;
  if (isIPv4(ip)) return ip;
  if (isIPv6(ip)) {
    const groups = expandIPv6(ip);
    if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
      return `${groups[6]! >> 8}.${groups[6]! & 255}.${groups[7]! >> 8}.${groups[7]! & 255}`;
    }
    return `${groups.slice(0, 4).map((g) => g.toString(16)).join(':')}::/64`;
  }
  return `other:${createHash('sha256').update(address).digest('base64url').slice(0, 22)}`;
}

/** The eight 16-bit groups of a valid IPv6 address (`::` expanded, a dotted IPv4 tail converted). */
function expandIPv6(ip: string): number[] {
  let text = ip.toLowerCase();
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [left, right] = text.split('::') as [string, string | undefined];
  const head = left === '' ? [] : left.split(':');
  const tail = right === undefined || right === '' ? [] : right.split(':');
  const fill = right === undefined ? [] : new Array<string>(8 - head.length - tail.length).fill('0');
  return [...head, ...fill, ...tail].map((g) => parseInt(g, 16));
}

/** A client id as a counter key: ours as they are; anything else (any text a client sends) by a digest. */
function clientKey(clientId: string): string {
  return /^[A-Za-z0-9_.:-]{1,128}$/.test(clientId) ? clientId : `~${createHash('sha256').update(clientId).digest('base64url').slice(0, 22)}`;
}

/** What a get of a counter answers; `undefined` when the counter is unreachable. */
type Count = { consumedPoints: number; msBeforeNext: number } | null | undefined;

/**
 * RFC 6749 §2.3.1: "the authorization server MUST protect any endpoint utilizing it against brute
 * force attacks" — without handing anyone who lacks the credential a way to deny its holder.
 * Failures are counted per (source, client id) and per source; a source past `attempts` for one
 * client id, or past `sourceAttempts` over all, is refused (429 with `Retry-After`) for `duration`
 * before its credential is checked. A correct credential from any other source always succeeds,
 * whatever the failures elsewhere. Per client id the counts are only tallied, for its managers to
 * see ({@link state}) and clear ({@link clear}). Shared across instances through the store's
 * rate-limiter backend (PostgreSQL), with a per-process memory limiter as insurance.
 *
 * Clearing cannot list the sources that failed against a client: it leaves a marker, and a
 * (source, client id) counter that started before the marker is dropped when next read.
 */
export class ClientLockout {
  readonly #options: ClientLockoutOptions;
  /** Per (client id, source): `attempts` per `window`. */
  readonly #pair: Promise<RateLimiterAbstract>;
  /** Per source, over every client id: `sourceAttempts` per `window`. */
  readonly #source: Promise<RateLimiterAbstract>;
  /** Per client id, never refusing: failures in the window, and sources throttled in the period. */
  readonly #failures: Promise<RateLimiterAbstract>;
  readonly #throttled: Promise<RateLimiterAbstract>;
  /** Marks whose expiry is the information: `last:` (last failure), `until:` (last throttle), `clear:`. */
  readonly #marks: Promise<RateLimiterAbstract>;
  /** (source, client id) found open recently → epoch ms until which that answer stands. */
  readonly #open = new LRUCache<string, number>({ max: 10_000 });
  readonly #lastMs: number;
  readonly #clearMs: number;

  constructor(store: Pick<Store, 'rateLimiterBackend'>, options: ClientLockoutOptions) {
    this.#options = options;
    const { attempts, sourceAttempts, window, duration } = options;
    this.#pair = createLimiter(store, { points: attempts, duration: window, keyPrefix: 'eat_lockout_pair' });
    // One after the other: each creates the shared table if missing, and concurrent CREATE TABLEs
    // of one name can fail in PostgreSQL (that limiter would then fall back to memory).
    this.#source = this.#pair.then(() => createLimiter(store, { points: sourceAttempts, duration: window, keyPrefix: 'eat_lockout_source' }));
    this.#failures = this.#source.then(() => createLimiter(store, { points: TALLY_POINTS, duration: window, keyPrefix: 'eat_lockout_failures' }));
    this.#throttled = this.#failures.then(() => createLimiter(store, { points: TALLY_POINTS, duration, keyPrefix: 'eat_lockout_throttled' }));
    this.#marks = this.#throttled.then(() => createLimiter(store, { points: TALLY_POINTS, duration: window, keyPrefix: 'eat_lockout_mark' }));
    this.#lastMs = Math.max(window, duration) * 1000;
    // A clear outlives every counter it overrides.
    this.#clearMs = (Math.max(window, duration) + 1) * 1000;
  }

  /**
   * Throws `rate_limited` (429, `retryAfter`) while `source` is throttled, over all client ids or
   * for `clientId`. A (source, client id) found open is not looked up again for
   * {@link OPEN_MEMO_MS}, so that a busy client's grants do not each read the shared counters (a
   * PostgreSQL round trip); a failure in this process forgets that at once. An unreachable counter
   * fails open.
   */
  async assertOpen(source: string, clientId?: string): Promise<void> {
    const client = clientId === undefined ? undefined : clientKey(clientId);
    const memo = `${source}\u0000${client ?? ''}`;
    const openUntil = this.#open.get(memo);
    if (openUntil !== undefined && openUntil > Date.now()) return;
    const { attempts, sourceAttempts } = this.#options;
    const [bySource, byPair] = await Promise.all([
      read(this.#source, source),
      client === undefined ? null : read(this.#pair, `${client}|${source}`),
    ]);
    let waitMs = 0;
    if (bySource && bySource.consumedPoints >= sourceAttempts) {
      waitMs = bySource.msBeforeNext;
      void remember(this.#source, source, bySource.msBeforeNext);
    }
    if (byPair && client !== undefined && !(await this.#clearedSince(client, source, byPair)) && byPair.consumedPoints >= attempts) {
      waitMs = Math.max(waitMs, byPair.msBeforeNext);
      void remember(this.#pair, `${client}|${source}`, byPair.msBeforeNext);
    }
    if (waitMs > 0) {
      const retryAfter = Math.ceil(waitMs / 1000);
      throw new AppTokensError('rate_limited', `too many failed authentications from this address; retry in ${retryAfter} s`, {
        status: 429,
        retryAfter,
      });
    }
    this.#open.set(memo, Date.now() + OPEN_MEMO_MS);
  }

  /**
   * Count a failed authentication from `source`, naming `clientId` when the request named one whose
   * credential was checked (not the unverified `iss` of an assertion: nothing is keyed on it). The
   * failure that reaches a threshold throttles the source for `duration`. Waits for the shared
   * counters at most {@link LOCKOUT_WAIT_MS}; the counting goes on in the background (on the memory
   * insurance when the backend fails).
   */
  async failed(source: string, clientId?: string): Promise<void> {
    await bounded(this.#failed(source, clientId), undefined);
  }

  async #failed(source: string, clientId?: string): Promise<void> {
    const client = clientId === undefined ? undefined : clientKey(clientId);
    this.#open.delete(`${source}\u0000${client ?? ''}`);
    this.#open.delete(`${source}\u0000`);
    const { attempts, sourceAttempts, duration } = this.#options;
    const work: Array<Promise<unknown>> = [
      consume(this.#source, source).then(async (n) => {
        if (n < sourceAttempts) return;
        void remember(this.#source, source, duration * 1000);
        await (await this.#source).block(source, duration).catch(() => undefined);
      }),
    ];
    if (client !== undefined) {
      const pair = `${client}|${source}`;
      work.push(
        consume(this.#pair, pair).then(async (n) => {
          if (n < attempts) return;
          void remember(this.#pair, pair, duration * 1000);
          await (await this.#pair).block(pair, duration).catch(() => undefined);
          // The failure that crossed the threshold counts the source once for the client's managers.
          if (n === attempts) {
            await Promise.all([consume(this.#throttled, client), this.#mark(`until:${client}`, duration * 1000)]);
          }
        }),
        consume(this.#failures, client),
        this.#mark(`last:${client}`, this.#lastMs),
      );
    }
    await Promise.all(work);
  }

  /** The failed authentications against `clientId` as its managers see them. */
  async state(clientId: string): Promise<LockoutState> {
    const client = clientKey(clientId);
    const marks = this.#marks;
    const [failures, throttled, last, until] = await Promise.all([
      read(this.#failures, client),
      read(this.#throttled, client),
      read(marks, `last:${client}`),
      read(marks, `until:${client}`),
    ]);
    const now = Date.now();
    const untilAt = until ? new Date(now + until.msBeforeNext) : null;
    return {
      failures: failures?.consumedPoints ?? 0,
      lastFailureAt: last ? new Date(now + last.msBeforeNext - this.#lastMs) : null,
      // The tally's period starts at the first throttle; a source throttled late in it outlives it.
      throttledSources: throttled?.consumedPoints ?? (untilAt !== null ? 1 : 0),
      until: untilAt,
    };
  }

  /**
   * Clear the client id's lockout: its tallies, and every source throttled for it (each is
   * dropped when next read, on every instance). Throttles of a source over all client ids stay:
   * they are not this client's.
   */
  async clear(clientId: string): Promise<void> {
    const client = clientKey(clientId);
    const marks = await this.#marks;
    await Promise.all([
      marks.set(`clear:${client}`, 0, this.#clearMs / 1000),
      marks.delete(`last:${client}`),
      marks.delete(`until:${client}`),
      (await this.#failures).delete(client),
      (await this.#throttled).delete(client),
    ]);
  }

  /** Was the (source, client id) counter started before the client's lockout was last cleared? Then it is dropped. */
  async #clearedSince(client: string, source: string, pair: NonNullable<Count>): Promise<boolean> {
    const cleared = await read(this.#marks, `clear:${client}`);
    if (!cleared) return false;
    const now = Date.now();
    const clearedAt = now + cleared.msBeforeNext - this.#clearMs;
    const { attempts, window, duration } = this.#options;
    // A throttled counter expires `duration` after its throttle; a counting one `window` after its first failure.
    const startedAt = now + pair.msBeforeNext - (pair.consumedPoints > attempts ? duration : window) * 1000;
    if (startedAt > clearedAt) return false;
    await (await this.#pair).delete(`${client}|${source}`).catch(() => undefined);
    return true;
  }

  async #mark(key: string, ms: number): Promise<void> {
    await (await this.#marks).set(key, 0, ms / 1000).catch(() => undefined);
  }
}

/** `work`, or `late` once it has taken {@link LOCKOUT_WAIT_MS} (it goes on; its failure is its own). */
async function bounded<T, L>(work: Promise<T>, late: L): Promise<T | L> {
  let timer: NodeJS.Timeout | undefined;
  const wait = new Promise<L>((resolve) => {
    timer = setTimeout(() => resolve(late), LOCKOUT_WAIT_MS);
    timer.unref();
  });
  try {
    return await Promise.race([work, wait]);
  } finally {
    clearTimeout(timer);
  }
}

const LATE = Symbol('late');

/**
 * A counter: the shared one's, or, when it fails (rate-limiter-flexible asks the insurance) or
 * does not answer within {@link LOCKOUT_WAIT_MS}, what this process knows (its memory insurance):
 * an unreachable backend never holds a request, nor lets through a source known here to be throttled.
 */
async function read(limiter: Promise<RateLimiterAbstract>, key: string): Promise<Count> {
  const l = await limiter;
  const shared = l.get(key).catch(() => undefined);
  const insurance = insurances.get(l);
  if (!insurance) return shared;
  const res = await bounded(shared, LATE);
  return res === LATE ? insurance.get(key).catch(() => undefined) : res;
}

/** Keep a throttle seen (read from the shared counters, or set here) in this process's insurance, for when the backend does not answer. */
async function remember(limiter: Promise<RateLimiterAbstract>, key: string, ms: number): Promise<void> {
  const insurance = insurances.get(await limiter);
  if (insurance && ms > 0) await insurance.block(key, Math.ceil(ms / 1000)).catch(() => undefined);
}

/** Consume one point; the count afterwards (a refusal past the limit still counts), or 0 when unreachable. */
async function consume(limiter: Promise<RateLimiterAbstract>, key: string): Promise<number> {
  const res: unknown = await (await limiter).consume(key).catch((r: unknown) => r);
  return typeof res === 'object' && res !== null && 'consumedPoints' in res ? (res as { consumedPoints: number }).consumedPoints : 0;
}
