/** `GET /apps/:id/tokens` (`apps:read`): `{items}` of token metadata, never a value. */
import type { ManagementRoute } from '../management.js';

export const listTokens: ManagementRoute = {
  method: 'get',
  path: '/apps/:id/tokens',
  scope: 'apps:read',
  async handle({ req, res, params, principal, management }) {
    res.json(await management.listTokens(principal, params.id));
  },
};
