/**
 * Compact JWS signing (RFC 7515 §7.1) with `node:crypto`: the header and the claims as
 * `JSON.stringify` writes them, base64url, and the signature of `header.payload`.
 * Ed25519 (RFC 8037 §3.1), ECDSA P-256 with the raw `r || s` signature of RFC 7518 §3.4
 * (`dsaEncoding: 'ieee-p1363'`), RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3).
 *
 * jose signs through WebCrypto, whose promise and thread-pool job cost more than an Ed25519 or
 * P-256 signature itself (about 60–70 µs here): those two are signed synchronously. An RSA-2048
 * signature costs 400–600 µs, which on the main thread would halve what it can serve: RS256 is
 * signed by the same one-shot `crypto.sign` with a callback, on libuv's thread pool, still without
 * WebCrypto's job and promise wrappers. Verification stays with jose (`access-tokens.ts`).
 *
 * @module
 */
import { KeyObject, sign } from 'node:crypto';
import type { CryptoKey } from 'jose';
import type { SigningAlgorithm } from './keys.js';

/** The protected header of a token we sign. */
export interface JwsHeader {
  alg: SigningAlgorithm;
  kid: string;
  typ: string;
}

/** KeyObjects of the CryptoKeys the key ring holds (imported once per key). */
const keyObjects = new WeakMap<CryptoKey, KeyObject>();

function keyObject(key: CryptoKey): KeyObject {
  let k = keyObjects.get(key);
  if (k === undefined) {
    k = KeyObject.from(key as unknown as Parameters<typeof KeyObject.from>[0]);
    if (k.type !== 'private') throw new TypeError('signJwt: a private key is required');
    keyObjects.set(key, k);
  }
  return k;
}

/**
 * Sign `claims` under `header` with `privateKey` (of `header.alg`), and return the compact JWS:
 * at once for EdDSA and ES256, as a promise for RS256 (thread pool). The segments are exactly
 * `JSON.stringify`'s output, which the verifier's canonical-JSON check expects.
 */
export function signJwt(header: JwsHeader, claims: Record<string, unknown>, privateKey: CryptoKey): string | Promise<string> {
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  const key = keyObject(privateKey);
  let signature: Buffer;
  switch (header.alg) {
    case 'EdDSA':
      if (key.asymmetricKeyType !== 'ed25519') throw new TypeError('signJwt: EdDSA needs an Ed25519 key');
      signature = sign(null, Buffer.from(input), key);
      break;
    case 'ES256':
      if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
        throw new TypeError('signJwt: ES256 needs a P-256 key');
      }
      signature = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
      break;
    case 'RS256':
      if (key.asymmetricKeyType !== 'rsa') throw new TypeError('signJwt: RS256 needs an RSA key');
      return new Promise((resolve, reject) => {
        sign('sha256', Buffer.from(input), key, (error, rsa) => {
          if (error) reject(error);
          else resolve(`${input}.${rsa.toString('base64url')}`);
        });
      });
    default:
      throw new TypeError(`signJwt: unsupported algorithm ${String((header as { alg: unknown }).alg)}`);
  }
  return `${input}.${signature.toString('base64url')}`;
}
