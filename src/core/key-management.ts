/**
 * Managing the public keys of `private_key_jwt` apps (`/apps/:id/keys`): keys are credentials like
 * API tokens — adding one needs every scope the app holds, deleting one kills every access token
 * minted with it at once, on every instance (its tombstone), and an app has at most
 * `limits.keysPerApp` of them.
 *
 * @module
 */
import type { ClientKeyRecord } from '../store.js';
import { clientKeyView, parsePem, parsePublicJwk, type ClientKeyView, type ParsedKey } from './client-keys.js';
import { AppTokensError } from './errors.js';
import { invalid, type AppManagement, type Principal } from './management.js';
import { printable } from './scopes.js';
import { randomId } from './secrets.js';
import type { AppTokensService } from './service.js';

/** Input of {@link KeyManagement.add}: a JWK, or a PEM public key (with its `alg` for RSA), and an optional lifetime. */
export interface AddKeyInput {
  jwk?: unknown;
  pem?: string | undefined;
  alg?: string | undefined;
  kid?: string | undefined;
  /** Seconds the key may sign assertions, 60 – 10 years; default: no expiry. */
  expiresIn?: number | undefined;
}

const MAX_KEY_LIFETIME = 3650 * 86_400;
const KID_PATH = /^[\x21-\x7e]{1,128}$/;

export class KeyManagement {
  readonly #s: AppTokensService;
  readonly #m: AppManagement;

  constructor(service: AppTokensService, management: AppManagement) {
    this.#s = service;
    this.#m = management;
  }

  /** Parse a JWK Set given at app creation (`jwks: {keys: [...]}`): public keys only, distinct kids, within the limit. */
  async parseSet(jwks: unknown, field = 'jwks'): Promise<ParsedKey[]> {
    if (typeof jwks !== 'object' || jwks === null || !Array.isArray((jwks as { keys?: unknown }).keys)) {
      throw invalid(field, 'must be a JWK Set: {"keys": [ …public JWKs… ]}');
    }
    const keys = (jwks as { keys: unknown[] }).keys;
    if (keys.length === 0) throw invalid(`${field}.keys`, 'must hold at least one public key');
    const max = this.#s.options.limits.keysPerApp;
    if (keys.length > max) throw invalid(`${field}.keys`, `at most ${max} keys (limits.keysPerApp)`);
    const parsed: ParsedKey[] = [];
    for (const [i, jwk] of keys.entries()) {
      const key = await parsePublicJwk(jwk, `${field}.keys[${i}]`);
      if (parsed.some((k) => k.kid === key.kid)) throw invalid(`${field}.keys[${i}].kid`, `'${printable(key.kid)}' appears twice`);
      parsed.push(key);
    }
    return parsed;
  }

  /** A record for a parsed key of `app`. */
  record(appId: string, tenantId: string, key: ParsedKey, now: Date, expiresAt: Date | null): ClientKeyRecord {
    return { id: randomId('key'), appId, tenantId, kid: key.kid, alg: key.alg, jwk: JSON.stringify(key.jwk), createdAt: now, expiresAt };
  }

  /** The app's public keys (reading needs `apps:read`). */
  list(p: Principal, appId: string): Promise<{ items: ClientKeyView[] }> {
    return this.#m.audited(p, 'list_keys', appId, async () => {
      const app = await this.#m.appOf(p, appId);
      const now = this.#s.options.advanced.now();
      const keys = await this.#s.options.store.listClientKeys(app.tenantId, app.id);
      return { items: await Promise.all(keys.map((k) => clientKeyView(k, now))) };
    });
  }

  /** Register another public key; the caller must be able to act on the app. */
  add(p: Principal, appId: string, input: AddKeyInput): Promise<ClientKeyView> {
    return this.#m.audited(p, 'add_key', appId, async () => {
      const app = await this.#m.appOf(p, appId);
      this.#m.assertMayActOn(p, app);
      if (app.tokenEndpointAuthMethod !== 'private_key_jwt') {
        throw new AppTokensError('conflict', `id: app ${printable(app.id)} authenticates with a client secret; keys are for private_key_jwt apps`, { field: 'id' });
      }
      if (app.jwksUri) {
        throw new AppTokensError('conflict', `id: app ${printable(app.id)} publishes its keys at its jwksUri; change them there`, { field: 'id' });
      }
      if ((input.jwk === undefined) === (input.pem === undefined)) throw invalid('jwk', 'give exactly one of "jwk" and "pem"');
      const parsed = input.jwk !== undefined ? await parsePublicJwk(input.kid !== undefined ? { ...(input.jwk as object), kid: input.kid } : input.jwk, 'jwk') : await parsePem(input.pem, input.alg, input.kid, 'pem');
      if (input.jwk !== undefined && input.alg !== undefined) throw invalid('alg', 'put alg in the JWK');
      const now = this.#s.options.advanced.now();
      let expiresAt: Date | null = null;
      if (input.expiresIn !== undefined) {
        if (!Number.isSafeInteger(input.expiresIn) || input.expiresIn < 60 || input.expiresIn > MAX_KEY_LIFETIME) {
          throw invalid('expiresIn', `must be a whole number of seconds from 60 to ${MAX_KEY_LIFETIME}`);
        }
        expiresAt = new Date(now.getTime() + input.expiresIn * 1000);
      }
      const record = this.record(app.id, app.tenantId, parsed, now, expiresAt);
      try {
        await this.#s.options.store.addClientKey(record, { maxPerApp: this.#s.options.limits.keysPerApp });
      } catch (error) {
        if (error instanceof AppTokensError && error.code === 'conflict') {
          throw new AppTokensError('conflict', `kid: the app already has a key '${printable(parsed.kid)}'`, { field: 'kid' });
        }
        throw error;
      }
      this.#s.events.emit({ type: 'key.added', tenantId: app.tenantId, appId: app.id, actorId: p.actorId, data: { kid: parsed.kid, alg: parsed.alg } });
      return clientKeyView(record, now);
    });
  }

  /** Delete a key: every access token minted with it dies at once, on every instance. */
  delete(p: Principal, appId: string, kid: string): Promise<void> {
    return this.#m.audited(p, 'delete_key', appId, async () => {
      if (typeof kid !== 'string' || !KID_PATH.test(kid)) throw new AppTokensError('not_found', `key ${printable(String(kid))} not found`, { field: 'kid' });
      const app = await this.#m.appOf(p, appId);
      this.#m.assertMayActOn(p, app);
      const tombstone = this.#s.tombstone('api_token', 'unused', app.tenantId);
      const deleted = await this.#s.options.store.deleteClientKey(app.tenantId, app.id, kid, { createdAt: tombstone.createdAt, expiresAt: tombstone.expiresAt });
      if (!deleted) throw new AppTokensError('not_found', `key ${printable(kid)} not found`, { field: 'kid' });
      this.#s.events.emit({ type: 'key.deleted', tenantId: app.tenantId, appId: app.id, actorId: p.actorId, data: { kid, alg: deleted.alg } });
    });
  }
}
