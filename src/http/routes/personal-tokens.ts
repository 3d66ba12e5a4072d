/**
 * `/me/tokens` (a host user signed in through `management.resolvePrincipal`): the user's personal
 * tokens. `GET` → `{items, nextCursor}`; `POST {name?, expiresIn?, scopes?}` → 201
 * `{token, value, clientId}` (the value shown once); `DELETE /me/tokens/:tokenId` → 204.
 */
import { requestedFormat, sendSecret } from '../downloads.js';
import type { ManagementRoute } from '../management.js';
import { parseInput } from '../validation.js';
import { tokenInput } from './create-app.js';
import { pageQuery } from './list-apps.js';

export const personalTokenBody = tokenInput;

export const listPersonalTokens: ManagementRoute = {
  method: 'get',
  path: '/me/tokens',
  scope: null,
  hostUserOnly: true,
  async handle({ req, res, principal, management }) {
    const query = parseInput(pageQuery, req.query, 'query');
    res.json(await management.personal.list(principal, query));
  },
};

export const createPersonalToken: ManagementRoute = {
  method: 'post',
  path: '/me/tokens',
  scope: null,
  hostUserOnly: true,
  async handle({ req, res, principal, management, issuer }) {
    requestedFormat(req);
    const body = parseInput(personalTokenBody, req.body ?? {});
    const issued = await management.personal.create(principal, body);
    sendSecret(req, res, 201, issued, issued, issued.token.name, issuer);
  },
};

export const deletePersonalToken: ManagementRoute = {
  method: 'delete',
  path: '/me/tokens/:tokenId',
  scope: null,
  hostUserOnly: true,
  async handle({ res, params, principal, management }) {
    await management.personal.delete(principal, params.tokenId);
    res.status(204).end();
  },
};
