/**
 * Response helpers shared by the routers: OAuth error bodies (RFC 6749 §5.2), no-store bodies
 * without ETag for secrets and tokens.
 *
 * @module
 */
import type { Response } from 'express';
import { AppTokensError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';

/** RFC 6749 §5.1 / RFC 7009 / RFC 7662: responses that carry tokens or secrets are never cached. */
export function noStore(res: Response): void {
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Pragma', 'no-cache');
}

/**
 * Send a body that carries a token or a secret: `no-store`, and written with `res.end` so that
 * Express computes no `ETag` from it (a hash of a secret is a derived value, and with it an
 * `If-None-Match` could be answered 304: issue 11, finding 13).
 */
export function sendSecretBody(res: Response, status: number, contentType: string, body: string): void {
  noStore(res);
  res.removeHeader('ETag');
  res.status(status);
  res.setHeader('Content-Type', contentType);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}

/** {@link sendSecretBody} for a JSON value. */
export function sendSecretJson(res: Response, status: number, value: unknown): void {
  sendSecretBody(res, status, 'application/json; charset=utf-8', JSON.stringify(value));
}

/** Map anything thrown to an AppTokensError whose message is safe to show. */
export function toAppTokensError(error: unknown, log?: Required<Logger>): AppTokensError {
  if (error instanceof AppTokensError) return error;
  // Express could not decode a path parameter (`/apps/%E0%A4%A`).
  if (error instanceof URIError) {
    return new AppTokensError('validation_failed', 'path: malformed percent-encoding', { field: 'path' });
  }
  // body-parser and other http-errors style 4xx errors carry `status` and `type`.
  const e = error as { status?: unknown; type?: unknown; expose?: unknown } | null;
  if (e && typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
    switch (e.type) {
      case 'entity.too.large':
        return new AppTokensError('payload_too_large', 'the request body is too large', { status: 413 });
      case 'entity.parse.failed':
        return new AppTokensError('invalid_request', 'body: not valid JSON', { status: 400, field: 'body' });
      case 'charset.unsupported':
        return new AppTokensError('unsupported_media_type', 'Content-Type: the charset is not accepted; send UTF-8', {
          status: 415,
          field: 'Content-Type',
        });
      case 'encoding.unsupported':
        return new AppTokensError('unsupported_media_type', 'Content-Encoding: not accepted; send the body uncompressed', {
          status: 415,
          field: 'Content-Encoding',
        });
      default:
        return new AppTokensError('invalid_request', 'the request could not be read', { status: e.status });
    }
  }
  // Never show the cause: it may hold internals. Log it, redacted, without the request.
  log?.error({ err: error }, 'unexpected error');
  return new AppTokensError('server_error', 'internal error', { cause: error });
}

/** OAuth error codes a token-endpoint response may carry (RFC 6749 §5.2, RFC 8693 §2.2.2). */
export const OAUTH_CODES: ReadonlySet<string> = new Set([
  'invalid_request',
  'invalid_client',
  'invalid_grant',
  'unauthorized_client',
  'unsupported_grant_type',
  'invalid_scope',
  'invalid_target',
  // RFC 9449 §5, §9
  'invalid_dpop_proof',
  'use_dpop_nonce',
  'server_error',
  'temporarily_unavailable',
]);

/**
 * Answer an OAuth endpoint error as RFC 6749 §5.2 `{error, error_description}`. Codes that are not
 * OAuth codes map to the nearest one (`invalid_request`, or `server_error` for 5xx).
 */
export function sendOAuthError(res: Response, error: AppTokensError, realm: string, basicAttempted: boolean): void {
  let code: string = error.code;
  if (!OAUTH_CODES.has(code)) {
    code =
      error.status === 503 || error.status === 429
        ? 'temporarily_unavailable'
        : error.status >= 500
          ? 'server_error'
          : 'invalid_request';
  }
  noStore(res);
  if (error.retryAfter !== undefined) res.setHeader('Retry-After', String(error.retryAfter));
  // RFC 6749 §5.2: a client that tried the Authorization header gets 401 with a challenge (Basic,
  // the only header scheme we take for client authentication).
  if (code === 'invalid_client' && basicAttempted) res.setHeader('WWW-Authenticate', `Basic realm="${realm}"`);
  // RFC 6749 §5.2: error_description MUST NOT include characters outside %x20-21 / %x23-5B / %x5D-7E,
  // and a message may echo client input.
  res.status(error.status).json({ error: code, error_description: error.message.replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, '?') });
}
