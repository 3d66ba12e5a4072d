import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, jwtVerify } from 'jose';
import { createSqliteStore } from '../adapters/sql/index.js';
import { AppTokensError } from '../src/core/errors.js';
import {
  KeyRing,
  SIGNING_ALGORITHMS,
  openPrivateJwk,
  sealPrivateJwk,
  type KeyRingOptions,
  type SigningAlgorithm,
} from '../src/core/keys.js';
import type { Store } from '../src/store.js';

const SECRET = 'k'.repeat(16) + '0123456789abcdefghijklmnop';
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

const stores: Store[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close().catch(() => {});
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'eat-keys-'));
  dirs.push(dir);
  return join(dir, 'keys.sqlite');
}

async function openStore(filename: string): Promise<Store> {
  const store = createSqliteStore({ filename });
  stores.push(store);
  await store.init();
  return store;
}

function ringOptions(overrides: Partial<KeyRingOptions> = {}): KeyRingOptions {
  return {
    algorithm: 'RS256',
    retentionSeconds: 3600,
    activationDelaySeconds: 0,
    now: () => new Date(),
    warn: () => {},
    ...overrides,
  };
}

async function caught(promise: Promise<unknown>): Promise<AppTokensError> {
  try {
    await promise;
  } catch (e) {
    expect(e).toBeInstanceOf(AppTokensError);
    return e as AppTokensError;
  }
  throw new Error('expected the promise to reject');
}

function withNodeEnv<T>(value: string | undefined, fn: () => Promise<T>): Promise<T> {
  const previous = process.env.NODE_ENV;
  if (value === undefined) delete process.env.NODE_ENV;
  else process.env.NODE_ENV = value;
  return fn().finally(() => {
    if (previous === undefined) delete process.env.NODE_ENV;
    else process.env.NODE_ENV = previous;
  });
}

describe('KeyRing on a SQLite file', () => {
  it('generates and persists exactly one active RS256 key on first load', async () => {
    const store = await openStore(tempFile());
    expect(await store.listSigningKeys()).toEqual([]);
    const ring = new KeyRing(store, ringOptions());
    await ring.load();
    const records = await store.listSigningKeys();
    expect(records).toHaveLength(1);
    expect(records[0]!.alg).toBe('RS256');
    expect(records[0]!.retiredAt).toBeNull();
    expect(records[0]!.kid).toBe(ring.active.kid);
    expect(ring.active.alg).toBe('RS256');
    expect(JSON.parse(records[0]!.publicJwk)).toMatchObject({ kty: 'RSA', kid: ring.active.kid, alg: 'RS256' });
    expect(ring.algorithms).toEqual(['RS256']);
  });

  it('a second load on the same store generates no new key', async () => {
    const store = await openStore(tempFile());
    const ring = new KeyRing(store, ringOptions());
    await ring.load();
    await ring.load();
    await new KeyRing(store, ringOptions()).load();
    expect(await store.listSigningKeys()).toHaveLength(1);
  });

  it('after a restart (reopened store) loads the same kid, and its key verifies tokens signed before', async () => {
    const file = tempFile();
    const first = await openStore(file);
    const ring1 = new KeyRing(first, ringOptions());
    await ring1.load();
    const jwt = await new SignJWT({ scope: 'a' })
      .setProtectedHeader({ alg: ring1.active.alg, kid: ring1.active.kid, typ: 'at+jwt' })
      .setIssuer('https://issuer.example')
      .setExpirationTime('5m')
      .sign(ring1.active.privateKey);
    await first.close();

    const second = await openStore(file);
    const ring2 = new KeyRing(second, ringOptions());
    await ring2.load();
    expect(ring2.active.kid).toBe(ring1.active.kid);
    expect(await second.listSigningKeys()).toHaveLength(1);
    const key = ring2.verificationKey(ring1.active.kid);
    expect(key).toBeDefined();
    const { payload, protectedHeader } = await jwtVerify(jwt, key!.publicKey, {
      algorithms: ['RS256'],
      issuer: 'https://issuer.example',
    });
    expect(payload.scope).toBe('a');
    expect(protectedHeader.kid).toBe(ring2.active.kid);
  });

  it('verificationKey() is undefined for a kid that is not ours', async () => {
    const ring = new KeyRing(await openStore(tempFile()), ringOptions());
    await ring.load();
    expect(ring.verificationKey('not-a-kid')).toBeUndefined();
  });

  it('active throws key_error before load()', async () => {
    const ring = new KeyRing(await openStore(tempFile()), ringOptions());
    expect(() => ring.active).toThrow(AppTokensError);
    try {
      void ring.active;
    } catch (e) {
      expect((e as AppTokensError).code).toBe('key_error');
    }
  });

  it('two KeyRings on two stores of the same file loading concurrently end with the same active kid', async () => {
    const file = tempFile();
    const [a, b] = await Promise.all([openStore(file), openStore(file)]);
    const ringA = new KeyRing(a, ringOptions());
    const ringB = new KeyRing(b, ringOptions());
    await Promise.all([ringA.load(), ringB.load()]);
    expect(ringA.active.kid).toBe(ringB.active.kid);
    const records = await a.listSigningKeys();
    expect(records.filter((r) => r.alg === 'RS256' && r.retiredAt === null)).toHaveLength(1);
    // Each can verify what the other signs.
    const jwt = await new SignJWT({})
      .setProtectedHeader({ alg: 'RS256', kid: ringB.active.kid })
      .sign(ringB.active.privateKey);
    await expect(jwtVerify(jwt, ringA.verificationKey(ringB.active.kid)!.publicKey)).resolves.toBeDefined();
  });

  it('ES256 produces an EC P-256 key', async () => {
    const store = await openStore(tempFile());
    const ring = new KeyRing(store, ringOptions({ algorithm: 'ES256' }));
    await ring.load();
    expect(ring.active.alg).toBe('ES256');
    expect(ring.active.publicJwk).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
    expect((await store.listSigningKeys())[0]!.alg).toBe('ES256');
    const jwt = await new SignJWT({}).setProtectedHeader({ alg: 'ES256' }).sign(ring.active.privateKey);
    await expect(jwtVerify(jwt, ring.active.publicKey, { algorithms: ['ES256'] })).resolves.toBeDefined();
  });

  it('EdDSA produces an OKP Ed25519 key', async () => {
    const store = await openStore(tempFile());
    const ring = new KeyRing(store, ringOptions({ algorithm: 'EdDSA' }));
    await ring.load();
    expect(ring.active.alg).toBe('EdDSA');
    expect(ring.active.publicJwk).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig' });
    const jwt = await new SignJWT({}).setProtectedHeader({ alg: 'EdDSA' }).sign(ring.active.privateKey);
    await expect(jwtVerify(jwt, ring.active.publicKey, { algorithms: ['EdDSA'] })).resolves.toBeDefined();
  });

  it('switching the algorithm adds a key of the new algorithm and keeps the old one published', async () => {
    const store = await openStore(tempFile());
    const rs = new KeyRing(store, ringOptions({ algorithm: 'RS256' }));
    await rs.load();
    const es = new KeyRing(store, ringOptions({ algorithm: 'ES256' }));
    await es.load();
    expect(es.active.alg).toBe('ES256');
    expect(es.verificationKey(rs.active.kid)?.alg).toBe('RS256');
    expect(new Set(es.algorithms)).toEqual(new Set(['RS256', 'ES256']));
    expect(es.jwks.keys.map((k) => k.kid).sort()).toEqual([rs.active.kid, es.active.kid].sort());
  });

  for (const alg of SIGNING_ALGORITHMS) {
    it(`RFC 7517 §4, RFC 7518 §6: the ${alg} JWKS has no private members and carries kid, alg and use "sig"`, async () => {
      const store = await openStore(tempFile());
      const ring = new KeyRing(store, ringOptions({ algorithm: alg as SigningAlgorithm }));
      await ring.load();
      expect(ring.jwks.keys).toHaveLength(1);
      for (const jwk of ring.jwks.keys) {
        for (const m of PRIVATE_MEMBERS) expect(jwk).not.toHaveProperty(m);
        expect(jwk.kid).toBe(ring.active.kid);
        expect(jwk.alg).toBe(alg);
        expect(jwk.use).toBe('sig');
      }
      // The serialised form has none either, and neither has the stored public JWK.
      const json = JSON.parse(JSON.stringify(ring.jwks)) as { keys: Record<string, unknown>[] };
      for (const m of PRIVATE_MEMBERS) expect(json.keys[0]).not.toHaveProperty(m);
      const stored = JSON.parse((await store.listSigningKeys())[0]!.publicJwk) as Record<string, unknown>;
      for (const m of PRIVATE_MEMBERS) expect(stored).not.toHaveProperty(m);
      // The clear private JWK does hold "d": the check above is not vacuous.
      expect(JSON.parse((await store.listSigningKeys())[0]!.privateJwk)).toHaveProperty('d');
    });
  }
});

describe('KeyRing encryption at rest', () => {
  it('with encryptionSecret the stored privateJwk is an enc:v1: envelope without "d"', async () => {
    const store = await openStore(tempFile());
    const ring = new KeyRing(store, ringOptions({ encryptionSecret: SECRET }));
    await ring.load();
    const [record] = await store.listSigningKeys();
    expect(record!.privateJwk.startsWith('enc:v1:')).toBe(true);
    expect(record!.privateJwk).not.toContain('"d"');
    expect(record!.privateJwk).not.toContain('"kty"');
  });

  it('a reopened store with the same secret loads and decrypts the same key', async () => {
    const file = tempFile();
    const first = await openStore(file);
    const ring1 = new KeyRing(first, ringOptions({ encryptionSecret: SECRET }));
    await ring1.load();
    const jwt = await new SignJWT({})
      .setProtectedHeader({ alg: 'RS256', kid: ring1.active.kid })
      .sign(ring1.active.privateKey);
    await first.close();
    const second = await openStore(file);
    const ring2 = new KeyRing(second, ringOptions({ encryptionSecret: SECRET }));
    await ring2.load();
    expect(ring2.active.kid).toBe(ring1.active.kid);
    // The decrypted private key signs tokens the original public key verifies.
    const jwt2 = await new SignJWT({})
      .setProtectedHeader({ alg: 'RS256', kid: ring2.active.kid })
      .sign(ring2.active.privateKey);
    await expect(jwtVerify(jwt2, ring1.active.publicKey)).resolves.toBeDefined();
    await expect(jwtVerify(jwt, ring2.active.publicKey)).resolves.toBeDefined();
  });

  it('loading an encrypted key without the secret throws key_error naming "keyEncryptionSecret"', async () => {
    const store = await openStore(tempFile());
    await new KeyRing(store, ringOptions({ encryptionSecret: SECRET })).load();
    const e = await caught(new KeyRing(store, ringOptions()).load());
    expect(e.code).toBe('key_error');
    expect(e.message).toContain('keyEncryptionSecret');
    expect(await store.listSigningKeys()).toHaveLength(1);
  });

  it('loading an encrypted key with a wrong secret throws key_error', async () => {
    const store = await openStore(tempFile());
    await new KeyRing(store, ringOptions({ encryptionSecret: SECRET })).load();
    const e = await caught(new KeyRing(store, ringOptions({ encryptionSecret: `${SECRET}-wrong` })).load());
    expect(e.code).toBe('key_error');
    expect(e.message).toContain('keyEncryptionSecret');
  });

  it('sealPrivateJwk/openPrivateJwk round-trip', () => {
    const json = JSON.stringify({ kty: 'OKP', crv: 'Ed25519', d: 'secret-d', x: 'x' });
    const sealed = sealPrivateJwk(json, 'kid-1', SECRET);
    expect(sealed.startsWith('enc:v1:')).toBe(true);
    expect(sealed).not.toContain('secret-d');
    expect(openPrivateJwk(sealed, 'kid-1', SECRET)).toBe(json);
    // Fresh salt and IV: sealing twice gives two different envelopes.
    expect(sealPrivateJwk(json, 'kid-1', SECRET)).not.toBe(sealed);
  });

  it('openPrivateJwk refuses a flipped ciphertext byte with key_error', () => {
    const sealed = sealPrivateJwk('{"d":"x"}', 'kid-1', SECRET);
    const parts = sealed.slice('enc:v1:'.length).split('.');
    expect(parts).toHaveLength(4);
    const ct = Buffer.from(parts[3]!, 'base64url');
    ct[0] = ct[0]! ^ 0x01;
    parts[3] = ct.toString('base64url');
    const tampered = `enc:v1:${parts.join('.')}`;
    expect(() => openPrivateJwk(tampered, 'kid-1', SECRET)).toThrow(AppTokensError);
    try {
      openPrivateJwk(tampered, 'kid-1', SECRET);
    } catch (e) {
      expect((e as AppTokensError).code).toBe('key_error');
    }
  });

  it('openPrivateJwk refuses a flipped auth tag', () => {
    const sealed = sealPrivateJwk('{"d":"x"}', 'kid-1', SECRET);
    const parts = sealed.slice('enc:v1:'.length).split('.');
    const tag = Buffer.from(parts[2]!, 'base64url');
    tag[5] = tag[5]! ^ 0x80;
    parts[2] = tag.toString('base64url');
    expect(() => openPrivateJwk(`enc:v1:${parts.join('.')}`, 'kid-1', SECRET)).toThrow(/keyEncryptionSecret/);
  });

  it('openPrivateJwk binds the kid as associated data: another kid throws key_error', () => {
    const sealed = sealPrivateJwk('{"d":"x"}', 'kid-1', SECRET);
    let error: unknown;
    try {
      openPrivateJwk(sealed, 'kid-2', SECRET);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(AppTokensError);
    expect((error as AppTokensError).code).toBe('key_error');
  });

  it('openPrivateJwk refuses a wrong secret and a malformed envelope with key_error', () => {
    const sealed = sealPrivateJwk('{"d":"x"}', 'kid-1', SECRET);
    expect(() => openPrivateJwk(sealed, 'kid-1', `${SECRET}x`)).toThrow(AppTokensError);
    for (const bad of ['enc:v1:', 'enc:v1:a.b', 'enc:v1:a.b.c.d.e']) {
      let error: unknown;
      try {
        openPrivateJwk(bad, 'kid-1', SECRET);
      } catch (e) {
        error = e;
      }
      expect((error as AppTokensError | undefined)?.code).toBe('key_error');
    }
  });
});

describe('KeyRing warnings', () => {
  it('with NODE_ENV=production and no secret, warns with code EAT_UNENCRYPTED_KEYS', async () => {
    const store = await openStore(tempFile());
    const warnings: { message: string; code: string }[] = [];
    const previous = process.env.NODE_ENV;
    await withNodeEnv('production', async () => {
      await new KeyRing(store, ringOptions({ warn: (message, code) => warnings.push({ message, code }) })).load();
    });
    expect(process.env.NODE_ENV).toBe(previous);
    expect(warnings.length).toBeGreaterThan(0);
    expect(warnings.every((w) => w.code === 'EAT_UNENCRYPTED_KEYS')).toBe(true);
    expect(warnings[0]!.message).toContain('keyEncryptionSecret');
  });

  it('with NODE_ENV=production, loading an existing clear key also warns', async () => {
    const store = await openStore(tempFile());
    await withNodeEnv('test', () => new KeyRing(store, ringOptions()).load());
    const codes: string[] = [];
    await withNodeEnv('production', () =>
      new KeyRing(store, ringOptions({ warn: (_m, code) => codes.push(code) })).load(),
    );
    expect(codes).toEqual(['EAT_UNENCRYPTED_KEYS']);
  });

  it('does not warn in production when a secret is set', async () => {
    const store = await openStore(tempFile());
    const codes: string[] = [];
    await withNodeEnv('production', () =>
      new KeyRing(store, ringOptions({ encryptionSecret: SECRET, warn: (_m, code) => codes.push(code) })).load(),
    );
    expect(codes).toEqual([]);
  });

  it('does not warn outside production without a secret', async () => {
    const store = await openStore(tempFile());
    const codes: string[] = [];
    await withNodeEnv('development', () =>
      new KeyRing(store, ringOptions({ warn: (_m, code) => codes.push(code) })).load(),
    );
    expect(codes).toEqual([]);
  });
});
