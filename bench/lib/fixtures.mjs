/**
 * Data the contenders share, made before any of them starts: a SQLite file holding our signing
 * key and a client (so every "ours" process verifies with the same key and the peers verify the
 * same JWT against the same JWKS), JWTs minted by our token endpoint, and the scale databases.
 */
import { createHash, generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { join } from 'node:path';
import express from 'express';
import { sql } from 'kysely';
import { createAppTokens } from '../../dist/src/index.js';
import { createPostgresStore, createSqliteStore } from '../../dist/adapters/sql/index.js';
import { listen } from '../servers/common.mjs';

export const ISSUER = 'https://auth.bench.test';
export const AUDIENCE = ISSUER;
export const SCOPES = ['notarization:read', 'notarization:write', 'storage:read', 'storage:write', 'apps:read', 'apps:write'];
export const KEY_SECRET = 'bench-key-encryption-secret-0123456789abcdef';

export function basic(clientId, secret) {
  return `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

export const TOKEN_BODY = 'grant_type=client_credentials&scope=notarization%3Aread';

/** POST /oauth/token on `base`; the access token. */
export async function fetchToken(base, clientId, secret, path = '/oauth/token') {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { authorization: basic(clientId, secret), 'content-type': 'application/x-www-form-urlencoded' },
    body: TOKEN_BODY,
  });
  const body = await res.json();
  if (res.status !== 200 || typeof body.access_token !== 'string') {
    throw new Error(`token endpoint ${base}${path}: ${res.status} ${JSON.stringify(body)}`);
  }
  return body.access_token;
}

/**
 * An ES256 DPoP key of the load generator (RFC 9449 §4.2), signing with node:crypto synchronously
 * so that autocannon's per-request hook can make a fresh proof (new jti, iat, ath) for every request.
 */
export function dpopSigner() {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const { kty, crv, x, y } = publicKey.export({ format: 'jwk' });
  const header = Buffer.from(JSON.stringify({ typ: 'dpop+jwt', alg: 'ES256', jwk: { kty, crv, x, y } })).toString('base64url');
  return {
    proof(htm, htu, accessToken) {
      const claims = { htm, htu, iat: Math.floor(Date.now() / 1000), jti: randomUUID() };
      if (accessToken !== undefined) claims.ath = createHash('sha256').update(accessToken).digest('base64url');
      const input = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
      return `${input}.${sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
    },
  };
}

/** POST /oauth/token with a DPoP proof: a DPoP-bound access token (RFC 9449 §5). */
async function fetchBoundToken(base, clientId, secret, signer) {
  const res = await fetch(`${base}/oauth/token`, {
    method: 'POST',
    headers: {
      authorization: basic(clientId, secret),
      'content-type': 'application/x-www-form-urlencoded',
      dpop: signer.proof('POST', `${ISSUER}/oauth/token`),
    },
    body: TOKEN_BODY,
  });
  const body = await res.json();
  if (res.status !== 200 || body.token_type !== 'DPoP') throw new Error(`token endpoint with DPoP: ${res.status} ${JSON.stringify(body)}`);
  return body.access_token;
}

function makeAuth(store, alg = 'RS256') {
  return createAppTokens({
    store,
    issuer: ISSUER,
    scopes: SCOPES,
    signingAlgorithm: alg,
    keyEncryptionSecret: KEY_SECRET,
    advanced: { revocationSyncInterval: 0, lastUsedFlushInterval: 0, keyReloadInterval: 0 },
  });
}

/** Serve `auth.routes()` on loopback while `fn(base)` runs. */
async function withRoutes(auth, fn) {
  const app = express();
  app.use(auth.routes());
  const server = await listen(app);
  try {
    return await fn(`http://127.0.0.1:${server.address().port}`);
  } finally {
    server.closeAllConnections?.();
    server.close();
  }
}

async function createClients(auth, count, tenantId = 'bench') {
  const clients = [];
  for (let i = 0; i < count; i++) {
    const created = await auth.apps.create({ tenantId, name: `bench app ${i}`, scopes: ['notarization:read'], token: { name: 'bench' } });
    clients.push({ clientId: created.app.id, secret: created.value });
  }
  return clients;
}

/**
 * The protected-route fixture: `filename` (SQLite with an `alg` key and one client), a JWT of that
 * client minted by our token endpoint, and the JWKS.
 */
export async function protectedFixture(dir, alg = 'RS256', name = 'protected.db') {
  const filename = join(dir, name);
  const store = createSqliteStore({ filename });
  const auth = makeAuth(store, alg);
  try {
    await auth.ready();
    const [client] = await createClients(auth, 1);
    const signer = dpopSigner();
    const { jwt, jwks, dpopJwt } = await withRoutes(auth, async (base) => ({
      jwt: await fetchToken(base, client.clientId, client.secret),
      jwks: await (await fetch(`${base}/.well-known/jwks.json`)).json(),
      dpopJwt: await fetchBoundToken(base, client.clientId, client.secret, signer),
    }));
    // `dpop`: a token bound to the signer's key, and the signer for the per-request proofs.
    return { filename, client, jwt, jwks, dpop: { jwt: dpopJwt, signer } };
  } finally {
    await auth.close();
    await store.close();
  }
}

/**
 * Mint `count` distinct access tokens for the fixture's client through the service (the same
 * `issueClientCredentials` the token endpoint calls), `concurrency` at a time.
 */
export async function mintMany(filename, client, count, { alg = 'RS256', concurrency = 16, onProgress } = {}) {
  const { AppTokensService } = await import('../../dist/src/core/service.js');
  const { resolveOptions } = await import('../../dist/src/core/options.js');
  const store = createSqliteStore({ filename });
  const service = new AppTokensService(
    resolveOptions({
      store,
      issuer: ISSUER,
      scopes: SCOPES,
      signingAlgorithm: alg,
      keyEncryptionSecret: KEY_SECRET,
      advanced: { revocationSyncInterval: 0, lastUsedFlushInterval: 0, keyReloadInterval: 0, eventFlushInterval: 1000 },
    }),
  );
  try {
    await service.ready();
    const { app, credential: token } = await service.authenticateClient({ method: 'client_secret_basic', clientId: client.clientId, secret: client.secret });
    const out = new Array(count);
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < count) {
          const i = next++;
          out[i] = (await service.issueClientCredentials(app, token, ['notarization:read'])).access_token;
          if (onProgress && i % 10_000 === 0) onProgress(i);
        }
      }),
    );
    return out;
  } finally {
    await service.close();
    await store.close();
  }
}

/**
 * A scale database: `apps` apps in total (10 real clients + fillers written straight through the
 * store's Kysely instance, one API token each), RS256 JWTs of the real clients minted by our token
 * endpoint. `spec`: {kind: 'sqlite', filename} | {kind: 'postgres', url}.
 */
export async function scaleFixture(spec, apps, { realClients = 10, log = () => undefined } = {}) {
  const store = spec.kind === 'sqlite' ? createSqliteStore({ filename: spec.filename }) : createPostgresStore({ connectionString: spec.url, statementTimeout: 600_000 });
  const auth = makeAuth(store, 'RS256');
  try {
    await auth.ready();
    const clients = await createClients(auth, Math.min(realClients, apps));
    const fillers = apps - clients.length;
    const t0 = performance.now();
    if (fillers > 0) await bulkInsert(store.db, spec.kind, fillers);
    const loadSeconds = (performance.now() - t0) / 1000;
    if (fillers > 0) log(`    ${spec.kind}: ${fillers} filler apps + tokens in ${loadSeconds.toFixed(1)} s`);
    const jwts = await withRoutes(auth, (base) => Promise.all(clients.map((c) => fetchToken(base, c.clientId, c.secret))));
    const counts = await countRows(store.db);
    return { clients, jwts, loadSeconds, counts };
  } finally {
    await auth.close();
    await store.close();
  }
}

async function countRows(db) {
  const apps = await sql`select count(*) as n from apps`.execute(db);
  const tokens = await sql`select count(*) as n from api_tokens`.execute(db);
  return { apps: Number(apps.rows[0].n), apiTokens: Number(tokens.rows[0].n) };
}

/**
 * Filler apps and their API tokens (random ids and hashes, spread over 1000 tenants), generated by
 * the database itself in one transaction, in primary-key order, the way bulk loads are done: the
 * secondary indexes of the two tables are dropped first and re-created afterwards from their own
 * stored definitions (so they stay exactly what the migrations made), and on PostgreSQL the
 * foreign-key trigger is skipped (`session_replication_role = replica`; the rows reference apps
 * inserted just before). Then ANALYZE (PostgreSQL: VACUUM (ANALYZE)).
 */
async function bulkInsert(db, kind, n) {
  const now = Date.now();
  if (kind === 'sqlite') {
    // This connection only: a page cache that holds the whole database.
    await sql`PRAGMA cache_size = -2000000`.execute(db);
  }
  await db.transaction().execute(async (trx) => {
    let indexes;
    if (kind === 'sqlite') {
      ({ rows: indexes } = await sql`
        SELECT name, sql AS def FROM sqlite_master
        WHERE type = 'index' AND tbl_name IN ('apps', 'api_tokens') AND sql IS NOT NULL`.execute(trx));
    } else {
      await sql`SET LOCAL session_replication_role = replica`.execute(trx);
      await sql`SET LOCAL maintenance_work_mem = '512MB'`.execute(trx);
      ({ rows: indexes } = await sql`
        SELECT i.indexname AS name, i.indexdef AS def FROM pg_indexes i
        WHERE i.schemaname = current_schema() AND i.tablename IN ('apps', 'api_tokens')
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)`.execute(trx));
    }
    for (const { name } of indexes) await sql`DROP INDEX ${sql.id(name)}`.execute(trx);
    if (kind === 'sqlite') {
      await sql`
        INSERT INTO apps (id, tenant_id, name, description, scopes, custom_claims, created_at, updated_at)
        WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < ${n})
        SELECT 'app_' || lower(hex(randomblob(11))) AS id, 'tenant_' || (i % 1000), 'filler ' || i, NULL,
               '["notarization:read"]', '{}', ${now} + i, ${now} + i
        FROM seq ORDER BY 1`.execute(trx);
      await sql`
        INSERT INTO api_tokens (id, app_id, tenant_id, name, hash, hint, scopes, created_at, expires_at, last_used_at, revoked_at, revoked_reason, replaced_by)
        SELECT 'tok_' || lower(hex(randomblob(11))) AS tid, id, tenant_id, 'filler', lower(hex(randomblob(32))), 'eat_…fill',
               NULL, created_at, NULL, NULL, NULL, NULL, NULL
        FROM apps WHERE name LIKE 'filler %' ORDER BY 1`.execute(trx);
    } else {
      await sql`
        INSERT INTO apps (id, tenant_id, name, description, scopes, custom_claims, created_at, updated_at)
        SELECT 'app_' || substr(md5(random()::text || i::text), 1, 22) AS id, 'tenant_' || (i % 1000), 'filler ' || i, NULL,
               '["notarization:read"]', '{}', ${now}::bigint + i, ${now}::bigint + i
        FROM generate_series(1, ${n}::int) AS i ORDER BY 1`.execute(trx);
      await sql`
        INSERT INTO api_tokens (id, app_id, tenant_id, name, hash, hint, scopes, created_at, expires_at, last_used_at, revoked_at, revoked_reason, replaced_by)
        SELECT 'tok_' || substr(md5(random()::text || id), 1, 22) AS tid, id, tenant_id, 'filler',
               encode(sha256(convert_to(id || random()::text, 'UTF8')), 'hex'), 'eat_…fill',
               NULL, created_at, NULL, NULL, NULL, NULL, NULL
        FROM apps WHERE name LIKE 'filler %' ORDER BY 1`.execute(trx);
    }
    for (const { def } of indexes) await sql.raw(def).execute(trx);
  });
  if (kind === 'sqlite') {
    await sql`ANALYZE`.execute(db);
    await sql`PRAGMA wal_checkpoint(TRUNCATE)`.execute(db);
  } else {
    // What a bulk load is followed by, so that autovacuum does not do it during a measurement.
    await sql`VACUUM (ANALYZE) apps, api_tokens`.execute(db);
  }
}
