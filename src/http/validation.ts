/**
 * zod request schemas → AppTokensError naming the field.
 *
 * @module
 */
import type { z } from 'zod';
import { AppTokensError, fieldPath } from '../core/errors.js';
import { printable } from '../core/scopes.js';

/** Parse `value` with `schema`; the first issue becomes a `validation_failed` naming its path. */
export function parseInput<T extends z.ZodType>(schema: T, value: unknown, root = 'body'): z.infer<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    // The name is the caller's: echoed truncated and without control characters (finding 11).
    const path = fieldPath([...issue.path, printable(issue.keys[0]!)]);
    throw new AppTokensError('validation_failed', `${path}: unknown field`, { field: path });
  }
  const field = issue.path.length ? fieldPath(issue.path) : root;
  throw new AppTokensError('validation_failed', `${field}: ${issue.message}`, { field });
}
