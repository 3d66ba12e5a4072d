/**
 * RFC 9457 problem details for the management API.
 *
 * @module
 */
import { STATUS_CODES } from 'node:http';
import type { Response } from 'express';
import type { AppTokensError } from '../core/errors.js';

/**
 * Answer `application/problem+json`: `type` is `about:blank`, so `title` is the status phrase
 * (RFC 9457 §4.2.1); `detail` names the field; `code` and `field` are extension members a client
 * can switch on.
 */
export function sendProblem(res: Response, error: AppTokensError, extra?: { challenge?: string | undefined }): void {
  if (extra?.challenge) res.setHeader('WWW-Authenticate', extra.challenge);
  if (error.retryAfter !== undefined) res.setHeader('Retry-After', String(error.retryAfter));
  const status = error.status;
  res.setHeader('Cache-Control', 'no-store');
  res
    .status(status)
    .type('application/problem+json')
    .send(
      JSON.stringify({
        type: 'about:blank',
        title: STATUS_CODES[status] ?? 'Error',
        status,
        detail: error.message,
        code: error.code,
        ...(error.field ? { field: error.field } : {}),
      }),
    );
}
