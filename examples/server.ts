/**
 * The example host: an Express app that mounts express-app-tokens and protects its own routes.
 *
 *   npm start                      # SQLite at ./data/app-tokens.db, port 3000
 *   npm run cli -- bootstrap --tenant acme
 *
 * Environment: PORT (3000), ISSUER (http://localhost:$PORT), DATABASE_URL
 * (sqlite:./data/app-tokens.db; also memory: and postgres://…), RATE_LIMIT (600/60: points per
 * seconds, per app per endpoint), KEY_ENCRYPTION_SECRET (optional: seals signing keys at rest).
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import express, { type Express } from 'express';
import { createAppTokens, type AppTokens } from '../src/index.js';
import { EXAMPLE_SCOPES } from '../src/cli.js';
import { DEFAULT_DATABASE_URL, openStore } from '../src/database-url.js';

export { EXAMPLE_SCOPES };

/** The example's environment, validated. */
export interface ExampleConfig {
  port: number;
  issuer: string;
  databaseUrl: string;
  rateLimit: { points: number; duration: number };
  keyEncryptionSecret: string | undefined;
}

/** Read and validate the environment; throws naming the variable. */
export function readConfig(env: NodeJS.ProcessEnv): ExampleConfig {
  const portText = env.PORT || '3000';
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1 || port > 65535) throw new Error(`PORT: must be a port number 1-65535, got '${portText}'`);
  const rateText = env.RATE_LIMIT || '600/60';
  const rate = /^(\d+)\/(\d+)$/.exec(rateText);
  if (!rate || Number(rate[1]) < 1 || Number(rate[2]) < 1) {
    throw new Error(`RATE_LIMIT: must be POINTS/SECONDS such as 600/60, got '${rateText}'`);
  }
  return {
    port,
    issuer: env.ISSUER || `http://localhost:${port}`,
    databaseUrl: env.DATABASE_URL || DEFAULT_DATABASE_URL,
    rateLimit: { points: Number(rate[1]), duration: Number(rate[2]) },
    keyEncryptionSecret: env.KEY_ENCRYPTION_SECRET || undefined,
  };
}

/** The host app: public health check, the library's routes, and three protected routes. */
export function createExampleApp(auth: AppTokens, rateLimit: { points: number; duration: number } = { points: 600, duration: 60 }): Express {
  const app = express();
  app.disable('x-powered-by');
  app.get('/health', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.use(auth.routes());

  const stamps: Array<{ id: number; tenant: string; by: string; data: unknown; at: string }> = [];
  // RATE_LIMIT: per app, per endpoint, after authentication.
  const limited = [auth.authenticate(), auth.rateLimit(rateLimit)];
  app.get('/notarizations/stamps', ...limited, auth.requireScopes('notarization:read'), (req, res) => {
    res.json({ items: stamps.filter((s) => s.tenant === req.auth!.tenantId) });
  });
  app.post(
    '/notarizations/stamps',
    ...limited,
    auth.requireScopes('notarization:write'),
    express.json({ limit: '16kb' }),
    (req, res) => {
      const stamp = { id: stamps.length + 1, tenant: req.auth!.tenantId, by: req.auth!.clientId, data: req.body ?? null, at: new Date().toISOString() };
      stamps.push(stamp);
      res.status(201).json(stamp);
    },
  );
  app.get('/storage/objects', ...limited, auth.requireScopes('storage:read'), (req, res) => {
    res.json({ tenant: req.auth!.tenantId, items: [] });
  });
  // JSON errors from the host's own parsers, never a stack trace.
  app.use((error: { status?: number }, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    const status = typeof error.status === 'number' && error.status >= 400 && error.status < 500 ? error.status : 500;
    res.status(status).json({ error: status === 500 ? 'internal error' : 'bad request' });
  });
  return app;
}

async function main(): Promise<void> {
  const config = readConfig(process.env);
  const store = await openStore(config.databaseUrl);
  const auth = createAppTokens({
    store,
    issuer: config.issuer,
    scopes: EXAMPLE_SCOPES,
    ...(config.keyEncryptionSecret ? { keyEncryptionSecret: config.keyEncryptionSecret } : {}),
  });
  await auth.ready();
  const server = createExampleApp(auth, config.rateLimit).listen(config.port, () => {
    console.log(`express-app-tokens example listening on http://localhost:${config.port} (issuer ${config.issuer}, ${config.databaseUrl})`);
  });
  const stop = () => {
    server.close(() => {
      void auth
        .close()
        .then(() => store.close())
        .finally(() => process.exit(0));
    });
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

const entry = process.argv[1];
if (entry && import.meta.url === pathToFileURL(realpathSync(entry)).href) {
  main().catch((error: unknown) => {
    console.error(`example server failed to start: ${(error as Error).message}`);
    process.exit(1);
  });
}
