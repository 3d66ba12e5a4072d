/**
 * OpenTelemetry, the way libraries do it: through `@opentelemetry/api` only. With no SDK in the
 * host every instrument and tracer is the API's no-op (an empty method call); with one, metrics
 * and spans flow to whatever exporter the host configured. Nothing here does I/O or holds a secret.
 *
 * - {@link TelemetryObserver}: the {@link Signals} observer that counts grants, refusals, bearer
 *   verifications and 429s, plus what the signals do not carry: lockout refusals, the bearer
 *   cache's hits and misses, revocation propagation delay (from the change feed), store call
 *   durations and the usage flush duration.
 * - {@link traceStore}: spans (and `db.client.operation.duration`) around the store calls of the
 *   token path. {@link withSpan}: the span of a grant or a management operation.
 *
 * Attributes never carry a token value, a secret, a hash or an app/token id on a metric
 * (cardinality); the tenant only with `telemetry.tenantAttribute`. Every metric and span is listed
 * in docs/guides/observability.md.
 *
 * @module
 */
import {
  metrics,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Counter,
  type Histogram,
  type Meter,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import type { Store, Tombstone } from '../store.js';
import { NO_SIGNALS, type BearerRefusal, type Signals } from './signals.js';

/** The instrumentation scope name of every meter and tracer of ours. */
export const INSTRUMENTATION_NAME = 'express-app-tokens';
/** The instrumentation scope version: the package version (a test keeps them equal). */
export const INSTRUMENTATION_VERSION = '0.1.0';

/** Option `telemetry` after validation. */
export interface TelemetryOptions {
  /** Record metrics and spans through `@opentelemetry/api`. Default: `true` (a no-op without an SDK). */
  enabled: boolean;
  /** Add `app_tokens.tenant.id` to metric attributes (one series per tenant: mind the cardinality). Default: `false`. */
  tenantAttribute: boolean;
}

/** Metric and attribute names, one place (docs/guides/observability.md lists them). */
export const METRIC = {
  grants: 'app_tokens.token.grants',
  clientAuthFailures: 'app_tokens.client_auth.failures',
  bearerVerifications: 'app_tokens.bearer.verifications',
  bearerCacheLookups: 'app_tokens.bearer.cache.lookups',
  rateLimited: 'app_tokens.rate_limit.rejections',
  lockoutRefusals: 'app_tokens.lockout.refusals',
  refreshes: 'app_tokens.token.refreshes',
  revocationDelay: 'app_tokens.revocation.propagation.delay',
  usageFlushDuration: 'app_tokens.usage.flush.duration',
  dbDuration: 'db.client.operation.duration',
} as const;

export const ATTR = {
  grantType: 'oauth.grant_type',
  authMethod: 'oauth.client.auth_method',
  clientId: 'oauth.client.id',
  outcome: 'app_tokens.outcome',
  errorType: 'error.type',
  door: 'app_tokens.door',
  credentialKind: 'app_tokens.credential.kind',
  cacheResult: 'app_tokens.cache.result',
  revocationKind: 'app_tokens.revocation.kind',
  tenant: 'app_tokens.tenant.id',
  operation: 'app_tokens.operation',
  dbSystem: 'db.system.name',
  dbOperation: 'db.operation.name',
} as const;

/** Seconds; the delay of a revocation between instances is ms to a few seconds (polling fallback: 5 s). */
const DELAY_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Seconds, as `db.client.operation.duration` in the semantic conventions. */
const DB_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** One frozen attribute set per pair of values (two Map lookups: no key string is built per event). */
function memo2(build: (a: string, b: string) => Attributes): (a: string, b: string) => Attributes {
  const cache = new Map<string, Map<string, Attributes>>();
  return (a, b) => {
    let inner = cache.get(a);
    if (inner === undefined) {
      inner = new Map();
      // Values come from fixed vocabularies (grant types, error codes, methods); the bound is a guard.
      if (cache.size < 64) cache.set(a, inner);
    }
    let attrs = inner.get(b);
    if (attrs === undefined) {
      attrs = Object.freeze(build(a, b));
      if (inner.size < 64) inner.set(b, attrs);
    }
    return attrs;
  };
}

/** One frozen attribute set per combination, so that counting allocates nothing. */
function memo<K extends string>(build: (key: K) => Attributes): (key: K) => Attributes {
  const cache = new Map<K, Attributes>();
  return (key) => {
    let attrs = cache.get(key);
    if (attrs === undefined) {
      attrs = Object.freeze(build(key));
      // Keys come from fixed vocabularies (grant types, error codes, reasons); the bound is a guard.
      if (cache.size < 256) cache.set(key, attrs);
    }
    return attrs;
  };
}

/**
 * Records the request path's signals as OpenTelemetry metrics (`metrics.getMeter('express-app-tokens')`).
 * Build it after the host registered its MeterProvider: the metrics API has no proxy, so a meter
 * taken before registration stays a no-op.
 *
 * @example
 * ```ts
 * const telemetry = new TelemetryObserver({ enabled: true, tenantAttribute: false });
 * const signals = combineSignals(usage.signals, telemetry);
 * ```
 */
export class TelemetryObserver implements Signals {
  readonly #tenant: boolean;
  readonly #grants: Counter;
  readonly #authFailures: Counter;
  readonly #bearer: Counter;
  readonly #cache: Counter;
  readonly #rateLimited: Counter;
  readonly #lockout: Counter;
  readonly #refreshes: Counter;
  readonly #delay: Histogram;
  readonly #flush: Histogram;
  readonly #db: Histogram;
  readonly #issuedAttrs = memo2((grantType, authMethod) => ({ [ATTR.grantType]: grantType, [ATTR.authMethod]: authMethod, [ATTR.outcome]: 'issued' }));
  readonly #refusedAttrs = memo2((grantType, error) => ({
    ...(grantType ? { [ATTR.grantType]: grantType } : {}),
    [ATTR.outcome]: 'refused',
    [ATTR.errorType]: error,
  }));
  readonly #authAttrs = memo2((method, door) => ({ [ATTR.authMethod]: method, [ATTR.door]: door }));
  readonly #acceptedAttrs = memo((k: string) => ({ [ATTR.outcome]: 'accepted', [ATTR.credentialKind]: k }));
  readonly #refusedBearerAttrs = memo((k: BearerRefusal) => ({ [ATTR.outcome]: 'refused', [ATTR.errorType]: k }));
  readonly #kindAttrs = memo((k: string) => ({ [ATTR.revocationKind]: k }));
  static readonly #HIT: Attributes = Object.freeze({ [ATTR.cacheResult]: 'hit' });
  static readonly #MISS: Attributes = Object.freeze({ [ATTR.cacheResult]: 'miss' });
  static readonly #EMPTY: Attributes = Object.freeze({});

  constructor(options: TelemetryOptions, meter: Meter = metrics.getMeter(INSTRUMENTATION_NAME, INSTRUMENTATION_VERSION)) {
    this.#tenant = options.tenantAttribute;
    this.#grants = meter.createCounter(METRIC.grants, { description: 'Token endpoint grants, issued or refused', unit: '{grant}' });
    this.#authFailures = meter.createCounter(METRIC.clientAuthFailures, {
      description: 'Failed client authentications at the OAuth endpoints',
      unit: '{failure}',
    });
    this.#bearer = meter.createCounter(METRIC.bearerVerifications, {
      description: 'Bearer credentials checked by authenticate()/requireScopes(), accepted or refused',
      unit: '{verification}',
    });
    this.#cache = meter.createCounter(METRIC.bearerCacheLookups, {
      description: 'Lookups in the verified-bearer cache; hit ratio = hit / (hit + miss)',
      unit: '{lookup}',
    });
    this.#rateLimited = meter.createCounter(METRIC.rateLimited, { description: 'Requests answered 429 by rateLimit()', unit: '{request}' });
    this.#lockout = meter.createCounter(METRIC.lockoutRefusals, {
      description: 'Requests refused 429 because their source is throttled after failed authentications (clientLockout)',
      unit: '{request}',
    });
    this.#refreshes = meter.createCounter(METRIC.refreshes, { description: 'API tokens rotated by POST /tokens/refresh', unit: '{refresh}' });
    this.#delay = meter.createHistogram(METRIC.revocationDelay, {
      description: 'Time from a revocation (tombstone createdAt) to its receipt by this instance through the change feed',
      unit: 's',
      advice: { explicitBucketBoundaries: DELAY_BUCKETS },
    });
    this.#flush = meter.createHistogram(METRIC.usageFlushDuration, {
      description: 'Duration of one batched write of usage counts to the store',
      unit: 's',
      advice: { explicitBucketBoundaries: DB_BUCKETS },
    });
    this.#db = meter.createHistogram(METRIC.dbDuration, {
      description: 'Duration of store calls on the token path',
      unit: 's',
      advice: { explicitBucketBoundaries: DB_BUCKETS },
    });
  }

  #withTenant(attrs: Attributes, tenantId: string | null): Attributes {
    return this.#tenant && tenantId !== null ? { ...attrs, [ATTR.tenant]: tenantId } : attrs;
  }

  grantIssued(e: Parameters<Signals['grantIssued']>[0]): void {
    this.#grants.add(1, this.#withTenant(this.#issuedAttrs(e.grantType, e.authMethod), e.tenantId));
  }

  grantRefused(e: Parameters<Signals['grantRefused']>[0]): void {
    this.#grants.add(1, this.#withTenant(this.#refusedAttrs(e.grantType ?? '', e.error), e.tenantId));
  }

  clientAuthFailed(e: Parameters<Signals['clientAuthFailed']>[0]): void {
    this.#authFailures.add(1, this.#withTenant(this.#authAttrs(e.method, e.door), e.tenantId));
  }

  bearerAccepted(e: Parameters<Signals['bearerAccepted']>[0]): void {
    this.#bearer.add(1, this.#withTenant(this.#acceptedAttrs(e.kind), e.tenantId));
  }

  bearerRefused(e: Parameters<Signals['bearerRefused']>[0]): void {
    this.#bearer.add(1, this.#withTenant(this.#refusedBearerAttrs(e.reason), e.tenantId));
  }

  rateLimited(e: Parameters<Signals['rateLimited']>[0]): void {
    this.#rateLimited.add(1, this.#withTenant(TelemetryObserver.#EMPTY, e.tenantId));
  }

  refreshed(e: Parameters<Signals['refreshed']>[0]): void {
    this.#refreshes.add(1, this.#withTenant(TelemetryObserver.#EMPTY, e.tenantId));
  }

  /** A lookup in the verified-bearer cache. */
  bearerCache(hit: boolean): void {
    this.#cache.add(1, hit ? TelemetryObserver.#HIT : TelemetryObserver.#MISS);
  }

  /** A request refused because its source is throttled (clientLockout). */
  lockoutRefused(): void {
    this.#lockout.add(1, TelemetryObserver.#EMPTY);
  }

  /**
   * Tombstones received through the change feed at `receivedAtMs`: delay = receipt − `createdAt`.
   * A tombstone written ahead of time (a rotation's grace deadline) has no delay to measure.
   */
  revocationsReceived(tombstones: readonly Tombstone[], receivedAtMs: number): void {
    for (const t of tombstones) {
      const delayMs = receivedAtMs - t.createdAt.getTime();
      if (delayMs >= 0) this.#delay.record(delayMs / 1000, this.#kindAttrs(t.kind));
    }
  }

  /** One store call: its duration, and the usage flush's when it was one. */
  storeCall(attrs: Attributes, operation: string, seconds: number): void {
    this.#db.record(seconds, attrs);
    if (operation === 'addUsage') this.#flush.record(seconds, attrs[ATTR.errorType] === undefined ? TelemetryObserver.#EMPTY : { [ATTR.errorType]: attrs[ATTR.errorType]! });
  }
}

/** The tracer of ours: a proxy that follows whatever TracerProvider the host registers, even later. */
export const tracer: Tracer = trace.getTracer(INSTRUMENTATION_NAME, INSTRUMENTATION_VERSION);

/** The `error.type` of a failure: the library's stable code, else the error's class name. */
export function errorType(error: unknown): string {
  if (typeof error === 'object' && error !== null) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && /^[a-z_]{1,64}$/.test(code)) return code;
    const name = (error as { name?: unknown }).name;
    if (typeof name === 'string' && name.length <= 64) return name;
  }
  return '_OTHER';
}

/**
 * Run `fn` in a span named `name` (a child of the active span: the host's HTTP span), ended when
 * it settles. A failure sets `error.type` and the status ERROR; the error's message is not
 * recorded (it may name what the caller sent).
 */
export function withSpan<T>(name: string, attributes: Attributes, fn: (span: Span) => Promise<T>, kind: SpanKind = SpanKind.INTERNAL): Promise<T> {
  return tracer.startActiveSpan(name, { kind, attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (error) {
      span.setAttribute(ATTR.errorType, errorType(error));
      span.setStatus({ code: SpanStatusCode.ERROR });
      throw error;
    } finally {
      span.end();
    }
  });
}

/** The store methods a grant or a bearer check may call, traced by {@link traceStore}. */
export const TRACED_STORE_METHODS: ReadonlySet<string> = new Set([
  'getApp',
  'getAppByClientId',
  'getApiToken',
  'findApiTokenByHash',
  'listClientKeys',
  'useOnce',
  'addRateUsage',
  'touchApiTokens',
  'addUsage',
  'listTombstones',
]);

/** `db.system.name` of a store: the SQL dialect when it has one, else `memory` (not a database). */
function dbSystem(store: Store): string {
  const dialect = (store as { dialect?: unknown }).dialect;
  if (dialect === 'postgres') return 'postgresql';
  if (dialect === 'sqlite') return 'sqlite';
  return 'other_sql';
}

/**
 * The store, with a CLIENT span and a `db.client.operation.duration` measurement around each
 * call of {@link TRACED_STORE_METHODS} (`db.system.name`, `db.operation.name` = the store method;
 * never an argument: they are hashes, ids and secrets' digests). Every other member passes
 * through, bound to the store (adapters keep private state). Also feeds the change feed's
 * tombstones to `observer` for the propagation delay.
 */
export function traceStore(store: Store, observer: TelemetryObserver, now: () => number = Date.now): Store {
  const system = dbSystem(store);
  const isMemory = (store as { dialect?: unknown }).dialect === undefined;
  // Keyed by member and by the function found there: a member replaced later (a test's spy, a
  // host's own wrapper) is wrapped anew rather than bypassed by a stale wrapper.
  const wrapped = new Map<PropertyKey, { source: unknown; fn: unknown }>();
  const traced = (name: string, fn: (...args: unknown[]) => Promise<unknown>) => {
    const attrs: Attributes = Object.freeze({ [ATTR.dbSystem]: isMemory ? 'memory' : system, [ATTR.dbOperation]: name });
    return (...args: unknown[]) =>
      tracer.startActiveSpan(name, { kind: isMemory ? SpanKind.INTERNAL : SpanKind.CLIENT, attributes: attrs }, async (span) => {
        const started = performance.now();
        let failure: string | undefined;
        try {
          return await fn.apply(store, args);
        } catch (error) {
          failure = errorType(error);
          span.setAttribute(ATTR.errorType, failure);
          span.setStatus({ code: SpanStatusCode.ERROR });
          throw error;
        } finally {
          span.end();
          const seconds = (performance.now() - started) / 1000;
          observer.storeCall(failure === undefined ? attrs : { ...attrs, [ATTR.errorType]: failure }, name, seconds);
        }
      });
  };
  return new Proxy(store, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const cached = wrapped.get(prop);
      let fn = cached?.source === value ? cached.fn : undefined;
      if (fn === undefined) {
        const bound = (value as (...args: unknown[]) => unknown).bind(target);
        if (prop === 'onChange') {
          fn = (listener: (t: readonly Tombstone[]) => void) =>
            (bound as (l: (t: readonly Tombstone[]) => void) => () => void)((tombstones) => {
              observer.revocationsReceived(tombstones, now());
              listener(tombstones);
            });
        } else {
          fn = typeof prop === 'string' && TRACED_STORE_METHODS.has(prop) ? traced(prop, bound as (...args: unknown[]) => Promise<unknown>) : bound;
        }
        wrapped.set(prop, { source: value, fn });
      }
      return fn;
    },
  });
}

/** Management operations traced by {@link instrument}: `[object path, method]`. */
const MANAGEMENT_OPERATIONS: ReadonlyArray<readonly [string | null, string]> = [
  [null, 'createApp'],
  [null, 'listApps'],
  [null, 'getApp'],
  [null, 'updateApp'],
  [null, 'deleteApp'],
  [null, 'clearLockout'],
  [null, 'createToken'],
  [null, 'regenerateToken'],
  [null, 'deleteToken'],
  [null, 'listEvents'],
  [null, 'refresh'],
  ['keys', 'list'],
  ['keys', 'add'],
  ['keys', 'delete'],
  ['personal', 'create'],
  ['personal', 'list'],
  ['personal', 'delete'],
  ['personal', 'revokeUser'],
];

/** What {@link instrument} reaches into: the service's bearer cache and lockout, and the management operations. */
interface Instrumentable {
  cachedBearer(...args: never[]): unknown;
  verifyBearer(...args: never[]): Promise<unknown>;
  readonly lockout: { assertOpen(...args: never[]): Promise<void> } | undefined;
}

type Methods = Record<string, (...args: unknown[]) => unknown>;

/** The observer of each resolved options object (the one {@link withTelemetry} built, or one made on first ask). */
const OBSERVERS = new WeakMap<object, TelemetryObserver>();

/**
 * The {@link Signals} observer for `options`: {@link NO_SIGNALS} when `telemetry.enabled` is
 * `false`; else the observer {@link withTelemetry} made for these options (one per instance).
 */
export function telemetryOf(options: { telemetry: TelemetryOptions }): Signals {
  if (!options.telemetry.enabled) return NO_SIGNALS;
  let observer = OBSERVERS.get(options);
  if (observer === undefined) {
    observer = new TelemetryObserver(options.telemetry);
    OBSERVERS.set(options, observer);
  }
  return observer;
}

/**
 * Options with the store traced, and the observer, for the composition root; `observer` is
 * `undefined` when `telemetry.enabled` is `false` (and the options are returned as they are).
 *
 * @example
 * ```ts
 * const { options, observer } = withTelemetry(resolveOptions(input));
 * ```
 */
export function withTelemetry<O extends { store: Store; telemetry: TelemetryOptions; advanced: { now: () => Date } }>(
  options: O,
): { options: O; observer: TelemetryObserver | undefined } {
  if (!options.telemetry.enabled) return { options, observer: undefined };
  const observer = new TelemetryObserver(options.telemetry);
  const clock = options.advanced.now;
  const traced = { ...options, store: traceStore(options.store, observer, () => clock().getTime()) };
  OBSERVERS.set(traced, observer);
  return { options: traced, observer };
}

/**
 * Count the bearer cache's hits and misses and the lockout's refusals of `service`, and give
 * every management operation of `management` a span (`app_tokens.management.<operation>`). The
 * wrappers call the originals on their own objects; nothing else changes. No-op without `observer`.
 */
export function instrument(service: Instrumentable, management: object, observer: TelemetryObserver | undefined, tenantAttribute = false): void {
  if (observer === undefined) return;
  const s = service as unknown as Methods;
  // A hit is a cached credential returned; a miss, a full verification at a bearer door (a door
  // may ask the cache twice before verifying once).
  const cachedBearer = s.cachedBearer!.bind(service);
  s.cachedBearer = (...args: unknown[]) => {
    const info = cachedBearer(...args);
    if (info !== undefined) observer.bearerCache(true);
    return info;
  };
  const verifyBearer = s.verifyBearer!.bind(service);
  s.verifyBearer = (...args: unknown[]) => {
    observer.bearerCache(false);
    return verifyBearer(...args);
  };
  const lockout = service.lockout as unknown as Methods | undefined;
  if (lockout !== undefined) {
    const assertOpen = lockout.assertOpen!.bind(lockout) as (...args: unknown[]) => Promise<void>;
    lockout.assertOpen = (...args: unknown[]) =>
      assertOpen(...args).catch((error: unknown) => {
        if (errorType(error) === 'rate_limited') observer.lockoutRefused();
        throw error;
      });
  }
  for (const [path, method] of MANAGEMENT_OPERATIONS) {
    const target = (path === null ? management : (management as Record<string, unknown>)[path]) as Methods | undefined;
    const original = target?.[method];
    if (target === undefined || typeof original !== 'function') continue;
    const operation = path === null ? method : `${path}.${method}`;
    const name = `app_tokens.management.${operation}`;
    const base: Attributes = Object.freeze({ [ATTR.operation]: operation });
    target[method] = (...args: unknown[]) => {
      const principal = args[0] as { tenantId?: unknown } | undefined;
      const tenantId = typeof principal === 'object' && principal !== null ? principal.tenantId : undefined;
      const attrs = tenantAttribute && typeof tenantId === 'string' ? { ...base, [ATTR.tenant]: tenantId } : base;
      return withSpan(name, attrs, () => original.apply(target, args) as Promise<unknown>);
    };
  }
}
