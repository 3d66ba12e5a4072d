/**
 * Loaded into the soak's server with `--expose-gc --import` when the soak runs with `--heap`:
 * every SOAK_HEAP_INTERVAL ms (default 60 s) it forces a full GC and prints one line,
 * `SOAK_HEAP {"rss":…,"heapTotal":…,"heapUsed":…,"external":…,"arrayBuffers":…}` (bytes), so that
 * the soak can tell live memory (heap used after a full GC) from memory the process merely keeps.
 * A full GC every minute perturbs the server a little; the default soak does not load this.
 */
const interval = Number(process.env.SOAK_HEAP_INTERVAL) || 60_000;
setInterval(() => {
  globalThis.gc?.();
  process.stdout.write(`SOAK_HEAP ${JSON.stringify(process.memoryUsage())}\n`);
}, interval).unref();
