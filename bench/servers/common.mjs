/** Shared bits of the contender servers. */
import http from 'node:http';

/** Listen on 127.0.0.1, an ephemeral port; keep-alive like a production server. */
export function listen(app) {
  return new Promise((resolve, reject) => {
    const server = http.createServer(app);
    server.keepAliveTimeout = 65_000;
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

/** The scope check the libraries without one get: the same rule as ours (space-separated `scope`). */
export function requireScope(scope, claimsOf) {
  return (req, res, next) => {
    const claims = claimsOf(req);
    const granted = typeof claims?.scope === 'string' ? claims.scope.split(' ') : [];
    if (granted.includes(scope)) return next();
    res.status(403).json({ error: 'insufficient_scope' });
  };
}

/** The claims every token of the bench carries besides the registered ones. */
export function benchClaims(clientId) {
  return { client_id: clientId, scope: 'notarization:read', tenant_id: 'bench', app_name: 'bench app', api_token_id: 'tok_0ds7JgMKMO6570xPGxgg7c' };
}
