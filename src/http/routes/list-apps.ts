/**
 * `GET /apps` (`apps:read`): `{items, nextCursor, total}` (each item an app view with
 * `tokenSummary`), `?limit` (1–100, default 20), `?cursor`, and the filters and sort of
 * {@link listAppsQuery}.
 */
import { z } from 'zod';
import { APP_SORTS } from '../../core/management.js';
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

const flag = z.enum(['true', 'false'], { error: 'must be true or false' }).transform((v) => v === 'true');
const oneString = (what: string) => z.string({ error: `must be a single ${what}` });

/**
 * `GET /apps` filters and order, all optional and combined: `?expiringWithin=SECONDS`,
 * `?expiringSoon=true`, `?search=`, `?scope=`, `?role=`, `?locked=true`, `?unusedFor=DAYS`,
 * `?sort=` (one of {@link APP_SORTS}). Each bad value is a 400 naming its field.
 */
export const listAppsQuery = pageQuery
  .extend({
    expiringWithin: z
      .string()
      .regex(/^\d{1,10}$/, { error: 'must be a whole number of seconds' })
      .transform(Number)
      .optional()
      .meta({ description: 'only apps with a token (not revoked, not retiring) expiring within this many seconds, 1 – 10 years' }),
    expiringSoon: flag.optional().meta({ description: 'true: only apps with a token expiring soon (the window the token views flag as expiringSoon)' }),
    search: oneString('search text')
      .min(1, { error: 'must be 1 to 200 characters' })
      .max(200, { error: 'must be 1 to 200 characters' })
      .optional()
      .meta({ description: 'the name contains it (ASCII letters case-insensitively) or the client id starts with it' }),
    scope: oneString('scope').optional().meta({ description: 'only apps holding this scope as written (a wildcard matches only itself)' }),
    role: oneString('role').optional().meta({ description: 'only apps with this role' }),
    locked: flag
      .optional()
      .meta({ description: 'true: only apps with a source throttled by the lockout now; filters each page (a page may be short or empty with a nextCursor) and total is null' }),
    unusedFor: z
      .string()
      .regex(/^\d{1,4}$/, { error: 'must be a whole number of days from 1 to 3650' })
      .transform(Number)
      .optional()
      .meta({ description: 'only apps older than this many days none of whose tokens was used in them' }),
    sort: z
      .enum(APP_SORTS, { error: `must be one of ${APP_SORTS.join(', ')}` })
      .optional()
      .meta({ description: 'order (default created: oldest first); a leading - reverses it; a cursor works only with the sort it came from' }),
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
