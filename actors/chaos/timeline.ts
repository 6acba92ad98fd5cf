// The timeline chart of a chaos run: a self-contained SVG (no scripts, fonts or external
// assets) with acknowledged sends and consumed records per second (left axis), failed and
// indeterminate operations per second as bars (right axis), injected faults as shaded,
// labelled bands, the longest window without an acknowledged send bracketed under the axis,
// example anomalies marked, and the verdict in the title.

import type { CheckResult } from "./checker.js";
import type { FaultOp, History } from "./history.js";

export interface TimelineOptions {
  /** Shown before the verdict, e.g. "kill-broker seed 42". */
  title?: string;
  /** Pixels; default 1200. */
  widthPx?: number;
  /** Pixels; default 600. */
  heightPx?: number;
  /** Most buckets along the x axis; a bucket is 1 s unless the run is longer than this many seconds. Default 300. */
  maxBuckets?: number;
}

interface Series {
  acked: Float64Array;
  consumed: Float64Array;
  failed: Float64Array;
  indeterminate: Float64Array;
}

interface FaultBand {
  from: number;
  to: number;
  label: string;
  kind: string;
}

interface Frame {
  t0: number;
  t1: number;
  bucketMs: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

const COLORS = { acked: "#1a7f37", consumed: "#2f6fdf", failed: "#cf222e", indeterminate: "#e3a008", anomaly: "#8250df" };
const FAULT_FILLS = ["#d0d7de", "#f5c2c7", "#c7d2fe", "#fde68a", "#bbf7d0", "#fbcfe8", "#bae6fd"];

/** Renders the run as an SVG document string. */
export function renderTimeline(history: History, result: CheckResult, options: TimelineOptions = {}): string {
  const width = options.widthPx ?? 1200;
  const height = options.heightPx ?? 600;
  const bounds = timeBounds(history);
  const maxBuckets = options.maxBuckets ?? 300;
  const bucketMs = 1000 * Math.max(1, Math.ceil((bounds.t1 - bounds.t0) / 1000 / maxBuckets));
  const frame: Frame = { ...bounds, bucketMs, left: 80, right: width - 80, top: 150, bottom: height - 110 };
  const series = bucketize(history, frame);
  const bands = faultBands(history, bounds.t1);
  // 10% headroom so a steady rate does not run along the frame.
  const leftMax = axisMax(1.1 * Math.max(1, ...series.acked, ...series.consumed));
  const rightMax = axisMax(1.1 * Math.max(1, ...series.failed.map((f, i) => f + series.indeterminate[i])));
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    titleBlock(result, options.title, width),
    faultLayer(bands, frame),
    axes(frame, leftMax, rightMax),
    errorBars(series, frame, rightMax),
    line(series.consumed, frame, leftMax, COLORS.consumed, "4 3", 1.5),
    line(series.acked, frame, leftMax, COLORS.acked, "", 2.5),
    anomalyMarks(history, result, frame),
    unavailableBracket(result, frame),
    legend(frame, height, bucketMs),
    "</svg>",
  ].join("\n");
}

function timeBounds(history: History): { t0: number; t1: number } {
  let t0 = Infinity;
  let t1 = -Infinity;
  for (const op of history) {
    if (op.time < t0) t0 = op.time;
    if (op.time > t1) t1 = op.time;
  }
  if (t0 === Infinity) return { t0: 0, t1: 1000 };
  return { t0, t1: Math.max(t1, t0 + 1000) };
}

/** Per-bucket counts, scaled to per second. */
function bucketize(history: History, frame: Frame): Series {
  const n = Math.max(1, Math.ceil((frame.t1 - frame.t0 + 1) / frame.bucketMs));
  const s: Series = { acked: new Float64Array(n), consumed: new Float64Array(n), failed: new Float64Array(n), indeterminate: new Float64Array(n) };
  for (const op of history) {
    const b = Math.min(n - 1, Math.floor((op.time - frame.t0) / frame.bucketMs));
    if (op.f === "send" || op.f === "commit" || op.f === "poll") {
      if (op.type === "fail") s.failed[b]++;
      else if (op.type === "info") s.indeterminate[b]++;
    }
    if (op.f === "send" && op.type === "ok") s.acked[b]++;
    else if (op.f === "poll" && op.type === "ok") s.consumed[b] += op.records?.length ?? 0;
  }
  const perSecond = 1000 / frame.bucketMs;
  for (const a of [s.acked, s.consumed, s.failed, s.indeterminate]) for (let i = 0; i < n; i++) a[i] *= perSecond;
  return s;
}

/** Fault starts paired with their end (same kind and target), a heal, or the end of the run. */
function faultBands(history: History, t1: number): FaultBand[] {
  const open = new Map<string, { op: FaultOp; band: FaultBand }[]>();
  const bands: FaultBand[] = [];
  for (const op of history) {
    if (op.f === "heal") {
      for (const list of open.values()) for (const o of list) o.band.to = op.time;
      open.clear();
    }
    if (op.f !== "fault") continue;
    const key = `${op.kind}\u0000${op.target}`;
    if (op.type === "start") {
      const band = { from: op.time, to: t1, kind: op.kind, label: `${op.kind} ${op.target}` };
      bands.push(band);
      open.set(key, [...(open.get(key) ?? []), { op, band }]);
    } else {
      const first = open.get(key)?.shift();
      if (first) first.band.to = op.time;
    }
  }
  return bands;
}

const x = (f: Frame, t: number) => f.left + ((t - f.t0) / (f.t1 - f.t0)) * (f.right - f.left);
const y = (f: Frame, v: number, max: number) => f.bottom - (v / max) * (f.bottom - f.top);
const bucketX = (f: Frame, i: number) => x(f, f.t0 + (i + 0.5) * f.bucketMs);
const fmt = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(1));

function titleBlock(result: CheckResult, title: string | undefined, width: number): string {
  const verdict = result.ok ? "PASS — no safety anomalies" : "FAIL — safety anomalies found";
  const counts = `acked ${result.acked} · lost ${result.lost} · duplicate ${result.duplicate} · inconsistent ${result.inconsistent} · nonmonotonic ${result.nonmonotonic} · gap ${result.gap} · double-owner ${result.doubleOwner} · commit-regression ${result.commitRegression} · longest unavailable ${result.maxUnavailableMs} ms`;
  // Separate lines rather than tspans: some SVG rasterizers misplace centred tspans.
  return [
    `<text x="${width / 2}" y="28" text-anchor="middle" font-size="17" font-weight="bold">${escapeXml(title ? `Skein chaos run: ${title}` : "Skein chaos run")}</text>`,
    `<text x="${width / 2}" y="52" text-anchor="middle" font-size="17" font-weight="bold" fill="${result.ok ? COLORS.acked : COLORS.failed}">${verdict}</text>`,
    `<text x="${width / 2}" y="74" text-anchor="middle" fill="#444">${escapeXml(counts)}</text>`,
  ].join("\n");
}

/** Shaded bands with labels stacked in lanes above the plot so they never overlap. */
function faultLayer(bands: FaultBand[], f: Frame): string {
  const kinds = [...new Set(bands.map((b) => b.kind))];
  const laneEnds: number[] = [];
  const out: string[] = [];
  for (const band of bands) {
    const x0 = x(f, band.from);
    const x1 = Math.max(x0 + 2, x(f, band.to));
    const fill = FAULT_FILLS[kinds.indexOf(band.kind) % FAULT_FILLS.length];
    const labelWidth = textWidthPx(band.label) + 8;
    let lane = laneEnds.findIndex((end) => end < x0);
    if (lane === -1) lane = laneEnds.length < 4 ? laneEnds.push(0) - 1 : laneEnds.indexOf(Math.min(...laneEnds));
    laneEnds[lane] = x0 + labelWidth;
    const labelY = f.top - 8 - lane * 15;
    out.push(`<rect x="${x0.toFixed(1)}" y="${f.top}" width="${(x1 - x0).toFixed(1)}" height="${f.bottom - f.top}" fill="${fill}" fill-opacity="0.55"/>`);
    out.push(`<line x1="${x0.toFixed(1)}" y1="${labelY + 3}" x2="${x0.toFixed(1)}" y2="${f.bottom}" stroke="#57606a" stroke-dasharray="2 2"/>`);
    out.push(`<text x="${(x0 + 3).toFixed(1)}" y="${labelY}" fill="#24292f">${escapeXml(band.label)}</text>`);
  }
  return out.join("\n");
}

function axes(f: Frame, leftMax: number, rightMax: number): string {
  const out = [`<rect x="${f.left}" y="${f.top}" width="${f.right - f.left}" height="${f.bottom - f.top}" fill="none" stroke="#57606a"/>`];
  for (const v of ticks(leftMax)) {
    const yy = y(f, v, leftMax).toFixed(1);
    out.push(`<line x1="${f.left}" y1="${yy}" x2="${f.right}" y2="${yy}" stroke="#d8dee4" stroke-width="0.8"/>`);
    out.push(`<text x="${f.left - 6}" y="${yy}" dy="4" text-anchor="end">${fmt(v)}</text>`);
  }
  for (const v of ticks(rightMax)) {
    out.push(`<text x="${f.right + 6}" y="${y(f, v, rightMax).toFixed(1)}" dy="4" fill="${COLORS.failed}">${fmt(v)}</text>`);
  }
  const spanS = (f.t1 - f.t0) / 1000;
  for (const s of ticks(spanS, 10)) {
    const xx = x(f, f.t0 + s * 1000).toFixed(1);
    out.push(`<line x1="${xx}" y1="${f.bottom}" x2="${xx}" y2="${f.bottom + 5}" stroke="#57606a"/>`);
    out.push(`<text x="${xx}" y="${f.bottom + 18}" text-anchor="middle">${fmt(s)} s</text>`);
  }
  const midY = (f.top + f.bottom) / 2;
  out.push(`<text transform="translate(${f.left - 55} ${midY}) rotate(-90)" text-anchor="middle">records per second</text>`);
  out.push(`<text transform="translate(${f.right + 55} ${midY}) rotate(90)" text-anchor="middle" fill="${COLORS.failed}">errors per second</text>`);
  out.push(`<text x="${(f.left + f.right) / 2}" y="${f.bottom + 36}" text-anchor="middle">time since the first operation</text>`);
  return out.join("\n");
}

function errorBars(s: Series, f: Frame, max: number): string {
  const n = s.failed.length;
  const w = Math.max(1, ((f.right - f.left) / n) * 0.7);
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    if (s.failed[i] + s.indeterminate[i] === 0) continue;
    const x0 = (bucketX(f, i) - w / 2).toFixed(1);
    const yFailed = y(f, s.failed[i], max);
    const yTop = y(f, s.failed[i] + s.indeterminate[i], max);
    out.push(`<rect x="${x0}" y="${yFailed.toFixed(1)}" width="${w.toFixed(1)}" height="${(f.bottom - yFailed).toFixed(1)}" fill="${COLORS.failed}" fill-opacity="0.75"/>`);
    out.push(`<rect x="${x0}" y="${yTop.toFixed(1)}" width="${w.toFixed(1)}" height="${(yFailed - yTop).toFixed(1)}" fill="${COLORS.indeterminate}" fill-opacity="0.85"/>`);
  }
  return out.join("\n");
}

function line(values: Float64Array, f: Frame, max: number, color: string, dash: string, widthPx: number): string {
  const points: string[] = [];
  for (let i = 0; i < values.length; i++) points.push(`${bucketX(f, i).toFixed(1)},${y(f, values[i], max).toFixed(1)}`);
  const dashAttr = dash ? ` stroke-dasharray="${dash}"` : "";
  return `<polyline points="${points.join(" ")}" fill="none" stroke="${color}" stroke-width="${widthPx}" stroke-linejoin="round"${dashAttr}/>`;
}

/** A marker under the plot at the time of each example anomaly the result carries. */
function anomalyMarks(history: History, result: CheckResult, f: Frame): string {
  const e = result.examples;
  const indexes = new Set<number>([
    ...e.lost.map((a) => a.index),
    ...e.nonmonotonic.map((a) => a.index),
    ...e.gap.map((a) => a.index),
    ...e.doubleOwner.map((a) => a.indexes[a.indexes.length - 1]),
    ...e.commitRegression.map((a) => a.index),
    ...e.inconsistent.flatMap((a) => a.witnesses.slice(1).map((w) => w.index)),
  ]);
  if (indexes.size === 0) return "";
  const out: string[] = [];
  for (const op of history) {
    if (!indexes.has(op.index)) continue;
    const xx = x(f, op.time);
    const yy = f.bottom - 6;
    out.push(`<path d="M${(xx - 5).toFixed(1)},${yy - 5} l10,10 m0,-10 l-10,10" stroke="${COLORS.anomaly}" stroke-width="2"/>`);
  }
  return out.join("\n");
}

function unavailableBracket(result: CheckResult, f: Frame): string {
  const w = result.maxUnavailableWindow;
  if (w === null || w.to <= w.from) return "";
  const x0 = x(f, w.from).toFixed(1);
  const x1 = x(f, w.to).toFixed(1);
  const yy = f.bottom + 50;
  return [
    `<path d="M${x0},${yy - 5} v5 H${x1} v-5" fill="none" stroke="#57606a" stroke-width="1.5"/>`,
    `<text x="${x0}" y="${yy + 14}" fill="#57606a">longest window without an acknowledged send: ${result.maxUnavailableMs} ms</text>`,
  ].join("\n");
}

function legend(f: Frame, height: number, bucketMs: number): string {
  const items: [string, string][] = [
    [`<line x1="0" y1="0" x2="22" y2="0" stroke="${COLORS.acked}" stroke-width="2.5"/>`, "acknowledged sends/s"],
    [`<line x1="0" y1="0" x2="22" y2="0" stroke="${COLORS.consumed}" stroke-width="1.5" stroke-dasharray="4 3"/>`, "consumed records/s"],
    [`<rect x="4" y="-6" width="14" height="12" fill="${COLORS.failed}" fill-opacity="0.75"/>`, "failed ops/s (right axis)"],
    [`<rect x="4" y="-6" width="14" height="12" fill="${COLORS.indeterminate}" fill-opacity="0.85"/>`, "indeterminate ops/s (right axis)"],
    [`<rect x="4" y="-6" width="14" height="12" fill="${FAULT_FILLS[0]}" stroke="#57606a" stroke-dasharray="2 2"/>`, "fault in force"],
    [`<path d="M6,-5 l10,10 m0,-10 l-10,10" stroke="${COLORS.anomaly}" stroke-width="2"/>`, "anomaly example"],
  ];
  const out: string[] = [];
  let xx = f.left;
  const yy = height - 18;
  for (const [swatch, label] of items) {
    out.push(`<g transform="translate(${xx} ${yy})">${swatch}<text x="28" y="4">${escapeXml(label)}</text></g>`);
    xx += 48 + textWidthPx(label);
  }
  if (bucketMs > 1000) out.push(`<text x="${f.right}" y="${yy - 18}" text-anchor="end" fill="#57606a">rates averaged over ${bucketMs / 1000} s buckets</text>`);
  return out.join("\n");
}

/** Rounds up to 1, 2, 2.5 or 5 times a power of ten. */
function niceStep(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/** The smallest multiple of the tick step (about 5 ticks) that holds v. */
function axisMax(v: number): number {
  const step = niceStep(v / 5);
  return Math.ceil(v / step - 1e-9) * step;
}

/** Evenly spaced round tick values from 0 to max (about `count` of them). */
function ticks(max: number, count = 5): number[] {
  const step = niceStep(max / count);
  const out: number[] = [];
  for (let v = 0; v <= max + step * 1e-9; v += step) out.push(Math.round(v * 1e6) / 1e6);
  return out;
}

/** Approximate advance of 12 px DejaVu Sans text, enough to lay out labels without a font. */
function textWidthPx(text: string): number {
  let w = 0;
  for (const c of text) {
    if ("il|!.,:;'".includes(c)) w += 3.4;
    else if ("jtfr ()/[]-".includes(c)) w += 4.6;
    else if ("mwMW".includes(c)) w += 10.5;
    else if (c >= "A" && c <= "Z") w += 8.4;
    else w += 7.3;
  }
  return w;
}

function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c]!);
}
