/**
 * RFC 9068 JWT access tokens: minting and verification.
 *
 * @module
 */
import { errors as joseErrors, jwtVerify, type JWTPayload, type ProtectedHeaderParameters } from 'jose';
import type { AppRecord } from '../store.js';
import { AppTokensError } from './errors.js';
import type { KeyRing } from './keys.js';
import { GrantedScopes } from './scopes.js';
import { randomId } from './secrets.js';
import { markRefusal, type BearerRefusal } from './signals.js';
import { signJwt } from './signer.js';

/**
 * Claims of a verified access token. Hosts add the types of their custom claims by augmentation:
 *
 * @example
 * ```ts
 * declare module 'express-app-tokens' {
 *   interface AuthClaims { plan?: 'free' | 'pro' }
 * }
 * ```
 */
export interface AuthClaims {
  iss?: string;
  sub?: string;
  aud?: string | string[];
  exp?: number;
  iat?: number;
  jti?: string;
  client_id?: string;
  scope?: string;
  tenant_id?: string;
  app_name?: string;
  api_token_id?: string;
  /** RFC 9068 §2.2.3.1: the app's roles (absent when it has none). */
  roles?: string[];
  /** RFC 9449 §6.1: a DPoP-bound token names the SHA-256 thumbprint of its key (absent for a bearer token). */
  cnf?: { jkt: string };
  [claim: string]: unknown;
}

/** What `authenticate()` puts on `req.auth`. */
export interface AuthInfo {
  /** `access_token`: a JWT from the token endpoint; `api_token`: an API token sent directly. */
  kind: 'access_token' | 'api_token';
  tenantId: string;
  /** The app's id, which is also its `client_id`. */
  appId: string;
  clientId: string;
  /** The API token that authenticated (directly, or by minting this access token). */
  apiTokenId: string;
  /**
   * The host user a personal token acts for (its `sub`, RFC 9068 §2.2); `null` when the
   * credential is an app's own.
   */
  userId: string | null;
  /** Granted scopes (wildcards as granted). Use `requireScopes()` rather than reading this by hand. */
  scopes: readonly string[];
  /** The JWT's claims; for an API token, the equivalent claims. */
  claims: Readonly<AuthClaims>;
  /** When this credential stops being valid; `null` for an API token without expiry. */
  expiresAt: Date | null;
  /** The audiences (`aud`) of a JWT; `null` for an API token, which is not audience-bound. */
  audience: readonly string[] | null;
}

/** Internal: the compiled scope set of an AuthInfo, hidden from enumeration and JSON. */
export const GRANTED: unique symbol = Symbol('express-app-tokens.granted');
export type InternalAuthInfo = AuthInfo & { readonly [GRANTED]: GrantedScopes };

/** Build a frozen AuthInfo with its compiled scope set. */
export function makeAuthInfo(info: AuthInfo): InternalAuthInfo {
  const out = { ...info } as AuthInfo & { [GRANTED]?: GrantedScopes };
  Object.defineProperty(out, GRANTED, { value: new GrantedScopes(info.scopes), enumerable: false });
  return Object.freeze(out) as InternalAuthInfo;
}

/** Ids of personal clients start with this (`pat_…`); an app's start with `app_`. */
export const PERSONAL_CLIENT_PREFIX = 'pat_';

/** Claims the host cannot set through custom claims: registered JWT claims and ours. */
export const RESERVED_CLAIMS: ReadonlySet<string> = new Set([
  'iss',
  'sub',
  'aud',
  'exp',
  'nbf',
  'iat',
  'jti',
  'client_id',
  'scope',
  'tenant_id',
  'app_name',
  'api_token_id',
  'roles',
  'act',
  'may_act',
  'cnf',
  'auth_time',
  'acr',
  'amr',
]);

export interface MintInput {
  app: AppRecord;
  /** The API token the new access token descends from (revoking it kills the access token). */
  apiTokenId: string;
  /** The access token never outlives this (the API token's expiry, a subject token's). */
  notAfter: Date | null;
  scopes: readonly string[];
  audience: string;
  /** RFC 9068 §2.2.3.1 `roles`: the app's declared roles (omitted when empty). */
  roles?: readonly string[];
  /** RFC 9449 §6.1: bind the token to a DPoP key (its RFC 7638 thumbprint). */
  cnf?: { jkt: string } | undefined;
}

export interface MintedAccessToken {
  jwt: string;
  jti: string;
  expiresIn: number;
  expiresAt: Date;
}

export interface AccessTokenOptions {
  issuer: string;
  /** Access-token lifetime, seconds. */
  ttl: number;
  /** Leeway for `exp`/`nbf`/`iat`, seconds. */
  clockTolerance: number;
  now: () => Date;
}

/** Mints and verifies our access tokens with the key ring. */
export class AccessTokens {
  readonly #keys: KeyRing;
  readonly #options: AccessTokenOptions;

  constructor(keys: KeyRing, options: AccessTokenOptions) {
    this.#keys = keys;
    this.#options = options;
  }

  /** Sign an RFC 9068 access token. Its lifetime never outlives the API token that minted it. */
  async mint({ app, apiTokenId, notAfter, scopes, audience, roles, cnf }: MintInput): Promise<MintedAccessToken> {
    const nowMs = this.#options.now().getTime();
    const iat = Math.floor(nowMs / 1000);
    let exp = iat + this.#options.ttl;
    if (notAfter) exp = Math.min(exp, Math.floor(notAfter.getTime() / 1000));
    // A credential in its last second would yield a token that is born expired.
    if (exp <= iat) throw new AppTokensError('invalid_grant', 'the credential expires too soon to issue an access token');
    const jti = randomId();
    const key = this.#keys.active;
    // Custom claims first: the registered and library claims below always win.
    const payload: JWTPayload = {
      ...app.customClaims,
      client_id: app.id,
      scope: scopes.join(' '),
      tenant_id: app.tenantId,
      app_name: app.name,
      api_token_id: apiTokenId,
      ...(roles !== undefined && roles.length > 0 ? { roles: [...roles] } : {}),
      ...(cnf !== undefined ? { cnf: { jkt: cnf.jkt } } : {}),
    };
    // node:crypto signing (issue 16); the claims in the order jose's setters added them.
    const jwt = await signJwt({ alg: key.alg, kid: key.kid, typ: 'at+jwt' }, {
      ...payload,
      iss: this.#options.issuer,
      // RFC 9068 §2.2: the client itself, or the host user a personal token acts for.
      sub: app.ownerUserId ?? app.id,
      aud: audience,
      iat,
      exp,
      jti,
    }, key.privateKey);
    return { jwt, jti, expiresIn: exp - iat, expiresAt: new Date(exp * 1000) };
  }

  /**
   * Verify a JWT access token: our keys only, allow-listed algorithms, `typ: at+jwt`, `iss`, `aud`,
   * `exp`/`nbf` with leeway, and the claims we mint. Throws `invalid_token` with a reason.
   */
  async verify(jwt: string, audience: string | readonly string[]): Promise<InternalAuthInfo> {
    // One spelling per token: base64url without padding or whitespace (RFC 7515 §2, §7.1), which
    // jose's lenient decoding would otherwise accept in many variants.
    if (!COMPACT_JWS.test(jwt)) throw invalidToken('the access token is not a compact JWS', 'malformed');
    // Defence in depth (issue 11, finding 10): we mint header and claims with JSON.stringify, so a
    // segment of ours is exactly that; duplicate keys, a BOM, whitespace or odd number spellings
    // (which parsers read differently) mean someone else wrote it.
    const dot = jwt.indexOf('.');
    const header = canonicalJson(jwt.slice(0, dot), 'header') as ProtectedHeaderParameters;
    canonicalJson(jwt.slice(dot + 1, jwt.indexOf('.', dot + 1)), 'claims');
    // RFC 8725 §3.1/§3.10: never take a key from the token itself.
    if ('jwk' in header || 'jku' in header || 'x5u' in header || 'x5c' in header) {
      throw invalidToken('the access token header names its own key; refused', 'malformed');
    }
    if (typeof header.kid !== 'string' || typeof header.alg !== 'string') {
      throw invalidToken('the access token has no kid or alg', 'malformed');
    }
    let key = this.#keys.verificationKey(header.kid);
    if (!key) {
      await this.#keys.reloadForUnknownKid();
      key = this.#keys.verificationKey(header.kid);
      if (!key) throw invalidToken('the access token was not signed by a key of this issuer', 'unknown');
    }
    // RFC 8725 §3.1: the algorithm is the key's, whatever the header claims.
    if (header.alg !== key.alg) throw invalidToken('the access token algorithm does not match its key', 'invalid_signature');
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(jwt, key.publicKey, {
        algorithms: [key.alg],
        issuer: this.#options.issuer,
        audience: audience as string | string[],
        typ: 'at+jwt',
        clockTolerance: this.#options.clockTolerance,
        requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'client_id'],
        currentDate: this.#options.now(),
      }));
    } catch (e) {
      throw attributed(invalidToken(describeJoseError(e)), e);
    }
    const { client_id: clientId, tenant_id: tenantId, api_token_id: apiTokenId, scope, sub, iat, exp, jti } = payload;
    // Nothing we would not have minted: our jti format, an iat that is not in the future, and no
    // lifetime longer than the longest we issue (jose accepts exp: 1e300).
    if (typeof jti !== 'string' || !JTI.test(jti)) throw invalidToken('the access token jti is not one of this issuer');
    const nowSeconds = this.#options.now().getTime() / 1000;
    if (typeof iat !== 'number' || !Number.isSafeInteger(iat) || iat > nowSeconds + this.#options.clockTolerance) {
      throw invalidToken('the access token iat is in the future');
    }
    if (typeof exp !== 'number' || !Number.isSafeInteger(exp) || exp - iat > this.#options.ttl || exp <= iat) {
      throw invalidToken('the access token lifetime is longer than this issuer grants');
    }
    if (
      typeof clientId !== 'string' ||
      typeof tenantId !== 'string' ||
      typeof apiTokenId !== 'string' ||
      typeof scope !== 'string' ||
      // RFC 9068 §2.2: sub is the client, except for a personal client (whose id we mint with
      // PERSONAL_CLIENT_PREFIX), where it is the host user it acts for.
      (sub !== clientId && !(typeof sub === 'string' && sub.length > 0 && clientId.startsWith(PERSONAL_CLIENT_PREFIX)))
    ) {
      throw invalidToken('the access token lacks the claims of this issuer');
    }
    return makeAuthInfo({
      kind: 'access_token',
      tenantId,
      appId: clientId,
      clientId,
      apiTokenId,
      // We sign sub = client_id for an app, the user for a personal client (nobody else signs).
      userId: sub === clientId ? null : (sub as string),
      scopes: scope === '' ? [] : scope.split(' '),
      claims: Object.freeze(payload as AuthClaims),
      expiresAt: new Date((payload.exp as number) * 1000),
      audience: Array.isArray(payload.aud) ? payload.aud : [payload.aud as string],
    });
  }
}

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
/** {@link randomId} without a prefix: 22 base62 characters. */
const JTI = /^[0-9A-Za-z]{22}$/;
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** A JOSE segment decoded as JSON, refused unless it is valid UTF-8 in JSON.stringify's own spelling. */
function canonicalJson(segment: string, what: 'header' | 'claims'): Record<string, unknown> {
  let text: string;
  let value: unknown;
  try {
    text = UTF8.decode(Buffer.from(segment, 'base64url'));
    value = JSON.parse(text);
  } catch {
    throw invalidToken(`the access token ${what} is not JSON`, 'malformed');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalidToken(`the access token ${what} is not a JSON object`, 'malformed');
  if (JSON.stringify(value) !== text) throw invalidToken(`the access token ${what} is not in the form this issuer writes`, 'malformed');
  return value as Record<string, unknown>;
}

function invalidToken(message: string, reason: BearerRefusal = 'other'): AppTokensError {
  return markRefusal(new AppTokensError('invalid_token', message), { reason, tenantId: null, appId: null, apiTokenId: null });
}

/**
 * Usage attribution of a jose failure: jose checks the claims only after the signature verified,
 * so the payload of a claim failure (expired, wrong audience) is ours and names its app; a
 * signature failure names nobody.
 */
function attributed(error: AppTokensError, cause: unknown): AppTokensError {
  if (cause instanceof joseErrors.JWSSignatureVerificationFailed) {
    return markRefusal(error, { reason: 'invalid_signature', tenantId: null, appId: null, apiTokenId: null });
  }
  if (cause instanceof joseErrors.JWTExpired || cause instanceof joseErrors.JWTClaimValidationFailed) {
    const { tenant_id: tenantId, client_id: appId, api_token_id: apiTokenId } = cause.payload;
    const known = typeof tenantId === 'string' && typeof appId === 'string';
    return markRefusal(error, {
      reason: cause instanceof joseErrors.JWTExpired ? 'expired' : 'other',
      tenantId: known ? tenantId : null,
      appId: known ? appId : null,
      apiTokenId: known && typeof apiTokenId === 'string' ? apiTokenId : null,
    });
  }
  return error;
}

function describeJoseError(e: unknown): string {
  if (e instanceof joseErrors.JWTExpired) return 'the access token expired';
  if (e instanceof joseErrors.JWTClaimValidationFailed) {
    switch (e.claim) {
      case 'nbf':
        return 'the access token is not valid yet';
      case 'iss':
        return 'the access token was issued by another issuer';
      case 'aud':
        return 'the access token is not meant for this audience';
      case 'typ':
        return 'the access token is not of type at+jwt (RFC 9068)';
      default:
        return `the access token claim "${e.claim}" is invalid`;
    }
  }
  if (e instanceof joseErrors.JWSSignatureVerificationFailed) return 'the access token signature is invalid';
  if (e instanceof joseErrors.JOSEAlgNotAllowed) return 'the access token algorithm is not allowed';
  if (e instanceof joseErrors.JOSENotSupported) return 'the access token uses an unsupported feature';
  return 'the access token is invalid';
}
