#!/usr/bin/env node
/**
 * `express-app-tokens bootstrap --tenant NAME`: create a tenant's admin app and print its first
 * credentials as one JSON line `{tenant, client_id, client_secret}`.
 *
 * Environment: `DATABASE_URL` (default `sqlite:./data/app-tokens.db`), `SCOPES` (the catalogue,
 * space-separated; default: the example server's catalogue), `ISSUER`/`PORT` (not used to sign
 * anything, only to build the instance).
 *
 * @module
 */
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { realpathSync } from 'node:fs';
import { createAppTokens } from './create-app-tokens.js';
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
  express-app-tokens bootstrap --tenant NAME [--scopes "a:read b:write"] [--name admin]
      Creates the tenant's admin app, the tenant's root (the wildcard of every resource of the
      catalogue: notarization:*, storage:*, …), and prints its credentials once:
      {"tenant":"NAME","client_id":"app_…","client_secret":"eat_…"}
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
  const scopeSource = values.scopes ?? io.env.SCOPES;
  const scopes = scopeSource ? scopeSource.split(/[\s,]+/).filter(Boolean) : EXAMPLE_SCOPES;
  const port = io.env.PORT ?? '3000';
  let store;
  try {
    store = await openStore(io.env.DATABASE_URL || DEFAULT_DATABASE_URL);
    const auth = createAppTokens({ store, issuer: io.env.ISSUER || `http://localhost:${port}`, scopes });
    const created = await auth.apps.create({
      tenantId: values.tenant,
      name: values.name ?? 'admin',
      description: 'created by express-app-tokens bootstrap',
      // The tenant's root: it may grant any scope or wildcard of the catalogue.
      scopes: rootScopes(scopes),
      token: { name: 'bootstrap' },
    });
    io.stdout(JSON.stringify({ tenant: values.tenant, client_id: created.app.id, client_secret: created.value }));
    return 0;
  } catch (error) {
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
