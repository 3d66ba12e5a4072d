/**
 * Roles: named scope bundles declared by the host (option `roles`), given to an app at creation
 * and resolved into scopes each time a token is minted or verified — so a host that redefines a
 * role changes every access token minted afterwards (issue 13).
 *
 * @module
 */
import type { AppRecord } from '../store.js';
import { AppTokensError } from './errors.js';
import { GrantedScopes, isWildcard, type ScopeCatalogue } from './scopes.js';

/** A role as declared in the options and shown by the management API. */
export interface RoleDefinition {
  name: string;
  /** Catalogue scopes or wildcards. */
  scopes: readonly string[];
  description: string | null;
}

/**
 * The scopes of `held` that `bound` grants. A wildcard of `held` that `bound` does not grant whole
 * narrows to the catalogue scopes under it that `bound` grants (`storage:*` ∩ `storage:read` →
 * `storage:read`). Returns `held` itself when nothing is dropped.
 */
export function intersectScopes(catalogue: ScopeCatalogue, held: readonly string[], bound: GrantedScopes): readonly string[] {
  let out: string[] | undefined;
  for (let i = 0; i < held.length; i++) {
    const scope = held[i]!;
    if (bound.grants(scope)) {
      out?.push(scope);
      continue;
    }
    out ??= held.slice(0, i);
    if (isWildcard(scope)) {
      const under = new GrantedScopes([scope]);
      for (const s of catalogue.scopes) if (under.grants(s) && bound.grants(s)) out.push(s);
    }
  }
  return out === undefined ? held : [...new Set(out)];
}

/** The declared roles, validated against the scope catalogue at construction. */
export class RoleCatalogue {
  readonly #roles: ReadonlyMap<string, RoleDefinition>;
  readonly #catalogue: ScopeCatalogue;
  /** Effective scopes per app record (records are immutable copies; a cached client reuses its own). */
  readonly #effective = new WeakMap<AppRecord, readonly string[]>();

  /** @throws AppTokensError `invalid_options` naming `roles[i].scopes[j]` for a scope outside the catalogue. */
  constructor(roles: ReadonlyArray<{ name: string; scopes: readonly string[]; description?: string | undefined }>, catalogue: ScopeCatalogue) {
    this.#catalogue = catalogue;
    const map = new Map<string, RoleDefinition>();
    roles.forEach((role, i) => {
      catalogue.assertKnown(role.scopes, `roles[${i}].scopes`, 'invalid_options');
      map.set(role.name, Object.freeze({ name: role.name, scopes: Object.freeze([...new Set(role.scopes)]), description: role.description ?? null }));
    });
    this.#roles = map;
  }

  /** Every declared role, in declaration order. */
  list(): RoleDefinition[] {
    return [...this.#roles.values()];
  }

  get(name: string): RoleDefinition | undefined {
    return this.#roles.get(name);
  }

  /** The app's roles the host still declares (a role removed from the options grants nothing). */
  knownRoles(app: AppRecord): string[] {
    return (app.roles ?? []).filter((r) => this.#roles.has(r));
  }

  /**
   * What an app may be granted: its own scopes and those of each of its declared roles, within
   * the current catalogue (a scope the host removed is dropped).
   */
  scopesOf(app: AppRecord): readonly string[] {
    const cached = this.#effective.get(app);
    if (cached !== undefined) return cached;
    const roles = app.roles ?? [];
    let scopes: readonly string[] = this.#catalogue.retain(app.scopes);
    if (roles.length > 0) {
      const all = new Set(scopes);
      for (const name of roles) for (const s of this.#roles.get(name)?.scopes ?? []) all.add(s);
      scopes = [...all];
    }
    this.#effective.set(app, scopes);
    return scopes;
  }

  /**
   * Check role names given to a new app: declared (else 400 naming `roles[i]`), and each one's
   * scopes held by `holder` (else 403 naming the role). Returns them deduplicated.
   */
  checkAssignable(names: unknown, holder: GrantedScopes | null): string[] {
    if (!Array.isArray(names)) {
      throw new AppTokensError('validation_failed', 'roles: must be an array of role names', { field: 'roles' });
    }
    const out = new Set<string>();
    // Every name is checked before any delegation: an unknown role is a 400 whatever comes first.
    const roles = names.map((name, i) => {
      const role = typeof name === 'string' ? this.#roles.get(name) : undefined;
      if (role === undefined) {
        const known = [...this.#roles.keys()];
        throw new AppTokensError(
          'validation_failed',
          `roles[${i}]: unknown role${typeof name === 'string' ? ` '${name.replace(/[^\x20-\x7e]/g, '?').slice(0, 64)}'` : ''}; declared: ${known.length ? known.join(', ') : 'none'}`,
          { field: `roles[${i}]` },
        );
      }
      return role;
    });
    roles.forEach((role, i) => {
      if (holder !== null) {
        const missing = holder.missing(role.scopes);
        if (missing.length > 0) {
          throw new AppTokensError(
            'forbidden',
            `roles[${i}]: you cannot assign the role '${role.name}': it grants ${missing.map((s) => `'${s}'`).join(', ')}, which you do not hold`,
            { field: `roles[${i}]` },
          );
        }
      }
      out.add(role.name);
    });
    return [...out];
  }
}
