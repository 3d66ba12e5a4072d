/**
 * The moments of the request path that observers count or trace (usage counts, OpenTelemetry),
 * told once through one interface so that each door calls one method and knows nothing of who
 * listens. Every call is synchronous, does no I/O, carries no secret, and never throws.
 *
 * Attribution: `tenantId`/`appId`/`apiTokenId` are set only from verified data (a JWT whose
 * signature verified, an API token found by its hash, an authenticated client); an unverifiable
 * credential is reported with `null` ids and counts in no app's series.
 *
 * @module
 */

/**
 * Why a bearer credential was refused: `expired` (a verified JWT or a found API token past its
 * expiry), `revoked` (known revoked), `invalid_signature` (a JWT that did not verify),
 * `unknown` (a well-formed API token no record matches, a JWT of no key of ours), `malformed` (not a
 * JWT nor a well-formed API token, a bad header), `insufficient_scope`
 * (`requireScopes()`), `dpop` (a missing or bad DPoP proof/binding), `other`.
 */
export type BearerRefusal =
  | 'expired'
  | 'revoked'
  | 'invalid_signature'
  | 'unknown'
  | 'malformed'
  | 'insufficient_scope'
  | 'dpop'
  | 'other';

/** The bearer refusal reasons, in a fixed order (charts, zero-filled series). */
export const BEARER_REFUSALS: readonly BearerRefusal[] = [
  'expired',
  'revoked',
  'invalid_signature',
  'unknown',
  'malformed',
  'insufficient_scope',
  'dpop',
  'other',
];

/** What happened on the request path, told once to every observer (usage counts, telemetry). No I/O, no secrets. */
export interface Signals {
  /** The token endpoint issued an access token (`grantType`: `client_credentials`, `token_exchange`, …). */
  grantIssued(e: { tenantId: string; appId: string; apiTokenId: string | null; grantType: string; authMethod: string }): void;
  /** The token endpoint refused a grant after or without client authentication (`error`: the OAuth error code). */
  grantRefused(e: { tenantId: string | null; appId: string | null; grantType: string | null; error: string }): void;
  /** Client authentication failed at an OAuth door (`door`: `token`, `introspect`, `revoke`; `method`: the auth method tried). */
  clientAuthFailed(e: { tenantId: string | null; appId: string | null; method: string; door: string }): void;
  /** `authenticate()` let a bearer through (`cached`: from the verified-credential cache, no verification). */
  bearerAccepted(e: { tenantId: string; appId: string; apiTokenId: string | null; kind: 'access_token' | 'api_token'; cached: boolean }): void;
  /** `authenticate()` or `requireScopes()` refused a bearer. */
  bearerRefused(e: { tenantId: string | null; appId: string | null; apiTokenId: string | null; reason: BearerRefusal }): void;
  /** `rateLimit()` answered 429. */
  rateLimited(e: { tenantId: string; appId: string; apiTokenId: string | null }): void;
  /** `POST /tokens/refresh` rotated an API token (`apiTokenId`: the new token's id). */
  refreshed(e: { tenantId: string; appId: string; apiTokenId: string }): void;
}

const METHODS = [
  'grantIssued',
  'grantRefused',
  'clientAuthFailed',
  'bearerAccepted',
  'bearerRefused',
  'rateLimited',
  'refreshed',
] as const satisfies readonly (keyof Signals)[];

const noop = (): void => undefined;

/** Observers that observe nothing. */
export const NO_SIGNALS: Signals = Object.freeze({
  grantIssued: noop,
  grantRefused: noop,
  clientAuthFailed: noop,
  bearerAccepted: noop,
  bearerRefused: noop,
  rateLimited: noop,
  refreshed: noop,
});

/**
 * Fan-out to several observers; each call is synchronous and must not throw (an observer's error is swallowed).
 *
 * @example
 * const signals = combineSignals(usage.signals, telemetry);
 * signals.rateLimited({ tenantId, appId, apiTokenId: null });
 */
export function combineSignals(...observers: Signals[]): Signals {
  const live = observers.filter((o) => o !== NO_SIGNALS);
  if (live.length === 0) return NO_SIGNALS;
  const out = {} as Record<keyof Signals, (e: never) => void>;
  for (const name of METHODS) {
    const targets = live.map((o) => o[name].bind(o) as (e: unknown) => void);
    out[name] = (e: unknown) => {
      for (const target of targets) {
        try {
          target(e);
        } catch {
          // Counting and tracing never break a request.
        }
      }
    };
  }
  return Object.freeze(out) as unknown as Signals;
}

/** Who a refused credential belongs to, known from verified data only, and why it was refused. */
export interface Refusal {
  reason: BearerRefusal;
  tenantId: string | null;
  appId: string | null;
  apiTokenId: string | null;
}

const REFUSALS = new WeakMap<object, Refusal>();

/**
 * Attach to an error what the code that threw it verified (the app of an expired JWT whose
 * signature verified, of a revoked API token found by its hash), for the door that reports it.
 * Returns the error.
 */
export function markRefusal<E extends object>(error: E, refusal: Refusal): E {
  REFUSALS.set(error, refusal);
  return error;
}

/** What {@link markRefusal} attached to `error`, if anything. */
export function refusalOf(error: unknown): Refusal | undefined {
  return typeof error === 'object' && error !== null ? REFUSALS.get(error) : undefined;
}
