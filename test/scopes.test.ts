import { describe, it, expect } from 'vitest';
import { thrown } from './helpers.js';
import { GrantedScopes, ScopeCatalogue, compileRequirement, isWildcard, parseScopeString } from '../src/core/scopes.js';


describe('parseScopeString', () => {
  it('RFC 6749 §3.3: parses single-space separated scope-tokens in order', () => {
    expect(parseScopeString('storage:read storage:write')).toEqual(['storage:read', 'storage:write']);
    expect(parseScopeString('a')).toEqual(['a']);
  });

  it('RFC 6749 §3.3: accepts every character of %x21 / %x23-5B / %x5D-7E in a scope-token', () => {
    let allowed = '\x21';
    for (let c = 0x23; c <= 0x5b; c++) allowed += String.fromCharCode(c);
    for (let c = 0x5d; c <= 0x7e; c++) allowed += String.fromCharCode(c);
    expect(parseScopeString(allowed)).toEqual([allowed]);
  });

  it('deduplicates repeated scopes, keeping the first occurrence order', () => {
    expect(parseScopeString('b a b a c')).toEqual(['b', 'a', 'c']);
  });

  it('RFC 6749 §3.3: rejects the empty string (at least one scope-token)', () => {
    const e = thrown(() => parseScopeString(''));
    expect(e.code).toBe('invalid_scope');
  });

  it('RFC 6749 §3.3: rejects a scope string with a leading space', () => {
    expect(thrown(() => parseScopeString(' a')).code).toBe('invalid_scope');
  });

  it('RFC 6749 §3.3: rejects a scope string with a trailing space', () => {
    expect(thrown(() => parseScopeString('a ')).code).toBe('invalid_scope');
  });

  it('RFC 6749 §3.3: rejects a scope string with a double space', () => {
    expect(thrown(() => parseScopeString('a  b')).code).toBe('invalid_scope');
  });

  it('RFC 6749 §3.3: rejects a string of spaces only', () => {
    expect(thrown(() => parseScopeString(' ')).code).toBe('invalid_scope');
    expect(thrown(() => parseScopeString('   ')).code).toBe('invalid_scope');
  });

  it('RFC 6749 §3.3: rejects other whitespace as a separator (tab, newline)', () => {
    expect(thrown(() => parseScopeString('a\tb')).code).toBe('invalid_scope');
    expect(thrown(() => parseScopeString('a\nb')).code).toBe('invalid_scope');
  });

  it('RFC 6749 §3.3: rejects a double quote (%x22) in a scope-token', () => {
    expect(thrown(() => parseScopeString('a"b')).code).toBe('invalid_scope');
  });

  it('RFC 6749 §3.3: rejects a backslash (%x5C) in a scope-token', () => {
    expect(thrown(() => parseScopeString('a\\b')).code).toBe('invalid_scope');
  });

  it('RFC 6749 §3.3: rejects non-ASCII characters', () => {
    expect(thrown(() => parseScopeString('café')).code).toBe('invalid_scope');
    expect(thrown(() => parseScopeString('read\u00a0write')).code).toBe('invalid_scope');
    expect(thrown(() => parseScopeString('\u{1F600}')).code).toBe('invalid_scope');
  });

  it('RFC 6749 §3.3: rejects control characters (%x00-1F and DEL %x7F)', () => {
    for (const c of ['\x00', '\x01', '\x1f', '\x7f']) {
      expect(thrown(() => parseScopeString(`a${c}b`)).code).toBe('invalid_scope');
    }
  });

  it('names the field in the error message and in error.field', () => {
    const def = thrown(() => parseScopeString('a  b'));
    expect(def.message).toContain('scope');
    expect(def.field).toBe('scope');
    const custom = thrown(() => parseScopeString('a  b', 'body.requested_scope'));
    expect(custom.message).toContain('body.requested_scope');
    expect(custom.field).toBe('body.requested_scope');
    expect(custom.status).toBe(400);
  });

  it('rejects an overlong scope string with invalid_scope', () => {
    const e = thrown(() => parseScopeString('a'.repeat(4097)));
    expect(e.code).toBe('invalid_scope');
    expect(e.message).toContain('scope');
  });
});

describe('isWildcard', () => {
  it('recognises `resource:*` and nothing else', () => {
    expect(isWildcard('storage:*')).toBe(true);
    expect(isWildcard('storage:objects:*')).toBe(true);
    expect(isWildcard('storage:read')).toBe(false);
    expect(isWildcard('*')).toBe(false);
    expect(isWildcard(':*')).toBe(false);
    expect(isWildcard('storage*')).toBe(false);
  });
});

describe('GrantedScopes', () => {
  it('grants exactly the scopes it holds', () => {
    const g = new GrantedScopes(['storage:read', 'billing']);
    expect(g.grants('storage:read')).toBe(true);
    expect(g.grants('billing')).toBe(true);
    expect(g.grants('storage:write')).toBe(false);
    expect(g.grants('billing:read')).toBe(false);
  });

  it('an exact scope does not grant a wider or sibling scope', () => {
    const g = new GrantedScopes(['storage:objects:read']);
    expect(g.grants('storage:read')).toBe(false);
    expect(g.grants('storage:*')).toBe(false);
    expect(g.grants('storage:objects:*')).toBe(false);
  });

  it('`storage:*` grants `storage:read` and `storage:objects:read`', () => {
    const g = new GrantedScopes(['storage:*']);
    expect(g.grants('storage:read')).toBe(true);
    expect(g.grants('storage:objects:read')).toBe(true);
    expect(g.grants('storage:a:b:c')).toBe(true);
  });

  it('`storage:*` does not grant `storagex:read`, `notarization:read` or bare `storage`', () => {
    const g = new GrantedScopes(['storage:*']);
    expect(g.grants('storagex:read')).toBe(false);
    expect(g.grants('notarization:read')).toBe(false);
    expect(g.grants('storage')).toBe(false);
    expect(g.grants('xstorage:read')).toBe(false);
  });

  it('a narrower wildcard does not grant the wider resource', () => {
    const g = new GrantedScopes(['storage:objects:*']);
    expect(g.grants('storage:objects:read')).toBe(true);
    expect(g.grants('storage:read')).toBe(false);
    expect(g.grants('storage:*')).toBe(false);
  });

  it('a wildcard is granted by itself or by a wider wildcard, not by concrete scopes', () => {
    expect(new GrantedScopes(['storage:*']).grants('storage:*')).toBe(true);
    expect(new GrantedScopes(['storage:*']).grants('storage:objects:*')).toBe(true);
    expect(new GrantedScopes(['storage:read', 'storage:write']).grants('storage:*')).toBe(false);
    expect(new GrantedScopes(['notarization:*']).grants('storage:*')).toBe(false);
  });

  it('list is the deduplicated input, wildcards included', () => {
    expect(new GrantedScopes(['a', 'storage:*', 'a']).list).toEqual(['a', 'storage:*']);
  });

  it('missing() returns the requested scopes it does not grant, in order', () => {
    const g = new GrantedScopes(['storage:*', 'billing:read']);
    expect(g.missing(['storage:read', 'billing:write', 'billing:read', 'notarization:read'])).toEqual([
      'billing:write',
      'notarization:read',
    ]);
    expect(g.missing(['storage:read', 'billing:read'])).toEqual([]);
    expect(new GrantedScopes([]).missing(['a'])).toEqual(['a']);
  });
});

describe('ScopeCatalogue', () => {
  it('keeps the catalogue scopes, deduplicated', () => {
    expect(new ScopeCatalogue(['a:read', 'a:write', 'a:read']).scopes).toEqual(['a:read', 'a:write']);
  });

  it('RFC 6749 §3.3: rejects a malformed entry with invalid_options naming `scopes[i]`', () => {
    for (const [list, index] of [
      [['ok', 'bad scope'], 1],
      [['', 'ok'], 0],
      [['ok', 'ok2', 'quo"te'], 2],
      [['back\\slash'], 0],
      [['café'], 0],
    ] as const) {
      const e = thrown(() => new ScopeCatalogue(list));
      expect(e.code).toBe('invalid_options');
      expect(e.message).toContain(`scopes[${index}]`);
      expect(e.field).toBe(`scopes[${index}]`);
    }
  });

  it('rejects a non-string entry naming its index', () => {
    const e = thrown(() => new ScopeCatalogue(['ok', 42 as unknown as string]));
    expect(e.code).toBe('invalid_options');
    expect(e.field).toBe('scopes[1]');
  });

  it('rejects an entry longer than 128 characters', () => {
    expect(() => new ScopeCatalogue(['a'.repeat(128)])).not.toThrow();
    const e = thrown(() => new ScopeCatalogue(['a'.repeat(129)]));
    expect(e.code).toBe('invalid_options');
    expect(e.field).toBe('scopes[0]');
  });

  it('rejects a wildcard entry with invalid_options naming `scopes[i]`', () => {
    const e = thrown(() => new ScopeCatalogue(['storage:read', 'storage:*']));
    expect(e.code).toBe('invalid_options');
    expect(e.message).toContain('scopes[1]');
    expect(e.message).toContain('wildcard');
  });

  it('names the option given to the constructor', () => {
    const e = thrown(() => new ScopeCatalogue(['ok', 'bad scope'], 'extraScopes'));
    expect(e.message).toContain('extraScopes[1]');
    expect(e.field).toBe('extraScopes[1]');
  });

  it('knows() catalogue scopes and nothing else', () => {
    const c = new ScopeCatalogue(['storage:read', 'storage:objects:read', 'billing']);
    expect(c.knows('storage:read')).toBe(true);
    expect(c.knows('billing')).toBe(true);
    expect(c.knows('storage:write')).toBe(false);
    expect(c.knows('billing:read')).toBe(false);
  });

  it('knows() a wildcard only when it covers at least one catalogue scope', () => {
    const c = new ScopeCatalogue(['storage:read', 'storage:objects:read', 'billing']);
    expect(c.knows('storage:*')).toBe(true);
    expect(c.knows('storage:objects:*')).toBe(true);
    expect(c.knows('notarization:*')).toBe(false);
    expect(c.knows('billing:*')).toBe(false);
    expect(c.knows('stor:*')).toBe(false);
    expect(c.knows('storage:read:*')).toBe(false);
  });

  it('assertKnown passes for catalogue scopes and covering wildcards', () => {
    const c = new ScopeCatalogue(['storage:read', 'billing']);
    expect(() => c.assertKnown(['storage:read', 'storage:*', 'billing'], 'scopes')).not.toThrow();
  });

  it("assertKnown names `field[i]` and `unknown scope 'x'`", () => {
    const c = new ScopeCatalogue(['storage:read', 'billing']);
    const e = thrown(() => c.assertKnown(['billing', 'x'], 'body.scopes'));
    expect(e.code).toBe('invalid_scope');
    expect(e.message).toContain('body.scopes[1]');
    expect(e.message).toContain("unknown scope 'x'");
    expect(e.field).toBe('body.scopes[1]');
  });

  it('assertKnown throws the requested code', () => {
    const c = new ScopeCatalogue(['a']);
    expect(thrown(() => c.assertKnown(['b'], 'scopes', 'validation_failed')).code).toBe('validation_failed');
    expect(thrown(() => c.assertKnown(['b'], 'scopes', 'invalid_options')).code).toBe('invalid_options');
  });

  it('assertKnown refuses a wildcard that covers no catalogue scope', () => {
    const c = new ScopeCatalogue(['storage:read']);
    const e = thrown(() => c.assertKnown(['notarization:*'], 'scopes'));
    expect(e.message).toContain("unknown scope 'notarization:*'");
  });

  it('assertKnown makes an unprintable scope safe in the message', () => {
    const c = new ScopeCatalogue(['a']);
    const e = thrown(() => c.assertKnown(['x\r\ny'], 'scopes'));
    expect(e.message).not.toMatch(/[\r\n]/);
    expect(e.message).toContain("unknown scope 'x??y'");
  });

  it('expand() lists the catalogue scopes a granted set covers', () => {
    const c = new ScopeCatalogue(['storage:read', 'storage:objects:read', 'billing']);
    expect(c.expand(new GrantedScopes(['storage:*']))).toEqual(['storage:read', 'storage:objects:read']);
    expect(c.expand(new GrantedScopes(['billing', 'nope']))).toEqual(['billing']);
  });
});

describe('compileRequirement', () => {
  const catalogue = new ScopeCatalogue(['storage:read', 'storage:write', 'billing:read']);

  it("'all' returns the missing scopes, empty when every one is granted", () => {
    const req = compileRequirement(catalogue, 'all', ['storage:read', 'storage:write', 'billing:read']);
    expect(req.mode).toBe('all');
    expect(req.check(new GrantedScopes(['storage:read']))).toEqual(['storage:write', 'billing:read']);
    expect(req.check(new GrantedScopes(['storage:*', 'billing:read']))).toEqual([]);
    expect(req.check(new GrantedScopes([]))).toEqual(['storage:read', 'storage:write', 'billing:read']);
  });

  it("'all' deduplicates the required scopes", () => {
    const req = compileRequirement(catalogue, 'all', ['storage:read', 'storage:read']);
    expect(req.scopes).toEqual(['storage:read']);
    expect(req.check(new GrantedScopes([]))).toEqual(['storage:read']);
  });

  it("'any' passes with one granted scope", () => {
    const req = compileRequirement(catalogue, 'any', ['storage:write', 'billing:read']);
    expect(req.mode).toBe('any');
    expect(req.check(new GrantedScopes(['billing:read']))).toEqual([]);
    expect(req.check(new GrantedScopes(['storage:*']))).toEqual([]);
  });

  it("'any' returns the whole list when none is granted", () => {
    const req = compileRequirement(catalogue, 'any', ['storage:write', 'billing:read']);
    expect(req.check(new GrantedScopes(['storage:read']))).toEqual(['storage:write', 'billing:read']);
  });

  it('an empty list throws invalid_options', () => {
    expect(thrown(() => compileRequirement(catalogue, 'all', [])).code).toBe('invalid_options');
    const e = thrown(() => compileRequirement(catalogue, 'any', []));
    expect(e.code).toBe('invalid_options');
    expect(e.message).toContain('requireAnyScope()');
  });

  it('an unknown scope throws naming the argument index', () => {
    const e = thrown(() => compileRequirement(catalogue, 'all', ['storage:read', 'nope']));
    expect(e.code).toBe('invalid_options');
    expect(e.message).toContain('requireScopes() argument 1');
    expect(e.message).toContain("unknown scope 'nope'");
    expect(e.field).toBe('requireScopes[1]');
  });

  it('a wildcard requirement throws, even one covering catalogue scopes', () => {
    expect(catalogue.knows('storage:*')).toBe(true);
    const e = thrown(() => compileRequirement(catalogue, 'any', ['billing:read', 'storage:*']));
    expect(e.code).toBe('invalid_options');
    expect(e.message).toContain('requireAnyScope() argument 1');
    expect(e.field).toBe('requireAnyScope[1]');
  });
});
