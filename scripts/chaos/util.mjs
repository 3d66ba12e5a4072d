/**
 * Small helpers of the chaos harness: loopback ports, bounded waits, one HTTP call with a deadline.
 */
import http from 'node:http';
import { createServer } from 'node:net';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Poll `test` (sync or async) every 100 ms until it is truthy; throws after `ms`. Bounded. */
export async function waitFor(test, ms, what) {
  const until = Date.now() + ms;
  for (;;) {
    if (await test()) return;
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(100);
  }
}

/**
 * One request to `base` (http://127.0.0.1:port). Never rejects: resolves
 * `{status, headers, body, json, ms, error?}` where status 0 means no answer: `error` is
 * 'timeout' (no answer within `timeoutMs`) or the network error's code. No keep-alive: a killed
 * instance must not leave a reused socket behind.
 */
export function call(base, method, path, { headers = {}, body, timeoutMs = 10_000 } = {}) {
  const url = new URL(path, base);
  const started = performance.now();
  return new Promise((resolve) => {
    let settled = false;
    const done = (result) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ...result, ms: Math.round(performance.now() - started) });
    };
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        method,
        path: `${url.pathname}${url.search}`,
        agent: false,
        headers: { ...headers, ...(body !== undefined ? { 'Content-Length': Buffer.byteLength(body) } : {}) },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          done({ status: res.statusCode ?? 0, headers: res.headers, body: text, json });
        });
        res.on('error', (error) => done({ status: 0, headers: {}, body: '', error: error.code ?? error.message }));
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      done({ status: 0, headers: {}, body: '', error: 'timeout' });
    }, timeoutMs);
    req.on('error', (error) => done({ status: 0, headers: {}, body: '', error: error.code ?? error.message }));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

export const form = (o) => new URLSearchParams(o).toString();
export const basic = (id, secret) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
export const bearer = (t) => ({ Authorization: `Bearer ${t}` });
export const jsonHeaders = (t) => ({ ...bearer(t), 'Content-Type': 'application/json' });
