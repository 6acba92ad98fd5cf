// What every benchmark suite returns, how it is printed, and the machine facts written next
// to the numbers so results from different machines are never compared blindly.

import { spawnSync } from "node:child_process";
import { availableParallelism, cpus, loadavg, release, totalmem } from "node:os";
import { findNatsServer } from "../runtime/nats-server.js";

export interface BenchOptions {
  /** Small sizes, one repetition: the whole suite finishes in well under 20 s. */
  quick: boolean;
  /** Progress lines (stderr by default), not results. */
  log(line: string): void;
  /** Run only the workloads whose name contains this (suites that have workloads). */
  filter?: string;
  /** A progress display of `total` steps (a bar on a terminal, lines otherwise), on stderr. */
  progress(name: string, total: number): Progress;
}

export interface Progress {
  /** One step done; `label` says what it measured. */
  tick(label: string): void;
  stop(): void;
}

/** A chart the dispatcher renders as SVG next to the JSON (see charts.ts). */
export type Chart =
  | {
      kind: "bars";
      /** File name without extension. */
      file: string;
      title: string;
      unit: string;
      bars: Array<{ label: string; value: number; group: string }>;
    }
  | {
      kind: "percentiles";
      file: string;
      title: string;
      /** Latency percentile curves: [percentile, µs] points per series. */
      series: Array<{ label: string; points: Array<[number, number]> }>;
    };

/** A goal the suite checks and reports as PASS or MISS; it never fails the run. */
export interface Target {
  name: string;
  /** Human form of the rule, e.g. "actor p50 <= 1.3 x raw p50". */
  rule: string;
  measured: number;
  /** The bound `measured` is held to, in the same unit. */
  bound: number;
  unit: string;
  pass: boolean;
}

export interface SuiteResult {
  suite: string;
  title: string;
  /** Column keys of `rows`, in print order. */
  columns: string[];
  rows: Array<Record<string, string | number | null>>;
  targets: Target[];
  /** Sizes and settings the numbers were measured with. */
  parameters: Record<string, unknown>;
  notes?: string[];
  charts?: Chart[];
}

export interface MachineFacts {
  cores: number;
  cpuModel: string;
  memoryBytes: number;
  platform: string;
  kernel: string;
  node: string;
  natsServer: string;
  gitCommit: string;
  /** True when the working tree had uncommitted changes at the time of the run. */
  gitDirty: boolean;
  startedAt: string;
  /** 1/5/15-minute load averages when the run started: other work on the machine skews records/s. */
  loadAverage: number[];
}

export function machineFacts(root: string): MachineFacts {
  const nats = findNatsServer();
  const natsVersion = nats ? spawnSync(nats, ["--version"], { encoding: "utf8" }).stdout.trim() : "not found";
  const git = (args: string[]) => spawnSync("git", args, { cwd: root, encoding: "utf8" });
  const head = git(["rev-parse", "HEAD"]);
  const status = git(["status", "--porcelain", "--untracked-files=no"]);
  return {
    cores: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? "unknown",
    memoryBytes: totalmem(),
    platform: `${process.platform}-${process.arch}`,
    kernel: release(),
    node: process.version,
    natsServer: natsVersion,
    gitCommit: head.status === 0 ? head.stdout.trim() : "unknown",
    gitDirty: status.status === 0 && status.stdout.trim().length > 0,
    startedAt: new Date().toISOString(),
    loadAverage: loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

/** Plain-text table, numbers right-aligned. */
export function formatTable(columns: string[], rows: Array<Record<string, unknown>>): string {
  const cell = (v: unknown) => (v === null || v === undefined ? "-" : typeof v === "number" ? formatNumber(v) : String(v));
  const body = rows.map((r) => columns.map((c) => cell(r[c])));
  const widths = columns.map((c, i) => Math.max(c.length, ...body.map((r) => r[i].length)));
  const numeric = columns.map((c) => rows.some((r) => typeof r[c] === "number"));
  const line = (cells: string[]) => cells.map((v, i) => (numeric[i] ? v.padStart(widths[i]) : v.padEnd(widths[i]))).join("  ");
  return [line(columns), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n");
}

export function formatTargets(targets: Target[]): string {
  return targets
    .map((t) => `${t.pass ? "PASS" : "MISS"}  ${t.name}: ${formatNumber(t.measured)} ${t.unit} (bound ${formatNumber(t.bound)} ${t.unit}; ${t.rule})`)
    .join("\n");
}

function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 1000) return Math.round(n).toLocaleString("en-US");
  return Number.isInteger(n) ? String(n) : n.toFixed(Math.abs(n) >= 10 ? 1 : 2);
}
