/**
 * RFC 9449 DPoP: proof of possession of a key, and nothing else. This module checks a DPoP proof
 * JWT (§4.3), derives the stateless server nonces (§8, §9) and records proof `jti`s once through
 * the store (§11.1), so every instance sharing a database refuses a replay as one. It knows nothing
 * about clients, grants or HTTP: the token endpoint and the bearer middleware call it.
 *
 * @module
 */
import { createHash, createHmac } from 'node:crypto';
import { EmbeddedJWK, calculateJwkThumbprint, errors as joseErrors, jwtVerify, type CryptoKey, type FlattenedJWSInput, type JWK, type JWTPayload } from 'jose';
import { LRUCache } from 'lru-cache';
import type { Store } from '../store.js';
import { AppTokensError } from './errors.js';

/**
 * The asymmetric algorithms a DPoP proof may be signed with (`dpop_signing_alg_values_supported`,
 * RFC 9449 §5.1): never `none`, never an HMAC (§4.3 check 5).
 */
export const DPOP_ALGORITHMS = ['ES256', 'RS256', 'PS256', 'EdDSA'] as const;

/** A proof's `jti` longer than this is refused (the RFC asks for 96 random bits; 256 leaves room). */
const MAX_JTI = 256;
/** A proof larger than this is refused before any parsing (an RSA-4096 `jwk` fits well within). */
const MAX_PROOF = 8192;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
/** JWK members that only a private (or symmetric) key has (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];
const UNRESERVED = /[A-Za-z0-9\-._~]/;
/** Proof keys kept imported (a client signs every proof with one key, so its header repeats). */
const KEY_CACHE_MAX = 1000;
/** A protected header longer than this is imported every time rather than cached. */
const KEY_CACHE_HEADER_MAX = 2048;

/** A proof header's key, imported by jose's EmbeddedJWK, with its thumbprint. */
interface ProofKey {
  key: CryptoKey;
  jkt: string;
}

export interface DpopOptions {
  /** The public origin (optionally with a path prefix) that request paths are appended to for `htu`. */
  baseUrl: string;
  /** Seconds a proof's `iat` may lie before or after now (plus `clockTolerance`). */
  iatWindow: number;
  clockTolerance: number;
  /** When set, every proof must carry a nonce derived from it (§8, §9). */
  nonceSecret?: string | undefined;
  /** Seconds of one nonce time step; a nonce stays valid for one to two steps. */
  nonceLifetime: number;
  /** The clock, epoch ms. */
  nowMs: () => number;
}

/** What one HTTP request says about its proof. */
export interface ProofRequest {
  /** Every `DPoP` header line of the request (an empty array: none). */
  proofs: readonly string[];
  /** The HTTP method (`htm`, §4.3 check 8). */
  method: string;
  /** The request's path as received, without query (`htu` is the base URL plus this, §4.3 check 9). */
  path: string;
  /** At a resource server: the access token the proof must hash (`ath`, §4.3 check 12). */
  accessToken?: string;
}

/** A proof that passed every check but the replay guard ({@link DpopVerifier.consume}). */
export interface CheckedProof {
  /** RFC 7638 SHA-256 thumbprint of the proof's key: the `cnf.jkt` of a token bound to it (§6.1). */
  readonly jkt: string;
  readonly jti: string;
  /** Until when the replay guard must remember the `jti`: after that the `iat` check refuses it anyway. */
  readonly rememberUntil: Date;
  /** Whether the proof carried the current nonce (when it did not, send the client the current one). */
  readonly currentNonce: boolean;
}

/** The `cnf.jkt` a token is bound to (RFC 9449 §6.1), or `undefined` for a bearer token. */
export function boundJkt(claims: Readonly<Record<string, unknown>>): string | undefined {
  const cnf = claims.cnf as { jkt?: unknown } | undefined;
  return typeof cnf === 'object' && cnf !== null && typeof cnf.jkt === 'string' ? cnf.jkt : undefined;
}

/** RFC 9449 §4.2 `ath`: base64url(SHA-256(the ASCII access token)). */
export function accessTokenHash(accessToken: string): string {
  return createHash('sha256').update(accessToken, 'ascii').digest('base64url');
}

/**
 * RFC 9449 §4.3: `htu` compared after RFC 3986 §6.2.2 syntax-based and §6.2.3 scheme-based
 * normalisation, without query and fragment. The WHATWG parser lowercases scheme and host, drops a
 * default port, resolves dot segments and writes an empty path as `/`; percent-encodings are then
 * written with upper-case hex, and those of unreserved characters decoded. `undefined`: not an
 * http(s) URL, or one with user info.
 */
export function normalizeHtu(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.username !== '' || url.password !== '') return undefined;
  const path = url.pathname.replace(/%[0-9A-Fa-f]{2}/g, (escape) => {
    const char = String.fromCharCode(parseInt(escape.slice(1), 16));
    return UNRESERVED.test(char) ? char : escape.toUpperCase();
  });
  return url.origin + path;
}

function invalidProof(message: string): AppTokensError {
  return new AppTokensError('invalid_dpop_proof', message, { field: 'DPoP' });
}

/** Checks DPoP proofs and issues nonces for one AppTokens instance. */
export class DpopVerifier {
  readonly #store: Store;
  readonly #options: DpopOptions;
  /** The base URL without a trailing slash; request paths are appended to it. */
  readonly #base: string;
  /** Nonces of recent time steps (step → nonce): derived once per step, not per request. */
  readonly #nonces = new Map<number, string>();
  /**
   * Imported proof keys by the exact protected-header segment that named them: the same bytes
   * always import to the same key, so a hit skips the JWK import and the thumbprint (two thirds of
   * a proof check). The signature is verified on every proof all the same.
   */
  readonly #keys = new LRUCache<string, ProofKey>({ max: KEY_CACHE_MAX });

  constructor(store: Store, options: DpopOptions) {
    this.#store = store;
    this.#options = options;
    const base = new URL(options.baseUrl);
    this.#base = base.origin + base.pathname.replace(/\/+$/, '');
  }

  /** Whether every proof must carry a server nonce (option `dpop.nonceSecret`). */
  get requiresNonce(): boolean {
    return this.#options.nonceSecret !== undefined;
  }

  /**
   * The `htu` a proof of a request to `path` must name: the configured public base URL plus the
   * path as received — never anything from the `Host` header, which the client controls.
   */
  expectedHtu(path: string): string | undefined {
    // An absolute-form request target (`GET http://elsewhere/x`) contributes its path only.
    const own = path.startsWith('/') ? path : safePathname(path);
    return own === undefined ? undefined : normalizeHtu(this.#base + own);
  }

  /**
   * Every check of RFC 9449 §4.3 except the replay guard: exactly one well-formed proof, `typ`
   * `dpop+jwt`, an allow-listed asymmetric `alg`, a public `jwk` that verifies the signature,
   * `jti`, `htm`, `htu`, `iat` within the window, the nonce when required, and `ath` when an access
   * token comes with it. CPU only: no I/O. Throws `invalid_dpop_proof` or `use_dpop_nonce`.
   */
  async check(request: ProofRequest): Promise<CheckedProof> {
    const { proofs } = request;
    if (proofs.length === 0) throw invalidProof('DPoP: a DPoP proof is required');
    // §4.3 checks 1–2: one header, one JWT (a comma is how a proxy joins two header lines).
    if (proofs.length > 1 || proofs[0]!.includes(',')) throw invalidProof('DPoP: more than one DPoP proof');
    const proof = proofs[0]!.trim();
    if (proof.length > MAX_PROOF || !COMPACT_JWS.test(proof)) throw invalidProof('DPoP: the proof is not a compact JWS');
    const segment = proof.slice(0, proof.indexOf('.'));
    const proofKey = this.#keys.get(segment) ?? (await this.#importKey(segment));

    let payload: JWTPayload;
    try {
      // The key is the header's own jwk (jose's EmbeddedJWK, above); alg and typ are checked here.
      ({ payload } = await jwtVerify(proof, proofKey.key, {
        typ: 'dpop+jwt',
        algorithms: [...DPOP_ALGORITHMS],
        currentDate: new Date(this.#options.nowMs()),
        clockTolerance: this.#options.clockTolerance,
      }));
    } catch (e) {
      throw invalidProof(describeProofError(e));
    }

    const { jti, htm, htu, iat, ath, nonce } = payload as JWTPayload & { htm?: unknown; htu?: unknown; ath?: unknown; nonce?: unknown };
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > MAX_JTI) {
      throw invalidProof(`DPoP: the proof jti must be a string of 1–${MAX_JTI} characters`);
    }
    if (htm !== request.method) throw invalidProof(`DPoP: the proof htm does not match the request method ${request.method}`);
    const expected = this.expectedHtu(request.path);
    if (typeof htu !== 'string' || expected === undefined || normalizeHtu(htu) !== expected) {
      throw invalidProof('DPoP: the proof htu does not match the request URL');
    }
    const nowSeconds = this.#options.nowMs() / 1000;
    const window = this.#options.iatWindow + this.#options.clockTolerance;
    if (typeof iat !== 'number' || !Number.isFinite(iat)) throw invalidProof('DPoP: the proof has no iat');
    if (iat < nowSeconds - window) throw invalidProof('DPoP: the proof iat is too old');
    if (iat > nowSeconds + window) throw invalidProof('DPoP: the proof iat is in the future');
    let currentNonce = true;
    if (this.requiresNonce) {
      // §8 / §9: a missing or stale nonce is answered with a fresh one, not a plain refusal.
      const step = this.#step();
      if (typeof nonce !== 'string' || (nonce !== this.#nonce(step) && nonce !== this.#nonce(step - 1) && nonce !== this.#nonce(step + 1))) {
        throw new AppTokensError('use_dpop_nonce', 'DPoP: the proof must carry the nonce of the DPoP-Nonce header', { field: 'DPoP' });
      }
      currentNonce = nonce === this.#nonce(step);
    }
    if (request.accessToken !== undefined && ath !== accessTokenHash(request.accessToken)) {
      throw invalidProof('DPoP: the proof ath does not match the access token');
    }
    return { jkt: proofKey.jkt, jti, rememberUntil: new Date((iat + window + 1) * 1000), currentNonce };
  }

  /** §4.3 checks 5–7 on the header: a public `jwk` for an allow-listed `alg`, imported by jose. */
  async #importKey(segment: string): Promise<ProofKey> {
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8')) as Record<string, unknown>;
    } catch {
      throw invalidProof('DPoP: the proof header is not JSON');
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header)) throw invalidProof('DPoP: the proof header is not a JSON object');
    const jwk = header.jwk as JWK | undefined;
    if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) throw invalidProof('DPoP: the proof header has no jwk');
    // §4.3 check 7: a proof that ships its private key proves nothing.
    if (PRIVATE_MEMBERS.some((member) => member in jwk)) throw invalidProof('DPoP: the proof jwk holds a private or symmetric key');
    // §4.3 check 5, before any key is imported: never none, never an HMAC.
    if (!(DPOP_ALGORITHMS as readonly unknown[]).includes(header.alg)) throw invalidProof(`DPoP: the proof alg must be one of ${DPOP_ALGORITHMS.join(', ')}`);
    let key: CryptoKey;
    try {
      key = (await EmbeddedJWK(header, { header: undefined, payload: '', signature: '' } as unknown as FlattenedJWSInput)) as CryptoKey;
    } catch (e) {
      throw invalidProof(describeProofError(e));
    }
    const proofKey = { key, jkt: await calculateJwkThumbprint(jwk, 'sha256') };
    if (segment.length <= KEY_CACHE_HEADER_MAX) this.#keys.set(segment, proofKey);
    return proofKey;
  }

  /**
   * RFC 9449 §11.1: the proof's `jti` is single-use, for every instance sharing the store. Throws
   * `invalid_dpop_proof` on a replay. Call it last, after every other check passed, so that a
   * refused request never spends a `jti`.
   */
  async consume(proof: CheckedProof): Promise<void> {
    // Keyed per key: a client cannot burn another key's jti, and the row has a fixed size.
    const key = createHash('sha256').update(`${proof.jkt}.${proof.jti}`).digest('base64url');
    if (!(await this.#store.useOnce('dpop_proof', key, proof.rememberUntil))) {
      throw invalidProof('DPoP: the proof was already used (jti replayed)');
    }
  }

  /** The nonce to send in `DPoP-Nonce` now; `undefined` when nonces are off. */
  currentNonce(): string | undefined {
    return this.requiresNonce ? this.#nonce(this.#step()) : undefined;
  }

  #step(): number {
    return Math.floor(this.#options.nowMs() / 1000 / this.#options.nonceLifetime);
  }

  /** The nonce of a time step: an HMAC of the step, so every instance with the secret agrees. */
  #nonce(step: number): string {
    let nonce = this.#nonces.get(step);
    if (nonce === undefined) {
      nonce = createHmac('sha256', this.#options.nonceSecret!).update(`express-app-tokens dpop-nonce ${step}`).digest('base64url');
      if (this.#nonces.size >= 8) this.#nonces.clear();
      this.#nonces.set(step, nonce);
    }
    return nonce;
  }
}

function safePathname(target: string): string | undefined {
  try {
    return new URL(target).pathname;
  } catch {
    return undefined;
  }
}

function describeProofError(e: unknown): string {
  if (e instanceof joseErrors.JOSEAlgNotAllowed) return `DPoP: the proof alg must be one of ${DPOP_ALGORITHMS.join(', ')}`;
  if (e instanceof joseErrors.JWTClaimValidationFailed) {
    if (e.claim === 'typ') return 'DPoP: the proof typ must be dpop+jwt';
    return `DPoP: the proof claim "${e.claim}" is invalid`;
  }
  if (e instanceof joseErrors.JWTExpired) return 'DPoP: the proof expired';
  if (e instanceof joseErrors.JWSSignatureVerificationFailed) return 'DPoP: the proof signature does not verify with its jwk';
  if (e instanceof joseErrors.JOSENotSupported) return 'DPoP: the proof uses an unsupported algorithm or key';
  if (e instanceof joseErrors.JWSInvalid) return 'DPoP: the proof jwk is not a public key for its alg';
  return 'DPoP: the proof is invalid';
}
