/**
 * Loaded into the soak's server with `--expose-gc --import` when the soak runs with `--heap`:
 * every SOAK_HEAP_INTERVAL ms (default 60 s) it forces a full GC and prints one line,
 * `SOAK_HEAP {"rss":…,"heapTotal":…,"heapUsed":…,"external":…,"arrayBuffers":…}` (bytes), so that
 * the soak can tell live memory (heap used after a full GC) from memory the process merely keeps.
 * A full GC every minute perturbs the server a little; the default soak does not load this.
 *
 * Opt-in heap snapshots (the soak's `--heapsnapshot DIR`): with SOAK_HEAPSNAPSHOT_DIR set, SIGUSR2
 * writes `v8.writeHeapSnapshot()` into that directory and prints `SOAK_HEAPSNAPSHOT <path>`; with
 * SOAK_HEAPSNAPSHOT_AT (minutes after start, comma-separated, e.g. `5,20`) it also writes one at
 * each of those times. A snapshot stops the server for a few seconds and is as large as the heap
 * or larger: for finding what grows, not for figures.
 */
import { join } from 'node:path';
import { writeHeapSnapshot } from 'node:v8';

const interval = Number(process.env.SOAK_HEAP_INTERVAL) || 60_000;
setInterval(() => {
  globalThis.gc?.();
  process.stdout.write(`SOAK_HEAP ${JSON.stringify(process.memoryUsage())}\n`);
}, interval).unref();

const snapshotDir = process.env.SOAK_HEAPSNAPSHOT_DIR;
if (snapshotDir) {
  const started = Date.now();
  let taken = 0;
  const snapshot = () => {
    taken += 1;
    const minute = Math.round((Date.now() - started) / 60_000);
    const file = join(snapshotDir, `server-${process.pid}-${String(taken).padStart(2, '0')}-min${minute}.heapsnapshot`);
    globalThis.gc?.();
    writeHeapSnapshot(file);
    process.stdout.write(`SOAK_HEAPSNAPSHOT ${file}\n`);
  };
  process.on('SIGUSR2', snapshot);
  const at = (process.env.SOAK_HEAPSNAPSHOT_AT ?? '')
    .split(',')
    .map((s) => Number(s.trim()))
    .filter((m) => Number.isFinite(m) && m > 0)
    .slice(0, 20);
  for (const minutes of at) setTimeout(snapshot, minutes * 60_000).unref();
}
