/**
 * The cost of refresh-token reuse detection against the length of the rotation chain (issue 11,
 * finding 2: wave 1 walked the chain link by link, 23–73 ms per presentation of a 1,500-link chain,
 * and re-walked it on every presentation). Builds chains of 2 and 1,500 links on a SQLite file and
 * on PostgreSQL, then presents the chain's root at /tokens/refresh: the first presentation revokes the
 * family, the next ones find it revoked. Prints milliseconds per presentation (median of the runs).
 *
 *   npm run build && node bench/reuse-chain.mjs
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import request from 'supertest';
import { createAppTokens } from '../dist/src/index.js';
import { createPostgresStore, createSqliteStore } from '../dist/adapters/sql/index.js';
import { freshDatabase, startPostgres } from './lib/pg.mjs';

const RUNS = 7;
const CATALOGUE = ['notarization:read'];
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function measure(makeStore, links) {
  const first = [];
  const again = [];
  for (let run = 0; run < RUNS; run++) {
    let t = Date.now();
    const now = () => new Date(t);
    const store = await makeStore();
    const auth = createAppTokens({
      store,
      issuer: 'https://bench.example',
      scopes: CATALOGUE,
      logger: { warn() {}, error() {} },
      advanced: { now, revocationSyncInterval: 0, lastUsedFlushInterval: 0 },
    });
    await auth.ready();
    const created = await auth.apps.create({ tenantId: 'acme', name: 'chain', scopes: CATALOGUE });
    let old = await store.getApiToken('acme', created.token.id);
    for (let i = 0; i < links; i++) {
      const id = `tok_r${run}l${i}`;
      const replacement = { ...old, id, hash: createHash('sha256').update(id).digest('hex'), revokedAt: null, revokedReason: null, replacedBy: null };
      const tombstone = { kind: 'api_token', id: old.id, tenantId: 'acme', createdAt: now(), expiresAt: new Date(t + 7_200_000) };
      await store.replaceApiToken({ tenantId: 'acme', oldId: old.id, expectedHash: old.hash, reason: 'refreshed', replacement, tombstone });
      old = replacement;
    }
    t += 3000; // past the race window
    const app = express();
    app.use(auth.routes());
    const present = async () => {
      const start = process.hrtime.bigint();
      // /tokens/refresh: the one door where wave 1 detected reuse, so the two can be compared.
      const res = await request(app)
        .post('/tokens/refresh')
        .send({ client_id: created.app.id, grant_type: 'token-exchange', refresh_token: created.value, scope: 'openid' });
      if (res.status !== 400) throw new Error(`expected 400, got ${res.status}`);
      return Number(process.hrtime.bigint() - start) / 1e6;
    };
    first.push(await present());
    for (let i = 0; i < 5; i++) again.push(await present());
    await auth.close();
    await store.close();
  }
  return { first: median(first), again: median(again) };
}

const dir = mkdtempSync(join(tmpdir(), 'eat-reuse-'));
const pg = await startPostgres();
let n = 0;
const stores = {
  sqlite: async () => createSqliteStore({ filename: join(dir, `r${n++}.db`) }),
  postgresql: async () => createPostgresStore({ connectionString: await freshDatabase(pg.url) }),
};
try {
  console.log('store       links  first presentation (ms)  later presentations (ms)');
  for (const [name, make] of Object.entries(stores)) {
    for (const links of [2, 1500]) {
      const r = await measure(make, links);
      console.log(`${name.padEnd(11)} ${String(links).padStart(5)}  ${r.first.toFixed(2).padStart(23)}  ${r.again.toFixed(2).padStart(24)}`);
    }
  }
} finally {
  await pg.destroy();
  rmSync(dir, { recursive: true, force: true });
}
