/**
 * `auth.routes()`: every endpoint of the HTTP contract, as one Express router.
 *
 * @module
 */
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import type { AppManagement } from '../core/management.js';
import type { AppTokensService } from '../core/service.js';
import { managementRouter } from './management.js';
import { refreshToken } from './routes/refresh-token.js';
import { openApiRoute } from './openapi.js';
import { noStore, sendOAuthError, toAppTokensError } from './responses.js';
import { introspectionEndpoint } from './routes/introspect.js';
import { revocationEndpoint } from './routes/revoke.js';
import { tokenEndpoint } from './routes/token.js';
import { jwksRoute, metadataRoute, wellKnownPath } from './routes/well-known.js';

/** The path prefixes of the HTTP contract: everything `routes()` serves is under one of them. */
const OUR_PREFIXES = ['/.well-known/oauth-authorization-server', '/.well-known/jwks.json', '/openapi.json', '/oauth', '/apps', '/tokens', '/me/principal', '/me/introspect', '/me/tokens'];
/** Their second characters, lower case: a cheap first test that turns most host paths away. */
const OUR_SECOND_CHARS = new Set(OUR_PREFIXES.map((p) => p[1]!));

/**
 * Is `path` one of ours, matched as Express matches a mount path: case-insensitively, on a whole
 * segment (`/apps` and `/apps/x`, not `/appsx`)?
 */
export function isOurPath(path: string): boolean {
  if (path.length < 2 || !OUR_SECOND_CHARS.has(path[1]!.toLowerCase())) return false;
  const lower = path.toLowerCase();
  return OUR_PREFIXES.some((p) => lower.startsWith(p) && (lower.length === p.length || lower[p.length] === '/'));
}

/**
 * `auth.routes()`. Mounted at the root, it sits in front of every route of the host, so it is one
 * layer that hands our paths to the router below and passes every other request on at once: a host
 * route pays one prefix test, not a walk over our ~25 layers (issue 6 measured that walk at up to
 * 10% of a protected request). The inner router is called as a function, so it sees the URL
 * unchanged.
 */
export function createRouter(service: AppTokensService, management: AppManagement): Router {
  const inner = innerRouter(service, management);
  const router = express.Router();
  router.use((req: Request, res: Response, next: NextFunction) => {
    if (!isOurPath(req.path)) return next();
    inner(req, res, next);
  });
  return router;
}

function innerRouter(service: AppTokensService, management: AppManagement): Router {
  const router = express.Router();
  const { realm } = service.options;

  // Only our paths reach this router (see createRouter); nothing is served before the store is
  // ready and the signing key loaded.
  router.use((_req: Request, res: Response, next: NextFunction) => {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    if (service.isReady) return next();
    service.ready().then(
      () => next(),
      (error: unknown) => {
        toAppTokensError(error, service.log);
        noStore(res);
        res.setHeader('Retry-After', '5');
        res.status(503).json({ error: 'temporarily_unavailable', error_description: 'the authorization server is starting or unavailable' });
      },
    );
  });

  router.get('/.well-known/oauth-authorization-server', metadataRoute(service));
  router.get('/.well-known/jwks.json', jwksRoute(service));
  router.get('/openapi.json', openApiRoute(service));
  router.all('/oauth/token', ...tokenEndpoint(service));
  router.all('/oauth/introspect', ...introspectionEndpoint(service));
  router.all('/oauth/revoke', ...revocationEndpoint(service));
  router.all('/tokens/refresh', ...refreshToken(service, management));
  router.use(managementRouter(service, management));

  // Anything that escaped a handler: never a stack trace.
  router.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    sendOAuthError(res, toAppTokensError(error, service.log), realm, false);
  });
  return router;
}

/** RFC 8414 §3: the path-insertion discovery URL, for hosts that mount `routes()` under a path. */
export function wellKnownRouter(service: AppTokensService): Router {
  const router = express.Router();
  const path = wellKnownPath(service.options.issuer);
  const serve = metadataRoute(service);
  router.get(path, (req, res, next) => {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    if (service.isReady) return serve(req, res);
    service.ready().then(() => serve(req, res), next);
  });
  return router;
}
