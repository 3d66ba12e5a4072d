/**
 * Signing keys: generated on first start, persisted through the store (private keys optionally
 * sealed with AES-256-GCM), loaded by every instance so that all of them sign and verify alike.
 *
 * @module
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair, importJWK, calculateJwkThumbprint, type CryptoKey, type JWK } from 'jose';
import type { SigningKeyRecord, Store } from '../store.js';
import { AppTokensError } from './errors.js';

/** Algorithms we sign with. RS256 is the default: RFC 9068 §4 requires resource servers to support it. */
export const SIGNING_ALGORITHMS = ['RS256', 'ES256', 'EdDSA'] as const;
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

const ENVELOPE = 'enc:v1:';
const HKDF_INFO = 'express-app-tokens signing key v1';
/** Private JWK members that must never leave through the JWKS. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

/** A public key as published in the JWKS. */
export interface PublicJwk extends JWK {
  kid: string;
  alg: string;
  use: 'sig';
}

interface LoadedKey {
  kid: string;
  alg: SigningAlgorithm;
  publicJwk: PublicJwk;
  publicKey: CryptoKey;
  createdAt: Date;
  retiredAt: Date | null;
}

interface ActiveKey extends LoadedKey {
  privateKey: CryptoKey;
}

export interface KeyRingOptions {
  algorithm: SigningAlgorithm;
  /** High-entropy secret that seals private keys at rest. */
  encryptionSecret?: string | undefined;
  /**
   * How long a retired key stays published, seconds: the longest access-token lifetime, plus the
   * leeway, plus the time another instance may still sign with it before it reloads.
   */
  retentionSeconds: number;
  /** Seconds between publishing a rotated-in key and signing with it. */
  activationDelaySeconds: number;
  now: () => Date;
  warn: (message: string, code: string) => void;
}

/** Strip every private member of a JWK. */
export function toPublicJwk(jwk: JWK, kid: string, alg: string): PublicJwk {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(jwk)) {
    if (!(PRIVATE_MEMBERS as readonly string[]).includes(k)) out[k] = v;
  }
  return { ...out, kid, alg, use: 'sig' } as PublicJwk;
}

function deriveKey(secret: string, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, salt, HKDF_INFO, 32));
}

/** Seal a private JWK with AES-256-GCM; the kid is bound as associated data. */
export function sealPrivateJwk(json: string, kid: string, secret: string): string {
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', deriveKey(secret, salt), iv);
  cipher.setAAD(Buffer.from(kid));
  const ciphertext = Buffer.concat([cipher.update(json, 'utf8'), cipher.final()]);
  const parts = [salt, iv, cipher.getAuthTag(), ciphertext].map((b) => b.toString('base64url'));
  return ENVELOPE + parts.join('.');
}

/** Open an envelope made by {@link sealPrivateJwk}. Throws `key_error` on a wrong secret or tampering. */
export function openPrivateJwk(sealed: string, kid: string, secret: string): string {
  const parts = sealed.slice(ENVELOPE.length).split('.').map((p) => Buffer.from(p, 'base64url'));
  const [salt, iv, tag, ciphertext] = parts;
  if (parts.length !== 4 || !salt || !iv || !tag || !ciphertext) {
    throw new AppTokensError('key_error', `signing key ${kid}: malformed encrypted private key`);
  }
  try {
    const decipher = createDecipheriv('aes-256-gcm', deriveKey(secret, salt), iv);
    decipher.setAAD(Buffer.from(kid));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8');
  } catch (cause) {
    throw new AppTokensError(
      'key_error',
      `signing key ${kid}: cannot decrypt the private key; is "keyEncryptionSecret" the one it was sealed with?`,
      { cause },
    );
  }
}

/**
 * The keys of this instance: the active signing key and every published verification key.
 * `load()` must complete before `active` and `verificationKey` are used.
 */
export class KeyRing {
  readonly #store: Store;
  readonly #options: KeyRingOptions;
  #active: ActiveKey | undefined;
  /** A rotated-in key, published but signing only from its `createdAt` on. */
  #next: ActiveKey | undefined;
  #byKid = new Map<string, LoadedKey>();
  #jwks: { keys: PublicJwk[] } = { keys: [] };
  #lastReload = 0;
  #reloading: Promise<void> | undefined;

  constructor(store: Store, options: KeyRingOptions) {
    this.#store = store;
    this.#options = options;
  }

  /** Ensure an active key of the configured algorithm exists, then load every key. */
  async load(): Promise<void> {
    const { algorithm } = this.#options;
    let records = await this.#store.listSigningKeys();
    if (!records.some((r) => r.alg === algorithm && r.retiredAt === null)) {
      await this.#store.ensureSigningKey(await this.#generate(algorithm));
      records = await this.#store.listSigningKeys();
    }
    await this.#adopt(records);
  }

  /**
   * Rotate: a new active key of the configured algorithm, the old one retired but still published
   * (and verifying) until its last token has expired. Returns the new kid.
   */
  async rotate(): Promise<{ kid: string; retired: string[]; activatesAt: Date }> {
    // Pre-publication: the new key is in the JWKS at once but signs only after the activation
    // delay, so that resource servers that cached the JWKS (or refetch it only after a cooldown,
    // as jose does for 30 s) know the new kid before the first token carries it.
    const activatesAt = new Date(this.#options.now().getTime() + this.#options.activationDelaySeconds * 1000);
    const candidate = { ...(await this.#generate(this.#options.algorithm)), createdAt: activatesAt };
    const retired = await this.#store.rotateSigningKey(candidate, activatesAt);
    await this.#adopt(await this.#store.listSigningKeys());
    return { kid: candidate.kid, retired, activatesAt };
  }

  /** Read the keys again: another instance may have rotated. */
  async reload(): Promise<void> {
    await this.#adopt(await this.#store.listSigningKeys());
  }

  /** Age of the newest key (in force or upcoming), seconds: what automatic rotation looks at. */
  get activeAge(): number {
    const newest = this.#next ?? this.active;
    return (this.#options.now().getTime() - newest.createdAt.getTime()) / 1000;
  }

  /**
   * Reload keys from the store when a token names a kid we do not know (another instance rotated).
   * At most once per 30 s, so a flood of made-up kids cannot turn into a flood of reads.
   */
  async reloadForUnknownKid(): Promise<void> {
    const now = Date.now();
    if (this.#reloading) return this.#reloading;
    if (now - this.#lastReload < 30_000) return;
    this.#lastReload = now;
    this.#reloading = this.#store
      .listSigningKeys()
      .then((records) => this.#adopt(records))
      .finally(() => {
        this.#reloading = undefined;
      });
    return this.#reloading;
  }

  /** The key new tokens are signed with. */
  get active(): ActiveKey {
    if (this.#next && this.#options.now() >= this.#next.createdAt) {
      this.#active = this.#next;
      this.#next = undefined;
    }
    if (!this.#active) throw new AppTokensError('key_error', 'signing keys are not loaded yet');
    return this.#active;
  }

  /** The verification key for `kid`, if it is one of ours and still published. */
  verificationKey(kid: string): LoadedKey | undefined {
    return this.#byKid.get(kid);
  }

  /** The algorithms of our published keys: the verifier's allow-list. */
  get algorithms(): SigningAlgorithm[] {
    return [...new Set([...this.#byKid.values()].map((k) => k.alg))];
  }

  /** The public JWK Set: no private member, ever. */
  get jwks(): { keys: PublicJwk[] } {
    return this.#jwks;
  }

  async #generate(alg: SigningAlgorithm): Promise<SigningKeyRecord> {
    const { privateKey, publicKey } = await generateKeyPair(alg, {
      extractable: true,
      ...(alg === 'RS256' ? { modulusLength: 2048 } : {}),
    });
    const publicJwkRaw = await exportJWK(publicKey);
    const kid = await calculateJwkThumbprint(publicJwkRaw);
    const privateJson = JSON.stringify({ ...(await exportJWK(privateKey)), kid, alg });
    const secret = this.#options.encryptionSecret;
    if (!secret && process.env.NODE_ENV === 'production') {
      this.#options.warn(
        'express-app-tokens: signing keys are stored unencrypted; set "keyEncryptionSecret" in production',
        'EAT_UNENCRYPTED_KEYS',
      );
    }
    return {
      kid,
      alg,
      publicJwk: JSON.stringify(toPublicJwk(publicJwkRaw, kid, alg)),
      privateJwk: secret ? sealPrivateJwk(privateJson, kid, secret) : privateJson,
      createdAt: this.#options.now(),
      retiredAt: null,
    };
  }

  async #adopt(records: SigningKeyRecord[]): Promise<void> {
    const { algorithm, encryptionSecret, retentionSeconds, now } = this.#options;
    const nowMs = now().getTime();
    const cutoff = nowMs - retentionSeconds * 1000;
    const byKid = new Map<string, LoadedKey>();
    // Signing candidates of our algorithm, newest first: the one in force now, and one that is
    // published but not yet in force (a rotation's pre-publication period).
    const signing: SigningKeyRecord[] = [];
    for (const record of records) {
      if (!(SIGNING_ALGORITHMS as readonly string[]).includes(record.alg)) continue;
      if (record.retiredAt && record.retiredAt.getTime() < cutoff) continue;
      const alg = record.alg as SigningAlgorithm;
      const existing = this.#byKid.get(record.kid);
      const publicJwk = JSON.parse(record.publicJwk) as PublicJwk;
      byKid.set(record.kid, {
        kid: record.kid,
        alg,
        publicJwk: toPublicJwk(publicJwk, record.kid, alg),
        publicKey: existing?.publicKey ?? ((await importJWK(publicJwk, alg)) as CryptoKey),
        createdAt: record.createdAt,
        retiredAt: record.retiredAt,
      });
      if (alg === algorithm && (record.retiredAt === null || record.retiredAt.getTime() > nowMs)) signing.push(record);
    }
    signing.sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime());
    const inForce = signing.find((r) => r.createdAt.getTime() <= nowMs) ?? signing[signing.length - 1];
    if (!inForce) {
      throw new AppTokensError('key_error', `no active ${algorithm} signing key in the store`);
    }
    const upcoming = signing.find((r) => r.createdAt.getTime() > nowMs && r !== inForce);
    this.#active = await this.#withPrivate(byKid.get(inForce.kid)!, inForce);
    this.#next = upcoming ? await this.#withPrivate(byKid.get(upcoming.kid)!, upcoming) : undefined;
    this.#byKid = byKid;
    this.#jwks = { keys: [...byKid.values()].map((k) => k.publicJwk) };
  }

  async #withPrivate(loaded: LoadedKey, record: SigningKeyRecord): Promise<ActiveKey> {
    for (const known of [this.#active, this.#next]) {
      if (known?.kid === record.kid) return { ...loaded, privateKey: known.privateKey };
    }
    return { ...loaded, privateKey: await this.#importPrivate(record, this.#options.encryptionSecret) };
  }


  async #importPrivate(record: SigningKeyRecord, secret: string | undefined): Promise<CryptoKey> {
    let json = record.privateJwk;
    if (json.startsWith(ENVELOPE)) {
      if (!secret) {
        throw new AppTokensError(
          'key_error',
          `signing key ${record.kid} is encrypted at rest; set "keyEncryptionSecret" to the secret it was sealed with`,
        );
      }
      json = openPrivateJwk(json, record.kid, secret);
    } else if (process.env.NODE_ENV === 'production') {
      this.#options.warn(
        'express-app-tokens: the active signing key is stored unencrypted; set "keyEncryptionSecret" in production',
        'EAT_UNENCRYPTED_KEYS',
      );
    }
    return (await importJWK(JSON.parse(json) as JWK, record.alg)) as CryptoKey;
  }
}
