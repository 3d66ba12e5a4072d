/** One app: details (editable), scopes read-only, tokens, the audit log, and the danger zone. */
import { useCallback, useEffect, useState } from 'preact/hooks';
import { ApiError, pageQuery, type AppDetails, type AppView, type AuditEvent, type Issued, type Page, type TokenView } from './api.js';
import { useConsole } from './context.js';
import { KeysCard } from './KeysCard.js';
import { LockoutCard } from './LockoutCard.js';
import { UsageCard } from './UsageChart.js';
import { formatDate, parseClaims, relativeTime, type SecretFile } from './format.js';
import { grantsAll } from './scopes.js';
import { ConfirmDialog, ErrorMessage, ExpiresField, Loading, Pager, Scopes, StatusBadge, expirySeconds, initialExpiry, messageOf, usePager } from './ui.js';

type Dialog = { kind: 'regenerate'; token: TokenView } | { kind: 'delete-token'; token: TokenView } | { kind: 'delete-app' } | null;

export function AppPage(props: { id: string }) {
  const { api, config, principal, canWrite, showSecret, announce, navigate } = useConsole();
  const [app, setApp] = useState<AppDetails | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [dialog, setDialog] = useState<Dialog>(null);
  const [adding, setAdding] = useState(false);
  const [eventsVersion, setEventsVersion] = useState(0);

  const load = useCallback(async () => {
    try {
      setApp(await api.get<AppDetails>(`apps/${props.id}`));
      setEventsVersion((v) => v + 1);
    } catch (e) {
      setError(e instanceof ApiError && e.status === 404 ? 'No such app in this tenant.' : messageOf(e));
    }
  }, [api, props.id]);

  useEffect(() => {
    void load();
  }, [load]);

  if (error && !app) {
    return (
      <section>
        <BackLink />
        <ErrorMessage>{error}</ErrorMessage>
      </section>
    );
  }
  if (!app) return <Loading />;

  // Acting on an app needs every scope it holds (and every scope of its roles): the server decides;
  // the controls it would refuse are not shown.
  const mayManage = canWrite && grantsAll(principal.scopes, app.effectiveScopes ?? app.scopes);
  const secretFile = (issued: Issued): SecretFile => ({
    appName: app.name,
    tokenName: issued.token.name,
    tokenId: issued.token.id,
    clientId: app.clientId,
    secret: issued.value,
    issuer: config.issuer,
    tokenUrl: config.tokenUrl,
    expirationDate: issued.token.expirationDate,
  });

  return (
    <section aria-labelledby="app-title" class="stack">
      <BackLink />
      <div class="page-head">
        <div>
          <h1 id="app-title">{app.name}</h1>
          <p class="muted mono small">Client ID {app.clientId}</p>
        </div>
      </div>
      {canWrite && !mayManage && (
        <p class="message info">You hold apps:write but not every scope of this app, so you can view it but not change it.</p>
      )}

      {app.tokenEndpointAuthMethod === 'private_key_jwt' && <KeysCard app={app} manage={mayManage} onChanged={() => setEventsVersion((v) => v + 1)} />}

      {app.tokenEndpointAuthMethod !== 'private_key_jwt' && (
      <section class="card" aria-labelledby="tokens-title">
        <div class="section-head">
          <h2 id="tokens-title">Tokens</h2>
          {mayManage && !adding && (
            <button type="button" class="button primary" onClick={() => setAdding(true)}>
              Add token
            </button>
          )}
        </div>
        {adding && (
          <AddToken
            onCancel={() => setAdding(false)}
            onCreate={async (input) => {
              const issued = await api.post<Issued>(`apps/${app.id}/tokens`, input);
              showSecret(secretFile(issued), `#/apps/${app.id}`);
            }}
          />
        )}
        <TokensTable
          tokens={app.tokens}
          nextCursor={app.tokensNextCursor}
          appId={app.id}
          manage={mayManage}
          onRegenerate={(token) => setDialog({ kind: 'regenerate', token })}
          onDelete={(token) => setDialog({ kind: 'delete-token', token })}
        />
      </section>
      )}

      <UsageCard appId={app.id} />

      <LockoutCard app={app} manage={mayManage} onCleared={load} />

      <Details app={app} editable={mayManage} onSaved={(saved) => {
        setApp({ ...app, ...saved });
        setEventsVersion((v) => v + 1);
        announce('Saved the app.');
      }} />

      <section class="card" aria-labelledby="perm-title">
        <h2 id="perm-title">Permissions</h2>
        <p class="hint">Scopes are fixed for the app's life; to change them, create another app.</p>
        <Scopes scopes={app.scopes} empty="no scopes of its own" />
        {app.roles && app.roles.length > 0 && (
          <>
            <h3>Roles</h3>
            <Scopes scopes={app.roles} />
          </>
        )}
        {app.effectiveScopes && app.roles && app.roles.length > 0 && (
          <>
            <h3>Effective scopes</h3>
            <Scopes scopes={app.effectiveScopes} />
          </>
        )}
        {app.unknownScopes.length > 0 && <p class="message warn">No longer in the catalogue (no token carries them): {app.unknownScopes.join(', ')}</p>}
        {app.unknownRoles && app.unknownRoles.length > 0 && <p class="message warn">Roles no longer declared (they grant nothing): {app.unknownRoles.join(', ')}</p>}
      </section>


      <AuditLog appId={app.id} version={eventsVersion} tokens={app.tokens} />

      {mayManage && (
        <section class="card danger-zone" aria-labelledby="danger-title">
          <h2 id="danger-title">Danger zone</h2>
          <div class="section-head">
            <p>
              Deleting the app stops every one of its {app.tokenEndpointAuthMethod === 'private_key_jwt' ? 'keys' : 'tokens'}, and every access token they minted, at once.
            </p>
            <button type="button" class="button danger" onClick={() => setDialog({ kind: 'delete-app' })}>
              Delete app
            </button>
          </div>
        </section>
      )}

      {dialog?.kind === 'regenerate' && (
        <RegenerateDialog
          token={dialog.token}
          onCancel={() => setDialog(null)}
          onConfirm={async (gracePeriod) => {
            const issued = await api.post<Issued>(`apps/${app.id}/tokens/${dialog.token.id}/regenerate`, { gracePeriod });
            setDialog(null);
            showSecret(secretFile(issued), `#/apps/${app.id}`);
          }}
        />
      )}
      {dialog?.kind === 'delete-token' && (
        <ConfirmDialog
          title={`Delete token ${dialog.token.name}?`}
          confirm="Delete"
          onCancel={() => setDialog(null)}
          onConfirm={async () => {
            await api.delete(`apps/${app.id}/tokens/${dialog.token.id}`);
            setDialog(null);
            announce(`Deleted the token ${dialog.token.name}.`);
            await load();
          }}
        >
          <p>
            Requests made with <strong>{dialog.token.name}</strong> ({dialog.token.hint}) of {app.name} stop working at once, with every access token it minted. This cannot be undone.
          </p>
        </ConfirmDialog>
      )}
      {dialog?.kind === 'delete-app' && (
        <ConfirmDialog
          title={`Delete app ${app.name}?`}
          confirm="Delete"
          onCancel={() => setDialog(null)}
          onConfirm={async () => {
            await api.delete(`apps/${app.id}`);
            setDialog(null);
            announce(`Deleted the app ${app.name}.`);
            navigate('#/');
          }}
        >
          <p>
            <strong>{app.name}</strong> and its {app.tokens.length === 1 ? 'token' : `${app.tokens.length}${app.tokensNextCursor ? '+' : ''} tokens`} stop working at once, with every access token
            they minted. This cannot be undone.
          </p>
        </ConfirmDialog>
      )}
    </section>
  );
}

function BackLink() {
  return (
    <p>
      <a href="#/" class="back">
        ← All apps
      </a>
    </p>
  );
}

function Details(props: { app: AppView; editable: boolean; onSaved: (app: AppView) => void }) {
  const { api } = useConsole();
  const { app } = props;
  const [name, setName] = useState(app.name);
  const [description, setDescription] = useState(app.description ?? '');
  const [claims, setClaims] = useState(Object.keys(app.customClaims).length ? JSON.stringify(app.customClaims, null, 2) : '');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  if (!props.editable) {
    return (
      <section class="card" aria-labelledby="details-title">
        <h2 id="details-title">Details</h2>
        <dl class="facts">
          <dt>Description</dt>
          <dd>{app.description ?? <span class="muted">none</span>}</dd>
          <dt>Custom claims</dt>
          <dd>{Object.keys(app.customClaims).length ? <pre class="code small">{JSON.stringify(app.customClaims, null, 2)}</pre> : <span class="muted">none</span>}</dd>
          <dt>Created</dt>
          <dd>{formatDate(app.creationDate)}</dd>
          <dt>Updated</dt>
          <dd>{formatDate(app.updateDate)}</dd>
        </dl>
      </section>
    );
  }

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    if (!name.trim()) return setError('Name: required.');
    const parsed = parseClaims(claims);
    if (!parsed.ok) return setError(parsed.error);
    setBusy(true);
    try {
      props.onSaved(await api.patch<AppView>(`apps/${app.id}`, { name: name.trim(), description: description.trim() || null, customClaims: parsed.value }));
    } catch (e) {
      setError(messageOf(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="card" aria-labelledby="details-title">
      <h2 id="details-title">Details</h2>
      <form class="form" onSubmit={(e) => void submit(e)} noValidate>
        <div class="field">
          <label for="edit-name">Name</label>
          <input id="edit-name" value={name} maxLength={100} onInput={(e) => setName(e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for="edit-description">Description</label>
          <textarea id="edit-description" rows={2} maxLength={1000} value={description} onInput={(e) => setDescription(e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for="edit-claims">Custom claims (JSON)</label>
          <textarea id="edit-claims" class="mono" rows={3} spellcheck={false} value={claims} onInput={(e) => setClaims(e.currentTarget.value)} />
        </div>
        <p class="hint">
          Created {formatDate(app.creationDate)} · updated {formatDate(app.updateDate)}
        </p>
        {error && <ErrorMessage>{error}</ErrorMessage>}
        <div class="actions left">
          <button type="submit" class="button primary" disabled={busy}>
            Save changes
          </button>
        </div>
      </form>
    </section>
  );
}

function AddToken(props: { onCancel: () => void; onCreate: (input: { name: string; expiresIn?: number }) => Promise<void> }) {
  const { config } = useConsole();
  const [name, setName] = useState('');
  const [expiry, setExpiry] = useState(() => initialExpiry(config.apiTokenTtl));
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      const expiresIn = expirySeconds(expiry, config.apiTokenTtl);
      setBusy(true);
      await props.onCreate({ name: name.trim() || 'default', ...(expiresIn === undefined ? {} : { expiresIn }) });
    } catch (e) {
      setError(messageOf(e));
      setBusy(false);
    }
  };
  return (
    <form class="inline-form" aria-label="Add token" onSubmit={(e) => void submit(e)} noValidate>
      <div class="field-row">
        <div class="field">
          <label for="add-token-name">Token name</label>
          <input id="add-token-name" value={name} maxLength={100} placeholder="default" onInput={(e) => setName(e.currentTarget.value)} />
        </div>
        <ExpiresField ttl={config.apiTokenTtl} value={expiry} onChange={setExpiry} />
      </div>
      {error && <ErrorMessage>{error}</ErrorMessage>}
      <div class="actions left">
        <button type="submit" class="button primary" disabled={busy}>
          Create
        </button>
        <button type="button" class="button" onClick={props.onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

const GRACE = [
  { value: 0, label: 'None: the current value stops working at once' },
  { value: 3_600, label: '1 hour' },
  { value: 86_400, label: '24 hours' },
];

function RegenerateDialog(props: { token: TokenView; onCancel: () => void; onConfirm: (gracePeriod: number) => Promise<void> }) {
  const [grace, setGrace] = useState(0);
  return (
    <ConfirmDialog title={`Regenerate token ${props.token.name}?`} confirm="Regenerate" onCancel={props.onCancel} onConfirm={() => props.onConfirm(grace)}>
      <p>
        A new value replaces <strong>{props.token.name}</strong> ({props.token.hint}).{' '}
        {grace === 0 ? 'The current value stops working at once.' : 'The current value keeps working until the grace period ends, then stops.'} This cannot be undone.
      </p>
      <div class="field">
        <label for="grace-period">Grace period</label>
        <select id="grace-period" value={String(grace)} onChange={(e) => setGrace(Number(e.currentTarget.value))}>
          {GRACE.map((g) => (
            <option key={g.value} value={String(g.value)}>
              {g.label}
            </option>
          ))}
        </select>
      </div>
    </ConfirmDialog>
  );
}

function TokensTable(props: { tokens: TokenView[]; nextCursor: string | null; appId: string; manage: boolean; onRegenerate: (t: TokenView) => void; onDelete: (t: TokenView) => void }) {
  const { api } = useConsole();
  const [more, setMore] = useState<TokenView[]>([]);
  const [cursor, setCursor] = useState(props.nextCursor);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setMore([]);
    setCursor(props.nextCursor);
  }, [props.tokens, props.nextCursor]);
  const tokens = [...props.tokens, ...more];
  if (tokens.length === 0) return <p class="muted">No live tokens. {props.manage ? 'Add one to give the app a secret.' : ''}</p>;
  return (
    <>
      <div class="table-wrap">
        <table class="table stacked">
          <caption class="visually-hidden">Tokens of this app</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Status</th>
              <th scope="col">Scopes</th>
              <th scope="col">Last used</th>
              <th scope="col">Expires</th>
              <th scope="col">Created</th>
              {props.manage && (
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              )}
            </tr>
          </thead>
          <tbody>
            {tokens.map((t) => (
              <tr key={t.id}>
                <th scope="row" data-label="Name">
                  {t.name}
                  <div class="muted small">
                    <code>{t.hint}</code>
                  </div>
                </th>
                <td data-label="Status">
                  <StatusBadge status={t.status} expiringSoon={t.expiringSoon} />
                  {t.status === 'retiring' && <Successor token={t} tokens={tokens} />}
                </td>
                <td data-label="Scopes">{t.scopes ? <Scopes scopes={t.scopes} /> : <span class="muted">all of the app's</span>}</td>
                <td data-label="Last used">
                  <When iso={t.lastUsedDate} none="never" />
                </td>
                <td data-label="Expires">
                  <When iso={t.expirationDate} none="never" />
                </td>
                <td data-label="Created">{formatDate(t.creationDate)}</td>
                {props.manage && (
                  <td class="row-actions" data-label="Actions">
                    {t.status === 'active' && (
                      <button type="button" class="button small" onClick={() => props.onRegenerate(t)}>
                        Regenerate
                      </button>
                    )}
                    <button type="button" class="button small danger-outline" onClick={() => props.onDelete(t)}>
                      Delete token
                    </button>
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {error && <ErrorMessage>{error}</ErrorMessage>}
      {cursor && (
        <button
          type="button"
          class="button"
          onClick={() =>
            api.get<Page<TokenView>>(`apps/${props.appId}/tokens${pageQuery(50, cursor)}`).then(
              (p) => {
                setMore((m) => [...m, ...p.items]);
                setCursor(p.nextCursor);
              },
              (e: unknown) => setError(messageOf(e)),
            )
          }
        >
          Show more tokens
        </button>
      )}
    </>
  );
}

/** A date with its relative time beside it ("Dec 9, 2026, 10:00 AM · in 2 days"). */
function When(props: { iso: string | null; none: string }) {
  if (!props.iso) return <span class="muted">{props.none}</span>;
  return (
    <time dateTime={props.iso}>
      {formatDate(props.iso)}
      <span class="muted block small">{relativeTime(props.iso)}</span>
    </time>
  );
}

/** A retiring token: its deadline and the token that replaced it (a rotation shows both). */
function Successor(props: { token: TokenView; tokens: TokenView[] }) {
  const deadline = props.token.expirationDate;
  const next = props.tokens.find((o) => o.id !== props.token.id && o.name === props.token.name && o.status === 'active' && o.creationDate >= props.token.creationDate);
  return (
    <span class="small block">
      {deadline ? `Stops ${relativeTime(deadline)} (${formatDate(deadline)})` : 'Stops soon'}
      {next ? `; replaced by ${next.hint}` : ''}
    </span>
  );
}

const EVENTS = 10;

/** Audit event types in words, for the log and its filter. */
const EVENT_NAMES: Record<string, string> = {
  'app.created': 'App created',
  'app.updated': 'App edited',
  'app.deleted': 'App deleted',
  'app.lockout_cleared': 'Lockout cleared',
  'token.created': 'Token created',
  'token.regenerated': 'Token regenerated',
  'token.refreshed': 'Token refreshed',
  'token.deleted': 'Token deleted',
  'token.reuse_detected': 'Token reuse detected',
  'token.refresh_refused': 'Token refresh refused',
  'token.expiring': 'Token expiring',
  'token.leaked': 'Token reported leaked',
  'key.added': 'Key added',
  'key.deleted': 'Key deleted',
  'access_token.issued': 'Access token issued',
  'access_token.refused': 'Access token refused',
  'access_token.revoked': 'Access token revoked',
  'management.refused': 'Management request refused',
};

/** The audit log: newest first, paged, filtered by event; names the actor and the token where it can. */
function AuditLog(props: { appId: string; version: number; tokens: TokenView[] }) {
  const { api, principal } = useConsole();
  const pager = usePager();
  const [type, setType] = useState('');
  const [page, setPage] = useState<Page<AuditEvent> | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    api.get<Page<AuditEvent>>(`apps/${props.appId}/events${pageQuery(EVENTS, pager.cursor, type ? { type } : {})}`).then(
      (p) => live && setPage(p),
      (e: unknown) => live && setError(messageOf(e)),
    );
    return () => {
      live = false;
    };
  }, [api, props.appId, pager.cursor, props.version, type]);
  const actor = (id: string | null) =>
    id === null ? 'unauthenticated' : id === principal.actorId ? `you (${id})` : id === props.appId ? 'this app' : id;
  const token = (id: string | null) => (id === null ? '—' : (props.tokens.find((t) => t.id === id)?.name ?? id));
  return (
    <section class="card" aria-labelledby="events-title">
      <div class="section-head">
        <h2 id="events-title">Audit events</h2>
        <div class="field inline">
          <label for="event-type">Event</label>
          <select
            id="event-type"
            value={type}
            onChange={(e) => {
              pager.reset();
              setType(e.currentTarget.value);
            }}
          >
            <option value="">All events</option>
            {Object.entries(EVENT_NAMES).map(([value, label]) => (
              <option key={value} value={value}>
                {label}
              </option>
            ))}
          </select>
        </div>
      </div>
      {error && <ErrorMessage>{error}</ErrorMessage>}
      {!page && !error && <Loading />}
      {page && page.items.length === 0 && <p class="muted">{type ? 'No events of this kind.' : 'No events yet.'}</p>}
      {page && page.items.length > 0 && (
        <div class="table-wrap">
          <table class="table compact stacked">
            <caption class="visually-hidden">Audit events of this app, newest first</caption>
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Event</th>
                <th scope="col">Outcome</th>
                <th scope="col">Who</th>
                <th scope="col">Token</th>
              </tr>
            </thead>
            <tbody>
              {page.items.map((e) => (
                <tr key={e.id}>
                  <td data-label="When">
                    <time dateTime={e.at} title={formatDate(e.at)}>
                      {formatDate(e.at)}
                    </time>
                  </td>
                  <td data-label="Event">
                    {EVENT_NAMES[e.type] ?? e.type}
                    <div class="muted small mono">{e.type}</div>
                  </td>
                  <td data-label="Outcome">
                    <span class={`badge ${e.outcome === 'success' ? 'ok' : 'bad'}`}>{e.outcome === 'success' ? 'Success' : 'Failure'}</span>
                  </td>
                  <td data-label="Who" class="break">
                    {actor(e.actorId)}
                  </td>
                  <td data-label="Token" class="break">
                    {token(e.tokenId)}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {page && (
        <Pager
          label="Audit event pages"
          page={pager.page}
          hasNext={page.nextCursor !== null}
          onNext={() => pager.next(page.nextCursor!)}
          onPrevious={pager.previous}
          nextLabel="Older events"
          previousLabel="Newer events"
        />
      )}
    </section>
  );
}
