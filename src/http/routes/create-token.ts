/** `POST /apps/:id/tokens` (`apps:write`): issue another token `{name?, expiresIn?, scopes?}` → 201 `{token, value}`. */
import { requestedFormat, sendSecret } from '../downloads.js';
import type { ManagementRoute } from '../management.js';
import { parseInput } from '../validation.js';
import { tokenInput } from './create-app.js';

export const createToken: ManagementRoute = {
  method: 'post',
  path: '/apps/:id/tokens',
  scope: 'apps:write',
  async handle({ req, res, params, principal, management, issuer }) {
    requestedFormat(req);
    const body = parseInput(tokenInput, req.body ?? {});
    const issued = await management.createToken(principal, params.id, body);
    const app = await management.getApp(principal, params.id);
    sendSecret(req, res, 201, issued, issued, app.name, issuer);
  },
};
