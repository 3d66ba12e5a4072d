/**
 * `GET /apps/:id/usage` (`apps:read`): the app's usage counts per hour or UTC day, zero-filled, for
 * charts; `?byToken=true` adds one series per credential. Bounds: an hourly range spans at most
 * 168 hours, a daily one at most `usage.retention`; `from` before `to`. Another tenant's app is 404.
 */
import { z } from 'zod';
import type { ManagementRoute } from '../management.js';
import { parseInput } from '../validation.js';

/** `?from&to&interval&byToken`: shapes here, ranges and bounds in `core/usage.ts` (one rule for HTTP and code). */
export const usageQuery = z
  .strictObject({
    from: z
      .string({ error: 'must be an ISO 8601 date-time' })
      .max(40, { error: 'must be an ISO 8601 date-time' })
      .optional()
      .meta({ description: 'ISO 8601 date-time, rounded down to the interval (default: to minus 24 hours, or 30 days by day)' }),
    to: z
      .string({ error: 'must be an ISO 8601 date-time' })
      .max(40, { error: 'must be an ISO 8601 date-time' })
      .optional()
      .meta({ description: 'ISO 8601 date-time, rounded up to the interval, exclusive (default: now)' }),
    interval: z
      .enum(['hour', 'day'], { error: "must be 'hour' or 'day'" })
      .optional()
      .meta({ description: 'hour (a range of at most 168 hours) or day (UTC days, at most the usage retention); default hour' }),
    byToken: z
      .enum(['true', 'false'], { error: "must be 'true' or 'false'" })
      .optional()
      .meta({ description: 'true: also one series per API token (or client key) of the app' }),
  });

export const getUsage: ManagementRoute = {
  method: 'get',
  path: '/apps/:id/usage',
  scope: 'apps:read',
  async handle({ req, res, params, principal, management }) {
    const query = parseInput(usageQuery, req.query, 'query');
    res.json(await management.usage(principal, params.id, query));
  },
};
