/** `DELETE /apps/:id` (`apps:write`): 204; the app's tokens and their access tokens die at once. */
import type { ManagementRoute } from '../management.js';

export const deleteApp: ManagementRoute = {
  method: 'delete',
  path: '/apps/:id',
  scope: 'apps:write',
  async handle({ req, res, params, principal, management }) {
    await management.deleteApp(principal, params.id);
    res.status(204).end();
  },
};
