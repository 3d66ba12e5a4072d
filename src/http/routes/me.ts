/**
 * `GET /me/principal` (any signed-in caller): who the management API takes the caller for —
 * `{tenantId, actorId, scopes, roles?}` — so that a client (the console) shows only the controls the
 * caller may use. `scopes` is `null` for an unrestricted principal. Every caller may read its own
 * principal (a host user without `apps:read` is named and offered only the scopes it holds, issue 25
 * item 5); `roles`, the declared roles (option `roles`) an app may be given at creation, are about
 * something else and only for a caller holding `apps:read`.
 *
 * (`/me/principal` rather than `/me`: `/me` is a path hosts commonly use for their own routes.)
 *
 * @module
 */
import { GrantedScopes } from '../../core/scopes.js';
import type { ManagementRoute } from '../management.js';
import type { AppTokensService } from '../../core/service.js';

/** A declared role as listed to managers. */
export interface RoleListing {
  name: string;
  scopes: string[];
  description: string | null;
}

/** The roles the host declared (`roles` option); none when the option is absent. */
export function declaredRoles(service: AppTokensService): RoleListing[] {
  const roles = (service.options as { roles?: ReadonlyArray<{ name: string; scopes: readonly string[]; description?: string | null | undefined }> }).roles;
  return (roles ?? []).map((r) => ({ name: r.name, scopes: [...r.scopes], description: r.description ?? null }));
}

export const getPrincipal: ManagementRoute = {
  method: 'get',
  path: '/me/principal',
  // Its own principal only: no scope needed.
  scope: null,
  async handle({ res, principal, service }) {
    res.setHeader('Cache-Control', 'no-store');
    const mayRead = principal.scopes === null || new GrantedScopes(principal.scopes).grants('apps:read');
    res.json({
      tenantId: principal.tenantId,
      actorId: principal.actorId,
      scopes: principal.scopes === null ? null : [...principal.scopes],
      ...(mayRead ? { roles: declaredRoles(service) } : {}),
    });
  },
};
