/**
 * `POST /apps` (`apps:write`): create an app (`scopes` and/or `roles`, at least one non-empty) and
 * its first API token → 201 `{app, token, value}`.
 */
import { z } from 'zod';
import { AppTokensError } from '../../core/errors.js';
import { requestedFormat, sendSecret } from '../downloads.js';
import { sendSecretJson } from '../responses.js';
import type { ManagementRoute } from '../management.js';
import { parseInput } from '../validation.js';

export const tokenInput = z
  .object({
    name: z.string({ error: 'must be a string' }).optional(),
    expiresIn: z.number({ error: 'must be a number of seconds' }).int({ error: 'must be a whole number of seconds' }).optional(),
    scopes: z.array(z.string({ error: 'must be a string' }), { error: 'must be an array of scopes' }).optional(),
  })
  .strict();

export const createAppBody = z
  .object({
    name: z.string({ error: 'required, a string' }),
    description: z.string({ error: 'must be a string or null' }).nullable().optional(),
    scopes: z.array(z.string({ error: 'must be a string' }), { error: 'must be an array of scopes' }).optional(),
    roles: z.array(z.string({ error: 'must be a role name' }), { error: 'must be an array of role names' }).optional(),
    customClaims: z.record(z.string(), z.unknown(), { error: 'must be a JSON object' }).optional(),
    token: tokenInput.optional(),
    tokenEndpointAuthMethod: z
      .enum(['client_secret_basic', 'client_secret_post', 'private_key_jwt'], { error: 'must be client_secret_basic, client_secret_post or private_key_jwt' })
      .optional(),
    jwks: z
      .object({ keys: z.array(z.record(z.string(), z.unknown()), { error: 'must be an array of public JWKs' }) }, { error: 'must be a JWK Set {"keys": [...]}' })
      .optional()
      .meta({ description: 'private_key_jwt: the public keys (RFC 7517 JWK Set); a private member is refused' }),
    jwksUri: z.string({ error: 'must be an https URL' }).optional().meta({ description: 'private_key_jwt: where the client publishes its JWK Set (https)' }),
    dpopBoundAccessTokens: z.boolean({ error: 'must be a boolean' }).optional().meta({ description: 'RFC 9449 §5: every access token must be DPoP-bound' }),
  })
  .strict();

export const createApp: ManagementRoute = {
  method: 'post',
  path: '/apps',
  scope: 'apps:write',
  async handle({ req, res, params, principal, management, issuer }) {
    requestedFormat(req);
    const body = parseInput(createAppBody, req.body);
    const format = requestedFormat(req);
    if (format !== 'json' && body.tokenEndpointAuthMethod === 'private_key_jwt') {
      throw new AppTokensError('validation_failed', 'format: a private_key_jwt app has no secret to download', { field: 'format' });
    }
    const created = await management.createApp(principal, body);
    if (created.value === null) {
      sendSecretJson(res, 201, created);
      return;
    }
    sendSecret(req, res, 201, created, created, created.app.name, issuer);
  },
};
