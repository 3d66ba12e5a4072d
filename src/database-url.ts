/**
 * `DATABASE_URL` → a Store: `memory:`, `sqlite:<path>` (or `sqlite::memory:`), `postgres://…`.
 *
 * @module
 */
import type { Store } from './store.js';
import { AppTokensError } from './core/errors.js';

/** The embedded default: a SQLite file under `./data`. */
export const DEFAULT_DATABASE_URL = 'sqlite:./data/app-tokens.db';

/**
 * Open the store a database URL names. Adapters are imported on demand, so a host that uses
 * only one of them needs only that one's driver installed.
 *
 * @example
 * ```ts
 * const store = await openStore(process.env.DATABASE_URL ?? 'sqlite:./data/app-tokens.db');
 * ```
 */
export async function openStore(url: string): Promise<Store> {
  if (url === 'memory:') {
    const { createMemoryStore } = await import('../adapters/memory/index.js');
    return createMemoryStore();
  }
  if (url.startsWith('sqlite:')) {
    const filename = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (filename === '') {
      throw new AppTokensError('invalid_options', 'DATABASE_URL: sqlite: needs a file path, e.g. sqlite:./data/app-tokens.db', {
        field: 'DATABASE_URL',
      });
    }
    const { createSqliteStore } = await import('../adapters/sqlite/index.js');
    return createSqliteStore({ filename });
  }
  if (/^postgres(ql)?:\/\//.test(url)) {
    const { createPostgresStore } = await import('../adapters/postgres/index.js');
    return createPostgresStore({ connectionString: url });
  }
  throw new AppTokensError(
    'invalid_options',
    'DATABASE_URL: must start with sqlite:, memory: or postgres://',
    { field: 'DATABASE_URL' },
  );
}
