/**
 * Client authentication at the OAuth endpoints (RFC 6749 §2.3), behind one interface: what the
 * request presented (a client secret, or a signed assertion) goes in, an authenticated client and
 * the credential that proved it come out — or `invalid_client`, the same for every failure, after
 * a failure count for the request's source (`ClientLockout`: a source that failed too often is
 * refused with 429 before its credential is checked; nobody else is). The methods live in their own modules: `client-secret.ts` (an API token as the
 * secret, `client_secret_basic` / `client_secret_post`) and `private-key-jwt.ts` (RFC 7523 §2.2).
 *
 * @module
 */
import type { AppRecord, ClientAuthMethod } from '../store.js';
import { AppTokensError } from './errors.js';
import type { AppTokensService } from './service.js';
import { markRefusal, refusalOf } from './signals.js';

/**
 * What proved the client: an API token (a client secret) or one of its public keys. Access tokens
 * name its `id` as `api_token_id`, so revoking the credential (deleting the token or the key)
 * kills them.
 */
export interface ClientCredential {
  id: string;
  /** A subset of the app's scopes, or `null` for all of them. */
  scopes: string[] | null;
  /** Access tokens never outlive it; `null`: no expiry. */
  expiresAt: Date | null;
}

/** An authenticated client. */
export interface AuthenticatedClient {
  app: AppRecord;
  credential: ClientCredential;
  method: ClientAuthMethod;
}

/** What the request presented, after the protocol checks of the endpoint. */
export type ClientAuthRequest = (
  | { method: 'client_secret_basic' | 'client_secret_post'; clientId: string; secret: string }
  | {
      method: 'private_key_jwt';
      /** The form's `client_id`, when sent: it must equal the assertion's `iss` and `sub`. */
      clientId: string | undefined;
      assertion: string;
    }
) & {
  /**
   * Where the request came from (Express's `req.ip`, under the host's `trust proxy`): failures are
   * throttled per source (`clientLockout`). Absent: the one source `unknown`.
   */
  source?: string | undefined;
  /** The endpoint (`oauth.token`, `oauth.introspect`, `oauth.revoke`): told to observers of a failure. */
  door?: string | undefined;
};

/** One client authentication method. */
export interface ClientAuthMethodHandler {
  authenticate(request: ClientAuthRequest): Promise<AuthenticatedClient>;
}

/**
 * The failure of every method: indistinguishable, whatever went wrong (RFC 6749 §5.2). `app`: the
 * client the request named, when it exists (its usage counts the failure; never shown to the caller).
 */
export function clientAuthFailed(app?: AppRecord): AppTokensError {
  const error = new AppTokensError('invalid_client', 'client authentication failed');
  return app === undefined ? error : markRefusal(error, { reason: 'other', tenantId: app.tenantId, appId: app.id, apiTokenId: null });
}

/** The methods {@link ClientAuthenticator} dispatches to. */
export interface ClientAuthMethods {
  /** `client_secret_basic` / `client_secret_post`; caches verified secrets, hence `forget`. */
  secret: ClientAuthMethodHandler & { forget(appId: string): void };
  privateKeyJwt: ClientAuthMethodHandler;
}

/** Audit a failed client authentication in the tenant of the client it claimed to be. */
export function auditRefusal(service: AppTokensService, app: AppRecord, data: Record<string, unknown>, reason = 'invalid_client'): void {
  service.events.emit({ type: 'access_token.refused', outcome: 'failure', tenantId: app.tenantId, appId: app.id, actorId: app.id, data: { reason, ...data } });
}

/**
 * Dispatches to the method the request used and applies what every method shares: the per-source
 * throttle (checked before any work, counted on failure by the method) and the personal-client rule.
 */
export class ClientAuthenticator {
  readonly #s: AppTokensService;
  readonly #methods: ClientAuthMethods;

  constructor(service: AppTokensService, methods: ClientAuthMethods) {
    this.#s = service;
    this.#methods = methods;
  }

  async authenticate(request: ClientAuthRequest): Promise<AuthenticatedClient> {
    try {
      const client = await (request.method === 'private_key_jwt' ? this.#methods.privateKeyJwt : this.#methods.secret).authenticate(request);
      return await this.#withLiveOwner(client);
    } catch (error) {
      if (error instanceof AppTokensError && error.code === 'invalid_client') {
        // The app only when it exists (a client id nobody registered counts in no series).
        const named = refusalOf(error);
        this.#s.signals.clientAuthFailed({ tenantId: named?.tenantId ?? null, appId: named?.appId ?? null, method: request.method, door: request.door ?? 'oauth' });
      }
      throw error;
    }
  }

  /** Forget cached credentials of an app whose record changed (name, claims) in this process. */
  forget(appId: string): void {
    this.#methods.secret.forget(appId);
  }

  /**
   * A personal client whose user is gone (`management.userScopes` says `null`) fails client
   * authentication like a wrong secret: the token is dead while the host says so.
   */
  async #withLiveOwner(client: AuthenticatedClient): Promise<AuthenticatedClient> {
    const { app } = client;
    if (!app.ownerUserId) return client;
    if ((await this.#s.userScopes.get(app.tenantId, app.ownerUserId)) !== null) return client;
    auditRefusal(this.#s, app, {}, 'user_gone');
    throw clientAuthFailed(app);
  }
}
