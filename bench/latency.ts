// Latency histograms (HdrHistogram, µs, 3 significant digits) that travel between the load
// clients and the bench process as compressed base64, merge across producers, and summarize
// into the percentiles the reports and charts show.

import * as hdr from "hdr-histogram-js";

/** Highest latency a histogram tracks, µs (a minute). */
const HIGHEST_TRACKABLE_US = 60_000_000;

export interface LatencyHistogramJson {
  /** HdrHistogram V2 compressed, base64. */
  encoded: string;
}

export interface LatencyPercentiles {
  count: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
  meanUs: number;
  /** [percentile, µs] points for a percentile curve (0 … 99.99 and max). */
  curve: Array<[number, number]>;
}

function newHistogram(): hdr.Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: HIGHEST_TRACKABLE_US, numberOfSignificantValueDigits: 3 });
}

/** Records latencies given in ms (as measured), stored in µs. */
export class LatencyRecorder {
  private readonly histogram = newHistogram();

  record(ms: number): void {
    const us = Math.round(ms * 1000);
    this.histogram.recordValue(Math.min(Math.max(us, 1), HIGHEST_TRACKABLE_US));
  }

  toJson(): LatencyHistogramJson {
    return { encoded: hdr.encodeIntoCompressedBase64(this.histogram) };
  }
}

/** Merges histograms (e.g. of several producers) and summarizes them. */
export function mergeLatencies(parts: Array<LatencyHistogramJson | undefined>): LatencyPercentiles | null {
  const present = parts.filter((p): p is LatencyHistogramJson => p !== undefined);
  if (present.length === 0) return null;
  const total = newHistogram();
  for (const p of present) total.add(hdr.decodeFromCompressedBase64(p.encoded));
  if (total.totalCount === 0) return null;
  const at = (q: number) => total.getValueAtPercentile(q);
  const curve: Array<[number, number]> = [0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99].map((q) => [q, at(q)]);
  curve.push([100, total.maxValue]);
  return { count: total.totalCount, p50Us: at(50), p90Us: at(90), p99Us: at(99), p999Us: at(99.9), maxUs: total.maxValue, meanUs: Math.round(total.mean), curve };
}
