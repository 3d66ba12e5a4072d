/**
 * `POST /oauth/token`: the client_credentials grant (RFC 6749 §4.4) with client_secret_basic and
 * client_secret_post (§2.3.1), answering RFC 6749 §5.1 / §5.2.
 *
 * @module
 */
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { z } from 'zod';
import { AppTokensError } from '../../core/errors.js';
import { parseScopeString } from '../../core/scopes.js';
import type { AppTokensService } from '../../core/service.js';
import { noStore, sendOAuthError, toAppTokensError } from '../responses.js';

const FORM = 'application/x-www-form-urlencoded';
/** Parameters that are credentials and so never accepted from the query string (§2.3.1, §3.2). */
const CREDENTIAL_PARAMS = ['client_id', 'client_secret', 'client_assertion', 'subject_token', 'actor_token', 'refresh_token', 'password'];

/** The form body after the protocol checks: single values, empty ones treated as omitted (§3.1). */
const tokenRequest = z.object({
  grant_type: z.string().optional(),
  scope: z.string().optional(),
  client_id: z.string().optional(),
  client_secret: z.string().optional(),
});

const readForm = express.text({ type: FORM, limit: '16kb', defaultCharset: 'utf-8' });

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

/** The token endpoint's handlers, for `router.all('/oauth/token', …)`. */
export function tokenEndpoint(service: AppTokensService): RequestHandler[] {
  const { realm } = service.options;

  const handle = async (req: Request, res: Response): Promise<void> => {
    let basicAttempted = false;
    try {
      if (req.method !== 'POST') {
        res.setHeader('Allow', 'POST');
        throw new AppTokensError('invalid_request', 'the token endpoint accepts POST only', { status: 405 });
      }
      for (const name of CREDENTIAL_PARAMS) {
        if (req.query[name] !== undefined) {
          throw new AppTokensError('invalid_request', `${name}: credentials must be sent in the request body, never in the query string`, {
            field: name,
          });
        }
      }
      if (!req.is(FORM)) {
        throw new AppTokensError('invalid_request', `the request body must be ${FORM}`, { field: 'Content-Type' });
      }
      const params = formParams(req);
      const flat: Record<string, string> = {};
      for (const [name, values] of params) {
        // §3.2: request parameters MUST NOT be included more than once.
        if (values.length > 1) throw new AppTokensError('invalid_request', `${name}: repeated parameter`, { field: name });
        // §3.1: parameters sent without a value are treated as if they were omitted.
        if (values[0] !== '') flat[name] = values[0]!;
      }
      const body = tokenRequest.parse(flat);

      const authHeader = req.headers.authorization;
      basicAttempted = authHeader !== undefined && /^basic(\s|$)/i.test(authHeader);
      const basic = parseBasic(authHeader);
      // §2.3: a client MUST NOT use more than one authentication method in each request.
      if (basic && body.client_secret !== undefined) {
        throw new AppTokensError('invalid_request', 'client authentication: use either HTTP Basic or client_secret in the body, not both', {
          field: 'client_secret',
        });
      }
      if (basic && body.client_id !== undefined && body.client_id !== basic.clientId) {
        throw new AppTokensError('invalid_request', 'client_id: differs from the HTTP Basic client id', { field: 'client_id' });
      }

      if (body.grant_type === undefined) {
        throw new AppTokensError('invalid_request', 'grant_type: required', { field: 'grant_type' });
      }
      if (body.grant_type !== 'client_credentials') {
        throw new AppTokensError('unsupported_grant_type', `grant_type: '${body.grant_type.slice(0, 64)}' is not supported`, {
          field: 'grant_type',
        });
      }
      const requested = body.scope === undefined ? undefined : parseScopeString(body.scope);

      const clientId = basic?.clientId ?? body.client_id;
      const secret = basic?.secret ?? body.client_secret;
      if (clientId === undefined || secret === undefined) {
        throw new AppTokensError('invalid_client', 'client authentication required (client_secret_basic or client_secret_post)');
      }
      const { app, token } = await service.authenticateClient(clientId, secret);
      const response = await service.issueClientCredentials(app, token, requested);
      noStore(res);
      res.status(200).json(response);
    } catch (error) {
      sendOAuthError(res, toAppTokensError(error), realm, basicAttempted);
    }
  };

  return [
    (req: Request, res: Response, next: NextFunction) => {
      readForm(req, res, (err?: unknown) => {
        if (err) sendOAuthError(res, toAppTokensError(err), realm, false);
        else next();
      });
    },
    (req: Request, res: Response) => {
      void handle(req, res);
    },
  ];
}
