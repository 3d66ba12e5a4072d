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
import { noStore, sendOAuthError, toAppTokensError } from './responses.js';
import { introspectionEndpoint } from './routes/introspect.js';
import { revocationEndpoint } from './routes/revoke.js';
import { tokenEndpoint } from './routes/token.js';
import { jwksRoute, metadataRoute, wellKnownPath } from './routes/well-known.js';

export function createRouter(service: AppTokensService, management: AppManagement): Router {
  const router = express.Router();
  const { realm } = service.options;

  // Our paths only: the host's own routes pass through this router untouched.
  // Nothing is served before the store is ready and the signing key loaded.
  router.use(['/.well-known/oauth-authorization-server', '/.well-known/jwks.json', '/oauth', '/apps', '/tokens'], (_req: Request, res: Response, next: NextFunction) => {
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
