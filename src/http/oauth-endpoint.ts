/**
 * What every OAuth endpoint of ours shares (`/oauth/token`, `/oauth/introspect`, `/oauth/revoke`):
 * POST with a form body only, no credentials in the query string, no repeated parameters, and
 * client authentication by client_secret_basic or client_secret_post (RFC 6749 §2.3.1, §3.2),
 * answering RFC 6749 §5.2 errors.
 *
 * @module
 */
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import type { Span } from '@opentelemetry/api';
import { z } from 'zod';
import { AppTokensError } from '../core/errors.js';
import { warnOnce } from '../core/options.js';
import type { AppTokensService } from '../core/service.js';
import type { AuthenticatedClient, ClientAuthRequest } from '../core/client-auth.js';
import { JWT_BEARER_ASSERTION } from '../core/private-key-jwt.js';
import { ATTR, withSpan } from '../core/telemetry.js';
import { repeatedAuthorization } from './bearer.js';
import { bodyEncodingError, capBody } from './body.js';
import { noStore, sendOAuthError, toAppTokensError } from './responses.js';

const FORM = 'application/x-www-form-urlencoded';
/** Parameters that are credentials and so never accepted from the query string (§2.3.1, §3.2). */
const CREDENTIAL_PARAMS = ['client_id', 'client_secret', 'client_assertion', 'subject_token', 'actor_token', 'refresh_token', 'password'];

/** Largest form body of the OAuth endpoints, bytes. */
const FORM_LIMIT = 16 * 1024;
const readForm = capBody(express.text({ type: FORM, limit: FORM_LIMIT, defaultCharset: 'utf-8' }), FORM_LIMIT);

/** Form parameters as `name → values`, from our own read or from a body the host already parsed. */
function formParams(req: Request): Map<string, string[]> {
  const params = new Map<string, string[]>();
  const add = (name: string, value: string) => {
    const values = params.get(name);
    if (values) values.push(value);
    else params.set(name, [value]);
  };
  if (typeof req.body === 'string') {
    for (const [name, value] of new URLSearchParams(req.body)) add(name, value);
  } else if (req.body && typeof req.body === 'object') {
    // A host-level urlencoded parser already consumed the stream; repeats arrive as arrays.
    for (const [name, value] of Object.entries(req.body as Record<string, unknown>)) {
      for (const v of Array.isArray(value) ? value : [value]) {
        if (typeof v !== 'string') {
          throw new AppTokensError('invalid_request', `${name}: must be a plain form value`, { field: name });
        }
        add(name, v);
      }
    }
  }
  return params;
}

interface BasicCredentials {
  clientId: string;
  secret: string;
}

/**
 * RFC 6749 §2.3.1 / RFC 7617: `Basic base64(urlencode(id) ":" urlencode(secret))`. `undefined` when
 * the request does not use Basic; throws `invalid_client` when it does but the value is malformed.
 */
function parseBasic(header: string | undefined): BasicCredentials | undefined {
  if (header === undefined) return undefined;
  const space = header.indexOf(' ');
  const scheme = space === -1 ? header : header.slice(0, space);
  if (scheme.toLowerCase() !== 'basic') return undefined;
  const encoded = header.slice(space + 1).trim();
  const malformed = () => new AppTokensError('invalid_client', 'malformed Basic credentials');
  if (space === -1 || !/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) throw malformed();
  const decoded = Buffer.from(encoded, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon === -1) throw malformed();
  try {
    // §2.3.1: both parts are application/x-www-form-urlencoded before Basic encoding.
    const formDecode = (s: string) => decodeURIComponent(s.replace(/\+/g, ' '));
    return { clientId: formDecode(decoded.slice(0, colon)), secret: formDecode(decoded.slice(colon + 1)) };
  } catch {
    throw malformed();
  }
}

/** What an OAuth endpoint's handler gets: single-valued parameters and the authenticated client. */
export interface OAuthContext {
  req: Request;
  res: Response;
  /** Parameters sent once each; empty ones dropped (§3.1). */
  params: Readonly<Record<string, string>>;
  client: AuthenticatedClient;
}

export interface OAuthEndpoint {
  /** Checks of the parameters alone, answered before any store read. */
  precheck?(params: Readonly<Record<string, string>>): void;
  /** The name of the span of each request (option `telemetry`), e.g. `oauth.token`. */
  span?: string;
  /** After the precheck passed: the grant's short name (`client_credentials`), added to the span's name and attributes. */
  grantType?(params: Readonly<Record<string, string>>): string | undefined;
  handle(context: OAuthContext): Promise<void>;
}

/** Express handlers for an OAuth endpoint, for `router.all(path, …)`. */
export function oauthEndpoint(service: AppTokensService, endpoint: OAuthEndpoint): RequestHandler[] {
  const { realm } = service.options;
  const traced = service.options.telemetry.enabled ? endpoint.span : undefined;

  const handle = async (req: Request, res: Response, span?: Span): Promise<void> => {
    let basicAttempted = false;
    try {
      if (req.method !== 'POST') {
        res.setHeader('Allow', 'POST');
        throw new AppTokensError('invalid_request', 'this endpoint accepts POST only', { status: 405 });
      }
      // Express 5 parses the query string on every read of req.query: read it once, if there is one.
      const query = req.url.includes('?') ? (req.query as Record<string, unknown>) : {};
      for (const name of CREDENTIAL_PARAMS) {
        if (query[name] !== undefined) {
          throw new AppTokensError('invalid_request', `${name}: credentials must be sent in the request body, never in the query string`, {
            field: name,
          });
        }
      }
      // The exact media type with a body (what every client sends) skips type-is's parse of the header.
      const exactForm = req.headers['content-type'] === FORM && req.headers['content-length'] !== undefined;
      if (!exactForm && !req.is(FORM)) {
        throw new AppTokensError('invalid_request', `the request body must be ${FORM}`, { field: 'Content-Type' });
      }
      const params: Record<string, string> = {};
      for (const [name, values] of formParams(req)) {
        // §3.2: request parameters MUST NOT be included more than once.
        if (values.length > 1) throw new AppTokensError('invalid_request', `${name}: repeated parameter`, { field: name });
        // §3.1: parameters sent without a value are treated as if they were omitted.
        if (values[0] !== '') params[name] = values[0]!;
      }

      const authHeader = req.headers.authorization;
      if (authHeader !== undefined && repeatedAuthorization(req)) {
        throw new AppTokensError('invalid_request', 'Authorization: sent more than once', { field: 'Authorization' });
      }
      // Any Authorization header counts as an attempt to authenticate with it (RFC 6749 §5.2).
      basicAttempted = authHeader !== undefined;
      const basic = parseBasic(authHeader);
      // §2.3: a client MUST NOT use more than one authentication method in each request.
      if (basic && params.client_secret !== undefined) {
        throw new AppTokensError('invalid_request', 'client authentication: use either HTTP Basic or client_secret in the body, not both', {
          field: 'client_secret',
        });
      }
      if (basic && params.client_id !== undefined && params.client_id !== basic.clientId) {
        throw new AppTokensError('invalid_request', 'client_id: differs from the HTTP Basic client id', { field: 'client_id' });
      }
      endpoint.precheck?.(params);
      if (span !== undefined) tagGrant(span, endpoint, params);

      // req.ip honours the host's `trust proxy`: failures are throttled per source (clientLockout).
      // Behind a proxy Express does not trust, every client is one source (the proxy): say so once.
      if (service.lockout !== undefined && req.headers['x-forwarded-for'] !== undefined && req.ip === req.socket.remoteAddress) {
        warnOnce(
          'express-app-tokens: requests carry X-Forwarded-For but Express does not trust it (app.set("trust proxy", <hops>)); every client behind the proxy is then one source for clientLockout, and failures from one of them throttle the others',
          'EAT_TRUST_PROXY',
        );
      }
      const client = await service.authenticateClient({ ...clientAuthRequest(basic, params), source: req.ip, door: endpoint.span });
      span?.setAttribute(ATTR.authMethod, client.method);
      span?.setAttribute(ATTR.clientId, client.app.id);
      noStore(res);
      await endpoint.handle({ req, res, params, client });
    } catch (error) {
      const refusal = toAppTokensError(error, service.log);
      // The error code only: a description may echo what the client sent.
      span?.setAttribute(ATTR.errorType, refusal.code);
      sendOAuthError(res, refusal, realm, basicAttempted);
    }
  };

  return [
    (req: Request, res: Response, next: NextFunction) => {
      // Before the body is read: a foreign charset is never decoded, a compressed body never inflated.
      const refused = req.method === 'POST' ? bodyEncodingError(req, 'invalid_request') : undefined;
      if (refused) return sendOAuthError(res, refused, realm, false);
      readForm(req, res, (err?: unknown) => {
        if (err) sendOAuthError(res, toAppTokensError(err, service.log), realm, false);
        else next();
      });
    },
    traced
      ? (req: Request, res: Response) => {
          void withSpan(traced, {}, (span) => handle(req, res, span));
        }
      : (req: Request, res: Response) => {
          void handle(req, res);
        },
  ];
}

/** Name the span after the grant, once the precheck has accepted its type (never a raw client value). */
function tagGrant(span: Span, endpoint: OAuthEndpoint, params: Readonly<Record<string, string>>): void {
  const grant = endpoint.grantType?.(params);
  if (grant === undefined) return;
  // The attribute is the grant_type as sent (a URN for token exchange); the name its short form.
  span.setAttribute(ATTR.grantType, params.grant_type!);
  span.updateName(`${endpoint.span} ${grant}`);
}

/**
 * Which method the request used, after the rules every method shares: one method per request
 * (RFC 6749 §2.3), an assertion as `client_assertion_type` + `client_assertion` (RFC 7521 §4.2).
 */
function clientAuthRequest(basic: BasicCredentials | undefined, params: Readonly<Record<string, string>>): ClientAuthRequest {
  const type = params.client_assertion_type;
  const assertion = params.client_assertion;
  if (type !== undefined || assertion !== undefined) {
    if (basic !== undefined || params.client_secret !== undefined) {
      throw new AppTokensError('invalid_request', 'client authentication: use either a client secret or client_assertion, not both', {
        field: 'client_assertion',
      });
    }
    if (type === undefined) throw new AppTokensError('invalid_request', 'client_assertion_type: required with client_assertion', { field: 'client_assertion_type' });
    if (assertion === undefined) throw new AppTokensError('invalid_request', 'client_assertion: required with client_assertion_type', { field: 'client_assertion' });
    // RFC 7521 §4.2.1: an assertion type we do not support cannot authenticate the client.
    if (type !== JWT_BEARER_ASSERTION) throw new AppTokensError('invalid_client', 'client authentication failed');
    return { method: 'private_key_jwt', clientId: params.client_id, assertion };
  }
  const clientId = basic?.clientId ?? params.client_id;
  const secret = basic?.secret ?? params.client_secret;
  if (clientId === undefined || secret === undefined) {
    throw new AppTokensError('invalid_client', 'client authentication required (client_secret_basic, client_secret_post or private_key_jwt)');
  }
  return { method: basic ? 'client_secret_basic' : 'client_secret_post', clientId, secret };
}

/**
 * client_secret_post (RFC 6749 §2.3.1): the client's credentials as form parameters, instead of
 * HTTP Basic (never both). Describes the form for the OpenAPI document and is extended by each
 * endpoint's form; the parameters are read by hand above, so validation does not go through it.
 */
export const clientSecretPostForm = z.object({
  client_id: z.string().min(1).optional().meta({ description: 'client_secret_post: the app id; with HTTP Basic, omit it or repeat the Basic one' }),
  client_secret: z.string().min(1).optional().meta({ description: 'client_secret_post: an API token of the app; never together with HTTP Basic' }),
});
