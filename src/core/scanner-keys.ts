/**
 * The public keys of a secret-scanning reporter (GitHub's secret scanning partner program) and the
 * check of its signatures: ECDSA P-256 with SHA-256 over the exact bytes of a request body, the
 * signature DER-encoded (base64 in the `Github-Public-Key-Signature` header), the key named by
 * `Github-Public-Key-Identifier` in a published key list
 * (`{"public_keys":[{"key_identifier","key": PEM,"is_current"}]}`).
 *
 * The list is fetched from a URL the host configures (never from request input), cached, and
 * fetched again when it is older than `maxAge` or a signature names a key it does not hold; never
 * more than once per `refetchInterval`, so that a stream of made-up key ids costs one fetch a
 * minute, not one per request. Concurrent requests share one fetch.
 *
 * @module
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { AppTokensError } from './errors.js';
import type { Logger } from './logger.js';

/** What the injectable fetch must answer: the subset of WHATWG `Response` used here. */
export interface KeysFetchResponse {
  ok: boolean;
  status: number;
  text(): Promise<string>;
}

/**
 * The fetch used for the key list: `globalThis.fetch` by default; any function of this shape
 * (undici's, a proxying one, a test double) fits.
 */
export type KeysFetch = (
  url: string,
  init: { signal: AbortSignal; headers: Record<string, string>; redirect: 'error' },
) => Promise<KeysFetchResponse>;

export interface ScannerKeysOptions {
  url: string;
  fetch: KeysFetch;
  /** Abort a fetch after this many ms. */
  timeout: number;
  /** Least time between two fetches, ms. */
  refetchInterval: number;
  /** Refresh a list older than this, ms. */
  maxAge: number;
  nowMs: () => number;
  log: Required<Logger>;
}

/** The most of a key list read, characters; GitHub's is about 2 KB. */
const MAX_LIST_CHARS = 256 * 1024;
/** The most keys taken from one list. */
const MAX_KEYS = 100;
const KEY_ID = /^[\x21-\x7e]{1,256}$/;

/** A valid `Github-Public-Key-Identifier` value: 1–256 printable ASCII characters, no space. */
export function isKeyIdentifier(value: string): boolean {
  return KEY_ID.test(value);
}

/** Parse a key list; only P-256 public keys are kept. Throws when none is usable. */
export function parseKeyList(text: string): Map<string, KeyObject> {
  const value: unknown = JSON.parse(text);
  const list = (value as { public_keys?: unknown } | null)?.public_keys;
  if (!Array.isArray(list)) throw new Error('the key list has no "public_keys" array');
  const keys = new Map<string, KeyObject>();
  for (const entry of list.slice(0, MAX_KEYS)) {
    const { key_identifier: id, key: pem } = (entry ?? {}) as { key_identifier?: unknown; key?: unknown };
    if (typeof id !== 'string' || !isKeyIdentifier(id) || typeof pem !== 'string' || pem.length > 8192) continue;
    let key: KeyObject;
    try {
      key = createPublicKey(pem);
    } catch {
      continue;
    }
    // A key of another type or curve would verify nothing of the program's; it is skipped, not fatal.
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') continue;
    keys.set(id, key);
  }
  if (keys.size === 0) throw new Error('the key list holds no usable ECDSA P-256 key');
  return keys;
}

/** Does `signature` (DER) verify `body` under `key` (ECDSA P-256, SHA-256)? Never throws. */
export function verifySignature(key: KeyObject, body: Buffer, signature: Buffer): boolean {
  try {
    return verify('sha256', body, { key, dsaEncoding: 'der' }, signature);
  } catch {
    return false;
  }
}

/** The cached key list of one reporter. */
export class ScannerKeys {
  readonly #o: ScannerKeysOptions;
  #keys: Map<string, KeyObject> | undefined;
  #fetchedAt = 0;
  #lastAttempt = -Infinity;
  #lastFailed = false;
  #inflight: Promise<void> | undefined;

  constructor(options: ScannerKeysOptions) {
    this.#o = options;
  }

  /**
   * Is `signature` a valid signature of `body` by the key `keyId`? `false` for an unknown key id
   * or a signature that does not verify. Throws `unavailable` (503) when the answer cannot be
   * known: no key list could be fetched yet, or the key id is unknown and the latest fetch failed
   * (the reporter may have rotated to a key we cannot see).
   */
  async verify(keyId: string, signature: Buffer, body: Buffer): Promise<boolean> {
    const now = this.#o.nowMs();
    const held = this.#keys;
    if (held === undefined || !held.has(keyId) || now - this.#fetchedAt >= this.#o.maxAge) await this.#refresh(now);
    const keys = this.#keys;
    if (keys === undefined) throw this.#unavailable();
    const key = keys.get(keyId);
    if (key === undefined) {
      if (this.#lastFailed) throw this.#unavailable();
      return false;
    }
    return verifySignature(key, body, signature);
  }

  /** Fetch the list, unless a fetch is under way (then wait for it) or the last one was too recent. */
  async #refresh(now: number): Promise<void> {
    if (this.#inflight) return this.#inflight;
    if (now - this.#lastAttempt < this.#o.refetchInterval) return;
    this.#lastAttempt = now;
    this.#inflight = this.#fetch()
      .then((keys) => {
        this.#keys = keys;
        this.#fetchedAt = this.#o.nowMs();
        this.#lastFailed = false;
      })
      .catch((error: unknown) => {
        // A failed refresh keeps the list in hand: the keys it holds still verify.
        this.#lastFailed = true;
        this.#o.log.warn(
          { url: this.#o.url, error: error instanceof Error ? error.message : String(error) },
          'secret scanning: the public key list could not be fetched; signed reports cannot be verified until it can',
        );
      })
      .finally(() => {
        this.#inflight = undefined;
      });
    return this.#inflight;
  }

  async #fetch(): Promise<Map<string, KeyObject>> {
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    // The race also bounds an injected fetch that ignores its signal.
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        controller.abort();
        reject(new Error(`no answer within ${this.#o.timeout} ms`));
      }, this.#o.timeout);
    });
    try {
      const text = await Promise.race([
        (async () => {
          const res = await this.#o.fetch(this.#o.url, {
            signal: controller.signal,
            headers: { accept: 'application/json', 'user-agent': 'express-app-tokens' },
            redirect: 'error',
          });
          if (!res.ok) throw new Error(`HTTP ${res.status}`);
          return res.text();
        })(),
        timeout,
      ]);
      if (text.length > MAX_LIST_CHARS) throw new Error('the key list is too large');
      return parseKeyList(text);
    } finally {
      clearTimeout(timer);
    }
  }

  #unavailable(): AppTokensError {
    const wait = Math.max(1, Math.ceil((this.#lastAttempt + this.#o.refetchInterval - this.#o.nowMs()) / 1000));
    return new AppTokensError('unavailable', 'the signature cannot be verified now: the public key list is unavailable', {
      retryAfter: wait,
    });
  }
}
