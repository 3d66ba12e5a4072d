/**
 * The token debugger: decodes a JWT's header and claims here, in the page (nothing is sent for
 * that), and asks the server what it says of the token (`POST /me/introspect`: active in this
 * tenant or not, and why not when the server may say), with a live expiry countdown.
 */
import { Fragment } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { InactiveReason, Introspection } from './api.js';
import { useConsole } from './context.js';
import { decodeToken, formatDate, formatDuration, type Decoded, relativeTime } from './format.js';
import { ErrorMessage, Scopes, messageOf } from './ui.js';

/**
 * Why the token is not active, as a sentence: the server's reason (given only for a token of this
 * tenant, or for what the token itself shows), with the dates its claims carry.
 */
function whyNot(reason: InactiveReason | undefined, decoded: Decoded | null, issuer: string): string {
  const claims = decoded?.kind === 'jwt' ? decoded.claims : {};
  const exp = typeof claims.exp === 'number' ? new Date(claims.exp * 1000).toISOString() : null;
  switch (reason) {
    case 'expired':
      return exp ? `It expired ${formatDate(exp)} (${relativeTime(exp)}).` : 'It has expired.';
    case 'revoked':
      return decoded?.kind === 'api_token' ? 'It was deleted (revoked): it no longer works.' : 'It was revoked: it, or the API token it was minted with, was deleted.';
    case 'app_deleted':
      return 'Its app was deleted, and every token of that app with it.';
    case 'unknown_key':
      return 'It was not signed by any key of this server.';
    case 'invalid_signature':
      return 'Its signature does not verify: it was altered after it was issued, or forged.';
    case 'other_issuer':
      return typeof claims.iss === 'string' ? `It was issued by ${claims.iss}, not by this server (${issuer}).` : `It was issued by another server, not by this one (${issuer}).`;
    case 'malformed':
      return 'It is not a well-formed access token or API token (a character may be missing or mistyped).';
    default:
      return 'It is not active in this tenant. The server says no more: it may be unknown here, or not this tenant’s.';
  }
}

export function TokenDebugger() {
  const { api, config } = useConsole();
  const [token, setToken] = useState('');
  const [decoded, setDecoded] = useState<Decoded | null>(null);
  const [result, setResult] = useState<Introspection | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [now, setNow] = useState(Date.now());

  useEffect(() => {
    const timer = window.setInterval(() => setNow(Date.now()), 1000);
    return () => window.clearInterval(timer);
  }, []);

  const inspect = async (e: Event) => {
    e.preventDefault();
    setError(null);
    setResult(null);
    const value = token.trim();
    if (!value) {
      setDecoded(null);
      setError('Paste an access token or an API token first.');
      return;
    }
    setDecoded(decodeToken(value));
    setBusy(true);
    try {
      setResult(await api.post<Introspection>('me/introspect', { token: value }));
    } catch (e) {
      setError(messageOf(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="debug-title" class="stack">
      <h1 id="debug-title">Token debugger</h1>
      <form class="card form" onSubmit={(e) => void inspect(e)} noValidate>
        <div class="field">
          <label for="debug-token">Token</label>
          <textarea id="debug-token" class="mono token-input" rows={4} spellcheck={false} autocomplete="off" value={token} onInput={(e) => setToken(e.currentTarget.value)} aria-describedby="debug-hint" />
          <p class="hint" id="debug-hint">
            An access token (JWT) or an API token. It is decoded in this page and checked by this server only; it is never stored.
          </p>
        </div>
        {error && <ErrorMessage>{error}</ErrorMessage>}
        <div class="actions left">
          <button type="submit" class="button primary" disabled={busy}>
            Inspect
          </button>
        </div>
      </form>
      {result && (
        <section class="card" aria-labelledby="verdict-title">
          <h2 id="verdict-title">What the server says</h2>
          {result.active ? (
            <>
              <p>
                <span class="badge ok">Active</span> in tenant <strong>{result.tenant_id}</strong>
              </p>
              <dl class="facts">
                <dt>Client</dt>
                <dd class="mono">{result.client_id}</dd>
                <dt>Scopes</dt>
                <dd>
                  <Scopes scopes={result.scope ? result.scope.split(' ') : []} />
                </dd>
                <dt>API token</dt>
                <dd class="mono">{result.api_token_id}</dd>
                <dt>Expires</dt>
                <dd>{result.exp === undefined ? 'never' : result.exp * 1000 > now ? `in ${formatDuration(result.exp - now / 1000)} (${formatDate(new Date(result.exp * 1000).toISOString())})` : 'expired'}</dd>
              </dl>
            </>
          ) : (
            <p>
              <span class="badge bad">Not active</span> {whyNot(result.reason, decoded, config.issuer)}
            </p>
          )}
        </section>
      )}
      {decoded && (
        <section class="card" aria-labelledby="decoded-title">
          <h2 id="decoded-title">Decoded</h2>
          {decoded.kind === 'jwt' && <ClaimTimes claims={decoded.claims} />}
          {decoded.kind === 'jwt' ? (
            <div class="grid-2">
              <div>
                <h3>Header</h3>
                <pre class="code">
                  {JSON.stringify(decoded.header, null, 2)}
                </pre>
              </div>
              <div>
                <h3>Claims</h3>
                <pre class="code">
                  {JSON.stringify(decoded.claims, null, 2)}
                </pre>
              </div>
            </div>
          ) : decoded.kind === 'api_token' ? (
            <p class="muted">An API token: an opaque value with nothing to decode. The server's answer above is all there is to know.</p>
          ) : (
            <p class="muted">{decoded.reason}</p>
          )}
        </section>
      )}
    </section>
  );
}

/** `iat`, `nbf`, `exp` as dates with relative times beside them. */
function ClaimTimes(props: { claims: Record<string, unknown> }) {
  const rows = (
    [
      ['iat', 'Issued'],
      ['nbf', 'Not before'],
      ['exp', 'Expires'],
    ] as const
  ).filter(([claim]) => typeof props.claims[claim] === 'number');
  if (rows.length === 0) return null;
  return (
    <div>
      <h3>Times</h3>
      <dl class="facts">
        {rows.map(([claim, label]) => {
          const iso = new Date((props.claims[claim] as number) * 1000).toISOString();
          return (
            <Fragment key={claim}>
              <dt>
                {label} <code>{claim}</code>
              </dt>
              <dd>
                <time dateTime={iso}>{formatDate(iso)}</time> <span class="muted">({relativeTime(iso)})</span>
              </dd>
            </Fragment>
          );
        })}
      </dl>
    </div>
  );
}
