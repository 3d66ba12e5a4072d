/**
 * `private_key_jwt` client authentication (RFC 7523 §2.2 and §3, RFC 7521 §4.2), with the audience
 * rule of draft-ietf-oauth-rfc7523bis (the answer to the 2025 audience-injection disclosure): the
 * client signs a short-lived JWT with a private key whose public half it registered; we check it
 * and never see a secret.
 *
 * Checks, in order: one compact JWS of bounded size; `iss` = `sub` = the client id (= `client_id`
 * when sent); a client that authenticates this way; a header without embedded keys
 * or `crit`, `typ` absent, `JWT` or `client-authentication+jwt`; the key by `kid` (else every key
 * of the header's alg), whose own `alg` the header must name; the signature; `aud` = the issuer
 * identifier as one string (an array is refused; the token endpoint's URL too, unless the host opts
 * in with `clientAssertion.audience`); `exp` required and at most `clientAssertion.maxLifetime`
 * (default 5 minutes) ahead, and after `iat` by no more; `jti` required and single-use until `exp`, recorded in
 * the store so every instance refuses a replay. Every failure is the same `invalid_client`, is
 * audited with its reason, and counts for the request's source only: a signature cannot be guessed,
 * so nothing is keyed on the assertion's unverified `iss` (which anyone can write), and a source
 * that fails too often is refused with 429 before its assertion is even decoded.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose';
import type { AppRecord } from '../store.js';
import { auditRefusal, clientAuthFailed, type AuthenticatedClient, type ClientAuthMethodHandler, type ClientAuthRequest } from './client-auth.js';
import { ASSERTION_ALGS } from './client-keys.js';
import { sourceKey } from './limits.js';
import type { AppTokensService } from './service.js';

/** RFC 7523 §2.2: the `client_assertion_type` of a JWT assertion. */
export const JWT_BEARER_ASSERTION = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** Longest lifetime an assertion may have by default, seconds (option `clientAssertion.maxLifetime`). */
export const MAX_ASSERTION_LIFETIME = 300;

/** The metadata's `token_endpoint` (`endpointUrl(issuer, '/oauth/token')` in http/routes/well-known.ts). */
function tokenEndpointOf(issuer: string): string {
  return `${issuer.replace(/\/+$/, '')}/oauth/token`;
}

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const TYPES = new Set(['jwt', 'client-authentication+jwt', 'application/client-authentication+jwt']);

class Refused extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

export class PrivateKeyJwtMethod implements ClientAuthMethodHandler {
  readonly #s: AppTokensService;

  constructor(service: AppTokensService) {
    this.#s = service;
  }

  async authenticate(request: ClientAuthRequest): Promise<AuthenticatedClient> {
    if (request.method !== 'private_key_jwt') throw clientAuthFailed();
    const s = this.#s;
    const { assertion } = request;
    const source = sourceKey(request.source);
    await s.lockout?.assertOpen(source);
    // Who it claims to be, unverified: only to find the client.
    let claimed: JWTPayload | undefined;
    try {
      if (assertion.length <= 8192 && COMPACT_JWS.test(assertion)) claimed = decodeJwt(assertion);
    } catch {
      claimed = undefined;
    }
    const clientId = typeof claimed?.iss === 'string' ? claimed.iss.slice(0, 128) : request.clientId?.slice(0, 128);
    let app: AppRecord | undefined;
    try {
      if (claimed === undefined || clientId === undefined) throw new Refused('malformed_assertion');
      if (claimed.sub !== claimed.iss) throw new Refused('sub_differs_from_iss');
      if (request.clientId !== undefined && request.clientId !== claimed.iss) throw new Refused('client_id_differs_from_iss');
      app = await s.options.store.getAppByClientId(clientId);
      if (app === undefined) throw new Refused('unknown_client');
      if (app.tokenEndpointAuthMethod !== 'private_key_jwt') throw new Refused('client_uses_another_method');
      const keyId = await this.#verify(app, assertion);
      return { app, credential: { id: keyId.id, scopes: null, expiresAt: keyId.expiresAt }, method: 'private_key_jwt' };
    } catch (error) {
      const reason = error instanceof Refused ? error.reason : 'invalid_assertion';
      if (app) auditRefusal(s, app, { method: 'private_key_jwt', detail: reason });
      await s.lockout?.failed(source);
      throw clientAuthFailed(app);
    }
  }

  /** The key that signed a valid, fresh, unreplayed assertion of `app`; throws {@link Refused}. */
  async #verify(app: AppRecord, assertion: string): Promise<{ id: string; expiresAt: Date | null }> {
    const s = this.#s;
    const { issuer, advanced, clientAssertion } = s.options;
    const tolerance = advanced.clockTolerance;
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(assertion);
    } catch {
      throw new Refused('malformed_header');
    }
    // RFC 8725 §3.1 / §3.10: never a key from the token itself; no extension we do not know.
    if ('jwk' in header || 'jku' in header || 'x5u' in header || 'x5c' in header || 'crit' in header) throw new Refused('header_names_a_key');
    if (typeof header.alg !== 'string' || !(ASSERTION_ALGS as readonly string[]).includes(header.alg)) throw new Refused('alg_not_allowed');
    if (header.typ !== undefined && (typeof header.typ !== 'string' || !TYPES.has(header.typ.toLowerCase()))) throw new Refused('wrong_typ');
    const kid = typeof header.kid === 'string' ? header.kid : undefined;
    const now = advanced.now();
    const candidates = (await s.clientKeys.usable(app, kid, now)).filter((k) => k.alg === header.alg);
    if (candidates.length === 0) throw new Refused(kid === undefined ? 'no_key_for_alg' : 'unknown_kid');
    let payload: JWTPayload | undefined;
    let used: (typeof candidates)[number] | undefined;
    for (const key of candidates.slice(0, 5)) {
      try {
        ({ payload } = await jwtVerify(assertion, key.key, {
          algorithms: [key.alg],
          issuer: app.id,
          subject: app.id,
          clockTolerance: tolerance,
          currentDate: now,
          requiredClaims: ['iss', 'sub', 'aud', 'exp', 'jti'],
        }));
        used = key;
        break;
      } catch {
        // the next key of that alg, if any
      }
    }
    if (payload === undefined || used === undefined) throw new Refused('signature_or_claims_invalid');
    // draft-ietf-oauth-rfc7523bis §4: the audience is the issuer identifier, alone, as a string.
    // RFC 7523 §3's token endpoint URL (what Authlib and iddawc send) only on the host's opt-in,
    // and still as one string: an array could carry another server's audience beside ours.
    if (typeof payload.aud !== 'string') throw new Refused('aud_not_one_string');
    if (payload.aud !== issuer) {
      if (clientAssertion.audience !== 'issuer-or-token-endpoint') throw new Refused('aud_not_the_issuer');
      if (payload.aud !== tokenEndpointOf(issuer)) throw new Refused('aud_not_the_issuer_or_token_endpoint');
    }
    const maxLifetime = clientAssertion.maxLifetime;
    const nowSeconds = now.getTime() / 1000;
    const exp = payload.exp!;
    if (!Number.isFinite(exp) || exp > nowSeconds + maxLifetime + tolerance) throw new Refused('lives_too_long');
    if (payload.iat !== undefined) {
      if (typeof payload.iat !== 'number' || payload.iat > nowSeconds + tolerance) throw new Refused('iat_in_the_future');
      if (exp - payload.iat > maxLifetime) throw new Refused('lives_too_long');
    }
    if (typeof payload.jti !== 'string' || payload.jti.length === 0 || payload.jti.length > 256) throw new Refused('bad_jti');
    // RFC 7523 §3 item 7: single use, kept until the assertion could no longer pass anyway.
    // The jti is the client's text (any character, NUL included): the store gets its digest.
    const jtiKey = `${app.id}:${createHash('sha256').update(payload.jti).digest('base64url')}`;
    const fresh = await s.options.store.useOnce('client_assertion', jtiKey, new Date((exp + tolerance) * 1000));
    if (!fresh) throw new Refused('jti_replayed');
    return { id: used.id, expiresAt: used.expiresAt };
  }
}
