/**
 * `auth.secretScanning(options)`: the receiving end of GitHub's secret scanning partner program
 * (issue 17). GitHub POSTs a JSON array of `{token, type, url, source}` for every value of our
 * format it finds in public; this router verifies the signature before anything else, acts on
 * each token (`core/leaks.ts`) and answers the program's feedback list.
 *
 * Order of checks, each answered before the next runs: the two signature headers present and
 * well-formed (401), the body read raw within `bodyLimit` (413), the signature verified over the
 * exact bytes against the reporter's published keys (401; 503 when the key list cannot be had),
 * then and only then the JSON (400) and its size in entries (413). A request that fails any of
 * these has looked nothing up, changed nothing and emitted nothing.
 *
 * @module
 */
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { z } from 'zod';
import { AppTokensError, fieldPath } from '../core/errors.js';
import { actOnLeaks, type LeakAction, type LeakReport } from '../core/leaks.js';
import { ScannerKeys, isKeyIdentifier, type KeysFetch } from '../core/scanner-keys.js';
import type { AppTokensService } from '../core/service.js';
import { capBody, closeIfUnread } from './body.js';
import { sendProblem } from './problem.js';
import { sendSecretJson, toAppTokensError } from './responses.js';

/** GitHub's published key list for secret scanning reports. */
export const GITHUB_SECRET_SCANNING_KEYS_URL = 'https://api.github.com/meta/public_keys/secret_scanning';

/** Options of {@link AppTokens.secretScanning}. */
export interface SecretScanningOptions {
  /**
   * Where the reporter's public keys are published, in GitHub's format
   * (`{"public_keys":[{"key_identifier","key": PEM,"is_current"}]}`). Host configuration, never
   * request input. `https:` (`http:` only for localhost). Default: GitHub's,
   * `https://api.github.com/meta/public_keys/secret_scanning`.
   */
  keysUrl?: string;
  /**
   * What a live token reported leaked undergoes. `revoke` (default): it dies at once, like a
   * deleted token, with every access token it minted. `notify`: nothing changes. Both emit a
   * `token.leaked` audit event (to `onEvent` and the app's log).
   */
  onLeak?: LeakAction;
  /** The most entries one report may hold, 1–10000; more answers 413 and nothing happens. Default: 1000. */
  maxTokens?: number;
  /** Largest accepted body, bytes, 1024–16777216; larger answers 413. Default: 1048576 (1 MiB). */
  bodyLimit?: number;
  /** Escape hatches. */
  advanced?: {
    /** The fetch for the key list (a proxy's, a test double). Default: `globalThis.fetch`. */
    fetch?: KeysFetch;
    /** A key-list fetch is abandoned after this many ms, 100–30000. Default: 5000. */
    keysTimeout?: number;
    /**
     * Least time between two fetches of the key list, ms, 1000–3600000: an unknown key id refetches
     * the list at most this often. Default: 60000.
     */
    keysRefetchInterval?: number;
    /** A key list older than this is fetched again before use, ms, 60000–604800000. Default: 3600000. */
    keysMaxAge?: number;
  };
}

function isKeysUrl(value: string): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  if (url.username || url.password) return false;
  if (url.protocol === 'https:') return true;
  return url.protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
}

const optionsSchema = z
  .object({
    keysUrl: z
      .string({ error: 'must be a URL string' })
      .refine(isKeysUrl, { error: 'must be an https URL without credentials (http only for localhost)' })
      .default(GITHUB_SECRET_SCANNING_KEYS_URL),
    onLeak: z.enum(['revoke', 'notify'], { error: "must be 'revoke' or 'notify'" }).default('revoke'),
    maxTokens: z
      .number({ error: 'must be a number' })
      .int({ error: 'must be a whole number' })
      .min(1, { error: 'must be between 1 and 10000' })
      .max(10_000, { error: 'must be between 1 and 10000' })
      .default(1000),
    bodyLimit: z
      .number({ error: 'must be a number of bytes' })
      .int({ error: 'must be a whole number of bytes' })
      .min(1024, { error: 'must be between 1024 and 16777216 bytes' })
      .max(16_777_216, { error: 'must be between 1024 and 16777216 bytes' })
      .default(1_048_576),
    advanced: z
      .object({
        fetch: z.custom<KeysFetch>((v) => typeof v === 'function', { error: 'must be a function' }).optional(),
        keysTimeout: z.number().int().min(100, { error: 'must be between 100 and 30000 ms' }).max(30_000, { error: 'must be between 100 and 30000 ms' }).default(5000),
        keysRefetchInterval: z
          .number()
          .int()
          .min(1000, { error: 'must be between 1000 and 3600000 ms' })
          .max(3_600_000, { error: 'must be between 1000 and 3600000 ms' })
          .default(60_000),
        keysMaxAge: z
          .number()
          .int()
          .min(60_000, { error: 'must be between 60000 and 604800000 ms' })
          .max(604_800_000, { error: 'must be between 60000 and 604800000 ms' })
          .default(3_600_000),
      })
      .strict()
      .default({ keysTimeout: 5000, keysRefetchInterval: 60_000, keysMaxAge: 3_600_000 }),
  })
  .strict();

type ResolvedSecretScanningOptions = z.infer<typeof optionsSchema>;

/** Validate once, at construction; throws `invalid_options` naming the option. */
export function resolveSecretScanningOptions(input: unknown): ResolvedSecretScanningOptions {
  const result = optionsSchema.safeParse(input ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    const prefix = issue.path.length ? `${fieldPath(issue.path)}.` : '';
    const name = `${prefix}${issue.keys[0]}`;
    throw new AppTokensError('invalid_options', `secretScanning(): unknown option "${name}"`, { field: name });
  }
  const name = fieldPath(issue.path) || 'options';
  throw new AppTokensError('invalid_options', `secretScanning(): "${name}" ${issue.message}`, { field: name });
}

/** One entry of the program's report. Unknown members are ignored (the program may add some). */
const reportEntry = z.object({
  token: z.string({ error: 'must be a string' }).max(1024, { error: 'must be at most 1024 characters' }),
  type: z.string({ error: 'must be a string' }).max(256, { error: 'must be at most 256 characters' }),
  url: z.string({ error: 'must be a string' }).max(4096, { error: 'must be at most 4096 characters' }).nullish(),
  source: z.string({ error: 'must be a string' }).max(256, { error: 'must be at most 256 characters' }).nullish(),
});

/** The report: a JSON array of entries; more than `maxTokens` is 413. */
function parseReport(value: unknown, maxTokens: number): LeakReport[] {
  if (!Array.isArray(value)) {
    throw new AppTokensError('invalid_request', 'body: must be a JSON array of {token, type, url, source}', { status: 400, field: 'body' });
  }
  if (value.length > maxTokens) {
    throw new AppTokensError('payload_too_large', `body: at most ${maxTokens} entries per report (option "maxTokens"), got ${value.length}`, {
      field: 'body',
    });
  }
  return value.map((item, i) => {
    const parsed = reportEntry.safeParse(item);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const field = `body[${i}]${issue.path.length ? `.${fieldPath(issue.path)}` : ''}`;
      const message = issue.path.length === 0 ? 'must be an object {token, type, url, source}' : issue.message;
      throw new AppTokensError('invalid_request', `${field}: ${message}`, { status: 400, field });
    }
    const { token, type, url, source } = parsed.data;
    return { token, type, url: url ?? null, source: source ?? null };
  });
}

const KEY_ID_HEADER = 'github-public-key-identifier';
const SIGNATURE_HEADER = 'github-public-key-signature';
/** Base64 of a DER ECDSA P-256 signature (8–72 bytes), padding optional. */
const SIGNATURE = /^[A-Za-z0-9+/]{8,128}={0,2}$/;
const UTF8 = new TextDecoder('utf-8', { fatal: true });

function unauthorized(message: string, field: string): AppTokensError {
  return new AppTokensError('invalid_signature', message, { field });
}

/** The router behind {@link AppTokens.secretScanning}: serves `POST /` where the host mounts it. */
export function secretScanningRouter(service: AppTokensService, input: SecretScanningOptions | undefined): Router {
  const options = resolveSecretScanningOptions(input);
  const { advanced } = options;
  const keys = new ScannerKeys({
    url: options.keysUrl,
    fetch: advanced.fetch ?? ((url, init) => globalThis.fetch(url, init)),
    timeout: advanced.keysTimeout,
    refetchInterval: advanced.keysRefetchInterval,
    maxAge: advanced.keysMaxAge,
    nowMs: () => service.options.advanced.now().getTime(),
    log: service.log,
  });
  const challenge = `Github-Public-Key-Signature realm="${service.options.realm}"`;
  const rawBody = capBody(express.raw({ type: () => true, limit: options.bodyLimit, inflate: false }), options.bodyLimit);
  const router = express.Router();

  router.use((_req: Request, res: Response, next: NextFunction) => {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    if (service.isReady) return next();
    service.ready().then(
      () => next(),
      () => next(new AppTokensError('unavailable', 'the authorization server is starting or unavailable')),
    );
  });

  router.post(
    '/',
    // The headers first: a request without them is refused before its body is read.
    (req: Request, _res: Response, next: NextFunction) => {
      const keyId = req.headers[KEY_ID_HEADER];
      const signature = req.headers[SIGNATURE_HEADER];
      if (typeof keyId !== 'string' || keyId.trim() === '') return next(unauthorized('Github-Public-Key-Identifier: required', 'Github-Public-Key-Identifier'));
      if (typeof signature !== 'string' || signature.trim() === '') return next(unauthorized('Github-Public-Key-Signature: required', 'Github-Public-Key-Signature'));
      if (!isKeyIdentifier(keyId.trim())) return next(unauthorized('Github-Public-Key-Identifier: not a key identifier', 'Github-Public-Key-Identifier'));
      if (!SIGNATURE.test(signature.trim())) return next(unauthorized('Github-Public-Key-Signature: not a base64 signature', 'Github-Public-Key-Signature'));
      next();
    },
    rawBody,
    async (req: Request, res: Response, next: NextFunction) => {
      try {
        const keyId = (req.headers[KEY_ID_HEADER] as string).trim();
        const signature = Buffer.from((req.headers[SIGNATURE_HEADER] as string).trim(), 'base64');
        const body: Buffer = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
        // Verification before anything else: an unverified report looks nothing up.
        if (!(await keys.verify(keyId, signature, body))) {
          throw unauthorized('Github-Public-Key-Signature: does not verify with the key named by Github-Public-Key-Identifier', 'Github-Public-Key-Signature');
        }
        let value: unknown;
        try {
          value = JSON.parse(UTF8.decode(body));
        } catch {
          throw new AppTokensError('invalid_request', 'body: not valid UTF-8 JSON', { status: 400, field: 'body' });
        }
        const feedback = await actOnLeaks(service, parseReport(value, options.maxTokens), options.onLeak);
        // Feedback carries token hashes: no-store and no ETag, like every body derived from a secret.
        sendSecretJson(res, 200, feedback);
      } catch (error) {
        next(error);
      }
    },
  );

  router.all('/', (_req: Request, res: Response) => {
    res.setHeader('Allow', 'POST');
    sendProblem(res, new AppTokensError('method_not_allowed', 'method: only POST is served here'));
  });

  router.use((error: unknown, req: Request, res: Response, _next: NextFunction) => {
    const e = toAppTokensError(error, service.log);
    // Refused before its body was read (no signature headers): close, do not drain it.
    closeIfUnread(req, res);
    sendProblem(res, e, { challenge: e.status === 401 ? challenge : undefined });
  });
  return router;
}
