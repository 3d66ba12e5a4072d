/**
 * What every body we read must be: UTF-8 text, not compressed (issue 11, finding 11). A declared
 * `charset=utf-7` once turned `+ADw-script+AD4-` into `<script>` through the body parser's
 * decoder; nothing here needs another charset or a compressed body (a gzip bomb only costs us).
 *
 * @module
 */
import type { Request } from 'express';
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
