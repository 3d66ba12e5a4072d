/**
 * `POST /me/introspect` (`apps:read`): RFC 7662-style introspection for a management principal
 * (the console's token debugger), authorised like every management route (a bearer token of ours,
 * or the host's session) instead of by client credentials. Confined to the caller's tenant:
 * anything not active in it — unknown, expired, revoked, malformed, another tenant's — is exactly
 * `{"active": false}`. Never cached.
 *
 * @module
 */
import { z } from 'zod';
import type { ManagementRoute } from '../management.js';
import { sendSecretJson } from '../responses.js';
import { parseInput } from '../validation.js';

export const introspectBody = z
  .object({
    token: z
      .string({ error: 'required, a string' })
      .min(1, { error: 'required, a string' })
      .max(8192, { error: 'must be at most 8192 characters' })
      .meta({ description: 'an access token or API token' }),
  })
  .strict();

export const introspectAsPrincipal: ManagementRoute = {
  method: 'post',
  path: '/me/introspect',
  scope: 'apps:read',
  async handle({ req, res, principal, service }) {
    const { token } = parseInput(introspectBody, req.body);
    sendSecretJson(res, 200, await service.introspectInTenant(principal.tenantId, token));
  },
};
