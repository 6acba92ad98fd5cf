// Small numeric helpers shared by the benchmarks and their fixtures.

export interface LatencySummary {
  count: number;
  p50Us: number;
  p99Us: number;
  meanUs: number;
  maxUs: number;
}

/** Percentiles of latency samples in microseconds (nearest-rank; sorts a copy). */
export function summarize(samplesUs: ArrayLike<number>): LatencySummary {
  const sorted = Float64Array.from(samplesUs).sort();
  const n = sorted.length;
  if (n === 0) return { count: 0, p50Us: 0, p99Us: 0, meanUs: 0, maxUs: 0 };
  const at = (q: number) => sorted[Math.min(n - 1, Math.ceil(q * n) - 1)];
  let sum = 0;
  for (let i = 0; i < n; i++) sum += sorted[i];
  return { count: n, p50Us: round1(at(0.5)), p99Us: round1(at(0.99)), meanUs: round1(sum / n), maxUs: round1(sorted[n - 1]) };
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}
