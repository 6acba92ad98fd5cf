// Renders the suites' charts as self-contained SVG files (no scripts, no external fonts or
// styles) and one HTML page that inlines them all: horizontal throughput bars (Skein and its
// peers in different colours) and latency percentile curves on a "nines" axis
// (x = -log10(1 - p), so p50, p90, p99, p99.9 are evenly spaced), log-scaled latency.

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Chart } from "./report.js";

const PALETTE = ["#2563eb", "#f97316", "#16a34a", "#dc2626", "#9333ea", "#0891b2", "#ca8a04", "#db2777"];
const GROUP_COLOURS: Record<string, string> = { Skein: "#2563eb", peer: "#9ca3af" };

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function compact(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(n >= 1e7 ? 0 : 2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(n >= 1e4 ? 0 : 1)}k`;
  return String(Math.round(n * 10) / 10);
}

export function barsSvg(chart: Extract<Chart, { kind: "bars" }>): string {
  const rowH = 22;
  const labelW = 300;
  const barW = 420;
  const top = 40;
  const height = top + chart.bars.length * rowH + 30;
  const width = labelW + barW + 90;
  const max = Math.max(1, ...chart.bars.map((b) => b.value));
  const rows = chart.bars
    .map((b, i) => {
      const y = top + i * rowH;
      const len = Math.max(1, (b.value / max) * barW);
      const colour = GROUP_COLOURS[b.group] ?? PALETTE[i % PALETTE.length];
      return (
        `<text x="${labelW - 8}" y="${y + 15}" text-anchor="end">${esc(b.label)}</text>` +
        `<rect x="${labelW}" y="${y + 3}" width="${len.toFixed(1)}" height="${rowH - 6}" fill="${colour}"/>` +
        `<text x="${labelW + len + 6}" y="${y + 15}">${compact(b.value)}</text>`
      );
    })
    .join("\n");
  return svg(width, height, `<text x="10" y="22" font-weight="bold" font-size="15">${esc(chart.title)}</text>\n${rows}\n<text x="${labelW}" y="${height - 8}" fill="#555">${esc(chart.unit)}; blue = Skein, grey = peers</text>`);
}

export function percentilesSvg(chart: Extract<Chart, { kind: "percentiles" }>): string {
  const width = 760;
  const height = 420;
  const left = 70;
  const right = 190;
  const top = 40;
  const bottom = 50;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const nines = (p: number) => -Math.log10(Math.max(1 - p / 100, 1e-5));
  const maxX = nines(99.999);
  const all = chart.series.flatMap((s) => s.points.map(([, v]) => Math.max(v, 1)));
  const lo = Math.floor(Math.log10(Math.min(...all, 10)));
  const hi = Math.ceil(Math.log10(Math.max(...all, 100)));
  const round = (v: number) => Math.round(v * 10) / 10;
  const x = (p: number) => round(left + (Math.min(nines(p), maxX) / maxX) * plotW);
  const y = (us: number) => round(top + plotH - ((Math.log10(Math.max(us, 1)) - lo) / Math.max(hi - lo, 1)) * plotH);
  const grid: string[] = [];
  for (const p of [0, 90, 99, 99.9, 99.99, 99.999]) {
    grid.push(`<line x1="${x(p)}" y1="${top}" x2="${x(p)}" y2="${top + plotH}" stroke="#ddd"/><text x="${x(p)}" y="${top + plotH + 18}" text-anchor="middle">${p === 99.999 ? "max" : `p${p}`}</text>`);
  }
  for (let e = lo; e <= hi; e++) {
    const us = 10 ** e;
    const label = us >= 1e6 ? `${us / 1e6} s` : us >= 1e3 ? `${us / 1e3} ms` : `${us} µs`;
    grid.push(`<line x1="${left}" y1="${y(us)}" x2="${left + plotW}" y2="${y(us)}" stroke="#ddd"/><text x="${left - 6}" y="${y(us) + 4}" text-anchor="end">${label}</text>`);
  }
  const lines = chart.series
    .map((s, i) => {
      const colour = PALETTE[i % PALETTE.length];
      const pts = s.points.map(([p, v]) => `${x(p === 100 ? 99.999 : p).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
      return `<polyline points="${pts}" fill="none" stroke="${colour}" stroke-width="2"/>` + `<rect x="${left + plotW + 12}" y="${top + i * 20}" width="12" height="12" fill="${colour}"/><text x="${left + plotW + 30}" y="${top + i * 20 + 11}">${esc(s.label)}</text>`;
    })
    .join("\n");
  return svg(width, height, `<text x="10" y="22" font-weight="bold" font-size="15">${esc(chart.title)}</text>\n${grid.join("\n")}\n${lines}\n<text x="${left + plotW / 2}" y="${height - 10}" text-anchor="middle" fill="#555">percentile (corrected for coordinated omission)</text>`);
}

function svg(width: number, height: number, body: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">\n<rect width="100%" height="100%" fill="white"/>\n${body}\n</svg>\n`;
}

/** Writes every chart as DIR/<file>.svg plus DIR/charts.html inlining them; returns the files. */
export function writeCharts(dir: string, charts: Chart[], heading: string): string[] {
  const files: string[] = [];
  const inline: string[] = [];
  for (const c of charts) {
    const body = c.kind === "bars" ? barsSvg(c) : percentilesSvg(c);
    const file = join(dir, `${c.file}.svg`);
    writeFileSync(file, body);
    files.push(file);
    inline.push(`<section><h2>${esc(c.title)}</h2>\n${body}</section>`);
  }
  if (charts.length) {
    const html = join(dir, "charts.html");
    writeFileSync(html, `<!doctype html>\n<html><head><meta charset="utf-8"><title>${esc(heading)}</title></head>\n<body style="font-family:sans-serif">\n<h1>${esc(heading)}</h1>\n${inline.join("\n")}\n</body></html>\n`);
    files.push(html);
  }
  return files;
}
