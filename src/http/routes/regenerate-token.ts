/**
 * `POST /apps/:id/tokens/:tokenId/regenerate` (`apps:write`): a new value → `{token, value}`. Body
 * (optional) `{gracePeriod}`: seconds the old value keeps working (0–86400; default 0: it dies at
 * once); meanwhile it is listed as `retiring`.
 */
import { z } from 'zod';
import { requestedFormat, sendSecret } from '../downloads.js';
import type { ManagementRoute } from '../management.js';
import { parseInput } from '../validation.js';

export const regenerateTokenBody = z
  .object({
    gracePeriod: z
      .number({ error: 'must be a whole number of seconds from 0 to 86400' })
      .int({ error: 'must be a whole number of seconds from 0 to 86400' })
      .min(0, { error: 'must be a whole number of seconds from 0 to 86400' })
      .max(86_400, { error: 'must be a whole number of seconds from 0 to 86400' })
      .optional()
      .meta({ description: 'seconds the old value keeps working (token endpoint, bearer, refresh) before it retires; default 0: it dies at once' }),
  })
  .strict();

export const regenerateToken: ManagementRoute = {
  method: 'post',
  path: '/apps/:id/tokens/:tokenId/regenerate',
  scope: 'apps:write',
  async handle({ req, res, params, principal, management, issuer }) {
    requestedFormat(req);
    const body = parseInput(regenerateTokenBody, req.body ?? {});
    const issued = await management.regenerateToken(principal, params.id, params.tokenId, body);
    const app = await management.getApp(principal, params.id);
    sendSecret(req, res, 200, issued, issued, app.name, issuer);
  },
};
