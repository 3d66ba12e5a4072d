/**
 * The conformance suite of {@link Store}. Every adapter runs it (see `test/adapters.ts`); a third
 * party's adapter can too:
 *
 * ```ts
 * storeContract('my store', async () => ({ store: await makeMyStore() }));
 * ```
 *
 * Each test gets a fresh, empty store from `makeStore`, which it closes (and cleans up) afterwards.
 *
 * @module
 */

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isAppTokensError } from '../src/core/errors.js';
import type { ErrorCode } from '../src/core/errors.js';
import { encodeCursor } from '../src/store.js';
import type {
  ApiTokenRecord,
  AppRecord,
  ListAppsOptions,
  ClientKeyRecord,
  AuditEventRecord,
  SigningKeyRecord,
  Store,
  Tombstone,
  TombstoneKind,
  UsageCount,
  UsageRow,
} from '../src/store.js';

/** What a store factory hands the suite. */
export interface MadeStore {
  store: Store;
  /** Runs after `store.close()`, e.g. to delete a temporary directory. */
  cleanup?: () => Promise<void>;
}

// ---- record builders ------------------------------------------------------------------------------

/** A fixed instant with a non-zero millisecond part, to check millisecond precision. */
const T0 = Date.parse('2030-01-02T03:04:05.678Z');
const SECOND = 1000;
const HOUR = 3600 * SECOND;

/** A `Date` `offsetMs` after {@link T0}. */
export function at(offsetMs: number): Date {
  return new Date(T0 + offsetMs);
}

let sequence = 0;
/** A unique id with a readable prefix. */
function uid(prefix: string): string {
  sequence += 1;
  return `${prefix}_${sequence.toString().padStart(6, '0')}`;
}

/** An app record of `tenantId`, created at {@link T0} unless overridden. */
export function makeApp(overrides: Partial<AppRecord> = {}): AppRecord {
  return {
    id: uid('app'),
    tenantId: 'tenant-a',
    name: 'Billing sync',
    description: 'Pushes invoices',
    scopes: ['invoices:read', 'storage:*'],
    customClaims: { plan: 'pro', limits: { rps: 10 }, tags: ['a', 'b'] },
    createdAt: at(0),
    updatedAt: at(0),
    // What the store returns for an app without roles that is not a personal client.
    roles: [],
    ownerUserId: null,
    tokenEndpointAuthMethod: 'client_secret_basic',
    jwksUri: null,
    dpopBoundAccessTokens: false,
    ...overrides,
  };
}

/** An active API token of `app`. */
export function makeToken(app: AppRecord, overrides: Partial<ApiTokenRecord> = {}): ApiTokenRecord {
  const id = overrides.id ?? uid('tok');
  return {
    id,
    appId: app.id,
    tenantId: app.tenantId,
    name: 'default',
    hash: `hash-of-${id}`.padEnd(64, '0'),
    hint: 'eat_…x9Qz',
    scopes: null,
    createdAt: at(SECOND),
    expiresAt: null,
    lastUsedAt: null,
    revokedAt: null,
    revokedReason: null,
    replacedBy: null,
    // What the store returns for a token that starts its own family.
    familyId: id,
    notifiedBefore: null,
    ...overrides,
  };
}

/** A signing key candidate. */
export function makeKey(overrides: Partial<SigningKeyRecord> = {}): SigningKeyRecord {
  const kid = overrides.kid ?? uid('kid');
  return {
    kid,
    alg: 'ES256',
    publicJwk: JSON.stringify({ kty: 'EC', crv: 'P-256', x: `x-${kid}`, y: 'y' }),
    privateJwk: JSON.stringify({ kty: 'EC', crv: 'P-256', x: `x-${kid}`, y: 'y', d: 'd' }),
    createdAt: at(0),
    retiredAt: null,
    ...overrides,
  };
}

/** A tombstone created at {@link T0} that expires an hour later. */
export function makeTombstone(kind: TombstoneKind, id: string, overrides: Partial<Tombstone> = {}): Tombstone {
  return { kind, id, tenantId: 'tenant-a', createdAt: at(0), expiresAt: at(HOUR), ...overrides };
}

/** An audit event of app `app_events` in `tenant-a` at {@link T0}, with nested `data`, unless overridden. */
export function makeEvent(overrides: Partial<AuditEventRecord> = {}): AuditEventRecord {
  return {
    id: uid('evt'),
    type: 'token.created',
    outcome: 'success',
    tenantId: 'tenant-a',
    appId: 'app_events',
    tokenId: 'tok_events',
    actorId: 'user-1',
    at: at(0),
    data: { scopes: ['invoices:read'], nested: { n: 1 } },
    ...overrides,
  };
}

/** Expect `promise` to reject with an `AppTokensError` of `code`. */
async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, `expected an AppTokensError ${code}`).toBeDefined();
  expect(isAppTokensError(error, code), `expected code ${code}, got ${String(error)}`).toBe(true);
}

// ---- the suite ------------------------------------------------------------------------------------

/**
 * Register the conformance suite of {@link Store} under `describe(name)`. `makeStore` must return
 * a fresh, empty store each time.
 */
export function storeContract(name: string, makeStore: () => Promise<MadeStore>): void {
  describe(name, () => {
    let store: Store;
    let cleanup: (() => Promise<void>) | undefined;

    beforeEach(async () => {
      const made = await makeStore();
      store = made.store;
      cleanup = made.cleanup;
      await store.init();
    });

    afterEach(async () => {
      await store.close();
      await cleanup?.();
    });

    /** Collect every emission of `store.onChange`. */
    function listen(): Tombstone[][] {
      const seen: Tombstone[][] = [];
      store.onChange((tombstones) => seen.push([...tombstones]));
      return seen;
    }

    /** Create an app with `tokenCount` tokens; returns both. */
    async function seedApp(
      appOverrides: Partial<AppRecord> = {},
      tokenCount = 1,
    ): Promise<{ app: AppRecord; tokens: ApiTokenRecord[] }> {
      const app = makeApp(appOverrides);
      const tokens = Array.from({ length: tokenCount }, (_, i) => makeToken(app, { createdAt: at(SECOND * (i + 1)) }));
      await store.createApp(app, tokens);
      return { app, tokens };
    }

    // ---- lifecycle --------------------------------------------------------------------------

    describe('lifecycle', () => {
      it('init is idempotent, also when called concurrently', async () => {
        await Promise.all([store.init(), store.init(), store.init()]);
        await store.init();
        const { app } = await seedApp();
        await store.init();
        expect(await store.getApp(app.tenantId, app.id)).toEqual(app);
      });

      it('close is idempotent and later calls reject with unavailable', async () => {
        await store.close();
        await store.close();
        await expectCode(store.getApp('tenant-a', 'x'), 'unavailable');
      });
    });

    // ---- apps -------------------------------------------------------------------------------

    describe('apps', () => {
      it('createApp stores the app and getApp returns it with every field and millisecond dates', async () => {
        const app = makeApp({ description: null, createdAt: at(1), updatedAt: at(2) });
        await store.createApp(app, []);
        const got = await store.getApp(app.tenantId, app.id);
        expect(got).toEqual(app);
        expect(got?.createdAt).toBeInstanceOf(Date);
        expect(got?.createdAt.getTime()).toBe(T0 + 1);
        expect(got?.updatedAt.getTime()).toBe(T0 + 2);
      });

      it('getApp of a missing app is undefined', async () => {
        expect(await store.getApp('tenant-a', 'nope')).toBeUndefined();
      });

      it('getApp of another tenant sees nothing', async () => {
        const { app } = await seedApp({ tenantId: 'tenant-a' });
        expect(await store.getApp('tenant-b', app.id)).toBeUndefined();
      });

      it('getAppByClientId finds the app whatever its tenant', async () => {
        const { app } = await seedApp({ tenantId: 'tenant-z' });
        expect(await store.getAppByClientId(app.id)).toEqual(app);
        expect(await store.getAppByClientId('nope')).toBeUndefined();
      });

      it('returned apps are copies: mutating them does not change the store', async () => {
        const { app } = await seedApp();
        const got = (await store.getApp(app.tenantId, app.id))!;
        got.name = 'mutated';
        got.scopes.push('admin');
        (got.customClaims['limits'] as { rps: number }).rps = 999;
        got.createdAt.setTime(0);
        const byClientId = (await store.getAppByClientId(app.id))!;
        byClientId.scopes.length = 0;
        const listed = (await store.listApps(app.tenantId, { limit: 10 })).items[0]!;
        listed.customClaims['plan'] = 'free';
        expect(await store.getApp(app.tenantId, app.id)).toEqual(app);
      });

      it('stored apps are copies: mutating the argument after createApp does not change the store', async () => {
        const app = makeApp();
        const expected = structuredClone(app);
        await store.createApp(app, []);
        app.name = 'mutated';
        app.scopes.push('admin');
        app.customClaims['plan'] = 'free';
        app.createdAt.setTime(0);
        expect(await store.getApp(expected.tenantId, expected.id)).toEqual(expected);
      });

      it('createApp inserts the app together with its tokens', async () => {
        const { app, tokens } = await seedApp({}, 3);
        expect(await store.listApiTokens(app.tenantId, app.id)).toEqual(tokens);
        for (const token of tokens) expect(await store.findApiTokenByHash(token.hash)).toEqual(token);
      });

      it('createApp with an existing app id throws conflict and changes nothing', async () => {
        const { app } = await seedApp();
        const again = makeApp({ id: app.id, name: 'other' });
        await expectCode(store.createApp(again, [makeToken(again)]), 'conflict');
        expect(await store.getApp(app.tenantId, app.id)).toEqual(app);
        expect(await store.listApiTokens(app.tenantId, app.id)).toHaveLength(1);
      });

      it('createApp with a token hash that already exists fails entirely and leaves no app', async () => {
        const { tokens: existing } = await seedApp();
        const app = makeApp();
        const fresh = makeToken(app);
        const clash = makeToken(app, { hash: existing[0]!.hash });
        await expectCode(store.createApp(app, [fresh, clash]), 'conflict');
        expect(await store.getApp(app.tenantId, app.id)).toBeUndefined();
        expect(await store.getAppByClientId(app.id)).toBeUndefined();
        expect(await store.getApiToken(app.tenantId, fresh.id)).toBeUndefined();
        expect(await store.findApiTokenByHash(fresh.hash)).toBeUndefined();
      });

      it('createApp with a token id that already exists fails entirely and leaves no app', async () => {
        const { tokens: existing } = await seedApp();
        const app = makeApp();
        await expectCode(store.createApp(app, [makeToken(app, { id: existing[0]!.id, hash: 'f'.repeat(64) })]), 'conflict');
        expect(await store.getAppByClientId(app.id)).toBeUndefined();
        expect(await store.findApiTokenByHash('f'.repeat(64))).toBeUndefined();
      });

      it('createApp with two of its tokens sharing a hash fails entirely and leaves no app', async () => {
        const app = makeApp();
        const first = makeToken(app);
        await expectCode(store.createApp(app, [first, makeToken(app, { hash: first.hash })]), 'conflict');
        expect(await store.getAppByClientId(app.id)).toBeUndefined();
        expect(await store.findApiTokenByHash(first.hash)).toBeUndefined();
      });

      it('listApps returns the tenant’s apps oldest first, ties broken by id', async () => {
        const c = await seedApp({ id: 'app-c', createdAt: at(5) }, 0);
        const b = await seedApp({ id: 'app-b', createdAt: at(5) }, 0);
        const a = await seedApp({ id: 'app-a', createdAt: at(9) }, 0);
        const d = await seedApp({ id: 'app-d', createdAt: at(1) }, 0);
        await seedApp({ id: 'app-other-tenant', tenantId: 'tenant-b', createdAt: at(3) }, 0);
        const page = await store.listApps('tenant-a', { limit: 10 });
        expect(page.items).toEqual([d.app, b.app, c.app, a.app]);
        expect(page.nextCursor).toBeNull();
      });

      it('listApps of an empty tenant is an empty last page', async () => {
        await seedApp({ tenantId: 'tenant-a' }, 0);
        expect(await store.listApps('tenant-b', { limit: 5 })).toEqual({ items: [], nextCursor: null, total: 0 });
      });

      it('listApps pages with nextCursor and returns nextCursor null on the last page', async () => {
        const apps: AppRecord[] = [];
        for (let i = 0; i < 5; i += 1) apps.push((await seedApp({ createdAt: at(i * SECOND) }, 0)).app);
        const p1 = await store.listApps('tenant-a', { limit: 2 });
        expect(p1.items).toEqual(apps.slice(0, 2));
        expect(p1.nextCursor).toEqual(expect.any(String));
        const p2 = await store.listApps('tenant-a', { limit: 2, cursor: p1.nextCursor! });
        expect(p2.items).toEqual(apps.slice(2, 4));
        expect(p2.nextCursor).toEqual(expect.any(String));
        const p3 = await store.listApps('tenant-a', { limit: 2, cursor: p2.nextCursor! });
        expect(p3.items).toEqual(apps.slice(4));
        expect(p3.nextCursor).toBeNull();
      });

      it('listApps returns nextCursor null when the last page is exactly full', async () => {
        for (let i = 0; i < 4; i += 1) await seedApp({ createdAt: at(i) }, 0);
        const p1 = await store.listApps('tenant-a', { limit: 2 });
        const p2 = await store.listApps('tenant-a', { limit: 2, cursor: p1.nextCursor! });
        expect(p2.items).toHaveLength(2);
        expect(p2.nextCursor).toBeNull();
      });

      it('listApps never shows another tenant’s apps, even with a cursor taken from them', async () => {
        for (let i = 0; i < 3; i += 1) await seedApp({ tenantId: 'tenant-b', createdAt: at(i) }, 0);
        const mine = await seedApp({ tenantId: 'tenant-a', createdAt: at(10) }, 0);
        const theirs = await store.listApps('tenant-b', { limit: 1 });
        expect(theirs.items.every((app) => app.tenantId === 'tenant-b')).toBe(true);
        const page = await store.listApps('tenant-a', { limit: 10, cursor: theirs.nextCursor! });
        expect(page.items).toEqual([mine.app]);
      });

      it('listApps stays stable while apps are inserted and deleted between pages', async () => {
        // Pairs share a createdAt so that the id tie-break is exercised at page boundaries.
        const initial: AppRecord[] = [];
        for (let i = 0; i < 12; i += 1) {
          initial.push((await seedApp({ id: `app-${String(i).padStart(2, '0')}`, createdAt: at(Math.floor(i / 2) * SECOND) }, 0)).app);
        }
        const deletedMidWalk = new Set<string>();
        const seen: string[] = [];
        let cursor: string | undefined;
        let round = 0;
        do {
          const page = await store.listApps('tenant-a', { limit: 3, cursor });
          seen.push(...page.items.map((app) => app.id));
          cursor = page.nextCursor ?? undefined;
          round += 1;
          const last = page.items[page.items.length - 1];
          if (last) {
            // Delete the app the cursor points at, one already seen, and one not yet reached.
            await store.deleteApp('tenant-a', last.id, makeTombstone('app', last.id));
            deletedMidWalk.add(last.id);
            const ahead = initial.filter((app) => !seen.includes(app.id) && !deletedMidWalk.has(app.id))[1];
            if (ahead) {
              await store.deleteApp('tenant-a', ahead.id, makeTombstone('app', ahead.id));
              deletedMidWalk.add(ahead.id);
            }
          }
          // Insert one app before the cursor (at the same instant as the first app) and one after.
          await seedApp({ id: `app-new-early-${round}`, createdAt: at(0) }, 0);
          await seedApp({ id: `app-new-late-${round}`, createdAt: at(60 * SECOND + round) }, 0);
        } while (cursor !== undefined && round < 50);

        expect(round).toBeLessThan(50);
        expect(new Set(seen).size).toBe(seen.length);
        const survivors = initial.filter((app) => !deletedMidWalk.has(app.id)).map((app) => app.id);
        for (const id of survivors) expect(seen).toContain(id);
        expect(seen.some((id) => id.startsWith('app-new-early'))).toBe(false);
      });

      it('listApps rejects a malformed cursor and a non-positive limit with validation_failed', async () => {
        await expectCode(store.listApps('tenant-a', { limit: 2, cursor: 'not a cursor' }), 'validation_failed');
        await expectCode(store.listApps('tenant-a', { limit: 0 }), 'validation_failed');
      });

      it('updateApp changes the fields present, leaves absent fields unchanged and sets updatedAt', async () => {
        const { app } = await seedApp();
        const updated = await store.updateApp(app.tenantId, app.id, { name: 'Renamed' }, at(HOUR));
        const expected: AppRecord = { ...app, name: 'Renamed', updatedAt: at(HOUR) };
        expect(updated).toEqual(expected);
        expect(await store.getApp(app.tenantId, app.id)).toEqual(expected);

        const again = await store.updateApp(
          app.tenantId,
          app.id,
          { description: null, customClaims: { plan: 'enterprise' } },
          at(2 * HOUR),
        );
        expect(again).toEqual({ ...expected, description: null, customClaims: { plan: 'enterprise' }, updatedAt: at(2 * HOUR) });
        expect(again?.createdAt).toEqual(app.createdAt);
        expect(again?.scopes).toEqual(app.scopes);
      });

      it('updateApp with an empty patch only sets updatedAt', async () => {
        const { app } = await seedApp();
        expect(await store.updateApp(app.tenantId, app.id, {}, at(HOUR))).toEqual({ ...app, updatedAt: at(HOUR) });
      });

      it('updateApp of another tenant returns undefined and changes nothing', async () => {
        const { app } = await seedApp();
        expect(await store.updateApp('tenant-b', app.id, { name: 'Hijacked' }, at(HOUR))).toBeUndefined();
        expect(await store.updateApp(app.tenantId, 'nope', { name: 'x' }, at(HOUR))).toBeUndefined();
        expect(await store.getApp(app.tenantId, app.id)).toEqual(app);
      });

      it('updateApp returns a copy', async () => {
        const { app } = await seedApp();
        const updated = (await store.updateApp(app.tenantId, app.id, { name: 'Renamed' }, at(HOUR)))!;
        updated.scopes.push('admin');
        updated.name = 'mutated';
        expect(await store.getApp(app.tenantId, app.id)).toEqual({ ...app, name: 'Renamed', updatedAt: at(HOUR) });
      });

      it('deleteApp removes the app and all its tokens, writes the tombstone and emits it', async () => {
        const { app, tokens } = await seedApp({}, 2);
        const other = await seedApp({}, 1);
        const seen = listen();
        const tombstone = makeTombstone('app', app.id);
        expect(await store.deleteApp(app.tenantId, app.id, tombstone)).toBe(true);
        expect(await store.getApp(app.tenantId, app.id)).toBeUndefined();
        expect(await store.getAppByClientId(app.id)).toBeUndefined();
        expect(await store.listApiTokens(app.tenantId, app.id)).toEqual([]);
        for (const token of tokens) {
          expect(await store.getApiToken(app.tenantId, token.id)).toBeUndefined();
          expect(await store.findApiTokenByHash(token.hash)).toBeUndefined();
        }
        expect(await store.listTombstones(at(0))).toEqual([tombstone]);
        expect(seen).toEqual([[tombstone]]);
        // Other apps are untouched.
        expect(await store.listApiTokens(other.app.tenantId, other.app.id)).toEqual(other.tokens);
      });

      it('deleteApp of another tenant returns false, deletes nothing and writes no tombstone', async () => {
        const { app, tokens } = await seedApp({}, 1);
        const seen = listen();
        expect(await store.deleteApp('tenant-b', app.id, makeTombstone('app', app.id, { tenantId: 'tenant-b' }))).toBe(false);
        expect(await store.getApp(app.tenantId, app.id)).toEqual(app);
        expect(await store.listApiTokens(app.tenantId, app.id)).toEqual(tokens);
        expect(await store.listTombstones(at(0))).toEqual([]);
        expect(seen).toEqual([]);
      });

      it('deleteApp of a missing or already deleted app returns false', async () => {
        const { app } = await seedApp();
        expect(await store.deleteApp(app.tenantId, 'nope', makeTombstone('app', 'nope'))).toBe(false);
        expect(await store.deleteApp(app.tenantId, app.id, makeTombstone('app', app.id))).toBe(true);
        expect(await store.deleteApp(app.tenantId, app.id, makeTombstone('app', app.id))).toBe(false);
      });
    });

    // ---- API tokens -------------------------------------------------------------------------

    describe('API tokens', () => {
      it('createApiToken stores every field; getApiToken and findApiTokenByHash return it', async () => {
        const { app } = await seedApp({}, 0);
        const token = makeToken(app, {
          scopes: ['invoices:read'],
          expiresAt: at(30 * 24 * HOUR + 7),
          lastUsedAt: at(3),
        });
        await store.createApiToken(token);
        expect(await store.getApiToken(app.tenantId, token.id)).toEqual(token);
        expect(await store.findApiTokenByHash(token.hash)).toEqual(token);
        const got = (await store.getApiToken(app.tenantId, token.id))!;
        expect(got.expiresAt).toBeInstanceOf(Date);
        expect(got.expiresAt?.getTime()).toBe(T0 + 30 * 24 * HOUR + 7);
      });

      it('scopes null (all of the app’s scopes) and an empty scope list are kept apart', async () => {
        const { app } = await seedApp({}, 0);
        const all = makeToken(app, { scopes: null });
        const none = makeToken(app, { scopes: [] });
        await store.createApiToken(all);
        await store.createApiToken(none);
        expect((await store.getApiToken(app.tenantId, all.id))?.scopes).toBeNull();
        expect((await store.getApiToken(app.tenantId, none.id))?.scopes).toEqual([]);
      });

      it('getApiToken of another tenant sees nothing; findApiTokenByHash finds it whatever the tenant', async () => {
        const { tokens } = await seedApp({ tenantId: 'tenant-a' });
        const token = tokens[0]!;
        expect(await store.getApiToken('tenant-b', token.id)).toBeUndefined();
        expect(await store.getApiToken('tenant-a', 'nope')).toBeUndefined();
        expect(await store.findApiTokenByHash(token.hash)).toEqual(token);
        expect(await store.findApiTokenByHash('0'.repeat(64))).toBeUndefined();
      });

      it('createApiToken with an existing id or hash throws conflict', async () => {
        const { app, tokens } = await seedApp();
        const existing = tokens[0]!;
        await expectCode(store.createApiToken(makeToken(app, { id: existing.id, hash: 'e'.repeat(64) })), 'conflict');
        const sameHash = makeToken(app, { hash: existing.hash });
        await expectCode(store.createApiToken(sameHash), 'conflict');
        expect(await store.getApiToken(app.tenantId, sameHash.id)).toBeUndefined();
        expect(await store.findApiTokenByHash('e'.repeat(64))).toBeUndefined();
        expect(await store.listApiTokens(app.tenantId, app.id)).toEqual(tokens);
      });

      it('createApiToken for an app that does not exist in the token’s tenant throws not_found', async () => {
        const { app } = await seedApp({ tenantId: 'tenant-a' }, 0);
        await expectCode(store.createApiToken(makeToken(makeApp({ id: 'ghost' }))), 'not_found');
        await expectCode(store.createApiToken(makeToken(app, { tenantId: 'tenant-b' })), 'not_found');
      });

      it('returned tokens are copies', async () => {
        const { app } = await seedApp({}, 0);
        const token = makeToken(app, { scopes: ['a'] });
        await store.createApiToken(token);
        const expected = structuredClone(token);
        token.scopes!.push('mutated-input');
        const got = (await store.getApiToken(app.tenantId, token.id))!;
        got.scopes!.push('b');
        got.createdAt.setTime(0);
        (await store.findApiTokenByHash(token.hash))!.name = 'x';
        (await store.listApiTokens(app.tenantId, app.id))[0]!.hint = 'x';
        expect(await store.getApiToken(app.tenantId, token.id)).toEqual(expected);
      });

      it('listApiTokens lists every token of the app, revoked ones included, oldest first', async () => {
        const { app } = await seedApp({}, 0);
        const late = makeToken(app, { createdAt: at(3 * SECOND) });
        const early = makeToken(app, { createdAt: at(1 * SECOND) });
        const middle = makeToken(app, { createdAt: at(2 * SECOND) });
        for (const token of [late, early, middle]) await store.createApiToken(token);
        await store.revokeApiTokens(app.tenantId, [middle.id], 'deleted', [makeTombstone('api_token', middle.id)], at(HOUR));
        const other = await seedApp({}, 2);
        const list = await store.listApiTokens(app.tenantId, app.id);
        expect(list.map((t) => t.id)).toEqual([early.id, middle.id, late.id]);
        expect(list[1]?.revokedAt).toEqual(at(HOUR));
        expect(list.some((t) => t.appId === other.app.id)).toBe(false);
      });

      it('listApiTokens of another tenant is empty', async () => {
        const { app } = await seedApp({}, 2);
        expect(await store.listApiTokens('tenant-b', app.id)).toEqual([]);
      });

      describe('replaceApiToken', () => {
        function replacementOf(old: ApiTokenRecord, overrides: Partial<ApiTokenRecord> = {}): ApiTokenRecord {
          const id = uid('tok');
          return { ...old, id, hash: `replacement-${id}`.padEnd(64, '0'), createdAt: at(HOUR), lastUsedAt: null, ...overrides };
        }

        it('racing the deletion of its app never fails with a deadlock: each pair ends with the app gone and no error (lock order app → tokens)', async () => {
          for (let i = 0; i < 15; i++) {
            const { app, tokens } = await seedApp();
            const old = tokens[0]!;
            const results = await Promise.allSettled([
              store.replaceApiToken({
                tenantId: app.tenantId,
                oldId: old.id,
                expectedHash: old.hash,
                reason: 'regenerated',
                replacement: replacementOf(old),
                tombstone: makeTombstone('api_token', old.id, { createdAt: at(HOUR), expiresAt: at(2 * HOUR) }),
              }),
              store.deleteApp(app.tenantId, app.id, makeTombstone('app', app.id)),
            ]);
            expect(results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason))).toEqual([]);
            expect(await store.getApp(app.tenantId, app.id)).toBeUndefined();
            expect(await store.listApiTokens(app.tenantId, app.id)).toEqual([]);
          }
        });

        it('swaps an active token: the old one is revoked with reason and replacedBy, the replacement inserted, the tombstone written and emitted', async () => {
          const { app, tokens } = await seedApp();
          const old = tokens[0]!;
          const replacement = replacementOf(old);
          const tombstone = makeTombstone('api_token', old.id, { createdAt: at(HOUR), expiresAt: at(2 * HOUR) });
          const seen = listen();
          const ok = await store.replaceApiToken({
            tenantId: app.tenantId,
            oldId: old.id,
            expectedHash: old.hash,
            reason: 'refreshed',
            replacement,
            tombstone,
          });
          expect(ok).toBe(true);
          const after = await store.getApiToken(app.tenantId, old.id);
          expect(after).toEqual({ ...old, revokedAt: expect.any(Date), revokedReason: 'refreshed', replacedBy: replacement.id });
          expect(await store.getApiToken(app.tenantId, replacement.id)).toEqual(replacement);
          expect(await store.findApiTokenByHash(replacement.hash)).toEqual(replacement);
          // The old token stays findable by its hash, so that its reuse can be detected.
          expect((await store.findApiTokenByHash(old.hash))?.revokedReason).toBe('refreshed');
          expect(await store.listTombstones(at(HOUR))).toEqual([tombstone]);
          expect(seen).toEqual([[tombstone]]);
        });

        it('with retireAt (a grace period): the old token stays active until then, replacedBy set, the deadline tombstone written and emitted', async () => {
          const { app, tokens } = await seedApp();
          const old = tokens[0]!;
          const replacement = replacementOf(old);
          const tombstone = makeTombstone('api_token', old.id, { createdAt: at(2 * HOUR), expiresAt: at(4 * HOUR) });
          const seen = listen();
          const ok = await store.replaceApiToken({
            tenantId: app.tenantId,
            oldId: old.id,
            expectedHash: old.hash,
            reason: 'regenerated',
            replacement,
            tombstone,
            retireAt: at(2 * HOUR),
          });
          expect(ok).toBe(true);
          expect(await store.getApiToken(app.tenantId, old.id)).toEqual({ ...old, expiresAt: at(2 * HOUR), replacedBy: replacement.id });
          expect(await store.getApiToken(app.tenantId, replacement.id)).toEqual(replacement);
          expect(seen).toEqual([[tombstone]]);
          // An earlier expiry is kept: the deadline never extends a token.
          const { app: app2, tokens: t2 } = await seedApp();
          const short = makeToken(app2, { hash: 'short'.padEnd(64, '0'), expiresAt: at(HOUR) });
          await store.createApiToken(short);
          expect(
            await store.replaceApiToken({
              tenantId: app2.tenantId,
              oldId: short.id,
              expectedHash: short.hash,
              reason: 'regenerated',
              replacement: replacementOf(short),
              tombstone: makeTombstone('api_token', short.id, { createdAt: at(2 * HOUR), expiresAt: at(4 * HOUR) }),
              retireAt: at(2 * HOUR),
            }),
          ).toBe(true);
          expect((await store.getApiToken(app2.tenantId, short.id))?.expiresAt).toEqual(at(HOUR));
          expect(t2).toHaveLength(1);
        });

        it('returns false and changes nothing when the hash does not match', async () => {
          const { app, tokens } = await seedApp();
          const old = tokens[0]!;
          const replacement = replacementOf(old);
          const seen = listen();
          const ok = await store.replaceApiToken({
            tenantId: app.tenantId,
            oldId: old.id,
            expectedHash: 'f'.repeat(64),
            reason: 'regenerated',
            replacement,
            tombstone: makeTombstone('api_token', old.id),
          });
          expect(ok).toBe(false);
          expect(await store.getApiToken(app.tenantId, old.id)).toEqual(old);
          expect(await store.getApiToken(app.tenantId, replacement.id)).toBeUndefined();
          expect(await store.listTombstones(at(0))).toEqual([]);
          expect(seen).toEqual([]);
        });

        it('returns false for a token that is already revoked', async () => {
          const { app, tokens } = await seedApp();
          const old = tokens[0]!;
          await store.revokeApiTokens(app.tenantId, [old.id], 'deleted', [], at(HOUR));
          const replacement = replacementOf(old);
          const ok = await store.replaceApiToken({
            tenantId: app.tenantId,
            oldId: old.id,
            expectedHash: old.hash,
            reason: 'refreshed',
            replacement,
            tombstone: makeTombstone('api_token', old.id),
          });
          expect(ok).toBe(false);
          expect((await store.getApiToken(app.tenantId, old.id))?.revokedReason).toBe('deleted');
          expect(await store.getApiToken(app.tenantId, replacement.id)).toBeUndefined();
        });

        it('returns false for a token of another tenant or a missing token', async () => {
          const { tokens } = await seedApp({ tenantId: 'tenant-a' });
          const old = tokens[0]!;
          for (const [tenantId, oldId] of [
            ['tenant-b', old.id],
            ['tenant-a', 'nope'],
          ] as const) {
            const ok = await store.replaceApiToken({
              tenantId,
              oldId,
              expectedHash: old.hash,
              reason: 'refreshed',
              replacement: replacementOf(old),
              tombstone: makeTombstone('api_token', oldId),
            });
            expect(ok).toBe(false);
          }
          expect(await store.getApiToken('tenant-a', old.id)).toEqual(old);
        });

        it('throws conflict and leaves the old token active when the replacement’s hash is taken', async () => {
          const { app, tokens } = await seedApp({}, 2);
          const [old, other] = [tokens[0]!, tokens[1]!];
          const seen = listen();
          await expectCode(
            store.replaceApiToken({
              tenantId: app.tenantId,
              oldId: old.id,
              expectedHash: old.hash,
              reason: 'refreshed',
              replacement: replacementOf(old, { hash: other.hash }),
              tombstone: makeTombstone('api_token', old.id),
            }),
            'conflict',
          );
          expect(await store.getApiToken(app.tenantId, old.id)).toEqual(old);
          expect(await store.listTombstones(at(0))).toEqual([]);
          expect(seen).toEqual([]);
        });

        it('of 20 concurrent calls on the same token with distinct replacements, exactly one succeeds', async () => {
          const { app, tokens } = await seedApp();
          const old = tokens[0]!;
          const replacements = Array.from({ length: 20 }, () => replacementOf(old));
          const seen = listen();
          const results = await Promise.all(
            replacements.map((replacement) =>
              store.replaceApiToken({
                tenantId: app.tenantId,
                oldId: old.id,
                expectedHash: old.hash,
                reason: 'refreshed',
                replacement,
                tombstone: makeTombstone('api_token', old.id),
              }),
            ),
          );
          expect(results.filter(Boolean)).toHaveLength(1);
          const winner = replacements[results.indexOf(true)]!;
          const list = await store.listApiTokens(app.tenantId, app.id);
          expect(list.map((t) => t.id).sort()).toEqual([old.id, winner.id].sort());
          expect((await store.getApiToken(app.tenantId, old.id))?.replacedBy).toBe(winner.id);
          expect(seen).toHaveLength(1);
        });

        it('returns false and changes nothing for a retiring token (RFC 9700 §4.14.2): neither refreshed nor regenerated again', async () => {
          const { app, tokens } = await seedApp();
          const old = tokens[0]!;
          const first = replacementOf(old);
          expect(
            await store.replaceApiToken({
              tenantId: app.tenantId,
              oldId: old.id,
              expectedHash: old.hash,
              reason: 'regenerated',
              replacement: first,
              tombstone: makeTombstone('api_token', old.id, { createdAt: at(2 * HOUR), expiresAt: at(4 * HOUR) }),
              retireAt: at(2 * HOUR),
            }),
          ).toBe(true);
          const retiring = await store.getApiToken(app.tenantId, old.id);
          const seen = listen();
          for (const [reason, retireAt] of [
            ['refreshed', undefined],
            ['regenerated', undefined],
            ['regenerated', at(3 * HOUR)],
          ] as const) {
            const second = replacementOf(old);
            const ok = await store.replaceApiToken({
              tenantId: app.tenantId,
              oldId: old.id,
              expectedHash: old.hash,
              reason,
              replacement: second,
              tombstone: makeTombstone('api_token', old.id, { createdAt: at(HOUR), expiresAt: at(5 * HOUR) }),
              ...(retireAt ? { retireAt } : {}),
            });
            expect(ok, `${reason} ${retireAt ? 'with' : 'without'} retireAt`).toBe(false);
            expect(await store.getApiToken(app.tenantId, second.id)).toBeUndefined();
          }
          // Still retiring as the first rotation left it: not revoked, its successor unchanged, one tombstone.
          expect(await store.getApiToken(app.tenantId, old.id)).toEqual(retiring);
          expect((await store.listApiTokens(app.tenantId, app.id)).map((t) => t.id).sort()).toEqual([old.id, first.id].sort());
          expect(await store.listTombstones(at(2 * HOUR))).toEqual([makeTombstone('api_token', old.id, { createdAt: at(2 * HOUR), expiresAt: at(4 * HOUR) })]);
          expect(seen).toEqual([]);
        });

        it('of 20 concurrent rotations of one token, refreshes and grace-period regenerations mixed, exactly one succeeds', async () => {
          const { app, tokens } = await seedApp();
          const old = tokens[0]!;
          const replacements = Array.from({ length: 20 }, () => replacementOf(old));
          const results = await Promise.all(
            replacements.map((replacement, i) =>
              store.replaceApiToken({
                tenantId: app.tenantId,
                oldId: old.id,
                expectedHash: old.hash,
                reason: i % 2 === 0 ? 'regenerated' : 'refreshed',
                replacement,
                tombstone: makeTombstone('api_token', old.id, { createdAt: at(2 * HOUR), expiresAt: at(4 * HOUR) }),
                ...(i % 2 === 0 ? { retireAt: at(2 * HOUR) } : {}),
              }),
            ),
          );
          expect(results.filter(Boolean)).toHaveLength(1);
          const winner = replacements[results.indexOf(true)]!;
          expect((await store.listApiTokens(app.tenantId, app.id)).map((t) => t.id).sort()).toEqual([old.id, winner.id].sort());
          expect((await store.getApiToken(app.tenantId, old.id))?.replacedBy).toBe(winner.id);
        });
      });

      it('revokeApiTokens revokes the active tokens and returns only the ids it revoked', async () => {
        const { app, tokens } = await seedApp({}, 3);
        const [a, b, c] = [tokens[0]!, tokens[1]!, tokens[2]!];
        const foreign = await seedApp({ tenantId: 'tenant-b' }, 1);
        const foreignToken = foreign.tokens[0]!;
        await store.revokeApiTokens(app.tenantId, [c.id], 'deleted', [makeTombstone('api_token', c.id)], at(1));
        const seen = listen();

        const ids = [a.id, b.id, c.id, 'nope', foreignToken.id];
        const tombstones = ids.map((id) => makeTombstone('api_token', id, { createdAt: at(HOUR), expiresAt: at(2 * HOUR) }));
        const revoked = await store.revokeApiTokens(app.tenantId, ids, 'regenerated', tombstones, at(HOUR));

        expect([...revoked].sort()).toEqual([a.id, b.id].sort());
        for (const token of [a, b]) {
          expect(await store.getApiToken(app.tenantId, token.id)).toEqual({
            ...token,
            revokedAt: at(HOUR),
            revokedReason: 'regenerated',
          });
        }
        // Already revoked: untouched.
        const cAfter = await store.getApiToken(app.tenantId, c.id);
        expect(cAfter?.revokedAt).toEqual(at(1));
        expect(cAfter?.revokedReason).toBe('deleted');
        // Another tenant's token: untouched.
        expect(await store.getApiToken('tenant-b', foreignToken.id)).toEqual(foreignToken);
        // Tombstones only for the ids revoked by this call.
        const written = await store.listTombstones(at(HOUR), at(HOUR));
        expect(written.map((t) => t.id).sort()).toEqual([a.id, b.id].sort());
        expect(seen).toHaveLength(1);
        expect(seen[0]!.map((t) => t.id).sort()).toEqual([a.id, b.id].sort());
      });

      it('revokeApiTokens of another tenant revokes nothing and emits nothing', async () => {
        const { app, tokens } = await seedApp({ tenantId: 'tenant-a' }, 1);
        const seen = listen();
        const token = tokens[0]!;
        expect(
          await store.revokeApiTokens('tenant-b', [token.id], 'deleted', [makeTombstone('api_token', token.id)], at(HOUR)),
        ).toEqual([]);
        expect(await store.getApiToken(app.tenantId, token.id)).toEqual(token);
        expect(await store.listTombstones(at(0))).toEqual([]);
        expect(seen).toEqual([]);
        expect(await store.revokeApiTokens('tenant-a', [], 'deleted', [], at(HOUR))).toEqual([]);
      });

      it('touchApiTokens keeps the later of the stored and the given date', async () => {
        const { app, tokens } = await seedApp({}, 2);
        const [a, b] = [tokens[0]!, tokens[1]!];
        await store.touchApiTokens(new Map([[a.id, at(10 * SECOND)], [b.id, at(20 * SECOND)], ['nope', at(5)]]));
        expect((await store.getApiToken(app.tenantId, a.id))?.lastUsedAt).toEqual(at(10 * SECOND));
        expect((await store.getApiToken(app.tenantId, b.id))?.lastUsedAt).toEqual(at(20 * SECOND));

        await store.touchApiTokens(new Map([[a.id, at(5 * SECOND)], [b.id, at(30 * SECOND + 1)]]));
        expect((await store.getApiToken(app.tenantId, a.id))?.lastUsedAt).toEqual(at(10 * SECOND));
        expect((await store.getApiToken(app.tenantId, b.id))?.lastUsedAt).toEqual(at(30 * SECOND + 1));
        await store.touchApiTokens(new Map());
      });
    });

    // ---- token families and whole-store scans (issue 11, findings 2 and 4) ----------------------

    describe('token families (revokeApiTokenFamily)', () => {
      /** A chain root → … of `links` refreshes; returns every token, oldest first. */
      async function chain(links: number): Promise<{ app: AppRecord; tokens: ApiTokenRecord[] }> {
        const { app, tokens } = await seedApp();
        const all = [tokens[0]!];
        for (let i = 0; i < links; i++) {
          const old = all[all.length - 1]!;
          const id = uid('tok');
          // A replacement naming another family joins the old token's family all the same.
          const replacement = makeToken(app, { id, hash: `chain-${id}`.padEnd(64, '0'), createdAt: at(HOUR + i), familyId: 'not-the-family' });
          const ok = await store.replaceApiToken({
            tenantId: app.tenantId,
            oldId: old.id,
            expectedHash: old.hash,
            reason: 'refreshed',
            replacement,
            tombstone: makeTombstone('api_token', old.id, { createdAt: at(HOUR + i), expiresAt: at(3 * HOUR) }),
          });
          expect(ok).toBe(true);
          all.push({ ...replacement, familyId: tokens[0]!.id });
        }
        return { app, tokens: all };
      }

      it('a token starts its own family and its replacements join it, whatever they say', async () => {
        const { app, tokens } = await chain(3);
        for (const t of tokens) expect((await store.getApiToken(app.tenantId, t.id))?.familyId).toBe(tokens[0]!.id);
        const other = makeToken(app, { hash: 'other'.padEnd(64, '0') });
        const { familyId: _, ...withoutFamily } = other;
        await store.createApiToken(withoutFamily);
        expect((await store.getApiToken(app.tenantId, other.id))?.familyId).toBe(other.id);
      });

      it('revokes every active member in one call and flips the reused token: detected once, tombstones written and emitted', async () => {
        const { app, tokens } = await chain(4);
        const live = tokens[tokens.length - 1]!;
        const unrelated = makeToken(app, { hash: 'unrelated'.padEnd(64, '0') });
        await store.createApiToken(unrelated);
        const seen = listen();
        const tombstone = { createdAt: at(2 * HOUR), expiresAt: at(4 * HOUR) };
        const first = await store.revokeApiTokenFamily({ tenantId: app.tenantId, reusedId: tokens[1]!.id, tombstone, now: at(2 * HOUR) });
        expect(first).toEqual({ detected: true, revoked: [live.id] });
        expect(await store.getApiToken(app.tenantId, live.id)).toMatchObject({ revokedAt: at(2 * HOUR), revokedReason: 'reuse_detected' });
        expect((await store.getApiToken(app.tenantId, tokens[1]!.id))?.revokedReason).toBe('reuse_detected');
        // The other refreshed members keep their reason; the unrelated token lives.
        expect((await store.getApiToken(app.tenantId, tokens[0]!.id))?.revokedReason).toBe('refreshed');
        expect((await store.getApiToken(app.tenantId, unrelated.id))?.revokedAt).toBeNull();
        const written = { kind: 'api_token', id: live.id, tenantId: app.tenantId, ...tombstone };
        expect(seen).toEqual([[written]]);
        expect((await store.listTombstones(at(2 * HOUR))).filter((t) => t.id === live.id)).toEqual([written]);
        // Presented again: nothing left to revoke, and not detected a second time.
        expect(await store.revokeApiTokenFamily({ tenantId: app.tenantId, reusedId: tokens[1]!.id, tombstone, now: at(2 * HOUR) })).toEqual({
          detected: false,
          revoked: [],
        });
      });

      it('of concurrent callers exactly one detects', async () => {
        const { app, tokens } = await chain(2);
        const tombstone = { createdAt: at(2 * HOUR), expiresAt: at(4 * HOUR) };
        const results = await Promise.all(
          Array.from({ length: 8 }, () => store.revokeApiTokenFamily({ tenantId: app.tenantId, reusedId: tokens[0]!.id, tombstone, now: at(2 * HOUR) })),
        );
        expect(results.filter((r) => r.detected)).toHaveLength(1);
        expect(results.flatMap((r) => r.revoked)).toEqual([tokens[2]!.id]);
      });

      it('is confined to the tenant and ignores absent tokens', async () => {
        const { tokens } = await chain(1);
        const tombstone = { createdAt: at(2 * HOUR), expiresAt: at(4 * HOUR) };
        expect(await store.revokeApiTokenFamily({ tenantId: 'tenant-b', reusedId: tokens[0]!.id, tombstone, now: at(2 * HOUR) })).toEqual({
          detected: false,
          revoked: [],
        });
        expect(await store.revokeApiTokenFamily({ tenantId: 'tenant-a', reusedId: 'tok_absent', tombstone, now: at(2 * HOUR) })).toEqual({
          detected: false,
          revoked: [],
        });
        expect((await store.getApiToken('tenant-a', tokens[1]!.id))?.revokedAt).toBeNull();
      });

      it('a token that was not refreshed (deleted, regenerated) is never detected, and its family is still swept', async () => {
        const { app, tokens } = await seedApp();
        await store.revokeApiTokens(app.tenantId, [tokens[0]!.id], 'deleted', [], at(HOUR));
        const r = await store.revokeApiTokenFamily({
          tenantId: app.tenantId,
          reusedId: tokens[0]!.id,
          tombstone: { createdAt: at(2 * HOUR), expiresAt: at(4 * HOUR) },
          now: at(2 * HOUR),
        });
        expect(r).toEqual({ detected: false, revoked: [] });
        expect((await store.getApiToken(app.tenantId, tokens[0]!.id))?.revokedReason).toBe('deleted');
      });
    });

    describe('limits, paged active tokens and event retention (issue 11, findings 5 and 9)', () => {
      it('createApiToken with maxActive: of concurrent issuers the cap is never overshot; expired and revoked tokens do not count', async () => {
        const { app, tokens } = await seedApp({}, 2);
        await store.revokeApiTokens(app.tenantId, [tokens[0]!.id], 'deleted', [], at(HOUR));
        // Expired at its own creation + 1 s, long before the new tokens' creation.
        await store.createApiToken(makeToken(app, { hash: 'expired'.padEnd(64, '0'), createdAt: at(0), expiresAt: at(SECOND) }));
        const attempts = Array.from({ length: 10 }, (_, i) =>
          store.createApiToken(makeToken(app, { hash: `cap-${i}`.padEnd(64, '0'), createdAt: at(2 * HOUR) }), { maxActive: 4 }),
        );
        const results = await Promise.allSettled(attempts);
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
        for (const r of results) {
          if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'limit_exceeded', field: 'limits.tokensPerApp' });
        }
      });

      it('createApp with maxAppsPerTenant: concurrent creators never overshoot, and other tenants are not counted', async () => {
        await store.createApp(makeApp({ tenantId: 'tenant-b' }), []);
        const results = await Promise.allSettled(
          Array.from({ length: 8 }, () => store.createApp(makeApp({ tenantId: 'tenant-a' }), [], { maxAppsPerTenant: 3 })),
        );
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
        expect(results.find((r) => r.status === 'rejected')).toMatchObject({ reason: { code: 'limit_exceeded', field: 'limits.appsPerTenant' } });
        expect((await store.listApps('tenant-a', { limit: 10 })).items).toHaveLength(3);
      });

      it('listActiveApiTokens pages the unrevoked tokens in creation order', async () => {
        const { app, tokens } = await seedApp({}, 5);
        await store.revokeApiTokens(app.tenantId, [tokens[1]!.id], 'deleted', [], at(HOUR));
        const first = await store.listActiveApiTokens(app.tenantId, app.id, { limit: 2 });
        expect(first.items.map((t) => t.id)).toEqual([tokens[0]!.id, tokens[2]!.id]);
        const second = await store.listActiveApiTokens(app.tenantId, app.id, { limit: 2, cursor: first.nextCursor! });
        expect(second).toEqual({ items: [tokens[3], tokens[4]], nextCursor: null });
        expect((await store.listActiveApiTokens('tenant-b', app.id, { limit: 10 })).items).toEqual([]);
      });

      it('pruneEvents deletes at most `limit` events older than `before`, oldest first, in every tenant', async () => {
        const app = makeApp();
        await store.createApp(app, []);
        const old = [1, 2, 3].map((i) => makeEvent({ appId: app.id, at: at(i) }));
        const otherTenant = makeEvent({ tenantId: 'tenant-b', appId: null, at: at(4) });
        const recent = makeEvent({ appId: app.id, at: at(HOUR) });
        await store.appendEvents([...old, otherTenant, recent]);
        expect(await store.pruneEvents(at(HOUR), 2)).toBe(2);
        expect((await store.listEvents(app.tenantId, app.id, { limit: 10 })).items.map((e) => e.id)).toEqual([recent.id, old[2]!.id]);
        expect(await store.pruneEvents(at(HOUR), 10)).toBe(2);
        expect(await store.pruneEvents(at(HOUR), 10)).toBe(0);
        expect((await store.listEvents(app.tenantId, app.id, { limit: 10 })).items).toEqual([recent]);
      });
    });

    describe('roles, personal clients and expiry notices (issue 13)', () => {
      it('an app keeps its roles; a personal client keeps its owner and is found by tenant and user only', async () => {
        const { app } = await seedApp({ roles: ['viewer', 'apps-admin'] });
        expect(await store.getApp(app.tenantId, app.id)).toEqual(app);
        const personal = makeApp({ scopes: [], ownerUserId: 'user-1' });
        await store.createApp(personal, [makeToken(personal)]);
        expect(await store.getPersonalApp('tenant-a', 'user-1')).toEqual(personal);
        expect(await store.getPersonalApp('tenant-b', 'user-1')).toBeUndefined();
        expect(await store.getPersonalApp('tenant-a', 'user-2')).toBeUndefined();
        expect(await store.getAppByClientId(personal.id)).toEqual(personal);
      });

      it('createApp: one personal client per tenant and user, atomically (concurrent creators: exactly one wins, conflict for the rest)', async () => {
        const results = await Promise.allSettled(
          Array.from({ length: 6 }, () => {
            const app = makeApp({ scopes: [], ownerUserId: 'user-1' });
            return store.createApp(app, [makeToken(app)]);
          }),
        );
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        for (const r of results) if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'conflict' });
        // The same user in another tenant has a client of their own.
        await store.createApp(makeApp({ tenantId: 'tenant-b', scopes: [], ownerUserId: 'user-1' }), []);
      });

      it('listApps never lists personal clients, and they do not count towards maxAppsPerTenant', async () => {
        const { app } = await seedApp();
        await store.createApp(makeApp({ scopes: [], ownerUserId: 'user-1' }), []);
        await store.createApp(makeApp({ scopes: [], ownerUserId: 'user-2' }), []);
        expect((await store.listApps('tenant-a', { limit: 10 })).items).toEqual([app]);
        await store.createApp(makeApp(), [], { maxAppsPerTenant: 2 });
        await expectCode(store.createApp(makeApp(), [], { maxAppsPerTenant: 2 }), 'limit_exceeded');
      });

      it('listApps with expiring: only apps with an active, unreplaced token expiring in (after, before], paged', async () => {
        const soon = await seedApp();
        await store.createApiToken(makeToken(soon.app, { hash: 'soon'.padEnd(64, '0'), expiresAt: at(2 * HOUR) }));
        const later = await seedApp();
        await store.createApiToken(makeToken(later.app, { hash: 'later'.padEnd(64, '0'), expiresAt: at(100 * HOUR) }));
        const revoked = await seedApp();
        const dead = makeToken(revoked.app, { hash: 'dead'.padEnd(64, '0'), expiresAt: at(2 * HOUR) });
        await store.createApiToken(dead);
        await store.revokeApiTokens(revoked.app.tenantId, [dead.id], 'deleted', [], at(HOUR));
        const expired = await seedApp();
        await store.createApiToken(makeToken(expired.app, { hash: 'expired'.padEnd(64, '0'), expiresAt: at(HOUR / 2) }));
        const other = await seedApp({ tenantId: 'tenant-b' });
        await store.createApiToken(makeToken(other.app, { hash: 'other'.padEnd(64, '0'), expiresAt: at(2 * HOUR) }));
        const second = await seedApp();
        await store.createApiToken(makeToken(second.app, { hash: 'second'.padEnd(64, '0'), expiresAt: at(3 * HOUR) }));
        const window = { after: at(HOUR), before: at(10 * HOUR) };
        const first = await store.listApps('tenant-a', { limit: 1, expiring: window });
        expect(first.items).toEqual([soon.app]);
        const rest = await store.listApps('tenant-a', { limit: 10, cursor: first.nextCursor!, expiring: window });
        expect(rest).toEqual({ items: [second.app], nextCursor: null, total: 2 });
      });

      it('listExpiringApiTokens: every tenant, active and unreplaced, in (after, before], by (expiresAt, id), paged', async () => {
        const a = await seedApp();
        const b = await seedApp({ tenantId: 'tenant-b' });
        const t1 = makeToken(a.app, { hash: 't1'.padEnd(64, '0'), expiresAt: at(3 * HOUR) });
        const t2 = makeToken(b.app, { hash: 't2'.padEnd(64, '0'), expiresAt: at(2 * HOUR) });
        const t3 = makeToken(a.app, { hash: 't3'.padEnd(64, '0'), expiresAt: at(20 * HOUR) });
        const t4 = makeToken(a.app, { hash: 't4'.padEnd(64, '0'), expiresAt: at(2 * HOUR) });
        for (const t of [t1, t2, t3, t4]) await store.createApiToken(t);
        await store.revokeApiTokens(a.app.tenantId, [t4.id], 'deleted', [], at(HOUR));
        const query = { after: at(HOUR), before: at(10 * HOUR) };
        const first = await store.listExpiringApiTokens({ ...query, limit: 1 });
        expect(first.items).toEqual([t2]);
        const rest = await store.listExpiringApiTokens({ ...query, limit: 10, cursor: first.nextCursor! });
        expect(rest).toEqual({ items: [t1], nextCursor: null });
        await expectCode(store.listExpiringApiTokens({ ...query, limit: 10, cursor: 'not-a-cursor' }), 'validation_failed');
      });

      it('claimExpiryNotice is atomic: of concurrent claims of one threshold exactly one wins; a narrower threshold is claimed once more; never for a revoked token or another tenant', async () => {
        const { app, tokens } = await seedApp({}, 2);
        const token = tokens[0]!;
        const week = 7 * 86_400;
        const results = await Promise.all(Array.from({ length: 8 }, () => store.claimExpiryNotice(app.tenantId, token.id, week)));
        expect(results.filter(Boolean)).toHaveLength(1);
        expect((await store.getApiToken(app.tenantId, token.id))!.notifiedBefore).toBe(week);
        expect(await store.claimExpiryNotice(app.tenantId, token.id, week)).toBe(false);
        expect(await store.claimExpiryNotice(app.tenantId, token.id, 2 * week)).toBe(false);
        expect(await store.claimExpiryNotice(app.tenantId, token.id, 86_400)).toBe(true);
        expect(await store.claimExpiryNotice(app.tenantId, token.id, 86_400)).toBe(false);
        expect(await store.claimExpiryNotice('tenant-b', tokens[1]!.id, week)).toBe(false);
        await store.revokeApiTokens(app.tenantId, [tokens[1]!.id], 'deleted', [], at(HOUR));
        expect(await store.claimExpiryNotice(app.tenantId, tokens[1]!.id, week)).toBe(false);
      });

      it('summarizeApiTokens counts active and expiring-soon tokens and the last use, per app of the tenant', async () => {
        const { app, tokens } = await seedApp({}, 1);
        const soon = makeToken(app, { hash: 'soon'.padEnd(64, '0'), expiresAt: at(2 * HOUR) });
        const expired = makeToken(app, { hash: 'expired'.padEnd(64, '0'), expiresAt: at(HOUR / 2) });
        const revoked = makeToken(app, { hash: 'revoked'.padEnd(64, '0') });
        for (const t of [soon, expired, revoked]) await store.createApiToken(t);
        await store.touchApiTokens(new Map([[tokens[0]!.id, at(5 * SECOND)], [revoked.id, at(9 * SECOND)]]));
        await store.revokeApiTokens(app.tenantId, [revoked.id], 'deleted', [], at(HOUR));
        const empty = await seedApp({}, 0);
        const foreign = await seedApp({ tenantId: 'tenant-b' });
        const summary = await store.summarizeApiTokens('tenant-a', [app.id, empty.app.id, foreign.app.id, 'app_missing'], {
          now: at(HOUR),
          soonBefore: at(10 * HOUR),
        });
        expect([...summary.keys()].sort()).toEqual([app.id, empty.app.id].sort());
        expect(summary.get(app.id)).toEqual({ active: 2, expiringSoon: 1, lastUsedAt: at(9 * SECOND) });
        expect(summary.get(empty.app.id)).toEqual({ active: 0, expiringSoon: 0, lastUsedAt: null });
        expect((await store.summarizeApiTokens('tenant-a', [], { now: at(HOUR), soonBefore: at(HOUR) })).size).toBe(0);
      });
    });

    describe('client keys and the replay guard (issue 15)', () => {
      const keyOf = (app: AppRecord, kid: string, overrides: Partial<ClientKeyRecord> = {}): ClientKeyRecord => ({
        id: uid('key'),
        appId: app.id,
        tenantId: app.tenantId,
        kid,
        alg: 'ES256',
        jwk: JSON.stringify({ kty: 'EC', crv: 'P-256', x: kid, y: kid, kid }),
        createdAt: at(SECOND),
        expiresAt: null,
        ...overrides,
      });

      it('an app keeps its auth method, jwksUri and dpop flag; createApp inserts its keys in the same step; listClientKeys is tenant-confined, oldest first', async () => {
        const app = makeApp({ tokenEndpointAuthMethod: 'private_key_jwt', jwksUri: 'https://client.example/jwks', dpopBoundAccessTokens: true });
        const k1 = keyOf(app, 'k1');
        const k2 = keyOf(app, 'k2', { createdAt: at(2 * SECOND), expiresAt: at(HOUR) });
        await store.createApp(app, [], { keys: [k2, k1] });
        expect(await store.getApp(app.tenantId, app.id)).toEqual(app);
        expect(await store.listClientKeys(app.tenantId, app.id)).toEqual([k1, k2]);
        expect(await store.listClientKeys('tenant-b', app.id)).toEqual([]);
      });

      it('addClientKey: conflict on a kid the app has; not_found for an absent app; maxPerApp never overshot by concurrent writers', async () => {
        const { app } = await seedApp({ tokenEndpointAuthMethod: 'private_key_jwt' }, 0);
        await store.addClientKey(keyOf(app, 'a'));
        await expectCode(store.addClientKey(keyOf(app, 'a')), 'conflict');
        await expectCode(store.addClientKey(keyOf(makeApp(), 'x')), 'not_found');
        await expectCode(store.addClientKey(keyOf({ ...app, tenantId: 'tenant-b' }, 'y')), 'not_found');
        const results = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => store.addClientKey(keyOf(app, `c${i}`), { maxPerApp: 3 })));
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(2);
        for (const r of results) if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'limit_exceeded', field: 'limits.keysPerApp' });
        expect(await store.listClientKeys(app.tenantId, app.id)).toHaveLength(3);
      });

      it('deleteClientKey deletes one key of that tenant and app, writes and emits its tombstone (kind api_token, the key id); deleteApp deletes the keys', async () => {
        const seen = listen();
        const { app } = await seedApp({ tokenEndpointAuthMethod: 'private_key_jwt' }, 0);
        const key = keyOf(app, 'a');
        await store.addClientKey(key);
        await store.addClientKey(keyOf(app, 'b'));
        const dates = { createdAt: at(HOUR), expiresAt: at(2 * HOUR) };
        expect(await store.deleteClientKey('tenant-b', app.id, 'a', dates)).toBeUndefined();
        expect(await store.deleteClientKey(app.tenantId, 'app_other', 'a', dates)).toBeUndefined();
        expect(await store.deleteClientKey(app.tenantId, app.id, 'a', dates)).toEqual(key);
        expect(await store.deleteClientKey(app.tenantId, app.id, 'a', dates)).toBeUndefined();
        const tombstone = { kind: 'api_token', id: key.id, tenantId: app.tenantId, ...dates };
        expect(seen).toEqual([[tombstone]]);
        expect(await store.listTombstones(at(HOUR))).toContainEqual(tombstone);
        expect((await store.listClientKeys(app.tenantId, app.id)).map((k) => k.kid)).toEqual(['b']);
        await store.deleteApp(app.tenantId, app.id, makeTombstone('app', app.id));
        expect(await store.listClientKeys(app.tenantId, app.id)).toEqual([]);
      });

      it('useOnce: of concurrent uses of one key exactly one is first; kinds are separate; purgeTombstones forgets expired entries only', async () => {
        const results = await Promise.all(Array.from({ length: 10 }, () => store.useOnce('client_assertion', 'jti-1', at(HOUR))));
        expect(results.filter(Boolean)).toHaveLength(1);
        expect(await store.useOnce('client_assertion', 'jti-1', at(HOUR))).toBe(false);
        expect(await store.useOnce('dpop_proof', 'jti-1', at(HOUR))).toBe(true);
        expect(await store.useOnce('client_assertion', 'jti-2', at(3 * HOUR))).toBe(true);
        await store.purgeTombstones(at(2 * HOUR));
        expect(await store.useOnce('client_assertion', 'jti-1', at(4 * HOUR))).toBe(true);
        expect(await store.useOnce('client_assertion', 'jti-2', at(4 * HOUR))).toBe(false);
      });
    });

    describe('listApps search, filters, sort and total (issue 25)', () => {
      /** Every page of a listing, walked with its cursor; the totals each page reported. */
      async function walk(options: Omit<ListAppsOptions, 'limit' | 'cursor'>, limit = 2): Promise<{ ids: string[]; totals: Array<number | undefined> }> {
        const ids: string[] = [];
        const totals: Array<number | undefined> = [];
        let cursor: string | undefined;
        for (let round = 0; round < 50; round += 1) {
          const page = await store.listApps('tenant-a', { ...options, limit, cursor });
          ids.push(...page.items.map((a) => a.id));
          totals.push(page.total);
          if (page.nextCursor === null) return { ids, totals };
          cursor = page.nextCursor;
        }
        throw new Error('the walk did not end');
      }

      /** `app-1`…`app-5` of tenant-a with names, creation times and last uses of their tokens; one app of tenant-b. */
      async function seedFive(): Promise<void> {
        const rows: Array<[string, string, number, number | null, Partial<AppRecord>]> = [
          ['app-1', 'beta', 1, 50, { scopes: ['storage:read'], roles: ['auditor'] }],
          ['app-2', 'Alpha', 2, null, { scopes: ['storage:*'] }],
          ['app-3', 'alpha', 3, 10, { scopes: ['storage:reader', 'invoices:read'] }],
          ['app-4', 'Gamma 100%_off', 4, 30, { scopes: ['invoices:read'], roles: ['auditor', 'ops'] }],
          ['app-5', 'delta', 5, null, { scopes: ['storage:read'], roles: ['ops'] }],
        ];
        for (const [id, name, created, used, extra] of rows) {
          const { tokens } = await seedApp({ id, name, createdAt: at(created * HOUR), ...extra }, 1);
          if (used !== null) await store.touchApiTokens(new Map([[tokens[0]!.id, at(used * HOUR)]]));
        }
        const other = await seedApp({ id: 'app-1-other', name: 'beta', tenantId: 'tenant-b', scopes: ['storage:read'], roles: ['auditor'] }, 1);
        await store.touchApiTokens(new Map([[other.tokens[0]!.id, at(99 * HOUR)]]));
      }

      it('sort created descending (newest first), paged, with the total on every page', async () => {
        await seedFive();
        expect(await walk({ sort: { by: 'created', order: 'desc' } })).toEqual({ ids: ['app-5', 'app-4', 'app-3', 'app-2', 'app-1'], totals: [5, 5, 5] });
      });

      it('sort name compares ASCII case-insensitively, ties broken by id in the same direction, paged both ways', async () => {
        await seedFive();
        expect((await walk({ sort: { by: 'name', order: 'asc' } })).ids).toEqual(['app-2', 'app-3', 'app-1', 'app-5', 'app-4']);
        expect((await walk({ sort: { by: 'name', order: 'desc' } })).ids).toEqual(['app-4', 'app-5', 'app-1', 'app-3', 'app-2']);
      });

      it('sort lastUsed: the latest use of any token, never-used apps before every use, paged', async () => {
        await seedFive();
        expect((await walk({ sort: { by: 'lastUsed', order: 'desc' } })).ids).toEqual(['app-1', 'app-4', 'app-3', 'app-5', 'app-2']);
        expect((await walk({ sort: { by: 'lastUsed', order: 'asc' } }, 3)).ids).toEqual(['app-2', 'app-5', 'app-3', 'app-4', 'app-1']);
      });

      it('a cursor is valid only with the sort it was made for: another sort’s is validation_failed naming cursor', async () => {
        await seedFive();
        const byName = await store.listApps('tenant-a', { limit: 2, sort: { by: 'name', order: 'asc' } });
        const byCreated = await store.listApps('tenant-a', { limit: 2 });
        const newest = await store.listApps('tenant-a', { limit: 2, sort: { by: 'created', order: 'desc' } });
        const refusals = [
          store.listApps('tenant-a', { limit: 2, cursor: byName.nextCursor!, sort: { by: 'name', order: 'desc' } }),
          store.listApps('tenant-a', { limit: 2, cursor: byName.nextCursor!, sort: { by: 'lastUsed', order: 'asc' } }),
          store.listApps('tenant-a', { limit: 2, cursor: byName.nextCursor! }),
          store.listApps('tenant-a', { limit: 2, cursor: byCreated.nextCursor!, sort: { by: 'created', order: 'desc' } }),
          store.listApps('tenant-a', { limit: 2, cursor: newest.nextCursor! }),
        ];
        for (const refusal of refusals) {
          const error = await refusal.then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(isAppTokensError(error, 'validation_failed')).toBe(true);
          expect((error as { field?: string }).field).toBe('cursor');
        }
        // The default order keeps the cursor format it always had.
        expect((await store.listApps('tenant-a', { limit: 2, cursor: encodeCursor(at(2 * HOUR), 'app-2') })).items.map((a) => a.id)).toEqual(['app-3', 'app-4']);
      });

      it('search: the name contains it (ASCII case-insensitively) or the id starts with it; % and _ are plain characters', async () => {
        await seedFive();
        expect((await walk({ search: 'ALPH' })).ids).toEqual(['app-2', 'app-3']);
        expect((await walk({ search: 'amm' })).ids).toEqual(['app-4']);
        expect((await walk({ search: 'app-5' })).ids).toEqual(['app-5']);
        expect((await walk({ search: 'app-' })).totals).toEqual([5, 5, 5]);
        // Not a substring of the id: only a prefix matches.
        expect((await walk({ search: 'pp-1' })).ids).toEqual([]);
        expect((await walk({ search: '100%_' })).ids).toEqual(['app-4']);
        expect((await walk({ search: '%' })).ids).toEqual(['app-4']);
        expect((await walk({ search: '_' })).ids).toEqual(['app-4']);
        expect((await walk({ search: 'zeta' })).ids).toEqual([]);
      });

      it('scope: apps holding that scope as written; a wildcard matches only itself, a prefix matches nothing', async () => {
        await seedFive();
        expect((await walk({ scope: 'storage:read' })).ids).toEqual(['app-1', 'app-5']);
        expect((await walk({ scope: 'storage:*' })).ids).toEqual(['app-2']);
        expect((await walk({ scope: 'storage:rea' })).ids).toEqual([]);
        expect((await walk({ scope: 'invoices:read' })).ids).toEqual(['app-3', 'app-4']);
      });

      it('role: apps with that role; never another tenant’s', async () => {
        await seedFive();
        expect((await walk({ role: 'auditor' })).ids).toEqual(['app-1', 'app-4']);
        expect((await walk({ role: 'ops' })).ids).toEqual(['app-4', 'app-5']);
        expect((await walk({ role: 'op' })).ids).toEqual([]);
      });

      it('unusedSince: apps created before it none of whose tokens (revoked ones included) was used at or after it', async () => {
        await seedFive();
        // Created before 4 h: app-1 (used at 50 h), app-2 (never), app-3 (used at 10 h).
        expect((await walk({ unusedSince: at(4 * HOUR) })).ids).toEqual(['app-2']);
        expect((await walk({ unusedSince: at(40 * HOUR) })).ids).toEqual(['app-2', 'app-3', 'app-4', 'app-5']);
        // Used exactly at the cutoff: used.
        expect((await walk({ unusedSince: at(50 * HOUR) })).ids).toEqual(['app-2', 'app-3', 'app-4', 'app-5']);
        expect((await walk({ unusedSince: at(50 * HOUR + 1) })).ids).toEqual(['app-1', 'app-2', 'app-3', 'app-4', 'app-5']);
        // A revoked token's use still counts as the app's use.
        const [token] = await store.listApiTokens('tenant-a', 'app-1');
        await store.revokeApiTokens('tenant-a', [token!.id], 'deleted', [makeTombstone('api_token', token!.id)], at(60 * HOUR));
        expect((await walk({ unusedSince: at(40 * HOUR) })).ids).toEqual(['app-2', 'app-3', 'app-4', 'app-5']);
      });

      it('filters combine with each other, with expiring and with every sort; the total counts every match, not the page', async () => {
        await seedFive();
        const page = await store.listApps('tenant-a', { limit: 1, scope: 'storage:read', role: 'ops', sort: { by: 'name', order: 'desc' } });
        expect(page.items.map((a) => a.id)).toEqual(['app-5']);
        expect(page.total).toBe(1);
        expect(await walk({ search: 'a', scope: 'invoices:read', sort: { by: 'lastUsed', order: 'desc' } }, 1)).toEqual({ ids: ['app-4', 'app-3'], totals: [2, 2] });
        await store.createApiToken(makeToken(makeApp({ id: 'app-3' }), { id: 'tok-exp', hash: 'e'.repeat(64), expiresAt: at(7 * HOUR) }));
        expect(await walk({ expiring: { after: at(0), before: at(8 * HOUR) }, search: 'alpha', sort: { by: 'created', order: 'desc' } })).toEqual({
          ids: ['app-3'],
          totals: [1],
        });
        expect(await store.listApps('tenant-b', { limit: 5, search: 'app-' })).toEqual({ items: [expect.objectContaining({ id: 'app-1-other' })], nextCursor: null, total: 1 });
      });

      it('sorted walks stay stable while apps are inserted and deleted between pages', async () => {
        await seedFive();
        const seen: string[] = [];
        let cursor: string | undefined;
        let round = 0;
        do {
          const page = await store.listApps('tenant-a', { limit: 2, cursor, sort: { by: 'name', order: 'asc' } });
          seen.push(...page.items.map((a) => a.id));
          cursor = page.nextCursor ?? undefined;
          round += 1;
          const last = page.items[page.items.length - 1];
          if (last) await store.deleteApp('tenant-a', last.id, makeTombstone('app', last.id));
          // One before every cursor (never seen) and one after.
          await seedApp({ id: `app-aaa-${round}`, name: 'aaa' }, 0);
          await seedApp({ id: `app-zzz-${round}`, name: 'zzz' }, 0);
        } while (cursor !== undefined && round < 50);
        expect(new Set(seen).size).toBe(seen.length);
        for (const id of ['app-1', 'app-2', 'app-3', 'app-4', 'app-5']) expect(seen).toContain(id);
        expect(seen.some((id) => id.startsWith('app-aaa'))).toBe(false);
      });

      it('sort usage: the sum of the named metrics since the given hour, every token of the app, 0 without counts; paged both ways', async () => {
        await seedFive();
        const H = Math.floor(at(100 * HOUR).getTime() / HOUR) * HOUR;
        const count = (appId: string, metric: string, n: number, hour = H, tenantId = 'tenant-a', tokenId: string | null = null) => ({ tenantId, appId, tokenId, hour, metric, count: n });
        await store.addUsage([
          count('app-1', 'accepted', 5),
          count('app-1', 'grant:client_credentials', 1, H + HOUR, 'tenant-a', 'tok-x'),
          count('app-2', 'accepted', 2),
          // Not named, too old, or another tenant's: not counted.
          count('app-2', 'refused:insufficient_scope', 10),
          count('app-4', 'accepted', 100, H - 2 * HOUR),
          count('app-1-other', 'accepted', 50, H, 'tenant-b'),
          count('app-5', 'accepted', 3),
        ]);
        const usage = { since: new Date(H - HOUR), metrics: ['accepted', 'grant:client_credentials'] };
        expect((await walk({ sort: { by: 'usage', order: 'desc', usage } })).ids).toEqual(['app-1', 'app-5', 'app-2', 'app-4', 'app-3']);
        expect((await walk({ sort: { by: 'usage', order: 'asc', usage } }, 3)).ids).toEqual(['app-3', 'app-4', 'app-2', 'app-5', 'app-1']);
        const error = await store.listApps('tenant-a', { limit: 2, sort: { by: 'usage', order: 'desc' } }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(isAppTokensError(error, 'validation_failed')).toBe(true);
        expect((error as { field?: string }).field).toBe('sort');
      });

      it('listEvents with types: only those types, newest first, paged', async () => {
        const events = [0, 1, 2, 3, 4, 5].map((i) => makeEvent({ at: at(i), type: i % 2 === 0 ? 'token.created' : 'token.deleted' }));
        await store.appendEvents([...events, makeEvent({ at: at(9), type: 'app.updated' })]);
        const p1 = await store.listEvents('tenant-a', 'app_events', { limit: 2, types: ['token.created'] });
        expect(p1.items.map((e) => e.id)).toEqual([events[4]!.id, events[2]!.id]);
        const p2 = await store.listEvents('tenant-a', 'app_events', { limit: 2, cursor: p1.nextCursor!, types: ['token.created'] });
        expect(p2).toEqual({ items: [events[0]], nextCursor: null });
        const both = await store.listEvents('tenant-a', 'app_events', { limit: 10, types: ['token.deleted', 'app.updated'] });
        expect(both.items.map((e) => e.type)).toEqual(['app.updated', 'token.deleted', 'token.deleted', 'token.deleted']);
        expect((await store.listEvents('tenant-a', 'app_events', { limit: 10, types: [] })).items).toHaveLength(7);
      });
    });

    describe('scanApps', () => {
      it('pages through the apps of every tenant in id order', async () => {
        if (store.scanApps === undefined) return; // optional method
        const apps = [makeApp({ tenantId: 'tenant-a' }), makeApp({ tenantId: 'tenant-b' }), makeApp({ tenantId: 'tenant-c' })];
        for (const app of apps) await store.createApp(app, []);
        const first = await store.scanApps({ limit: 2 });
        const rest = await store.scanApps({ limit: 2, after: first[first.length - 1]!.id });
        const byId = [...apps].sort((a, b) => (a.id < b.id ? -1 : 1));
        expect([...first, ...rest]).toEqual(byId);
        expect(first).toHaveLength(2);
      });
    });

    // ---- audit events ------------------------------------------------------------------------

    describe('audit events', () => {
      /** Every event of (`tenantId`, `appId`), walking all pages of `limit`. */
      async function listAllEvents(tenantId: string, appId: string, limit = 100): Promise<AuditEventRecord[]> {
        const all: AuditEventRecord[] = [];
        let cursor: string | undefined;
        for (let round = 0; round < 100; round += 1) {
          const page = await store.listEvents(tenantId, appId, { limit, cursor });
          all.push(...page.items);
          if (page.nextCursor === null) return all;
          cursor = page.nextCursor;
        }
        throw new Error('listEvents never returned a last page');
      }

      it('appendEvents then listEvents returns every field, newest first, ties broken by id descending', async () => {
        const a = makeEvent({ id: 'evt-a', at: at(5), type: 'app.created', tokenId: null });
        const b = makeEvent({ id: 'evt-b', at: at(5), type: 'token.created' });
        const c = makeEvent({ id: 'evt-c', at: at(9), type: 'access_token.refused', outcome: 'failure', actorId: null });
        const d = makeEvent({ id: 'evt-d', at: at(1), type: 'token.deleted', data: {} });
        const e = makeEvent({ id: 'evt-e', at: at(5), type: 'app.updated' });
        await store.appendEvents([a, b]);
        await store.appendEvents([c, d, e]);
        const page = await store.listEvents('tenant-a', 'app_events', { limit: 10 });
        expect(page.items).toEqual([c, e, b, a, d]);
        expect(page.nextCursor).toBeNull();
        const got = page.items[0]!;
        expect(got.at).toBeInstanceOf(Date);
        expect(got.at.getTime()).toBe(T0 + 9);
        await store.appendEvents([]);
        expect((await store.listEvents('tenant-a', 'app_events', { limit: 10 })).items).toHaveLength(5);
      });

      it('events are copies on the way in and out', async () => {
        const event = makeEvent({ data: { list: [1, 2], deep: { k: 'v' } } });
        const expected = structuredClone(event);
        await store.appendEvents([event]);
        event.data['list'] = [];
        (event.data['deep'] as { k: string }).k = 'mutated';
        event.at.setTime(0);
        event.type = 'app.deleted';
        const listed = (await store.listEvents('tenant-a', 'app_events', { limit: 10 })).items[0]!;
        expect(listed).toEqual(expected);
        (listed.data['list'] as number[]).push(3);
        (listed.data['deep'] as { k: string }).k = 'mutated';
        listed.at.setTime(0);
        listed.actorId = 'mutated';
        expect((await store.listEvents('tenant-a', 'app_events', { limit: 10 })).items).toEqual([expected]);
      });

      it('data round-trips nested JSON', async () => {
        const data = {
          string: 'héllo “quoted” \\ \n 🎟',
          number: 42.5,
          negative: -1,
          zero: 0,
          yes: true,
          no: false,
          nothing: null,
          empty: {},
          emptyList: [],
          list: [1, 'two', { three: [3, { four: null }] }],
          deep: { a: { b: { c: { d: ['e'] } } } },
        };
        const event = makeEvent({ data });
        await store.appendEvents([event]);
        const [got] = (await store.listEvents('tenant-a', 'app_events', { limit: 1 })).items;
        expect(got?.data).toEqual(data);
        expect(got).toEqual(event);
      });

      it('listEvents never shows another tenant’s events, even for the same app id or with their cursor', async () => {
        const mine = [makeEvent({ at: at(1) }), makeEvent({ at: at(2) })];
        const theirs = [1, 2, 3].map((i) => makeEvent({ tenantId: 'tenant-b', at: at(10 + i) }));
        await store.appendEvents([...mine, ...theirs]);
        expect((await store.listEvents('tenant-a', 'app_events', { limit: 10 })).items).toEqual([mine[1], mine[0]]);
        expect((await store.listEvents('tenant-b', 'app_events', { limit: 10 })).items).toEqual([...theirs].reverse());
        expect(await store.listEvents('tenant-c', 'app_events', { limit: 10 })).toEqual({ items: [], nextCursor: null });
        const theirPage = await store.listEvents('tenant-b', 'app_events', { limit: 1 });
        const page = await store.listEvents('tenant-a', 'app_events', { limit: 10, cursor: theirPage.nextCursor! });
        expect(page.items).toEqual([mine[1], mine[0]]);
      });

      it('listEvents is confined to the app it names', async () => {
        const one = makeEvent({ appId: 'app-1', at: at(1) });
        const two = makeEvent({ appId: 'app-2', at: at(2) });
        const none = makeEvent({ appId: null, tokenId: null, type: 'management.refused', outcome: 'failure', at: at(3) });
        await store.appendEvents([one, two, none]);
        expect((await store.listEvents('tenant-a', 'app-1', { limit: 10 })).items).toEqual([one]);
        expect((await store.listEvents('tenant-a', 'app-2', { limit: 10 })).items).toEqual([two]);
      });

      it('listEvents of an unknown app is an empty last page', async () => {
        await store.appendEvents([makeEvent()]);
        expect(await store.listEvents('tenant-a', 'nope', { limit: 5 })).toEqual({ items: [], nextCursor: null });
      });

      it('listEvents pages with limit 2 and returns nextCursor null on the last page', async () => {
        const events = [0, 1, 2, 3, 4].map((i) => makeEvent({ at: at(i * SECOND) }));
        await store.appendEvents(events);
        const newestFirst = [...events].reverse();
        const p1 = await store.listEvents('tenant-a', 'app_events', { limit: 2 });
        expect(p1.items).toEqual(newestFirst.slice(0, 2));
        expect(p1.nextCursor).toEqual(expect.any(String));
        const p2 = await store.listEvents('tenant-a', 'app_events', { limit: 2, cursor: p1.nextCursor! });
        expect(p2.items).toEqual(newestFirst.slice(2, 4));
        expect(p2.nextCursor).toEqual(expect.any(String));
        const p3 = await store.listEvents('tenant-a', 'app_events', { limit: 2, cursor: p2.nextCursor! });
        expect(p3.items).toEqual(newestFirst.slice(4));
        expect(p3.nextCursor).toBeNull();
      });

      it('listEvents returns nextCursor null when the last page is exactly full', async () => {
        await store.appendEvents([0, 1, 2, 3].map((i) => makeEvent({ at: at(i) })));
        const p1 = await store.listEvents('tenant-a', 'app_events', { limit: 2 });
        const p2 = await store.listEvents('tenant-a', 'app_events', { limit: 2, cursor: p1.nextCursor! });
        expect(p2.items).toHaveLength(2);
        expect(p2.nextCursor).toBeNull();
      });

      it('listEvents stays stable while newer events are appended between pages', async () => {
        // Triples share an instant, so the id tie-break is exercised at page boundaries.
        const initial = Array.from({ length: 11 }, (_, i) =>
          makeEvent({ id: `evt-${String(i).padStart(2, '0')}`, at: at(Math.floor(i / 3) * SECOND) }),
        );
        // Inserted out of order (a fixed permutation: 4 and 11 are coprime).
        await store.appendEvents(initial.map((_, i) => initial[(i * 4) % initial.length]!));
        const appended: AuditEventRecord[] = [];
        const seen: AuditEventRecord[] = [];
        let cursor: string | undefined;
        let round = 0;
        do {
          const page = await store.listEvents('tenant-a', 'app_events', { limit: 2, cursor });
          expect(page.items.length).toBeLessThanOrEqual(2);
          seen.push(...page.items);
          cursor = page.nextCursor ?? undefined;
          round += 1;
          // Newer than everything listed so far: one alone, then two sharing an instant.
          const fresh = [
            makeEvent({ id: `evt-new-${round}-a`, at: at(HOUR + round) }),
            makeEvent({ id: `evt-new-${round}-b`, at: at(HOUR + round) }),
          ];
          await store.appendEvents(round % 2 === 0 ? fresh : fresh.slice(0, 1));
          appended.push(...(round % 2 === 0 ? fresh : fresh.slice(0, 1)));
        } while (cursor !== undefined && round < 50);

        expect(round).toBe(6);
        const expected = [...initial].sort((x, y) => y.at.getTime() - x.at.getTime() || (y.id < x.id ? -1 : 1));
        expect(seen).toEqual(expected);
        // A fresh walk sees the appended events first, then the initial ones, each exactly once.
        const all = await listAllEvents('tenant-a', 'app_events', 2);
        expect(all.map((e) => e.id)).toEqual(
          [...appended]
            .sort((x, y) => y.at.getTime() - x.at.getTime() || (y.id < x.id ? -1 : 1))
            .concat(expected)
            .map((e) => e.id),
        );
      });

      it('appendEvents with an existing id throws conflict and appends nothing of that batch', async () => {
        const existing = makeEvent({ at: at(1) });
        await store.appendEvents([existing]);
        const fresh = makeEvent({ at: at(2) });
        const after = makeEvent({ at: at(3) });
        await expectCode(store.appendEvents([fresh, { ...existing, type: 'app.deleted' }, after]), 'conflict');
        expect(await listAllEvents('tenant-a', 'app_events')).toEqual([existing]);
        // The batch can be retried without the clash.
        await store.appendEvents([fresh, after]);
        expect(await listAllEvents('tenant-a', 'app_events')).toEqual([after, fresh, existing]);
      });

      it('appendEvents with an id twice in one batch throws conflict and appends nothing', async () => {
        const first = makeEvent({ at: at(1) });
        const other = makeEvent({ at: at(2) });
        await expectCode(store.appendEvents([first, other, { ...first, at: at(3) }]), 'conflict');
        expect(await listAllEvents('tenant-a', 'app_events')).toEqual([]);
      });

      it('appendEvents of many events in one call (more than one statement’s worth) lists them all', async () => {
        const events = Array.from({ length: 257 }, (_, i) => makeEvent({ at: at(i) }));
        await store.appendEvents(events);
        const all = await listAllEvents('tenant-a', 'app_events', 50);
        expect(all).toEqual([...events].reverse());
      });

      it('events survive deleteApp of the app they name', async () => {
        const { app, tokens } = await seedApp({}, 1);
        const created = makeEvent({ tenantId: app.tenantId, appId: app.id, tokenId: tokens[0]!.id, at: at(1) });
        await store.appendEvents([created]);
        expect(await store.deleteApp(app.tenantId, app.id, makeTombstone('app', app.id))).toBe(true);
        const deleted = makeEvent({ tenantId: app.tenantId, appId: app.id, tokenId: null, type: 'app.deleted', at: at(2) });
        await store.appendEvents([deleted]);
        expect((await store.listEvents(app.tenantId, app.id, { limit: 10 })).items).toEqual([deleted, created]);
      });

      it('listEvents rejects a malformed cursor and a non-positive limit with validation_failed', async () => {
        await store.appendEvents([makeEvent()]);
        for (const cursor of ['not a cursor', Buffer.from('{"a":1}').toString('base64url'), Buffer.from('[1.5,"x"]').toString('base64url')]) {
          await expectCode(store.listEvents('tenant-a', 'app_events', { limit: 2, cursor }), 'validation_failed');
        }
        await expectCode(store.listEvents('tenant-a', 'app_events', { limit: 0 }), 'validation_failed');
        await expectCode(store.listEvents('tenant-a', 'app_events', { limit: 1.5 }), 'validation_failed');
      });
    });

    // ---- signing keys -----------------------------------------------------------------------

    describe('signing keys', () => {
      it('listSigningKeys is empty at first', async () => {
        expect(await store.listSigningKeys()).toEqual([]);
      });

      it('rotateSigningKey retires the active key of that alg and makes the candidate active, atomically', async () => {
        const first = makeKey();
        const other = makeKey({ alg: 'RS256' });
        await store.ensureSigningKey(first);
        await store.ensureSigningKey(other);
        const next = makeKey();
        expect(await store.rotateSigningKey(next, at(5000))).toEqual([first.kid]);
        const keys = await store.listSigningKeys();
        expect(keys.find((k) => k.kid === first.kid)?.retiredAt).toEqual(at(5000));
        expect(keys.find((k) => k.kid === next.kid)?.retiredAt).toBeNull();
        // Another algorithm's key is untouched.
        expect(keys.find((k) => k.kid === other.kid)?.retiredAt).toBeNull();
        expect(await store.ensureSigningKey(makeKey())).toEqual(next);
      });

      it('rotateSigningKey refuses an existing kid with conflict and changes nothing', async () => {
        const first = makeKey();
        await store.ensureSigningKey(first);
        await expect(store.rotateSigningKey(first, at(5000))).rejects.toMatchObject({ code: 'conflict' });
        const keys = await store.listSigningKeys();
        expect(keys).toHaveLength(1);
        expect(keys[0]?.retiredAt).toBeNull();
      });

      it('ensureSigningKey inserts the candidate when no key of its alg is active', async () => {
        const candidate = makeKey();
        expect(await store.ensureSigningKey(candidate)).toEqual(candidate);
        expect(await store.listSigningKeys()).toEqual([candidate]);
      });

      it('ensureSigningKey returns the existing active key when called again with another candidate', async () => {
        const first = makeKey({ createdAt: at(0) });
        const second = makeKey({ createdAt: at(SECOND) });
        await store.ensureSigningKey(first);
        expect(await store.ensureSigningKey(second)).toEqual(first);
        expect(await store.listSigningKeys()).toEqual([first]);
      });

      it('concurrent ensureSigningKey calls agree on one key', async () => {
        const candidates = Array.from({ length: 10 }, (_, i) => makeKey({ createdAt: at(i) }));
        const results = await Promise.all(candidates.map((candidate) => store.ensureSigningKey(candidate)));
        const kids = new Set(results.map((key) => key.kid));
        expect(kids.size).toBe(1);
        expect(await store.listSigningKeys()).toEqual([results[0]]);
      });

      it('ensureSigningKey keeps one active key per algorithm', async () => {
        const es = makeKey({ alg: 'ES256', createdAt: at(0) });
        const ed = makeKey({ alg: 'EdDSA', createdAt: at(SECOND) });
        expect(await store.ensureSigningKey(es)).toEqual(es);
        expect(await store.ensureSigningKey(ed)).toEqual(ed);
        expect(await store.ensureSigningKey(makeKey({ alg: 'EdDSA' }))).toEqual(ed);
      });

      it('listSigningKeys lists newest first and returns copies', async () => {
        const older = makeKey({ alg: 'ES256', createdAt: at(0) });
        const newer = makeKey({ alg: 'RS256', createdAt: at(HOUR) });
        await store.ensureSigningKey(older);
        await store.ensureSigningKey(newer);
        const keys = await store.listSigningKeys();
        expect(keys).toEqual([newer, older]);
        keys[0]!.privateJwk = 'mutated';
        keys[0]!.createdAt.setTime(0);
        (await store.ensureSigningKey(makeKey({ alg: 'ES256' }))).publicJwk = 'mutated';
        expect(await store.listSigningKeys()).toEqual([newer, older]);
      });
    });

    // ---- tombstones -------------------------------------------------------------------------

    describe('tombstones', () => {
      it('addTombstones writes every field and emits the tombstones', async () => {
        const seen = listen();
        const tombstones = [
          makeTombstone('app', 'app_1', { tenantId: 'tenant-b', createdAt: at(1), expiresAt: at(HOUR + 1) }),
          makeTombstone('access_token', 'jti_1', { createdAt: at(2) }),
        ];
        await store.addTombstones(tombstones);
        expect(await store.listTombstones(at(0))).toEqual(tombstones);
        expect(seen).toEqual([tombstones]);
        await store.addTombstones([]);
        expect(seen).toHaveLength(1);
      });

      it('addTombstones is idempotent on kind and id', async () => {
        const first = makeTombstone('api_token', 'tok_1');
        await store.addTombstones([first]);
        await store.addTombstones([first, { ...first, expiresAt: at(2 * HOUR) }]);
        await store.addTombstones([makeTombstone('access_token', 'tok_1')]);
        const list = await store.listTombstones(at(0));
        expect(list.filter((t) => t.kind === 'api_token' && t.id === 'tok_1')).toHaveLength(1);
        expect(list).toHaveLength(2);
      });

      it('a second tombstone of a kind and id merges: the earlier createdAt (effective from then), the later expiresAt', async () => {
        const deadline = makeTombstone('api_token', 'tok_grace', { createdAt: at(2 * HOUR), expiresAt: at(4 * HOUR) });
        await store.addTombstones([deadline]);
        await store.addTombstones([{ ...deadline, createdAt: at(HOUR), expiresAt: at(3 * HOUR) }]);
        await store.addTombstones([{ ...deadline, createdAt: at(3 * HOUR), expiresAt: at(5 * HOUR) }]);
        expect((await store.listTombstones(at(0))).filter((t) => t.id === 'tok_grace')).toEqual([{ ...deadline, createdAt: at(HOUR), expiresAt: at(5 * HOUR) }]);
      });

      it('listTombstones leaves out tombstones expired at now (expiresAt <= now)', async () => {
        const live = makeTombstone('access_token', 'live', { expiresAt: at(HOUR + 1) });
        const boundary = makeTombstone('access_token', 'boundary', { expiresAt: at(HOUR) });
        const dead = makeTombstone('access_token', 'dead', { expiresAt: at(HOUR - 1) });
        await store.addTombstones([live, boundary, dead]);
        expect(await store.listTombstones(at(HOUR))).toEqual([live]);
        expect((await store.listTombstones(at(HOUR - 1))).map((t) => t.id).sort()).toEqual(['boundary', 'live']);
      });

      it('listTombstones with since returns those created at or after since, oldest first', async () => {
        const a = makeTombstone('app', 'a', { createdAt: at(1 * SECOND) });
        const b = makeTombstone('app', 'b', { createdAt: at(2 * SECOND) });
        const c = makeTombstone('app', 'c', { createdAt: at(3 * SECOND) });
        await store.addTombstones([c, a, b]);
        expect(await store.listTombstones(at(0), at(2 * SECOND))).toEqual([b, c]);
        expect(await store.listTombstones(at(0), at(2 * SECOND + 1))).toEqual([c]);
        expect(await store.listTombstones(at(0))).toEqual([a, b, c]);
      });

      it('purgeTombstones deletes expired tombstones and keeps live ones', async () => {
        const live = makeTombstone('access_token', 'live', { expiresAt: at(HOUR + 1) });
        const dead = makeTombstone('access_token', 'dead', { expiresAt: at(HOUR - 1) });
        await store.addTombstones([live, dead]);
        await store.purgeTombstones(at(HOUR));
        expect(await store.listTombstones(at(0))).toEqual([live]);
      });

      it('a purged tombstone can be written again', async () => {
        const t = makeTombstone('access_token', 'again', { expiresAt: at(HOUR) });
        await store.addTombstones([t]);
        await store.purgeTombstones(at(2 * HOUR));
        const fresh = { ...t, createdAt: at(2 * HOUR), expiresAt: at(3 * HOUR) };
        await store.addTombstones([fresh]);
        expect(await store.listTombstones(at(2 * HOUR))).toEqual([fresh]);
      });
    });

    // ---- change listeners -------------------------------------------------------------------

    describe('onChange', () => {
      it('a throwing listener does not fail the write, and other listeners still receive', async () => {
        store.onChange(() => {
          throw new Error('listener failure');
        });
        const seen = listen();
        const { app } = await seedApp();
        await expect(store.deleteApp(app.tenantId, app.id, makeTombstone('app', app.id))).resolves.toBe(true);
        await expect(store.addTombstones([makeTombstone('access_token', 'jti')])).resolves.toBeUndefined();
        expect(seen).toHaveLength(2);
        expect(await store.getAppByClientId(app.id)).toBeUndefined();
      });

      it('unsubscribe stops delivery', async () => {
        const seen: Tombstone[][] = [];
        const unsubscribe = store.onChange((t) => seen.push([...t]));
        await store.addTombstones([makeTombstone('access_token', 'one')]);
        unsubscribe();
        await store.addTombstones([makeTombstone('access_token', 'two')]);
        expect(seen.map((batch) => batch.map((t) => t.id))).toEqual([['one']]);
      });

      it('emitted tombstones are copies', async () => {
        const t = makeTombstone('access_token', 'copy', { expiresAt: at(HOUR) });
        store.onChange((batch) => {
          (batch[0] as Tombstone).expiresAt.setTime(0);
        });
        await store.addTombstones([t]);
        expect(t.expiresAt).toEqual(at(HOUR));
        expect(await store.listTombstones(at(0))).toEqual([makeTombstone('access_token', 'copy', { expiresAt: at(HOUR) })]);
      });
    });

    // ---- rate-limit counters (issue 16) -------------------------------------------------------

    describe('rate-limit counters (addRateUsage, issue 16)', () => {
      it('adds atomically per key and window, reads with 0, and purgeTombstones forgets expired counters only', async () => {
        if (!store.addRateUsage) return; // optional
        const add = store.addRateUsage.bind(store);
        const totals = await Promise.all(Array.from({ length: 20 }, () => add('GET /x:app_1', 60_000, 5, at(HOUR))));
        // Every addition lands exactly once: the totals are 5, 10, …, 100 in some order.
        expect([...totals].sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => 5 * (i + 1)));
        expect(await add('GET /x:app_1', 60_000, 0, at(HOUR))).toBe(100);
        // Another window and another key are other counters.
        expect(await add('GET /x:app_1', 120_000, 1, at(3 * HOUR))).toBe(1);
        expect(await add('GET /x:app_2', 60_000, 2, at(HOUR))).toBe(2);
        await store.purgeTombstones(at(2 * HOUR));
        expect(await add('GET /x:app_1', 60_000, 0, at(HOUR))).toBe(0);
        expect(await add('GET /x:app_1', 120_000, 0, at(3 * HOUR))).toBe(1);
      });
    });

    // ---- usage counts (issue 24) --------------------------------------------------------------

    describe('usage counts (addUsage, readUsage, summarizeUsage, pruneUsage, issue 24)', () => {
      /** The start of the hour of T0, and `n` hours after it. */
      const H0 = T0 - (T0 % HOUR);
      const hour = (n: number) => H0 + n * HOUR;
      const count = (overrides: Partial<UsageCount> = {}): UsageCount => ({
        tenantId: 'tenant-a',
        appId: 'app_u1',
        tokenId: 'tok_u1',
        hour: hour(0),
        metric: 'accepted',
        count: 1,
        ...overrides,
      });
      const sum = (rows: UsageRow[]) => rows.reduce((n, r) => n + r.count, 0);

      it('addUsage adds: the same key twice, in one batch or concurrently, is the sum (an upsert that adds)', async () => {
        await store.addUsage([count({ count: 2 }), count({ count: 3 })]);
        await Promise.all(Array.from({ length: 10 }, () => store.addUsage([count({ count: 1 }), count({ metric: 'refused:expired', count: 1 })])));
        const rows = await store.readUsage('tenant-a', 'app_u1', { from: new Date(hour(0)), to: new Date(hour(1)), interval: 'hour' });
        expect(rows.sort((a, b) => a.metric.localeCompare(b.metric))).toEqual([
          { start: hour(0), tokenId: 'tok_u1', metric: 'accepted', count: 15 },
          { start: hour(0), tokenId: 'tok_u1', metric: 'refused:expired', count: 10 },
        ]);
      });

      it('readUsage: [from, to) by hour, UTC days summing their hours, a null token kept apart from the tokens', async () => {
        const day0 = H0 - (H0 % (24 * HOUR));
        const hourOf = (dayOffset: number, h: number) => day0 + dayOffset * 24 * HOUR + h * HOUR;
        await store.addUsage([
          count({ hour: hourOf(0, 1), count: 1 }),
          count({ hour: hourOf(0, 23), count: 2 }),
          count({ hour: hourOf(1, 0), count: 4 }),
          count({ hour: hourOf(1, 0), tokenId: null, metric: 'client_auth_failed', count: 8 }),
          count({ hour: hourOf(2, 0), count: 16 }),
        ]);
        const byHour = await store.readUsage('tenant-a', 'app_u1', { from: new Date(hourOf(0, 23)), to: new Date(hourOf(2, 0)), interval: 'hour' });
        expect(sum(byHour)).toBe(2 + 4 + 8);
        expect(byHour.find((r) => r.metric === 'client_auth_failed')).toEqual({ start: hourOf(1, 0), tokenId: null, metric: 'client_auth_failed', count: 8 });
        const byDay = await store.readUsage('tenant-a', 'app_u1', { from: new Date(day0), to: new Date(hourOf(3, 0)), interval: 'day' });
        expect(byDay.filter((r) => r.metric === 'accepted').sort((a, b) => a.start - b.start)).toEqual([
          { start: day0, tokenId: 'tok_u1', metric: 'accepted', count: 3 },
          { start: hourOf(1, 0), tokenId: 'tok_u1', metric: 'accepted', count: 4 },
          { start: hourOf(2, 0), tokenId: 'tok_u1', metric: 'accepted', count: 16 },
        ]);
      });

      it('is confined to the tenant: another tenant\'s counts of the same app id are neither read nor summarized', async () => {
        await store.addUsage([count({ count: 1 }), count({ tenantId: 'tenant-b', count: 100 })]);
        const range = { from: new Date(hour(0)), to: new Date(hour(1)), interval: 'hour' as const };
        expect(sum(await store.readUsage('tenant-a', 'app_u1', range))).toBe(1);
        expect(sum(await store.readUsage('tenant-b', 'app_u1', range))).toBe(100);
        expect(await store.readUsage('tenant-c', 'app_u1', range)).toEqual([]);
        const summary = await store.summarizeUsage('tenant-a', ['app_u1'], { since24h: new Date(hour(0)), since30d: new Date(hour(-100)) });
        expect(summary.get('app_u1')?.last24h).toEqual({ accepted: 1 });
      });

      it('summarizeUsage: sums per metric since each instant, for the apps asked, in one call', async () => {
        await store.addUsage([
          count({ hour: hour(-48), count: 5 }),
          count({ hour: hour(-1), metric: 'rate_limited', count: 2 }),
          count({ hour: hour(0), count: 1 }),
          count({ hour: hour(0), tokenId: 'tok_u2', count: 10 }),
          count({ appId: 'app_u2', hour: hour(0), count: 7 }),
          count({ appId: 'app_u3', hour: hour(0), count: 9 }),
        ]);
        const summary = await store.summarizeUsage('tenant-a', ['app_u1', 'app_u2', 'app_none'], { since24h: new Date(hour(-23)), since30d: new Date(hour(-719)) });
        expect([...summary.keys()].sort()).toEqual(['app_u1', 'app_u2']);
        expect(summary.get('app_u1')).toEqual({ last24h: { accepted: 11, rate_limited: 2 }, last30d: { accepted: 16, rate_limited: 2 } });
        expect(summary.get('app_u2')).toEqual({ last24h: { accepted: 7 }, last30d: { accepted: 7 } });
      });

      it('pruneUsage deletes at most `limit` counts of hours before `before`, in every tenant', async () => {
        await store.addUsage([
          count({ hour: hour(-3) }),
          count({ hour: hour(-2), tenantId: 'tenant-b' }),
          count({ hour: hour(-2), metric: 'refreshed' }),
          count({ hour: hour(0), count: 4 }),
        ]);
        expect(await store.pruneUsage(new Date(hour(-1)), 2)).toBe(2);
        expect(await store.pruneUsage(new Date(hour(-1)), 10)).toBe(1);
        expect(await store.pruneUsage(new Date(hour(-1)), 10)).toBe(0);
        const range = { from: new Date(hour(-10)), to: new Date(hour(10)), interval: 'hour' as const };
        expect(await store.readUsage('tenant-a', 'app_u1', range)).toEqual([{ start: hour(0), tokenId: 'tok_u1', metric: 'accepted', count: 4 }]);
      });

      it('addUsage refuses a count that is not a positive whole number, an hour that is not an hour start, and adds nothing of that batch', async () => {
        await expect(store.addUsage([count(), count({ count: 0 })])).rejects.toMatchObject({ code: 'validation_failed', field: 'counts[1].count' });
        await expect(store.addUsage([count({ hour: hour(0) + 1 })])).rejects.toMatchObject({ code: 'validation_failed', field: 'counts[0].hour' });
        await expect(store.addUsage([count({ metric: 'bad metric' })])).rejects.toMatchObject({ code: 'validation_failed', field: 'counts[0].metric' });
        expect(await store.readUsage('tenant-a', 'app_u1', { from: new Date(hour(-1)), to: new Date(hour(2)), interval: 'hour' })).toEqual([]);
      });

      it('a batch larger than one statement adds all of it (several chunks)', async () => {
        const many = Array.from({ length: 4500 }, (_, i) => count({ appId: `app_m${i}`, count: 1 + (i % 3) }));
        await store.addUsage(many);
        const summary = await store.summarizeUsage('tenant-a', many.map((c) => c.appId), { since24h: new Date(hour(0)), since30d: new Date(hour(0)) });
        expect(summary.size).toBe(4500);
        expect([...summary.values()].reduce((n, t) => n + (t.last24h.accepted ?? 0), 0)).toBe(many.reduce((n, c) => n + c.count, 0));
      });
    });
  });
}
