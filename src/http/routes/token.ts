/**
 * `POST /oauth/token`: the client_credentials grant (RFC 6749 §4.4) and RFC 8693 token exchange,
 * with RFC 8707 `resource`, answering RFC 6749 §5.1 / §5.2.
 *
 * @module
 */
import type { RequestHandler } from 'express';
import { AppTokensError } from '../../core/errors.js';
import { parseScopeString } from '../../core/scopes.js';
import type { AppTokensService } from '../../core/service.js';
import { oauthEndpoint } from '../oauth-endpoint.js';
import { sendSecretJson } from '../responses.js';

export const CLIENT_CREDENTIALS = 'client_credentials';
export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';

export function tokenEndpoint(service: AppTokensService): RequestHandler[] {
  return oauthEndpoint(service, {
    precheck(params) {
      const grant = params.grant_type;
      if (grant === undefined) throw new AppTokensError('invalid_request', 'grant_type: required', { field: 'grant_type' });
      if (grant !== CLIENT_CREDENTIALS && grant !== TOKEN_EXCHANGE) {
        throw new AppTokensError('unsupported_grant_type', `grant_type: '${grant.slice(0, 64)}' is not supported`, {
          field: 'grant_type',
        });
      }
      if (params.scope !== undefined) parseScopeString(params.scope);
      if (grant === TOKEN_EXCHANGE && params.subject_token === undefined) {
        throw new AppTokensError('invalid_request', 'subject_token: required', { field: 'subject_token' });
      }
    },
    async handle({ res, params, client }) {
      const scopes = params.scope === undefined ? undefined : parseScopeString(params.scope);
      if (params.grant_type === CLIENT_CREDENTIALS) {
        sendSecretJson(res, 200, await service.issueClientCredentials(client.app, client.token, scopes, params.resource));
        return;
      }
      sendSecretJson(
        res,
        200,
        await service.exchange(client.app, {
          subjectToken: params.subject_token!,
          subjectTokenType: params.subject_token_type,
          requestedTokenType: params.requested_token_type,
          actorToken: params.actor_token,
          scopes,
          resource: params.resource,
          audience: params.audience,
        }),
      );
    },
  });
}
