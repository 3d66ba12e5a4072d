/** `DELETE /apps/:id/tokens/:tokenId` (`apps:write`): 204, and it stops working at once. */
import type { ManagementRoute } from '../management.js';

export const deleteToken: ManagementRoute = {
  method: 'delete',
  path: '/apps/:id/tokens/:tokenId',
  scope: 'apps:write',
  async handle({ req, res, params, principal, management }) {
    await management.deleteToken(principal, params.id, params.tokenId);
    res.status(204).end();
  },
};
