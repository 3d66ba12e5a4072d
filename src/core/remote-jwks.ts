/**
 * A `private_key_jwt` client's `jwksUri`: fetched over https only, never from a private, loopback
 * or link-local address (checked on every address the name resolves to, at connection time, so a
 * rebinding DNS answer cannot slip through), with a short timeout, a size cap, no redirects, a
 * bounded cache, and a rate-limited refetch when an assertion names a kid the cached set lacks.
 *
 * @module
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { createHash } from 'node:crypto';
import { importJWK, type JWK } from 'jose';
import { LRUCache } from 'lru-cache';
import type { UsableKey } from './client-keys.js';
import { ASSERTION_ALGS } from './client-keys.js';

export interface RemoteJwksOptions {
  /** Allow http and private or loopback addresses (tests, a trusted internal network). Default: false. */
  allowPrivateAddresses: boolean;
  /** ms: the whole fetch (lookup, connect, headers, body) must finish within it. */
  timeout: number;
  /** ms a fetched set is used before it is fetched again. */
  cacheTtl: number;
  /** ms between two refetches of one URL for an unknown kid. */
  refetchInterval: number;
  now: () => number;
}

/** Largest JWK Set accepted, bytes. */
const MAX_BYTES = 64 * 1024;
/** URLs whose sets are kept at once. */
const MAX_URLS = 1_000;

const PRIVATE = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  PRIVATE.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const) {
  PRIVATE.addSubnet(net, prefix, 'ipv6');
}

/** Is this address one a client's JWK Set must never be fetched from? */
export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return true;
  // IPv4-mapped IPv6 (::ffff:10.0.0.1) is the IPv4 address.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return PRIVATE.check(mapped[1]!, 'ipv4');
  return PRIVATE.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/** Check a `jwksUri` a manager sends: an absolute https URL (http only when private addresses are allowed), no credentials, no fragment. */
export function jwksUriProblem(value: string, allowPrivate: boolean): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'must be an absolute URL';
  }
  if (value.length > 2048) return 'must be at most 2048 characters';
  if (url.protocol !== 'https:' && !(allowPrivate && url.protocol === 'http:')) return 'must be an https URL';
  if (url.username || url.password) return 'must not carry credentials';
  if (url.hash) return 'must not have a fragment';
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (!allowPrivate && (host === 'localhost' || host.endsWith('.localhost') || (isIP(host) !== 0 && isPrivateAddress(host)))) {
    return 'must not name a private, loopback or link-local address';
  }
  return undefined;
}

interface CachedSet {
  keys: UsableKey[];
  fetchedAt: number;
  /** Last refetch for an unknown kid. */
  refetchedAt: number;
}

export class RemoteJwks {
  readonly #options: RemoteJwksOptions;
  readonly #sets = new LRUCache<string, CachedSet>({ max: MAX_URLS });
  readonly #inflight = new Map<string, Promise<CachedSet>>();

  constructor(options: RemoteJwksOptions) {
    this.#options = options;
  }

  /** Keys of the set at `url` for `kid` (all when `kid` is absent). An unreachable set yields none. */
  async keys(url: string, kid: string | undefined): Promise<UsableKey[]> {
    const now = this.#options.now();
    let set = this.#sets.get(url);
    try {
      if (set === undefined || now - set.fetchedAt >= this.#options.cacheTtl) {
        set = await this.#fetch(url, set?.refetchedAt ?? 0);
      } else if (kid !== undefined && !set.keys.some((k) => k.kid === kid) && now - set.refetchedAt >= this.#options.refetchInterval) {
        set = await this.#fetch(url, now);
      }
    } catch {
      // The client's set is unreachable or invalid: a stale copy still serves; otherwise no key.
      if (set === undefined) return [];
    }
    return set.keys.filter((k) => kid === undefined || k.kid === kid);
  }

  #fetch(url: string, refetchedAt: number): Promise<CachedSet> {
    let pending = this.#inflight.get(url);
    if (pending === undefined) {
      pending = (async () => {
        const body = await this.#get(url);
        const keys = await parseSet(body, url);
        const set = { keys, fetchedAt: this.#options.now(), refetchedAt };
        this.#sets.set(url, set);
        return set;
      })().finally(() => this.#inflight.delete(url));
      this.#inflight.set(url, pending);
    }
    return pending;
  }

  #get(url: string): Promise<string> {
    const { allowPrivateAddresses, timeout } = this.#options;
    const problem = jwksUriProblem(url, allowPrivateAddresses);
    if (problem) return Promise.reject(new Error(`jwksUri ${problem}`));
    const target = new URL(url);
    const host = target.hostname.replace(/^\[|\]$/g, '');
    if (!allowPrivateAddresses && isIP(host) !== 0 && isPrivateAddress(host)) return Promise.reject(new Error('private address'));
    // Every address the name resolves to is checked when the connection is made.
    const lookup: LookupFunction = (hostname, options, callback) => {
      dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
        if (error) return callback(error, '', 0);
        const list = addresses as unknown as LookupAddress[];
        const allowed = allowPrivateAddresses ? list : list.filter((a) => !isPrivateAddress(a.address));
        if (allowed.length === 0 || allowed.length !== list.length) {
          return callback(Object.assign(new Error('jwksUri resolves to a private address'), { code: 'EPRIVATE' }), '', 0);
        }
        if ((options as { all?: boolean }).all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, allowed);
        callback(null, allowed[0]!.address, allowed[0]!.family);
      });
    };
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise<string>((resolve, reject) => {
      let settled = false;
      let deadline: NodeJS.Timeout | undefined;
      const settle = (error: Error | undefined, body?: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        if (error === undefined) resolve(body!);
        else {
          reject(error);
          req.destroy();
        }
      };
      const req = send(target, { method: 'GET', headers: { accept: 'application/jwk-set+json, application/json' }, lookup, timeout }, (res: IncomingMessage) => {
        if (res.statusCode !== 200) {
          res.resume();
          return settle(new Error(`jwksUri answered ${res.statusCode}`));
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BYTES) return settle(new Error('jwksUri answer too large'));
          chunks.push(chunk);
        });
        res.on('end', () => settle(undefined, Buffer.concat(chunks).toString('utf8')));
        res.on('error', (e) => settle(e));
        res.on('aborted', () => settle(new Error('jwksUri answer aborted')));
      });
      // `timeout` above fires only when the socket idles; a host dribbling a byte just inside it
      // would hold the token request for as long as it likes. This deadline bounds the whole
      // fetch: name lookup, connect, TLS, headers and body.
      deadline = setTimeout(() => settle(new Error('jwksUri timed out')), timeout);
      deadline.unref();
      req.on('timeout', () => settle(new Error('jwksUri timed out')));
      req.on('error', (e) => settle(e));
      req.end();
    });
  }
}

/** The signing keys of a JWK Set; a key without a usable alg, private members or `use` other than sig is skipped. */
async function parseSet(body: string, url: string): Promise<UsableKey[]> {
  const set = JSON.parse(body) as { keys?: unknown };
  if (!Array.isArray(set.keys)) throw new Error('not a JWK Set');
  const out: UsableKey[] = [];
  for (const raw of set.keys.slice(0, 20)) {
    if (typeof raw !== 'object' || raw === null) continue;
    const jwk = raw as JWK & Record<string, unknown>;
    if (['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'].some((m) => m in jwk)) continue;
    if (jwk.use !== undefined && jwk.use !== 'sig') continue;
    const alg = jwk.alg ?? (jwk.kty === 'EC' && jwk.crv === 'P-256' ? 'ES256' : jwk.kty === 'OKP' && jwk.crv === 'Ed25519' ? 'EdDSA' : jwk.kty === 'RSA' ? 'RS256' : undefined);
    if (alg === undefined || !(ASSERTION_ALGS as readonly string[]).includes(alg) || typeof jwk.kid !== 'string') continue;
    try {
      const key = await importJWK(jwk, alg);
      out.push({ id: remoteKeyId(url, jwk.kid), kid: jwk.kid, alg, key: key as UsableKey['key'], expiresAt: null });
    } catch {
      // not a key we can use
    }
  }
  return out;
}

/** A stable id for a key of a remote set, as access tokens name it (`api_token_id`). */
export function remoteKeyId(url: string, kid: string): string {
  return `jwk_${createHash('sha256').update(`${url}\u0000${kid}`).digest('base64url').slice(0, 22)}`;
}
