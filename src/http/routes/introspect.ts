/**
 * `POST /oauth/introspect` (RFC 7662): a client asks whether a token is active. Active tokens of
 * the caller's tenant are described; everything else is exactly `{"active": false}` (§2.2).
 *
 * @module
 */
import type { RequestHandler } from 'express';
import { AppTokensError } from '../../core/errors.js';
import type { AppTokensService } from '../../core/service.js';
import { oauthEndpoint } from '../oauth-endpoint.js';
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
