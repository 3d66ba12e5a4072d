/**
 * Options of `createAppTokens`, validated once at construction.
 *
 * @module
 */
import { z } from 'zod';
import type { Store } from '../store.js';
import { AppTokensError, fieldPath } from './errors.js';
import { SIGNING_ALGORITHMS, type SigningAlgorithm } from './keys.js';
import type { IncomingMessage } from 'node:http';
import type { AuditEvent } from './events.js';
import type { Logger } from './logger.js';
import type { Principal } from './management.js';
import { SECRET_PREFIX } from './secrets.js';

/** Options of {@link createAppTokens}. */
export interface AppTokensOptions {
  /** Where apps, tokens, keys and revocations live: `createMemoryStore()`, `createSqliteStore(…)`. */
  store: Store;
  /**
   * The issuer identifier: the `iss` of every token and the base URL under which the host mounts
   * `auth.routes()`. `https:` URL without query or fragment; `http:` only for localhost.
   */
  issuer: string;
  /** The scope catalogue: every scope an app, a token or a route may name. */
  scopes: string[];
  /**
   * Roles: named scope bundles an app may be given at creation (`POST /apps` `roles`). Names match
   * `[a-z][a-z0-9_-]*` (at most 64 characters); scopes are catalogue scopes or wildcards. A role
   * is resolved each time a token is minted, so a changed definition changes every access token
   * minted afterwards; tokens already minted keep their scopes until they expire.
   */
  roles?: Array<{ name: string; scopes: string[]; description?: string }>;
  /**
   * Expiry notices: `onEvent` receives `token.expiring` once per API token per threshold crossed,
   * seconds before its expiry (60 s – 365 days each). Default: 7 days and 1 day. `false`: none.
   */
  notifyBeforeExpiry?: number[] | false;
  /** The `aud` of access tokens and what `authenticate()` accepts. Default: the issuer. */
  audience?: string;
  /** Access-token lifetime in seconds, 60–86400. Default: 3600. */
  accessTokenTtl?: number;
  /** Signing algorithm of new access tokens. Default: `RS256` (RFC 9068 §4). */
  signingAlgorithm?: SigningAlgorithm;
  /**
   * Secret (at least 32 characters, high entropy) sealing private signing keys at rest with
   * AES-256-GCM. Without it keys are stored in clear, with a one-time warning in production.
   * `undefined` is the same as leaving it out, so `process.env.KEY_ENCRYPTION_SECRET` can be
   * passed as it is (also under `exactOptionalPropertyTypes`).
   */
  keyEncryptionSecret?: string | undefined;
  /** The `realm` of `WWW-Authenticate` challenges. Default: `express-app-tokens`. */
  realm?: string;
  /** Prefix of API-token values, 2–16 lowercase letters or digits. Default: `eat`. */
  tokenPrefix?: string;
  /** Accept API tokens directly as bearer tokens on protected routes. Default: `true`. */
  acceptApiTokens?: boolean;
  /**
   * DPoP (RFC 9449): sender-constrained access tokens. A token request with a `DPoP` proof gets a
   * token bound to the proof's key (`cnf.jkt`, `token_type: "DPoP"`); `authenticate()` then wants
   * `Authorization: DPoP <token>` with a fresh proof of that key on every request.
   *
   * @example
   * ```ts
   * createAppTokens({ …, dpop: { baseUrl: 'https://api.example.com', nonceSecret: process.env.DPOP_NONCE_SECRET } });
   * ```
   */
  dpop?: {
    /**
     * The public URL clients call (scheme, host, port, and a path prefix a proxy strips), from which
     * the expected `htu` is built: this plus the request's path. Never taken from the `Host` header.
     * Default: the issuer's origin.
     */
    baseUrl?: string;
    /** Seconds a proof's `iat` may lie before or after now (plus `advanced.clockTolerance`), 5–600. Default: 60. */
    iatWindow?: number;
    /**
     * Secret (at least 32 characters) from which server nonces are derived (§8, §9). When set, every
     * proof must carry a current nonce; one without gets `use_dpop_nonce` and a `DPoP-Nonce` header.
     * Give every instance the same secret: nonces are stateless, so any instance accepts another's.
     * Default: no nonces.
     */
    nonceSecret?: string;
    /** Seconds of one nonce step, 10–3600; a nonce is accepted for one to two steps. Default: 300. */
    nonceLifetime?: number;
  };
  /** Lifetime of API tokens, seconds. */
  apiTokenTtl?: {
    /** When the caller asks for none. Default: 90 days. `null`: no expiry. */
    default?: number | null;
    /** The most a caller may ask for. Default: 2 years. */
    max?: number;
  };
  /**
   * Resource servers (RFC 8707) with the scopes each serves. A client asks for one with the
   * `resource` parameter and gets a token whose `aud` is its `id`; `authenticate({ audience })`
   * accepts only tokens for that audience. Without `resource`, tokens carry the default `audience`.
   */
  resources?: Array<{ id: string; scopes: string[] }>;
  /** Rotate the signing key automatically when it is this old, seconds (≥ 3600). Default: never. */
  keyRotationInterval?: number;
  /**
   * RFC 6749 §2.3.1 brute-force protection, per source (the address Express reports as `req.ip`,
   * under the host's `trust proxy`): after `attempts` failed authentications from one source for
   * one client id within `window` seconds, or `sourceAttempts` for all client ids together, that
   * source is refused with 429 and `Retry-After` for `duration` seconds at every door that checks a
   * client's credentials (the OAuth endpoints, `/tokens/refresh`, an API token as a bearer). The
   * correct credential from any other source always succeeds. Shared across instances on
   * PostgreSQL; an app's state shows on `GET /apps/:id` and `DELETE /apps/:id/lockout` clears it.
   * Default: `{attempts: 10, sourceAttempts: max(100, 10 × attempts), window: 300, duration: 900}`.
   * `false` disables it.
   */
  clientLockout?: { attempts?: number; sourceAttempts?: number; window?: number; duration?: number } | false;
  /**
   * A pino-compatible logger (`warn(obj, msg)`, `error(obj, msg)`, optional `info`, `debug`).
   * Everything written is redacted first: no secret value, access token, hash or Authorization
   * header ever reaches it. Default: warnings and errors on the console.
   */
  logger?: Logger;
  /** Called with every audit event, synchronously; a throwing listener is ignored. Never receives a secret. */
  onEvent?: (event: AuditEvent) => void;
  /** The management API (`/apps…`). */
  management?: {
    /**
     * Who is calling, from the host's own session (its logged-in user): return the tenant, the
     * scopes that user holds and an actor id for the audit log, or `null` for "not signed in"
     * (401). Default: a bearer token of ours with `apps:read` / `apps:write`.
     */
    resolvePrincipal?(req: IncomingMessage): Principal | null | Promise<Principal | null>;
    /** Largest accepted JSON body, bytes. Default: 32768. Larger → 413. */
    bodyLimit?: number;
    /**
     * Personal tokens: the scopes a host user holds now, or `null` when the user is gone (their
     * personal tokens then stop working). Called when a personal token is created and whenever one
     * is used (cached for `userScopesCacheTtl`). Without it, personal tokens are disabled.
     */
    userScopes?(tenantId: string, userId: string): readonly string[] | null | Promise<readonly string[] | null>;
    /** Seconds a `userScopes` answer is reused, 0–300. Default: 10. */
    userScopesCacheTtl?: number;
  };
  /**
   * Caps a demanding operator would set anyway; exceeding one answers 409 `limit_exceeded` naming
   * it. Counted atomically in the store, so concurrent creators never overshoot.
   */
  limits?: {
    /** Active (unrevoked, unexpired) API tokens per app, 1–10000. Default: 50. */
    tokensPerApp?: number;
    /** Apps per tenant, 1–1000000. Default: 1000. */
    appsPerTenant?: number;
    /** Public keys per `private_key_jwt` app, 1–20. Default: 5. */
    keysPerApp?: number;
  };
  /**
   * Fetching the JWK Sets of `private_key_jwt` clients registered with a `jwksUri`: https only, never
   * from a private, loopback or link-local address unless `allowPrivateAddresses` (tests, a trusted
   * network); `timeout` in ms bounds the whole fetch, connect to last byte (100–10000, default 3000). Sets are cached 5 minutes; an unknown kid
   * refetches at most every 30 s.
   */
  clientJwks?: { allowPrivateAddresses?: boolean; timeout?: number };
  /**
   * `private_key_jwt` assertions (RFC 7523 §3). By default (`audience: 'issuer'`) the `aud` must be
   * the issuer identifier alone, as one string (draft-ietf-oauth-rfc7523bis, the fix for the 2025
   * audience-injection attacks), and an assertion may live at most `maxLifetime` seconds.
   * `'issuer-or-token-endpoint'` also accepts the metadata's `token_endpoint` URL as that one string,
   * as RFC 7523 §3 allows and Authlib and iddawc send; it is an opt-in because a client that signs for
   * the token endpoint URL an attacker's metadata named can be made to sign for ours.
   * `maxLifetime`: 1–3600 seconds, default 300 (Authlib signs for 3600). An `aud` array is always refused.
   */
  clientAssertion?: { audience?: 'issuer' | 'issuer-or-token-endpoint'; maxLifetime?: number };
  /** The audit log in the store. */
  events?: {
    /**
     * Seconds an event is kept; older ones are deleted in batches in the background (hourly and at
     * start). 3600 – 10 years. Default: 90 days. `null`: keep forever.
     */
    retention?: number | null;
  };
  /**
   * Usage counts per app and per API token, per hour (`GET /apps/:id/usage`, `auth.apps.usage()`):
   * grants, bearer requests accepted and refused by reason, 429s, client-authentication failures,
   * refreshes. Counted in memory on the request path and added to the store in batches.
   *
   * @example
   * ```ts
   * createAppTokens({ …, usage: { flushInterval: 30_000, retention: 30 * 86_400 } });
   * ```
   */
  usage?: {
    /** Count at all. `false`: nothing is counted nor written, and the usage API answers zeros. Default: `true`. */
    enabled?: boolean;
    /**
     * ms between two flushes of the counts to the store (and on close); a crash loses at most this
     * much. 0: only on close (tests). Default: 10000.
     */
    flushInterval?: number;
    /**
     * Seconds counts are kept; older hours are deleted in batches in the background (hourly and at
     * start). 1 day – 10 years. Default: 90 days. The day series of the usage API reaches back this far.
     */
    retention?: number;
  };
  /**
   * OpenTelemetry metrics and spans through `@opentelemetry/api` (the library depends on the API
   * only): a no-op unless the host registers an SDK, before `createAppTokens()` for metrics (the
   * metrics API has no proxy; tracing follows a provider registered later too). Every metric and
   * span: docs/guides/observability.md. No secret, token value or hash is ever an attribute, and
   * no app or token id a metric attribute.
   *
   * @example
   * ```ts
   * createAppTokens({ …, telemetry: { tenantAttribute: true } });
   * ```
   */
  telemetry?: {
    /** Record metrics and spans. `false`: no instrument, no span, the store is not wrapped. Default: `true`. */
    enabled?: boolean;
    /** Add the tenant id (`app_tokens.tenant.id`) to metric attributes: a series per tenant. Default: `false`. */
    tenantAttribute?: boolean;
  };
  /** Escape hatches. */
  advanced?: {
    /** Leeway for `exp`, `nbf` and `iat`, seconds, 0–300. Default: 5. */
    clockTolerance?: number;
    /** Verified tokens kept in the verification cache. Default: 10000. */
    cacheMax?: number;
    /**
     * Seconds a client authenticated at the OAuth endpoints is trusted from memory, so that repeated
     * grants of one client do not read the store. Revocation still takes effect at once (the
     * revocation view is checked on every hit); an edit of the app's name or claims on another
     * instance reaches this one's new tokens within this time. 0–60; 0 disables. Default: 5.
     */
    clientCacheTtl?: number;
    /** How often revocations of other processes are read from the store, ms; 0 disables. Default: 5000. */
    revocationSyncInterval?: number;
    /**
     * The longest this instance serves from revocation state it could not refresh, ms (shared
     * stores such as PostgreSQL; a store that is this process's own view is never stale). Past it,
     * with no tombstone read and no proof from the change feed for that long (a partition, a dead
     * database), bearer verification, cached or not, and the token endpoint's client cache fail
     * closed with 503 and `Retry-After`, rather than accept a credential another instance may have
     * revoked meanwhile. Within it they serve: that window is the fail-open bound. 1000–86400000.
     * Default: 5000. See docs/DEPLOYMENT.md, "Revocation staleness".
     */
    revocationMaxStaleness?: number;
    /** How often batched `lastUsedDate` updates are written, ms. Default: 10000. */
    lastUsedFlushInterval?: number;
    /** How often signing keys are re-read (another instance may have rotated), ms; 0 disables. Default: 60000. */
    keyReloadInterval?: number;
    /**
     * Seconds a rotated-in key is published in the JWKS before it signs, so that resource servers
     * caching the JWKS learn it first (jose refetches an unknown kid only after a 30 s cooldown;
     * our JWKS is cacheable for 60 s). Default: 90. 0: sign with it at once.
     */
    keyActivationDelay?: number;
    /** How often audit events are written to the store, ms. Default: 1000. */
    eventFlushInterval?: number;
    /** How often the expiry-notice sweep runs, ms; 0 disables it. Default: 300000 (5 minutes). */
    expirySweepInterval?: number;
    /**
     * Seconds after a refresh during which presenting the old token again counts as a lost race
     * (`invalid_grant`) rather than reuse (which revokes the token's whole family). Default: 2.
     */
    refreshRaceWindow?: number;
    /** The clock. Default: `() => new Date()`. */
    now?: () => Date;
  };
}

const DAY = 86_400;
/** Role names: lowercase, as in `viewer`, `apps-admin`. */
export const ROLE_NAME = /^[a-z][a-z0-9_-]{0,63}$/;

/** The default clock; the service recognises it and reads `Date.now()` on the hot path instead. */
export const DEFAULT_NOW = (): Date => new Date();

function isStore(value: unknown): value is Store {
  if (typeof value !== 'object' || value === null) return false;
  const s = value as Record<string, unknown>;
  return ['init', 'createApp', 'findApiTokenByHash', 'listSigningKeys', 'onChange'].every(
    (m) => typeof s[m] === 'function',
  );
}

function isIssuer(value: string): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  if (url.search || url.hash || value.includes('#') || value.includes('?')) return false;
  // Written into .env downloads inside single quotes, which can carry anything else (finding 15).
  if (/['\s\x00-\x1f\x7f]/.test(value)) return false;
  if (url.protocol === 'https:') return true;
  return url.protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
}

function isBaseUrl(value: string): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  return (url.protocol === 'https:' || url.protocol === 'http:') && !url.search && !url.hash && !value.includes('#') && !url.username && !url.password;
}

function isResourceUri(value: string): boolean {
  try {
    new URL(value);
  } catch {
    return false;
  }
  return !value.includes('#');
}

const schema = z
  .object({
    store: z.custom<Store>(isStore, { error: 'must be a Store (see src/store.ts)' }),
    issuer: z.string({ error: 'must be a URL string' }).refine(isIssuer, {
      error: 'must be an https URL without query, fragment, quote or whitespace (http only for localhost)',
    }),
    scopes: z.array(z.string(), { error: 'must be an array of scope strings' }).min(1, { error: 'must list at least one scope' }),
    roles: z
      .array(
        z
          .object({
            name: z.string({ error: 'must be a string' }).regex(ROLE_NAME, { error: 'must match [a-z][a-z0-9_-]* (at most 64 characters)' }),
            scopes: z.array(z.string({ error: 'must be a string' }), { error: 'must be an array of scopes' }).min(1, {
              error: 'must list at least one scope',
            }),
            description: z.string({ error: 'must be a string' }).max(1000, { error: 'must be at most 1000 characters' }).optional(),
          })
          .strict(),
        { error: 'must be an array of {name, scopes, description?}' },
      )
      .default([]),
    // `false` is read as no thresholds, so that a bad entry of the array is named by its index.
    notifyBeforeExpiry: z.preprocess(
      (v) => (v === false ? [] : v),
      z
        .array(
          z
            .number({ error: 'must be a number of seconds' })
            .int({ error: 'must be a whole number of seconds' })
            .min(60, { error: 'must be between 60 seconds and 365 days' })
            .max(365 * DAY, { error: 'must be between 60 seconds and 365 days' }),
          { error: 'must be an array of seconds, or false' },
        )
        .max(10, { error: 'must list at most 10 thresholds' })
        .default([7 * DAY, DAY]),
    ),
    audience: z.string().min(1, { error: 'must not be empty' }).optional(),
    accessTokenTtl: z
      .number({ error: 'must be a number of seconds' })
      .int({ error: 'must be a whole number of seconds' })
      .min(60, { error: 'must be between 60 and 86400 seconds' })
      .max(DAY, { error: 'must be between 60 and 86400 seconds' })
      .default(3600),
    signingAlgorithm: z
      .enum(SIGNING_ALGORITHMS, { error: `must be one of ${SIGNING_ALGORITHMS.join(', ')}` })
      .default('RS256'),
    keyEncryptionSecret: z
      .string({ error: 'must be a string' })
      .min(32, { error: 'must be at least 32 characters of high-entropy secret' })
      .optional(),
    realm: z
      .string()
      .regex(/^[\x20\x21\x23-\x5b\x5d-\x7e]{1,100}$/, { error: 'must be 1–100 printable ASCII characters without " or \\' })
      .default('express-app-tokens'),
    tokenPrefix: z
      .string()
      .regex(SECRET_PREFIX, { error: 'must be 2–16 lowercase letters or digits, starting with a letter' })
      .default('eat'),
    acceptApiTokens: z.boolean({ error: 'must be a boolean' }).default(true),
    dpop: z
      .object({
        baseUrl: z
          .string({ error: 'must be a URL string' })
          .refine(isBaseUrl, { error: 'must be an http(s) URL without query, fragment or user info' })
          .optional(),
        iatWindow: z
          .number({ error: 'must be a number of seconds' })
          .min(5, { error: 'must be between 5 and 600 seconds' })
          .max(600, { error: 'must be between 5 and 600 seconds' })
          .default(60),
        nonceSecret: z.string({ error: 'must be a string' }).min(32, { error: 'must be at least 32 characters of high-entropy secret' }).optional(),
        nonceLifetime: z
          .number({ error: 'must be a number of seconds' })
          .int({ error: 'must be a whole number of seconds' })
          .min(10, { error: 'must be between 10 and 3600 seconds' })
          .max(3600, { error: 'must be between 10 and 3600 seconds' })
          .default(300),
      })
      .strict()
      .default({ iatWindow: 60, nonceLifetime: 300 }),
    resources: z
      .array(
        z
          .object({
            id: z.string({ error: 'must be an absolute URI' }).refine(isResourceUri, {
              error: 'must be an absolute URI without a fragment (RFC 8707 §2)',
            }),
            scopes: z.array(z.string({ error: 'must be a string' }), { error: 'must be an array of scopes' }).min(1, {
              error: 'must list at least one scope',
            }),
          })
          .strict(),
        { error: 'must be an array of {id, scopes}' },
      )
      .default([]),
    keyRotationInterval: z
      .number({ error: 'must be a number of seconds' })
      .int({ error: 'must be a whole number of seconds' })
      .min(3600, { error: 'must be at least 3600 seconds' })
      .optional(),
    clientLockout: z
      .union([
        z.literal(false),
        z
          .object({
            attempts: z.number().int().min(1).max(1000).default(10),
            sourceAttempts: z.number().int().min(1).max(100_000).optional(),
            window: z.number().int().min(1).max(86_400).default(300),
            duration: z.number().int().min(1).max(86_400).default(900),
          })
          .strict()
          .transform((o) => ({ ...o, sourceAttempts: o.sourceAttempts ?? Math.max(100, 10 * o.attempts) })),
      ])
      .default({ attempts: 10, sourceAttempts: 100, window: 300, duration: 900 }),
    logger: z
      .custom<Logger>((v) => typeof v === 'object' && v !== null && typeof (v as Logger).warn === 'function' && typeof (v as Logger).error === 'function', {
        error: 'must be a logger with warn() and error() (pino-compatible)',
      })
      .optional(),
    onEvent: z.custom<(event: AuditEvent) => void>((v) => typeof v === 'function', { error: 'must be a function' }).optional(),
    management: z
      .object({
        resolvePrincipal: z
          .custom<(req: IncomingMessage) => Principal | null | Promise<Principal | null>>((v) => typeof v === 'function', {
            error: 'must be a function',
          })
          .optional(),
        bodyLimit: z
          .number()
          .int()
          .min(1024, { error: 'must be between 1024 and 1048576 bytes' })
          .max(1_048_576, { error: 'must be between 1024 and 1048576 bytes' })
          .default(32_768),
        userScopes: z
          .custom<(tenantId: string, userId: string) => readonly string[] | null | Promise<readonly string[] | null>>((v) => typeof v === 'function', {
            error: 'must be a function',
          })
          .optional(),
        userScopesCacheTtl: z
          .number({ error: 'must be a number of seconds' })
          .min(0, { error: 'must be between 0 and 300 seconds' })
          .max(300, { error: 'must be between 0 and 300 seconds' })
          .default(10),
      })
      .strict()
      .default({ bodyLimit: 32_768, userScopesCacheTtl: 10 }),
    apiTokenTtl: z
      .object({
        default: z.number().int().min(60).max(100 * 365 * DAY).nullable().default(90 * DAY),
        max: z.number().int().min(60).max(100 * 365 * DAY).default(2 * 365 * DAY),
      })
      .strict()
      .default({ default: 90 * DAY, max: 2 * 365 * DAY }),
    limits: z
      .object({
        tokensPerApp: z.number().int({ error: 'must be a whole number' }).min(1, { error: 'must be between 1 and 10000' }).max(10_000, { error: 'must be between 1 and 10000' }).default(50),
        appsPerTenant: z.number().int({ error: 'must be a whole number' }).min(1, { error: 'must be between 1 and 1000000' }).max(1_000_000, { error: 'must be between 1 and 1000000' }).default(1000),
        keysPerApp: z.number().int({ error: 'must be a whole number' }).min(1, { error: 'must be between 1 and 20' }).max(20, { error: 'must be between 1 and 20' }).default(5),
      })
      .strict()
      .default({ tokensPerApp: 50, appsPerTenant: 1000, keysPerApp: 5 }),
    clientJwks: z
      .object({
        allowPrivateAddresses: z.boolean({ error: 'must be a boolean' }).default(false),
        timeout: z.number().int().min(100, { error: 'must be between 100 and 10000 ms' }).max(10_000, { error: 'must be between 100 and 10000 ms' }).default(3000),
      })
      .strict()
      .default({ allowPrivateAddresses: false, timeout: 3000 }),
    clientAssertion: z
      .object({
        audience: z.enum(['issuer', 'issuer-or-token-endpoint'], { error: "must be 'issuer' or 'issuer-or-token-endpoint'" }).default('issuer'),
        maxLifetime: z
          .number({ error: 'must be a whole number of seconds' })
          .int({ error: 'must be a whole number of seconds' })
          .min(1, { error: 'must be between 1 and 3600 seconds' })
          .max(3600, { error: 'must be between 1 and 3600 seconds' })
          .default(300),
      })
      .strict()
      .default({ audience: 'issuer', maxLifetime: 300 }),
    events: z
      .object({
        retention: z
          .number({ error: 'must be a number of seconds or null' })
          .int({ error: 'must be a whole number of seconds' })
          .min(3600, { error: 'must be between 3600 seconds and 10 years' })
          .max(3650 * DAY, { error: 'must be between 3600 seconds and 10 years' })
          .nullable()
          .default(90 * DAY),
      })
      .strict()
      .default({ retention: 90 * DAY }),
    usage: z
      .object({
        enabled: z.boolean({ error: 'must be true or false' }).default(true),
        flushInterval: z
          .number({ error: 'must be a whole number of ms' })
          .int({ error: 'must be a whole number of ms' })
          .min(0, { error: 'must be between 0 and 3600000 ms' })
          .max(3_600_000, { error: 'must be between 0 and 3600000 ms' })
          .default(10_000),
        retention: z
          .number({ error: 'must be a whole number of seconds' })
          .int({ error: 'must be a whole number of seconds' })
          .min(DAY, { error: 'must be between 86400 seconds and 10 years' })
          .max(3650 * DAY, { error: 'must be between 86400 seconds and 10 years' })
          .default(90 * DAY),
      })
      .strict()
      .default({ enabled: true, flushInterval: 10_000, retention: 90 * DAY }),
    telemetry: z
      .object({
        enabled: z.boolean({ error: 'must be true or false' }).default(true),
        tenantAttribute: z.boolean({ error: 'must be true or false' }).default(false),
      })
      .strict()
      .default({ enabled: true, tenantAttribute: false }),
    advanced: z
      .object({
        clockTolerance: z
          .number()
          .min(0, { error: 'must be between 0 and 300 seconds' })
          .max(300, { error: 'must be between 0 and 300 seconds' })
          .default(5),
        cacheMax: z.number().int().min(1).max(10_000_000).default(10_000),
        clientCacheTtl: z.number().min(0).max(60, { error: 'must be between 0 and 60 seconds' }).default(5),
        revocationSyncInterval: z.number().int().min(0).default(5000),
        revocationMaxStaleness: z
          .number()
          .int()
          .min(1000, { error: 'must be between 1000 and 86400000 ms' })
          .max(86_400_000, { error: 'must be between 1000 and 86400000 ms' })
          .default(5000),
        lastUsedFlushInterval: z.number().int().min(0).default(10_000),
        keyReloadInterval: z.number().int().min(0).default(60_000),
        keyActivationDelay: z.number().min(0).max(3600, { error: 'must be between 0 and 3600 seconds' }).default(90),
        eventFlushInterval: z.number().int().min(0).default(1000),
        expirySweepInterval: z.number().int().min(0).default(300_000),
        refreshRaceWindow: z.number().min(0).max(60, { error: 'must be between 0 and 60 seconds' }).default(2),
        now: z.custom<() => Date>((v) => typeof v === 'function', { error: 'must be a function' }).default(() => DEFAULT_NOW),
      })
      .strict()
      .default({
        clockTolerance: 5,
        cacheMax: 10_000,
        clientCacheTtl: 5,
        revocationSyncInterval: 5000,
        revocationMaxStaleness: 5000,
        lastUsedFlushInterval: 10_000,
        keyReloadInterval: 60_000,
        keyActivationDelay: 90,
        eventFlushInterval: 1000,
        expirySweepInterval: 300_000,
        refreshRaceWindow: 2,
        now: DEFAULT_NOW,
      }),
  })
  .strict()
  .refine((o) => o.apiTokenTtl.default === null || o.apiTokenTtl.default <= o.apiTokenTtl.max, {
    error: 'must not exceed "apiTokenTtl.max"',
    path: ['apiTokenTtl', 'default'],
  });

/** Options after validation and defaults. */
export type ResolvedOptions = z.infer<typeof schema> & { audience: string };

/** Validate options once; throws `invalid_options` naming the option. */
export function resolveOptions(input: unknown): ResolvedOptions {
  const result = schema.safeParse(input);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    if (issue.code === 'unrecognized_keys') {
      const prefix = issue.path.length ? `${fieldPath(issue.path)}.` : '';
      const name = `${prefix}${issue.keys[0]}`;
      throw new AppTokensError('invalid_options', `unknown option "${name}"`, { field: name });
    }
    const name = fieldPath(issue.path) || 'options';
    const message = issue.path.length === 0 && input === undefined ? 'options are required' : issue.message;
    throw new AppTokensError('invalid_options', `"${name}" ${message}`, { field: name });
  }
  const options = result.data;
  // Resource servers serve catalogue scopes, and are distinct.
  const seen = new Set<string>();
  options.resources.forEach((resource, i) => {
    if (seen.has(resource.id)) {
      throw new AppTokensError('invalid_options', `"resources[${i}].id" is declared twice`, { field: `resources[${i}].id` });
    }
    seen.add(resource.id);
    resource.scopes.forEach((scope, j) => {
      if (!options.scopes.includes(scope)) {
        throw new AppTokensError('invalid_options', `"resources[${i}].scopes[${j}]": unknown scope '${scope}'`, {
          field: `resources[${i}].scopes[${j}]`,
        });
      }
    });
  });
  const roleNames = new Set<string>();
  options.roles.forEach((role, i) => {
    if (roleNames.has(role.name)) {
      throw new AppTokensError('invalid_options', `"roles[${i}].name": '${role.name}' is declared twice`, { field: `roles[${i}].name` });
    }
    roleNames.add(role.name);
  });
  if (new Set(options.notifyBeforeExpiry).size !== options.notifyBeforeExpiry.length) {
    throw new AppTokensError('invalid_options', '"notifyBeforeExpiry" lists a threshold twice', { field: 'notifyBeforeExpiry' });
  }
  return { ...options, issuer: options.issuer, audience: options.audience ?? options.issuer };
}

const warned = new Set<string>();

/** Emit a process warning once per code. */
export function warnOnce(message: string, code: string): void {
  if (warned.has(code)) return;
  warned.add(code);
  process.emitWarning(message, { code });
}
