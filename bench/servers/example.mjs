/**
 * The example server itself (`createExampleApp` of examples/server.ts, from dist/), as `npm start`
 * runs it: `GET /health` bare, `GET /notarizations/stamps` behind authenticate + rateLimit +
 * requireScopes. The same process also serves, on other ports, the same app with `rateLimit`
 * taken out (the route stack without a limiter) and, optionally, with the exact per-request
 * shared count (`shared.exactBelow` above the quota: one database round trip per request).
 *
 * config: { store, issuer, keyEncryptionSecret, alg?, points, duration, leaseShare?, exact?: boolean, counting?: boolean }
 * (`counting: false`: usage counts and OpenTelemetry off, the reference of issue 24's "counting on").
 * info: { jwt, ports: { limited, unlimited, exact? } }
 */
import { createAppTokens } from '../../dist/src/index.js';
import { EXAMPLE_ROLES, EXAMPLE_SCOPES, createExampleApp } from '../../dist/examples/server.js';
import { listen } from './common.mjs';
import { makeStore } from './ours.mjs';

export async function start(config) {
  const store = makeStore(config.store);
  const auth = createAppTokens({
    store,
    issuer: config.issuer,
    scopes: EXAMPLE_SCOPES,
    roles: EXAMPLE_ROLES,
    signingAlgorithm: config.alg ?? 'RS256',
    keyEncryptionSecret: config.keyEncryptionSecret,
    ...(config.counting === false ? { usage: { enabled: false }, telemetry: { enabled: false } } : {}),
  });
  await auth.ready();
  const rate = { points: config.points, duration: config.duration, ...(config.leaseShare ? { shared: { leaseShare: config.leaseShare } } : {}) };
  // The same app with rateLimit() taken out: Express flattens the empty array away.
  const withoutLimiter = new Proxy(auth, {
    get(target, prop) {
      if (prop === 'rateLimit') return () => [];
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  const servers = [await listen(createExampleApp(auth, rate)), await listen(createExampleApp(withoutLimiter, rate))];
  if (config.exact) servers.push(await listen(createExampleApp(auth, { ...rate, shared: { exactBelow: Number.MAX_SAFE_INTEGER } })));
  const [limited, unlimited, exact] = servers.map((s) => s.address().port);

  let jwt;
  if (config.jwt) {
    jwt = config.jwt;
  } else {
    const created = await auth.apps.create({ tenantId: 'bench', name: 'bench app', scopes: ['notarization:read'], token: { name: 'bench' } });
    const res = await fetch(`http://127.0.0.1:${limited}/oauth/token`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${encodeURIComponent(created.app.id)}:${encodeURIComponent(created.value)}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: 'grant_type=client_credentials&scope=notarization:read',
    });
    if (res.status !== 200) throw new Error(`example: token request answered ${res.status}: ${await res.text()}`);
    jwt = (await res.json()).access_token;
  }
  return {
    port: limited,
    info: { jwt, ports: { limited, unlimited, ...(exact ? { exact } : {}) } },
    async close() {
      for (const s of servers) {
        s.closeAllConnections?.();
        s.close();
      }
      await auth.close().catch(() => undefined);
      await store.close().catch(() => undefined);
    },
  };
}
