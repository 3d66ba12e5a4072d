/**
 * The generated reference (docs/reference/, issue 23 item 6) is current: `scripts/docs.mjs`
 * regenerates it into memory (`--json`, from dist/ and the TypeScript sources) and every committed
 * page must equal what it gives. When one differs the test names the file: run `npm run docs`.
 * The pages are also checked against sources the generator does not read the same way: the routes
 * of `auth.openapi()` built from src/, the options zod resolves, the codes written in errors.ts.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { createMemoryStore } from '../adapters/memory/index.js';
import { resolveOptions } from '../src/core/options.js';
import { createAppTokens } from '../src/index.js';
import { ROOT } from './pack.js';

const PAGES = ['options.md', 'http-api.md', 'errors.md'];

function generate(): Record<string, string> {
  const out = execFileSync(process.execPath, [join(ROOT, 'scripts/docs.mjs'), '--json'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  return JSON.parse(out) as Record<string, string>;
}

function committed(name: string): string {
  return readFileSync(join(ROOT, 'docs/reference', name), 'utf8');
}

let generated: Record<string, string>;
beforeAll(() => {
  generated = generate();
}, 60_000);

describe('docs/reference is generated (npm run docs) and current', () => {
  it('generates exactly the three pages', () => {
    expect(Object.keys(generated).sort()).toEqual([...PAGES].sort());
  });

  for (const name of PAGES) {
    it(`docs/reference/${name} equals what npm run docs generates`, () => {
      expect(committed(name), `docs/reference/${name} is stale: run \`npm run docs\``).toBe(generated[name]);
    });
  }

  it('is deterministic: a second run gives the same bytes', () => {
    expect(generate()).toEqual(generated);
  }, 60_000);
});

describe('what the reference covers', () => {
  it('http-api.md has a section for every operation of auth.openapi()', async () => {
    const auth = createAppTokens({ store: createMemoryStore(), issuer: 'https://api.example.com', scopes: ['apps:read', 'apps:write'], logger: { warn() {}, error() {} } });
    try {
      const doc = auth.openapi() as unknown as { paths: Record<string, Record<string, unknown>> };
      const operations = Object.entries(doc.paths).flatMap(([path, item]) => Object.keys(item).map((method) => `## ${method.toUpperCase()} ${path}\n`));
      expect(operations.length).toBeGreaterThan(20);
      expect(operations.filter((heading) => !generated['http-api.md']!.includes(heading))).toEqual([]);
    } finally {
      await auth.close();
    }
  });

  it('options.md has a row for every option createAppTokens resolves, advanced ones included', () => {
    const resolved = resolveOptions({ store: createMemoryStore(), issuer: 'https://api.example.com', scopes: ['a:read'] }) as unknown as Record<string, unknown> & { advanced: Record<string, unknown> };
    const names = [...Object.keys(resolved), ...Object.keys(resolved.advanced).map((k) => `advanced.${k}`)];
    expect(names).toContain('advanced.clockTolerance');
    expect(names.filter((name) => !generated['options.md']!.includes(`| \`${name}\` |`))).toEqual([]);
  });

  it('errors.md has a row, with a status, for every code of the ErrorCode union', () => {
    const source = readFileSync(join(ROOT, 'src/core/errors.ts'), 'utf8');
    const union = /export type ErrorCode =([\s\S]*?);/.exec(source)![1]!;
    const codes = [...union.matchAll(/\|\s*'([a-z_]+)'/g)].map((m) => m[1]!);
    expect(codes).toContain('invalid_client');
    expect(codes.filter((code) => !new RegExp(`^\\| \`${code}\` \\| [1-5]\\d\\d \\|`, 'm').test(generated['errors.md']!))).toEqual([]);
  });
});

describe('docs/decisions', () => {
  it('docs/ARCHITECTURE.md links every decision record, so a new one cannot go unlisted', () => {
    const architecture = readFileSync(join(ROOT, 'docs/ARCHITECTURE.md'), 'utf8');
    const files = readdirSync(join(ROOT, 'docs/decisions')).filter((f) => f.endsWith('.md'));
    expect(files.length).toBeGreaterThan(50);
    expect(files.filter((f) => !architecture.includes(`decisions/${f})`))).toEqual([]);
  });
});
