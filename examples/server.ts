/**
 * The example host: an Express app that mounts express-app-tokens and protects its own routes.
 *
 *   npm start                      # SQLite at ./data/app-tokens.db, port 3000
 *   npm run cli -- bootstrap --tenant acme
 *
 * Environment: PORT (3000), ISSUER (http://localhost:$PORT), DATABASE_URL
 * (sqlite:./data/app-tokens.db; also memory: and postgres://…), RATE_LIMIT (600/60: points per
 * seconds, per app per endpoint), KEY_ENCRYPTION_SECRET (optional: seals signing keys at rest),
 * SIGNING_ALGORITHM (RS256, ES256 or EdDSA; the CLI's rotate-keys reads it too, so both make keys
 * of one type), SECRET_SCANNING_KEYS_URL (optional: when set, `POST /secret-scanning` receives
 * GitHub secret scanning reports, verified with the key list at that URL, GitHub's being
 * https://api.github.com/meta/public_keys/secret_scanning; leaked tokens are revoked),
 * METRICS_PORT (optional: when set, Prometheus metrics of the library's OpenTelemetry instruments at
 * http://METRICS_HOST:METRICS_PORT/metrics, through the OTel SDK and its Prometheus exporter, the
 * example's own dependencies), METRICS_HOST (127.0.0.1: loopback unless you say otherwise),
 * TRUST_PROXY (unset: no proxy is trusted; else Express's `trust proxy`: `true`, a number of hops, or
 * addresses/subnets such as `loopback` or `10.0.0.0/8`): which address is a request's source, for
 * the client lockout's per-source throttle.
 */
import { realpathSync } from 'node:fs';
import { createServer, type ServerOptions } from 'node:http';
import { pathToFileURL } from 'node:url';
import express, { type Express } from 'express';
import { createAppTokens, type AppTokens } from '../src/index.js';
import { AppTokensError } from '../src/core/errors.js';
import { EXAMPLE_ROLES, EXAMPLE_SCOPES, storeFailureMessage } from '../src/cli.js';
import { DEFAULT_DATABASE_URL, openStore } from '../src/database-url.js';
import { capBody } from '../src/http/body.js';

export { EXAMPLE_ROLES, EXAMPLE_SCOPES };

/** The example's environment, validated. */
export interface ExampleConfig {
  port: number;
  issuer: string;
  databaseUrl: string;
  rateLimit: { points: number; duration: number };
  keyEncryptionSecret: string | undefined;
  signingAlgorithm: SigningAlgorithm | undefined;
  /** SECRET_SCANNING_KEYS_URL: mount `POST /secret-scanning` with this key list; unset: not mounted. */
  secretScanningKeysUrl: string | undefined;
  /** METRICS_PORT / METRICS_HOST: serve Prometheus metrics there; `undefined`: no metrics endpoint. */
  metrics: { port: number; host: string } | undefined;
  /** TRUST_PROXY: Express's `trust proxy` (the source of a request for the lockout); `undefined`: none trusted. */
  trustProxy: boolean | number | string | undefined;
}

/** TRUST_PROXY → Express's `trust proxy` value; throws naming the variable. */
function readTrustProxy(text: string | undefined): boolean | number | string | undefined {
  if (text === undefined || text === '') return undefined;
  if (text === 'true' || text === 'false') return text === 'true';
  if (/^\d+$/.test(text)) {
    const hops = Number(text);
    if (hops > 32) throw new Error(`TRUST_PROXY: a number of proxy hops must be at most 32, got '${text}'`);
    return hops;
  }
  try {
    // Express compiles the list at once and throws on an address it cannot read.
    express().set('trust proxy', text);
  } catch {
    throw new Error(`TRUST_PROXY: must be true, false, a number of hops, or addresses/subnets such as 'loopback, 10.0.0.0/8', got '${text}'`);
  }
  return text;
}

const SIGNING_ALGORITHMS = ['RS256', 'ES256', 'EdDSA'] as const;
type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

/** DATABASE_URL as it may be printed: a password in it becomes `***` (postgres://user:***@host/db). */
export function withoutPassword(databaseUrl: string): string {
  try {
    const url = new URL(databaseUrl);
    if (url.password === '') return databaseUrl;
    url.password = '***';
    return url.toString();
  } catch {
    return databaseUrl.replace(/\/\/([^:/@]*):[^@/]*@/, '//$1:***@');
  }
}

/** What to run after `npm start`: a new user's first credentials. */
export const NEXT_STEP = 'npm run cli -- bootstrap --tenant acme';

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
  const algorithm = env.SIGNING_ALGORITHM || undefined;
  if (algorithm !== undefined && !(SIGNING_ALGORITHMS as readonly string[]).includes(algorithm)) {
    throw new Error(`SIGNING_ALGORITHM: must be RS256, ES256 or EdDSA, got '${algorithm}'`);
  }
  const keysUrl = env.SECRET_SCANNING_KEYS_URL || undefined;
  if (keysUrl !== undefined && !/^https?:\/\/[^\s]+$/.test(keysUrl)) {
    throw new Error(`SECRET_SCANNING_KEYS_URL: must be the URL of a key list, such as https://api.github.com/meta/public_keys/secret_scanning, got '${keysUrl}'`);
  }
  const metricsText = env.METRICS_PORT || undefined;
  const metricsPort = Number(metricsText);
  if (metricsText !== undefined && (!/^\d+$/.test(metricsText) || metricsPort < 1 || metricsPort > 65535 || metricsPort === port)) {
    throw new Error(`METRICS_PORT: must be a port number 1-65535 other than PORT, got '${metricsText}'`);
  }
  const trustProxy = readTrustProxy(env.TRUST_PROXY);
  return {
    trustProxy,
    metrics: metricsText === undefined ? undefined : { port: metricsPort, host: env.METRICS_HOST || '127.0.0.1' },
    port,
    issuer: env.ISSUER || `http://localhost:${port}`,
    databaseUrl: env.DATABASE_URL || DEFAULT_DATABASE_URL,
    rateLimit: { points: Number(rate[1]), duration: Number(rate[2]) },
    keyEncryptionSecret: env.KEY_ENCRYPTION_SECRET || undefined,
    signingAlgorithm: algorithm as SigningAlgorithm | undefined,
    secretScanningKeysUrl: keysUrl,
  };
}

/** The host app: public health check, the library's routes, and three protected routes. */
export function createExampleApp(
  auth: AppTokens,
  rateLimit: { points: number; duration: number } = { points: 600, duration: 60 },
  secretScanningKeysUrl?: string,
  trustProxy?: boolean | number | string,
): Express {
  const app = express();
  app.disable('x-powered-by');
  // The address the lockout throttles is what Express reports under this setting (TRUST_PROXY).
  if (trustProxy !== undefined) app.set('trust proxy', trustProxy);
  app.get('/health', (_req, res) => {
    res.json({ status: 'ok' });
  });
  // A landing for whoever opens the server in a browser or curls it first: where to go next.
  app.get('/', (_req, res) => {
    res.json({
      name: 'express-app-tokens example server',
      discovery: '/.well-known/oauth-authorization-server',
      jwks: '/.well-known/jwks.json',
      health: '/health',
      console: '/console/',
      readme: 'README.md (in the repository, or node_modules/express-app-tokens/README.md)',
      next: NEXT_STEP,
    });
  });
  app.use(auth.routes());
  // The admin console: sign in with the client id and secret of an app holding apps:read/apps:write
  // (the bootstrap command prints one).
  app.use('/console', auth.console());
  // GitHub secret scanning reports (SECRET_SCANNING_KEYS_URL): verified, then leaked tokens revoked.
  if (secretScanningKeysUrl !== undefined) app.use('/secret-scanning', auth.secretScanning({ keysUrl: secretScanningKeysUrl }));

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
    // A body over the limit is refused on its Content-Length before it is read, or cut at the limit.
    capBody(express.json({ limit: '16kb' }), 16_384),
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

/**
 * Slow clients are cut (issue 11, finding 14): a request must arrive whole within 30 s, its headers
 * within 20 s; Node checks every second (its default check runs every 30 s, which would let a slow
 * body live up to a minute). Hosts should set the same on their own server (README).
 */
export const SERVER_OPTIONS: ServerOptions = {
  requestTimeout: 30_000,
  headersTimeout: 20_000,
  keepAliveTimeout: 5_000,
  connectionsCheckingInterval: 1_000,
};

/**
 * METRICS_PORT: the OpenTelemetry SDK's MeterProvider with the Prometheus exporter, registered
 * globally before `createAppTokens()` (the metrics API binds instruments at creation). The SDK is
 * the example's dependency, never the library's: loaded only when asked for.
 */
async function startMetrics(metrics: { port: number; host: string }): Promise<() => Promise<void>> {
  const [{ metrics: api }, { MeterProvider }, { PrometheusExporter }] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/sdk-metrics'),
    import('@opentelemetry/exporter-prometheus'),
  ]);
  const exporter = await new Promise<InstanceType<typeof PrometheusExporter>>((resolve, reject) => {
    const made: InstanceType<typeof PrometheusExporter> = new PrometheusExporter({ port: metrics.port, host: metrics.host }, (error) =>
      error ? reject(new Error(`METRICS_PORT: cannot listen on ${metrics.host}:${metrics.port}: ${error.message}`)) : resolve(made),
    );
  });
  const provider = new MeterProvider({ readers: [exporter] });
  api.setGlobalMeterProvider(provider);
  console.log(`metrics: http://${metrics.host}:${metrics.port}/metrics (Prometheus)`);
  return () => provider.shutdown();
}

async function main(): Promise<void> {
  const config = readConfig(process.env);
  const stopMetrics = config.metrics ? await startMetrics(config.metrics) : async () => undefined;
  const store = await openStore(config.databaseUrl);
  const auth = createAppTokens({
    store,
    issuer: config.issuer,
    scopes: EXAMPLE_SCOPES,
    roles: EXAMPLE_ROLES,
    ...(config.keyEncryptionSecret ? { keyEncryptionSecret: config.keyEncryptionSecret } : {}),
    ...(config.signingAlgorithm ? { signingAlgorithm: config.signingAlgorithm } : {}),
  });
  await auth.ready();
  const server = createServer(SERVER_OPTIONS, createExampleApp(auth, config.rateLimit, config.secretScanningKeysUrl, config.trustProxy));
  // A listen failure (a taken port) arrives as the server's 'error' event.
  server.once('error', (error: NodeJS.ErrnoException) => {
    console.error(
      error.code === 'EADDRINUSE'
        ? `port ${config.port} is already in use (set PORT)`
        : `example server failed to start: cannot listen on port ${config.port}: ${error.message}`,
    );
    void auth
      .close()
      .then(() => store.close())
      .finally(() => process.exit(1));
  });
  server.listen(config.port, () => {
    console.log(`express-app-tokens example listening on http://localhost:${config.port} (issuer ${config.issuer}, ${withoutPassword(config.databaseUrl)})`);
    console.log(`next: ${NEXT_STEP}   (then the README walkthrough)`);
  });
  const stop = () => {
    server.close(() => {
      void auth
        .close()
        .then(() => store.close())
        .then(stopMetrics)
        .finally(() => process.exit(0));
    });
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

const entry = process.argv[1];
if (entry && import.meta.url === pathToFileURL(realpathSync(entry)).href) {
  main().catch((error: unknown) => {
    // A store that cannot open says why and what to do (issue 22, item 5), not only that it failed.
    const message = error instanceof AppTokensError && error.code === 'unavailable' ? storeFailureMessage(error) : (error as Error).message;
    console.error(`example server failed to start: ${message}`);
    process.exit(1);
  });
}
