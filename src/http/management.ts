/**
 * The management API router (`/apps…`): who is calling (a bearer token of ours with
 * `apps:read` / `apps:write`, or the host's `resolvePrincipal`), a JSON body parser with a size
 * limit, and one route per file under `routes/`. Errors are RFC 9457 problem details.
 *
 * @module
 */
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { AppTokensError } from '../core/errors.js';
import { checkId, type AppManagement, type Principal } from '../core/management.js';
import { GrantedScopes } from '../core/scopes.js';
import type { AppTokensService } from '../core/service.js';
import { verifyRequestBearer } from './bearer.js';
import { bodyEncodingError, capBody, closeIfUnread, declaredTooLarge } from './body.js';
import { dpopChallenge, wantsDpop } from './dpop.js';
import { sendProblem } from './problem.js';
import { toAppTokensError } from './responses.js';
import { clearLockout } from './routes/clear-lockout.js';
import { createApp } from './routes/create-app.js';
import { createToken } from './routes/create-token.js';
import { deleteApp } from './routes/delete-app.js';
import { deleteToken } from './routes/delete-token.js';
import { getApp } from './routes/get-app.js';
import { getUsage } from './routes/get-usage.js';
import { listApps } from './routes/list-apps.js';
import { listEvents } from './routes/list-events.js';
import { listTokens } from './routes/list-tokens.js';
import { createPersonalToken, deletePersonalToken, listPersonalTokens } from './routes/personal-tokens.js';
import { addKey, deleteKey, listKeys } from './routes/client-keys.js';
import { regenerateToken } from './routes/regenerate-token.js';
import { updateApp } from './routes/update-app.js';
import { getPrincipal } from './routes/me.js';
import { introspectAsPrincipal } from './routes/introspect-me.js';

/** What a management route handler gets. */
export interface ManagementContext {
  req: Request;
  res: Response;
  /** Path parameters, as strings (empty when the route has none). */
  params: { id: string; tokenId: string };
  principal: Principal;
  management: AppManagement;
  issuer: string;
  /** The service, for routes that read options or verify tokens (`/me/…`). */
  service: AppTokensService;
}

/** One route of the management API: a file under `routes/`. */
export interface ManagementRoute {
  method: 'get' | 'post' | 'patch' | 'delete';
  path: string;
  /** The scope the caller must hold; `null`: any signed-in caller (the route checks the rest). */
  scope: 'apps:read' | 'apps:write' | null;
  /**
   * Only for a host user signed in through `management.resolvePrincipal` (personal tokens): a
   * bearer token — an app, or a personal token itself — is refused with 403.
   */
  hostUserOnly?: boolean;
  handle(context: ManagementContext): Promise<void>;
}

export const MANAGEMENT_ROUTES: readonly ManagementRoute[] = [
  createApp,
  listApps,
  getApp,
  updateApp,
  deleteApp,
  clearLockout,
  listTokens,
  createToken,
  regenerateToken,
  deleteToken,
  listEvents,
  getUsage,
  getPrincipal,
  introspectAsPrincipal,
  listPersonalTokens,
  createPersonalToken,
  deletePersonalToken,
  listKeys,
  addKey,
  deleteKey,
];

interface Caller {
  principal: Principal;
  /** Whether the caller used one of our bearer tokens (then 401/403 carry a Bearer challenge). */
  bearer: boolean;
}

/** The Content-Type header says JSON (whether or not a body follows). */
function declaresJson(req: Request): boolean {
  return /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i.test(req.headers['content-type'] ?? '');
}

function isPrincipal(value: unknown): value is Principal {
  if (typeof value !== 'object' || value === null) return false;
  const p = value as Record<string, unknown>;
  return (
    typeof p.tenantId === 'string' &&
    (p.scopes === null || (Array.isArray(p.scopes) && p.scopes.every((s) => typeof s === 'string'))) &&
    (p.actorId === null || p.actorId === undefined || typeof p.actorId === 'string')
  );
}

export function managementRouter(service: AppTokensService, management: AppManagement): Router {
  const router = express.Router();
  const { realm, issuer } = service.options;
  const { resolvePrincipal, bodyLimit } = service.options.management;
  const json = capBody(express.json({ limit: bodyLimit, strict: true }), bodyLimit);

  const fail = (res: Response, error: unknown, bearer: boolean) => {
    const e = toAppTokensError(error, service.log);
    // RFC 9449 §7.1: a refusal that needs DPoP also names that scheme (as authenticate() does).
    const challenge = bearer ? e.bearerChallenge(realm) : undefined;
    sendProblem(res, e, { challenge: challenge !== undefined && wantsDpop(e) ? `${challenge}, ${dpopChallenge()}` : challenge });
  };

  const caller = async (req: Request): Promise<Caller> => {
    if (resolvePrincipal) {
      const principal: unknown = await resolvePrincipal(req);
      if (principal === null || principal === undefined) {
        throw new AppTokensError('missing_token', 'sign in to manage apps', { status: 401 });
      }
      if (!isPrincipal(principal)) {
        throw new AppTokensError('server_error', 'management.resolvePrincipal returned something that is not a principal');
      }
      return { principal: { ...principal, actorId: principal.actorId ?? null }, bearer: false };
    }
    const auth = await verifyRequestBearer(service, req);
    return { principal: { tenantId: auth.tenantId, scopes: auth.scopes, actorId: auth.clientId }, bearer: true };
  };

  const paths = new Map<string, string[]>();
  for (const route of MANAGEMENT_ROUTES) {
    paths.set(route.path, [...(paths.get(route.path) ?? []), route.method.toUpperCase()]);
    router[route.method](route.path, (req: Request, res: Response, next: NextFunction) => {
      let bearer = resolvePrincipal === undefined;
      void (async () => {
        try {
          // A body declared over the limit: 413 before a byte of it is read and before the
          // credential is looked at (issue 22, item 6).
          const oversized = declaredTooLarge(req, res, bodyLimit);
          if (oversized) throw oversized;
          const who = await caller(req);
          bearer = who.bearer;
          // A path id that cannot be ours: 404 before any lookup or audit event (issue 11, finding 5).
          if (req.params.id !== undefined) checkId(String(req.params.id), 'app');
          if (req.params.tokenId !== undefined) checkId(String(req.params.tokenId), 'token');
          if (route.hostUserOnly && who.bearer) {
            // A personal token minting more personal tokens would outlive its own expiry and deletion.
            throw new AppTokensError('forbidden', 'personal tokens are managed by a host user signed in to the host (management.resolvePrincipal), not with a bearer token');
          }
          if (route.scope !== null && who.principal.scopes !== null && !new GrantedScopes(who.principal.scopes).grants(route.scope)) {
            const error = new AppTokensError('insufficient_scope', `this request needs the scope ${route.scope}`, {
              scopes: [route.scope],
            });
            management.recordRefusal(who.principal, `${route.method} ${route.path}`, req.params.id ? String(req.params.id) : null, error);
            throw error;
          }
          if (route.method === 'post' || route.method === 'patch') {
            const hasBody = req.headers['content-length'] !== '0' && (req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0);
            // With a host session (cookies), a cross-site HTML form could POST with the user's
            // credentials; it cannot send application/json without a CORS preflight. So then every
            // POST and PATCH must declare JSON, even an empty one.
            if ((hasBody || resolvePrincipal !== undefined) && !declaresJson(req)) {
              throw new AppTokensError('unsupported_media_type', 'body: must be application/json', { field: 'Content-Type' });
            }
            const refused = bodyEncodingError(req, 'unsupported_media_type');
            if (refused) throw refused;
            await new Promise<void>((resolve, reject) => json(req, res, (err?: unknown) => (err ? reject(err) : resolve())));
          }
          const params = { id: String(req.params.id ?? ''), tokenId: String(req.params.tokenId ?? '') };
          await route.handle({ req, res, params, principal: who.principal, management, issuer, service });
        } catch (error) {
          if (res.headersSent) return next(error);
          // Refused before its body was read (no credential, say): close, do not drain it.
          closeIfUnread(req, res);
          fail(res, error, bearer);
        }
      })();
    });
  }
  // A known path with another method: 405 with Allow, as problem details.
  for (const [path, methods] of paths) {
    router.all(path, (_req: Request, res: Response) => {
      res.setHeader('Allow', methods.join(', '));
      sendProblem(res, new AppTokensError('method_not_allowed', `use ${methods.join(' or ')}`));
    });
  }
  // What escaped a route (a path parameter Express could not decode): problem details, never 5xx text.
  router.use((error: unknown, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(error);
    fail(res, error, false);
  });
  return router;
}
