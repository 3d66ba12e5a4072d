/**
 * A new secret, shown once: masked with reveal, Copy (announced), three downloads built in memory,
 * a curl snippet, and a guard (a confirmation, `beforeunload`) before it is gone for good.
 */
import { useEffect, useState } from 'preact/hooks';
import { useConsole } from './context.js';
import { curlSnippet, download, envFile, fileBase, formatDate, postmanFile, textFile, type SecretFile } from './format.js';
import { ConfirmDialog } from './ui.js';

export function SecretOnce(props: { file: SecretFile; onDone: () => void }) {
  const { announce } = useConsole();
  const { file } = props;
  const [revealed, setRevealed] = useState(false);
  const [saved, setSaved] = useState(false);
  const [confirming, setConfirming] = useState(false);

  useEffect(() => {
    // Closing or reloading the tab would lose the secret: the browser asks first.
    const guard = (e: BeforeUnloadEvent) => {
      e.preventDefault();
      e.returnValue = '';
    };
    window.addEventListener('beforeunload', guard);
    return () => window.removeEventListener('beforeunload', guard);
  }, []);

  const copy = async (text: string, what: string) => {
    try {
      await navigator.clipboard.writeText(text);
      if (what === 'client secret') setSaved(true);
      announce(`Copied the ${what} to the clipboard.`);
    } catch {
      announce(`Could not copy the ${what}: the browser refused access to the clipboard. Select it and copy it by hand.`);
    }
  };

  const save = (suffix: string, type: string, text: string, what: string) => {
    download(`${fileBase(file)}${suffix}`, type, text);
    setSaved(true);
    announce(`Downloaded ${what}.`);
  };

  const masked = '•'.repeat(Math.min(file.secret.length, 32));

  return (
    <section aria-labelledby="secret-title" class="secret">
      <h1 id="secret-title">Save the client secret of {file.appName}</h1>
      <p class="message warn">
        <strong>This is the only time the secret is shown.</strong> Store it in a password manager or a secret store now; it cannot be shown again, only regenerated.
      </p>
      <div class="card">
        <dl class="secret-fields">
          <div class="secret-row">
            <dt>Client ID</dt>
            <dd>
              <code class="value" id="secret-client-id">
                {file.clientId}
              </code>
              <button type="button" class="button small" onClick={() => void copy(file.clientId, 'client ID')}>
                Copy client ID
              </button>
            </dd>
          </div>
          <div class="secret-row">
            <dt>Client secret</dt>
            <dd>
              <code class="value secret-value" data-revealed={revealed ? 'true' : 'false'}>
                {revealed ? (
                  file.secret
                ) : (
                  <>
                    <span aria-hidden="true">{masked}</span>
                    <span class="visually-hidden">hidden; press Reveal to show it</span>
                  </>
                )}
              </code>
              <button type="button" class="button small" aria-pressed={revealed} onClick={() => setRevealed((r) => !r)}>
                {revealed ? 'Hide' : 'Reveal'}
              </button>
              <button type="button" class="button small primary" onClick={() => void copy(file.secret, 'client secret')}>
                Copy
              </button>
            </dd>
          </div>
          <div class="secret-row">
            <dt>Token</dt>
            <dd>
              {file.tokenName} <span class="muted">· expires {formatDate(file.expirationDate, 'never')}</span>
            </dd>
          </div>
        </dl>
        <div class="actions left">
          <button type="button" class="button" onClick={() => save('.env', 'text/plain', envFile(file), 'the .env file')}>
            Download .env
          </button>
          <button type="button" class="button" onClick={() => save('.postman_environment.json', 'application/json', postmanFile(file), 'the Postman environment')}>
            Download Postman environment
          </button>
          <button type="button" class="button" onClick={() => save('.txt', 'text/plain', textFile(file), 'the text file')}>
            Download .txt
          </button>
        </div>
      </div>
      <h2>Try it</h2>
      <p class="muted">With the .env file beside you, this asks the token endpoint for an access token:</p>
      <pre class="code">
        <code>{curlSnippet(file)}</code>
      </pre>
      <div class="actions left">
        <button type="button" class="button small" onClick={() => void copy(curlSnippet(file), 'curl command')}>
          Copy curl command
        </button>
      </div>
      <div class="actions">
        <button type="button" class="button primary" onClick={() => setConfirming(true)}>
          Done
        </button>
      </div>
      {confirming && (
        <ConfirmDialog title="Is the secret saved?" confirm="Leave" danger={false} onCancel={() => setConfirming(false)} onConfirm={props.onDone}>
          <p>
            The client secret of <strong>{file.appName}</strong> will not be shown again, here or anywhere else: only its hint is kept.{' '}
            {saved ? '' : 'You have not copied or downloaded it yet. '}
          </p>
          <p>
            If it is lost, open the app and press <strong>Regenerate</strong> on the token <strong>{file.tokenName}</strong> (or add a new token): that makes a new secret and stops this
            one.
          </p>
        </ConfirmDialog>
      )}
    </section>
  );
}
