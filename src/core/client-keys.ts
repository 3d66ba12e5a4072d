/**
 * Public keys of `private_key_jwt` clients (RFC 7523 §2.2): parsing what a manager sends (a JWK,
 * a JWK Set, or a PEM public key), refusing anything private or weak, and the keys a client may
 * authenticate with now — stored ones, or its `jwksUri`'s.
 *
 * @module
 */
import { createPublicKey, type KeyObject, type webcrypto } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, importJWK, type JWK } from 'jose';
import { LRUCache } from 'lru-cache';
import type { AppRecord, ClientKeyRecord } from '../store.js';
import { AppTokensError } from './errors.js';
import type { RemoteJwks } from './remote-jwks.js';

/** What a client may sign its assertions with (RFC 7518; never `none` or an HMAC). */
export const ASSERTION_ALGS = ['RS256', 'PS256', 'ES256', 'EdDSA'] as const;
export type AssertionAlg = (typeof ASSERTION_ALGS)[number];

/** JWK members that only a private or symmetric key has. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];
const KID = /^[\x21-\x7e]{1,128}$/;

/** A key parsed and checked, ready to store. */
export interface ParsedKey {
  kid: string;
  alg: AssertionAlg;
  /** The public JWK as stored and shown: kty and its public members, kid, alg, use. */
  jwk: JWK;
}

/** A key a client may authenticate with now. */
export interface UsableKey {
  /** What access tokens minted with it name as `api_token_id`. */
  id: string;
  kid: string;
  alg: string;
  key: KeyObject | webcrypto.CryptoKey | Uint8Array;
  expiresAt: Date | null;
}

function bad(field: string, message: string): AppTokensError {
  return new AppTokensError('validation_failed', `${field}: ${message}`, { field });
}

/** The algorithm a key's type implies, or the one it names, checked against its type. */
function algorithmOf(jwk: Record<string, unknown>, field: string): AssertionAlg {
  const named = jwk.alg;
  const kty = jwk.kty;
  const fits = (alg: string): boolean =>
    kty === 'RSA' ? alg === 'RS256' || alg === 'PS256' : kty === 'EC' ? alg === 'ES256' && jwk.crv === 'P-256' : kty === 'OKP' ? alg === 'EdDSA' && jwk.crv === 'Ed25519' : false;
  if (named !== undefined) {
    if (typeof named !== 'string' || !(ASSERTION_ALGS as readonly string[]).includes(named)) {
      throw bad(`${field}.alg`, `must be one of ${ASSERTION_ALGS.join(', ')} (never none or an HMAC)`);
    }
    if (!fits(named)) throw bad(`${field}.alg`, `${named} does not fit a key of type ${String(kty)}${jwk.crv ? ` ${String(jwk.crv)}` : ''}`);
    return named as AssertionAlg;
  }
  if (kty === 'RSA') return 'RS256';
  if (kty === 'EC' && jwk.crv === 'P-256') return 'ES256';
  if (kty === 'OKP' && jwk.crv === 'Ed25519') return 'EdDSA';
  throw bad(field, 'must be an RSA (2048 bits or more), EC P-256 or Ed25519 public key');
}

/**
 * Check a public JWK: an object of a supported type with no private member, usable for signatures,
 * RSA of 2048 bits or more; `kid` defaults to its RFC 7638 thumbprint. Throws 400 naming `field`.
 */
export async function parsePublicJwk(input: unknown, field: string): Promise<ParsedKey> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw bad(field, 'must be a JWK (a JSON object)');
  const jwk = input as Record<string, unknown>;
  for (const member of PRIVATE_MEMBERS) {
    if (member in jwk) throw bad(field, `must be a public key: the private member "${member}" was sent; never send a private key`);
  }
  if (!['RSA', 'EC', 'OKP'].includes(jwk.kty as string)) throw bad(`${field}.kty`, 'must be RSA, EC or OKP');
  if (jwk.use !== undefined && jwk.use !== 'sig') throw bad(`${field}.use`, 'must be "sig" (or absent)');
  if (jwk.key_ops !== undefined && !(Array.isArray(jwk.key_ops) && jwk.key_ops.every((o) => o === 'verify'))) {
    throw bad(`${field}.key_ops`, 'must be ["verify"] (or absent)');
  }
  const alg = algorithmOf(jwk, field);
  let key: KeyObject;
  try {
    key = createPublicKey({ key: jwk as import('node:crypto').JsonWebKey, format: 'jwk' });
  } catch {
    throw bad(field, 'is not a valid public key');
  }
  if (key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) {
    throw bad(field, 'an RSA key must be 2048 bits or more');
  }
  // Only the public members survive: what we store is what we exported ourselves.
  const clean = (await exportJWK(key)) as JWK;
  const thumbprint = await calculateJwkThumbprint(clean, 'sha256');
  const kid = jwk.kid === undefined ? thumbprint : jwk.kid;
  if (typeof kid !== 'string' || !KID.test(kid)) throw bad(`${field}.kid`, 'must be 1–128 printable ASCII characters without spaces');
  return { kid, alg, jwk: { ...clean, kid, alg, use: 'sig' } };
}

/** A PEM `PUBLIC KEY` (SPKI), with the algorithm to pin (required for RSA: RS256 or PS256). */
export async function parsePem(pem: unknown, alg: unknown, kid: unknown, field: string): Promise<ParsedKey> {
  if (typeof pem !== 'string' || !pem.includes('-----BEGIN PUBLIC KEY-----')) {
    throw bad(field, 'must be a PEM public key (-----BEGIN PUBLIC KEY-----); never send a private key');
  }
  if (pem.includes('PRIVATE KEY')) throw bad(field, 'must be a public key; never send a private key');
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch {
    throw bad(field, 'is not a valid PEM public key');
  }
  const jwk = (await exportJWK(key)) as Record<string, unknown>;
  return parsePublicJwk({ ...jwk, ...(alg !== undefined ? { alg } : {}), ...(kid !== undefined ? { kid } : {}) }, field);
}

/** The public view of a stored key. */
export interface ClientKeyView {
  kid: string;
  alg: AssertionAlg;
  /** RFC 7638 SHA-256 thumbprint of the public key. */
  thumbprint: string;
  jwk: Record<string, unknown>;
  creationDate: string;
  expirationDate: string | null;
  status: 'active' | 'expired';
}

export async function clientKeyView(key: ClientKeyRecord, now: Date): Promise<ClientKeyView> {
  const jwk = JSON.parse(key.jwk) as JWK;
  return {
    kid: key.kid,
    alg: key.alg as AssertionAlg,
    thumbprint: await calculateJwkThumbprint(jwk, 'sha256'),
    jwk: jwk as Record<string, unknown>,
    creationDate: key.createdAt.toISOString(),
    expirationDate: key.expiresAt?.toISOString() ?? null,
    status: key.expiresAt !== null && key.expiresAt <= now ? 'expired' : 'active',
  };
}

/** Imported keys kept at once (records are immutable: a key's id names one key for ever). */
const IMPORTED_MAX = 5_000;

/** The keys a client may authenticate with now: stored ones, or those of its `jwksUri`. */
export class ClientKeySource {
  readonly #list: (app: AppRecord) => Promise<ClientKeyRecord[]>;
  readonly #remote: RemoteJwks;
  readonly #imported = new LRUCache<string, UsableKey['key']>({ max: IMPORTED_MAX });

  constructor(list: (app: AppRecord) => Promise<ClientKeyRecord[]>, remote: RemoteJwks) {
    this.#list = list;
    this.#remote = remote;
  }

  /**
   * Unexpired keys of the app for `kid` (every key when the header names none). For a `jwksUri`
   * an unknown kid refetches the set (rate-limited).
   */
  async usable(app: AppRecord, kid: string | undefined, now: Date): Promise<UsableKey[]> {
    if (app.jwksUri) return this.#remote.keys(app.jwksUri, kid);
    const out: UsableKey[] = [];
    for (const record of await this.#list(app)) {
      if (kid !== undefined && record.kid !== kid) continue;
      if (record.expiresAt !== null && record.expiresAt <= now) continue;
      let key = this.#imported.get(record.id);
      if (key === undefined) {
        key = await importJWK(JSON.parse(record.jwk) as JWK, record.alg);
        this.#imported.set(record.id, key);
      }
      out.push({ id: record.id, kid: record.kid, alg: record.alg, key, expiresAt: record.expiresAt });
    }
    return out;
  }
}
