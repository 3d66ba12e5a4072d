/**
 * `POST /oauth/token`: the client_credentials grant (RFC 6749 §4.4) and RFC 8693 token exchange,
 * with RFC 8707 `resource`, answering RFC 6749 §5.1 / §5.2.
 *
 * @module
 */
import type { RequestHandler } from 'express';
import { z } from 'zod';
import { AppTokensError } from '../../core/errors.js';
import { parseScopeString } from '../../core/scopes.js';
import type { AppTokensService } from '../../core/service.js';
import { tokenRequestBinding } from '../dpop.js';
import { clientSecretPostForm, oauthEndpoint, type OAuthContext } from '../oauth-endpoint.js';
import { sendSecretJson } from '../responses.js';

export const CLIENT_CREDENTIALS = 'client_credentials';
export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';

export function tokenEndpoint(service: AppTokensService): RequestHandler[] {
  return oauthEndpoint(service, {
    span: 'oauth.token',
    grantType: (params) => (params.grant_type === TOKEN_EXCHANGE ? 'token_exchange' : params.grant_type),
    precheck(params) {
      try {
        precheck(params);
      } catch (error) {
        // Before client authentication: nobody's grant (telemetry counts it, usage does not).
        if (error instanceof AppTokensError) service.signals.grantRefused({ tenantId: null, appId: null, grantType: null, error: error.code });
        throw error;
      }
    },
    async handle(context) {
      const { app, credential, method } = context.client;
      const grantType = context.params.grant_type!;
      try {
        await grant(context);
      } catch (error) {
        if (error instanceof AppTokensError && error.status < 500) {
          service.signals.grantRefused({ tenantId: app.tenantId, appId: app.id, grantType, error: error.code });
        }
        throw error;
      }
      service.signals.grantIssued({ tenantId: app.tenantId, appId: app.id, apiTokenId: credential.id, grantType, authMethod: method });
    },
  });

  async function grant({ req, res, params, client }: OAuthContext): Promise<void> {
    const scopes = params.scope === undefined ? undefined : parseScopeString(params.scope);
    // RFC 9449 §5: a DPoP proof binds the new access token to its key.
    const dpopJkt = await tokenRequestBinding(service, req, res, client.app);
    if (params.grant_type === CLIENT_CREDENTIALS) {
      sendSecretJson(res, 200, await service.issueClientCredentials(client.app, client.credential, scopes, params.resource, dpopJkt));
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
        dpopJkt,
        credential: client.credential,
      }),
    );
  }
}

/** RFC 6749 §5.2 checks of the parameters alone, before any store read. */
function precheck(params: Readonly<Record<string, string>>): void {
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
}

const scopeParam = z.string().optional().meta({ description: 'space-separated scopes, a subset of what the client holds (default: all of them)' });
const resourceParam = z.string().optional().meta({ description: 'RFC 8707: the resource server the token is for' });

/**
 * The two forms of this endpoint, for the OpenAPI document (the precheck above validates them by
 * hand, answering RFC 6749 §5.2; unknown parameters are ignored, §3.2).
 */
export const clientCredentialsForm = clientSecretPostForm
  .extend({ grant_type: z.literal(CLIENT_CREDENTIALS), scope: scopeParam, resource: resourceParam })
  .meta({ description: 'RFC 6749 §4.4.2: the client_credentials grant.' });

export const tokenExchangeForm = clientSecretPostForm
  .extend({
    grant_type: z.literal(TOKEN_EXCHANGE),
    subject_token: z.string().min(1).meta({ description: 'an access token or API token of the calling client' }),
    subject_token_type: z.enum(['urn:ietf:params:oauth:token-type:access_token', 'urn:ietf:params:oauth:token-type:jwt']),
    requested_token_type: z.literal('urn:ietf:params:oauth:token-type:access_token').optional(),
    scope: scopeParam,
    resource: resourceParam,
    audience: z.string().optional().meta({ description: 'as resource; when both are sent they must be equal' }),
  })
  .meta({ description: 'RFC 8693 §2.1: narrow a token of this client to fewer scopes or one audience (actor_token is refused).' });
