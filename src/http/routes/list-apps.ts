/** `GET /apps` (`apps:read`): `{items, nextCursor}`, `?limit` (1–100, default 20) and `?cursor`. */
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

export const listApps: ManagementRoute = {
  method: 'get',
  path: '/apps',
  scope: 'apps:read',
  async handle({ req, res, params, principal, management }) {
    const query = parseInput(pageQuery, req.query, 'query');
    res.json(await management.listApps(principal, query));
  },
};
