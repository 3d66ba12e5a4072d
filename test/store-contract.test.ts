import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSqliteStore } from '../adapters/sql/index.js';
import type { SqlStore } from '../adapters/sql/index.js';
import { adapters, makeTempDir } from './adapters.js';
import { at, makeApp, makeKey, makeToken, makeTombstone, storeContract } from './store-contract.js';

for (const adapter of adapters) storeContract(adapter.name, adapter.make);

describe('sqlite (file): persistence', () => {
  const opened: SqlStore[] = [];
  let temp: ReturnType<typeof makeTempDir>;

  beforeEach(() => {
    temp = makeTempDir();
  });

  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close();
    await temp.cleanup();
  });

  function open(filename: string): SqlStore {
    const store = createSqliteStore({ filename });
    opened.push(store);
    return store;
  }

  it('keeps apps, tokens, signing keys and tombstones across close and reopen of the same file', async () => {
    const filename = join(temp.dir, 'data', 'store.sqlite');
    const app = makeApp();
    const token = makeToken(app, { scopes: ['invoices:read'], expiresAt: at(86_400_000) });
    const key = makeKey();
    const tombstone = makeTombstone('access_token', 'jti-1');

    const first = open(filename);
    await first.init();
    await first.createApp(app, [token]);
    await first.ensureSigningKey(key);
    await first.addTombstones([tombstone]);
    await first.close();
    expect(existsSync(filename)).toBe(true);

    const second = open(filename);
    await second.init();
    expect(await second.getApp(app.tenantId, app.id)).toEqual(app);
    expect(await second.findApiTokenByHash(token.hash)).toEqual(token);
    expect(await second.listSigningKeys()).toEqual([key]);
    expect(await second.ensureSigningKey(makeKey())).toEqual(key);
    expect(await second.listTombstones(at(0))).toEqual([tombstone]);
  });

  it('two stores migrating one fresh file at the same time both come up (regression: "table apps already exists")', async () => {
    const filename = join(temp.dir, 'race.sqlite');
    const [a, b] = [open(filename), open(filename)];
    await Promise.all([a.init(), b.init()]);
    const app = makeApp();
    await a.createApp(app, []);
    expect(await b.getApp(app.tenantId, app.id)).toEqual(app);
  });

  it('init on an existing database is idempotent and runs no migration twice', async () => {
    const filename = join(temp.dir, 'idempotent.sqlite');
    const first = open(filename);
    await first.init();
    await first.createApp(makeApp(), []);
    await first.close();

    const second = open(filename);
    await Promise.all([second.init(), second.init()]);
    await second.init();
    const migrations = await sql<{ name: string }>`select name from app_tokens_migrations`.execute(second.db);
    expect(migrations.rows.map((row) => row.name)).toEqual(['0001_initial']);
    expect((await second.listApps('tenant-a', { limit: 10 })).items).toHaveLength(1);
  });
});
