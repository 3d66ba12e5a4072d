/**
 * Expiry notices (`notifyBeforeExpiry`): a periodic sweep that tells the host, through `onEvent`
 * and the audit log, that an API token will expire soon — once per token per threshold, whatever
 * the number of instances, because each notice is claimed in the store before it is emitted.
 *
 * @module
 */
import type { ApiTokenRecord, Store } from '../store.js';
import type { EventLog } from './events.js';

/** Tokens read per page of the sweep. */
const PAGE = 500;
/** Pages per run: a run is bounded; what is left waits for the next run. */
const MAX_PAGES = 200;

export interface ExpiryOptions {
  /** Seconds before expiry; `false`: no notices. */
  thresholds: readonly number[] | false;
  now: () => Date;
}

export class ExpiryNotices {
  readonly #store: Store;
  readonly #events: EventLog;
  readonly #now: () => Date;
  /** Descending. */
  readonly #thresholds: readonly number[];

  constructor(store: Store, events: EventLog, options: ExpiryOptions) {
    this.#store = store;
    this.#events = events;
    this.#now = options.now;
    this.#thresholds = options.thresholds === false ? [] : [...options.thresholds].sort((a, b) => b - a);
  }

  get enabled(): boolean {
    return this.#thresholds.length > 0;
  }

  /**
   * The window the app view calls "expiring soon", seconds: the widest threshold (7 days by
   * default; 7 days too when notices are off).
   */
  get soonSeconds(): number {
    return this.#thresholds[0] ?? 7 * 86_400;
  }

  /**
   * The threshold a token is inside now, if any: the narrowest one it has crossed. A threshold
   * counts only for a token that lived longer than it, so a 1-hour token is not announced as
   * "expiring within 7 days" the moment it is made.
   */
  due(token: ApiTokenRecord, nowMs: number): number | undefined {
    if (token.expiresAt === null) return undefined;
    const left = token.expiresAt.getTime() - nowMs;
    const lifetime = token.expiresAt.getTime() - token.createdAt.getTime();
    let due: number | undefined;
    for (const t of this.#thresholds) if (left <= t * 1000 && lifetime > t * 1000) due = t;
    if (due === undefined) return undefined;
    return token.notifiedBefore !== null && token.notifiedBefore !== undefined && token.notifiedBefore <= due ? undefined : due;
  }

  /** One run: every token inside a threshold, claimed and announced. Returns how many notices it emitted. */
  async sweep(): Promise<number> {
    if (!this.enabled) return 0;
    const now = this.#now();
    const nowMs = now.getTime();
    const before = new Date(nowMs + this.#thresholds[0]! * 1000);
    let emitted = 0;
    let cursor: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const { items, nextCursor } = await this.#store.listExpiringApiTokens({ after: now, before, limit: PAGE, cursor });
      for (const token of items) {
        const threshold = this.due(token, nowMs);
        if (threshold === undefined) continue;
        // The store decides who announces: of every instance sweeping at once, exactly one wins.
        if (!(await this.#store.claimExpiryNotice(token.tenantId, token.id, threshold))) continue;
        this.#events.emit({
          type: 'token.expiring',
          tenantId: token.tenantId,
          appId: token.appId,
          tokenId: token.id,
          actorId: null,
          data: { name: token.name, expiresAt: token.expiresAt!.toISOString(), threshold },
        });
        emitted++;
      }
      if (nextCursor === null) break;
      cursor = nextCursor;
    }
    return emitted;
  }
}
