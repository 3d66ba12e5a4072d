/**
 * Discovery: RFC 8414 authorization-server metadata and the JWK Set.
 *
 * @module
 */
import type { Request, Response } from 'express';
import { ASSERTION_ALGS } from '../../core/client-keys.js';
import { DPOP_ALGORITHMS } from '../../core/dpop.js';
import type { AppTokensService } from '../../core/service.js';

/** Absolute URL of an endpoint under the issuer (the host mounts `auth.routes()` there). */
export function endpointUrl(issuer: string, path: string): string {
  return issuer.replace(/\/+$/, '') + path;
}

/**
 * RFC 8414 §2 metadata. `issuer` is identical to the `iss` of our tokens (§3.3). Arrays are never
 * empty (§3.2). `response_types_supported` is REQUIRED (§2) though there is no authorization
 * endpoint: it lists `none`, the registered response type that returns neither a code nor a token
 * (`docs/decisions/2026-12-discovery-response-types.md`).
 */
export function metadata(service: AppTokensService): Record<string, unknown> {
  const { issuer } = service.options;
  const authMethods = ['client_secret_basic', 'client_secret_post', 'private_key_jwt'];
  // RFC 8414 §2: the algorithms a private_key_jwt assertion may be signed with (never none or HMAC).
  const assertionAlgs = [...ASSERTION_ALGS];
  return {
    issuer,
    token_endpoint: endpointUrl(issuer, '/oauth/token'),
    jwks_uri: endpointUrl(issuer, '/.well-known/jwks.json'),
    // RFC 8414 §2 REQUIRED, §3.2 no empty array; no authorization endpoint, so no code and no token.
    response_types_supported: ['none'],
    grant_types_supported: ['client_credentials', 'urn:ietf:params:oauth:grant-type:token-exchange'],
    token_endpoint_auth_methods_supported: authMethods,
    token_endpoint_auth_signing_alg_values_supported: assertionAlgs,
    introspection_endpoint: endpointUrl(issuer, '/oauth/introspect'),
    introspection_endpoint_auth_methods_supported: authMethods,
    introspection_endpoint_auth_signing_alg_values_supported: assertionAlgs,
    revocation_endpoint: endpointUrl(issuer, '/oauth/revoke'),
    revocation_endpoint_auth_methods_supported: authMethods,
    revocation_endpoint_auth_signing_alg_values_supported: assertionAlgs,
    scopes_supported: [...service.catalogue.scopes],
    // RFC 9449 §5.1: the algorithms a DPoP proof may be signed with (asymmetric only).
    dpop_signing_alg_values_supported: [...DPOP_ALGORITHMS],
  };
}

/**
 * The RFC 8414 §3 well-known URL of an issuer: `/.well-known/oauth-authorization-server` inserted
 * between the host and the issuer's path.
 */
export function wellKnownPath(issuer: string): string {
  const path = new URL(issuer).pathname.replace(/\/+$/, '');
  return `/.well-known/oauth-authorization-server${path}`;
}

export function metadataRoute(service: AppTokensService) {
  const body = JSON.stringify(metadata(service));
  return (_req: Request, res: Response): void => {
    res.setHeader('Cache-Control', 'public, max-age=300');
    res.type('application/json').send(body);
  };
}

export function jwksRoute(service: AppTokensService) {
  return (_req: Request, res: Response): void => {
    // Short max-age: a rotation must reach resource servers well within a token lifetime.
    res.setHeader('Cache-Control', 'public, max-age=60');
    res.type('application/jwk-set+json').send(JSON.stringify(service.keys.jwks));
  };
}
