/**
 * Usage counts per app and per credential, per hour (issue 24): counted in memory on the request
 * path (one map increment, no I/O), added to the store in batches every `usage.flushInterval` and
 * on close ({@link BatchWriter}), read back as zero-filled series for charts, pruned after
 * `usage.retention`.
 *
 * What a crash loses: the counts of at most one flush interval (they live only in memory until
 * flushed). A store that is down keeps them in memory, up to {@link MAX_PENDING} distinct keys;
 * past that, new keys are dropped and counted in {@link UsageCounter.dropped}.
 *
 * @module
 */
import { USAGE_HOUR_MS, type Store, type UsageCount, type UsageRow, type UsageTotals } from '../store.js';
import { BatchWriter } from './batch.js';
import { AppTokensError } from './errors.js';
import type { Logger } from './logger.js';
import { BEARER_REFUSALS, NO_SIGNALS, type BearerRefusal, type Signals } from './signals.js';

/** Distinct (tenant, app, credential, hour, metric) keys held while the store does not answer. */
export const MAX_PENDING = 100_000;
const DAY_MS = 24 * USAGE_HOUR_MS;
/** Retention runs delete this many counts per statement, at most this many statements per run. */
const PRUNE_BATCH = 5000;
const PRUNE_BATCHES_PER_RUN = 100;
/** The longest hourly series: 7 days. */
export const MAX_HOURLY_POINTS = 168;

/** Metrics as stored: a grant type, `accepted`, `refused:<reason>`, `rate_limited`, `client_auth_failed`, `refreshed`. */
const ACCEPTED = 'accepted';
const RATE_LIMITED = 'rate_limited';
const CLIENT_AUTH_FAILED = 'client_auth_failed';
const REFRESHED = 'refreshed';
const GRANT = 'grant:';
const REFUSED = 'refused:';

/** Grant types as the series names them (RFC 8693's URN shortened). */
function grantName(grantType: string): string {
  if (grantType === 'urn:ietf:params:oauth:grant-type:token-exchange') return 'token_exchange';
  return /^[a-z_]{1,40}$/.test(grantType) ? grantType : 'other';
}

/** One bucket of a usage series. */
export interface UsagePoint {
  /** The bucket's start (ISO 8601, UTC). */
  start: string;
  /** Access tokens issued, by grant type (`client_credentials`, `token_exchange`). */
  grants: Record<string, number>;
  /** Bearer requests `authenticate()` let through. */
  accepted: number;
  /** Bearer requests refused, by reason (every reason present, zeros included). */
  refused: Record<BearerRefusal, number>;
  /** Requests answered 429 by `rateLimit()`. */
  rateLimited: number;
  /** Failed client authentications at the OAuth endpoints naming this app. */
  clientAuthFailures: number;
  /** API tokens rotated through `POST /tokens/refresh`. */
  refreshes: number;
}

/** What `GET /apps/:id/usage` answers. */
export interface UsageSeries {
  interval: 'hour' | 'day';
  /** The first bucket's start (ISO 8601). */
  from: string;
  /** The end of the last bucket (exclusive, ISO 8601). */
  to: string;
  /** One point per bucket, oldest first, zero-filled. */
  series: UsagePoint[];
  /** With `byToken`: one series per credential that has counts in the range, by id. */
  tokens?: { tokenId: string; series: UsagePoint[] }[];
}

/** What the app list shows of an app's usage. */
export interface UsageSummary {
  /** Requests of the last 24 h: grants, bearer requests (accepted or refused), client-auth failures, refreshes. */
  requests24h: number;
  /** Of the last 24 h: bearer refusals, 429s and client-auth failures. */
  refusals24h: number;
  requests30d: number;
  refusals30d: number;
}

/** A usage query as the API takes it (strings from the query string, or values from code). */
export interface UsageQueryInput {
  /** ISO 8601 instant. Default: `to` minus 24 h (hour) or 30 days (day). */
  from?: string | Date | undefined;
  /** ISO 8601 instant. Default: now. */
  to?: string | Date | undefined;
  /** `hour` (at most 168 points) or `day` (at most the retention). Default: `hour`. */
  interval?: string | undefined;
  /** Also one series per credential. Default: `false`. */
  byToken?: boolean | string | undefined;
}

/** Options of {@link UsageCounter}. */
export interface UsageCounterOptions {
  enabled: boolean;
  /** ms between flushes; 0 flushes on close and on demand only. */
  flushInterval: number;
  /** Seconds counts are kept. */
  retention: number;
  nowMs: () => number;
  log?: Pick<Logger, 'warn'> & { info?: Logger['info'] };
}

/**
 * The usage counter: a {@link Signals} observer whose every call is one increment of an in-memory
 * map, flushed to {@link Store.addUsage} in batches.
 */
export class UsageCounter extends BatchWriter<Map<string, UsageCount>> {
  /** The observer to combine into the service's signals: {@link NO_SIGNALS} when counting is off. */
  readonly signals: Signals;
  /** The two store members counting uses: the additive upsert and the pruning. */
  readonly #store: Pick<Store, 'addUsage' | 'pruneUsage'>;
  readonly #o: UsageCounterOptions;
  #pending = new Map<string, UsageCount>();
  #dropped = 0;

  constructor(store: Pick<Store, 'addUsage' | 'pruneUsage'>, options: UsageCounterOptions) {
    super(options.enabled ? options.flushInterval : 0, {
      log: options.log,
      failing: 'usage counts could not be written to the store; kept in memory (up to the max) and retried at the next flush',
      recovered: 'usage counts are written to the store again',
    });
    this.#store = store;
    this.#o = options;
    this.signals = options.enabled ? this.#observer() : NO_SIGNALS;
  }

  /** Counts dropped because {@link MAX_PENDING} keys were waiting for a store that did not answer. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Keys waiting to be written. */
  get pendingKeys(): number {
    return this.#pending.size;
  }

  #observer(): Signals {
    return {
      grantIssued: (e) => this.#add(e.tenantId, e.appId, e.apiTokenId, GRANT + grantName(e.grantType)),
      // Refused grants and unattributable refusals count in no app's series (telemetry sees them).
      grantRefused: () => undefined,
      clientAuthFailed: (e) => {
        if (e.tenantId !== null && e.appId !== null) this.#add(e.tenantId, e.appId, null, CLIENT_AUTH_FAILED);
      },
      bearerAccepted: (e) => this.#add(e.tenantId, e.appId, e.apiTokenId, ACCEPTED),
      bearerRefused: (e) => {
        if (e.tenantId !== null && e.appId !== null) this.#add(e.tenantId, e.appId, e.apiTokenId, REFUSED + e.reason);
      },
      rateLimited: (e) => this.#add(e.tenantId, e.appId, e.apiTokenId, RATE_LIMITED),
      refreshed: (e) => this.#add(e.tenantId, e.appId, e.apiTokenId, REFRESHED),
    };
  }

  /** One increment. O(1), no I/O. */
  #add(tenantId: string, appId: string, tokenId: string | null, metric: string): void {
    const nowMs = this.#o.nowMs();
    const hour = nowMs - (nowMs % USAGE_HOUR_MS);
    const key = `${hour}\u0000${tenantId}\u0000${appId}\u0000${tokenId ?? ''}\u0000${metric}`;
    const count = this.#pending.get(key);
    if (count !== undefined) {
      count.count++;
      return;
    }
    if (this.#pending.size >= MAX_PENDING) {
      this.#dropped++;
      return;
    }
    this.#pending.set(key, { tenantId, appId, tokenId, hour, metric, count: 1 });
  }

  protected override outageDetails(): Record<string, unknown> {
    return { pending: this.#pending.size, max: MAX_PENDING, dropped: this.#dropped };
  }

  protected override get isEmpty(): boolean {
    return this.#pending.size === 0;
  }

  protected override take(): Map<string, UsageCount> {
    const batch = this.#pending;
    this.#pending = new Map();
    return batch;
  }

  protected override restore(batch: Map<string, UsageCount>): void {
    // The store added nothing of a failed batch (Store.addUsage is all-or-nothing): add it back.
    for (const [key, c] of batch) {
      const now = this.#pending.get(key);
      if (now !== undefined) now.count += c.count;
      else if (this.#pending.size < MAX_PENDING) this.#pending.set(key, c);
      else this.#dropped += c.count;
    }
  }

  protected override write(batch: Map<string, UsageCount>): Promise<void> {
    return this.#store.addUsage([...batch.values()]);
  }

  /** Delete counts older than the retention, in batches (a bounded number per run). Returns how many went. */
  async prune(): Promise<number> {
    const before = new Date(this.#o.nowMs() - this.#o.retention * 1000);
    let total = 0;
    for (let i = 0; i < PRUNE_BATCHES_PER_RUN; i++) {
      const n = await this.#store.pruneUsage(before, PRUNE_BATCH);
      total += n;
      if (n < PRUNE_BATCH) break;
    }
    return total;
  }

  /**
   * Parse and bound a usage query: `from < to`, an hourly range of at most 168 hours, a daily one
   * within the retention. Throws `validation_failed` naming `from`, `to`, `interval` or `byToken`.
   */
  parseQuery(input: UsageQueryInput): { from: number; to: number; interval: 'hour' | 'day'; byToken: boolean } {
    const interval = input.interval ?? 'hour';
    if (interval !== 'hour' && interval !== 'day') {
      throw new AppTokensError('validation_failed', "interval: must be 'hour' or 'day'", { field: 'interval' });
    }
    const size = interval === 'day' ? DAY_MS : USAGE_HOUR_MS;
    let byToken: boolean;
    if (input.byToken === undefined || input.byToken === false || input.byToken === 'false') byToken = false;
    else if (input.byToken === true || input.byToken === 'true') byToken = true;
    else throw new AppTokensError('validation_failed', "byToken: must be 'true' or 'false'", { field: 'byToken' });
    const nowMs = this.#o.nowMs();
    const to = input.to === undefined ? ceil(nowMs, size) : ceil(instant(input.to, 'to'), size);
    const from = input.from === undefined ? to - (interval === 'day' ? 30 : 24) * size : floor(instant(input.from, 'from'), size);
    if (from >= to) throw new AppTokensError('validation_failed', 'from: must be before to', { field: 'from' });
    const max = interval === 'day' ? Math.ceil(this.#o.retention / 86_400) * DAY_MS : MAX_HOURLY_POINTS * USAGE_HOUR_MS;
    if (to - from > max) {
      throw new AppTokensError(
        'validation_failed',
        interval === 'day'
          ? `from: a daily range spans at most the retention (${max / DAY_MS} days)`
          : `from: an hourly range spans at most ${MAX_HOURLY_POINTS} hours (7 days); use interval=day`,
        { field: 'from' },
      );
    }
    return { from, to, interval, byToken };
  }

  /** Zero-filled series of one app (and of each of its credentials when asked) from the store's sums. */
  static series(rows: readonly UsageRow[], q: { from: number; to: number; interval: 'hour' | 'day'; byToken: boolean }): UsageSeries {
    const size = q.interval === 'day' ? DAY_MS : USAGE_HOUR_MS;
    const blank = (): UsagePoint[] => {
      const out: UsagePoint[] = [];
      for (let t = q.from; t < q.to; t += size) out.push(emptyPoint(t));
      return out;
    };
    const app = blank();
    const byToken = new Map<string, UsagePoint[]>();
    for (const row of rows) {
      const i = Math.floor((row.start - q.from) / size);
      if (i < 0 || i >= app.length) continue;
      addTo(app[i]!, row.metric, row.count);
      if (q.byToken && row.tokenId !== null) {
        let series = byToken.get(row.tokenId);
        if (!series) byToken.set(row.tokenId, (series = blank()));
        addTo(series[i]!, row.metric, row.count);
      }
    }
    const out: UsageSeries = { interval: q.interval, from: new Date(q.from).toISOString(), to: new Date(q.to).toISOString(), series: app };
    if (q.byToken) {
      out.tokens = [...byToken.entries()]
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([tokenId, series]) => ({ tokenId, series }));
    }
    return out;
  }

  /** The app list's figures from the store's sums per metric. */
  static summary(totals: UsageTotals | undefined): UsageSummary {
    const day = tally(totals?.last24h ?? {});
    const month = tally(totals?.last30d ?? {});
    return { requests24h: day.requests, refusals24h: day.refusals, requests30d: month.requests, refusals30d: month.refusals };
  }

  /** The instants of a summary: the last 24 h and 30 days, by whole hours. */
  summaryWindows(): { since24h: Date; since30d: Date } {
    const nowMs = this.#o.nowMs();
    const hour = nowMs - (nowMs % USAGE_HOUR_MS);
    return { since24h: new Date(hour - 23 * USAGE_HOUR_MS), since30d: new Date(hour - (30 * 24 - 1) * USAGE_HOUR_MS) };
  }
}

/**
 * Each request counted once where it entered (a grant, a refresh, a bearer accepted or refused by
 * `authenticate()`, a client-auth failure); a refusal after acceptance (a missing scope, a 429)
 * is a refusal of an already counted request.
 */
function tally(metrics: Record<string, number>): { requests: number; refusals: number } {
  let requests = 0;
  let refusals = 0;
  for (const [metric, n] of Object.entries(metrics)) {
    if (metric === ACCEPTED || metric === REFRESHED || metric.startsWith(GRANT)) requests += n;
    else if (metric === CLIENT_AUTH_FAILED) {
      requests += n;
      refusals += n;
    } else if (metric === RATE_LIMITED || metric === REFUSED + 'insufficient_scope') refusals += n;
    else if (metric.startsWith(REFUSED)) {
      requests += n;
      refusals += n;
    }
  }
  return { requests, refusals };
}

function emptyPoint(start: number): UsagePoint {
  const refused = {} as Record<BearerRefusal, number>;
  for (const reason of BEARER_REFUSALS) refused[reason] = 0;
  return {
    start: new Date(start).toISOString(),
    grants: { client_credentials: 0, token_exchange: 0 },
    accepted: 0,
    refused,
    rateLimited: 0,
    clientAuthFailures: 0,
    refreshes: 0,
  };
}

function addTo(p: UsagePoint, metric: string, n: number): void {
  if (metric === ACCEPTED) p.accepted += n;
  else if (metric === RATE_LIMITED) p.rateLimited += n;
  else if (metric === CLIENT_AUTH_FAILED) p.clientAuthFailures += n;
  else if (metric === REFRESHED) p.refreshes += n;
  else if (metric.startsWith(GRANT)) {
    const g = metric.slice(GRANT.length);
    p.grants[g] = (p.grants[g] ?? 0) + n;
  } else if (metric.startsWith(REFUSED)) {
    const r = metric.slice(REFUSED.length) as BearerRefusal;
    if (r in p.refused) p.refused[r] += n;
    else p.refused.other += n;
  }
}

const ISO_INSTANT = /^(\d{4})-(\d{2})-(\d{2})(T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2}))?$/;

/** An ISO 8601 text as epoch ms, or NaN; a day the month does not have (Feb 31) is NaN, not March 3. */
function parseIso(value: string): number {
  const m = ISO_INSTANT.exec(value);
  if (m === null) return NaN;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (month < 1 || month > 12 || day < 1 || day > new Date(Date.UTC(year, month, 0)).getUTCDate()) return NaN;
  return Date.parse(value);
}

function instant(value: string | Date, field: 'from' | 'to'): number {
  const ms = value instanceof Date ? value.getTime() : typeof value === 'string' ? parseIso(value) : NaN;
  if (!Number.isFinite(ms) || ms < 0 || ms > 8_640_000_000_000_000) {
    throw new AppTokensError('validation_failed', `${field}: must be an ISO 8601 date-time such as 2026-12-01T00:00:00Z`, { field });
  }
  return ms;
}

function floor(ms: number, size: number): number {
  return ms - (ms % size);
}

function ceil(ms: number, size: number): number {
  const r = ms % size;
  return r === 0 ? ms : ms - r + size;
}
