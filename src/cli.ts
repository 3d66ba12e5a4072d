#!/usr/bin/env node
/**
 * `express-app-tokens bootstrap --tenant NAME`: create a tenant's admin app and print its first
 * credentials as one JSON line `{tenant, client_id, client_secret}`.
 *
 * Environment: `DATABASE_URL` (default `sqlite:./data/app-tokens.db`), `SCOPES` (the catalogue,
 * space-separated; default: the example server's catalogue), `ISSUER`/`PORT` (not used to sign
 * anything, only to build the instance). `--config FILE` reads the host's own options instead.
 * A tenant that already has an admin app gets no second one unless `--force` is given.
 *
 * @module
 */
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { createAppTokens, type AppTokens } from './create-app-tokens.js';
import type { AppTokensOptions } from './core/options.js';
import type { Store } from './store.js';
import { DEFAULT_DATABASE_URL, openStore } from './database-url.js';
import { AppTokensError } from './core/errors.js';
import { rootScopes } from './core/scopes.js';

/** The example server's scope catalogue; the CLI's default when neither --scopes nor SCOPES is set. */
export const EXAMPLE_SCOPES = [
  'notarization:read',
  'notarization:write',
  'storage:read',
  'storage:write',
  'streams:read',
  'streams:write',
  'apps:read',
  'apps:write',
];

/** The example server's roles (issue 13): named bundles of {@link EXAMPLE_SCOPES}. */
export const EXAMPLE_ROLES = [
  { name: 'viewer', scopes: ['notarization:read', 'storage:read', 'streams:read'], description: 'Read notarizations, storage and streams' },
  {
    name: 'editor',
    scopes: ['notarization:read', 'notarization:write', 'storage:read', 'storage:write', 'streams:read', 'streams:write'],
    description: 'Read and write notarizations, storage and streams',
  },
  { name: 'apps-admin', scopes: ['apps:read', 'apps:write'], description: 'Manage apps and their tokens' },
];

const USAGE = `Usage:
  express-app-tokens bootstrap --tenant NAME [--scopes "a:read b:write" | --config FILE] [--name admin] [--force]
      Creates the tenant's admin app, the tenant's root (the wildcard of every resource of the
      catalogue: notarization:*, storage:*, …), and prints its credentials once:
      {"tenant":"NAME","client_id":"app_…","client_secret":"eat_…"}
      The secret expires with the API-token default lifetime (90 days unless your options say
      otherwise): the date is printed on stderr. A tenant that already has an admin app (one that
      holds every scope of the catalogue) gets no second one unless --force is given.
      --config FILE  an ES module whose default export is your createAppTokens() options (or a
                     function returning them): your scope catalogue, token prefix, roles and store,
                     so the admin is made for your app, not for the example server. Without a
                     "store" in it, DATABASE_URL is used.
  express-app-tokens rotate-keys
      Retires the active signing key and creates a new one; prints {"kid":"…","retired":["…"],"activatesAt":"…"}
      (the new key signs from activatesAt, 90 s later).
      Old tokens keep verifying until they expire; running servers pick the new key up within
      their key reload interval (60 s).

Environment:
  DATABASE_URL           sqlite:<path> (default ${DEFAULT_DATABASE_URL}), memory: or postgres://…
  SCOPES                 the scope catalogue, space-separated (default: the example server's)
  SIGNING_ALGORITHM      RS256 (default), ES256 or EdDSA (rotate-keys; set the same for the example server)
  KEY_ENCRYPTION_SECRET  seals the new private key at rest (rotate-keys)`;

export interface CliIo {
  env: NodeJS.ProcessEnv;
  stdout: (line: string) => void;
  stderr: (line: string) => void;
}

/** Run the CLI; resolves to the exit code. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        tenant: { type: 'string' },
        scopes: { type: 'string' },
        name: { type: 'string' },
        config: { type: 'string' },
        force: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    io.stderr(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.stdout(USAGE);
    return 0;
  }
  const command = positionals[0];
  if ((command !== 'bootstrap' && command !== 'rotate-keys') || positionals.length !== 1) {
    io.stderr(`unknown command: ${positionals.join(' ') || '(none)'}\n\n${USAGE}`);
    return 2;
  }
  if (command === 'rotate-keys') return rotateKeys(io);
  if (!values.tenant) {
    io.stderr(`--tenant: required\n\n${USAGE}`);
    return 2;
  }
  if (values.config !== undefined && (values.scopes !== undefined || io.env.SCOPES)) {
    io.stderr(`--config: the scopes come from the config file; drop --scopes and SCOPES\n\n${USAGE}`);
    return 2;
  }
  const port = io.env.PORT ?? '3000';
  let store: Store | undefined;
  try {
    let host: Partial<AppTokensOptions> = {};
    if (values.config !== undefined) {
      const loaded = await loadConfig(values.config);
      if (typeof loaded === 'string') {
        io.stderr(`--config: ${loaded}`);
        return 2;
      }
      host = loaded;
    }
    const scopeSource = values.scopes ?? io.env.SCOPES;
    const scopes = host.scopes ?? (scopeSource ? scopeSource.split(/[\s,]+/).filter(Boolean) : EXAMPLE_SCOPES);
    store = host.store ?? (await openStore(io.env.DATABASE_URL || DEFAULT_DATABASE_URL));
    const auth = createAppTokens({
      issuer: io.env.ISSUER || `http://localhost:${port}`,
      ...host,
      store,
      scopes,
      advanced: { ...host.advanced, revocationSyncInterval: 0, keyReloadInterval: 0, expirySweepInterval: 0 },
    });
    const root = rootScopes(scopes);
    const existing = await findAdmin(auth, values.tenant, root);
    if (existing !== undefined && !values.force) {
      io.stderr(
        `--tenant: '${values.tenant}' already has an admin app: ${existing.id} ('${existing.name}', created ${existing.createdAt}). ` +
          `Its secret was shown once when it was made; to get a new one, regenerate its token (POST /apps/${existing.id}/tokens/{tokenId}/regenerate, ` +
          `or the console). Pass --force to create another admin app.`,
      );
      return 2;
    }
    const created = await auth.apps.create({
      tenantId: values.tenant,
      name: values.name ?? 'admin',
      description: 'created by express-app-tokens bootstrap',
      // The tenant's root: it may grant any scope or wildcard of the catalogue.
      scopes: root,
      token: { name: 'bootstrap' },
    });
    await auth.close();
    io.stdout(JSON.stringify({ tenant: values.tenant, client_id: created.app.id, client_secret: created.value }));
    if (values.config === undefined && !scopeSource) {
      // A host bootstrapping its own app with the example's catalogue would get an admin that
      // holds nothing of its own catalogue: say which catalogue this was.
      io.stderr(
        `note: no --scopes, SCOPES or --config given: the admin holds the example server's catalogue (${root.join(' ')}); ` +
          'for your own app, pass --config with your createAppTokens() options.',
      );
    }
    const expires = created.token.expirationDate;
    io.stderr(
      expires === null
        ? 'note: this client_secret is shown once and does not expire; store it now.'
        : `note: this client_secret is shown once and expires on ${expires} (the API-token default lifetime, "apiTokenTtl.default"); ` +
            'rotate it before then with POST /tokens/refresh, or regenerate it from the console.',
    );
    return 0;
  } catch (error) {
    if (isStoreFailure(error)) {
      io.stderr(`bootstrap failed: ${storeFailureMessage(error)}`);
      return 1;
    }
    if (error instanceof AppTokensError) {
      const message = error.field === 'tenantId' ? error.message.replace(/^tenantId/, '--tenant') : error.message;
      io.stderr(message);
      return 2;
    }
    io.stderr(`bootstrap failed: ${(error as Error).message}`);
    return 1;
  } finally {
    await store?.close();
  }
}

/** An app of the tenant that holds every root scope of the catalogue: an admin already made. */
async function findAdmin(
  auth: AppTokens,
  tenantId: string,
  root: readonly string[],
): Promise<{ id: string; name: string; createdAt: string } | undefined> {
  let cursor: string | undefined;
  do {
    const page = await auth.apps.list(tenantId, { limit: 100, ...(cursor ? { cursor } : {}) });
    const admin = page.items.find((app) => root.every((s) => app.scopes.includes(s)));
    if (admin) return { id: admin.id, name: admin.name, createdAt: admin.creationDate };
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  return undefined;
}

/** The host's options from `--config FILE`: its default export, or what its default export function returns. */
async function loadConfig(file: string): Promise<Partial<AppTokensOptions> | string> {
  let mod: { default?: unknown };
  try {
    mod = (await import(pathToFileURL(resolve(file)).href)) as { default?: unknown };
  } catch (error) {
    return `cannot load ${file}: ${(error as Error).message}`;
  }
  let options = mod.default;
  if (typeof options === 'function') options = await (options as () => unknown)();
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    return `${file} must export default your createAppTokens() options (an object, or a function returning one)`;
  }
  if (!Array.isArray((options as { scopes?: unknown }).scopes)) return `${file}: the options have no "scopes" catalogue`;
  return options as Partial<AppTokensOptions>;
}

async function rotateKeys(io: CliIo): Promise<number> {
  let store;
  try {
    store = await openStore(io.env.DATABASE_URL || DEFAULT_DATABASE_URL);
    const auth = createAppTokens({
      store,
      issuer: io.env.ISSUER || `http://localhost:${io.env.PORT ?? '3000'}`,
      scopes: EXAMPLE_SCOPES,
      ...(io.env.SIGNING_ALGORITHM ? { signingAlgorithm: io.env.SIGNING_ALGORITHM as 'RS256' } : {}),
      ...(io.env.KEY_ENCRYPTION_SECRET ? { keyEncryptionSecret: io.env.KEY_ENCRYPTION_SECRET } : {}),
      advanced: { revocationSyncInterval: 0, keyReloadInterval: 0, lastUsedFlushInterval: 0, eventFlushInterval: 0 },
    });
    const rotated = await auth.rotateKeys();
    await auth.close();
    io.stdout(JSON.stringify(rotated));
    return 0;
  } catch (error) {
    if (isStoreFailure(error)) {
      io.stderr(`rotate-keys failed: ${storeFailureMessage(error)}`);
      return 1;
    }
    if (error instanceof AppTokensError) {
      io.stderr(error.message.replace(/^"signingAlgorithm"/, 'SIGNING_ALGORITHM').replace(/^"keyEncryptionSecret"/, 'KEY_ENCRYPTION_SECRET'));
      return 2;
    }
    io.stderr(`rotate-keys failed: ${(error as Error).message}`);
    return 1;
  } finally {
    await store?.close();
  }
}

/** The store could not be opened or read (a fault, not a usage error: exit 1). */
function isStoreFailure(error: unknown): error is AppTokensError {
  return error instanceof AppTokensError && error.code === 'unavailable';
}

/**
 * Why the store could not start (issue 22, item 5): the adapter's cause and what to do
 * (`SQLITE_NOTADB: ./data/app-tokens.db is not a SQLite database. …`), and where the store is chosen.
 * Shared by the CLI and the example server.
 */
export function storeFailureMessage(error: AppTokensError): string {
  return `${error.message}\nThe store is the one DATABASE_URL names (default ${DEFAULT_DATABASE_URL}).`;
}

function isMain(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(entry)).href;
  } catch {
    return false;
  }
}

if (isMain()) {
  runCli(process.argv.slice(2), {
    env: process.env,
    stdout: (line) => process.stdout.write(`${line}\n`),
    stderr: (line) => process.stderr.write(`${line}\n`),
  }).then((code) => {
    process.exitCode = code;
  });
}
