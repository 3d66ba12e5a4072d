/**
 * `DELETE /apps/:id/lockout` (`apps:write`, and every scope the app holds): 204; the app's failure
 * tally is reset and every source throttled for its client id is let through at once, on every
 * instance. Audited as `app.lockout_cleared`.
 */
import type { ManagementRoute } from '../management.js';

export const clearLockout: ManagementRoute = {
  method: 'delete',
  path: '/apps/:id/lockout',
  scope: 'apps:write',
  async handle({ res, params, principal, management }) {
    await management.clearLockout(principal, params.id);
    res.status(204).end();
  },
};
