/**
 * "My tokens": the signed-in host user's personal tokens (`/me/tokens`, host session only). A
 * server without personal tokens answers 404 there; the screen says so.
 */
import { useCallback, useEffect, useState } from 'preact/hooks';
import { ApiError, pageQuery, type Page, type TokenView } from './api.js';
import { useConsole } from './context.js';
import { formatDate } from './format.js';
import { grants } from './scopes.js';
import { ConfirmDialog, ErrorMessage, ExpiresField, Loading, Pager, StatusBadge, expirySeconds, initialExpiry, messageOf, usePager } from './ui.js';

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
          <legend>Permissions</legend>
          <p class="hint">None chosen: every scope you hold.</p>
          <div class="checks">
            {held.map((s) => (
              <label key={s} class="check">
                <input type="checkbox" checked={scopes.includes(s)} onChange={(e) => setScopes(e.currentTarget.checked ? [...scopes, s] : scopes.filter((x) => x !== s))} />
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
            <table class="table">
              <caption class="visually-hidden">Your personal tokens</caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Hint</th>
                  <th scope="col">Created</th>
                  <th scope="col">Expires</th>
                  <th scope="col">Last used</th>
                  <th scope="col">Status</th>
                  <th scope="col">
                    <span class="visually-hidden">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {page.items.map((t) => (
                  <tr key={t.id}>
                    <th scope="row">{t.name}</th>
                    <td>
                      <code>{t.hint}</code>
                    </td>
                    <td>{formatDate(t.creationDate)}</td>
                    <td>{formatDate(t.expirationDate, 'never')}</td>
                    <td>{formatDate(t.lastUsedDate, 'never')}</td>
                    <td>
                      <StatusBadge status={t.status} expiringSoon={t.expiringSoon} />
                    </td>
                    <td class="row-actions">
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
