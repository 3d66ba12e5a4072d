/**
 * `GET /apps` (`apps:read`): `{items, nextCursor}` (each item an app view with `tokenSummary`),
 * `?limit` (1–100, default 20), `?cursor`, `?expiringWithin`.
 */
import { z } from 'zod';
import type { ManagementRoute } from '../management.js';
import { parseInput } from '../validation.js';

/** `?limit` and `?cursor`, shared by every paginated listing. */
export const pageQuery = z
  .object({
    limit: z
      .string()
      .regex(/^\d{1,3}$/, { error: 'must be a whole number from 1 to 100' })
      .transform(Number)
      .optional(),
    cursor: z.string({ error: 'must be a single cursor' }).max(512, { error: 'is not a cursor of this API' }).optional(),
  })
  .strict();

/** `GET /apps` also takes `?expiringWithin=SECONDS`: only apps with a token expiring that soon. */
export const listAppsQuery = pageQuery
  .extend({
    expiringWithin: z
      .string()
      .regex(/^\d{1,10}$/, { error: 'must be a whole number of seconds' })
      .transform(Number)
      .optional(),
  })
  .strict();

export const listApps: ManagementRoute = {
  method: 'get',
  path: '/apps',
  scope: 'apps:read',
  async handle({ req, res, params, principal, management }) {
    const query = parseInput(listAppsQuery, req.query, 'query');
    res.json(await management.listApps(principal, query));
  },
};
