/**
 * The app's lockout (issue 21 item 3): failed authentications naming it, in words, and "Clear
 * lockout" behind a confirmation. Failures throttle the addresses they come from, never the app's
 * correct credential, so the card says what is throttled and that the app itself keeps working.
 */
import { useState } from 'preact/hooks';
import type { AppDetails, LockoutView } from './api.js';
import { useConsole } from './context.js';
import { ConfirmDialog } from './ui.js';

const TIME = new Intl.DateTimeFormat('en', { hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZoneName: 'short' });

const plural = (n: number, one: string, many: string) => `${n.toLocaleString('en')} ${n === 1 ? one : many}`;

/** "7 failed attempts; 2 addresses throttled until 14:05 UTC", or that nothing happened. */
export function lockoutSummary(lockout: LockoutView, now = Date.now()): string {
  const until = lockout.until !== null && Date.parse(lockout.until) > now ? TIME.format(new Date(lockout.until)) : null;
  if (lockout.failures === 0 && until === null) return 'No failed attempts recently.';
  const failures = `${plural(lockout.failures, 'failed attempt', 'failed attempts')} recently`;
  if (until === null) return `${failures}; no address is throttled.`;
  return `${failures}; ${plural(lockout.throttledSources, 'address', 'addresses')} throttled until ${until}.`;
}

export function LockoutCard(props: { app: AppDetails; manage: boolean; onCleared: () => Promise<void> }) {
  const { api, announce } = useConsole();
  const [confirming, setConfirming] = useState(false);
  const { app } = props;
  const lockout = app.lockout;
  if (!lockout) return null;
  const active = lockout.failures > 0 || lockout.throttledSources > 0;
  return (
    <section class="card" aria-labelledby="lockout-title">
      <div class="section-head">
        <h2 id="lockout-title">Lockout</h2>
        {props.manage && active && (
          <button type="button" class="button" onClick={() => setConfirming(true)}>
            Clear lockout
          </button>
        )}
      </div>
      <p class={active ? 'message warn' : undefined}>{lockoutSummary(lockout)}</p>
      <p class="hint">
        Failed attempts slow down the address that makes them, never this app: its correct credential keeps working from any other address.
        {lockout.lastFailureAt && <> The last one was at {TIME.format(new Date(lockout.lastFailureAt))}.</>}
      </p>
      {confirming && (
        <ConfirmDialog
          title={`Clear the lockout of ${app.name}?`}
          confirm="Clear lockout"
          danger={false}
          onCancel={() => setConfirming(false)}
          onConfirm={async () => {
            await api.delete(`apps/${app.id}/lockout`);
            setConfirming(false);
            announce(`Cleared the lockout of ${app.name}.`);
            await props.onCleared();
          }}
        >
          <p>
            The {plural(lockout.throttledSources, 'throttled address', 'throttled addresses')} of <strong>{app.name}</strong> may try again at once, and its failure count starts from
            zero. An address that keeps failing is throttled again. This cannot be undone.
          </p>
        </ConfirmDialog>
      )}
    </section>
  );
}
