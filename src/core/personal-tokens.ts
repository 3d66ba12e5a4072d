/**
 * Personal tokens (issue 13): API tokens a host user creates that act as that user. They belong
 * to the user's personal client (one per tenant and user, id `pat_…`, never listed as an app), so
 * every door of the library — the token endpoint, refresh, revocation, the bearer path, reuse
 * detection, the lockout, tombstones — treats them as it treats any client's tokens. What differs:
 * their scopes are at most the user's when created, and are intersected with the user's current
 * scopes (`management.userScopes`) every time one is used; access tokens minted from them carry
 * `sub` = the user (RFC 9068 §2.2).
 *
 * @module
 */
import { decodeCursor, type ApiTokenRecord, type AppRecord } from '../store.js';
import { PERSONAL_CLIENT_PREFIX } from './access-tokens.js';
import { AppTokensError } from './errors.js';
import {
  checkId,
  checkLimit,
  checkName,
  invalid,
  notFound,
  tenantOf,
  type AppManagement,
  type CreateTokenInput,
  type PageView,
  type Principal,
} from './management.js';
import { GrantedScopes, printable } from './scopes.js';
import { randomId } from './secrets.js';
import type { AppTokensService } from './service.js';
import type { ApiTokenView } from './views.js';

/** A personal token just created: its metadata, its value (shown once), and the client id to use it with. */
export interface IssuedPersonalToken {
  token: ApiTokenView;
  value: string;
  /** The user's personal client: `client_id` at the token endpoint. */
  clientId: string;
}

/** Host user ids: printable ASCII without spaces, 1–128 characters. */
const USER_ID = /^[\x21-\x7e]{1,128}$/;

function forbidden(message: string, field?: string): AppTokensError {
  return new AppTokensError('forbidden', message, field ? { field } : {});
}

export class PersonalTokens {
  readonly #s: AppTokensService;
  readonly #m: AppManagement;

  constructor(service: AppTokensService, management: AppManagement) {
    this.#s = service;
    this.#m = management;
  }

  /**
   * Create a personal token for the signed-in user (`actorId`). Its scopes default to everything
   * the user holds now, and may not exceed it (nor the principal's scopes).
   */
  create(p: Principal, input: CreateTokenInput = {}): Promise<IssuedPersonalToken> {
    return this.#m.audited(p, 'create_personal_token', null, async () => {
      const { tenantId, userId } = this.#user(p);
      const user = await this.#s.userScopes.get(tenantId, userId, true);
      if (user === null) throw forbidden('management.userScopes says this user does not exist: no personal token can be made');
      const principal = p.scopes === null ? null : new GrantedScopes(p.scopes);
      const now = this.#s.options.advanced.now();
      let scopes: string[];
      if (input.scopes !== undefined) {
        scopes = this.#m.scopeList(input.scopes, 'scopes');
        if (scopes.length === 0) throw invalid('scopes', 'must list at least one scope, or be omitted for all of yours');
        const missing = scopes.filter((s) => !user.grants(s) || (principal !== null && !principal.grants(s)));
        if (missing.length > 0) {
          throw forbidden(`scopes: you cannot give a personal token ${missing.map((s) => `'${printable(s)}'`).join(', ')}, which you do not hold`, 'scopes');
        }
      } else {
        // A snapshot of what the user holds now: later grants to the user do not widen the token.
        scopes = this.#s.catalogue.retain(user.list.filter((s) => principal === null || principal.grants(s))) as string[];
        if (scopes.length === 0) throw forbidden('scopes: you hold no scope of this server, so a personal token would grant nothing', 'scopes');
      }
      const name = input.name === undefined ? 'personal' : checkName(input.name, 'name');
      const ttl = this.#m.lifetime(input.expiresIn, 'expiresIn');
      const expiresAt = ttl === null ? null : new Date(now.getTime() + ttl * 1000);
      const { store, limits } = this.#s.options;
      let client = await store.getPersonalApp(tenantId, userId);
      let record: ApiTokenRecord;
      let value: string;
      if (client === undefined) {
        const app = this.#newClient(tenantId, userId, now);
        ({ record, value } = this.#m.newRecord(app.id, tenantId, name, scopes, now, expiresAt));
        try {
          await store.createApp(app, [record]);
          client = app;
        } catch (error) {
          // Two first tokens of one user at once: the other request made the client; join it.
          if (!(error instanceof AppTokensError) || error.code !== 'conflict') throw error;
          client = await store.getPersonalApp(tenantId, userId);
          if (client === undefined) throw error;
          ({ record, value } = this.#m.newRecord(client.id, tenantId, name, scopes, now, expiresAt));
          await store.createApiToken(record, { maxActive: limits.tokensPerApp });
        }
      } else {
        ({ record, value } = this.#m.newRecord(client.id, tenantId, name, scopes, now, expiresAt));
        await store.createApiToken(record, { maxActive: limits.tokensPerApp });
      }
      this.#s.events.emit({
        type: 'token.created',
        tenantId,
        appId: client.id,
        tokenId: record.id,
        actorId: userId,
        data: { name: record.name, personal: true, scopes },
      });
      return { token: this.#m.tokenView(record, now), value, clientId: client.id };
    });
  }

  /** One page of the user's live personal tokens (metadata only), oldest first. */
  list(p: Principal, options: { limit?: number | undefined; cursor?: string | undefined } = {}): Promise<PageView<ApiTokenView>> {
    return this.#m.audited(p, 'list_personal_tokens', null, async () => {
      const { tenantId, userId } = this.#user(p);
      const limit = checkLimit(options.limit);
      const client = await this.#s.options.store.getPersonalApp(tenantId, userId);
      if (client === undefined) {
        // Validate the cursor all the same, so a bad one is a 400 whether or not the user has tokens.
        if (options.cursor !== undefined && decodeCursor(options.cursor) === undefined) throw invalid('cursor', 'The cursor is not valid.');
        return { items: [], nextCursor: null };
      }
      return this.#m.liveTokensOf(client, { limit, cursor: options.cursor });
    });
  }

  /** Delete one of the user's personal tokens: it and the access tokens it minted die at once. */
  delete(p: Principal, tokenId: string): Promise<void> {
    return this.#m.audited(p, 'delete_personal_token', null, async () => {
      const { tenantId, userId } = this.#user(p);
      checkId(tokenId, 'token');
      const { store, advanced } = this.#s.options;
      const client = await store.getPersonalApp(tenantId, userId);
      const token = client === undefined ? undefined : await store.getApiToken(tenantId, tokenId);
      // Another user's token (even of the same tenant) is as absent as an unknown one.
      if (client === undefined || token === undefined || token.appId !== client.id || token.revokedAt !== null) throw notFound('token', tokenId);
      const revoked = await store.revokeApiTokens(tenantId, [tokenId], 'deleted', [this.#s.tombstone('api_token', tokenId, tenantId)], advanced.now());
      if (revoked.length === 0) throw notFound('token', tokenId);
      this.#s.events.emit({ type: 'token.deleted', tenantId, appId: client.id, tokenId, actorId: userId, data: { personal: true } });
    });
  }

  /**
   * Revoke every personal token of a user at once, with every access token they minted, on every
   * instance (the personal client's tombstone): for an offboarded user. Returns whether the user
   * had a personal client.
   */
  async revokeUser(tenantId: string, userId: string): Promise<boolean> {
    const p: Principal = { tenantId, scopes: null, actorId: 'users.revoke' };
    const tenant = tenantOf(p);
    if (typeof userId !== 'string' || !USER_ID.test(userId)) throw invalid('userId', 'must be 1–128 printable ASCII characters without spaces');
    const { store } = this.#s.options;
    await this.#s.ready();
    this.#s.userScopes.forget(tenant, userId);
    const client = await store.getPersonalApp(tenant, userId);
    if (client === undefined) return false;
    const deleted = await store.deleteApp(tenant, client.id, this.#s.tombstone('app', client.id, tenant));
    if (deleted) this.#s.events.emit({ type: 'app.deleted', tenantId: tenant, appId: client.id, actorId: 'users.revoke', data: { personal: true, userId } });
    return deleted;
  }

  /** The signed-in host user: personal tokens need one (`actorId`) and `management.userScopes`. */
  #user(p: Principal): { tenantId: string; userId: string } {
    if (!this.#s.userScopes.enabled) {
      throw forbidden('personal tokens are not enabled on this server: the host sets management.userScopes to enable them');
    }
    const tenantId = tenantOf(p);
    const userId = p.actorId;
    if (typeof userId !== 'string' || !USER_ID.test(userId)) {
      throw forbidden('personal tokens belong to a host user: management.resolvePrincipal must give the user id as actorId (1–128 printable ASCII characters)');
    }
    return { tenantId, userId };
  }

  #newClient(tenantId: string, userId: string, now: Date): AppRecord {
    return {
      id: randomId(PERSONAL_CLIENT_PREFIX.slice(0, -1)),
      tenantId,
      name: `Personal tokens of ${printable(userId)}`.slice(0, 100),
      description: null,
      scopes: [],
      roles: [],
      ownerUserId: userId,
      customClaims: {},
      createdAt: now,
      updatedAt: now,
    };
  }
}
