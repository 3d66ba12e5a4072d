/** Create an app: name, description, permissions the principal may grant, roles, claims, first token. */
import { useEffect, useState } from 'preact/hooks';
import { ApiError, type AppView, type TokenView } from './api.js';
import { useConsole } from './context.js';
import { parseClaims } from './format.js';
import { grants, grantsAll } from './scopes.js';
import { ErrorMessage, ExpiresField, expirySeconds, initialExpiry, messageOf } from './ui.js';

export function CreateApp() {
  const { api, config, principal, showSecret, navigate } = useConsole();
  const grantable = config.scopes.filter((s) => grants(principal.scopes, s));
  const roles = principal.roles.filter((r) => grantsAll(principal.scopes, r.scopes));
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [scopes, setScopes] = useState<string[]>([]);
  const [chosenRoles, setChosenRoles] = useState<string[]>([]);
  const [claims, setClaims] = useState('');
  const [tokenName, setTokenName] = useState('default');
  const [expiry, setExpiry] = useState(() => initialExpiry(config.apiTokenTtl));
  const [error, setError] = useState<string | null>(null);
  /** An error that belongs to one field: shown beside it, the field marked and focused. */
  const [fieldError, setFieldError] = useState<{ field: Field; message: string } | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    if (fieldError) document.getElementById(FIELD_INPUT[fieldError.field])?.focus();
  }, [fieldError]);
  const invalid = (field: Field) =>
    fieldError?.field === field ? { 'aria-invalid': true as const, 'aria-describedby': `${FIELD_INPUT[field]}-error` } : {};
  const errorOf = (field: Field) =>
    fieldError?.field === field ? (
      <p class="message error field-error" role="alert" id={`${FIELD_INPUT[field]}-error`}>
        {fieldError.message}
      </p>
    ) : null;

  const toggle = (list: string[], set: (v: string[]) => void, value: string, on: boolean) => set(on ? [...list, value] : list.filter((v) => v !== value));

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    setFieldError(null);
    try {
      if (!name.trim()) throw new FieldError('name', 'Give the app a name.');
      if (scopes.length === 0 && chosenRoles.length === 0) throw new FieldError('scopes', roles.length ? 'Choose at least one permission or role.' : 'Choose at least one permission.');
      const parsed = parseClaims(claims);
      if (!parsed.ok) throw new FieldError('claims', parsed.error);
      const expiresIn = expirySeconds(expiry, config.apiTokenTtl);
      setBusy(true);
      const created = await api.post<{ app: AppView; token: TokenView; value: string }>('apps', {
        name: name.trim(),
        ...(description.trim() ? { description: description.trim() } : {}),
        scopes: config.scopes.filter((s) => scopes.includes(s)),
        ...(chosenRoles.length ? { roles: chosenRoles } : {}),
        ...(Object.keys(parsed.value).length ? { customClaims: parsed.value } : {}),
        token: { name: tokenName.trim() || 'default', ...(expiresIn === undefined ? {} : { expiresIn }) },
      });
      showSecret(
        {
          appName: created.app.name,
          tokenName: created.token.name,
          tokenId: created.token.id,
          clientId: created.app.clientId,
          secret: created.value,
          issuer: config.issuer,
          tokenUrl: config.tokenUrl,
          expirationDate: created.token.expirationDate,
        },
        `#/apps/${created.app.id}`,
      );
    } catch (e) {
      const field = e instanceof FieldError ? e.field : e instanceof ApiError ? fieldOf(e.field) : undefined;
      if (field) setFieldError({ field, message: messageOf(e) });
      else setError(messageOf(e));
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="create-title">
      <div class="page-head">
        <h1 id="create-title">Create app</h1>
      </div>
      <form class="card form" onSubmit={(e) => void submit(e)} noValidate>
        <div class="field">
          <label for="app-name">Name</label>
          <input id="app-name" value={name} maxLength={100} required onInput={(e) => setName(e.currentTarget.value)} {...invalid('name')} />
          {errorOf('name')}
        </div>
        <div class="field">
          <label for="app-description">Description</label>
          <textarea id="app-description" rows={2} maxLength={1000} value={description} onInput={(e) => setDescription(e.currentTarget.value)} {...invalid('description')} />
          {errorOf('description')}
        </div>
        <fieldset class="fieldset">
          <legend>Permissions</legend>
          <p class="hint">Fixed for the app's life. Only the scopes you hold are offered.</p>
          {errorOf('scopes')}
          <div class="checks">
            {grantable.map((s, i) => (
              <label key={s} class="check">
                <input
                  type="checkbox"
                  id={i === 0 ? FIELD_INPUT.scopes : undefined}
                  checked={scopes.includes(s)}
                  onChange={(e) => toggle(scopes, setScopes, s, e.currentTarget.checked)}
                  {...(fieldError?.field === 'scopes' ? { 'aria-invalid': true, 'aria-describedby': `${FIELD_INPUT.scopes}-error` } : {})}
                />
                <code>{s}</code>
              </label>
            ))}
          </div>
        </fieldset>
        {roles.length > 0 && (
          <fieldset class="fieldset">
            <legend>Roles</legend>
            <div class="checks">
              {roles.map((r) => (
                <label key={r.name} class="check">
                  <input type="checkbox" checked={chosenRoles.includes(r.name)} onChange={(e) => toggle(chosenRoles, setChosenRoles, r.name, e.currentTarget.checked)} />
                  <span>
                    {r.name} <span class="muted small">({r.scopes.join(', ')})</span>
                    {r.description && <span class="hint block">{r.description}</span>}
                  </span>
                </label>
              ))}
            </div>
          </fieldset>
        )}
        <div class="field">
          <label for="app-claims">Custom claims (JSON)</label>
          <textarea id="app-claims" class="mono" rows={3} spellcheck={false} placeholder='{"plan": "pro"}' value={claims} onInput={(e) => setClaims(e.currentTarget.value)} aria-describedby="app-claims-hint" {...invalid('claims')} />
          {errorOf('claims')}
          <p class="hint" id="app-claims-hint">
            A JSON object added to every access token of the app. Optional.
          </p>
        </div>
        <fieldset class="fieldset">
          <legend>First token</legend>
          <div class="field-row">
            <div class="field">
              <label for="app-token-name">Token name</label>
              <input id="app-token-name" value={tokenName} maxLength={100} onInput={(e) => setTokenName(e.currentTarget.value)} {...invalid('token')} />
              {errorOf('token')}
            </div>
            <ExpiresField ttl={config.apiTokenTtl} value={expiry} onChange={setExpiry} />
          </div>
        </fieldset>
        {error && <ErrorMessage>{error}</ErrorMessage>}
        <div class="actions">
          <button type="button" class="button" onClick={() => navigate('#/')}>
            Cancel
          </button>
          <button type="submit" class="button primary" disabled={busy}>
            Create
          </button>
        </div>
      </form>
    </section>
  );
}

type Field = 'name' | 'description' | 'scopes' | 'claims' | 'token';

/** The element each field's error focuses (the first checkbox for the permissions). */
const FIELD_INPUT: Record<Field, string> = {
  name: 'app-name',
  description: 'app-description',
  scopes: 'app-scope-first',
  claims: 'app-claims',
  token: 'app-token-name',
};

class FieldError extends Error {
  constructor(
    readonly field: Field,
    message: string,
  ) {
    super(message);
  }
}

/** The form field a server error names (`scopes[2]`, `customClaims.iss`, `token.name`…), if any. */
function fieldOf(field: string | undefined): Field | undefined {
  if (!field) return undefined;
  if (field === 'name' || field === 'description') return field;
  if (/^(scopes|roles)\b/.test(field)) return 'scopes';
  if (/^customClaims\b/.test(field)) return 'claims';
  if (/^token\b/.test(field)) return 'token';
  return undefined;
}
