/**
 * `GET /apps/:id/events` (`apps:read`): the app's audit log, newest first, `{items, nextCursor}`;
 * `?type=` (repeatable, or comma-separated) keeps only events of those types.
 */
import { z } from 'zod';
import type { ManagementRoute } from '../management.js';
import { parseInput } from '../validation.js';
import { pageQuery } from './list-apps.js';

/** `?limit`, `?cursor`, `?type=token.created,token.deleted` (or `?type=a&type=b`). */
export const listEventsQuery = pageQuery
  .extend({
    type: z
      .union([z.string().max(1000, { error: 'is too long' }), z.array(z.string().max(100, { error: 'is too long' })).max(20, { error: 'names too many types' })])
      .transform((v) => (Array.isArray(v) ? v : v.split(',')).map((t) => t.trim()).filter((t) => t !== ''))
      .optional()
      .meta({ description: 'only events of these types: repeat the parameter or separate types with commas' }),
  })
  .strict();

export const listEvents: ManagementRoute = {
  method: 'get',
  path: '/apps/:id/events',
  scope: 'apps:read',
  async handle({ req, res, params, principal, management }) {
    const { type, ...page } = parseInput(listEventsQuery, req.query, 'query');
    res.json(await management.listEvents(principal, params.id, { ...page, ...(type !== undefined ? { types: type } : {}) }));
  },
};
