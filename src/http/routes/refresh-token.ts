/**
 * `POST /tokens/refresh`: rotate an API token with itself as the credential, the M-Trust contract:
 * body `{client_id, grant_type: "token-exchange", refresh_token, scope: "openid"}` (JSON or form)
 * → `{token: {id, name, creationDate, expirationDate}, value}`. Errors are RFC 6749 §5.2.
 */
import express, { type Request, type RequestHandler, type Response } from 'express';
import { z } from 'zod';
import { AppTokensError } from '../../core/errors.js';
import type { AppManagement } from '../../core/management.js';
import type { AppTokensService } from '../../core/service.js';
import { requestedFormat, sendSecret } from '../downloads.js';
import { bodyEncodingError, capBody } from '../body.js';
import { sendOAuthError, toAppTokensError } from '../responses.js';

const field = (name: string) => z.string({ error: `${name}: required, a string` }).min(1, { error: `${name}: required` });

/** Unknown members are ignored, as at any OAuth endpoint (RFC 6749 §3.2). */
export const refreshBody = z.object({
  client_id: field('client_id'),
  grant_type: field('grant_type'),
  refresh_token: field('refresh_token'),
  scope: z.string({ error: 'scope: must be a string' }).optional(),
});

export function refreshToken(service: AppTokensService, management: AppManagement): RequestHandler[] {
  const { realm, issuer } = service.options;
  const limit = service.options.management.bodyLimit;
  const handle = async (req: Request, res: Response) => {
    try {
      if (req.method !== 'POST') {
        res.setHeader('Allow', 'POST');
        throw new AppTokensError('invalid_request', 'use POST', { status: 405 });
      }
      if (req.query.refresh_token !== undefined || req.query.client_id !== undefined) {
        throw new AppTokensError('invalid_request', 'refresh_token: credentials must be sent in the body, never in the query string', {
          field: 'refresh_token',
        });
      }
      if (!req.is('application/json') && !req.is('application/x-www-form-urlencoded')) {
        throw new AppTokensError('invalid_request', 'the body must be application/json or application/x-www-form-urlencoded');
      }
      requestedFormat(req);
      const parsed = refreshBody.safeParse(req.body ?? {});
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        throw new AppTokensError('invalid_request', issue.message, { field: String(issue.path[0] ?? 'body') });
      }
      const body = parsed.data;
      if (body.grant_type !== 'token-exchange') {
        throw new AppTokensError('unsupported_grant_type', 'grant_type: must be "token-exchange"', { field: 'grant_type' });
      }
      if (body.scope !== undefined && body.scope !== 'openid') {
        throw new AppTokensError('invalid_scope', 'scope: must be "openid"', { field: 'scope' });
      }
      // req.ip honours the host's `trust proxy`: failures are throttled per source.
      const issued = await management.refresh(body.client_id, body.refresh_token, req.ip);
      const { id, name, creationDate, expirationDate } = issued.token;
      sendSecret(req, res, 200, { token: { id, name, creationDate, expirationDate }, value: issued.value }, issued, issued.appName, issuer);
    } catch (error) {
      sendOAuthError(res, toAppTokensError(error, service.log), realm, false);
    }
  };
  const json = capBody(express.json({ limit, strict: true }), limit);
  const form = capBody(express.urlencoded({ extended: false, limit, parameterLimit: 50 }), limit);
  return [
    (req, res, next) => {
      const refused = req.method === 'POST' ? bodyEncodingError(req, 'invalid_request') : undefined;
      return refused ? sendOAuthError(res, refused, realm, false) : next();
    },
    (req, res, next) => json(req, res, (err?: unknown) => (err ? sendOAuthError(res, toAppTokensError(err, service.log), realm, false) : next())),
    (req, res, next) => form(req, res, (err?: unknown) => (err ? sendOAuthError(res, toAppTokensError(err, service.log), realm, false) : next())),
    (req, res) => void handle(req, res),
  ];
}
