/** Small shared pieces: the confirmation dialog, messages, scope lists, the expiry field. */
import type { ComponentChildren } from 'preact';
import { useEffect, useId, useRef, useState } from 'preact/hooks';
import { ApiError } from './api.js';
import { defaultPreset, expiresIn, expiryPresets } from './format.js';

/**
 * A modal confirmation (`role="dialog"` through the native `<dialog>`): says what stops working
 * and that it cannot be undone. Focus starts on Cancel, Escape cancels.
 */
export function ConfirmDialog(props: {
  title: string;
  confirm: string;
  onConfirm: () => void | Promise<void>;
  onCancel: () => void;
  children: ComponentChildren;
  danger?: boolean;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const cancelRef = useRef<HTMLButtonElement>(null);
  const titleId = useId();
  const bodyId = useId();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const dialog = ref.current!;
    if (!dialog.open) dialog.showModal();
    cancelRef.current?.focus();
    return () => {
      if (dialog.open) dialog.close();
    };
  }, []);
  const confirm = async () => {
    setBusy(true);
    setError(null);
    try {
      await props.onConfirm();
    } catch (e) {
      setError(messageOf(e));
      setBusy(false);
    }
  };
  return (
    <dialog
      ref={ref}
      class="dialog"
      aria-labelledby={titleId}
      aria-describedby={bodyId}
      onCancel={(e) => {
        e.preventDefault();
        props.onCancel();
      }}
    >
      <h2 id={titleId}>{props.title}</h2>
      <div id={bodyId} class="dialog-body">
        {props.children}
      </div>
      {error && <ErrorMessage>{error}</ErrorMessage>}
      <div class="actions">
        <button type="button" ref={cancelRef} class="button" onClick={props.onCancel}>
          Cancel
        </button>
        <button type="button" class={props.danger === false ? 'button primary' : 'button danger'} disabled={busy} onClick={() => void confirm()}>
          {props.confirm}
        </button>
      </div>
    </dialog>
  );
}

export function messageOf(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof TypeError) return 'The server could not be reached; check the connection and try again.';
  return error instanceof Error ? error.message : String(error);
}

export function ErrorMessage(props: { children: ComponentChildren }) {
  return (
    <p class="message error" role="alert">
      {props.children}
    </p>
  );
}

export function Scopes(props: { scopes: readonly string[]; empty?: string }) {
  if (props.scopes.length === 0) return <span class="muted">{props.empty ?? 'none'}</span>;
  return (
    <ul class="chips">
      {props.scopes.map((s) => (
        <li key={s} class="chip">
          <code>{s}</code>
        </li>
      ))}
    </ul>
  );
}

export function StatusBadge(props: { status: string; expiringSoon?: boolean | undefined }) {
  if (props.status === 'active' && props.expiringSoon) return <span class="badge warn">Expiring soon</span>;
  const cls = props.status === 'active' ? 'ok' : props.status === 'retiring' ? 'warn' : 'bad';
  const label = props.status === 'active' ? 'Active' : props.status === 'retiring' ? 'Retiring' : 'Expired';
  return <span class={`badge ${cls}`}>{label}</span>;
}

export function Loading() {
  return (
    <p class="muted" role="status">
      Loading…
    </p>
  );
}

export interface ExpiryValue {
  preset: string;
  date: string;
}

export function initialExpiry(ttl: { default: number | null; max: number }): ExpiryValue {
  return { preset: defaultPreset(expiryPresets(ttl)), date: '' };
}

/** "Expires in": 7, 30, 90 days, on a date, or never (where the server's default is no expiry). */
export function ExpiresField(props: { ttl: { default: number | null; max: number }; value: ExpiryValue; onChange: (v: ExpiryValue) => void }) {
  const id = useId();
  const presets = expiryPresets(props.ttl);
  return (
    <div class="field-row">
      <div class="field">
        <label for={`${id}-in`}>Expires in</label>
        <select id={`${id}-in`} value={props.value.preset} onChange={(e) => props.onChange({ ...props.value, preset: e.currentTarget.value })}>
          {presets.map((p) => (
            <option key={p.value} value={p.value}>
              {p.label}
            </option>
          ))}
        </select>
      </div>
      {props.value.preset === 'date' && (
        <div class="field">
          <label for={`${id}-date`}>Expiration date</label>
          <input id={`${id}-date`} type="date" required value={props.value.date} onInput={(e) => props.onChange({ ...props.value, date: e.currentTarget.value })} />
        </div>
      )}
    </div>
  );
}

/** The expiresIn to send, `undefined` for never, or throws the reason it is wrong. */
export function expirySeconds(value: ExpiryValue, ttl: { max: number }): number | undefined {
  const seconds = expiresIn(value.preset, value.date, ttl);
  if (typeof seconds === 'string') throw new Error(seconds);
  return seconds;
}

/** Cursor paging: the cursors of the pages seen, so that Previous works with forward-only cursors. */
export function usePager() {
  const [stack, setStack] = useState<Array<string | null>>([null]);
  return {
    cursor: stack[stack.length - 1] ?? null,
    page: stack.length,
    next: (cursor: string) => setStack((s) => [...s, cursor]),
    previous: () => setStack((s) => (s.length > 1 ? s.slice(0, -1) : s)),
    reset: () => setStack([null]),
  };
}

export function Pager(props: { label: string; page: number; hasNext: boolean; onNext: () => void; onPrevious: () => void; nextLabel?: string; previousLabel?: string }) {
  if (props.page === 1 && !props.hasNext) return null;
  return (
    <nav class="pager" aria-label={props.label}>
      <button type="button" class="button" disabled={props.page === 1} onClick={props.onPrevious}>
        {props.previousLabel ?? 'Previous page'}
      </button>
      <span class="muted">Page {props.page}</span>
      <button type="button" class="button" disabled={!props.hasNext} onClick={props.onNext}>
        {props.nextLabel ?? 'Next page'}
      </button>
    </nav>
  );
}
