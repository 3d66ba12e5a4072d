/**
 * A real TCP proxy in front of PostgreSQL that can go silent: while silent it forwards no byte in
 * either direction and accepts new connections without answering, but closes nothing (a network
 * partition, a dead host: no reset, no FIN). Bytes held back are delivered on `resume()`, as TCP
 * retransmission would once the path is back.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface SilentProxy {
  /** `postgres://…` of the target with host and port replaced by the proxy's. */
  url: string;
  /** Stop forwarding bytes; keep every socket open. */
  silence(): void;
  /** Forward again, delivering what was held back. */
  resume(): void;
  /** Connections accepted so far (for the tests' sanity checks). */
  readonly accepted: number;
  close(): Promise<void>;
}

interface Pipe {
  from: Socket;
  to: Socket;
  held: Buffer[];
}

/** Start a proxy to `target` (a `postgres://user:password@host:port/db` URL). */
export async function startSilentProxy(target: string): Promise<SilentProxy> {
  const upstream = new URL(target);
  let silent = false;
  let accepted = 0;
  const pipes = new Set<Pipe>();
  const sockets = new Set<Socket>();

  const forward = (pipe: Pipe) => {
    pipe.from.on('data', (chunk: Buffer) => {
      if (silent) pipe.held.push(chunk);
      else pipe.to.write(chunk);
    });
  };

  const server: Server = createServer((client) => {
    accepted++;
    const server = connect(Number(upstream.port), upstream.hostname);
    sockets.add(client).add(server);
    const up: Pipe = { from: client, to: server, held: [] };
    const down: Pipe = { from: server, to: client, held: [] };
    pipes.add(up).add(down);
    forward(up);
    forward(down);
    const end = () => {
      client.destroy();
      server.destroy();
      pipes.delete(up);
      pipes.delete(down);
      sockets.delete(client);
      sockets.delete(server);
    };
    // A close while silent is held back too: the far side would not have seen it either.
    const closeWhenAudible = () => {
      if (!silent) return end();
      const timer = setInterval(() => {
        if (!silent) {
          clearInterval(timer);
          end();
        }
      }, 20);
      timer.unref();
    };
    client.on('error', () => undefined).on('close', closeWhenAudible);
    server.on('error', () => undefined).on('close', closeWhenAudible);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = new URL(target);
  url.hostname = '127.0.0.1';
  url.port = String((server.address() as AddressInfo).port);

  return {
    url: url.href,
    get accepted() {
      return accepted;
    },
    silence() {
      silent = true;
    },
    resume() {
      silent = false;
      for (const pipe of pipes) {
        for (const chunk of pipe.held) pipe.to.write(chunk);
        pipe.held = [];
      }
    },
    async close() {
      silent = false;
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
