/**
 * `POST /me/introspect` (`apps:read`): RFC 7662-style introspection for a management principal
 * (the console's token debugger), authorised like every management route (a bearer token of ours,
 * or the host's session) instead of by client credentials. Confined to the caller's tenant: an
 * inactive token says why (`reason`) only when that tells nothing about another tenant —
 * `expired`, `revoked`, `app_deleted` for a token verifiably the caller's tenant's; `unknown_key`,
 * `invalid_signature`, `other_issuer`, `malformed` for what the string itself shows — and another
 * tenant's token, live or dead, is exactly `{"active": false}` (issue 25 item 7; see
 * `AppTokensService.explainInTenant`). The RFC 7662 endpoint `/oauth/introspect` gives no reason.
 * Never cached.
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
    sendSecretJson(res, 200, await service.explainInTenant(principal.tenantId, token));
  },
};
