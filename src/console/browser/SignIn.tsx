/** Sign-in without a host session: an app's client id and secret, exchanged for an access token. */
import { useState } from 'preact/hooks';
import type { Api, BearerSession } from './api.js';
import { ErrorMessage, messageOf } from './ui.js';

export function SignIn(props: { api: Api; title: string; message: string | null; onSignedIn: (session: BearerSession) => Promise<void> }) {
  const [clientId, setClientId] = useState('');
  const [secret, setSecret] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    if (!clientId.trim() || !secret.trim()) {
      setError('Enter the client ID and the client secret of an app that may manage apps.');
      return;
    }
    setBusy(true);
    try {
      const { session } = await props.api.signIn(clientId.trim(), secret.trim());
      // The secret is not needed any more: only the access token, in memory, is kept.
      setSecret('');
      await props.onSignedIn(session);
    } catch (e) {
      setError(messageOf(e));
      setBusy(false);
    }
  };

  return (
    <main id="main" class="main signin">
      <form class="card signin-card" onSubmit={(e) => void submit(e)} noValidate>
        <h1>{props.title}</h1>
        <p class="muted">
          Sign in with the client ID and client secret of an app holding <code>apps:read</code> or <code>apps:write</code>. The session lives in this tab only, in memory.
        </p>
        {props.message && (
          <p class="message info" role="status">
            {props.message}
          </p>
        )}
        <div class="field">
          <label for="signin-client-id">Client ID</label>
          <input id="signin-client-id" name="client_id" autocomplete="username" spellcheck={false} value={clientId} onInput={(e) => setClientId(e.currentTarget.value)} required />
        </div>
        <div class="field">
          <label for="signin-secret">Client secret</label>
          <input id="signin-secret" name="client_secret" type="password" autocomplete="current-password" spellcheck={false} value={secret} onInput={(e) => setSecret(e.currentTarget.value)} required />
        </div>
        {error && <ErrorMessage>{error}</ErrorMessage>}
        <button type="submit" class="button primary wide" disabled={busy}>
          Sign in
        </button>
      </form>
    </main>
  );
}
