/**
 * The service layer: every operation the routers and the programmatic API perform. Routers call
 * this, never the store.
 *
 * @module
 */
import { timingSafeEqual } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { ApiTokenRecord, AppRecord, Tombstone } from '../store.js';
import { AccessTokens, GRANTED, makeAuthInfo, RESERVED_CLAIMS, type InternalAuthInfo } from './access-tokens.js';
import { AppTokensError } from './errors.js';
import { KeyRing } from './keys.js';
import { LastUsedBatcher } from './last-used.js';
import { warnOnce, type ResolvedOptions } from './options.js';
import { RevocationView } from './revocation.js';
import { GrantedScopes, ScopeCatalogue, printable } from './scopes.js';
import { DUMMY_HASH, SecretCodec, hashSecret, randomId } from './secrets.js';
import { appView, tokenView, type ApiTokenView, type AppView, type IssuedApiToken } from './views.js';

/** Input of {@link AppTokensService.createApp}. */
export interface CreateAppInput {
  tenantId: string;
  name: string;
  description?: string | null | undefined;
  /** Fixed for the app's life; catalogue scopes or wildcards (`storage:*`). */
  scopes: string[];
  customClaims?: Record<string, unknown> | undefined;
  /** The first API token. */
  token?: CreateTokenInput | undefined;
}

/** Input of {@link AppTokensService.createToken}. */
export interface CreateTokenInput {
  /** Default: `default`. */
  name?: string | undefined;
  /** Lifetime in seconds; default and maximum come from the `apiTokenTtl` option. */
  expiresIn?: number | undefined;
  /** A subset of the app's scopes; default: all of them. */
  scopes?: string[] | undefined;
}

/** The result of creating an app: the app, its first token, and that token's value (shown once). */
export interface CreatedApp extends IssuedApiToken {
  app: AppView;
}

/** A successful client_credentials grant (RFC 6749 §4.4.3, §5.1). */
export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  scope: string;
}

const TENANT_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const MAX_NAME = 100;
const MAX_DESCRIPTION = 1000;
const MAX_CUSTOM_CLAIMS_BYTES = 4096;
/** How long an API token verified as a bearer is trusted from cache before re-reading it. */
const API_TOKEN_CACHE_MS = 60_000;

function invalid(field: string, message: string): AppTokensError {
  return new AppTokensError('validation_failed', `${field}: ${message}`, { field });
}

export class AppTokensService {
  readonly options: ResolvedOptions;
  readonly catalogue: ScopeCatalogue;
  readonly secrets: SecretCodec;
  readonly keys: KeyRing;
  readonly accessTokens: AccessTokens;
  readonly revocation: RevocationView;
  readonly lastUsed: LastUsedBatcher;
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

  async close(): Promise<void> {
    this.revocation.stop();
    await this.lastUsed.close();
  }

  // ---- management -----------------------------------------------------------------------------

  /** Create an app and its first API token. The value is returned once and never again. */
  async createApp(input: CreateAppInput): Promise<CreatedApp> {
    const tenantId = this.#tenant(input.tenantId);
    const now = this.options.advanced.now();
    const scopes = this.#appScopes(input.scopes);
    const app: AppRecord = {
      id: randomId('app'),
      tenantId,
      name: this.#name(input.name, 'name'),
      description: this.#description(input.description),
      scopes,
      customClaims: this.#customClaims(input.customClaims),
      createdAt: now,
      updatedAt: now,
    };
    const { record, value } = this.#newToken(app, input.token ?? {}, 'token', now);
    await this.options.store.createApp(app, [record]);
    return { app: appView(app), token: tokenView(record), value };
  }

  /** Issue another API token for an app. */
  async createToken(tenantId: string, appId: string, input: CreateTokenInput = {}): Promise<IssuedApiToken> {
    const app = await this.#app(tenantId, appId);
    const { record, value } = this.#newToken(app, input, '', this.options.advanced.now());
    await this.options.store.createApiToken(record);
    return { token: tokenView(record), value };
  }

  /** The app, or `not_found` (also for another tenant's app). */
  async getApp(tenantId: string, appId: string): Promise<AppView & { tokens: ApiTokenView[] }> {
    const app = await this.#app(tenantId, appId);
    const tokens = await this.options.store.listApiTokens(app.tenantId, app.id);
    return { ...appView(app), tokens: tokens.filter((t) => t.revokedAt === null).map(tokenView) };
  }

  /** Delete an app: every token of it, and every access token they minted, dies at once. */
  async deleteApp(tenantId: string, appId: string): Promise<void> {
    const deleted = await this.options.store.deleteApp(tenantId, appId, this.#tombstone('app', appId, tenantId));
    if (!deleted) throw new AppTokensError('not_found', `app ${printable(appId)} not found`, { field: 'id' });
  }

  /** Delete an API token: it and every access token it minted die at once. */
  async deleteToken(tenantId: string, appId: string, tokenId: string): Promise<void> {
    const token = await this.options.store.getApiToken(tenantId, tokenId);
    if (!token || token.appId !== appId || token.revokedAt !== null) {
      throw new AppTokensError('not_found', `token ${printable(tokenId)} not found`, { field: 'tokenId' });
    }
    await this.options.store.revokeApiTokens(
      tenantId,
      [tokenId],
      'deleted',
      [this.#tombstone('api_token', tokenId, tenantId)],
      this.options.advanced.now(),
    );
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
    if (!ok) throw new AppTokensError('invalid_client', 'client authentication failed');
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

  async #app(tenantId: string, appId: string): Promise<AppRecord> {
    const app = await this.options.store.getApp(tenantId, appId);
    if (!app) throw new AppTokensError('not_found', `app ${printable(appId)} not found`, { field: 'id' });
    return app;
  }

  #tombstone(kind: Tombstone['kind'], id: string, tenantId: string): Tombstone {
    const now = this.options.advanced.now();
    // Kept until the last access token it could kill has expired (plus leeway).
    const keepMs = (this.options.accessTokenTtl + this.options.advanced.clockTolerance) * 1000 + API_TOKEN_CACHE_MS;
    return { kind, id, tenantId, createdAt: now, expiresAt: new Date(now.getTime() + keepMs) };
  }

  #newToken(
    app: AppRecord,
    input: CreateTokenInput,
    fieldPrefix: string,
    now: Date,
  ): { record: ApiTokenRecord; value: string } {
    const f = (name: string) => (fieldPrefix ? `${fieldPrefix}.${name}` : name);
    const { apiTokenTtl } = this.options;
    let ttl: number | null = apiTokenTtl.default;
    if (input.expiresIn !== undefined) {
      if (!Number.isSafeInteger(input.expiresIn) || input.expiresIn < 60 || input.expiresIn > apiTokenTtl.max) {
        throw invalid(f('expiresIn'), `must be a whole number of seconds between 60 and ${apiTokenTtl.max}`);
      }
      ttl = input.expiresIn;
    }
    let scopes: string[] | null = null;
    if (input.scopes !== undefined) {
      scopes = this.#scopeList(input.scopes, f('scopes'));
      const missing = new GrantedScopes(app.scopes).missing(scopes);
      if (missing.length > 0) {
        throw invalid(f('scopes'), `not within the app's scopes: ${missing.map(printable).join(' ')}`);
      }
    }
    const secret = this.secrets.generate();
    return {
      value: secret.value,
      record: {
        id: randomId('tok'),
        appId: app.id,
        tenantId: app.tenantId,
        name: input.name === undefined ? 'default' : this.#name(input.name, f('name')),
        hash: secret.hash,
        hint: secret.hint,
        scopes,
        createdAt: now,
        expiresAt: ttl === null ? null : new Date(now.getTime() + ttl * 1000),
        lastUsedAt: null,
        revokedAt: null,
        revokedReason: null,
        replacedBy: null,
      },
    };
  }

  #tenant(value: unknown): string {
    if (typeof value !== 'string' || !TENANT_ID.test(value)) {
      throw invalid('tenantId', 'must be 1–128 letters, digits, ".", "_", ":" or "-", starting with a letter or digit');
    }
    return value;
  }

  #name(value: unknown, field: string): string {
    if (typeof value !== 'string') throw invalid(field, 'must be a string');
    const name = value.trim();
    if (name.length === 0 || name.length > MAX_NAME) throw invalid(field, `must be 1–${MAX_NAME} characters`);
    if (/[\x00-\x1f\x7f]/.test(name)) throw invalid(field, 'must not contain control characters');
    return name;
  }

  #description(value: unknown): string | null {
    if (value === undefined || value === null) return null;
    if (typeof value !== 'string') throw invalid('description', 'must be a string or null');
    if (value.length > MAX_DESCRIPTION) throw invalid('description', `must be at most ${MAX_DESCRIPTION} characters`);
    return value;
  }

  #scopeList(value: unknown, field: string): string[] {
    if (!Array.isArray(value)) throw invalid(field, 'must be an array of scopes');
    value.forEach((s, i) => {
      if (typeof s !== 'string') throw invalid(`${field}[${i}]`, 'must be a string');
    });
    this.catalogue.assertKnown(value as string[], field, 'validation_failed');
    return [...new Set(value as string[])];
  }

  #appScopes(value: unknown): string[] {
    const scopes = this.#scopeList(value, 'scopes');
    if (scopes.length === 0) throw invalid('scopes', 'must list at least one scope');
    return scopes;
  }

  /** Custom claims: a small JSON object that cannot override registered or library claims. */
  #customClaims(value: unknown): Record<string, unknown> {
    if (value === undefined || value === null) return {};
    if (typeof value !== 'object' || Array.isArray(value)) throw invalid('customClaims', 'must be a JSON object');
    let json: string;
    try {
      json = JSON.stringify(value);
    } catch {
      throw invalid('customClaims', 'must be a JSON object');
    }
    if (Buffer.byteLength(json) > MAX_CUSTOM_CLAIMS_BYTES) {
      throw invalid('customClaims', `must be at most ${MAX_CUSTOM_CLAIMS_BYTES} bytes of JSON`);
    }
    for (const key of Object.keys(value)) {
      if (RESERVED_CLAIMS.has(key)) {
        throw invalid(`customClaims.${key}`, 'is a registered claim and cannot be set');
      }
    }
    return JSON.parse(json) as Record<string, unknown>;
  }
}

export { GRANTED };
