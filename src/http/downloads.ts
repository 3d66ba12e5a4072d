/**
 * Responses that carry a secret value: JSON by default, or `?format=env` (a `.env` file) and
 * `?format=postman` (a Postman environment) as attachments. Never cached.
 *
 * @module
 */
import type { Request, Response } from 'express';
import { AppTokensError } from '../core/errors.js';
import type { IssuedApiToken } from '../core/views.js';
import { endpointUrl } from './routes/well-known.js';

const FORMATS = ['json', 'env', 'postman'] as const;

/** A file-name-safe slug of the app or token name. */
function slug(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40) || 'app';
}

/** `.env` values are double-quoted; the characters that matter to dotenv parsers are escaped. */
function envValue(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
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
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Pragma', 'no-cache');
  const vars = {
    CLIENT_ID: issued.token.appId,
    CLIENT_SECRET: issued.value,
    ISSUER: issuer,
    TOKEN_URL: endpointUrl(issuer, '/oauth/token'),
  };
  const file = `${slug(appName)}-${issued.token.id}`;
  if (format === 'env') {
    res.setHeader('Content-Disposition', `attachment; filename="${file}.env"`);
    res
      .status(status)
      .type('text/plain; charset=utf-8')
      .send(`${Object.entries(vars).map(([k, v]) => `${k}=${envValue(v)}`).join('\n')}\n`);
    return;
  }
  if (format === 'postman') {
    res.setHeader('Content-Disposition', `attachment; filename="${file}.postman_environment.json"`);
    res
      .status(status)
      .type('application/json')
      .send(
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
  res.status(status).json(body);
}
