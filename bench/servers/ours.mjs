/**
 * express-app-tokens in a host Express app, as the README mounts it: `app.use(auth.routes())`,
 * then `GET /protected` behind `auth.authenticate()` (or the host's own passport) and
 * `auth.requireScopes('notarization:read')`, answering `res.json({ok: true})`.
 *
 * config: {
 *   store: {kind: 'memory'} | {kind: 'sqlite', filename} | {kind: 'postgres', url},
 *   alg: 'RS256' | 'ES256' | 'EdDSA', issuer, scopes, keyEncryptionSecret,
 *   mode: 'authenticate' | 'passport', cacheMax?, createClient?: boolean, mountRoutes?: boolean (default true),
 *   clientKind?: 'app' (default) | 'roles' (an app of two roles: role resolution on every grant)
 *     | 'personal' (a personal token: the user's scopes from management.userScopes on every grant)
 * }
 * info: `{client: {clientId, secret}}` when `createClient`.
 */
import express from 'express';
import passport from 'passport';
import { createAppTokens } from '../../dist/src/index.js';
import { createMemoryStore } from '../../dist/adapters/memory/index.js';
import { createPostgresStore, createSqliteStore } from '../../dist/adapters/sql/index.js';
import { listen } from './common.mjs';

export function makeStore(spec) {
  switch (spec.kind) {
    case 'memory':
      return createMemoryStore();
    case 'sqlite':
      return createSqliteStore({ filename: spec.filename });
    case 'postgres':
      return createPostgresStore({ connectionString: spec.url, ...(spec.max ? { max: spec.max } : {}) });
    default:
      throw new Error(`unknown store ${spec.kind}`);
  }
}

export async function start(config) {
  const store = makeStore(config.store);
  const auth = createAppTokens({
    store,
    issuer: config.issuer,
    scopes: config.scopes,
    signingAlgorithm: config.alg ?? 'RS256',
    keyEncryptionSecret: config.keyEncryptionSecret,
    advanced: config.cacheMax ? { cacheMax: config.cacheMax } : {},
    // Issue 13: what resolving roles and a user's scopes costs a grant.
    roles: [
      { name: 'reader', scopes: ['notarization:read'] },
      { name: 'writer', scopes: ['notarization:read', 'notarization:write'] },
    ],
    management: { userScopes: async (_tenant, user) => (user === 'bench-user' ? ['notarization:read', 'notarization:write'] : null) },
  });
  await auth.ready();

  const app = express();
  // As the README mounts it; `mountRoutes: false` measures the middleware alone.
  if (config.mountRoutes !== false) app.use(auth.routes());
  const handler = (_req, res) => {
    res.json({ ok: true });
  };
  if (config.mode === 'passport') {
    passport.use(auth.strategy);
    app.use(passport.initialize());
    app.get('/protected', passport.authenticate('app-tokens', { session: false }), auth.requireScopes('notarization:read'), handler);
  } else {
    app.get('/protected', auth.authenticate(), auth.requireScopes('notarization:read'), handler);
  }

  const info = {};
  if (config.createClient && config.clientKind === 'roles') {
    const created = await auth.apps.create({ tenantId: 'bench', name: 'bench app', roles: ['reader', 'writer'], token: { name: 'bench' } });
    info.client = { clientId: created.app.id, secret: created.value };
  } else if (config.createClient && config.clientKind === 'personal') {
    const issued = await auth.users.createToken('bench', 'bench-user', { name: 'bench', scopes: ['notarization:read'] });
    info.client = { clientId: issued.clientId, secret: issued.value };
  } else if (config.createClient) {
    const created = await auth.apps.create({
      tenantId: 'bench',
      name: 'bench app',
      scopes: ['notarization:read'],
      token: { name: 'bench' },
    });
    info.client = { clientId: created.app.id, secret: created.value };
  }
  const server = await listen(app);
  return {
    port: server.address().port,
    info,
    async close() {
      server.closeAllConnections?.();
      server.close();
      await auth.close().catch(() => undefined);
      await store.close().catch(() => undefined);
    },
  };
}
