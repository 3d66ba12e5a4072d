/**
 * A TCP proxy on 127.0.0.1 in front of PostgreSQL that can go silent: a partition, or a dead host,
 * as a client sees it. Silent means no byte moves either way and nobody is told: no RST, no FIN;
 * sockets stay open, reads are paused (the kernel buffers what was sent, as TCP retransmission
 * would), and new connections are accepted but not forwarded. `heal()` resumes every paused
 * socket and connects the waiting ones, as a healed path delivers what was retransmitted.
 */
import net from 'node:net';

/** @param {{targetPort: number}} options */
export async function startProxy({ targetPort }) {
  let silent = false;
  /** @type {Set<{client: net.Socket, upstream?: net.Socket}>} */
  const pairs = new Set();
  let connections = 0;

  const connectUpstream = (pair) => {
    const upstream = net.connect({ host: '127.0.0.1', port: targetPort });
    pair.upstream = upstream;
    const drop = () => {
      pair.client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    upstream.on('error', drop);
    upstream.on('close', drop);
    // By hand, not pipe(): a piped stream may be resumed by its destination's 'drain', and a
    // silent path must stay silent. The volume is small, so no backpressure handling.
    pair.client.on('data', (chunk) => upstream.write(chunk));
    upstream.on('data', (chunk) => pair.client.write(chunk));
    pair.client.on('end', () => upstream.end());
    upstream.on('end', () => pair.client.end());
    if (silent) upstream.pause();
  };

  const server = net.createServer({ pauseOnConnect: true }, (client) => {
    connections += 1;
    const pair = { client };
    pairs.add(pair);
    client.on('error', () => {
      pair.upstream?.destroy();
      pairs.delete(pair);
    });
    client.on('close', () => {
      pair.upstream?.destroy();
      pairs.delete(pair);
    });
    if (!silent) {
      connectUpstream(pair);
      client.resume();
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();

  return {
    port,
    get connections() {
      return connections;
    },
    /** Stop moving bytes, both ways, on every open and new connection; tell no one. */
    silence() {
      silent = true;
      for (const { client, upstream } of pairs) {
        client.pause();
        upstream?.pause();
      }
    },
    /** Move bytes again; connections accepted while silent are connected now. */
    heal() {
      silent = false;
      for (const pair of pairs) {
        if (!pair.upstream) connectUpstream(pair);
        pair.client.resume();
        pair.upstream.resume();
      }
    },
    close() {
      for (const { client, upstream } of pairs) {
        client.destroy();
        upstream?.destroy();
      }
      pairs.clear();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
