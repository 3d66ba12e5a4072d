/**
 * zod schemas of what the routers answer: the views of `core/views.ts`, the OAuth bodies, RFC 9457
 * problem details and the download formats. They validate nothing at run time; the OpenAPI
 * document is generated from them (`openapi.ts`), and the compile-time checks at the end of this
 * file fail `tsc` when a view and its schema part ways.
 *
 * Objects are strict (`additionalProperties: false`) where we write every member ourselves, so a
 * member added to a view without its schema fails the document tests.
 *
 * @module
 */
import { z } from 'zod';
import type { AuditEvent } from '../core/events.js';
import type { ErrorCode } from '../core/errors.js';
import { AUDIT_EVENT_TYPES, type AppDetails, type AppListPage, type CreatedApp, type CreatedKeyApp, type PageView } from '../core/management.js';
import type { ClientKeyView } from '../core/client-keys.js';
import type { TokenResponse } from '../core/service.js';
import type { IssuedPersonalToken } from '../core/personal-tokens.js';
import type { ApiTokenView, AppListItem, AppView, IssuedApiToken } from '../core/views.js';
import type { AuditEventType } from '../store.js';
import { BEARER_REFUSALS, type BearerRefusal } from '../core/signals.js';
import type { UsageSeries } from '../core/usage.js';
import { OAUTH_CODES } from './responses.js';

const isoDate = z.iso.datetime({ precision: 3 }).meta({ description: 'ISO 8601, UTC, milliseconds' });
const id = (description: string) => z.string().meta({ description });

export const appViewSchema = z
  .strictObject({
    id: id('the app id'),
    clientId: id('same as id: the OAuth 2.0 client_id'),
    tenantId: z.string(),
    name: z.string(),
    description: z.string().nullable(),
    scopes: z.array(z.string()).meta({ description: 'fixed at creation' }),
    roles: z.array(z.string()).meta({ description: 'names of host-declared roles, fixed at creation' }),
    tokenEndpointAuthMethod: z
      .enum(['client_secret_basic', 'client_secret_post', 'private_key_jwt'])
      .meta({ description: 'RFC 7591 §2: a client secret (both secret methods are accepted), or private_key_jwt (RFC 7523 §2.2)' }),
    jwksUri: z.string().nullable().meta({ description: 'private_key_jwt: where the client publishes its keys; null otherwise' }),
    dpopBoundAccessTokens: z.boolean().meta({ description: 'RFC 9449 §5: every access token must be DPoP-bound' }),
    unknownRoles: z.array(z.string()).meta({ description: 'role names the host no longer declares (normally empty): they grant nothing' }),
    effectiveScopes: z
      .array(z.string())
      .meta({ description: "what the app's tokens may carry today: its scopes and those of its roles as the host defines them now" }),
    unknownScopes: z
      .array(z.string())
      .meta({ description: 'stored scopes the current catalogue no longer declares (normally empty): no token carries them' }),
    customClaims: z.record(z.string(), z.unknown()),
    creationDate: isoDate,
    updateDate: isoDate,
  })
  .meta({ description: 'An app (an OAuth 2.0 client of one tenant) as shown to its managers.' });

export const apiTokenViewSchema = z
  .strictObject({
    id: id('the token id'),
    appId: z.string(),
    name: z.string(),
    hint: z.string().meta({ description: 'a short non-secret hint such as eat_…x9Qz' }),
    scopes: z.array(z.string()).nullable().meta({ description: "null: all of the app's scopes" }),
    creationDate: isoDate,
    expirationDate: isoDate.nullable(),
    lastUsedDate: isoDate.nullable(),
    status: z
      .enum(['active', 'retiring', 'expired'])
      .meta({ description: 'expired: past its expiration date, refused everywhere; retiring: regenerated with a grace period, works until expirationDate' }),
    expiringSoon: z.boolean().meta({ description: 'active, not retiring, and expiring within the widest notifyBeforeExpiry threshold (7 days by default)' }),
  })
  .meta({ description: 'API-token metadata; never the value.' });

const secretValue = z.string().meta({ description: 'the API token value (the client_secret): shown once, never again' });

export const issuedApiTokenSchema = z
  .strictObject({ token: apiTokenViewSchema, value: secretValue })
  .meta({ description: 'A new API token and its value (shown once).' });

export const createdAppSchema = z
  .strictObject({ app: appViewSchema, token: apiTokenViewSchema, value: secretValue })
  .meta({ description: 'The app, its first API token, and that token’s value (shown once).' });

export const lockoutViewSchema = z
  .strictObject({
    failures: z.number().int().meta({ description: "failed authentications naming the app's client id, from every source, in the current window" }),
    lastFailureAt: isoDate.nullable().meta({ description: 'the last of them; null: none recently' }),
    throttledSources: z.number().int().meta({ description: 'sources (addresses; IPv6 by /64) throttled for this client in the current lockout period' }),
    until: isoDate.nullable().meta({ description: 'when the last of them is let through again; null: none is throttled' }),
  })
  .meta({ description: 'Failed authentications naming the app. They throttle their sources, never the app’s correct credential; DELETE /apps/{id}/lockout clears them.' });

export const appDetailsSchema = appViewSchema
  .extend({
    tokens: z.array(apiTokenViewSchema).meta({ description: "the first page of the app's live tokens" }),
    tokensNextCursor: z.string().nullable().meta({ description: 'pages on through GET /apps/{id}/tokens?cursor= (null: that was all)' }),
    lockout: lockoutViewSchema.nullable().meta({ description: 'null when the host turned clientLockout off' }),
  })
  .meta({ description: "An app with the first page of its live tokens' metadata." });

const nextCursor = z.string().nullable().meta({ description: 'opaque; pass as ?cursor= for the next page; null on the last page' });

export const clientKeyViewSchema = z
  .strictObject({
    kid: z.string(),
    alg: z.enum(['RS256', 'PS256', 'ES256', 'EdDSA']).meta({ description: 'the one algorithm assertions signed with this key may use' }),
    thumbprint: z.string().meta({ description: 'RFC 7638 SHA-256 thumbprint' }),
    jwk: z.record(z.string(), z.unknown()).meta({ description: 'the public JWK (never a private member)' }),
    creationDate: isoDate,
    expirationDate: isoDate.nullable(),
    status: z.enum(['active', 'expired']),
  })
  .meta({ description: 'A public key of a private_key_jwt app.' });

export const clientKeyListSchema = z.strictObject({ items: z.array(clientKeyViewSchema) });

export const createdKeyAppSchema = z
  .strictObject({ app: appViewSchema, token: z.null(), value: z.null(), keys: z.array(clientKeyViewSchema) })
  .meta({ description: 'A private_key_jwt app: it has no secret (token and value are null), only its keys.' });

export const createAppResponseSchema = z.union([createdAppSchema, createdKeyAppSchema]);

export const appListItemSchema = appViewSchema
  .extend({
    tokenSummary: z.strictObject({
      active: z.number().int().meta({ description: 'tokens that work now (retiring ones included)' }),
      expiringSoon: z.number().int().meta({ description: 'of those, how many expire soon' }),
      lastUsedDate: isoDate.nullable().meta({ description: "the last use of any of the app's tokens" }),
    }),
    usage: z
      .strictObject({
        requests24h: z.number().int().meta({ description: 'grants, bearer requests (accepted or refused), client-auth failures and refreshes of the last 24 h' }),
        refusals24h: z.number().int().meta({ description: 'bearer refusals, 429s and client-auth failures of the last 24 h' }),
        requests30d: z.number().int(),
        refusals30d: z.number().int(),
      })
      .meta({ description: 'usage counts of the last 24 hours and 30 days (whole hours, UTC)' }),
  })
  .meta({ description: 'An app in a listing, with a summary of its tokens and of its usage.' });

const usageCount = z.number().int().min(0);
export const usagePointSchema = z
  .strictObject({
    start: isoDate.meta({ description: "the bucket's start (UTC)" }),
    grants: z.record(z.string(), usageCount).meta({ description: 'access tokens issued, by grant type (client_credentials, token_exchange)' }),
    accepted: usageCount.meta({ description: 'bearer requests authenticate() let through' }),
    refused: z
      .strictObject(Object.fromEntries(BEARER_REFUSALS.map((r) => [r, usageCount])) as Record<BearerRefusal, typeof usageCount>)
      .meta({ description: 'bearer requests refused, by reason (a refusal counts for an app only when verified data names it)' }),
    rateLimited: usageCount.meta({ description: 'requests answered 429 by rateLimit()' }),
    clientAuthFailures: usageCount.meta({ description: 'failed client authentications naming this app at the OAuth endpoints' }),
    refreshes: usageCount.meta({ description: 'API tokens rotated through POST /tokens/refresh' }),
  })
  .meta({ description: 'One bucket of a usage series.' });

export const usageSeriesSchema = z
  .strictObject({
    interval: z.enum(['hour', 'day']),
    from: isoDate.meta({ description: "the first bucket's start" }),
    to: isoDate.meta({ description: 'the end of the last bucket (exclusive)' }),
    series: z.array(usagePointSchema).meta({ description: 'one point per bucket, oldest first, zero-filled' }),
    tokens: z
      .array(z.strictObject({ tokenId: z.string().meta({ description: 'an API token (or client key) of the app' }), series: z.array(usagePointSchema) }))
      .optional()
      .meta({ description: 'with byToken=true: one series per credential with counts in the range' }),
  })
  .meta({ description: "An app's usage counts per hour or UTC day." });

export const issuedPersonalTokenSchema = z
  .strictObject({
    token: apiTokenViewSchema,
    value: secretValue,
    clientId: z.string().meta({ description: "the user's personal client: client_id at the token endpoint" }),
  })
  .meta({ description: 'A new personal token, its value (shown once), and the client id to use it with.' });

export const appPageSchema = z.strictObject({
  items: z.array(appListItemSchema),
  nextCursor,
  total: z
    .number()
    .int()
    .nullable()
    .meta({ description: 'how many apps match the filters (every page); null when not known (?locked=true filters each page)' }),
});
export const tokenPageSchema = z.strictObject({ items: z.array(apiTokenViewSchema), nextCursor });

/** The event types, from the one list core keeps (it fails to compile when a type is missing). */
const EVENT_TYPES = AUDIT_EVENT_TYPES;

export const auditEventSchema = z
  .strictObject({
    id: z.string(),
    type: z.enum(EVENT_TYPES),
    outcome: z.enum(['success', 'failure']),
    tenantId: z.string(),
    appId: z.string().nullable(),
    tokenId: z.string().nullable(),
    actorId: z.string().nullable().meta({ description: 'who acted: a client id, a host user id, cli, or null' }),
    at: isoDate,
    data: z.record(z.string(), z.unknown()).meta({ description: 'small, secret-free details' }),
  })
  .meta({ description: 'An audit record; never a secret.' });

export const eventPageSchema = z.strictObject({ items: z.array(auditEventSchema), nextCursor });

export const refreshedTokenSchema = z
  .strictObject({
    token: z.strictObject({ id: z.string(), name: z.string(), creationDate: isoDate, expirationDate: isoDate.nullable() }),
    value: secretValue,
  })
  .meta({ description: 'The new API token; the one presented is dead.' });

export const tokenResponseSchema = z
  .strictObject({
    access_token: z.string().meta({ description: 'an RFC 9068 JWT (typ at+jwt)' }),
    token_type: z.enum(['Bearer', 'DPoP']).meta({ description: 'DPoP when the request carried a DPoP proof: the token is bound to its key (RFC 9449 §5)' }),
    expires_in: z.number().int(),
    scope: z.string().meta({ description: 'the granted scopes, space-separated' }),
  })
  .meta({ description: 'RFC 6749 §5.1: a client_credentials grant.' });

export const exchangeResponseSchema = tokenResponseSchema
  .extend({ issued_token_type: z.literal('urn:ietf:params:oauth:token-type:access_token') })
  .meta({ description: 'RFC 8693 §2.2.1: a token exchange.' });

/** An active token as RFC 7662 §2.2 describes it; a new schema per use (a shared one would need a component name of its own). */
const activeIntrospection = () =>
  z.strictObject({
    active: z.literal(true),
    scope: z.string(),
    client_id: z.string(),
    sub: z.string(),
    iss: z.string(),
    aud: z.union([z.string(), z.array(z.string())]).optional(),
    exp: z.number().int().optional(),
    iat: z.number().int().optional(),
    jti: z.string().optional(),
    cnf: z.strictObject({ jkt: z.string() }).optional().meta({ description: 'RFC 9449 §6.2: the key a DPoP-bound token is bound to' }),
    token_type: z.enum(['Bearer', 'DPoP']),
    tenant_id: z.string(),
    api_token_id: z.string(),
  });

export const introspectionResponseSchema = z
  .union([activeIntrospection(), z.strictObject({ active: z.literal(false) })])
  .meta({
    description: "RFC 7662 §2.2: active tokens of the caller's tenant are described; anything else is exactly {\"active\": false}.",
  });

/** Why `POST /me/introspect` finds a token not active (issue 25 item 7). */
export const INACTIVE_REASONS = ['expired', 'revoked', 'app_deleted', 'unknown_key', 'invalid_signature', 'other_issuer', 'malformed'] as const;

export const principalIntrospectionResponseSchema = z
  .union([
    activeIntrospection(),
    z.strictObject({
      active: z.literal(false),
      reason: z.enum(INACTIVE_REASONS).optional().meta({
        description:
          "why not active. expired, revoked, app_deleted: only for a token verifiably the caller's tenant's (a JWT signed by our key naming that tenant, an API token found in it). unknown_key, invalid_signature, other_issuer, malformed: what the token itself shows against the public keys and issuer, naming no tenant. Absent for anything else, another tenant's token above all",
      }),
    }),
  ])
  .meta({
    description: "POST /me/introspect: RFC 7662 §2.2's answer for the caller's tenant; an inactive token may say why (never for another tenant's token, which is exactly {\"active\": false}).",
  });

export const principalSchema = z
  .strictObject({
    tenantId: z.string(),
    actorId: z.string().nullable().meta({ description: 'recorded in audit events: a client id or a host user id' }),
    scopes: z.array(z.string()).nullable().meta({ description: 'the scopes the caller holds, wildcards included; null: unrestricted' }),
    roles: z
      .array(z.strictObject({ name: z.string(), scopes: z.array(z.string()), description: z.string().nullable() }))
      .optional()
      .meta({ description: 'the roles the host declared (option roles), which an app may be given at creation; only for a caller holding apps:read' }),
  })
  .meta({ description: 'GET /me/principal: who the management API takes the caller for (any signed-in caller, about itself).' });

export const metadataSchema = z
  .strictObject({
    issuer: z.string(),
    token_endpoint: z.string(),
    jwks_uri: z.string(),
    response_types_supported: z
      .array(z.literal('none'))
      .meta({ description: 'RFC 8414 §2 (REQUIRED): there is no authorization endpoint, so only `none` (nothing is issued through one)' }),
    grant_types_supported: z.array(z.string()),
    token_endpoint_auth_methods_supported: z.array(z.string()),
    token_endpoint_auth_signing_alg_values_supported: z.array(z.string()),
    introspection_endpoint: z.string(),
    introspection_endpoint_auth_methods_supported: z.array(z.string()),
    introspection_endpoint_auth_signing_alg_values_supported: z.array(z.string()),
    revocation_endpoint: z.string(),
    revocation_endpoint_auth_methods_supported: z.array(z.string()),
    revocation_endpoint_auth_signing_alg_values_supported: z.array(z.string()),
    scopes_supported: z.array(z.string()),
    dpop_signing_alg_values_supported: z.array(z.string()).meta({ description: 'RFC 9449 §5.1: the algorithms a DPoP proof may use' }),
  })
  .meta({ description: 'RFC 8414 §2.' });

export const jwksSchema = z
  .strictObject({
    keys: z.array(
      z.looseObject({ kty: z.string(), kid: z.string(), alg: z.string(), use: z.literal('sig') }).meta({
        description: 'a public JWK (RFC 7517); its key members depend on kty',
      }),
    ),
  })
  .meta({ description: 'RFC 7517 §5: the public signing keys, retired ones until their tokens expire.' });

const ERROR_CODES = [
  'invalid_request',
  'invalid_client',
  'invalid_grant',
  'unauthorized_client',
  'unsupported_grant_type',
  'invalid_scope',
  'invalid_target',
  'invalid_token',
  'insufficient_scope',
  'invalid_dpop_proof',
  'use_dpop_nonce',
  'missing_token',
  'validation_failed',
  'forbidden',
  'not_found',
  'conflict',
  'limit_exceeded',
  'payload_too_large',
  'method_not_allowed',
  'unsupported_media_type',
  'rate_limited',
  'unavailable',
  'invalid_signature',
  'invalid_options',
  'key_error',
  'server_error',
] as const satisfies readonly ErrorCode[];

export const problemSchema = z
  .strictObject({
    type: z.literal('about:blank'),
    title: z.string().meta({ description: 'the HTTP status phrase (RFC 9457 §4.2.1)' }),
    status: z.number().int(),
    detail: z.string().meta({ description: 'what went wrong, naming the field' }),
    code: z.enum(ERROR_CODES).meta({ description: 'stable error code: switch on this' }),
    field: z.string().optional().meta({ description: 'the request field the error is about, e.g. scopes[2]' }),
  })
  .meta({ description: 'RFC 9457 problem details.' });

export const oauthErrorSchema = z
  .strictObject({
    error: z.enum([...OAUTH_CODES] as [string, ...string[]]),
    error_description: z.string(),
  })
  .meta({ description: 'RFC 6749 §5.2 error response.' });

export const postmanEnvironmentSchema = z
  .strictObject({
    id: z.string(),
    name: z.string(),
    values: z.array(
      z.strictObject({
        key: z.enum(['CLIENT_ID', 'CLIENT_SECRET', 'ISSUER', 'TOKEN_URL']),
        value: z.string(),
        type: z.enum(['default', 'secret']),
        enabled: z.boolean(),
      }),
    ),
    _postman_variable_scope: z.literal('environment'),
  })
  .meta({ description: '?format=postman: a Postman environment holding the client id and secret.' });

// ---- compile-time: each schema describes its view exactly ------------------------------------------

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Missing<T extends readonly string[], U extends string> = Exclude<U, T[number]>;
const exact: [
  Same<z.infer<typeof appViewSchema>, AppView>,
  Same<z.infer<typeof apiTokenViewSchema>, ApiTokenView>,
  Same<z.infer<typeof issuedApiTokenSchema>, IssuedApiToken>,
  Same<z.infer<typeof createdAppSchema>, CreatedApp>,
  Same<z.infer<typeof appDetailsSchema>, AppDetails>,
  Same<z.infer<typeof appPageSchema>, AppListPage>,
  Same<z.infer<typeof issuedPersonalTokenSchema>, IssuedPersonalToken>,
  Same<z.infer<typeof createdKeyAppSchema>, CreatedKeyApp>,
  Same<z.infer<typeof clientKeyViewSchema>, ClientKeyView>,
  Same<z.infer<typeof tokenPageSchema>, PageView<ApiTokenView>>,
  Same<z.infer<typeof auditEventSchema>, AuditEvent>,
  Same<z.infer<typeof tokenResponseSchema>, TokenResponse>,
  Same<z.infer<typeof usageSeriesSchema>, UsageSeries>,
  Same<Missing<typeof EVENT_TYPES, AuditEventType>, never>,
  Same<Missing<typeof ERROR_CODES, ErrorCode>, never>,
] = [true, true, true, true, true, true, true, true, true, true, true, true, true, true, true];
void exact;
