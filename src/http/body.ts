/**
 * What every body we read must be: UTF-8 text, not compressed (issue 11, finding 11). A declared
 * `charset=utf-7` once turned `+ADw-script+AD4-` into `<script>` through the body parser's
 * decoder; nothing here needs another charset or a compressed body (a gzip bomb only costs us).
 *
 * @module
 */
import type { Request, RequestHandler, Response } from 'express';
import { AppTokensError } from '../core/errors.js';
import { printable } from '../core/scopes.js';

/**
 * Every `charset=` in the header, inside quoted parameter values too: body-parser reads the first
 * real parameter, which a first match could miss (`foo="a;charset=utf-8"; charset=utf-7`), so
 * all of them must say UTF-8.
 */
const CHARSET = /charset\s*=\s*"?([^";\s]*)/gi;

/**
 * `undefined` when the body (if any) declares no charset or UTF-8, and no `Content-Encoding` other
 * than `identity`; else the 415 to answer, with `code` (`invalid_request` at the OAuth endpoints,
 * `unsupported_media_type` at the management API) and the header as `field`.
 */
export function bodyEncodingError(req: Request, code: 'invalid_request' | 'unsupported_media_type'): AppTokensError | undefined {
  const type = req.headers['content-type'];
  if (type !== undefined) {
    const charset = [...type.matchAll(CHARSET)].map((m) => m[1]!).find((c) => !/^utf-?8$/i.test(c));
    if (charset !== undefined) {
      return new AppTokensError(code, `Content-Type: charset '${printable(charset)}' is not supported; send UTF-8`, {
        status: 415,
        field: 'Content-Type',
      });
    }
  }
  const encoding = req.headers['content-encoding'];
  if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') {
    return new AppTokensError(code, 'Content-Encoding: compressed bodies are not accepted; send identity', {
      status: 415,
      field: 'Content-Encoding',
    });
  }
  return undefined;
}

/** The 413 of a body over `limit` bytes. */
function payloadTooLarge(limit: number): AppTokensError {
  return new AppTokensError('payload_too_large', `body: larger than ${limit} bytes`, { status: 413, field: 'body' });
}

/**
 * Close the connection once the answer is sent. Without this Node reads the rest of an unread
 * body to keep the connection alive: a client could make us swallow any number of bytes.
 */
function closeAfterAnswer(res: Response): void {
  if (!res.headersSent) res.setHeader('Connection', 'close');
  else if (res.writableFinished) res.socket?.destroy();
  else res.once('finish', () => res.socket?.destroy());
}

/**
 * When a request is answered without its body having been read (refused before it), close the
 * connection after the answer rather than let Node read the rest, which a chunked body can make
 * endless.
 */
export function closeIfUnread(req: Request, res: Response): void {
  if (req.readableEnded) return;
  if (req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0) closeAfterAnswer(res);
}

/**
 * The 413 to answer when the request declares a `Content-Length` above `limit`, before a byte of
 * it is read (and the connection is set to close after the answer); else `undefined`. A body a
 * host parser already read is not ours to refuse.
 */
export function declaredTooLarge(req: Request, res: Response, limit: number): AppTokensError | undefined {
  if (req.readableEnded) return undefined;
  const declared = req.headers['content-length'];
  if (declared === undefined || !(Number(declared) > limit)) return undefined;
  closeAfterAnswer(res);
  return payloadTooLarge(limit);
}

/**
 * `parser` (an `express.json()`/`text()`/`urlencoded()`/`raw()` middleware) under a hard `limit` in
 * bytes that holds before and while the body is read (issue 22, item 6). body-parser refuses an
 * oversized body only after reading all of it ("read off entire request", 4–6.5 s for 50 MB, and
 * never for a chunked body that does not end). Here a declared `Content-Length` above the limit is
 * refused before anything is read, and a chunked body is refused the moment it passes the limit;
 * either answer closes the connection instead of draining it. `next` is called at most once.
 *
 * @param limit - bytes; give the parser the same limit.
 */
export function capBody(parser: RequestHandler, limit: number): (req: Request, res: Response, next: (error?: unknown) => void) => void {
  return (req, res, next) => {
    let done = false;
    const once = (error?: unknown) => {
      if (done) return;
      done = true;
      next(error);
    };
    const declared = declaredTooLarge(req, res, limit);
    if (declared) return once(declared);
    const listening = req.listenerCount('data');
    parser(req, res, once);
    // The parser attaches its reader synchronously when it reads the body; a chunked body (no
    // length to refuse up front) is counted ahead of it, so that we answer first and stop.
    if (done || req.headers['content-length'] !== undefined || req.listenerCount('data') === listening) return;
    let received = 0;
    const count = (chunk: Buffer | string) => {
      received += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
      if (received <= limit) return;
      req.off('data', count);
      closeAfterAnswer(res);
      once(payloadTooLarge(limit));
    };
    req.prependListener('data', count);
    req.once('end', () => req.off('data', count));
  };
}
