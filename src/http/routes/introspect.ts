/**
 * `POST /oauth/introspect` (RFC 7662): a client asks whether a token is active. Active tokens of
 * the caller's tenant are described; everything else is exactly `{"active": false}` (§2.2).
 *
 * @module
 */
import type { RequestHandler } from 'express';
import { z } from 'zod';
import { AppTokensError } from '../../core/errors.js';
import type { AppTokensService } from '../../core/service.js';
import { clientSecretPostForm, oauthEndpoint } from '../oauth-endpoint.js';
import { sendSecretJson } from '../responses.js';

export function introspectionEndpoint(service: AppTokensService): RequestHandler[] {
  return oauthEndpoint(service, {
    precheck(params) {
      // §2.1: token is REQUIRED; token_type_hint is OPTIONAL and may be ignored.
      if (params.token === undefined) throw new AppTokensError('invalid_request', 'token: required', { field: 'token' });
    },
    async handle({ res, params, client }) {
      sendSecretJson(res, 200, await service.introspect(client.app, params.token!));
    },
  });
}

/** RFC 7662 §2.1, for the OpenAPI document (the precheck above validates it by hand). */
export const introspectionForm = clientSecretPostForm
  .extend({
    token: z.string().min(1).meta({ description: 'an access token or API token' }),
    token_type_hint: z.string().optional().meta({ description: 'ignored (RFC 7662 §2.1 allows it)' }),
  });
