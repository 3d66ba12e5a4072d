/**
 * The granted-side scope test of `src/core/scopes.ts` (`GrantedScopes.grants`), for showing only
 * what the principal may use. The server decides; this only hides controls that would be refused.
 */
function resourceOf(scope: string): string | undefined {
  const i = scope.lastIndexOf(':');
  return i > 0 ? scope.slice(0, i) : undefined;
}

const isWildcard = (scope: string) => scope.endsWith(':*') && scope.length > 2;

/** Does `held` (null: unrestricted) grant `scope`? A wildcard is granted by itself or a wider one. */
export function grants(held: readonly string[] | null, scope: string): boolean {
  if (held === null) return true;
  if (held.includes(scope)) return true;
  const resources = new Set(held.filter(isWildcard).map((s) => s.slice(0, -2)));
  let r = isWildcard(scope) ? scope.slice(0, -2) : resourceOf(scope);
  while (r !== undefined) {
    if (resources.has(r)) return true;
    r = resourceOf(r);
  }
  return false;
}

export const grantsAll = (held: readonly string[] | null, scopes: readonly string[]) => scopes.every((s) => grants(held, s));
