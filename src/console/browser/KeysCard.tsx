/**
 * Issue 15: the public keys of a private_key_jwt app — listed, added (paste a JWK or a PEM public
 * key) and removed. The server checks every key; a private key pasted by mistake is refused there
 * and, before sending, here.
 */
import { useCallback, useEffect, useState } from 'preact/hooks';
import { type AppView } from './api.js';
import { useConsole } from './context.js';
import { formatDate } from './format.js';
import { ConfirmDialog, ErrorMessage, Loading, StatusBadge, messageOf } from './ui.js';

export interface KeyView {
  kid: string;
  alg: string;
  thumbprint: string;
  creationDate: string;
  expirationDate: string | null;
  status: 'active' | 'expired';
}

/** What the textarea holds, as the body of `POST /apps/:id/keys`; throws a message for the user. */
export function keyBody(text: string): { jwk: Record<string, unknown> } | { pem: string } {
  const value = text.trim();
  if (value === '') throw new Error('Paste a public key: a JWK (JSON) or a PEM block.');
  if (/PRIVATE KEY/.test(value)) throw new Error('That is a private key. Paste the public key only; never share the private one.');
  if (value.startsWith('-----BEGIN PUBLIC KEY-----')) return { pem: value };
  let jwk: unknown;
  try {
    jwk = JSON.parse(value);
  } catch {
    throw new Error('Not a JWK (JSON) nor a PEM public key (-----BEGIN PUBLIC KEY-----).');
  }
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) throw new Error('A JWK is a JSON object.');
  if ('d' in jwk) throw new Error('That JWK holds a private key ("d"). Paste the public key only.');
  return { jwk: jwk as Record<string, unknown> };
}

export function KeysCard(props: { app: AppView; manage: boolean; onChanged: () => void }) {
  const { api, announce } = useConsole();
  const { app } = props;
  const [keys, setKeys] = useState<KeyView[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  const [removing, setRemoving] = useState<KeyView | null>(null);

  const load = useCallback(async () => {
    try {
      setKeys((await api.get<{ items: KeyView[] }>(`apps/${app.id}/keys`)).items);
    } catch (e) {
      setError(messageOf(e));
    }
  }, [api, app.id]);
  useEffect(() => {
    void load();
  }, [load]);

  const add = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      const body = keyBody(text);
      setBusy(true);
      const added = await api.post<KeyView>(`apps/${app.id}/keys`, body);
      setText('');
      announce(`Added the key ${added.kid}.`);
      await load();
      props.onChanged();
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="card" aria-labelledby="keys-title">
      <h2 id="keys-title">Public keys</h2>
      <p class="hint">
        This app authenticates with <code>private_key_jwt</code>: it signs an assertion with a private key that never leaves it. There is no client secret.
      </p>
      {app.jwksUri && (
        <p>
          Keys are fetched from <code class="mono">{app.jwksUri}</code>; change them there.
        </p>
      )}
      {keys === null ? (
        error ? <ErrorMessage>{error}</ErrorMessage> : <Loading />
      ) : keys.length === 0 ? (
        <p class="muted">{app.jwksUri ? 'No key is stored here.' : 'No key: the app cannot authenticate until one is added.'}</p>
      ) : (
        <div class="table-wrap">
          <table class="table">
            <caption class="visually-hidden">Public keys of {app.name}</caption>
            <thead>
              <tr>
                <th scope="col">Key ID</th>
                <th scope="col">Algorithm</th>
                <th scope="col">Thumbprint</th>
                <th scope="col">Added</th>
                <th scope="col">Expires</th>
                <th scope="col">Status</th>
                {props.manage && <th scope="col"><span class="visually-hidden">Actions</span></th>}
              </tr>
            </thead>
            <tbody>
              {keys.map((k) => (
                <tr key={k.kid}>
                  <td class="mono small" title={k.kid}>{k.kid.length > 28 ? `${k.kid.slice(0, 27)}…` : k.kid}</td>
                  <td>{k.alg}</td>
                  <td class="mono small">{k.thumbprint.slice(0, 16)}…</td>
                  <td>{formatDate(k.creationDate)}</td>
                  <td>{k.expirationDate ? formatDate(k.expirationDate) : 'never'}</td>
                  <td>
                    <StatusBadge status={k.status} />
                  </td>
                  {props.manage && (
                    <td class="row-actions">
                      <button type="button" class="button small danger-outline" aria-label={`Delete key ${k.kid}`} onClick={() => setRemoving(k)}>
                        Delete key
                      </button>
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {props.manage && !app.jwksUri && (
        <form class="inline-form" aria-label="Add key" onSubmit={(e) => void add(e)} noValidate>
          <div class="field">
            <label for="add-key">Public key</label>
            <textarea id="add-key" rows={5} class="mono" spellcheck={false} value={text} placeholder={'{"kty":"EC","crv":"P-256","x":"…","y":"…"}  or  -----BEGIN PUBLIC KEY-----'} onInput={(e) => setText(e.currentTarget.value)} />
            <p class="hint">A JWK or a PEM public key (RSA 2048+, EC P-256 or Ed25519). Paste the public half only.</p>
          </div>
          {keys !== null && error && <ErrorMessage>{error}</ErrorMessage>}
          <div class="actions left">
            <button type="submit" class="button primary" disabled={busy}>
              Add key
            </button>
          </div>
        </form>
      )}
      {removing && (
        <ConfirmDialog
          title={`Delete key ${removing.kid}?`}
          confirm="Delete"
          onCancel={() => setRemoving(null)}
          onConfirm={async () => {
            await api.delete(`apps/${app.id}/keys/${encodeURIComponent(removing.kid)}`);
            announce(`Deleted the key ${removing.kid}.`);
            setRemoving(null);
            await load();
            props.onChanged();
          }}
        >
          <p>
            Assertions signed with <strong>{removing.kid}</strong> are refused from now on, and every access token minted with it stops working at once. This cannot be undone.
          </p>
        </ConfirmDialog>
      )}
    </section>
  );
}
