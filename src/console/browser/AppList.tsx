/** The tenant's apps, paged: name, scopes and roles, tokens, created, last used, expiring soon. */
import { useEffect, useState } from 'preact/hooks';
import { pageQuery, type AppView, type Page } from './api.js';
import { useConsole } from './context.js';
import { formatDate } from './format.js';
import { ErrorMessage, Loading, Pager, Scopes, messageOf, usePager } from './ui.js';

const PAGE = 20;

export function AppList() {
  const { api, canWrite, navigate } = useConsole();
  const pager = usePager();
  const [page, setPage] = useState<Page<AppView> | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let live = true;
    setError(null);
    api.get<Page<AppView>>(`apps${pageQuery(PAGE, pager.cursor)}`).then(
      (p) => live && setPage(p),
      (e: unknown) => live && setError(messageOf(e)),
    );
    return () => {
      live = false;
    };
  }, [api, pager.cursor]);

  return (
    <section aria-labelledby="apps-title">
      <div class="page-head">
        <h1 id="apps-title">Apps</h1>
        {canWrite && (
          <button type="button" class="button primary" onClick={() => navigate('#/apps/new')}>
            Create app
          </button>
        )}
      </div>
      {error && <ErrorMessage>{error}</ErrorMessage>}
      {!page && !error && <Loading />}
      {page && page.items.length === 0 && pager.page === 1 && (
        <div class="card empty">
          <p>No apps yet.{canWrite ? ' Create one to issue its client ID and secret.' : ''}</p>
        </div>
      )}
      {page && page.items.length > 0 && (
        <div class="card">
        <div class="table-wrap">
          <table class="table">
            <caption class="visually-hidden">Apps of this tenant</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Scopes and roles</th>
                <th scope="col">Tokens</th>
                <th scope="col">Created</th>
                <th scope="col">Last used</th>
              </tr>
            </thead>
            <tbody>
              {page.items.map((app) => (
                <tr key={app.id}>
                  <td>
                    <a href={`#/apps/${app.id}`} class="strong-link">
                      {app.name}
                    </a>
                    <div class="muted mono small">{app.id}</div>
                  </td>
                  <td>
                    <Scopes scopes={app.scopes} empty="no scopes" />
                    {app.roles && app.roles.length > 0 && (
                      <ul class="chips">
                        {app.roles.map((r) => (
                          <li key={r} class="chip role">
                            role {r}
                          </li>
                        ))}
                      </ul>
                    )}
                  </td>
                  <td>
                    {app.tokenSummary ? app.tokenSummary.active : <span class="muted">—</span>}
                    {app.tokenSummary && app.tokenSummary.expiringSoon > 0 && (
                      <span class="badge warn block-badge">{app.tokenSummary.expiringSoon === 1 ? 'Expiring soon' : `${app.tokenSummary.expiringSoon} expiring soon`}</span>
                    )}
                  </td>
                  <td>{formatDate(app.creationDate)}</td>
                  <td>{app.tokenSummary ? formatDate(app.tokenSummary.lastUsedDate, 'never') : <span class="muted">—</span>}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
        </div>
      )}
      {page && <Pager label="Apps pages" page={pager.page} hasNext={page.nextCursor !== null} onNext={() => pager.next(page.nextCursor!)} onPrevious={pager.previous} />}
    </section>
  );
}
