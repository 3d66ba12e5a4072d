/**
 * "My tokens": the signed-in host user's personal tokens (`/me/tokens`, host session only). A
 * server without personal tokens answers 404 there; the screen says so.
 */
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, pageQuery, type Page, type TokenView } from './api.js';
import { useConsole } from './context.js';
import { formatDate, relativeTime } from './format.js';
import { grants } from './scopes.js';
import { ConfirmDialog, ErrorMessage, ExpiresField, Loading, Pager, Scopes, StatusBadge, expirySeconds, initialExpiry, messageOf, usePager } from './ui.js';

export function MyTokens() {
  const { api, config, principal, showSecret, announce } = useConsole();
  const pager = usePager();
  const [page, setPage] = useState<Page<TokenView> | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [unavailable, setUnavailable] = useState(false);
  const [deleting, setDeleting] = useState<TokenView | null>(null);
  const [name, setName] = useState('');
  const [scopes, setScopes] = useState<string[]>([]);
  const [expiry, setExpiry] = useState(() => initialExpiry(config.apiTokenTtl));
  const [formError, setFormError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [scopesError, setScopesError] = useState<string | null>(null);
  const firstScope = useRef<HTMLInputElement>(null);
  // Only what the user holds (GET /me/principal tells every signed-in user its own scopes); none preselected.
  const held = config.scopes.filter((s) => grants(principal.scopes, s));

  const load = useCallback(() => {
    api.get<Page<TokenView>>(`me/tokens${pageQuery(20, pager.cursor)}`).then(setPage, (e: unknown) => {
      if (e instanceof ApiError && (e.status === 404 || e.status === 405)) setUnavailable(true);
      else setError(messageOf(e));
    });
  }, [api, pager.cursor]);
  useEffect(load, [load]);

  if (unavailable) {
    return (
      <section aria-labelledby="my-title">
        <h1 id="my-title">My tokens</h1>
        <p class="card empty">Personal tokens are not enabled on this server.</p>
      </section>
    );
  }

  const create = async (e: Event) => {
    e.preventDefault();
    setFormError(null);
    setScopesError(null);
    if (scopes.length === 0) {
      // A token carries only what is picked: nothing is preselected, and nothing picked is not "everything".
      setScopesError('Choose at least one scope for this token to carry.');
      firstScope.current?.focus();
      return;
    }
    try {
      const expiresIn = expirySeconds(expiry, config.apiTokenTtl);
      setBusy(true);
      const issued = await api.post<{ token: TokenView; value: string; clientId: string }>('me/tokens', {
        ...(name.trim() ? { name: name.trim() } : {}),
        ...(scopes.length ? { scopes } : {}),
        ...(expiresIn === undefined ? {} : { expiresIn }),
      });
      showSecret(
        {
          appName: `${principal.actorId ?? 'my'} personal token`,
          tokenName: issued.token.name,
          tokenId: issued.token.id,
          clientId: issued.clientId,
          secret: issued.value,
          issuer: config.issuer,
          tokenUrl: config.tokenUrl,
          expirationDate: issued.token.expirationDate,
        },
        '#/my-tokens',
      );
    } catch (e) {
      setFormError(messageOf(e));
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="my-title" class="stack">
      <h1 id="my-title">My tokens</h1>
      <p class="muted">Personal tokens act as you ({principal.actorId ?? 'this user'}), with at most the scopes you hold now.</p>
      <form class="card form" aria-labelledby="my-new-title" onSubmit={(e) => void create(e)} noValidate>
        <h2 id="my-new-title">New personal token</h2>
        <div class="field-row">
          <div class="field">
            <label for="my-token-name">Token name</label>
            <input id="my-token-name" value={name} maxLength={100} onInput={(e) => setName(e.currentTarget.value)} />
          </div>
          <ExpiresField ttl={config.apiTokenTtl} value={expiry} onChange={setExpiry} />
        </div>
        <fieldset class="fieldset">
          <legend>Scopes this token carries</legend>
          <p class="hint" id="my-scopes-hint">Pick only what the token needs; it never gets more than you hold.</p>
          {scopesError && (
            <p class="message error field-error" role="alert" id="my-scopes-error">
              {scopesError}
            </p>
          )}
          {held.length === 0 && <p class="muted">You hold no scope of this server's catalogue, so a personal token could carry nothing.</p>}
          <div class="checks">
            {held.map((s, i) => (
              <label key={s} class="check">
                <input
                  type="checkbox"
                  ref={i === 0 ? firstScope : undefined}
                  aria-invalid={scopesError ? true : undefined}
                  aria-describedby={scopesError ? 'my-scopes-error' : 'my-scopes-hint'}
                  checked={scopes.includes(s)}
                  onChange={(e) => {
                    setScopesError(null);
                    setScopes(e.currentTarget.checked ? [...scopes, s] : scopes.filter((x) => x !== s));
                  }}
                />
                <code>{s}</code>
              </label>
            ))}
          </div>
        </fieldset>
        {formError && <ErrorMessage>{formError}</ErrorMessage>}
        <div class="actions left">
          <button type="submit" class="button primary" disabled={busy}>
            Add token
          </button>
        </div>
      </form>
      <section class="card" aria-labelledby="my-list-title">
        <h2 id="my-list-title">Your tokens</h2>
        {error && <ErrorMessage>{error}</ErrorMessage>}
        {!page && !error && <Loading />}
        {page && page.items.length === 0 && <p class="muted">You have no personal tokens.</p>}
        {page && page.items.length > 0 && (
          <div class="table-wrap">
            <table class="table stacked">
              <caption class="visually-hidden">Your personal tokens</caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Scopes</th>
                  <th scope="col">Status</th>
                  <th scope="col">Last used</th>
                  <th scope="col">Expires</th>
                  <th scope="col">Created</th>
                  <th scope="col">
                    <span class="visually-hidden">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {page.items.map((t) => (
                  <tr key={t.id}>
                    <th scope="row" data-label="Name">
                      {t.name}
                      <div class="muted small">
                        <code>{t.hint}</code>
                      </div>
                    </th>
                    <td data-label="Scopes">{t.scopes ? <Scopes scopes={t.scopes} /> : <span class="muted">every scope you hold</span>}</td>
                    <td data-label="Status">
                      <StatusBadge status={t.status} expiringSoon={t.expiringSoon} />
                    </td>
                    <td data-label="Last used">{t.lastUsedDate ? relativeTime(t.lastUsedDate) : 'never'}</td>
                    <td data-label="Expires">
                      {formatDate(t.expirationDate, 'never')}
                      {t.expirationDate && <span class="muted block small">{relativeTime(t.expirationDate)}</span>}
                    </td>
                    <td data-label="Created">{formatDate(t.creationDate)}</td>
                    <td class="row-actions" data-label="Actions">
                      <button type="button" class="button small danger-outline" onClick={() => setDeleting(t)}>
                        Delete token
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        {page && <Pager label="Personal token pages" page={pager.page} hasNext={page.nextCursor !== null} onNext={() => pager.next(page.nextCursor!)} onPrevious={pager.previous} />}
      </section>
      {deleting && (
        <ConfirmDialog
          title={`Delete token ${deleting.name}?`}
          confirm="Delete"
          onCancel={() => setDeleting(null)}
          onConfirm={async () => {
            await api.delete(`me/tokens/${deleting.id}`);
            announce(`Deleted the token ${deleting.name}.`);
            setDeleting(null);
            load();
          }}
        >
          <p>
            Requests made with your token <strong>{deleting.name}</strong> ({deleting.hint}) stop working at once. This cannot be undone.
          </p>
        </ConfirmDialog>
      )}
    </section>
  );
}
