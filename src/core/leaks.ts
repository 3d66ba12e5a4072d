/**
 * Acting on API tokens reported leaked (issue 17): a secret scanner found values in public places
 * (a repository, a gist, an npm package) and, through a verified report, tells us where.
 *
 * Each distinct value is checked as the token endpoint checks a secret: the format and checksum
 * first (a malformed or foreign value costs no lookup), then the store by the SHA-256 the value
 * itself produces, compared in constant time. Nothing else matches: not a hash, a hint or an id
 * presented as a token. A token that is ours and live at that moment is a true positive; with
 * `revoke` it dies like a deleted token, with every access token it minted, in every tenant (a
 * leak is global: whoever reported it owes us no tenant). Everything else is a false positive and
 * changes nothing.
 *
 * @module
 */
import { timingSafeEqual } from 'node:crypto';
import type { ApiTokenRecord } from '../store.js';
import type { AppTokensService } from './service.js';
import { DUMMY_HASH, hashSecret } from './secrets.js';

/** One entry of a report: a value found somewhere public. */
export interface LeakReport {
  /** The value as found. */
  token: string;
  /** The reporter's name for the format it matched. */
  type: string;
  /** Where it was found (a URL), when the reporter says. */
  url: string | null;
  /** What kind of place (`content`, `commit`, `npm`, …), when the reporter says. */
  source: string | null;
}

/** The reporter's feedback item for one distinct value (GitHub's optional feedback list). */
export interface LeakFeedback {
  /** SHA-256 of the raw value, lowercase hex. */
  token_hash: string;
  token_type: string;
  /** `true_positive` only for a token that was ours and live when the report arrived. */
  label: 'true_positive' | 'false_positive';
}

/** What to do with a live token reported leaked. */
export type LeakAction = 'revoke' | 'notify';

/** The `actorId` of `token.leaked` events. */
export const LEAK_ACTOR = 'secret_scanning';

/** Store lookups in flight at once for one report: bounded, so one batch cannot take every connection. */
const LOOKUP_CONCURRENCY = 8;

/**
 * Act on one verified report: at most one lookup per distinct well-formed value, one revocation
 * write per tenant, one `token.leaked` event per token this call found live (revoked by this very
 * call, with `revoke`), all before answering. Returns one feedback item per distinct value, in the
 * order of first appearance.
 *
 * Replaying a report is harmless: with `revoke`, the tokens are no longer live, so a replay (or a
 * concurrent duplicate, which loses the store's atomic revocation) answers `false_positive` and
 * emits nothing. With `notify` the tokens stay live: every report of one is a true positive and
 * emits an event again (the host deduplicates by `tokenId` and `data.url`).
 */
export async function actOnLeaks(service: AppTokensService, reports: readonly LeakReport[], action: LeakAction): Promise<LeakFeedback[]> {
  const { store, advanced } = service.options;
  const now = advanced.now();
  const distinct = new Map<string, LeakReport>();
  for (const report of reports) if (!distinct.has(report.token)) distinct.set(report.token, report);
  const entries = [...distinct.values()].map((report) => ({ report, hash: hashSecret(report.token), record: undefined as ApiTokenRecord | undefined }));

  // Look up the well-formed ones, a few at a time.
  const candidates = entries.filter((e) => service.secrets.isWellFormed(e.report.token));
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < candidates.length) {
      const entry = candidates[next++]!;
      const found = await store.findApiTokenByHash(entry.hash);
      if (isLiveMatch(found, entry.hash, now)) entry.record = found;
    }
  };
  await Promise.all(Array.from({ length: Math.min(LOOKUP_CONCURRENCY, candidates.length) }, worker));

  const positives = new Set<ApiTokenRecord>();
  const live = entries.filter((e) => e.record !== undefined);
  const emit = (e: (typeof entries)[number]): void => {
    const { report, hash } = e;
    const record = e.record!;
    positives.add(record);
    service.events.emit({
      type: 'token.leaked',
      tenantId: record.tenantId,
      appId: record.appId,
      tokenId: record.id,
      actorId: LEAK_ACTOR,
      data: {
        source: scrub(report.source, report.token, hash),
        url: scrub(report.url, report.token, hash),
        type: scrub(report.type, report.token, hash),
        action: action === 'revoke' ? 'revoked' : 'notified',
      },
    });
  };
  if (action === 'notify') {
    for (const e of live) emit(e);
  } else {
    const byTenant = new Map<string, typeof live>();
    for (const e of live) {
      const group = byTenant.get(e.record!.tenantId);
      if (group) group.push(e);
      else byTenant.set(e.record!.tenantId, [e]);
    }
    for (const [tenantId, group] of byTenant) {
      const ids = group.map((e) => e.record!.id);
      const revoked = new Set(
        await store.revokeApiTokens(
          tenantId,
          ids,
          'leaked',
          ids.map((id) => service.tombstone('api_token', id, tenantId, now)),
          now,
        ),
      );
      // Emitted per tenant, as soon as its write commits: should a later tenant's write fail, the
      // tokens already revoked still have their event (a retry finds them dead and emits none).
      const apps = new Set<string>();
      for (const e of group) {
        if (!revoked.has(e.record!.id)) continue; // revoked meanwhile by someone else: not this call's
        emit(e);
        apps.add(e.record!.appId);
      }
      for (const appId of apps) service.forgetClient(appId);
    }
  }
  if (positives.size > 0) {
    service.log.warn(
      { tokens: positives.size, action: action === 'revoke' ? 'revoked' : 'notified' },
      `secret scanning: ${positives.size} live API token(s) reported leaked (see the token.leaked events)`,
    );
  }

  return entries.map((e) => ({
    token_hash: e.hash,
    token_type: e.report.type,
    label: e.record !== undefined && positives.has(e.record) ? 'true_positive' : 'false_positive',
  }));
}

/** The record found by `hash`, if it really has that hash (constant time) and is live at `now`. */
function isLiveMatch(record: ApiTokenRecord | undefined, hash: string, now: Date): record is ApiTokenRecord {
  const presented = Buffer.from(hash, 'hex');
  const stored = Buffer.from(record?.hash ?? DUMMY_HASH, 'hex');
  const same = stored.length === presented.length && timingSafeEqual(stored, presented);
  return same && record !== undefined && record.revokedAt === null && (record.expiresAt === null || record.expiresAt > now);
}

/** A reporter's string for the audit log, with the value and its hash cut out should it carry them. */
function scrub(text: string | null, token: string, hash: string): string | null {
  if (text === null) return null;
  let out = text;
  if (token.length > 0) out = out.split(token).join('[redacted]');
  return out.split(hash).join('[redacted]');
}
