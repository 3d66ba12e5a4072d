/**
 * vitest global setup: one PostgreSQL server for the whole run, shared by the adapter contract
 * suite and the multi-instance tests (each takes a fresh database on it).
 */
import type { TestProject } from 'vitest/node';
import { startPostgres, type PostgresServer } from './postgres-server.js';

let server: PostgresServer | undefined;

export async function setup(project: TestProject): Promise<void> {
  server = await startPostgres();
  project.provide('postgresUrl', server.url);
}

export async function teardown(): Promise<void> {
  await server?.destroy();
}

declare module 'vitest' {
  export interface ProvidedContext {
    postgresUrl: string;
  }
}
