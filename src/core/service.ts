/**
 * The service layer: every operation the routers and the programmatic API perform. Routers call
 * this, never the store.
 *
 * @module
 */
import { LRUCache } from 'lru-cache';
import type { ApiTokenRecord, AppRecord, Tombstone } from '../store.js';
import { AccessTokens, GRANTED, makeAuthInfo, type InternalAuthInfo } from './access-tokens.js';
import { EventLog, PRUNE_INTERVAL_MS } from './events.js';
import { AppTokensError } from './errors.js';
import { KeyRing } from './keys.js';
import { ClientLockout, sourceKey } from './limits.js';
import { LastUsedBatcher } from './last-used.js';
import { safeLogger, type Logger } from './logger.js';
import { DEFAULT_NOW, warnOnce, type ResolvedOptions } from './options.js';
import { ExpiryNotices } from './expiry.js';
import { ReuseDetector, type ReuseDoor } from './reuse.js';
import { RevocationView } from './revocation.js';
import { RoleCatalogue, intersectScopes } from './roles.js';
import { GrantedScopes, ScopeCatalogue, printable } from './scopes.js';
import { SecretCodec, hashSecret } from './secrets.js';
import { UserScopes } from './user-scopes.js';
import { DpopVerifier, boundJkt } from './dpop.js';
import { ClientAuthenticator, type AuthenticatedClient, type ClientAuthRequest, type ClientCredential } from './client-auth.js';
import { ClientSecretMethod } from './client-secret.js';
import { PrivateKeyJwtMethod } from './private-key-jwt.js';
import { ClientKeySource } from './client-keys.js';
import { RemoteJwks } from './remote-jwks.js';
import { combineSignals, markRefusal, refusalOf, type BearerRefusal, type Signals } from './signals.js';
import { telemetryOf } from './telemetry.js';
import { UsageCounter } from './usage.js';

/** A successful client_credentials grant (RFC 6749 §4.4.3, §5.1). */
export interface TokenResponse {
  access_token: string;
  /** `DPoP` when the token is bound to the key of the request's DPoP proof (RFC 9449 §5). */
  token_type: 'Bearer' | 'DPoP';
  expires_in: number;
  scope: string;
}

/** How long an API token verified as a bearer is trusted from cache before re-reading it. */
const API_TOKEN_CACHE_MS = 60_000;


/** A verified credential in the cache, and the epoch ms after which it must be verified again. */
interface CacheEntry {
  info: InternalAuthInfo;
  until: number;
}

/** RFC 8693 §3 token type identifiers. */
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
const SUBJECT_TOKEN_TYPES: ReadonlySet<string> = new Set([ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE]);

/** An RFC 8693 token-exchange request, after the protocol checks. */
export interface ExchangeInput {
  subjectToken: string;
  subjectTokenType: string | undefined;
  requestedTokenType: string | undefined;
  actorToken: string | undefined;
  scopes: string[] | undefined;
  /** RFC 8707 `resource` (a URI). */
  resource: string | undefined;
  /** RFC 8693 `audience` (the same identifiers as `resource` here). */
  audience: string | undefined;
  /** RFC 9449: the thumbprint of the request's DPoP proof key; the new token is bound to it. */
  dpopJkt?: string | undefined;
  /**
   * The credential that authenticated the client: the new token carries no scope it may not use
   * now (live user scopes, current roles) and never outlives it (a retiring token's deadline).
   */
  credential: ClientCredential;
}

/** What a grant yields: the only input of a mint, made by `#grant` alone. */
interface Grant {
  scopes: string[];
  audience: string;
  /** The credential's expiry (a retiring token's deadline): the access token never outlives it. */
  notAfter: Date | null;
}

/**
 * The text of the refusal of an API token whose app is registered with `dpopBoundAccessTokens`,
 * presented as a bearer (RFC 9449 §7.1): the HTTP doors answer it with a DPoP challenge.
 */
export const DPOP_BOUND_APP_REFUSAL =
  'the API token belongs to an app registered with dpopBoundAccessTokens, which gets nothing through a bearer door: send a DPoP-bound access token with Authorization: DPoP and a DPoP proof';

export class AppTokensService {
  readonly options: ResolvedOptions;
  readonly catalogue: ScopeCatalogue;
  /** The host's roles (option `roles`), resolved into scopes at every mint and verification. */
  readonly roles: RoleCatalogue;
  /** What each host user may do now (`management.userScopes`): the bound of their personal tokens. */
  readonly userScopes: UserScopes;
  /** The `token.expiring` sweep (`notifyBeforeExpiry`). */
  readonly expiry: ExpiryNotices;
  readonly secrets: SecretCodec;
  readonly keys: KeyRing;
  readonly accessTokens: AccessTokens;
  readonly revocation: RevocationView;
  readonly lastUsed: LastUsedBatcher;
  readonly events: EventLog;
  /** Usage counts per app and credential (option `usage`), flushed in batches. */
  readonly usage: UsageCounter;
  /** What happened on the request path, told to every observer (usage counts, telemetry). */
  readonly signals: Signals;
  /** Redacting logger: nothing secret reaches a log line. */
  readonly log: Required<Logger>;
  /** Declared resource servers (RFC 8707): audience → the scopes it serves. */
  readonly resources: ReadonlyMap<string, ReadonlySet<string>>;
  /** Every audience a token of ours may carry: the default and each resource server. */
  readonly audiences: readonly string[];
  /** RFC 6749 §2.3.1 brute-force protection: failures throttled per source; `undefined` when disabled. */
  readonly lockout: ClientLockout | undefined;
  /** Refresh-token reuse detection, consulted by every door that checks an API token. */
  readonly reuse: ReuseDetector;
  /** RFC 9449 DPoP proofs (token endpoint and `authenticate()`): their checks, nonces and replay guard. */
  readonly dpop: DpopVerifier;
  /** Client authentication at the OAuth endpoints: secrets and private_key_jwt. */
  readonly clients: ClientAuthenticator;
  /** The public keys private_key_jwt clients may sign with: stored, or from their jwksUri. */
  readonly clientKeys: ClientKeySource;
  #maintenance: NodeJS.Timeout | undefined;
  #retention: NodeJS.Timeout | undefined;
  #usageRetention: NodeJS.Timeout | undefined;
  #expirySweep: NodeJS.Timeout | undefined;
  /** The clock in epoch ms; `Date.now` itself unless a clock was injected (no Date per request). */
  readonly #nowMs: () => number;
  /**
   * Verified bearers, in two caches so that no presented string can reach an entry it did not
   * produce itself: JWTs are keyed by the JWT (a string that verified as one), API tokens by the
   * SHA-256 of the value presented. A presented hash lands in the JWT cache under itself, where
   * nothing was ever stored (issue 11, finding 1: the stored hash must never be a credential).
   */
  readonly #jwtCache: LRUCache<string, CacheEntry>;
  readonly #apiTokenCache: LRUCache<string, CacheEntry>;
  #ready: Promise<void> | undefined;
  #isReady = false;

  constructor(options: ResolvedOptions) {
    this.options = options;
    const { store, advanced } = options;
    this.log = safeLogger(options.logger);
    const clock = options.advanced.now;
    this.#nowMs = clock === DEFAULT_NOW ? Date.now : () => clock().getTime();
    this.catalogue = new ScopeCatalogue(options.scopes);
    this.roles = new RoleCatalogue(options.roles, this.catalogue);
    this.userScopes = new UserScopes(options.management.userScopes, options.management.userScopesCacheTtl, this.#nowMs);
    this.secrets = new SecretCodec(options.tokenPrefix);
    this.keys = new KeyRing(store, {
      algorithm: options.signingAlgorithm,
      encryptionSecret: options.keyEncryptionSecret,
      // A retired key stays published while a token signed with it may live: the lifetime, the
      // leeway, and the time a not-yet-reloaded instance may still sign with it.
      retentionSeconds: options.accessTokenTtl + advanced.clockTolerance + (2 * advanced.keyReloadInterval) / 1000,
      activationDelaySeconds: advanced.keyActivationDelay,
      now: advanced.now,
      warn: warnOnce,
    });
    this.accessTokens = new AccessTokens(this.keys, {
      issuer: options.issuer,
      ttl: options.accessTokenTtl,
      clockTolerance: advanced.clockTolerance,
      now: advanced.now,
    });
    this.revocation = new RevocationView(store, {
      syncInterval: advanced.revocationSyncInterval,
      now: advanced.now,
      maxStaleness: advanced.revocationMaxStaleness,
      log: this.log,
    });
    this.lastUsed = new LastUsedBatcher(store, advanced.lastUsedFlushInterval, this.log);
    this.events = new EventLog(store, {
      log: this.log,
      onEvent: options.onEvent,
      flushInterval: advanced.eventFlushInterval,
      now: advanced.now,
      retention: options.events.retention,
    });
    this.usage = new UsageCounter(store, { ...options.usage, nowMs: this.#nowMs, log: this.log });
    this.signals = combineSignals(this.usage.signals, telemetryOf(options));
    this.expiry = new ExpiryNotices(store, this.events, { thresholds: options.notifyBeforeExpiry, now: advanced.now });
    this.#jwtCache = new LRUCache({ max: advanced.cacheMax });
    this.#apiTokenCache = new LRUCache({ max: advanced.cacheMax });
    this.clientKeys = new ClientKeySource(
      (app) => store.listClientKeys(app.tenantId, app.id),
      new RemoteJwks({ ...options.clientJwks, cacheTtl: 300_000, refetchInterval: 30_000, now: this.#nowMs }),
    );
    this.clients = new ClientAuthenticator(this, {
      secret: new ClientSecretMethod(this, this.#nowMs),
      privateKeyJwt: new PrivateKeyJwtMethod(this),
    });
    this.resources = new Map(options.resources.map((r) => [r.id, new Set(r.scopes)]));
    this.audiences = [...new Set([options.audience, ...this.resources.keys()])];
    this.lockout = options.clientLockout === false ? undefined : new ClientLockout(store, options.clientLockout);
    this.dpop = new DpopVerifier(store, {
      ...options.dpop,
      baseUrl: options.dpop.baseUrl ?? new URL(options.issuer).origin,
      clockTolerance: advanced.clockTolerance,
      nowMs: this.#nowMs,
    });
    this.reuse = new ReuseDetector({
      store,
      events: this.events,
      log: this.log,
      raceWindow: advanced.refreshRaceWindow,
      now: advanced.now,
      tombstoneExpiry: (now) => this.#tombstoneExpiry(now),
    });
  }

  /** Initialise the store, load or create the signing key, load revocations. Memoised. */
  ready(): Promise<void> {
    this.#ready ??= (async () => {
      this.options.store.useLogger?.(this.log);
      await this.options.store.init();
      await this.keys.load();
      await this.revocation.start();
      this.#startKeyMaintenance();
      this.#startRetention();
      this.#startExpirySweep();
      this.#isReady = true;
      void this.#warnAboutRetiredScopes();
    })().catch((error: unknown) => {
      // The database may be down at start: the next request tries again.
      this.revocation.stop();
      this.#ready = undefined;
      throw error;
    });
    return this.#ready;
  }

  get isReady(): boolean {
    return this.#isReady;
  }

  /** Stop timers and flush batched writes (both are attempted even if one fails). */
  async close(): Promise<void> {
    this.revocation.stop();
    if (this.#maintenance) clearInterval(this.#maintenance);
    this.#maintenance = undefined;
    if (this.#retention) clearInterval(this.#retention);
    this.#retention = undefined;
    if (this.#usageRetention) clearInterval(this.#usageRetention);
    this.#usageRetention = undefined;
    if (this.#expirySweep) clearInterval(this.#expirySweep);
    this.#expirySweep = undefined;
    const results = await Promise.allSettled([this.lastUsed.close(), this.events.close(), this.usage.close()]);
    for (const r of results) if (r.status === 'rejected') throw r.reason;
  }

  // ---- OAuth ----------------------------------------------------------------------------------

  /**
   * Client authentication (RFC 6749 §2.3): a client secret (an API token) or a `private_key_jwt`
   * assertion (RFC 7523 §2.2). Every failure is the same `invalid_client`.
   */
  authenticateClient(request: ClientAuthRequest): Promise<AuthenticatedClient> {
    return this.clients.authenticate(request);
  }

  /** Forget cached client credentials of an app whose record changed (name, claims) in this process. */
  forgetClient(appId: string): void {
    this.clients.forget(appId);
  }

  /**
   * The scopes a token of `app` may use now: the token's own list (or all of the app's), within
   * the app's scopes and roles as the host defines them today, within the catalogue; for a
   * personal token, within its user's current scopes. `null`: the token's user is gone.
   */
  async allowedScopes(app: AppRecord, token: ClientCredential): Promise<readonly string[] | null> {
    if (app.ownerUserId) {
      const user = await this.userScopes.get(app.tenantId, app.ownerUserId);
      if (user === null) return null;
      return intersectScopes(this.catalogue, this.catalogue.retain(token.scopes ?? []), user);
    }
    const effective = this.roles.scopesOf(app);
    if (token.scopes === null) return effective;
    const own = this.catalogue.retain(token.scopes);
    // A role's definition may have narrowed since the token was issued: the token narrows with it.
    return (app.roles?.length ?? 0) > 0 ? intersectScopes(this.catalogue, own, new GrantedScopes(effective)) : own;
  }

  /**
   * The client_credentials grant (RFC 6749 §4.4): an access token for `requested` scopes (default:
   * everything the API token may use), for the default audience or a declared resource server
   * (RFC 8707). Throws `invalid_scope` or `invalid_target`.
   */
  async issueClientCredentials(
    app: AppRecord,
    token: ClientCredential,
    requested: string[] | undefined,
    resource?: string,
    dpopJkt?: string,
  ): Promise<TokenResponse> {
    const grant = await this.#grant(app, token, undefined, requested, resource);
    return this.#issue(app, token.id, token.expiresAt, grant, { grant: 'client_credentials' }, dpopJkt);
  }

  /**
   * RFC 8693 token exchange: narrow a token of the calling client (`subject_token`, an access
   * token or an API token) to fewer scopes and/or one declared audience. The new token never
   * outlives the subject, and dies with the API token the subject descends from.
   */
  async exchange(app: AppRecord, input: ExchangeInput): Promise<TokenResponse & { issued_token_type: string }> {
    if (input.subjectTokenType === undefined) {
      throw new AppTokensError('invalid_request', 'subject_token_type: required', { field: 'subject_token_type' });
    }
    if (!SUBJECT_TOKEN_TYPES.has(input.subjectTokenType)) {
      throw new AppTokensError('invalid_request', `subject_token_type: must be ${[...SUBJECT_TOKEN_TYPES].join(' or ')}`, {
        field: 'subject_token_type',
      });
    }
    if (input.requestedTokenType !== undefined && input.requestedTokenType !== ACCESS_TOKEN_TYPE) {
      throw new AppTokensError('invalid_request', `requested_token_type: only ${ACCESS_TOKEN_TYPE} can be issued`, {
        field: 'requested_token_type',
      });
    }
    if (input.actorToken !== undefined) {
      throw new AppTokensError('invalid_request', 'actor_token: delegation is not supported', { field: 'actor_token' });
    }
    let subject: InternalAuthInfo | undefined;
    try {
      subject = await this.#verify(input.subjectToken, this.audiences, true, 'token_exchange');
    } catch {
      subject = undefined;
    }
    // §2.2.2: an invalid subject_token is invalid_request; another client's is indistinguishable.
    if (subject === undefined || subject.clientId !== app.id || subject.tenantId !== app.tenantId) {
      throw new AppTokensError('invalid_request', 'subject_token: not a valid token of this client', { field: 'subject_token' });
    }
    if (input.resource !== undefined && input.audience !== undefined && input.resource !== input.audience) {
      throw new AppTokensError('invalid_target', 'audience: must name the same resource server as resource, or be omitted', {
        field: 'audience',
      });
    }
    // The subject passed verification with the clock leeway; a subject past its exp is not exchanged.
    if (subject.expiresAt !== null && subject.expiresAt <= this.options.advanced.now()) {
      throw new AppTokensError('invalid_request', 'subject_token: expired', { field: 'subject_token' });
    }
    // The declared type must be what the subject is: an API token is not a JWT.
    if (input.subjectTokenType === JWT_TOKEN_TYPE && subject.kind !== 'access_token') {
      throw new AppTokensError('invalid_request', 'subject_token: not a JWT, as subject_token_type says', { field: 'subject_token_type' });
    }
    const target = input.resource ?? input.audience;
    const subjectAudience = subject.audience;
    if (target !== undefined && subjectAudience !== null && !subjectAudience.includes(this.options.audience) && !subjectAudience.includes(target)) {
      throw new AppTokensError('invalid_target', 'audience: a token for one resource server cannot be exchanged for another', {
        field: input.resource !== undefined ? 'resource' : 'audience',
      });
    }
    // RFC 9449 §7.2 in spirit: a DPoP-bound subject is never exchanged for a token less bound.
    const subjectJkt = boundJkt(subject.claims);
    if (subjectJkt !== undefined && subjectJkt !== input.dpopJkt) {
      throw new AppTokensError('invalid_dpop_proof', 'DPoP: subject_token is DPoP-bound; send a DPoP proof of its key', { field: 'DPoP' });
    }
    // The subject's scopes as they were minted, narrowed to what the client may use now (issue 21 item 5).
    const grant = await this.#grant(app, input.credential, subject[GRANTED], input.scopes, target, input.resource !== undefined ? 'resource' : 'audience');
    if (target === undefined && subjectAudience !== null) grant.audience = subjectAudience[0]!;
    // The API token the subject descends from may be retiring since it was minted: nothing derived
    // from it outlives the deadline (issue 21 item 1). A key's id names no API token: no record.
    let notAfter = subject.expiresAt;
    if (subject.kind === 'access_token') {
      const origin = await this.options.store.getApiToken(app.tenantId, subject.apiTokenId);
      if (origin !== undefined && (origin.revokedAt !== null || (origin.expiresAt !== null && origin.expiresAt <= this.options.advanced.now()))) {
        throw new AppTokensError('invalid_request', 'subject_token: not a valid token of this client', { field: 'subject_token' });
      }
      notAfter = earliest(notAfter, origin?.expiresAt ?? null);
    }
    const response = await this.#issue(
      app,
      subject.apiTokenId,
      notAfter,
      grant,
      { grant: 'token_exchange', ...(subject.claims.jti ? { subjectJti: subject.claims.jti } : {}) },
      input.dpopJkt,
    );
    return { ...response, issued_token_type: ACCESS_TOKEN_TYPE };
  }

  /**
   * RFC 7662 introspection by a client: active tokens of the caller's tenant are described; any
   * other token (unknown, expired, revoked, malformed, another tenant's) is exactly `{active: false}`.
   */
  introspect(caller: AppRecord, token: string): Promise<Record<string, unknown>> {
    return this.introspectInTenant(caller.tenantId, token);
  }

  /**
   * {@link introspect} for a caller known only by its tenant: a management principal (`POST
   * /me/introspect`, the console's token debugger). Tokens of any other tenant are `{active: false}`.
   */
  async introspectInTenant(tenantId: string, token: string): Promise<Record<string, unknown>> {
    return (await this.#introspect(tenantId, token)).answer;
  }

  /**
   * {@link introspectInTenant} for the console's token debugger (`POST /me/introspect`, issue 25
   * item 7): an inactive token may also say why ({@link InactiveReason}), and only where the reason
   * is no oracle across tenants: `expired`, `revoked`, `app_deleted` for a token verifiably the
   * caller's tenant's (a JWT whose signature verified with our key and whose tenant claim is the
   * caller's, an API token found by its hash in that tenant); `unknown_key`, `invalid_signature`,
   * `other_issuer`, `malformed` for what the presented string itself shows against our public keys
   * and issuer. Anything else — another tenant's token above all, live or dead, and an API token no
   * record of this tenant matches — is exactly `{active: false}`. Never the RFC 7662 endpoint.
   */
  async explainInTenant(tenantId: string, token: string): Promise<Record<string, unknown>> {
    const { answer, error } = await this.#introspect(tenantId, token);
    if (answer.active === true || error === undefined) return answer;
    const reason = await this.#inactiveReason(tenantId, token, error);
    return reason === undefined ? answer : { active: false, reason };
  }

  async #inactiveReason(tenantId: string, token: string, error: unknown): Promise<InactiveReason | undefined> {
    const refusal = refusalOf(error);
    if (refusal === undefined) return undefined;
    // Attributed from verified data only (a signature that verified, a record found by the hash of
    // what was presented): the caller's own tenant, or nothing at all is said.
    if (refusal.tenantId !== null) {
      if (refusal.tenantId !== tenantId) return undefined;
      if (refusal.reason === 'expired') return 'expired';
      if (refusal.reason === 'revoked') {
        const app = refusal.appId === null ? undefined : await this.options.store.getApp(tenantId, refusal.appId);
        return app === undefined ? 'app_deleted' : 'revoked';
      }
      // Signed by our key for this tenant, yet refused on a claim: say so only of the issuer.
      if (refusal.reason === 'other' && !this.secrets.looksLikeOurs(token) && unverifiedIssuer(token) !== this.options.issuer) return 'other_issuer';
      return undefined;
    }
    // Nobody's: only what the string itself shows. A well-formed API token that matched no record
    // here says nothing (it may be another tenant's).
    if (refusal.reason === 'malformed') return 'malformed';
    if (this.secrets.looksLikeOurs(token)) return undefined;
    if (refusal.reason === 'unknown' || refusal.reason === 'invalid_signature') {
      const iss = unverifiedIssuer(token);
      if (iss !== undefined && iss !== this.options.issuer) return 'other_issuer';
      return refusal.reason === 'unknown' ? 'unknown_key' : 'invalid_signature';
    }
    return undefined;
  }

  async #introspect(tenantId: string, token: string): Promise<{ answer: Record<string, unknown>; error?: unknown }> {
    let info: InternalAuthInfo;
    try {
      info = await this.#verify(token, this.audiences, true, 'introspection');
    } catch (error) {
      return { answer: { active: false }, error };
    }
    if (info.tenantId !== tenantId) return { answer: { active: false } };
    const { claims } = info;
    return {
      answer: {
        active: true,
        scope: info.scopes.join(' '),
        client_id: info.clientId,
        sub: info.userId ?? info.clientId,
        iss: this.options.issuer,
        ...(info.audience ? { aud: info.audience.length === 1 ? info.audience[0] : info.audience } : {}),
        ...(claims.exp !== undefined ? { exp: claims.exp } : {}),
        ...(claims.iat !== undefined ? { iat: claims.iat } : {}),
        ...(claims.jti !== undefined ? { jti: claims.jti } : {}),
        // RFC 9449 §6.2: a bound token is introspected with its confirmation and type.
        ...(boundJkt(claims) !== undefined ? { cnf: { jkt: boundJkt(claims)! }, token_type: 'DPoP' } : { token_type: 'Bearer' }),
        tenant_id: info.tenantId,
        api_token_id: info.apiTokenId,
      },
    };
  }

  /**
   * RFC 7009 revocation by a client of one of its own tokens: an access token (its `jti` is
   * denied until it expires) or an API token (revoked with every access token it minted).
   * Unknown, invalid or foreign tokens change nothing and are not an error (§2.2).
   */
  async revoke(caller: AppRecord, token: string): Promise<void> {
    const now = this.options.advanced.now();
    if (this.secrets.looksLikeOurs(token)) {
      if (!this.secrets.isWellFormed(token)) return;
      const record = await this.options.store.findApiTokenByHash(hashSecret(token));
      // Whoever presents a refreshed token holds a copy of it: reuse, at this door too.
      if (record && record.revokedAt !== null) await this.reuse.presented(record, 'revocation', caller.id);
      if (!record || record.appId !== caller.id || record.tenantId !== caller.tenantId || record.revokedAt !== null) return;
      const revoked = await this.options.store.revokeApiTokens(
        caller.tenantId,
        [record.id],
        'revoked',
        [this.tombstone('api_token', record.id, caller.tenantId)],
        now,
      );
      if (revoked.length > 0) {
        this.events.emit({ type: 'token.deleted', tenantId: caller.tenantId, appId: caller.id, tokenId: record.id, actorId: caller.id, data: { via: 'revocation_endpoint' } });
      }
      return;
    }
    let info: InternalAuthInfo;
    try {
      info = await this.accessTokens.verify(token, this.audiences);
    } catch {
      return;
    }
    if (info.clientId !== caller.id || info.tenantId !== caller.tenantId || typeof info.claims.jti !== 'string') return;
    const keepUntil = info.expiresAt!.getTime() + this.options.advanced.clockTolerance * 1000;
    await this.options.store.addTombstones([
      { kind: 'access_token', id: info.claims.jti, tenantId: caller.tenantId, createdAt: now, expiresAt: new Date(keepUntil) },
    ]);
    this.events.emit({
      type: 'access_token.revoked',
      tenantId: caller.tenantId,
      appId: caller.id,
      tokenId: info.apiTokenId,
      actorId: caller.id,
      data: { jti: info.claims.jti },
    });
  }

  /** Rotate the signing key now. New tokens carry the new kid; old ones keep verifying. */
  async rotateKeys(): Promise<{ kid: string; retired: string[]; activatesAt: Date }> {
    await this.ready();
    const rotated = await this.keys.rotate();
    this.log.info({ kid: rotated.kid, retired: rotated.retired, activatesAt: rotated.activatesAt.toISOString() }, 'signing key rotated');
    return rotated;
  }

  /**
   * The scopes, audience and deadline every grant yields, the one place they are decided: within
   * what `credential` may use now ({@link allowedScopes}: the user's live scopes for a personal
   * token, the app's current roles, the catalogue), within `bound` when the grant narrows a token
   * it was given (a token exchange's subject), and never past the credential's expiry.
   */
  async #grant(
    app: AppRecord,
    credential: ClientCredential,
    bound: GrantedScopes | undefined,
    requested: string[] | undefined,
    resource: string | undefined,
    targetField = 'resource',
  ): Promise<Grant> {
    const live = await this.allowedScopes(app, credential);
    if (live === null) throw new AppTokensError('invalid_client', 'client authentication failed');
    const allowed = new GrantedScopes(bound === undefined ? live : intersectScopes(this.catalogue, bound.list, new GrantedScopes(live)));
    if (bound !== undefined && allowed.list.length === 0) {
      throw new AppTokensError('invalid_scope', 'scope: this client no longer holds any scope of subject_token', { field: 'scope' });
    }
    let served: ReadonlySet<string> | undefined;
    // Naming the default audience is the same as naming none.
    if (resource === this.options.audience && !this.resources.has(resource)) resource = undefined;
    if (resource !== undefined) {
      served = this.resources.get(resource);
      if (!served) {
        throw new AppTokensError('invalid_target', `${targetField}: '${printable(resource)}' is not a resource server of this issuer`, {
          field: targetField,
        });
      }
    }
    let scopes: string[];
    if (requested === undefined) {
      scopes = served ? this.catalogue.expand(allowed).filter((s) => served.has(s)) : [...allowed.list];
      if (scopes.length === 0) {
        throw new AppTokensError('invalid_scope', `scope: this client holds no scope that ${targetField} serves`, { field: 'scope' });
      }
    } else {
      requested.forEach((scope, i) => {
        if (!this.catalogue.knows(scope)) {
          throw new AppTokensError('invalid_scope', `scope: unknown scope '${printable(scope)}'`, { field: `scope[${i}]` });
        }
      });
      const missing = allowed.missing(requested);
      if (missing.length > 0) {
        throw new AppTokensError('invalid_scope', `scope: not granted to this client: ${missing.map(printable).join(' ')}`, {
          field: 'scope',
        });
      }
      const unserved = served ? requested.filter((s) => !served.has(s)) : [];
      if (unserved.length > 0) {
        throw new AppTokensError('invalid_scope', `scope: not served by ${targetField} '${printable(resource!)}': ${unserved.map(printable).join(' ')}`, {
          field: 'scope',
        });
      }
      scopes = requested;
    }
    return { scopes, audience: resource ?? this.options.audience, notAfter: earliest(credential.expiresAt, this.#retiresAt(credential.id)) };
  }

  /** The grace deadline of a retiring credential, from its tombstone waiting in the revocation view. */
  #retiresAt(credentialId: string): Date | null {
    const from = this.revocation.pendingFrom('api_token', credentialId);
    return from === undefined ? null : new Date(from);
  }

  async #issue(
    app: AppRecord,
    apiTokenId: string,
    notAfter: Date | null,
    grant: Grant,
    data: Record<string, unknown>,
    dpopJkt?: string,
  ): Promise<TokenResponse> {
    const { scopes, audience } = grant;
    const roles = this.roles.knownRoles(app);
    const cnf = dpopJkt === undefined ? undefined : { jkt: dpopJkt };
    // Never past a retiring credential's deadline, also where this instance holds a stale copy of
    // its record (a cached client): the deadline's tombstone reached the revocation view when written.
    const until = earliest(earliest(notAfter, grant.notAfter), this.#retiresAt(apiTokenId));
    const minted = await this.accessTokens.mint({ app, apiTokenId, notAfter: until, scopes, audience, roles, cnf });
    this.events.emit({
      type: 'access_token.issued',
      tenantId: app.tenantId,
      appId: app.id,
      tokenId: apiTokenId,
      actorId: app.id,
      data: { ...data, jti: minted.jti, scope: scopes.join(' '), aud: audience, expiresAt: minted.expiresAt.toISOString(), ...(cnf ? { jkt: cnf.jkt } : {}) },
    });
    return { access_token: minted.jwt, token_type: cnf ? 'DPoP' : 'Bearer', expires_in: minted.expiresIn, scope: scopes.join(' ') };
  }

  // ---- bearer verification ----------------------------------------------------------------------

  /**
   * The hot path: a cached, unexpired, unrevoked credential for `audience`, or `undefined`
   * (verify it with {@link verifyBearer}). No I/O.
   */
  cachedBearer(value: string, audience: string = this.options.audience): InternalAuthInfo | undefined {
    const apiToken = this.secrets.looksLikeOurs(value);
    const cache = apiToken ? this.#apiTokenCache : this.#jwtCache;
    const key = apiToken ? hashSecret(value) : value;
    const entry = cache.get(key);
    if (entry === undefined) return undefined;
    if (this.#nowMs() >= entry.until) {
      cache.delete(key);
      return undefined;
    }
    const { info } = entry;
    if (info.audience !== null && !info.audience.includes(audience)) return undefined;
    if (this.revocation.isRevoked(info.appId, info.apiTokenId, info.claims.jti)) return undefined;
    // Past advanced.revocationMaxStaleness the full path answers 503 (a clock read and a compare).
    if (this.revocation.isStale()) return undefined;
    if (apiToken) {
      if (!this.options.acceptApiTokens) return undefined;
      // A hit is the exact secret that was verified: no failure anywhere refuses it (issue 21 item 3).
      this.lastUsed.record(info.apiTokenId, this.options.advanced.now());
    }
    return info;
  }

  /**
   * Verify a bearer credential for `audience` (JWT, or API token when enabled), cache it, check
   * revocation. `source` (the request's `req.ip`): an API token that fails counts for it, and a
   * throttled source is refused (429) before its API token is looked up (`clientLockout`).
   */
  verifyBearer(value: string, audience: string = this.options.audience, source?: string): Promise<InternalAuthInfo> {
    return this.#verify(value, audience, this.options.acceptApiTokens, 'bearer', source);
  }

  async #verify(
    value: string,
    audience: string | readonly string[],
    allowApiTokens: boolean,
    door: ReuseDoor = 'bearer',
    source?: string,
  ): Promise<InternalAuthInfo> {
    if (value.length > 8192) throw new AppTokensError('invalid_token', 'the access token is too large');
    const nowMs = this.#nowMs();
    let info: InternalAuthInfo;
    if (this.secrets.looksLikeOurs(value)) {
      if (!allowApiTokens) {
        throw new AppTokensError('invalid_token', 'API tokens are not accepted as bearer tokens here; use an access token');
      }
      const hash = hashSecret(value);
      // An API token is the client's secret: guesses through the bearer door are throttled per source
      // like any other (introspection and token exchange name a token; the caller authenticated).
      const throttle = door === 'bearer' && source !== undefined ? this.lockout : undefined;
      const from = sourceKey(source);
      await throttle?.assertOpen(from);
      try {
        info = await this.#verifyApiToken(value, hash, door);
      } catch (error) {
        if (throttle !== undefined && error instanceof AppTokensError && error.code === 'invalid_token') await throttle.failed(from);
        throw error;
      }
      this.#assertLive(info);
      // A personal token is re-bounded by its user's scopes as often as the host's answer is cached.
      const trustMs = info.userId === null ? API_TOKEN_CACHE_MS : Math.min(API_TOKEN_CACHE_MS, this.userScopes.ttlMs);
      this.#apiTokenCache.set(hash, { info, until: Math.min(nowMs + trustMs, info.expiresAt?.getTime() ?? Infinity) });
    } else {
      info = this.#withinCatalogue(await this.accessTokens.verify(value, audience));
      this.#assertLive(info);
      this.#jwtCache.set(value, { info, until: info.expiresAt!.getTime() + this.options.advanced.clockTolerance * 1000 });
    }
    return info;
  }

  /** 503 while the revocation view is older than `advanced.revocationMaxStaleness` (shared stores only). */
  #assertFresh(): void {
    if (this.revocation.isStale()) {
      throw new AppTokensError('unavailable', 'revocation state is out of date: the token store has not been reachable; retry shortly', {
        retryAfter: Math.max(1, Math.ceil(this.options.advanced.revocationSyncInterval / 1000)),
      });
    }
  }

  #assertLive(info: InternalAuthInfo): void {
    if (this.revocation.isRevoked(info.appId, info.apiTokenId, info.claims.jti)) {
      throw refused(new AppTokensError('invalid_token', 'the access token has been revoked'), 'revoked', info);
    }
    // A revocation known here is definitive (401); otherwise this instance may not have heard of one.
    this.#assertFresh();
  }

  /** A token minted before the host removed a scope from its catalogue grants only what is left. */
  #withinCatalogue(info: InternalAuthInfo): InternalAuthInfo {
    const scopes = this.catalogue.retain(info.scopes);
    return scopes === info.scopes ? info : makeAuthInfo({ ...info, scopes });
  }

  async #verifyApiToken(value: string, hash: string, door: ReuseDoor): Promise<InternalAuthInfo> {
    if (!this.secrets.isWellFormed(value)) throw refused(new AppTokensError('invalid_token', 'the API token is malformed'), 'malformed');
    const { store, advanced } = this.options;
    const token = await store.findApiTokenByHash(hash);
    const now = advanced.now();
    if (!token) throw refused(new AppTokensError('invalid_token', 'the API token is not valid'), 'unknown');
    // Found by the hash of what was presented: its app is known (usage attribution).
    const owner = { tenantId: token.tenantId, appId: token.appId, apiTokenId: token.id };
    if (token.revokedAt !== null) {
      await this.reuse.presented(token, door, token.appId);
      throw refused(new AppTokensError('invalid_token', 'the API token is not valid'), 'revoked', owner);
    }
    if (token.expiresAt && token.expiresAt <= now) throw refused(new AppTokensError('invalid_token', 'the API token expired'), 'expired', owner);
    const app = await store.getApp(token.tenantId, token.appId);
    if (!app) throw refused(new AppTokensError('invalid_token', 'the API token is not valid'), 'revoked', owner);
    // RFC 9449 §7.1: every token of such an app is bound to a key, and an API token is bound to
    // none, so it opens no bearer door (nor introspects as active); never cached, so the cached
    // path cannot pass it either. As a token exchange's subject it is fine: that request carries a proof.
    if (app.dpopBoundAccessTokens === true && door !== 'token_exchange') throw refused(new AppTokensError('invalid_token', DPOP_BOUND_APP_REFUSAL), 'dpop', owner);
    const allowed = await this.allowedScopes(app, token);
    if (allowed === null) throw refused(new AppTokensError('invalid_token', 'the API token is not valid'), 'revoked', owner);
    this.lastUsed.record(token.id, now);
    const scopes = [...allowed];
    const roles = this.roles.knownRoles(app);
    const userId = app.ownerUserId ?? null;
    return makeAuthInfo({
      kind: 'api_token',
      tenantId: app.tenantId,
      appId: app.id,
      clientId: app.id,
      apiTokenId: token.id,
      userId,
      scopes,
      claims: Object.freeze({
        ...app.customClaims,
        iss: this.options.issuer,
        sub: userId ?? app.id,
        client_id: app.id,
        scope: scopes.join(' '),
        tenant_id: app.tenantId,
        app_name: app.name,
        api_token_id: token.id,
        ...(roles.length > 0 ? { roles } : {}),
        iat: Math.floor(token.createdAt.getTime() / 1000),
        ...(token.expiresAt ? { exp: Math.floor(token.expiresAt.getTime() / 1000) } : {}),
      }),
      expiresAt: token.expiresAt,
      audience: null,
    });
  }


  // ---- helpers ----------------------------------------------------------------------------------

  /** Event and usage retention: a run at start, then hourly; a failed run waits for the next. */
  #startRetention(): void {
    // Usage counts are pruned even with counting off: counts of an earlier run still expire.
    const pruneUsage = () =>
      void this.usage.prune().catch((error: unknown) => {
        this.log.warn({ error: error instanceof Error ? error.message : String(error) }, 'usage-count retention run failed; retrying at the next run');
      });
    pruneUsage();
    this.#usageRetention = setInterval(pruneUsage, PRUNE_INTERVAL_MS);
    this.#usageRetention.unref();
    if (this.options.events.retention === null) return;
    const run = () =>
      void this.events.prune().catch((error: unknown) => {
        this.log.warn({ error: error instanceof Error ? error.message : String(error) }, 'audit-event retention run failed; retrying at the next run');
      });
    run();
    this.#retention = setInterval(run, PRUNE_INTERVAL_MS);
    this.#retention.unref();
  }

  /** The expiry-notice sweep: a run at start, then every `advanced.expirySweepInterval`; never two at once. */
  #startExpirySweep(): void {
    const interval = this.options.advanced.expirySweepInterval;
    if (!this.expiry.enabled || interval <= 0) return;
    let busy = false;
    const run = () => {
      if (busy) return;
      busy = true;
      void this.expiry
        .sweep()
        .catch((error: unknown) => {
          this.log.warn({ error: error instanceof Error ? error.message : String(error) }, 'expiry-notice sweep failed; retrying at the next run');
        })
        .finally(() => {
          busy = false;
        });
    };
    run();
    this.#expirySweep = setInterval(run, interval);
    this.#expirySweep.unref();
  }

  /** Reload keys (another instance may have rotated) and rotate when the active key is due. */
  #startKeyMaintenance(): void {
    const { keyReloadInterval } = this.options.advanced;
    const rotateAfter = this.options.keyRotationInterval;
    if (keyReloadInterval <= 0) return;
    let busy = false;
    this.#maintenance = setInterval(() => {
      // A slow store or an RSA key generation may outlast a tick: never run two at once.
      if (busy) return;
      busy = true;
      void (async () => {
        await this.keys.reload();
        if (rotateAfter !== undefined && this.keys.activeAge >= rotateAfter) await this.keys.rotate();
      })()
        .catch(() => {
          // Retried on the next tick; signing goes on with the key already loaded.
        })
        .finally(() => {
          busy = false;
        });
    }, keyReloadInterval);
    this.#maintenance.unref();
  }

  /** A tombstone kept until the last access token it could kill has expired (plus leeway). */
  tombstone(kind: Tombstone['kind'], id: string, tenantId: string, effectiveAt?: Date): Tombstone {
    const from = effectiveAt ?? this.options.advanced.now();
    return { kind, id, tenantId, createdAt: from, expiresAt: this.#tombstoneExpiry(from) };
  }

  #tombstoneExpiry(now: Date): Date {
    const keepMs = (this.options.accessTokenTtl + this.options.advanced.clockTolerance) * 1000 + API_TOKEN_CACHE_MS;
    return new Date(now.getTime() + keepMs);
  }

  /**
   * Apps whose stored scopes left the catalogue (a catalogue edited between deploys, a bootstrap
   * with other scopes) get no such scope in any token; say so once at start, with their count.
   * Runs in the background, a page at a time; a store without `scanApps` is not scanned.
   */
  async #warnAboutRetiredScopes(): Promise<void> {
    const { store } = this.options;
    if (store.scanApps === undefined) return;
    let apps = 0;
    const scopes = new Set<string>();
    try {
      let after: string | undefined;
      for (;;) {
        const page = await store.scanApps({ limit: 500, after });
        for (const app of page) {
          const retired = app.scopes.filter((s) => !this.catalogue.knows(s));
          if (retired.length > 0) {
            apps++;
            for (const s of retired) scopes.add(s);
          }
        }
        if (page.length < 500) break;
        after = page[page.length - 1]!.id;
      }
    } catch {
      return; // the store went away (closed, or down at start): nothing to report this time
    }
    if (apps > 0) {
      this.log.warn(
        { apps, scopes: [...scopes].slice(0, 20) },
        `${apps} app(s) hold scopes that are not in the "scopes" catalogue; no token carries them (the app view flags them)`,
      );
    }
  }
}

/** Why `POST /me/introspect` finds a token not active ({@link AppTokensService.explainInTenant}). */
export type InactiveReason = 'expired' | 'revoked' | 'app_deleted' | 'unknown_key' | 'invalid_signature' | 'other_issuer' | 'malformed';

/** The `iss` a compact JWS claims, unverified (only ever compared with ours). */
function unverifiedIssuer(token: string): string | undefined {
  try {
    const claims: unknown = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'));
    const iss = typeof claims === 'object' && claims !== null ? (claims as { iss?: unknown }).iss : undefined;
    return typeof iss === 'string' ? iss : undefined;
  } catch {
    return undefined;
  }
}

/** An error tagged with why a bearer was refused and, from verified data only, whose it was. */
function refused(
  error: AppTokensError,
  reason: BearerRefusal,
  owner?: { tenantId: string; appId: string; apiTokenId: string | null },
): AppTokensError {
  return markRefusal(error, { reason, tenantId: owner?.tenantId ?? null, appId: owner?.appId ?? null, apiTokenId: owner?.apiTokenId ?? null });
}

/** The earlier of two optional instants (`null`: none). */
function earliest(a: Date | null, b: Date | null): Date | null {
  if (a === null) return b;
  if (b === null) return a;
  return a <= b ? a : b;
}

export { GRANTED };
