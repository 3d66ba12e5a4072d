/**
 * Refresh-token reuse detection (RFC 9700 §4.14.2) at every door that checks an API token: the
 * token endpoint and the other OAuth endpoints (client authentication), the bearer middleware,
 * introspection, revocation and `/tokens/refresh`. A token that was refreshed and is presented
 * again after the race window was copied: its whole family (every token of its rotation chain) is
 * revoked, once, and the detection is logged and audited once, however often it is presented.
 *
 * @module
 */
import type { ApiTokenRecord, Store } from '../store.js';
import type { EventLog } from './events.js';
import type { Logger } from './logger.js';

/** Where a revoked token was presented, recorded in `token.reuse_detected`. */
export type ReuseDoor = 'client_authentication' | 'bearer' | 'introspection' | 'token_exchange' | 'revocation' | 'refresh';

/** A refresh racing the family revocation may commit a successor the first write could not see. */
const MAX_ROUNDS = 5;

export interface ReuseDetectorOptions {
  store: Store;
  events: EventLog;
  log: Required<Logger>;
  /** `advanced.refreshRaceWindow`, seconds: a client's own concurrent retry is not reuse. */
  raceWindow: number;
  now: () => Date;
  /** When a tombstone written now may be dropped (the last access token it could kill has expired). */
  tombstoneExpiry: (now: Date) => Date;
}

export class ReuseDetector {
  readonly #o: ReuseDetectorOptions;

  constructor(options: ReuseDetectorOptions) {
    this.#o = options;
  }

  /**
   * A revoked token was presented with its exact value. Returns `true` when that is reuse: the
   * token was refreshed more than the race window ago (its family is then revoked, by this call or
   * by an earlier one), or its family was already revoked for reuse. `false`: it is dead for another
   * reason, or a refresh of it is only just done (a client's own retry), and nothing happens.
   */
  async presented(token: ApiTokenRecord, door: ReuseDoor, actorId: string | null): Promise<boolean> {
    if (token.revokedReason === 'reuse_detected') return true;
    if (token.revokedReason !== 'refreshed' || token.revokedAt === null) return false;
    const now = this.#o.now();
    if (now.getTime() - token.revokedAt.getTime() <= this.#o.raceWindow * 1000) return false;
    const tombstone = { createdAt: now, expiresAt: this.#o.tombstoneExpiry(now) };
    const first = await this.#o.store.revokeApiTokenFamily({ tenantId: token.tenantId, reusedId: token.id, tombstone, now });
    const revoked = [...first.revoked];
    // Each round is one write, whatever the chain's length; a second round only finds a successor
    // committed by a refresh that raced the first.
    for (let round = 1, last = first.revoked.length; round < MAX_ROUNDS && last > 0; round++) {
      const again = await this.#o.store.revokeApiTokenFamily({ tenantId: token.tenantId, reusedId: token.id, tombstone, now });
      revoked.push(...again.revoked);
      last = again.revoked.length;
    }
    // Exactly one caller, on any instance, flips the token: only that one logs and audits.
    if (first.detected) {
      this.#o.log.warn(
        { tenantId: token.tenantId, appId: token.appId, tokenId: token.id, door, revokedTokenIds: revoked },
        'refresh-token reuse detected: the token family was revoked',
      );
      this.#o.events.emit({
        type: 'token.reuse_detected',
        outcome: 'failure',
        tenantId: token.tenantId,
        appId: token.appId,
        tokenId: token.id,
        actorId,
        data: { door, revokedTokenIds: revoked },
      });
    }
    return true;
  }
}
