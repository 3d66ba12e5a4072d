/**
 * Every {@link Store} adapter under test, as a fresh-store factory. `test/store-contract.test.ts`
 * runs the conformance suite on each; a new adapter joins with one entry here.
 *
 * @module
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMemoryStore } from '../adapters/memory/index.js';
import { createPostgresStore, createSqliteStore } from '../adapters/sql/index.js';
import { inject } from 'vitest';
import { freshDatabase } from './postgres-server.js';
import type { Store } from '../src/store.js';

/** A named factory of fresh, empty stores; `cleanup` runs after the store is closed. */
export interface AdapterUnderTest {
  name: string;
  make: () => Promise<{ store: Store; cleanup?: () => Promise<void> }>;
}

/** A fresh temporary directory and a function that removes it. */
export function makeTempDir(): { dir: string; cleanup: () => Promise<void> } {
  const dir = mkdtempSync(join(tmpdir(), 'express-app-tokens-'));
  return {
    dir,
    cleanup: async () => {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The adapters the conformance suite runs on. */
export const adapters: AdapterUnderTest[] = [
  { name: 'memory', make: async () => ({ store: createMemoryStore() }) },
  { name: 'sqlite (:memory:)', make: async () => ({ store: createSqliteStore({ filename: ':memory:' }) }) },
  {
    name: 'sqlite (file)',
    make: async () => {
      const { dir, cleanup } = makeTempDir();
      // A nested path: the store creates missing parent directories.
      return { store: createSqliteStore({ filename: join(dir, 'nested', 'app-tokens.sqlite') }), cleanup };
    },
  },
  { name: 'postgresql', make: async () => ({ store: createPostgresStore({ connectionString: await freshDatabase(inject('postgresUrl')) }) }) },
];
