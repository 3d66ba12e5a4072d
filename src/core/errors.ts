/**
 * Every error the library raises is an {@link AppTokensError}: switch on `code`, not on the class.
 *
 * @example
 * ```ts
 * import { errors } from 'express-app-tokens';
 * try { await auth.apps.create(input); } catch (e) {
 *   if (e instanceof errors.AppTokensError && e.code === 'invalid_scope') { … }
 * }
 * ```
 * @module
 */

/** Stable error codes. OAuth codes (RFC 6749 §5.2, RFC 6750 §3.1, RFC 8693 §2.2.2) keep their RFC spelling. */
export type ErrorCode =
  // RFC 6749 §5.2 / RFC 6750 §3.1 / RFC 8693 / RFC 8707
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unauthorized_client'
  | 'unsupported_grant_type'
  | 'invalid_scope'
  | 'invalid_target'
  | 'invalid_token'
  | 'insufficient_scope'
  // RFC 9449 §5, §7.1, §8, §9: a DPoP proof that fails its checks; a proof without the server's nonce
  | 'invalid_dpop_proof'
  | 'use_dpop_nonce'
  // bearer middleware: no credentials at all (RFC 6750 §3.1: no error code in the challenge)
  | 'missing_token'
  // management API and programmatic use
  | 'validation_failed'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  /** A configured limit (`limits.tokensPerApp`, `limits.appsPerTenant`) would be exceeded: 409. */
  | 'limit_exceeded'
  | 'payload_too_large'
  | 'method_not_allowed'
  | 'unsupported_media_type'
  | 'rate_limited'
  | 'unavailable'
  /** A signed request (a secret-scanning report) whose signature is missing or does not verify: 401. */
  | 'invalid_signature'
  // configuration and internal
  | 'invalid_options'
  | 'key_error'
  | 'server_error';

export interface AppTokensErrorInit {
  /** HTTP status to answer with. Defaults from the code. */
  status?: number;
  /** The request field or option the error is about, e.g. `scope` or `scopes[2]`. */
  field?: string;
  /** For `insufficient_scope`: the scopes the request lacked. */
  scopes?: readonly string[];
  /** For 429 and 503: seconds after which a retry may succeed (`Retry-After`). */
  retryAfter?: number;
  cause?: unknown;
}

const DEFAULT_STATUS: Record<ErrorCode, number> = {
  invalid_request: 400,
  invalid_client: 401,
  invalid_grant: 400,
  unauthorized_client: 400,
  unsupported_grant_type: 400,
  invalid_scope: 400,
  invalid_target: 400,
  invalid_token: 401,
  insufficient_scope: 403,
  // RFC 9449 §5 / §9 at the token endpoint; the bearer middleware answers them with 401 (§7.1, §8).
  invalid_dpop_proof: 400,
  use_dpop_nonce: 400,
  missing_token: 401,
  validation_failed: 400,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  limit_exceeded: 409,
  payload_too_large: 413,
  method_not_allowed: 405,
  unsupported_media_type: 415,
  rate_limited: 429,
  unavailable: 503,
  invalid_signature: 401,
  invalid_options: 500,
  key_error: 500,
  server_error: 500,
};

/**
 * The one error class. `message` is safe to show to the caller: it names the field and never
 * carries a secret.
 */
export class AppTokensError extends Error {
  override readonly name = 'AppTokensError';
  readonly code: ErrorCode;
  readonly status: number;
  readonly field: string | undefined;
  readonly scopes: readonly string[] | undefined;
  readonly retryAfter: number | undefined;

  constructor(code: ErrorCode, message: string, init: AppTokensErrorInit = {}) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.code = code;
    this.status = init.status ?? DEFAULT_STATUS[code];
    this.field = init.field;
    this.scopes = init.scopes;
    this.retryAfter = init.retryAfter ?? (this.status === 503 ? 5 : undefined);
  }

  /**
   * The RFC 6750 §3 `WWW-Authenticate` value for this error as answered by the bearer
   * middleware, or `undefined` for errors that carry no bearer challenge.
   */
  bearerChallenge(realm: string): string | undefined {
    const parts = [`Bearer realm="${quote(realm)}"`];
    switch (this.code) {
      case 'missing_token':
        // RFC 6750 §3.1: no error information when the request had no credentials.
        return parts[0];
      case 'invalid_request':
      case 'invalid_token':
      case 'insufficient_scope':
        parts.push(`error="${this.code}"`, `error_description="${quote(this.message)}"`);
        if (this.code === 'insufficient_scope' && this.scopes && this.scopes.length > 0) {
          parts.push(`scope="${quote(this.scopes.join(' '))}"`);
        }
        return parts.join(', ');
      default:
        return undefined;
    }
  }
}

/**
 * RFC 6750 §3: error_description and scope values use %x20-21 / %x23-5B / %x5D-7E only; drop
 * anything else so a message can never break the header.
 */
function quote(value: string): string {
  return value.replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, '');
}

/** `true` for an {@link AppTokensError}, optionally of one of `codes`. */
export function isAppTokensError(value: unknown, ...codes: ErrorCode[]): value is AppTokensError {
  return value instanceof AppTokensError && (codes.length === 0 || codes.includes(value.code));
}

/** A field path as a user writes it: `resources[0].id`, `token.expiresIn`. */
export function fieldPath(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`)).join('');
}
