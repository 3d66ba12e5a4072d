/**
 * `GET /apps/:id/tokens` (`apps:read`): `{items, nextCursor}` of live token metadata (never a
 * value), oldest first; `?limit` (1–100, default 20) and `?cursor`, as `GET /apps`.
 */
import type { ManagementRoute } from '../management.js';
import { parseInput } from '../validation.js';
import { pageQuery } from './list-apps.js';

export const listTokens: ManagementRoute = {
  method: 'get',
  path: '/apps/:id/tokens',
  scope: 'apps:read',
  async handle({ req, res, params, principal, management }) {
    const query = parseInput(pageQuery, req.query, 'query');
    res.json(await management.listTokens(principal, params.id, query));
  },
};
