import { describe, it, expect } from 'vitest';
import { createHash } from 'node:crypto';
import {
  DUMMY_HASH,
  SECRET_PREFIX,
  SecretCodec,
  constantTimeEqual,
  hashSecret,
  hintOf,
  randomId,
} from '../src/core/secrets.js';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const BODY = 43;
const CHECKSUM = 6;

describe('SecretCodec.generate', () => {
  const codec = new SecretCodec('eat');

  it('starts every value with `<prefix>_`', () => {
    const { value } = codec.generate();
    expect(value.startsWith('eat_')).toBe(true);
    expect(new SecretCodec('myapp2').generate().value.startsWith('myapp2_')).toBe(true);
  });

  it('has a fixed length: prefix, underscore, 43-char body, 6-char checksum', () => {
    for (let i = 0; i < 50; i++) {
      expect(codec.generate().value).toHaveLength('eat_'.length + BODY + CHECKSUM);
    }
  });

  it('has a base62 body and checksum', () => {
    for (let i = 0; i < 50; i++) {
      expect(codec.generate().value.slice(4)).toMatch(/^[0-9A-Za-z]{49}$/);
    }
  });

  it('carries at least 256 bits in the body (43 base62 chars: 62^43 >= 2^256)', () => {
    expect(BODY * Math.log2(62)).toBeGreaterThanOrEqual(256);
    expect(62n ** 43n >= 2n ** 256n).toBe(true);
    expect(62n ** 42n < 2n ** 256n).toBe(true);
    // Over many values the body's leading position uses more than a handful of digits: the
    // value is random across the whole width, not a short number padded with zeros.
    const bodies = Array.from({ length: 200 }, () => codec.generate().value.slice(4, 4 + BODY));
    const decoded = bodies.map((b) => [...b].reduce((n, ch) => n * 62n + BigInt(ALPHABET.indexOf(ch)), 0n));
    expect(decoded.some((n) => n >= 2n ** 250n)).toBe(true);
    expect(decoded.every((n) => n < 2n ** 256n)).toBe(true);
  });

  it('generates different values each time', () => {
    const values = new Set(Array.from({ length: 500 }, () => codec.generate().value));
    expect(values.size).toBe(500);
  });

  it('returns the sha256 hash and the hint of the value', () => {
    const { value, hash, hint } = codec.generate();
    expect(hash).toBe(hashSecret(value));
    expect(hint).toBe(hintOf(value, 'eat'));
  });
});

describe('SecretCodec.isWellFormed', () => {
  const codec = new SecretCodec('eat');

  it('accepts generated values', () => {
    for (let i = 0; i < 50; i++) expect(codec.isWellFormed(codec.generate().value)).toBe(true);
  });

  it('refuses every single-character mutation of the body and checksum (the checksum catches typos)', () => {
    const { value } = codec.generate();
    const start = 'eat_'.length;
    let refused = 0;
    let tried = 0;
    for (let pos = start; pos < value.length; pos++) {
      for (const ch of ALPHABET) {
        if (ch === value[pos]) continue;
        const mutated = value.slice(0, pos) + ch + value.slice(pos + 1);
        tried++;
        if (!codec.isWellFormed(mutated)) refused++;
      }
    }
    expect(tried).toBe((BODY + CHECKSUM) * 61);
    expect(refused).toBe(tried);
  });

  it('refuses a swap of two adjacent different body characters', () => {
    const { value } = codec.generate();
    for (let pos = 4; pos < 4 + BODY - 1; pos++) {
      if (value[pos] === value[pos + 1]) continue;
      const swapped = value.slice(0, pos) + value[pos + 1] + value[pos] + value.slice(pos + 2);
      expect(codec.isWellFormed(swapped)).toBe(false);
    }
  });

  it('refuses a truncated or extended value', () => {
    const { value } = codec.generate();
    expect(codec.isWellFormed(value.slice(0, -1))).toBe(false);
    expect(codec.isWellFormed(value.slice(0, 20))).toBe(false);
    expect(codec.isWellFormed(`${value}0`)).toBe(false);
    expect(codec.isWellFormed('')).toBe(false);
    expect(codec.isWellFormed('eat_')).toBe(false);
  });

  it('refuses a value with another prefix of the same length', () => {
    const { value } = codec.generate();
    expect(codec.isWellFormed(`tae_${value.slice(4)}`)).toBe(false);
    expect(codec.isWellFormed(`EAT_${value.slice(4)}`)).toBe(false);
    expect(codec.isWellFormed(`eat-${value.slice(4)}`)).toBe(false);
  });

  it("refuses a value of another codec's prefix, and the other codec refuses ours", () => {
    const other = new SecretCodec('xyz');
    const theirs = other.generate().value;
    const ours = codec.generate().value;
    expect(other.isWellFormed(theirs)).toBe(true);
    expect(codec.isWellFormed(theirs)).toBe(false);
    expect(other.isWellFormed(ours)).toBe(false);
    // Re-labelled with our prefix, the checksum (which covers the prefix) no longer matches.
    expect(codec.isWellFormed(`eat_${theirs.slice(4)}`)).toBe(false);
  });

  it('refuses a value of a codec whose prefix extends ours', () => {
    const longer = new SecretCodec('eatx').generate().value;
    expect(codec.isWellFormed(longer)).toBe(false);
    expect(codec.isWellFormed(`eat_${longer.slice(5, -1)}`)).toBe(false);
  });

  it('refuses non-base62 characters, even at the right length', () => {
    const { value } = codec.generate();
    for (const bad of ['-', '_', '+', '/', '=', ' ', '.', 'é', '\0']) {
      expect(codec.isWellFormed(value.slice(0, 10) + bad + value.slice(11))).toBe(false);
      expect(codec.isWellFormed(value.slice(0, -1) + bad)).toBe(false);
    }
  });

  it('looksLikeOurs() is true exactly for values with our prefix and underscore', () => {
    expect(codec.looksLikeOurs(codec.generate().value)).toBe(true);
    expect(codec.looksLikeOurs('eat_whatever')).toBe(true);
    expect(codec.looksLikeOurs('eyJhbGciOiJSUzI1NiJ9.e30.sig')).toBe(false);
    expect(codec.looksLikeOurs('eatx_abc')).toBe(false);
  });
});

describe('hashSecret', () => {
  it('is the lowercase hex SHA-256 of the value', () => {
    const value = new SecretCodec('eat').generate().value;
    expect(hashSecret(value)).toBe(createHash('sha256').update(value).digest('hex'));
    expect(hashSecret('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(hashSecret(value)).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('hintOf', () => {
  it('shows the prefix and the last 4 characters, and not the body', () => {
    const { value, hint } = new SecretCodec('eat').generate();
    expect(hint.startsWith('eat_')).toBe(true);
    expect(hint.endsWith(value.slice(-4))).toBe(true);
    expect(hint).toBe(`eat_…${value.slice(-4)}`);
    const body = value.slice(4, 4 + BODY);
    // No 5-character run of the body appears in the hint.
    for (let i = 0; i + 5 <= body.length; i++) expect(hint).not.toContain(body.slice(i, i + 5));
    expect(hint.length).toBeLessThan(12);
  });
});

describe('constantTimeEqual', () => {
  it('is true for equal strings', () => {
    expect(constantTimeEqual('abc', 'abc')).toBe(true);
    expect(constantTimeEqual('', '')).toBe(true);
  });

  it('is false for different strings of the same length', () => {
    expect(constantTimeEqual('abc', 'abd')).toBe(false);
    expect(constantTimeEqual('abc', 'ABC')).toBe(false);
  });

  it('is false (without throwing) for strings of different length', () => {
    expect(constantTimeEqual('abc', 'abcd')).toBe(false);
    expect(constantTimeEqual('', 'a')).toBe(false);
    expect(constantTimeEqual('abcd', 'abc')).toBe(false);
  });

  it('compares bytes, so strings of equal length but different UTF-8 length are unequal', () => {
    expect(constantTimeEqual('é', 'e')).toBe(false);
    expect(constantTimeEqual('é', 'é')).toBe(true);
  });
});

describe('randomId', () => {
  it('is 22 base62 characters (128 bits) without a prefix', () => {
    expect(randomId()).toMatch(/^[0-9A-Za-z]{22}$/);
    expect(62 ** 22).toBeGreaterThan(2 ** 128);
  });

  it('carries the prefix with an underscore', () => {
    expect(randomId('app')).toMatch(/^app_[0-9A-Za-z]{22}$/);
    expect(randomId('tok')).toMatch(/^tok_[0-9A-Za-z]{22}$/);
  });

  it('is unique across many calls', () => {
    const ids = new Set(Array.from({ length: 2000 }, () => randomId('app')));
    expect(ids.size).toBe(2000);
  });

  it('uses every character of the alphabet equally (no modulo bias: 256 % 62 would favour 0-7 by 25%)', () => {
    const counts = new Map<string, number>();
    const n = 20_000;
    for (let i = 0; i < n; i++) for (const c of randomId()) counts.set(c, (counts.get(c) ?? 0) + 1);
    expect(counts.size).toBe(62);
    const expected = (n * 22) / 62; // ~7,097; one standard deviation is ~83
    for (const [c, count] of counts) {
      expect(Math.abs(count - expected) / expected, `character ${c}`).toBeLessThan(0.08);
    }
  });
});

describe('checksum compatibility', () => {
  // Values issued by earlier versions must stay valid: these checksums were computed with the
  // original BigInt base62 encoding of the first 32 bits of SHA-256("eat_" + body).
  it.each([
    ['A'.repeat(43), '0ZlxQ8'],
    ['0'.repeat(43), '01gsQq'],
    ['zZ9'.repeat(14) + 'q', '0LbekV'],
  ])('eat_%s… carries the checksum %s', (body, sum) => {
    const codec = new SecretCodec('eat');
    expect(codec.isWellFormed(`eat_${body}${sum}`)).toBe(true);
    expect(codec.isWellFormed(`eat_${body}${sum.slice(0, 5)}${sum[5] === 'a' ? 'b' : 'a'}`)).toBe(false);
  });
});

describe('DUMMY_HASH', () => {
  it('is 64 lowercase hex characters, like a real hash', () => {
    expect(DUMMY_HASH).toMatch(/^[0-9a-f]{64}$/);
  });

  it('equals no generated hash', () => {
    const codec = new SecretCodec('eat');
    for (let i = 0; i < 200; i++) expect(codec.generate().hash).not.toBe(DUMMY_HASH);
  });
});

describe('SECRET_PREFIX', () => {
  it('accepts 2-16 lowercase letters or digits starting with a letter', () => {
    for (const ok of ['eat', 'ab', 'a1', 'abcdefghijklmnop']) expect(SECRET_PREFIX.test(ok)).toBe(true);
    for (const bad of ['a', 'EAT', '1ab', 'ab_c', 'ab-c', 'abcdefghijklmnopq', '']) {
      expect(SECRET_PREFIX.test(bad)).toBe(false);
    }
  });
});
