/**
 * The service layer: every operation the routers and the programmatic API perform. Routers call
 * this, never the store.
 *
 * @module
 */
import { timingSafeEqual } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { ApiTokenRecord, AppRecord, Tombstone } from '../store.js';
import { AccessTokens, GRANTED, makeAuthInfo, type InternalAuthInfo } from './access-tokens.js';
import { EventLog } from './events.js';
import { AppTokensError } from './errors.js';
import { KeyRing } from './keys.js';
import { LastUsedBatcher } from './last-used.js';
import { warnOnce, type ResolvedOptions } from './options.js';
import { RevocationView } from './revocation.js';
import { GrantedScopes, ScopeCatalogue, printable } from './scopes.js';
import { DUMMY_HASH, SecretCodec, hashSecret } from './secrets.js';

/** A successful client_credentials grant (RFC 6749 §4.4.3, §5.1). */
export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  scope: string;
}

/** How long an API token verified as a bearer is trusted from cache before re-reading it. */
const API_TOKEN_CACHE_MS = 60_000;

export class AppTokensService {
  readonly options: ResolvedOptions;
  readonly catalogue: ScopeCatalogue;
  readonly secrets: SecretCodec;
  readonly keys: KeyRing;
  readonly accessTokens: AccessTokens;
  readonly revocation: RevocationView;
  readonly lastUsed: LastUsedBatcher;
  readonly events: EventLog;
  /** Verified bearers: JWT string, or `sha256:<hash>` for an API token → AuthInfo. */
  readonly #cache: LRUCache<string, InternalAuthInfo>;
  /** Epoch ms after which a cached entry must be verified again. */
  readonly #cacheUntil = new WeakMap<InternalAuthInfo, number>();
  #ready: Promise<void> | undefined;
  #isReady = false;

  constructor(options: ResolvedOptions) {
    this.options = options;
    const { store, advanced } = options;
    this.catalogue = new ScopeCatalogue(options.scopes);
    this.secrets = new SecretCodec(options.tokenPrefix);
    this.keys = new KeyRing(store, {
      algorithm: options.signingAlgorithm,
      encryptionSecret: options.keyEncryptionSecret,
      retentionSeconds: options.accessTokenTtl + advanced.clockTolerance,
      now: advanced.now,
      warn: warnOnce,
    });
    this.accessTokens = new AccessTokens(this.keys, {
      issuer: options.issuer,
      ttl: options.accessTokenTtl,
      clockTolerance: advanced.clockTolerance,
      now: advanced.now,
    });
    this.revocation = new RevocationView(store, { syncInterval: advanced.revocationSyncInterval, now: advanced.now });
    this.lastUsed = new LastUsedBatcher(store, advanced.lastUsedFlushInterval);
    this.events = new EventLog(store, { onEvent: options.onEvent, flushInterval: advanced.eventFlushInterval, now: advanced.now });
    this.#cache = new LRUCache({ max: advanced.cacheMax });
  }

  /** Initialise the store, load or create the signing key, load revocations. Memoised. */
  ready(): Promise<void> {
    this.#ready ??= (async () => {
      await this.options.store.init();
      await this.keys.load();
      await this.revocation.start();
      this.#isReady = true;
    })();
    return this.#ready;
  }

  get isReady(): boolean {
    return this.#isReady;
  }

  /** Stop timers and flush batched writes (both are attempted even if one fails). */
  async close(): Promise<void> {
    this.revocation.stop();
    const results = await Promise.allSettled([this.lastUsed.close(), this.events.close()]);
    for (const r of results) if (r.status === 'rejected') throw r.reason;
  }

  // ---- OAuth ----------------------------------------------------------------------------------

  /**
   * Client authentication (RFC 6749 §2.3.1): `clientId` is the app id, `secret` one of its API
   * tokens. An unknown client, a wrong, revoked, expired or malformed secret all throw the same
   * `invalid_client`, after the same work.
   */
  async authenticateClient(clientId: string, secret: string): Promise<{ app: AppRecord; token: ApiTokenRecord }> {
    const { store } = this.options;
    const wellFormed = this.secrets.isWellFormed(secret);
    const presented = Buffer.from(hashSecret(secret), 'hex');
    // Both lookups always run, so that an unknown client and a wrong secret take the same path.
    const [app, token] = await Promise.all([
      clientId.length <= 128 ? store.getAppByClientId(clientId) : undefined,
      wellFormed ? store.findApiTokenByHash(presented.toString('hex')) : undefined,
    ]);
    const stored = Buffer.from(token?.hash ?? DUMMY_HASH, 'hex');
    const hashMatches = timingSafeEqual(stored, presented) && token !== undefined;
    const now = this.options.advanced.now();
    const ok =
      hashMatches &&
      app !== undefined &&
      token.appId === app.id &&
      token.tenantId === app.tenantId &&
      token.revokedAt === null &&
      (token.expiresAt === null || token.expiresAt > now);
    if (!ok) {
      // Audit the refusal in the tenant of the client it claimed to be, when that client exists.
      if (app) {
        this.events.emit({
          type: 'access_token.refused',
          outcome: 'failure',
          tenantId: app.tenantId,
          appId: app.id,
          actorId: app.id,
          data: { reason: 'invalid_client' },
        });
      }
      throw new AppTokensError('invalid_client', 'client authentication failed');
    }
    this.lastUsed.record(token.id, now);
    return { app: app!, token };
  }

  /**
   * The client_credentials grant (RFC 6749 §4.4): an access token for `requested` scopes (default:
   * everything the API token may use). Throws `invalid_scope` when a requested scope is unknown
   * or not granted.
   */
  async issueClientCredentials(
    app: AppRecord,
    token: ApiTokenRecord,
    requested: string[] | undefined,
  ): Promise<TokenResponse> {
    const allowed = new GrantedScopes(token.scopes ?? app.scopes);
    let scopes: string[];
    if (requested === undefined) {
      scopes = [...allowed.list];
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
      scopes = requested;
    }
    const minted = await this.accessTokens.mint({ app, apiToken: token, scopes, audience: this.options.audience });
    this.events.emit({
      type: 'access_token.issued',
      tenantId: app.tenantId,
      appId: app.id,
      tokenId: token.id,
      actorId: app.id,
      data: { jti: minted.jti, scope: scopes.join(' '), expiresAt: minted.expiresAt.toISOString() },
    });
    return { access_token: minted.jwt, token_type: 'Bearer', expires_in: minted.expiresIn, scope: scopes.join(' ') };
  }

  // ---- bearer verification ----------------------------------------------------------------------

  /**
   * The hot path: a cached, unexpired, unrevoked credential, or `undefined` (verify it with
   * {@link verifyBearer}). No I/O, no allocation.
   */
  cachedBearer(value: string): InternalAuthInfo | undefined {
    const key = this.secrets.looksLikeOurs(value) ? `sha256:${hashSecret(value)}` : value;
    const info = this.#cache.get(key);
    if (info === undefined) return undefined;
    if (this.options.advanced.now().getTime() >= (this.#cacheUntil.get(info) ?? 0)) {
      this.#cache.delete(key);
      return undefined;
    }
    if (this.revocation.isRevoked(info.appId, info.apiTokenId, info.claims.jti)) return undefined;
    if (info.kind === 'api_token') this.lastUsed.record(info.apiTokenId, this.options.advanced.now());
    return info;
  }

  /** Verify a bearer credential (JWT, or API token when enabled), cache it, and check revocation. */
  async verifyBearer(value: string): Promise<InternalAuthInfo> {
    if (value.length > 8192) throw new AppTokensError('invalid_token', 'the access token is too large');
    const nowMs = this.options.advanced.now().getTime();
    let info: InternalAuthInfo;
    let key: string;
    let until: number;
    if (this.secrets.looksLikeOurs(value)) {
      if (!this.options.acceptApiTokens) {
        throw new AppTokensError('invalid_token', 'API tokens are not accepted as bearer tokens here; use an access token');
      }
      const hash = hashSecret(value);
      info = await this.#verifyApiToken(value, hash);
      key = `sha256:${hash}`;
      until = Math.min(nowMs + API_TOKEN_CACHE_MS, info.expiresAt?.getTime() ?? Infinity);
    } else {
      info = await this.accessTokens.verify(value, this.options.audience);
      key = value;
      until = info.expiresAt!.getTime() + this.options.advanced.clockTolerance * 1000;
    }
    if (this.revocation.isRevoked(info.appId, info.apiTokenId, info.claims.jti)) {
      throw new AppTokensError('invalid_token', 'the access token has been revoked');
    }
    this.#cacheUntil.set(info, until);
    this.#cache.set(key, info);
    return info;
  }

  async #verifyApiToken(value: string, hash: string): Promise<InternalAuthInfo> {
    if (!this.secrets.isWellFormed(value)) throw new AppTokensError('invalid_token', 'the API token is malformed');
    const { store, advanced } = this.options;
    const token = await store.findApiTokenByHash(hash);
    const now = advanced.now();
    if (!token || token.revokedAt !== null) throw new AppTokensError('invalid_token', 'the API token is not valid');
    if (token.expiresAt && token.expiresAt <= now) throw new AppTokensError('invalid_token', 'the API token expired');
    const app = await store.getApp(token.tenantId, token.appId);
    if (!app) throw new AppTokensError('invalid_token', 'the API token is not valid');
    this.lastUsed.record(token.id, now);
    const scopes = token.scopes ?? app.scopes;
    return makeAuthInfo({
      kind: 'api_token',
      tenantId: app.tenantId,
      appId: app.id,
      clientId: app.id,
      apiTokenId: token.id,
      scopes,
      claims: Object.freeze({
        ...app.customClaims,
        iss: this.options.issuer,
        sub: app.id,
        client_id: app.id,
        scope: scopes.join(' '),
        tenant_id: app.tenantId,
        app_name: app.name,
        api_token_id: token.id,
        ...(token.expiresAt ? { exp: Math.floor(token.expiresAt.getTime() / 1000) } : {}),
      }),
      expiresAt: token.expiresAt,
    });
  }

  // ---- helpers ----------------------------------------------------------------------------------

  /** A tombstone kept until the last access token it could kill has expired (plus leeway). */
  tombstone(kind: Tombstone['kind'], id: string, tenantId: string): Tombstone {
    const now = this.options.advanced.now();
    const keepMs = (this.options.accessTokenTtl + this.options.advanced.clockTolerance) * 1000 + API_TOKEN_CACHE_MS;
    return { kind, id, tenantId, createdAt: now, expiresAt: new Date(now.getTime() + keepMs) };
  }
}

export { GRANTED };
