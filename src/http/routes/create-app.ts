/**
 * `POST /apps` (`apps:write`): create an app (`scopes` and/or `roles`, at least one non-empty) and
 * its first API token → 201 `{app, token, value}`.
 */
import { z } from 'zod';
import { requestedFormat, sendSecret } from '../downloads.js';
import type { ManagementRoute } from '../management.js';
import { parseInput } from '../validation.js';

export const tokenInput = z
  .object({
    name: z.string({ error: 'must be a string' }).optional(),
    expiresIn: z.number({ error: 'must be a number of seconds' }).int({ error: 'must be a whole number of seconds' }).optional(),
    scopes: z.array(z.string({ error: 'must be a string' }), { error: 'must be an array of scopes' }).optional(),
  })
  .strict();

export const createAppBody = z
  .object({
    name: z.string({ error: 'required, a string' }),
    description: z.string({ error: 'must be a string or null' }).nullable().optional(),
    scopes: z.array(z.string({ error: 'must be a string' }), { error: 'must be an array of scopes' }).optional(),
    roles: z.array(z.string({ error: 'must be a role name' }), { error: 'must be an array of role names' }).optional(),
    customClaims: z.record(z.string(), z.unknown(), { error: 'must be a JSON object' }).optional(),
    token: tokenInput.optional(),
  })
  .strict();

export const createApp: ManagementRoute = {
  method: 'post',
  path: '/apps',
  scope: 'apps:write',
  async handle({ req, res, params, principal, management, issuer }) {
    requestedFormat(req);
    const body = parseInput(createAppBody, req.body);
    const created = await management.createApp(principal, body);
    sendSecret(req, res, 201, created, created, created.app.name, issuer);
  },
};
