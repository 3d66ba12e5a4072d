/**
 * Responses that carry a secret value: JSON by default, or `?format=env` (a `.env` file) and
 * `?format=postman` (a Postman environment) as attachments. Never cached.
 *
 * @module
 */
import type { Request, Response } from 'express';
import { z } from 'zod';
import { AppTokensError } from '../core/errors.js';
import type { IssuedApiToken } from '../core/views.js';
import { sendSecretBody, sendSecretJson } from './responses.js';
import { endpointUrl } from './routes/well-known.js';

const FORMATS = ['json', 'env', 'postman'] as const;

/** `?format`, for the OpenAPI document ({@link requestedFormat} checks it, before any work is done). */
export const formatQuery = z.object({
  format: z
    .enum(FORMATS)
    .optional()
    .meta({ description: 'json (default); env: a .env file; postman: a Postman environment. env and postman are attachments' }),
});

/** A file-name-safe slug of the app or token name. */
function slug(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40) || 'app';
}

/**
 * A `.env` value that POSIX `sh` (`. ./file`, `source`) and the dotenv package read identically and
 * that nothing executes (issue 11, finding 15): single quotes, inside which `sh` expands nothing
 * (`$`, backticks, backslashes, double quotes are literal) and dotenv unescapes nothing. A single
 * quote or a line break cannot be carried that way by both; our values never hold one (ids and
 * secrets are base62, and the `issuer` option refuses them), so meeting one is a bug, not input.
 */
function envValue(name: string, value: string): string {
  if (/['\x00-\x1f\x7f]/.test(value)) {
    throw new AppTokensError('server_error', `${name}: cannot be written to a .env file safely`);
  }
  return `'${value}'`;
}

/** Validate `?format` before any work is done, so a bad format never creates a secret. */
export function requestedFormat(req: Request): (typeof FORMATS)[number] {
  const format = req.query.format;
  if (format === undefined) return 'json';
  if (typeof format !== 'string' || !(FORMATS as readonly string[]).includes(format)) {
    throw new AppTokensError('validation_failed', `format: must be one of ${FORMATS.join(', ')}`, { field: 'format' });
  }
  return format as (typeof FORMATS)[number];
}

/**
 * Send a response that carries a secret value, in the format asked for.
 *
 * @param body - the JSON body (it contains `value`)
 * @param issued - the token and value, for the env and postman formats
 * @param appName - names the downloaded file
 */
export function sendSecret(
  req: Request,
  res: Response,
  status: number,
  body: object,
  issued: IssuedApiToken,
  appName: string,
  issuer: string,
): void {
  const format = requestedFormat(req);
  const vars = {
    CLIENT_ID: issued.token.appId,
    CLIENT_SECRET: issued.value,
    ISSUER: issuer,
    TOKEN_URL: endpointUrl(issuer, '/oauth/token'),
  };
  const file = `${slug(appName)}-${issued.token.id}`;
  if (format === 'env') {
    res.setHeader('Content-Disposition', `attachment; filename="${file}.env"`);
    sendSecretBody(res, status, 'text/plain; charset=utf-8', `${Object.entries(vars).map(([k, v]) => `${k}=${envValue(k, v)}`).join('\n')}\n`);
    return;
  }
  if (format === 'postman') {
    res.setHeader('Content-Disposition', `attachment; filename="${file}.postman_environment.json"`);
    sendSecretBody(
      res,
      status,
      'application/json; charset=utf-8',
      JSON.stringify({
          id: issued.token.id,
          name: `${appName} (${issued.token.name})`,
          values: Object.entries(vars).map(([key, value]) => ({
            key,
            value,
            type: key === 'CLIENT_SECRET' ? 'secret' : 'default',
            enabled: true,
          })),
        _postman_variable_scope: 'environment',
      }),
    );
    return;
  }
  sendSecretJson(res, status, body);
}
