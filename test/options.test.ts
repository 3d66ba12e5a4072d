import { describe, it, expect } from 'vitest';
import { createMemoryStore } from '../adapters/memory/index.js';
import { createAppTokens } from '../src/create-app-tokens.js';
import { AppTokensError } from '../src/core/errors.js';
import { resolveOptions, type AppTokensOptions } from '../src/core/options.js';

const DAY = 86_400;

function valid(): AppTokensOptions {
  return { store: createMemoryStore(), issuer: 'https://auth.example.com', scopes: ['storage:read', 'storage:write'] };
}

/** Resolve `input`, expect an `invalid_options` AppTokensError, and return it. */
function rejection(input: unknown): AppTokensError {
  let error: unknown;
  try {
    resolveOptions(input);
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(AppTokensError);
  expect((error as AppTokensError).code).toBe('invalid_options');
  return error as AppTokensError;
}

describe('resolveOptions defaults', () => {
  it('accepts the minimal options and fills the documented defaults', () => {
    const input = valid();
    const o = resolveOptions(input);
    expect(o.store).toBe(input.store);
    expect(o.issuer).toBe('https://auth.example.com');
    expect(o.scopes).toEqual(['storage:read', 'storage:write']);
    expect(o.accessTokenTtl).toBe(3600);
    expect(o.signingAlgorithm).toBe('RS256');
    expect(o.realm).toBe('express-app-tokens');
    expect(o.tokenPrefix).toBe('eat');
    expect(o.acceptApiTokens).toBe(true);
    expect(o.keyEncryptionSecret).toBeUndefined();
    expect(o.apiTokenTtl).toEqual({ default: 90 * DAY, max: 2 * 365 * DAY });
  });

  it('audience defaults to the issuer, and an explicit audience is kept', () => {
    expect(resolveOptions(valid()).audience).toBe('https://auth.example.com');
    expect(resolveOptions({ ...valid(), audience: 'https://api.example.com' }).audience).toBe('https://api.example.com');
  });

  it('advanced defaults: clockTolerance 5, cacheMax 10000, revocationSyncInterval 5000, lastUsedFlushInterval 10000, now() a Date', () => {
    const { advanced } = resolveOptions(valid());
    expect(advanced.clockTolerance).toBe(5);
    expect(advanced.cacheMax).toBe(10_000);
    expect(advanced.revocationSyncInterval).toBe(5000);
    expect(advanced.lastUsedFlushInterval).toBe(10_000);
    const now = advanced.now();
    expect(now).toBeInstanceOf(Date);
    expect(Math.abs(now.getTime() - Date.now())).toBeLessThan(5000);
  });

  it('a partial advanced object keeps the defaults of the options it omits', () => {
    const fixed = new Date('2030-01-01T00:00:00Z');
    const { advanced } = resolveOptions({ ...valid(), advanced: { clockTolerance: 30, now: () => fixed } });
    expect(advanced.clockTolerance).toBe(30);
    expect(advanced.now()).toBe(fixed);
    expect(advanced.cacheMax).toBe(10_000);
    expect(advanced.revocationSyncInterval).toBe(5000);
    expect(advanced.lastUsedFlushInterval).toBe(10_000);
  });

  it('a partial apiTokenTtl keeps the default of the part it omits', () => {
    expect(resolveOptions({ ...valid(), apiTokenTtl: { default: DAY } }).apiTokenTtl).toEqual({
      default: DAY,
      max: 2 * 365 * DAY,
    });
    expect(resolveOptions({ ...valid(), apiTokenTtl: { default: null } }).apiTokenTtl.default).toBeNull();
  });

  it('keeps valid explicit values', () => {
    const o = resolveOptions({
      ...valid(),
      accessTokenTtl: 60,
      signingAlgorithm: 'EdDSA',
      keyEncryptionSecret: 'x'.repeat(32),
      realm: 'my api',
      tokenPrefix: 'ab',
      acceptApiTokens: false,
    });
    expect(o.accessTokenTtl).toBe(60);
    expect(o.signingAlgorithm).toBe('EdDSA');
    expect(o.keyEncryptionSecret).toBe('x'.repeat(32));
    expect(o.realm).toBe('my api');
    expect(o.tokenPrefix).toBe('ab');
    expect(o.acceptApiTokens).toBe(false);
    expect(resolveOptions({ ...valid(), accessTokenTtl: 86_400 }).accessTokenTtl).toBe(86_400);
    expect(resolveOptions({ ...valid(), signingAlgorithm: 'ES256' }).signingAlgorithm).toBe('ES256');
  });

  it('accepts http issuers on localhost, 127.0.0.1 and [::1] only', () => {
    for (const issuer of ['http://localhost:3000', 'http://127.0.0.1:8080/auth', 'http://[::1]:3000']) {
      expect(resolveOptions({ ...valid(), issuer }).issuer).toBe(issuer);
    }
    expect(resolveOptions({ ...valid(), issuer: 'https://example.com/tenant/auth' }).issuer).toBe(
      'https://example.com/tenant/auth',
    );
  });
});

describe('resolveOptions rejections name the option', () => {
  it('rejects missing options', () => {
    expect(rejection(undefined).message).toContain('options are required');
  });

  it('accessTokenTtl 59 is below the range', () => {
    const e = rejection({ ...valid(), accessTokenTtl: 59 });
    expect(e.message).toContain('"accessTokenTtl" must be between 60 and 86400 seconds');
    expect(e.field).toBe('accessTokenTtl');
  });

  it('accessTokenTtl 86401 is above the range', () => {
    expect(rejection({ ...valid(), accessTokenTtl: 86_401 }).message).toContain(
      '"accessTokenTtl" must be between 60 and 86400 seconds',
    );
  });

  it('accessTokenTtl must be a whole number', () => {
    expect(rejection({ ...valid(), accessTokenTtl: 90.5 }).message).toContain('"accessTokenTtl"');
    expect(rejection({ ...valid(), accessTokenTtl: '3600' }).message).toContain('"accessTokenTtl"');
  });

  it('RFC 8414 §2: issuer that is not a URL is rejected', () => {
    const e = rejection({ ...valid(), issuer: 'not a url' });
    expect(e.message).toContain('"issuer"');
    expect(e.field).toBe('issuer');
  });

  it('RFC 8414 §2: issuer with a query component is rejected', () => {
    expect(rejection({ ...valid(), issuer: 'https://auth.example.com/?tenant=1' }).message).toContain('"issuer"');
    expect(rejection({ ...valid(), issuer: 'https://auth.example.com/?' }).message).toContain('"issuer"');
  });

  it('RFC 8414 §2: issuer with a fragment component is rejected', () => {
    expect(rejection({ ...valid(), issuer: 'https://auth.example.com/#x' }).message).toContain('"issuer"');
    expect(rejection({ ...valid(), issuer: 'https://auth.example.com/#' }).message).toContain('"issuer"');
  });

  it('RFC 8414 §2: issuer using http on a non-localhost host is rejected', () => {
    for (const issuer of ['http://auth.example.com', 'http://localhost.example.com', 'http://10.0.0.1']) {
      expect(rejection({ ...valid(), issuer }).message).toContain('"issuer"');
    }
  });

  it('issuer with another scheme is rejected', () => {
    expect(rejection({ ...valid(), issuer: 'ftp://auth.example.com' }).message).toContain('"issuer"');
  });

  it('scopes empty is rejected', () => {
    const e = rejection({ ...valid(), scopes: [] });
    expect(e.message).toContain('"scopes"');
    expect(e.message).toContain('at least one scope');
  });

  it('scopes not an array is rejected', () => {
    expect(rejection({ ...valid(), scopes: 'storage:read' }).message).toContain('"scopes"');
  });

  it('store that is not a Store is rejected', () => {
    for (const store of [{}, null, 'sqlite://x', { init() {} }]) {
      const e = rejection({ ...valid(), store });
      expect(e.message).toContain('"store"');
      expect(e.field).toBe('store');
    }
  });

  it("signingAlgorithm 'HS256' is rejected (RFC 9068 §2.1: asymmetric signatures recommended)", () => {
    const e = rejection({ ...valid(), signingAlgorithm: 'HS256' });
    expect(e.message).toContain('"signingAlgorithm"');
    expect(e.message).toContain('RS256');
  });

  it('keyEncryptionSecret shorter than 32 characters is rejected', () => {
    const e = rejection({ ...valid(), keyEncryptionSecret: 'x'.repeat(31) });
    expect(e.message).toContain('"keyEncryptionSecret"');
    expect(e.message).toContain('32');
  });

  it("tokenPrefix 'EAT' (uppercase) is rejected", () => {
    expect(rejection({ ...valid(), tokenPrefix: 'EAT' }).message).toContain('"tokenPrefix"');
  });

  it("tokenPrefix 'a' (too short) is rejected", () => {
    expect(rejection({ ...valid(), tokenPrefix: 'a' }).message).toContain('"tokenPrefix"');
  });

  it('tokenPrefix with an underscore or too long is rejected', () => {
    expect(rejection({ ...valid(), tokenPrefix: 'e_t' }).message).toContain('"tokenPrefix"');
    expect(rejection({ ...valid(), tokenPrefix: 'a'.repeat(17) }).message).toContain('"tokenPrefix"');
  });

  it('RFC 6750 §3: a realm with a double quote is rejected', () => {
    expect(rejection({ ...valid(), realm: 'my "api"' }).message).toContain('"realm"');
  });

  it('an empty audience is rejected', () => {
    expect(rejection({ ...valid(), audience: '' }).message).toContain('"audience"');
  });

  it('an unknown top-level option is rejected as unknown option "x"', () => {
    const e = rejection({ ...valid(), x: 1 });
    expect(e.message).toContain('unknown option "x"');
    expect(e.field).toBe('x');
  });

  it('an unknown advanced option is rejected as unknown option "advanced.x"', () => {
    const e = rejection({ ...valid(), advanced: { x: 1 } });
    expect(e.message).toContain('unknown option "advanced.x"');
    expect(e.field).toBe('advanced.x');
  });

  it('an unknown apiTokenTtl option is rejected naming it', () => {
    expect(rejection({ ...valid(), apiTokenTtl: { min: 60 } }).message).toContain('unknown option "apiTokenTtl.min"');
  });

  it('advanced.clockTolerance 301 is rejected', () => {
    const e = rejection({ ...valid(), advanced: { clockTolerance: 301 } });
    expect(e.message).toContain('"advanced.clockTolerance" must be between 0 and 300 seconds');
    expect(e.field).toBe('advanced.clockTolerance');
    expect(resolveOptions({ ...valid(), advanced: { clockTolerance: 300 } }).advanced.clockTolerance).toBe(300);
  });

  it('advanced.now that is not a function is rejected', () => {
    expect(rejection({ ...valid(), advanced: { now: new Date() } }).message).toContain('"advanced.now"');
  });

  it('apiTokenTtl.default greater than apiTokenTtl.max is rejected', () => {
    const e = rejection({ ...valid(), apiTokenTtl: { default: 2 * DAY, max: DAY } });
    expect(e.message).toContain('"apiTokenTtl.default"');
    expect(e.message).toContain('apiTokenTtl.max');
    expect(resolveOptions({ ...valid(), apiTokenTtl: { default: DAY, max: DAY } }).apiTokenTtl).toEqual({
      default: DAY,
      max: DAY,
    });
  });

  it('apiTokenTtl.max below the default 90-day default is rejected', () => {
    expect(rejection({ ...valid(), apiTokenTtl: { max: DAY } }).message).toContain('"apiTokenTtl.default"');
  });
});

describe('createAppTokens option validation', () => {
  it('RFC 6749 §3.3: a malformed catalogue scope throws invalid_options naming scopes[1]', () => {
    let error: unknown;
    try {
      createAppTokens({ ...valid(), scopes: ['ok', 'bad scope'] });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(AppTokensError);
    expect((error as AppTokensError).code).toBe('invalid_options');
    expect((error as AppTokensError).message).toContain('scopes[1]');
    expect((error as AppTokensError).field).toBe('scopes[1]');
  });

  it('a wildcard catalogue scope throws invalid_options naming scopes[0]', () => {
    expect(() => createAppTokens({ ...valid(), scopes: ['storage:*'] })).toThrow(/scopes\[0\]/);
  });

  it('a bad option throws from createAppTokens, before anything else runs', () => {
    expect(() => createAppTokens({ ...valid(), accessTokenTtl: 59 })).toThrow(
      '"accessTokenTtl" must be between 60 and 86400 seconds',
    );
  });
});
