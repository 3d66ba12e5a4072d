/**
 * The tenant's apps, newest first by default: search (name or client id), sort (name, created,
 * last used, requests of the last 30 days), filters (scope,
 * role, expiring soon, locked, unused for 30 days), a total count, and per row its scopes, tokens,
 * last use (relative), usage of the last 24 hours and a 14-day sparkline. The same `GET /apps` query any program uses.
 */
import { useEffect, useId, useState } from 'preact/hooks';
import { pageQuery, type AppView, type Page } from './api.js';
import { useConsole } from './context.js';
import { formatDate, relativeTime } from './format.js';
import { ErrorMessage, Loading, Pager, Scopes, messageOf, usePager } from './ui.js';
import { UsageSparkline } from './UsageSparkline.js';

const PAGE = 20;

const SORTS: Array<[string, string]> = [
  ['-created', 'Newest first'],
  ['created', 'Oldest first'],
  ['name', 'Name, A to Z'],
  ['-name', 'Name, Z to A'],
  ['-lastUsed', 'Recently used first'],
  ['lastUsed', 'Least recently used first'],
  ['-usage', 'Most requests, 30 days'],
  ['usage', 'Fewest requests, 30 days'],
];

const SHOW: Array<[string, string]> = [
  ['all', 'All apps'],
  ['expiringSoon', 'With a token expiring soon'],
  ['locked', 'Locked out now'],
  ['unused', 'Unused for 30 days'],
];

/** What the list is asked for: the one place the toolbar's state lives. */
interface ListQuery {
  search: string;
  sort: string;
  show: string;
  scope: string;
  role: string;
}

const INITIAL: ListQuery = { search: '', sort: '-created', show: 'all', scope: '', role: '' };

type AppPage = Page<AppView> & { total?: number | null };

function queryOf(q: ListQuery): Record<string, string> {
  const out: Record<string, string> = { sort: q.sort };
  if (q.search.trim()) out.search = q.search.trim();
  if (q.scope) out.scope = q.scope;
  if (q.role) out.role = q.role;
  if (q.show === 'expiringSoon') out.expiringSoon = 'true';
  if (q.show === 'locked') out.locked = 'true';
  if (q.show === 'unused') out.unusedFor = '30';
  return out;
}

export function AppList() {
  const { api, canWrite, navigate } = useConsole();
  const pager = usePager();
  const [query, setQuery] = useState<ListQuery>(INITIAL);
  /** The search box as typed; the query follows it after a pause. */
  const [typed, setTyped] = useState('');
  const [page, setPage] = useState<AppPage | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const timer = window.setTimeout(() => {
      if (typed !== query.search) change({ search: typed });
    }, 250);
    return () => window.clearTimeout(timer);
  }, [typed]);

  const change = (patch: Partial<ListQuery>) => {
    pager.reset();
    setQuery((q) => ({ ...q, ...patch }));
  };

  useEffect(() => {
    let live = true;
    setError(null);
    api.get<AppPage>(`apps${pageQuery(PAGE, pager.cursor, queryOf(query))}`).then(
      (p) => live && setPage(p),
      (e: unknown) => live && setError(messageOf(e)),
    );
    return () => {
      live = false;
    };
  }, [api, pager.cursor, query]);

  const filtered = query.search.trim() !== '' || query.show !== 'all' || query.scope !== '' || query.role !== '';

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
      <AppListToolbar typed={typed} onType={setTyped} query={query} onChange={change} />
      {error && <ErrorMessage>{error}</ErrorMessage>}
      {!page && !error && <Loading />}
      {page && <ResultCount page={page} filtered={filtered} />}
      {page && page.items.length === 0 && pager.page === 1 && (
        <div class="card empty">
          <p>
            {filtered
              ? 'No app matches. Change the search or the filters.'
              : `No apps yet.${canWrite ? ' Create one to issue its client ID and secret.' : ''}`}
          </p>
        </div>
      )}
      {page && page.items.length > 0 && <AppTable apps={page.items} />}
      {page && <Pager label="Apps pages" page={pager.page} hasNext={page.nextCursor !== null} onNext={() => pager.next(page.nextCursor!)} onPrevious={pager.previous} />}
    </section>
  );
}

/** Search, sort and filters. */
function AppListToolbar(props: { typed: string; onType: (v: string) => void; query: ListQuery; onChange: (patch: Partial<ListQuery>) => void }) {
  const { config, principal } = useConsole();
  const id = useId();
  const { query, onChange } = props;
  return (
    <form class="toolbar" role="search" aria-label="Find apps" onSubmit={(e) => e.preventDefault()}>
      <div class="field grow">
        <label for={`${id}-search`}>Search by name or client ID</label>
        <input id={`${id}-search`} type="search" value={props.typed} maxLength={200} autoComplete="off" onInput={(e) => props.onType(e.currentTarget.value)} />
      </div>
      <div class="field">
        <label for={`${id}-sort`}>Sort by</label>
        <select id={`${id}-sort`} value={query.sort} onChange={(e) => onChange({ sort: e.currentTarget.value })}>
          {SORTS.map(([value, label]) => (
            <option key={value} value={value}>
              {label}
            </option>
          ))}
        </select>
      </div>
      <div class="field">
        <label for={`${id}-show`}>Show</label>
        <select id={`${id}-show`} value={query.show} onChange={(e) => onChange({ show: e.currentTarget.value })}>
          {SHOW.map(([value, label]) => (
            <option key={value} value={value}>
              {label}
            </option>
          ))}
        </select>
      </div>
      <div class="field">
        <label for={`${id}-scope`}>Scope</label>
        <select id={`${id}-scope`} value={query.scope} onChange={(e) => onChange({ scope: e.currentTarget.value })}>
          <option value="">Any scope</option>
          {config.scopes.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
      </div>
      {principal.roles.length > 0 && (
        <div class="field">
          <label for={`${id}-role`}>Role</label>
          <select id={`${id}-role`} value={query.role} onChange={(e) => onChange({ role: e.currentTarget.value })}>
            <option value="">Any role</option>
            {principal.roles.map((r) => (
              <option key={r.name} value={r.name}>
                {r.name}
              </option>
            ))}
          </select>
        </div>
      )}
    </form>
  );
}

/** "12 apps", "3 matching apps", or, where the server cannot count (locked), what this page holds. */
function ResultCount(props: { page: AppPage; filtered: boolean }) {
  const { total, items } = props.page;
  const text =
    typeof total === 'number'
      ? `${total} ${props.filtered ? 'matching ' : ''}app${total === 1 ? '' : 's'}`
      : `${items.length} app${items.length === 1 ? '' : 's'} on this page`;
  return (
    <p class="muted result-count" role="status">
      {text}
    </p>
  );
}

function AppTable(props: { apps: AppView[] }) {
  return (
    <div class="card">
      <div class="table-wrap">
        <table class="table stacked">
          <caption class="visually-hidden">Apps of this tenant</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Scopes and roles</th>
              <th scope="col">Tokens</th>
              <th scope="col">Last used</th>
              <th scope="col">Requests: 24 h, 14 days</th>
              <th scope="col">Created</th>
            </tr>
          </thead>
          <tbody>
            {props.apps.map((app) => (
              <AppRow key={app.id} app={app} />
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}

function AppRow(props: { app: AppView }) {
  const { app } = props;
  const summary = app.tokenSummary;
  return (
    <tr>
      <td data-label="Name">
        <a href={`#/apps/${app.id}`} class="strong-link">
          {app.name}
        </a>
        <div class="muted mono small break">{app.id}</div>
      </td>
      <td data-label="Scopes">
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
      <td data-label="Tokens">
        {summary ? summary.active : <span class="muted">—</span>}
        {summary && summary.expiringSoon > 0 && (
          <span class="badge warn block-badge">{summary.expiringSoon === 1 ? 'Expiring soon' : `${summary.expiringSoon} expiring soon`}</span>
        )}
      </td>
      <td data-label="Last used">
        {summary ? (
          summary.lastUsedDate ? (
            <time dateTime={summary.lastUsedDate} title={formatDate(summary.lastUsedDate)}>
              {relativeTime(summary.lastUsedDate)}
            </time>
          ) : (
            <span class="muted">never</span>
          )
        ) : (
          <span class="muted">—</span>
        )}
      </td>
      <td data-label="Requests: 24 h, 14 days">
        <span class="usage-cell">
          <UsageCounts usage={app.usage} />
          <UsageSparkline appId={app.id} />
        </span>
      </td>
      <td data-label="Created">
        <time dateTime={app.creationDate}>{formatDate(app.creationDate)}</time>
      </td>
    </tr>
  );
}

/** Requests of the last 24 hours with the refused share as a small bar (the usage summary of `GET /apps`). */
function UsageCounts(props: { usage: AppView['usage'] }) {
  const u = props.usage;
  if (!u) return <span class="muted">—</span>;
  if (u.requests24h === 0) return <span class="muted">none</span>;
  const refused = Math.min(u.refusals24h, u.requests24h);
  const label = `${u.requests24h} requests in 24 hours, ${refused} refused`;
  return (
    <span class="usage" title={`${u.requests30d} requests in 30 days, ${u.refusals30d} refused`}>
      <svg class="usage-bar" viewBox="0 0 60 8" width="60" height="8" role="img" aria-label={label}>
        <rect class="usage-ok" x="0" y="0" width="60" height="8" rx="2" />
        {refused > 0 && <rect class="usage-refused" x={60 - Math.max(2, (60 * refused) / u.requests24h)} y="0" width={Math.max(2, (60 * refused) / u.requests24h)} height="8" rx="2" />}
      </svg>
      <span aria-hidden="true">
        {u.requests24h}
        {refused > 0 ? ` (${refused} refused)` : ''}
      </span>
    </span>
  );
}
