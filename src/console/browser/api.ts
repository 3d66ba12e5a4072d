/**
 * The one door to the server: the public HTTP contract of `routes()`, under `apiBase`. A bearer
 * session sends its access token (held in memory only); a host session sends the host's cookies
 * (same origin) and `Content-Type: application/json` on every POST and PATCH, the CSRF defence the
 * management API enforces.
 */

export interface TokenView {
  id: string;
  appId: string;
  name: string;
  hint: string;
  scopes: string[] | null;
  creationDate: string;
  expirationDate: string | null;
  lastUsedDate: string | null;
  status: 'active' | 'retiring' | 'expired';
  /** Issue 13; absent on older servers. */
  expiringSoon?: boolean;
}

export interface AppView {
  id: string;
  clientId: string;
  tenantId: string;
  name: string;
  description: string | null;
  scopes: string[];
  unknownScopes: string[];
  customClaims: Record<string, unknown>;
  creationDate: string;
  updateDate: string;
  /** Issue 13 (roles); absent on older servers. */
  roles?: string[];
  effectiveScopes?: string[];
  unknownRoles?: string[];
  tokenSummary?: { active: number; expiringSoon: number; lastUsedDate: string | null };
  /** Issue 24: usage counts of the last 24 hours and 30 days; absent on older servers. */
  usage?: { requests24h: number; refusals24h: number; requests30d: number; refusals30d: number };
  /** Issue 15 (private_key_jwt, DPoP); absent on older servers. */
  tokenEndpointAuthMethod?: 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';
  jwksUri?: string | null;
  dpopBoundAccessTokens?: boolean;
}

/** Issue 21: failed authentications naming an app (they throttle their sources, never the app). */
export interface LockoutView {
  failures: number;
  lastFailureAt: string | null;
  throttledSources: number;
  until: string | null;
}

export interface AppDetails extends AppView {
  tokens: TokenView[];
  tokensNextCursor: string | null;
  /** Issue 21; `null` when the server's lockout is off, absent on older servers. */
  lockout?: LockoutView | null;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export interface AuditEvent {
  id: string;
  type: string;
  outcome: 'success' | 'failure';
  tenantId: string;
  appId: string | null;
  tokenId: string | null;
  actorId: string | null;
  at: string;
  data: Record<string, unknown>;
}

export interface Role {
  name: string;
  scopes: string[];
  description: string | null;
}

/** Who the management API takes the caller for (`GET /me/principal`, any signed-in caller about itself). */
export interface Principal {
  tenantId: string;
  /** The host user (host session) or the client id (bearer): who audit events name. */
  actorId: string | null;
  /** Held scopes, wildcards included; null: unrestricted. */
  scopes: string[] | null;
  /** The declared roles; the server sends them only to a caller holding apps:read (empty here then). */
  roles: Role[];
}

/** Why the token debugger's token is not active (`POST /me/introspect`; never said of another tenant's token). */
export type InactiveReason = 'expired' | 'revoked' | 'app_deleted' | 'unknown_key' | 'invalid_signature' | 'other_issuer' | 'malformed';

export interface Issued {
  token: TokenView;
  value: string;
}

export type Introspection =
  | { active: false; reason?: InactiveReason }
  | { active: true; scope: string; client_id: string; sub: string; iss: string; aud?: string | string[]; exp?: number; iat?: number; jti?: string; tenant_id: string; api_token_id: string };

/** A refused request: the server's words (problem details `detail`, or OAuth `error_description`). */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string | undefined,
    readonly field?: string,
  ) {
    super(message);
  }
}

export interface BearerSession {
  kind: 'bearer';
  accessToken: string;
  /** ms since the epoch. */
  expiresAt: number;
}

export type Session = BearerSession | { kind: 'host' };

async function errorOf(res: Response): Promise<ApiError> {
  let body: Record<string, unknown> = {};
  try {
    if (/json/.test(res.headers.get('content-type') ?? '')) body = (await res.json()) as Record<string, unknown>;
  } catch {
    // Not JSON after all: the status says enough.
  }
  const text =
    (typeof body.detail === 'string' && body.detail) ||
    (typeof body.error_description === 'string' && body.error_description) ||
    (res.status === 404 ? 'Not found.' : res.status >= 500 ? 'The server could not answer; try again.' : `The request was refused (HTTP ${res.status}).`);
  const code = typeof body.code === 'string' ? body.code : typeof body.error === 'string' ? body.error : undefined;
  if (res.status === 429) return new ApiError(throttled(res.headers.get('retry-after')), res.status, code);
  return new ApiError(text, res.status, code, typeof body.field === 'string' ? body.field : undefined);
}

/**
 * A 429 in words: what happened and when it ends, as a time of day ("retry in 886 s" is the
 * server's word for programs).
 */
export function throttled(retryAfter: string | null, now = Date.now()): string {
  const seconds = retryAfter !== null && /^\d{1,9}$/.test(retryAfter) ? Number(retryAfter) : null;
  if (seconds === null) return 'Too many attempts were made from this address. Wait a few minutes, then try again.';
  const until = new Date(now + seconds * 1000);
  const at = until.toLocaleTimeString('en', { hour: '2-digit', minute: '2-digit' });
  const wait = seconds < 90 ? `${seconds} seconds` : `${Math.ceil(seconds / 60)} minutes`;
  return `Too many attempts were made from this address, so it is blocked for now. Try again after ${at} (in about ${wait}).`;
}

export class Api {
  readonly base: URL;
  #session: Session | null = null;
  /** Called when the server no longer accepts the session (401): back to the sign-in form. */
  onUnauthorized: () => void = () => undefined;

  constructor(apiBase: string) {
    this.base = new URL(apiBase.endsWith('/') ? apiBase : `${apiBase}/`, window.location.href);
  }

  set session(session: Session | null) {
    this.#session = session;
  }

  #url(path: string): URL {
    return new URL(path.replace(/^\//, ''), this.base);
  }

  /** client_credentials (RFC 6749 §4.4) with client_secret_post; no scope: all the app holds. */
  async signIn(clientId: string, clientSecret: string): Promise<{ session: BearerSession; scopes: string[] }> {
    const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret });
    const res = await fetch(this.#url('oauth/token'), {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
      body: form,
      credentials: 'omit',
      cache: 'no-store',
    });
    if (!res.ok) {
      const error = await errorOf(res);
      if (error.code === 'invalid_client') throw new ApiError('The client ID or client secret is not right.', res.status, error.code);
      throw error;
    }
    const body = (await res.json()) as { access_token: string; expires_in: number; scope?: string };
    return {
      session: { kind: 'bearer', accessToken: body.access_token, expiresAt: Date.now() + body.expires_in * 1000 },
      scopes: body.scope ? body.scope.split(' ') : [],
    };
  }

  async call<T>(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, body?: unknown): Promise<T> {
    const session = this.#session;
    if (session === null) throw new ApiError('Sign in first.', 401, 'missing_token');
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (session.kind === 'bearer') headers.Authorization = `Bearer ${session.accessToken}`;
    // The management API requires JSON on every POST and PATCH of a host session, even an empty one.
    if (method === 'POST' || method === 'PATCH') headers['Content-Type'] = 'application/json';
    const res = await fetch(this.#url(path), {
      method,
      headers,
      ...(method === 'POST' || method === 'PATCH' ? { body: JSON.stringify(body ?? {}) } : {}),
      credentials: session.kind === 'host' ? 'same-origin' : 'omit',
      cache: 'no-store',
    });
    if (res.status === 401) {
      const error = await errorOf(res);
      this.onUnauthorized();
      throw error;
    }
    if (!res.ok) throw await errorOf(res);
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }

  get = <T>(path: string) => this.call<T>('GET', path);
  /** `GET /me/principal`, roles defaulting to none (they come only with apps:read). */
  principal = async (): Promise<Principal> => {
    const me = await this.get<Omit<Principal, 'roles'> & { roles?: Role[] }>('me/principal');
    return { ...me, roles: me.roles ?? [] };
  };
  post = <T>(path: string, body?: unknown) => this.call<T>('POST', path, body);
  patch = <T>(path: string, body: unknown) => this.call<T>('PATCH', path, body);
  delete = (path: string) => this.call<void>('DELETE', path);
}

/** `?limit=&cursor=` */
export function pageQuery(limit: number, cursor: string | null, extra: Record<string, string> = {}): string {
  const q = new URLSearchParams({ limit: String(limit), ...extra });
  if (cursor) q.set('cursor', cursor);
  return `?${q.toString()}`;
}
