/**
 * The app's usage (`GET /apps/:id/usage`): per hour over the last 24 hours or per UTC day over the
 * last 30 days, accepted vs refused vs rate-limited, as stacked bars drawn in SVG (no library, no
 * inline style: the strict CSP holds), with the totals in words beside it.
 */
import { useEffect, useState } from 'preact/hooks';
import { useConsole } from './context.js';
import { formatDate } from './format.js';
import { ErrorMessage, Loading, messageOf } from './ui.js';

interface UsagePoint {
  start: string;
  grants: Record<string, number>;
  accepted: number;
  refused: Record<string, number>;
  rateLimited: number;
  clientAuthFailures: number;
  refreshes: number;
}

interface UsageSeries {
  interval: 'hour' | 'day';
  from: string;
  to: string;
  series: UsagePoint[];
}

/** One bar: what got through, what was refused, what was rate-limited. */
interface Bar {
  start: string;
  ok: number;
  refused: number;
  limited: number;
}

const sum = (values: Record<string, number>) => Object.values(values).reduce((a, b) => a + b, 0);

export function barsOf(series: UsagePoint[]): Bar[] {
  return series.map((p) => ({
    start: p.start,
    ok: p.accepted + sum(p.grants) + p.refreshes,
    refused: sum(p.refused) + p.clientAuthFailures,
    limited: p.rateLimited,
  }));
}

const W = 600;
const H = 120;

export function UsageCard(props: { appId: string }) {
  const { api } = useConsole();
  const [interval, setPeriod] = useState<'hour' | 'day'>('hour');
  const [data, setData] = useState<UsageSeries | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [missing, setMissing] = useState(false);

  useEffect(() => {
    let live = true;
    setError(null);
    api.get<UsageSeries>(`apps/${props.appId}/usage?interval=${interval}`).then(
      (d) => live && setData(d),
      (e: unknown) => {
        if (!live) return;
        // An older server without the usage API: say nothing rather than fail the page.
        if (e instanceof Error && 'status' in e && (e as { status: number }).status === 404 && !data) setMissing(true);
        else setError(messageOf(e));
      },
    );
    return () => {
      live = false;
    };
  }, [api, props.appId, interval]);

  if (missing) return null;
  const bars = data ? barsOf(data.series) : [];
  const totals = bars.reduce((t, b) => ({ ok: t.ok + b.ok, refused: t.refused + b.refused, limited: t.limited + b.limited }), { ok: 0, refused: 0, limited: 0 });
  const period = interval === 'hour' ? 'the last 24 hours' : 'the last 30 days';
  return (
    <section class="card" aria-labelledby="usage-title">
      <div class="section-head">
        <h2 id="usage-title">Usage</h2>
        <div class="segmented" role="group" aria-label="Usage period">
          <button type="button" class="button small" aria-pressed={interval === 'hour'} onClick={() => setPeriod('hour')}>
            24 hours
          </button>
          <button type="button" class="button small" aria-pressed={interval === 'day'} onClick={() => setPeriod('day')}>
            30 days
          </button>
        </div>
      </div>
      {error && <ErrorMessage>{error}</ErrorMessage>}
      {!data && !error && <Loading />}
      {data && (
        <>
          <p class="usage-legend">
            <span class="key ok">{totals.ok} accepted</span>
            <span class="key refused">{totals.refused} refused</span>
            <span class="key limited">{totals.limited} rate-limited</span>
            <span class="muted">in {period}</span>
          </p>
          {totals.ok + totals.refused + totals.limited === 0 ? (
            <p class="muted">No requests in {period}.</p>
          ) : (
            <UsageBars bars={bars} label={`Requests per ${interval} in ${period}: ${totals.ok} accepted, ${totals.refused} refused, ${totals.limited} rate-limited.`} />
          )}
          <p class="muted small">
            {formatDate(data.from)} to {formatDate(data.to)}
          </p>
        </>
      )}
    </section>
  );
}

/** Stacked bars, scaled to the busiest bucket. */
function UsageBars(props: { bars: Bar[]; label: string }) {
  const { bars } = props;
  const max = Math.max(1, ...bars.map((b) => b.ok + b.refused + b.limited));
  const step = W / Math.max(1, bars.length);
  const width = Math.max(1, step - 2);
  return (
    <svg class="usage-chart" viewBox={`0 0 ${W} ${H}`} preserveAspectRatio="none" role="img" aria-label={props.label}>
      <line class="axis" x1="0" y1={H - 0.5} x2={W} y2={H - 0.5} />
      {bars.map((b, i) => {
        const x = i * step + 1;
        let y = H;
        const part = (n: number, cls: string) => {
          if (n === 0) return null;
          const h = Math.max(1, (n / max) * (H - 4));
          y -= h;
          return <rect key={cls} class={cls} x={x} y={y} width={width} height={h} />;
        };
        return (
          <g key={b.start}>
            <title>{`${formatDate(b.start)}: ${b.ok} accepted, ${b.refused} refused, ${b.limited} rate-limited`}</title>
            {part(b.ok, 'bar-ok')}
            {part(b.refused, 'bar-refused')}
            {part(b.limited, 'bar-limited')}
          </g>
        );
      })}
    </svg>
  );
}
