/** `POST /apps/:id/tokens/:tokenId/regenerate` (`apps:write`): a new value, the old one dead → `{token, value}`. */
import { requestedFormat, sendSecret } from '../downloads.js';
import type { ManagementRoute } from '../management.js';

export const regenerateToken: ManagementRoute = {
  method: 'post',
  path: '/apps/:id/tokens/:tokenId/regenerate',
  scope: 'apps:write',
  async handle({ req, res, params, principal, management, issuer }) {
    requestedFormat(req);
    const issued = await management.regenerateToken(principal, params.id, params.tokenId);
    const app = await management.getApp(principal, params.id);
    sendSecret(req, res, 200, issued, issued, app.name, issuer);
  },
};
