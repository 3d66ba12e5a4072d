/**
 * API-token secret values.
 *
 * Format: `<prefix>_<43 base62 chars: 256 random bits><6 base62 chars: checksum>`, e.g.
 * `eat_3kT…9Qz0aB1c`. The prefix makes a leaked value recognisable to secret scanners; the
 * checksum (the first 32 bits of SHA-256 over prefix and body) lets the server refuse a mistyped
 * or foreign value without a store lookup. Values are stored only as SHA-256: a 256-bit random
 * value needs no slow hash, since there is nothing to brute-force.
 *
 * @module
 */
import { createHash, randomBytes, randomFillSync, timingSafeEqual } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const BODY_LENGTH = 43; // 62^43 > 2^256
const CHECKSUM_LENGTH = 6; // 62^6 > 2^32
const BASE62 = /^[0-9A-Za-z]+$/;

function base62(bytes: Buffer, width: number): string {
  let n = BigInt(`0x${bytes.toString('hex') || '0'}`);
  let out = '';
  while (n > 0n) {
    out = ALPHABET[Number(n % 62n)] + out;
    n /= 62n;
  }
  return out.padStart(width, '0');
}

/** {@link base62} of an unsigned 32-bit number, without BigInt (the same digits). */
function base62Uint32(n: number, width: number): string {
  let out = '';
  while (n > 0) {
    out = ALPHABET[n % 62]! + out;
    n = Math.floor(n / 62);
  }
  return out.padStart(width, '0');
}

function checksum(prefix: string, body: string): string {
  const digest = createHash('sha256').update(`${prefix}_${body}`).digest();
  return base62Uint32(digest.readUInt32BE(0), CHECKSUM_LENGTH);
}

/** A valid prefix: 2–16 lowercase letters or digits, starting with a letter. */
export const SECRET_PREFIX = /^[a-z][a-z0-9]{1,15}$/;

/** A freshly generated secret. `value` is shown once and then forgotten. */
export interface GeneratedSecret {
  value: string;
  hash: string;
  hint: string;
}

/** Secret generation and checks for one prefix. */
export class SecretCodec {
  readonly prefix: string;
  /** `<prefix>_`, built once: looksLikeOurs runs on every bearer request. */
  readonly #head: string;
  readonly #length: number;

  constructor(prefix: string) {
    this.prefix = prefix;
    this.#head = `${prefix}_`;
    this.#length = prefix.length + 1 + BODY_LENGTH + CHECKSUM_LENGTH;
  }

  /** Generate a new value from 256 bits of `crypto.randomBytes`. */
  generate(): GeneratedSecret {
    const body = base62(randomBytes(32), BODY_LENGTH);
    const value = `${this.prefix}_${body}${checksum(this.prefix, body)}`;
    return { value, hash: hashSecret(value), hint: hintOf(value, this.prefix) };
  }

  /**
   * Does `value` look like one of our secrets (prefix, length, alphabet, checksum)? Cheap and
   * lookup-free: a mistyped, truncated or foreign value fails here.
   */
  isWellFormed(value: string): boolean {
    if (value.length !== this.#length || !value.startsWith(this.#head)) return false;
    const rest = value.slice(this.prefix.length + 1);
    if (!BASE62.test(rest)) return false;
    const body = rest.slice(0, BODY_LENGTH);
    const sum = rest.slice(BODY_LENGTH);
    return constantTimeEqual(sum, checksum(this.prefix, body));
  }

  /** Could `value` be an API token rather than a JWT? Decides which verifier a bearer goes to. */
  looksLikeOurs(value: string): boolean {
    return value.startsWith(this.#head);
  }
}

/** SHA-256 of a secret value, lowercase hex: what the store keeps. */
export function hashSecret(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

/** A short display hint: the prefix and the last four characters. */
export function hintOf(value: string, prefix: string): string {
  return `${prefix}_…${value.slice(-4)}`;
}

/** Constant-time string equality (length is not secret here: both sides are fixed-format). */
export function constantTimeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  if (ab.length !== bb.length) {
    // Still spend a comparison so that the early exit does not depend on content.
    timingSafeEqual(ab, ab);
    return false;
  }
  return timingSafeEqual(ab, bb);
}

/**
 * A hash no secret maps to: compared against when the client is unknown, so that an unknown
 * client and a wrong secret take the same path.
 */
export const DUMMY_HASH = hashSecret('express-app-tokens:dummy');

const ID_LENGTH = 22;
/** Random bytes for {@link randomId}, drawn from the CSPRNG a pool at a time (as `crypto.randomUUID` does). */
const idPool = Buffer.alloc(4096);
let idPoolOffset = idPool.length;

/**
 * Random identifiers: `app_…`, `tok_…`, JWT ids and event ids. 22 base62 characters, uniform by
 * rejection sampling (bytes 248–255 are skipped, so `byte % 62` favours no character): about 131
 * bits, safe in URLs and Basic auth. Identifiers are not secrets; their pool is reused.
 */
export function randomId(prefix?: string): string {
  let id = '';
  while (id.length < ID_LENGTH) {
    if (idPoolOffset === idPool.length) {
      randomFillSync(idPool);
      idPoolOffset = 0;
    }
    const byte = idPool[idPoolOffset++]!;
    if (byte < 248) id += ALPHABET[byte % 62]!;
  }
  return prefix ? `${prefix}_${id}` : id;
}
