/** Dates, durations, the downloads of a secret and the JWT decoding of the token debugger. */

const DATE = new Intl.DateTimeFormat('en', { dateStyle: 'medium', timeStyle: 'short' });

export function formatDate(iso: string | null | undefined, none = '—'): string {
  if (!iso) return none;
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? none : DATE.format(d);
}

/** `2 d 3 h`, `5 min 12 s`: the two largest units of a non-negative number of seconds. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const units: Array<[string, number]> = [
    ['d', 86_400],
    ['h', 3_600],
    ['min', 60],
    ['s', 1],
  ];
  const parts: string[] = [];
  let rest = s;
  for (const [name, size] of units) {
    const n = Math.floor(rest / size);
    rest -= n * size;
    if (n > 0 || (parts.length === 0 && size === 1)) parts.push(`${n} ${name}`);
    if (parts.length === 2) break;
  }
  return parts.join(' ');
}

/** What a download of a secret holds: the same variables the API's `?format=env|postman` writes. */
export interface SecretFile {
  appName: string;
  tokenName: string;
  tokenId: string;
  clientId: string;
  secret: string;
  issuer: string;
  tokenUrl: string;
  expirationDate: string | null;
}

/** A file-name-safe slug, as the API names its downloads (`src/http/downloads.ts`). */
export function slug(name: string): string {
  return (
    name
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 40) || 'app'
  );
}

const vars = (f: SecretFile): Array<[string, string]> => [
  ['CLIENT_ID', f.clientId],
  ['CLIENT_SECRET', f.secret],
  ['ISSUER', f.issuer],
  ['TOKEN_URL', f.tokenUrl],
];

export const fileBase = (f: SecretFile) => `${slug(f.appName)}-${f.tokenId}`;

/** `?format=env`: single-quoted values, read alike by `sh` and dotenv (ours never hold a quote). */
export function envFile(f: SecretFile): string {
  return `${vars(f)
    .map(([k, v]) => `${k}='${v}'`)
    .join('\n')}\n`;
}

/** `?format=postman`: a Postman environment with the secret typed `secret`. */
export function postmanFile(f: SecretFile): string {
  return JSON.stringify({
    id: f.tokenId,
    name: `${f.appName} (${f.tokenName})`,
    values: vars(f).map(([key, value]) => ({ key, value, type: key === 'CLIENT_SECRET' ? 'secret' : 'default', enabled: true })),
    _postman_variable_scope: 'environment',
  });
}

/** A plain-text note for a password manager. */
export function textFile(f: SecretFile): string {
  return [
    `App: ${f.appName}`,
    `Token: ${f.tokenName} (${f.tokenId})`,
    `Client ID: ${f.clientId}`,
    `Client secret: ${f.secret}`,
    `Expires: ${f.expirationDate ?? 'never'}`,
    `Issuer: ${f.issuer}`,
    `Token URL: ${f.tokenUrl}`,
    '',
  ].join('\n');
}

/** A client_credentials request reading the downloaded .env, so the snippet never holds the secret. */
export function curlSnippet(f: SecretFile): string {
  return [`set -a; . ./${fileBase(f)}.env; set +a`, `curl -s -X POST "$TOKEN_URL" \\`, `  -u "$CLIENT_ID:$CLIENT_SECRET" \\`, `  -d grant_type=client_credentials`].join('\n');
}

/** Save `text` as a file, from memory (a blob: URL revoked at once), never through a server URL. */
export function download(name: string, type: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.rel = 'noopener';
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1_000);
}

function base64UrlDecode(part: string): string {
  const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
  const binary = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  return new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)));
}

export type Decoded =
  | { kind: 'jwt'; header: Record<string, unknown>; claims: Record<string, unknown> }
  | { kind: 'api_token' }
  | { kind: 'invalid'; reason: string };

/** Decode (never verify) a JWT's header and claims; recognise our opaque API tokens by shape. */
export function decodeToken(raw: string): Decoded {
  const token = raw.trim();
  if (/^[a-z0-9]{2,16}_[A-Za-z0-9_]+$/.test(token) && !token.includes('.')) return { kind: 'api_token' };
  const parts = token.split('.');
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]*$/.test(p))) {
    return { kind: 'invalid', reason: 'Not a JWT (three base64url parts separated by dots) nor an API token.' };
  }
  try {
    const header = JSON.parse(base64UrlDecode(parts[0]!)) as unknown;
    const claims = JSON.parse(base64UrlDecode(parts[1]!)) as unknown;
    if (typeof header !== 'object' || header === null || typeof claims !== 'object' || claims === null || Array.isArray(claims)) {
      return { kind: 'invalid', reason: 'The header or the claims are not a JSON object.' };
    }
    return { kind: 'jwt', header: header as Record<string, unknown>, claims: claims as Record<string, unknown> };
  } catch {
    return { kind: 'invalid', reason: 'The header or the claims are not base64url-encoded JSON.' };
  }
}

export interface ExpiryPreset {
  value: string;
  label: string;
  seconds: number | null;
}

const DAY = 86_400;

/** The choices of "Expires in", within `apiTokenTtl`: 7, 30, 90 days, a date, never where allowed. */
export function expiryPresets(ttl: { default: number | null; max: number }): ExpiryPreset[] {
  const out: ExpiryPreset[] = [7, 30, 90]
    .filter((d) => d * DAY <= ttl.max)
    .map((d) => ({ value: `${d}d`, label: `${d} days`, seconds: d * DAY }));
  out.push({ value: 'date', label: 'On a date…', seconds: null });
  // Omitting expiresIn means the server's default; that is "never" only where the default is none.
  if (ttl.default === null) out.push({ value: 'never', label: 'Never', seconds: null });
  return out;
}

export function defaultPreset(presets: ExpiryPreset[]): string {
  return presets.find((p) => p.value === '90d')?.value ?? presets.filter((p) => p.seconds !== null).at(-1)?.value ?? presets[0]!.value;
}

/**
 * `expiresIn` for a preset, or for the end of `date` (YYYY-MM-DD, local time); `undefined` for
 * never; a string: what is wrong.
 */
export function expiresIn(preset: string, date: string, ttl: { max: number }, now = Date.now()): number | undefined | string {
  if (preset === 'never') return undefined;
  if (preset === 'date') {
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
    if (!m) return 'Choose an expiration date.';
    const end = new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]), 23, 59, 59).getTime();
    const seconds = Math.floor((end - now) / 1000);
    if (seconds < 60) return 'The expiration date must be in the future.';
    if (seconds > ttl.max) return `The expiration date must be within ${Math.floor(ttl.max / DAY)} days.`;
    return seconds;
  }
  const days = /^(\d+)d$/.exec(preset);
  return days ? Number(days[1]) * DAY : 'Choose when the token expires.';
}

/** Custom claims as typed: a JSON object (or nothing), checked before sending. */
export function parseClaims(text: string): { ok: true; value: Record<string, unknown> } | { ok: false; error: string } {
  if (text.trim() === '') return { ok: true, value: {} };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { ok: false, error: `Custom claims: not valid JSON (${(e as Error).message}).` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, error: 'Custom claims: must be a JSON object, such as {"plan": "pro"}.' };
  if (new TextEncoder().encode(JSON.stringify(value)).length > 4096) return { ok: false, error: 'Custom claims: at most 4096 bytes of JSON.' };
  return { ok: true, value: value as Record<string, unknown> };
}

const RELATIVE = new Intl.RelativeTimeFormat('en', { numeric: 'auto' });

/** `3 minutes ago`, `in 2 days`, `yesterday`: the largest unit that fits; `none` without a date. */
export function relativeTime(iso: string | null | undefined, none = 'never', now = Date.now()): string {
  if (!iso) return none;
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return none;
  const seconds = Math.round((t - now) / 1000);
  const units: Array<[Intl.RelativeTimeFormatUnit, number]> = [
    ['year', 365 * 86_400],
    ['month', 30 * 86_400],
    ['day', 86_400],
    ['hour', 3_600],
    ['minute', 60],
  ];
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size) return RELATIVE.format(Math.trunc(seconds / size), unit);
  }
  return Math.abs(seconds) < 45 ? (seconds <= 0 ? 'just now' : 'in a moment') : RELATIVE.format(Math.sign(seconds), 'minute');
}
