/**
 * `client_secret_basic` / `client_secret_post` (RFC 6749 §2.3.1): the client id is the app id, the
 * secret one of its API tokens. An unknown client, a wrong, revoked, expired or malformed secret,
 * and a client that must authenticate by `private_key_jwt` all fail the same way, after the same
 * work.
 *
 * @module
 */
import { timingSafeEqual } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { ApiTokenRecord, AppRecord } from '../store.js';
import { auditRefusal, clientAuthFailed, type AuthenticatedClient, type ClientAuthMethodHandler, type ClientAuthRequest } from './client-auth.js';
import { sourceKey } from './limits.js';
import { DUMMY_HASH, hashSecret } from './secrets.js';
import type { AppTokensService } from './service.js';

/** Client credentials kept verified at once (a bound, not a tuning knob: a few seconds' worth of busy clients). */
const CLIENT_CACHE_MAX = 2_000;

/** A client authenticated by the full path, trusted until `until` (epoch ms). */
interface ClientEntry {
  app: AppRecord;
  token: ApiTokenRecord;
  until: number;
}

export class ClientSecretMethod implements ClientAuthMethodHandler {
  readonly #s: AppTokensService;
  readonly #nowMs: () => number;
  /** Verified client credentials (`advanced.clientCacheTtl`): SHA-256 of the secret → the records. */
  readonly #clients: LRUCache<string, ClientEntry> | undefined;

  constructor(service: AppTokensService, nowMs: () => number) {
    this.#s = service;
    this.#nowMs = nowMs;
    this.#clients = service.options.advanced.clientCacheTtl > 0 ? new LRUCache({ max: CLIENT_CACHE_MAX }) : undefined;
  }

  async authenticate(request: ClientAuthRequest): Promise<AuthenticatedClient> {
    if (request.method === 'private_key_jwt') throw clientAuthFailed();
    const { clientId, secret, method } = request;
    const s = this.#s;
    const { store } = s.options;
    // Throttled per (source, client id) and per source, never per client id alone: a client id is
    // public, and failures from elsewhere must not refuse the holder of the secret.
    const source = sourceKey(request.source);
    await s.lockout?.assertOpen(source, clientId);
    const presentedHex = hashSecret(secret);
    const cached = this.#cached(clientId, presentedHex);
    if (cached !== undefined) return { app: cached.app, credential: cached.token, method };
    const wellFormed = s.secrets.isWellFormed(secret);
    const presented = Buffer.from(presentedHex, 'hex');
    // Both lookups always run, so that an unknown client and a wrong secret take the same path.
    const [app, token] = await Promise.all([
      clientId.length <= 128 ? store.getAppByClientId(clientId) : undefined,
      wellFormed ? store.findApiTokenByHash(presented.toString('hex')) : undefined,
    ]);
    const stored = Buffer.from(token?.hash ?? DUMMY_HASH, 'hex');
    const hashMatches = timingSafeEqual(stored, presented) && token !== undefined;
    const now = s.options.advanced.now();
    const ok =
      hashMatches &&
      app !== undefined &&
      token.appId === app.id &&
      token.tenantId === app.tenantId &&
      token.revokedAt === null &&
      (token.expiresAt === null || token.expiresAt > now) &&
      // A private_key_jwt client has no secret: nothing presented as one may authenticate it.
      app.tokenEndpointAuthMethod !== 'private_key_jwt';
    if (!ok) {
      // The exact value of a token that was refreshed: reuse, whatever door it comes through.
      if (hashMatches && token.revokedAt !== null && app !== undefined && token.appId === app.id) {
        await s.reuse.presented(token, 'client_authentication', app.id);
      }
      // Audit the refusal in the tenant of the client it claimed to be, when that client exists.
      if (app) auditRefusal(s, app, {});
      await s.lockout?.failed(source, clientId);
      throw clientAuthFailed(app);
    }
    s.lastUsed.record(token.id, now);
    this.#clients?.set(presentedHex, { app: app!, token, until: this.#nowMs() + s.options.advanced.clientCacheTtl * 1000 });
    return { app: app!, credential: token, method };
  }

  /**
   * A client authenticated with this very secret within `advanced.clientCacheTtl`, still unrevoked
   * (the revocation view sees a deleted, refreshed or regenerated token and a deleted app at once
   * in this process) and unexpired; `undefined` sends the caller down the full path. The key is the
   * hash of the presented secret, so a hit implies the exact secret that was checked, and a wrong
   * secret always misses: it takes the full, constant-time path.
   */
  #cached(clientId: string, presentedHex: string): { app: AppRecord; token: ApiTokenRecord } | undefined {
    const entry = this.#clients?.get(presentedHex);
    if (entry === undefined) return undefined;
    const { app, token } = entry;
    const nowMs = this.#nowMs();
    if (
      nowMs >= entry.until ||
      app.id !== clientId ||
      (token.expiresAt !== null && token.expiresAt.getTime() <= nowMs) ||
      this.#s.revocation.isRevoked(app.id, token.id) ||
      // Past advanced.revocationMaxStaleness this process may not have heard of a deletion: the
      // full path reads the app and token from the store (or answers 503 while it cannot).
      this.#s.revocation.isStale()
    ) {
      this.#clients!.delete(presentedHex);
      return undefined;
    }
    this.#s.lastUsed.record(token.id, new Date(nowMs));
    return { app, token };
  }

  forget(appId: string): void {
    if (this.#clients === undefined) return;
    for (const [key, entry] of this.#clients.entries()) if (entry.app.id === appId) this.#clients.delete(key);
  }
}
