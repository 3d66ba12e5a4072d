/** `PATCH /apps/:id` (`apps:write`): edit `name`, `description`, `customClaims`; `scopes` or `roles` → 400. */
import { z } from 'zod';
import type { ManagementRoute } from '../management.js';
import { parseInput } from '../validation.js';

export const updateAppBody = z
  .object({
    name: z.string({ error: 'must be a string' }).optional(),
    description: z.string({ error: 'must be a string or null' }).nullable().optional(),
    customClaims: z.record(z.string(), z.unknown(), { error: 'must be a JSON object' }).optional(),
    // Accepted by the schema only so that the service can say why it is refused.
    scopes: z.unknown().optional(),
    roles: z.unknown().optional(),
  })
  .strict();

export const updateApp: ManagementRoute = {
  method: 'patch',
  path: '/apps/:id',
  scope: 'apps:write',
  async handle({ req, res, params, principal, management }) {
    const body = parseInput(updateAppBody, req.body);
    res.json(await management.updateApp(principal, params.id, body));
  },
};
