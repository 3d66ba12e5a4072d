/** Order statistics of a few samples (linear interpolation between closest ranks). */
export function quantile(values, q) {
  const v = [...values].sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const pos = (v.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return v[lo] + (v[hi] - v[lo]) * (pos - lo);
}

export const median = (values) => quantile(values, 0.5);

export function summary(values) {
  const med = median(values);
  const min = Math.min(...values);
  const max = Math.max(...values);
  return {
    median: med,
    min,
    max,
    q1: quantile(values, 0.25),
    q3: quantile(values, 0.75),
    spreadPercent: med > 0 ? (100 * (max - min)) / med : NaN,
    n: values.length,
  };
}
