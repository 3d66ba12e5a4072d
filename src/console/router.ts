/**
 * `auth.console()`: the admin web page. This router only serves the page and its prebuilt assets
 * (`src/console/browser/`, bundled by `npm run build`); everything the page does goes through the
 * public HTTP contract of `routes()` (the token endpoint, `/apps…`, `/me/…`), so it has no
 * endpoint of its own and no more power than the signed-in principal.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import express, { type Request, type Response, type Router } from 'express';
import { z } from 'zod';
import { AppTokensError, fieldPath } from '../core/errors.js';
import type { AppTokensService } from '../core/service.js';
import { endpointUrl } from '../http/routes/well-known.js';
import { loadAssets, type ConsoleAsset, type ConsoleAssets } from './assets.js';

/** Options of {@link AppTokens.console}. */
export interface ConsoleOptions {
  /**
   * Where the browser reaches `auth.routes()`: a path, absolute (`/auth`) or relative to the
   * console's own URL (`../auth`, for a console behind a proxy that adds a path prefix). Never
   * another origin: the page's CSP allows `connect-src 'self'` only. Default: the path of the
   * `issuer` (`/` for `https://api.example.com`, `/auth` for `https://api.example.com/auth`).
   */
  apiBase?: string;
  /**
   * The CSP nonce of each page, when the host makes one per response already (helmet users:
   * `(req, res) => res.locals.cspNonce`). At least 16 base64 characters. Default: a fresh random
   * nonce per response.
   */
  nonce?: (req: Request, res: Response) => string;
  /**
   * CSP `frame-ancestors` sources (`'self'`, `https://admin.example.com`). Default: `["'none'"]`:
   * the console cannot be framed (and `X-Frame-Options: DENY` is sent).
   */
  frameAncestors?: string[];
  /** The page title and heading. Default: `App tokens`. */
  title?: string;
}

/** What the page learns from the server, as JSON in the page (never a secret). */
export interface ConsoleConfig {
  apiBase: string;
  /** `host`: the host's session (`management.resolvePrincipal`); `bearer`: the sign-in form. */
  session: 'host' | 'bearer';
  title: string;
  issuer: string;
  tokenUrl: string;
  /** The scope catalogue. */
  scopes: string[];
  /** `apiTokenTtl`: default (null: no expiry) and maximum, seconds. */
  apiTokenTtl: { default: number | null; max: number };
}

const NONCE = /^[A-Za-z0-9+/_-]{16,}={0,2}$/;
/** A CSP source expression we accept for frame-ancestors: a keyword, a scheme, or a host source. */
const FRAME_SOURCE = /^(?:'self'|'none'|https?:|https?:\/\/(?:\*\.)?[A-Za-z0-9.-]+(?::\d{1,5})?)$/;

const optionsSchema = z
  .object({
    apiBase: z
      .string({ error: 'must be a string' })
      .max(512, { error: 'must be at most 512 characters' })
      .refine((v) => !/^[a-z][a-z0-9+.-]*:|^\/\/|\\/i.test(v), { error: "must be a path ('/auth' or '../auth'), not a URL of another origin" })
      .refine((v) => /^[A-Za-z0-9._~!$&'()*+,;=:@/%-]*$/.test(v) && !/[?#]/.test(v), { error: 'must be a path without query, fragment or spaces' })
      .optional(),
    nonce: z.custom<(req: Request, res: Response) => string>((v) => typeof v === 'function', { error: 'must be a function (req, res) => string' }).optional(),
    frameAncestors: z
      .array(z.string().regex(FRAME_SOURCE, { error: "must be a CSP source such as 'self' or https://admin.example.com" }), {
        error: 'must be an array of CSP sources',
      })
      .min(1, { error: "must list at least one source ('none' forbids framing)" })
      .optional(),
    title: z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' }).max(100, { error: 'must be at most 100 characters' }).optional(),
  })
  .strict();

/** @throws AppTokensError `invalid_options` naming `console.<option>`. */
function resolveConsoleOptions(options: unknown): Required<Omit<ConsoleOptions, 'nonce' | 'apiBase'>> & Pick<ConsoleOptions, 'nonce' | 'apiBase'> {
  const parsed = optionsSchema.safeParse(options ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const path = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0]!] : issue.path;
    const field = fieldPath(['console', ...path]);
    const message = issue.code === 'unrecognized_keys' ? 'is not an option' : issue.message;
    throw new AppTokensError('invalid_options', `"${field}" ${message}`, { field });
  }
  return { frameAncestors: ["'none'"], title: 'App tokens', ...parsed.data };
}

/** JSON that is safe inside a `<script type="application/json">` element (no `</script>`, no `<!--`). */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function send(res: Response, asset: ConsoleAsset, req: Request): void {
  const gzip = /\bgzip\b/.test(req.headers['accept-encoding'] ?? '');
  const body = gzip ? asset.gzip : asset.body;
  // The name carries the content's hash: a new build is a new name, so this copy never changes.
  res.setHeader('Cache-Control', 'public, max-age=31536000, immutable');
  res.setHeader('Content-Type', asset.type);
  res.setHeader('Vary', 'Accept-Encoding');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
  if (gzip) res.setHeader('Content-Encoding', 'gzip');
  res.setHeader('Content-Length', body.length);
  res.status(200).end(req.method === 'HEAD' ? undefined : body);
}

/** The router `auth.console()` returns. */
export function consoleRouter(service: AppTokensService, options?: ConsoleOptions): Router {
  const opts = resolveConsoleOptions(options);
  const { issuer } = service.options;
  const ttl = service.options.apiTokenTtl;
  const config: ConsoleConfig = {
    apiBase: opts.apiBase ?? new URL(issuer).pathname,
    session: service.options.management.resolvePrincipal ? 'host' : 'bearer',
    title: opts.title,
    issuer,
    tokenUrl: endpointUrl(issuer, '/oauth/token'),
    scopes: [...service.options.scopes],
    apiTokenTtl: { default: ttl.default, max: ttl.max },
  };
  const configJson = scriptJson(config);
  let assets: ConsoleAssets | undefined;
  let missing: Error | undefined;
  try {
    assets = loadAssets();
  } catch (error) {
    missing = error as Error;
    service.log.error({}, `auth.console(): ${missing.message}`);
  }

  const router = express.Router();
  router.use((req, res, next) => {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      res.status(405).type('text/plain').send('use GET');
      return;
    }
    if (assets === undefined) {
      res.status(503).type('text/plain').send(`console unavailable: ${missing?.message ?? 'assets missing'}`);
      return;
    }
    next();
  });

  router.get('/assets/:name', (req, res) => {
    const asset = assets!.byName.get(String(req.params.name));
    if (asset === undefined) {
      res.status(404).type('text/plain').send('not found');
      return;
    }
    send(res, asset, req);
  });

  router.get('/', (req, res) => {
    // Assets are linked relative to the page, so the page's URL must end with a slash; the
    // redirect is relative too, so it works under any mount path and behind a rewriting proxy.
    const url = new URL(req.originalUrl, 'http://x');
    if (!url.pathname.endsWith('/')) {
      const last = url.pathname.slice(url.pathname.lastIndexOf('/') + 1);
      res.setHeader('Cache-Control', 'no-store');
      res.redirect(308, `${last}/${url.search}`);
      return;
    }
    const nonce = opts.nonce ? opts.nonce(req, res) : randomBytes(18).toString('base64');
    if (typeof nonce !== 'string' || !NONCE.test(nonce)) {
      service.log.error({}, 'console.nonce returned something that is not a nonce of at least 16 base64 characters');
      res.status(500).type('text/plain').send('console misconfigured: console.nonce');
      return;
    }
    const csp = [
      "default-src 'none'",
      `script-src 'nonce-${nonce}'`,
      "style-src 'self'",
      "img-src 'self' data:",
      "connect-src 'self'",
      "base-uri 'none'",
      "form-action 'none'",
      `frame-ancestors ${opts.frameAncestors.join(' ')}`,
    ].join('; ');
    res.setHeader('Content-Security-Policy', csp);
    if (opts.frameAncestors.length === 1 && opts.frameAncestors[0] === "'none'") res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
    res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
    res.setHeader('Permissions-Policy', 'camera=(), microphone=(), geolocation=()');
    const { script, style } = assets!;
    const title = escapeHtml(opts.title);
    res
      .status(200)
      .type('text/html; charset=utf-8')
      .send(
        `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="color-scheme" content="light dark">
<title>${title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="assets/${style.name}">
<script type="application/json" id="console-config">${configJson}</script>
<script type="module" src="assets/${script.name}" nonce="${escapeHtml(nonce)}"></script>
</head>
<body>
<div id="root"><noscript>This console needs JavaScript.</noscript></div>
</body>
</html>
`,
      );
  });

  router.use((_req, res) => {
    res.status(404).type('text/plain').send('not found');
  });
  return router;
}
