/**
 * `POST /oauth/revoke` (RFC 7009): a client revokes one of its own tokens, an access token or an
 * API token. 200 whether or not the token was known (§2.2); another client's token stays valid.
 *
 * @module
 */
import type { RequestHandler } from 'express';
import { z } from 'zod';
import { AppTokensError } from '../../core/errors.js';
import type { AppTokensService } from '../../core/service.js';
import { clientSecretPostForm, oauthEndpoint } from '../oauth-endpoint.js';

export function revocationEndpoint(service: AppTokensService): RequestHandler[] {
  return oauthEndpoint(service, {
    precheck(params) {
      if (params.token === undefined) throw new AppTokensError('invalid_request', 'token: required', { field: 'token' });
    },
    async handle({ res, params, client }) {
      // §2.1: token_type_hint is only a hint; an unknown one is ignored and the token searched anyway.
      await service.revoke(client.app, params.token!);
      res.status(200).end();
    },
  });
}

/** RFC 7009 §2.1, for the OpenAPI document (the precheck above validates it by hand). */
export const revocationForm = clientSecretPostForm
  .extend({
    token: z.string().min(1).meta({ description: 'an access token or API token of the calling client' }),
    token_type_hint: z.string().optional().meta({ description: 'only a hint; the token is searched for anyway' }),
  });
