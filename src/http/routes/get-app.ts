/** `GET /apps/:id` (`apps:read`): the app with its live tokens' metadata, never a value. */
import type { ManagementRoute } from '../management.js';

export const getApp: ManagementRoute = {
  method: 'get',
  path: '/apps/:id',
  scope: 'apps:read',
  async handle({ req, res, params, principal, management }) {
    res.json(await management.getApp(principal, params.id));
  },
};
