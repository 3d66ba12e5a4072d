/**
 * The OpenAPI 3.1 document of `routes()`, generated: request bodies, forms and query parameters
 * from the zod schemas beside each route (the ones that validate them, or describe the hand-read
 * OAuth forms), responses from `response-schemas.ts`, every operation of the management API from
 * `MANAGEMENT_ROUTES`. zod writes JSON Schema 2020-12, the dialect of OpenAPI 3.1.
 *
 * @module
 */
import type { Request, Response } from 'express';
import { z } from 'zod';
import { ID_SHAPE, PAGE_SIZE } from '../core/management.js';
import type { AppTokensService } from '../core/service.js';
import { formatQuery } from './downloads.js';
import { MANAGEMENT_ROUTES, type ManagementRoute } from './management.js';
import * as responses from './response-schemas.js';
import { createAppBody, tokenInput } from './routes/create-app.js';
import { introspectionForm } from './routes/introspect.js';
import { listAppsQuery, pageQuery } from './routes/list-apps.js';
import { listEventsQuery } from './routes/list-events.js';
import { usageQuery } from './routes/get-usage.js';

/** `GET /apps` query parameters beside the page's, as components (named like the parameter, capitalised). */
const APP_LIST_FILTERS = ['ExpiringWithin', 'ExpiringSoon', 'Search', 'Scope', 'Role', 'Locked', 'UnusedFor', 'Sort'] as const;
import { addKeyBody } from './routes/client-keys.js';
import { refreshBody } from './routes/refresh-token.js';
import { revocationForm } from './routes/revoke.js';
import { clientCredentialsForm, tokenExchangeForm } from './routes/token.js';
import { updateAppBody } from './routes/update-app.js';
import { regenerateTokenBody } from './routes/regenerate-token.js';
import { introspectBody } from './routes/introspect-me.js';

/** A JSON Schema or any other JSON object of the document. */
type Json = Record<string, unknown>;

/**
 * The OpenAPI 3.1 document of `auth.routes()`, as {@link AppTokens.openapi} returns it and
 * `GET /openapi.json` serves it. A plain JSON value: serialise it, publish it, feed it to a
 * client generator.
 */
export interface OpenApiDocument {
  openapi: '3.1.1';
  info: { title: string; version: string; description: string };
  /** One entry: the `issuer` option, where the host mounts `routes()`. */
  servers: { url: string }[];
  /** Keyed by path (`/apps/{id}`), then by lower-case method. */
  paths: Record<string, Record<string, Json>>;
  components: {
    schemas: Record<string, Json>;
    parameters: Record<string, Json>;
    responses: Record<string, Json>;
    securitySchemes: Record<string, Json>;
  };
  [member: string]: unknown;
}

/** The version of the HTTP contract this document describes (not the package's version). */
const API_VERSION = '1.0.0';

const FORM = 'application/x-www-form-urlencoded';
const PROBLEM = 'application/problem+json';

/**
 * `POST /tokens/refresh` as the handler enforces it: `refreshBody` validates the types, then the
 * handler requires these two values (answering `unsupported_grant_type` / `invalid_scope`).
 */
const refreshRequest = refreshBody.extend({
  grant_type: z.literal('token-exchange'),
  scope: z.literal('openid').optional(),
});

/** Request components, converted as the request side of each schema (`io: 'input'`). */
const REQUEST_SCHEMAS = {
  CreateAppRequest: createAppBody,
  CreateTokenRequest: tokenInput,
  AddKeyRequest: addKeyBody,
  RegenerateTokenRequest: regenerateTokenBody,
  UpdateAppRequest: updateAppBody,
  RefreshRequest: refreshRequest,
  ClientCredentialsForm: clientCredentialsForm,
  TokenExchangeForm: tokenExchangeForm,
  IntrospectionForm: introspectionForm,
  RevocationForm: revocationForm,
  PrincipalIntrospectionRequest: introspectBody,
} satisfies Record<string, z.ZodType>;

/** Response components, converted as the output side (`io: 'output'`). */
const RESPONSE_SCHEMAS = {
  App: responses.appViewSchema,
  ApiToken: responses.apiTokenViewSchema,
  IssuedApiToken: responses.issuedApiTokenSchema,
  IssuedPersonalToken: responses.issuedPersonalTokenSchema,
  CreatedKeyApp: responses.createdKeyAppSchema,
  CreateAppResponse: responses.createAppResponseSchema,
  ClientKey: responses.clientKeyViewSchema,
  ClientKeyList: responses.clientKeyListSchema,
  AppListItem: responses.appListItemSchema,
  CreatedApp: responses.createdAppSchema,
  AppDetails: responses.appDetailsSchema,
  AppPage: responses.appPageSchema,
  ApiTokenPage: responses.tokenPageSchema,
  AuditEvent: responses.auditEventSchema,
  AuditEventPage: responses.eventPageSchema,
  UsageSeries: responses.usageSeriesSchema,
  RefreshedToken: responses.refreshedTokenSchema,
  TokenResponse: responses.tokenResponseSchema,
  TokenExchangeResponse: responses.exchangeResponseSchema,
  IntrospectionResponse: responses.introspectionResponseSchema,
  PrincipalIntrospectionResponse: responses.principalIntrospectionResponseSchema,
  Principal: responses.principalSchema,
  AuthorizationServerMetadata: responses.metadataSchema,
  JsonWebKeySet: responses.jwksSchema,
  Problem: responses.problemSchema,
  OAuthError: responses.oauthErrorSchema,
  PostmanEnvironment: responses.postmanEnvironmentSchema,
} satisfies Record<string, z.ZodType>;

const uri = (id: string) => `#/components/schemas/${id}`;
const ref = (id: keyof typeof REQUEST_SCHEMAS | keyof typeof RESPONSE_SCHEMAS): Json => ({ $ref: uri(id) });

/** A set of zod schemas as JSON Schema 2020-12 components that `$ref` one another by name. */
function components(schemas: Record<string, z.ZodType>, io: 'input' | 'output'): Record<string, Json> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(schemas)) registry.add(schema, { id });
  const { schemas: out } = z.toJSONSchema(registry, { target: 'draft-2020-12', io, uri }) as { schemas: Record<string, Json> };
  // Shared definitions would need a home of their own; every reused schema here has a name.
  if ('__shared' in out) throw new Error('openapi: a schema without a component name is shared; name it');
  // The component's place in the document names it; zod's `$id` (a fragment URI) is not a valid one.
  for (const schema of Object.values(out)) {
    delete schema.$schema;
    delete schema.$id;
  }
  return out;
}

/** The members of a zod object as OpenAPI query parameters, converted as a request (`io: 'input'`). */
function queryParameters(schema: z.ZodObject, descriptions: Record<string, string> = {}): Record<string, Json> {
  const json = z.toJSONSchema(schema, { target: 'draft-2020-12', io: 'input' }) as { properties: Record<string, Json>; required?: string[] };
  const out: Record<string, Json> = {};
  for (const [name, property] of Object.entries(json.properties)) {
    const { description, ...rest } = property;
    out[name] = {
      name,
      in: 'query',
      required: json.required?.includes(name) ?? false,
      description: descriptions[name] ?? description,
      schema: rest,
    };
  }
  return out;
}

const header = (description: string, schema: Json = { type: 'string' }): Json => ({ description, schema });
const NO_STORE = header('no-store: the body carries a secret or a token', { type: 'string', const: 'no-store' });
const RETRY_AFTER = header('seconds after which a retry may succeed', { type: 'integer', minimum: 0 });

function problemResponse(description: string, extraHeaders: Record<string, Json> = {}): Json {
  return { description, headers: { 'Cache-Control': NO_STORE, ...extraHeaders }, content: { [PROBLEM]: { schema: ref('Problem') } } };
}

function oauthErrorResponse(description: string, extraHeaders: Record<string, Json> = {}): Json {
  return { description, headers: { 'Cache-Control': NO_STORE, ...extraHeaders }, content: { 'application/json': { schema: ref('OAuthError') } } };
}

const RESPONSES: Record<string, Json> = {
  BadRequest: problemResponse('validation_failed (naming the field in `field`), or a malformed request'),
  Unauthorized: problemResponse('missing_token or invalid_token: no usable bearer token', {
    'WWW-Authenticate': header('RFC 6750 §3: the Bearer challenge (when the caller used a bearer token of ours)'),
  }),
  Forbidden: problemResponse('insufficient_scope (the route needs `apps:read` or `apps:write`) or forbidden (granting a scope the caller does not hold)', {
    'WWW-Authenticate': header('RFC 6750 §3: the Bearer challenge with error="insufficient_scope" and scope'),
  }),
  NotFound: problemResponse("not_found: no such app or token in the caller's tenant (another tenant's is 404 too, never 403)"),
  Conflict: problemResponse('conflict (e.g. regenerating an expired token) or limit_exceeded (limits.tokensPerApp, limits.appsPerTenant)'),
  PayloadTooLarge: problemResponse('payload_too_large: the body is over management.bodyLimit'),
  UnsupportedMediaType: problemResponse('unsupported_media_type: the body must be application/json in UTF-8, uncompressed'),
  TooManyRequests: problemResponse('rate_limited', { 'Retry-After': RETRY_AFTER }),
  Unavailable: {
    description: 'the authorization server is starting or its store is unavailable',
    headers: { 'Retry-After': RETRY_AFTER },
    content: { 'application/json': { schema: ref('OAuthError') }, [PROBLEM]: { schema: ref('Problem') } },
  },
  OAuthBadRequest: oauthErrorResponse(
    'RFC 6749 §5.2: invalid_request, invalid_grant, unsupported_grant_type, invalid_scope, invalid_target (credentials in the query string, a repeated parameter, a body that is not a form); RFC 9449 §5, §9: invalid_dpop_proof, use_dpop_nonce (with a DPoP-Nonce header)',
  ),
  OAuthUnauthorized: oauthErrorResponse('RFC 6749 §5.2: invalid_client', {
    'WWW-Authenticate': header('Basic realm="…", when the client tried HTTP Basic'),
  }),
  OAuthPayloadTooLarge: oauthErrorResponse('the body is too large'),
  OAuthUnsupportedMediaType: oauthErrorResponse('invalid_request: a charset other than UTF-8, or a Content-Encoding'),
  OAuthTooManyRequests: oauthErrorResponse('temporarily_unavailable: too many failed authentications from this source (for this client id, or over all): RFC 6585 §4', { 'Retry-After': RETRY_AFTER }),
};

/** `/apps/:id/tokens/:tokenId` → `/apps/{id}/tokens/{tokenId}`. */
const openApiPath = (path: string) => path.replace(/:(\w+)/g, '{$1}');

interface ManagementDoc {
  operationId: string;
  summary: string;
  /** The JSON body, when the route takes one. */
  body?: keyof typeof REQUEST_SCHEMAS;
  /** Whether a JSON body must be sent (default: optional when `body` is set). */
  bodyRequired?: boolean;
  /** Status and schema of success; `secret` routes answer the download variants too. */
  ok: { status: 200 | 201 | 204; schema?: keyof typeof RESPONSE_SCHEMAS; secret?: boolean };
  paged?: boolean;
  /** Takes the filters and sort of `GET /apps` (`?expiringWithin=`, `?search=`, `?sort=`…). */
  expiring?: boolean;
  /** Takes `?type=` (`GET /apps/:id/events`). */
  eventTypes?: boolean;
  /** Takes `?from&to&interval&byToken` (`GET /apps/:id/usage`). */
  usage?: boolean;
  conflict?: boolean;
}

/** One entry per route of `MANAGEMENT_ROUTES`: a route without one fails the document's build. */
const MANAGEMENT_DOCS: Record<string, ManagementDoc> = {
  'post /apps': {
    operationId: 'createApp',
    summary: 'Create an app and its first API token (the value is shown once)',
    body: 'CreateAppRequest',
    bodyRequired: true,
    ok: { status: 201, schema: 'CreateAppResponse', secret: true },
    conflict: true,
  },
  'get /apps': {
    operationId: 'listApps',
    summary: "The tenant's apps (oldest first unless ?sort), each with a summary of its tokens; filters, search and a total count",
    ok: { status: 200, schema: 'AppPage' },
    paged: true,
    expiring: true,
  },
  'get /apps/:id': { operationId: 'getApp', summary: "An app with its live tokens' metadata, never a value", ok: { status: 200, schema: 'AppDetails' } },
  'patch /apps/:id': {
    operationId: 'updateApp',
    summary: 'Edit name, description, customClaims (scopes are fixed: sending them is 400)',
    body: 'UpdateAppRequest',
    bodyRequired: true,
    ok: { status: 200, schema: 'App' },
  },
  'delete /apps/:id': { operationId: 'deleteApp', summary: 'Delete the app: its tokens and their access tokens die at once', ok: { status: 204 } },
  'delete /apps/:id/lockout': {
    operationId: 'clearLockout',
    summary: "Clear the app's lockout: its failure tally, and every source throttled for its client id, at once on every instance",
    ok: { status: 204 },
  },
  'get /apps/:id/tokens': { operationId: 'listTokens', summary: "The app's live tokens' metadata, oldest first", ok: { status: 200, schema: 'ApiTokenPage' }, paged: true },
  'post /apps/:id/tokens': {
    operationId: 'createToken',
    summary: 'Issue another API token (the value is shown once)',
    body: 'CreateTokenRequest',
    ok: { status: 201, schema: 'IssuedApiToken', secret: true },
    conflict: true,
  },
  'post /apps/:id/tokens/:tokenId/regenerate': {
    operationId: 'regenerateToken',
    summary: 'A new value for a token; the old value dies at once, or after gracePeriod seconds',
    body: 'RegenerateTokenRequest',
    ok: { status: 200, schema: 'IssuedApiToken', secret: true },
    conflict: true,
  },
  'delete /apps/:id/tokens/:tokenId': { operationId: 'deleteToken', summary: 'Delete a token: it stops working at once', ok: { status: 204 } },
  'get /apps/:id/events': {
    operationId: 'listEvents',
    summary: "The app's audit log, newest first; ?type= keeps only those event types",
    ok: { status: 200, schema: 'AuditEventPage' },
    paged: true,
    eventTypes: true,
  },
  'get /apps/:id/usage': {
    operationId: 'getUsage',
    summary:
      "The app's usage per hour or UTC day, zero-filled: grants, bearer requests accepted and refused by reason, 429s, client-auth failures, refreshes; ?byToken=true adds one series per token. An hourly range spans at most 168 hours, a daily one at most the usage retention",
    ok: { status: 200, schema: 'UsageSeries' },
    usage: true,
  },
  'get /me/principal': {
    operationId: 'getPrincipal',
    summary: 'Who the caller is: tenant, actor, the scopes it holds (null: unrestricted); with apps:read also the declared roles',
    ok: { status: 200, schema: 'Principal' },
  },
  'get /me/tokens': {
    operationId: 'listPersonalTokens',
    summary: "The signed-in host user's live personal tokens, oldest first (only with management.resolvePrincipal and management.userScopes)",
    ok: { status: 200, schema: 'ApiTokenPage' },
    paged: true,
  },
  'post /me/tokens': {
    operationId: 'createPersonalToken',
    summary: 'A personal token acting as the signed-in host user, its scopes at most the user’s (the value is shown once)',
    body: 'CreateTokenRequest',
    ok: { status: 201, schema: 'IssuedPersonalToken', secret: true },
    conflict: true,
  },
  'delete /me/tokens/:tokenId': {
    operationId: 'deletePersonalToken',
    summary: 'Delete one of your personal tokens: it and its access tokens stop working at once',
    ok: { status: 204 },
  },
  'get /apps/:id/keys': { operationId: 'listKeys', summary: "A private_key_jwt app's public keys", ok: { status: 200, schema: 'ClientKeyList' } },
  'post /apps/:id/keys': {
    operationId: 'addKey',
    summary: 'Register another public key of a private_key_jwt app (a JWK, or a PEM public key)',
    body: 'AddKeyRequest',
    bodyRequired: true,
    ok: { status: 201, schema: 'ClientKey' },
    conflict: true,
  },
  'delete /apps/:id/keys/:kid': {
    operationId: 'deleteKey',
    summary: 'Delete a key: every access token minted with it stops working at once',
    ok: { status: 204 },
  },
  'post /me/introspect': {
    operationId: 'introspectAsPrincipal',
    summary:
      "RFC 7662-style introspection for a management principal, confined to the caller's tenant; an inactive token says why only when that reveals nothing about another tenant (another tenant's token is exactly {active: false}); never cached",
    body: 'PrincipalIntrospectionRequest',
    bodyRequired: true,
    ok: { status: 200, schema: 'PrincipalIntrospectionResponse' },
  },
};

/**
 * A success that carries a secret value: JSON, or with `?format=env` / `?format=postman` an
 * attachment (the same status, never cached).
 */
function secretSuccess(description: string, schema: keyof typeof RESPONSE_SCHEMAS): Json {
  return {
    description: `${description}. With ?format=env a .env file, with ?format=postman a Postman environment, both as attachments.`,
    headers: {
      'Cache-Control': NO_STORE,
      'Content-Disposition': header('with ?format=env or ?format=postman: attachment; filename="<app>-<token id>.env" or ".postman_environment.json"'),
    },
    content: {
      'application/json': { schema: { oneOf: [ref(schema), ref('PostmanEnvironment')] } },
      'text/plain': { schema: { type: 'string', description: "?format=env: CLIENT_ID, CLIENT_SECRET, ISSUER, TOKEN_URL as single-quoted .env lines" } },
    },
  };
}

function managementOperation(route: ManagementRoute, hostPrincipal: boolean): Json {
  const key = `${route.method} ${route.path}`;
  const doc = MANAGEMENT_DOCS[key];
  if (doc === undefined) throw new Error(`openapi: the management route ${key} has no entry in MANAGEMENT_DOCS`);
  const parameters: Json[] = [];
  if (route.path.includes(':id')) parameters.push({ $ref: '#/components/parameters/AppId' });
  if (route.path.includes(':tokenId')) parameters.push({ $ref: '#/components/parameters/TokenId' });
  if (route.path.includes(':kid')) parameters.push({ $ref: '#/components/parameters/Kid' });
  if (doc.paged) parameters.push({ $ref: '#/components/parameters/Limit' }, { $ref: '#/components/parameters/Cursor' });
  if (doc.expiring) parameters.push(...APP_LIST_FILTERS.map((name) => ({ $ref: `#/components/parameters/${name}` })));
  if (doc.eventTypes) parameters.push({ $ref: '#/components/parameters/EventType' });
  if (doc.usage) parameters.push(...Object.values(queryParameters(usageQuery)));
  if (doc.ok.secret) parameters.push({ $ref: '#/components/parameters/Format' });

  const { status, schema, secret } = doc.ok;
  const okDescription = status === 204 ? 'Done' : doc.summary;
  const ok =
    status === 204 ? { description: okDescription } : secret ? secretSuccess(okDescription, schema!) : { description: okDescription, content: { 'application/json': { schema: ref(schema!) } } };
  const errors: Record<string, Json> = {
    '400': { $ref: '#/components/responses/BadRequest' },
    '401': { $ref: '#/components/responses/Unauthorized' },
    '403': { $ref: '#/components/responses/Forbidden' },
  };
  if (route.path.includes(':id') || route.path.includes(':tokenId')) errors['404'] = { $ref: '#/components/responses/NotFound' };
  if (doc.conflict) errors['409'] = { $ref: '#/components/responses/Conflict' };
  // A body over management.bodyLimit is refused on any method, before it is read (issue 22, item 6).
  errors['413'] = { $ref: '#/components/responses/PayloadTooLarge' };
  if (route.method === 'post' || route.method === 'patch') {
    errors['415'] = { $ref: '#/components/responses/UnsupportedMediaType' };
  }
  errors['429'] = { $ref: '#/components/responses/TooManyRequests' };
  errors['503'] = { $ref: '#/components/responses/Unavailable' };

  return {
    operationId: doc.operationId,
    summary: doc.summary,
    description: `${
      route.hostUserOnly
        ? 'For a host user signed in through management.resolvePrincipal (a bearer token is refused with 403); needs management.userScopes.'
        : route.scope === null
          ? 'Any signed-in caller (a bearer token of ours or a host user), about itself.'
          : `Needs \`${route.scope}\`${route.scope === 'apps:write' ? ', and every scope the app holds' : ''}.`
    } Errors are RFC 9457 problem details.`,
    tags: ['apps'],
    // With management.resolvePrincipal the host authenticates its users; OpenAPI cannot name how.
    ...(hostPrincipal ? {} : { security: route.hostUserOnly ? [] : [{ bearerAuth: route.scope === null ? [] : [route.scope] }] }),
    ...(parameters.length ? { parameters } : {}),
    ...(doc.body
      ? { requestBody: { required: doc.bodyRequired ?? false, content: { 'application/json': { schema: ref(doc.body) } } } }
      : {}),
    responses: { [String(status)]: ok, ...errors },
  };
}

/** The operation shape every OAuth endpoint shares (client authentication, RFC 6749 §5.2 errors). */
function oauthOperation(operationId: string, summary: string, form: Json, ok: Json): Json {
  return {
    operationId,
    summary,
    description:
      'Client authentication: HTTP Basic (client_secret_basic) or client_id and client_secret in the form (client_secret_post), never both. Credentials in the query string are refused.',
    tags: ['oauth'],
    // `{}`: client_secret_post, whose credentials travel in the form, which no security scheme describes.
    security: [{ clientSecretBasic: [] }, {}],
    requestBody: { required: true, content: { [FORM]: { schema: form } } },
    responses: {
      '200': ok,
      '400': { $ref: '#/components/responses/OAuthBadRequest' },
      '401': { $ref: '#/components/responses/OAuthUnauthorized' },
      '413': { $ref: '#/components/responses/OAuthPayloadTooLarge' },
      '415': { $ref: '#/components/responses/OAuthUnsupportedMediaType' },
      '429': { $ref: '#/components/responses/OAuthTooManyRequests' },
      '503': { $ref: '#/components/responses/Unavailable' },
    },
  };
}

function build(service: AppTokensService): OpenApiDocument {
  const { issuer } = service.options;
  const hostPrincipal = service.options.management.resolvePrincipal !== undefined;
  const noStoreJson = (description: string, schema: Json): Json => ({
    description,
    headers: { 'Cache-Control': NO_STORE },
    content: { 'application/json': { schema } },
  });

  const paths: OpenApiDocument['paths'] = {
    '/.well-known/oauth-authorization-server': {
      get: {
        operationId: 'getAuthorizationServerMetadata',
        summary: 'RFC 8414 authorization server metadata',
        tags: ['discovery'],
        security: [],
        responses: { '200': { description: 'The metadata', content: { 'application/json': { schema: ref('AuthorizationServerMetadata') } } } },
      },
    },
    '/.well-known/jwks.json': {
      get: {
        operationId: 'getJwks',
        summary: 'The public signing keys (the metadata’s jwks_uri)',
        tags: ['discovery'],
        security: [],
        responses: { '200': { description: 'The JWK Set', content: { 'application/jwk-set+json': { schema: ref('JsonWebKeySet') } } } },
      },
    },
    '/openapi.json': {
      get: {
        operationId: 'getOpenApiDocument',
        summary: 'This document',
        tags: ['discovery'],
        security: [],
        responses: { '200': { description: 'The OpenAPI 3.1 document', content: { 'application/json': { schema: { type: 'object' } } } } },
      },
    },
    '/oauth/token': {
      post: {
        ...(oauthOperation(
          'token',
          'client_credentials grant (RFC 6749 §4.4) or RFC 8693 token exchange; answers an RFC 9068 JWT access token',
          { oneOf: [ref('ClientCredentialsForm'), ref('TokenExchangeForm')] },
          noStoreJson('RFC 6749 §5.1', { oneOf: [ref('TokenResponse'), ref('TokenExchangeResponse')] }),
        ) as Record<string, Json>),
        parameters: [
          {
            name: 'DPoP',
            in: 'header',
            required: false,
            description: 'RFC 9449 §4: a DPoP proof JWT (htm POST, htu this URL); the access token is then bound to its key (token_type DPoP)',
            schema: { type: 'string' },
          },
        ],
      },
    },
    '/oauth/introspect': {
      post: oauthOperation('introspect', 'RFC 7662 token introspection', ref('IntrospectionForm'), noStoreJson('RFC 7662 §2.2', ref('IntrospectionResponse'))),
    },
    '/oauth/revoke': {
      post: oauthOperation('revoke', 'RFC 7009 token revocation (an access token, or an API token with every access token it minted)', ref('RevocationForm'), {
        description: 'Revoked, or the token was unknown or not the caller’s (RFC 7009 §2.2): the same answer',
      }),
    },
    '/tokens/refresh': {
      post: {
        operationId: 'refreshToken',
        summary: 'Rotate an API token with itself as the credential: a new token back, the old one dead in the same step',
        tags: ['oauth'],
        security: [],
        parameters: [{ $ref: '#/components/parameters/Format' }],
        requestBody: {
          required: true,
          content: { 'application/json': { schema: ref('RefreshRequest') }, [FORM]: { schema: ref('RefreshRequest') } },
        },
        responses: {
          '200': secretSuccess('The new token and its value', 'RefreshedToken'),
          '400': { $ref: '#/components/responses/OAuthBadRequest' },
          '413': { $ref: '#/components/responses/OAuthPayloadTooLarge' },
          '415': { $ref: '#/components/responses/OAuthUnsupportedMediaType' },
          '429': { $ref: '#/components/responses/OAuthTooManyRequests' },
          '503': { $ref: '#/components/responses/Unavailable' },
        },
      },
    },
  };
  for (const route of MANAGEMENT_ROUTES) {
    const path = openApiPath(route.path);
    paths[path] = { ...paths[path], [route.method]: managementOperation(route, hostPrincipal) };
  }

  const idParameter = (name: string, what: string): Json => ({
    name,
    in: 'path',
    required: true,
    description: `the ${what} id`,
    schema: { type: 'string', pattern: ID_SHAPE.source },
  });
  const page = queryParameters(pageQuery, { limit: `page size, 1–${PAGE_SIZE.max} (default ${PAGE_SIZE.default})`, cursor: 'nextCursor of the previous page' });
  const format = queryParameters(formatQuery);
  const filters = queryParameters(listAppsQuery.omit({ limit: true, cursor: true }));
  const eventType = queryParameters(listEventsQuery.pick({ type: true }));

  return {
    openapi: '3.1.1',
    info: {
      title: 'express-app-tokens',
      version: API_VERSION,
      description:
        'Machine-to-machine authentication: OAuth 2.0 clients (apps) with fixed scopes, API tokens, a client_credentials token endpoint minting RFC 9068 JWTs, and the management API. Generated from the zod schemas that validate the requests.' +
        (hostPrincipal ? ' The management API is authenticated by the host (management.resolvePrincipal).' : ''),
    },
    servers: [{ url: issuer }],
    tags: [
      { name: 'discovery', description: 'RFC 8414 metadata, the JWK Set, this document' },
      { name: 'oauth', description: 'OAuth endpoints: RFC 6749 §5.2 errors' },
      { name: 'apps', description: 'The management API: RFC 9457 problem details' },
    ],
    paths,
    components: {
      schemas: { ...components(REQUEST_SCHEMAS, 'input'), ...components(RESPONSE_SCHEMAS, 'output') },
      parameters: {
        AppId: idParameter('id', 'app'),
        TokenId: idParameter('tokenId', 'token'),
        Kid: { name: 'kid', in: 'path', required: true, description: 'the key id (JWK kid)', schema: { type: 'string', minLength: 1, maxLength: 128 } },
        Limit: page.limit!,
        Cursor: page.cursor!,
        ...Object.fromEntries(APP_LIST_FILTERS.map((name) => [name, filters[name[0]!.toLowerCase() + name.slice(1)]!])),
        EventType: eventType.type!,
        Format: format.format!,
      },
      responses: RESPONSES,
      securitySchemes: {
        clientSecretBasic: {
          type: 'http',
          scheme: 'basic',
          description: 'client_secret_basic (RFC 6749 §2.3.1): the app id and an API token, each form-urlencoded. The alternative, client_secret_post, sends client_id and client_secret in the form.',
        },
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description: 'An access token from POST /oauth/token holding apps:read or apps:write (the scopes each operation lists).',
        },
      },
    },
  };
}

/** Built once per instance: issuer, catalogue and options are fixed at construction. */
const documents = new WeakMap<AppTokensService, string>();

function serialised(service: AppTokensService): string {
  let json = documents.get(service);
  if (json === undefined) {
    json = JSON.stringify(build(service));
    documents.set(service, json);
  }
  return json;
}

/** The document of `routes()` for this instance; a fresh copy each call. */
export function openApiDocument(service: AppTokensService): OpenApiDocument {
  return JSON.parse(serialised(service)) as OpenApiDocument;
}

/** `GET /openapi.json`. */
export function openApiRoute(service: AppTokensService) {
  return (_req: Request, res: Response): void => {
    res.setHeader('Cache-Control', 'public, max-age=300');
    res.type('application/json').send(serialised(service));
  };
}

