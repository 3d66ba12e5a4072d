/**
 * Scopes: RFC 6749 §3.3 syntax, a catalogue declared by the host, wildcards on the granted side,
 * and requirement checks compiled once.
 *
 * A wildcard `resource:*` grants every scope of the catalogue that starts with `resource:`.
 * Wildcards exist only on the granted side (an app's scopes, an admin's scopes); a requirement
 * names concrete scopes.
 *
 * @module
 */
import { AppTokensError } from './errors.js';

/** RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ) */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;
/** Longest scope string we accept anywhere, so that hostile input stays cheap. */
const MAX_SCOPE_LENGTH = 128;

/** The resource part of `resource:action`, or `undefined` when the scope has no colon. */
function resourceOf(scope: string): string | undefined {
  const i = scope.lastIndexOf(':');
  return i > 0 ? scope.slice(0, i) : undefined;
}

/**
 * The root of a catalogue: the wildcard of each resource (`storage:read storage:write` →
 * `storage:*`), and each scope without a resource as it is. What a tenant's bootstrap admin holds,
 * so that it may grant any wildcard of the catalogue (issue 13).
 */
export function rootScopes(catalogue: readonly string[]): string[] {
  return [...new Set(catalogue.map((s) => {
    const resource = resourceOf(s);
    return resource === undefined ? s : `${resource}:*`;
  }))];
}

/** `true` when `scope` is a wildcard such as `storage:*`. */
export function isWildcard(scope: string): boolean {
  return scope.endsWith(':*') && scope.length > 2;
}

/**
 * Parse a space-delimited scope string (RFC 6749 §3.3). Returns the distinct scopes in order.
 * Throws `invalid_scope` naming `field` for a malformed string.
 */
export function parseScopeString(value: string, field = 'scope'): string[] {
  if (value.length > 4096) {
    throw new AppTokensError('invalid_scope', `${field}: too long`, { field });
  }
  // §3.3: scope = scope-token *( SP scope-token ): single spaces, no leading or trailing space.
  const parts = value.split(' ');
  const seen = new Set<string>();
  for (const part of parts) {
    if (!SCOPE_TOKEN.test(part)) {
      throw new AppTokensError(
        'invalid_scope',
        `${field}: must be scope tokens separated by single spaces (RFC 6749 §3.3)`,
        { field },
      );
    }
    seen.add(part);
  }
  return [...seen];
}

/**
 * A set of granted scopes, wildcards included, answering "does it grant X" in O(1).
 */
export class GrantedScopes {
  readonly #exact: Set<string>;
  readonly #resources: Set<string>;
  /** The granted scopes as given (wildcards included), deduplicated. */
  readonly list: readonly string[];

  constructor(scopes: Iterable<string>) {
    this.#exact = new Set(scopes);
    this.list = [...this.#exact];
    this.#resources = new Set();
    for (const scope of this.#exact) {
      if (isWildcard(scope)) this.#resources.add(scope.slice(0, -2));
    }
  }

  /** Does this set grant `scope`? A wildcard is granted only by itself or a wider wildcard. */
  grants(scope: string): boolean {
    if (this.#exact.has(scope)) return true;
    if (this.#resources.size === 0) return false;
    // `storage:*` grants `storage:read` and `storage:objects:read`; walk the resource's prefixes.
    let r = isWildcard(scope) ? scope.slice(0, -2) : resourceOf(scope);
    while (r !== undefined) {
      if (this.#resources.has(r)) return true;
      r = resourceOf(r);
    }
    return false;
  }

  /** The members of `requested` this set does not grant. */
  missing(requested: Iterable<string>): string[] {
    const out: string[] = [];
    for (const scope of requested) if (!this.grants(scope)) out.push(scope);
    return out;
  }
}

/**
 * The host's scope catalogue. Every scope an app, a token or a route names must be in it (or be
 * a wildcard that covers at least one of its scopes).
 */
export class ScopeCatalogue {
  readonly scopes: readonly string[];
  readonly #set: Set<string>;

  /** @throws AppTokensError `invalid_options` naming the bad entry of `option`. */
  constructor(scopes: readonly string[], option = 'scopes') {
    this.#set = new Set();
    scopes.forEach((scope, i) => {
      if (typeof scope !== 'string' || !SCOPE_TOKEN.test(scope) || scope.length > MAX_SCOPE_LENGTH) {
        throw new AppTokensError('invalid_options', `"${option}[${i}]" is not a valid scope token (RFC 6749 §3.3)`, {
          field: `${option}[${i}]`,
        });
      }
      if (isWildcard(scope)) {
        throw new AppTokensError(
          'invalid_options',
          `"${option}[${i}]": the catalogue lists concrete scopes; wildcards are granted, not declared`,
          { field: `${option}[${i}]` },
        );
      }
      this.#set.add(scope);
    });
    this.scopes = [...this.#set];
  }

  /** Is `scope` a catalogue scope, or a wildcard covering at least one? */
  knows(scope: string): boolean {
    if (this.#set.has(scope)) return true;
    if (!isWildcard(scope)) return false;
    const prefix = scope.slice(0, -1); // keep the colon
    for (const s of this.#set) if (s.startsWith(prefix)) return true;
    return false;
  }

  /**
   * Check a list of scopes against the catalogue. Throws `code` naming `field[i]` for the first
   * unknown or malformed scope.
   */
  assertKnown(
    scopes: readonly string[],
    field: string,
    code: 'invalid_scope' | 'validation_failed' | 'invalid_options' = 'invalid_scope',
  ): void {
    scopes.forEach((scope, i) => {
      if (!this.knows(scope)) {
        throw new AppTokensError(code, `${field}[${i}]: unknown scope '${printable(scope)}'`, {
          field: `${field}[${i}]`,
        });
      }
    });
  }

  /**
   * The scopes of `scopes` that this catalogue declares (wildcards covering at least one of its
   * scopes count): a stored app or token may hold a scope the host has since removed, which no
   * token may carry. Returns `scopes` itself when nothing is dropped.
   */
  retain(scopes: readonly string[]): readonly string[] {
    for (const s of scopes) if (!this.knows(s)) return scopes.filter((x) => this.knows(x));
    return scopes;
  }

  /** Expand a granted list (wildcards included) into the concrete catalogue scopes it grants. */
  expand(granted: GrantedScopes): string[] {
    return this.scopes.filter((s) => granted.grants(s));
  }
}

/** A requirement compiled once: `check(granted)` returns the missing scopes (empty when satisfied). */
export interface ScopeRequirement {
  readonly mode: 'all' | 'any';
  readonly scopes: readonly string[];
  check(granted: GrantedScopes): readonly string[];
}

/** Compile `requireScopes(...)` / `requireAnyScope(...)` arguments against the catalogue. */
export function compileRequirement(
  catalogue: ScopeCatalogue,
  mode: 'all' | 'any',
  scopes: readonly string[],
): ScopeRequirement {
  const fn = mode === 'all' ? 'requireScopes' : 'requireAnyScope';
  if (scopes.length === 0) {
    throw new AppTokensError('invalid_options', `${fn}() needs at least one scope`);
  }
  scopes.forEach((scope, i) => {
    if (typeof scope !== 'string' || isWildcard(scope) || !catalogue.knows(scope)) {
      throw new AppTokensError('invalid_options', `${fn}() argument ${i}: unknown scope '${printable(String(scope))}'`, {
        field: `${fn}[${i}]`,
      });
    }
  });
  const list = Object.freeze([...new Set(scopes)]);
  if (mode === 'all') {
    return {
      mode,
      scopes: list,
      check: (granted) => {
        let missing: string[] | undefined;
        for (const s of list) {
          if (!granted.grants(s)) (missing ??= []).push(s);
        }
        return missing ?? NONE;
      },
    };
  }
  return {
    mode,
    scopes: list,
    check: (granted) => {
      for (const s of list) if (granted.grants(s)) return NONE;
      return list;
    },
  };
}

const NONE: readonly string[] = Object.freeze([]);

/** Make a caller-supplied value safe to echo in a message. */
export function printable(value: string): string {
  const clean = value.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 64 ? `${clean.slice(0, 61)}...` : clean;
}
