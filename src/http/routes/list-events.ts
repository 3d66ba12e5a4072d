/** `GET /apps/:id/events` (`apps:read`): the app's audit log, newest first, `{items, nextCursor}`. */
import type { ManagementRoute } from '../management.js';
import { parseInput } from '../validation.js';
import { pageQuery } from './list-apps.js';

export const listEvents: ManagementRoute = {
  method: 'get',
  path: '/apps/:id/events',
  scope: 'apps:read',
  async handle({ req, res, params, principal, management }) {
    const query = parseInput(pageQuery, req.query, 'query');
    res.json(await management.listEvents(principal, params.id, query));
  },
};
