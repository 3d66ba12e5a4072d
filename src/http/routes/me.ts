/**
 * `GET /me/principal` (`apps:read`): who the management API takes the caller for — `{tenantId,
 * actorId, scopes, roles}` — so that a client (the console) shows only the controls the caller may
 * use. `scopes` is `null` for an unrestricted principal; `roles` are the declared roles (option
 * `roles`), which an app may be given at creation.
 *
 * (`/me/principal` rather than `/me`: `/me` is a path hosts commonly use for their own routes.)
 *
 * @module
 */
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
  scope: 'apps:read',
  async handle({ res, principal, service }) {
    res.setHeader('Cache-Control', 'no-store');
    res.json({
      tenantId: principal.tenantId,
      actorId: principal.actorId,
      scopes: principal.scopes === null ? null : [...principal.scopes],
      roles: declaredRoles(service),
    });
  },
};
