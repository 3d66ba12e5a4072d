/**
 * Child-process entry: one contender's server (or the signing loop) in a process of its own, so
 * that it does not share an event loop with autocannon or with another contender.
 *
 *   node bench/server.mjs '<json config>'     (forked by bench/lib/children.mjs, with an IPC channel)
 *
 * The config's `kind` names a module of bench/servers/ exporting `start(config)`, which resolves to
 * `{ port?, info?, command?(msg), close?() }`. Over IPC the parent sends `{id, cmd, ...}` and gets
 * `{type: 'reply', id, result | error}`: `stats` (CPU and memory), `gc`, `exit`, or a command of
 * the module. The process exits when the parent goes away (IPC disconnect).
 */
const config = JSON.parse(process.argv[2] ?? '{}');
process.title = `eat-bench:${config.name ?? config.kind}`;
process.on('disconnect', () => process.exit(0));
process.on('unhandledRejection', (error) => {
  console.error('unhandled rejection', error);
});

const reply = (id, payload) => {
  if (process.connected) process.send({ type: 'reply', id, ...payload });
};

try {
  const mod = await import(`./servers/${config.kind}.mjs`);
  const handle = await mod.start(config);
  process.on('message', async (msg) => {
    try {
      let result;
      switch (msg.cmd) {
        case 'stats':
          result = { cpu: process.cpuUsage(), mem: process.memoryUsage(), at: performance.now() };
          break;
        case 'hrtime':
          // The clock of --cpu-prof's timestamps (CLOCK_MONOTONIC), in µs.
          result = { us: Number(process.hrtime.bigint() / 1000n) };
          break;
        case 'gc':
          if (typeof globalThis.gc === 'function') {
            for (let i = 0; i < 3; i++) {
              globalThis.gc();
              await new Promise((r) => setImmediate(r));
            }
          }
          await new Promise((r) => setTimeout(r, 100));
          result = { mem: process.memoryUsage(), gc: typeof globalThis.gc === 'function' };
          break;
        case 'exit':
          reply(msg.id, { result: true });
          await Promise.race([handle.close?.(), new Promise((r) => setTimeout(r, 3000))]).catch(() => undefined);
          // process.exit() (not a signal) so that --cpu-prof writes its profile.
          process.exit(0);
          return;
        default:
          if (!handle.command) throw new Error(`unknown command ${msg.cmd}`);
          result = await handle.command(msg);
      }
      reply(msg.id, { result });
    } catch (error) {
      reply(msg.id, { error: String(error?.stack ?? error) });
    }
  });
  process.send({ type: 'ready', port: handle.port, info: handle.info ?? {} });
} catch (error) {
  console.error(error);
  if (process.connected) process.send({ type: 'failed', error: String(error?.stack ?? error) });
  process.exit(1);
}
