/**
 * A row's trend in the app list: requests per UTC day over the last 14 days (accepted, refused and
 * rate-limited together) as a small SVG line, from the same `GET /apps/:id/usage` the app page
 * charts. One small request per visible row, made when the row is drawn; an older server without
 * the usage API shows nothing.
 */
import { useEffect, useState } from 'preact/hooks';
import { useConsole } from './context.js';

/** Days of the trend. */
export const SPARK_DAYS = 14;
const W = 56;
const H = 16;

interface DayPoint {
  start: string;
  grants: Record<string, number>;
  accepted: number;
  refused: Record<string, number>;
  rateLimited: number;
  clientAuthFailures: number;
  refreshes: number;
}

const sum = (values: Record<string, number>) => Object.values(values).reduce((a, b) => a + b, 0);

/** The requests of each day: everything the usage API counted for the app that day. */
export function dailyRequests(series: DayPoint[]): number[] {
  return series.map((p) => p.accepted + sum(p.grants) + p.refreshes + sum(p.refused) + p.clientAuthFailures + p.rateLimited);
}

/** The first instant of the UTC day `days` days before today's. */
function daysAgo(days: number): string {
  const d = new Date();
  d.setUTCHours(0, 0, 0, 0);
  d.setUTCDate(d.getUTCDate() - days + 1);
  return d.toISOString();
}

export function UsageSparkline(props: { appId: string }) {
  const { api } = useConsole();
  const [days, setDays] = useState<number[] | null>(null);

  useEffect(() => {
    let live = true;
    api.get<{ series: DayPoint[] }>(`apps/${props.appId}/usage?interval=day&from=${encodeURIComponent(daysAgo(SPARK_DAYS))}`).then(
      (d) => live && setDays(dailyRequests(d.series)),
      // The row stays readable without its trend (an older server, a network blip).
      () => live && setDays(null),
    );
    return () => {
      live = false;
    };
  }, [api, props.appId]);

  if (days === null || days.length === 0) return null;
  const total = days.reduce((a, b) => a + b, 0);
  const max = Math.max(1, ...days);
  const step = days.length > 1 ? W / (days.length - 1) : W;
  const points = days.map((n, i) => `${(i * step).toFixed(1)},${(H - 1 - (n / max) * (H - 2)).toFixed(1)}`).join(' ');
  return (
    <svg class="sparkline" viewBox={`0 0 ${W} ${H}`} width={W} height={H} role="img" aria-label={`Requests per day, last ${days.length} days: ${total} in all, at most ${Math.max(...days)} a day`}>
      <polyline points={points} />
    </svg>
  );
}
