/**
 * The host's answer to "what may this user do now" (`management.userScopes`), short-cached: every
 * use of a personal token is bounded by it, so a user who loses a scope loses it in their tokens
 * within the cache's lifetime, and a user who is gone (`null`) has dead tokens (issue 13).
 *
 * @module
 */
import { LRUCache } from 'lru-cache';
import { AppTokensError } from './errors.js';
import { GrantedScopes } from './scopes.js';

/** The host callback of `management.userScopes`. */
export type UserScopesCallback = (tenantId: string, userId: string) => readonly string[] | null | Promise<readonly string[] | null>;

interface Entry {
  /** `null`: the user is gone. */
  granted: GrantedScopes | null;
  until: number;
}

/** Users whose answer is kept at once (a bound, not a tuning knob). */
const MAX_USERS = 10_000;

export class UserScopes {
  readonly #callback: UserScopesCallback | undefined;
  readonly #ttlMs: number;
  readonly #nowMs: () => number;
  readonly #cache = new LRUCache<string, Entry>({ max: MAX_USERS });

  constructor(callback: UserScopesCallback | undefined, ttlSeconds: number, nowMs: () => number) {
    this.#callback = callback;
    this.#ttlMs = ttlSeconds * 1000;
    this.#nowMs = nowMs;
  }

  /** Whether the host enabled personal tokens (set `management.userScopes`). */
  get enabled(): boolean {
    return this.#callback !== undefined;
  }

  /** How long an answer is trusted, ms: a bearer cache of a personal token must not outlive it. */
  get ttlMs(): number {
    return this.#ttlMs;
  }

  /**
   * The user's scopes now (`null`: gone, or personal tokens disabled). `fresh` asks the host
   * whatever the cache holds (creating a token). A throwing or malformed callback is a 503, never
   * a grant.
   */
  async get(tenantId: string, userId: string, fresh = false): Promise<GrantedScopes | null> {
    if (this.#callback === undefined) return null;
    const key = `${tenantId}\u0000${userId}`;
    const nowMs = this.#nowMs();
    if (!fresh) {
      const hit = this.#cache.get(key);
      if (hit !== undefined && nowMs < hit.until) return hit.granted;
    }
    let answer: unknown;
    try {
      answer = await this.#callback(tenantId, userId);
    } catch (cause) {
      throw new AppTokensError('unavailable', 'management.userScopes failed; try again', { cause });
    }
    let granted: GrantedScopes | null;
    if (answer === null) granted = null;
    else if (Array.isArray(answer) && answer.every((s) => typeof s === 'string')) granted = new GrantedScopes(answer as string[]);
    else throw new AppTokensError('server_error', 'management.userScopes returned something that is not an array of scopes or null');
    if (this.#ttlMs > 0) this.#cache.set(key, { granted, until: nowMs + this.#ttlMs });
    return granted;
  }

  /** Forget a user's answer (their tokens were revoked, or the host says they changed). */
  forget(tenantId: string, userId: string): void {
    this.#cache.delete(`${tenantId}\u0000${userId}`);
  }
}
