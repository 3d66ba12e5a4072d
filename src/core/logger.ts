/**
 * Logging with redaction. The `logger` option takes any pino-compatible logger (`logger.warn(obj,
 * msg)`); every line the library writes goes through {@link redact} first, so that no secret value,
 * access token, hash or Authorization header can reach a log, whatever a message or cause holds.
 *
 * @module
 */

/** The subset of pino's interface the library uses. */
export interface Logger {
  debug?(obj: object, msg?: string): void;
  info?(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** Field names whose values are never logged. */
const SECRET_KEYS = /^(authorization|cookie|client_secret|secret|password|token|access_token|refresh_token|subject_token|actor_token|value|hash|private_?jwk|d|p|q|dp|dq|qi|key_?encryption_?secret)$/i;
/** A JWS compact serialisation (header.payload.signature), e.g. an access token. */
const JWT = /eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*/g;
/** Long runs of base62/base64url: API-token values and their like (prefix_ + 49 chars). */
const SECRET_VALUE = /[a-z][a-z0-9]{1,15}_[0-9A-Za-z]{40,}/g;
/** Credentials of an HTTP authentication scheme written out in a message. */
const SCHEME_CREDENTIALS = /\b(Basic|Bearer)(\s+|%20)[A-Za-z0-9._~+/=%-]+/gi;
/** 64 hex characters: a SHA-256, such as a stored token hash. */
const HEX_DIGEST = /\b[0-9a-f]{64}\b/g;

/** A copy of `value` with every secret-looking member and substring replaced. */
export function redact(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') {
    return value
      .replace(SCHEME_CREDENTIALS, '$1 [redacted]')
      .replace(JWT, '[redacted jwt]')
      .replace(SECRET_VALUE, '[redacted secret]')
      .replace(HEX_DIGEST, '[redacted hash]');
  }
  if (value instanceof Error) {
    return { name: value.name, message: redact(value.message, depth + 1), ...(value.cause !== undefined && depth < 4 ? { cause: redact(value.cause, depth + 1) } : {}) };
  }
  if (typeof value !== 'object' || value === null) return value;
  // Never hand back an unvisited object: what is too deep to scrub is not logged.
  if (depth > 6) return '[redacted: too deep]';
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEYS.test(k) ? '[redacted]' : redact(v, depth + 1);
  return out;
}

/** A console-backed logger: warnings and errors only, one line each. */
const consoleLogger: Logger = {
  warn: (obj, msg) => console.warn(`[express-app-tokens] ${msg ?? ''}`, JSON.stringify(obj)),
  error: (obj, msg) => console.error(`[express-app-tokens] ${msg ?? ''}`, JSON.stringify(obj)),
};

/** Wrap a host logger (or the console) so that everything written is redacted. */
export function safeLogger(logger: Logger | undefined): Required<Logger> {
  const target = logger ?? consoleLogger;
  const write = (level: keyof Logger) => (obj: object, msg?: string) => {
    const fn = target[level];
    if (!fn) return;
    try {
      fn.call(target, redact(obj) as object, msg === undefined ? undefined : (redact(msg) as string));
    } catch {
      // A failing logger must not fail a request.
    }
  };
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') };
}
