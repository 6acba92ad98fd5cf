// Partition log benchmark, side by side with the raw file calls it is built on, same run:
//   append  PartitionLog.append of a 16 KiB or 1 MiB batch of 100 B or 1 KiB records, vs
//           fs.writeSync of the same bytes to a plain file (no fsync in either timing)
//   read    the whole log in maxBytes = 1 MiB reads, vs fs.readSync of the same file size in
//           1 MiB chunks (into a fresh buffer per chunk, as any reader that hands data out must;
//           a reused buffer is shown too)
//   recover PartitionLog.open with every index deleted (full CRC scan + index rebuild), and a
//           clean open, scaled to one GiB
// Raw and log alternate in 8 MiB slices within a round (a busy shared machine slows both
// alike); each case runs `rounds` times and the best round of each side is reported.
//   node scripts/build.mjs && node dist/bench/log.js [--quick]
// Writes bench/results/log.json. runLogBench() returns the same shape bench/main.ts prints.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { encodeBatch, readBatchHeader, verifyBatch, type RecordInput } from "../protocol/record-batch.js";
import { PartitionLog } from "../actors/log/mod.js";

const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;
const READ_CHUNK_BYTES = MIB;
/** Raw and log alternate in slices of this many bytes. */
const SLICE_BYTES = 8 * MIB;
const WARMUP_BYTES = 16 * MIB;
const TARGET_RATIO = 0.7;

export interface LogBenchOptions {
  /** ~16 MiB per case instead of 256 MiB. */
  quick: boolean;
  /** Progress lines (not results). Default: stderr. */
  log?(line: string): void;
  /** Bytes appended per case; default 256 MiB (16 MiB with quick). */
  totalBytes?: number;
  /** Repetitions of each case (best kept); default 3 (1 with quick). */
  rounds?: number;
  /** Where the data goes; default a fresh directory under os.tmpdir(), removed afterwards. */
  dir?: string;
}

/** Same shape as bench/report.ts SuiteResult, so bench/main.ts can run this suite. */
export interface LogBenchResult {
  suite: "log";
  title: string;
  columns: string[];
  rows: Array<Record<string, string | number | null>>;
  targets: Array<{ name: string; rule: string; measured: number; bound: number; unit: string; pass: boolean }>;
  parameters: Record<string, unknown>;
  notes?: string[];
}

interface BenchCase {
  recordBytes: number;
  batchBytes: number;
}

const CASES: BenchCase[] = [
  { recordBytes: 100, batchBytes: 16 * KIB },
  { recordBytes: 100, batchBytes: MIB },
  { recordBytes: KIB, batchBytes: 16 * KIB },
  { recordBytes: KIB, batchBytes: MIB },
];

/** One batch of `recordBytes`-byte values (no key) that fills up to `batchBytes`. */
function templateBatch(c: BenchCase): { batch: Uint8Array; records: number } {
  const value = new Uint8Array(c.recordBytes).map((_, i) => (i * 31 + 7) & 0xff);
  let count = Math.max(1, Math.floor((c.batchBytes - 61) / (c.recordBytes + 8)));
  for (;;) {
    const records: RecordInput[] = Array.from({ length: count }, () => ({ value }));
    const batch = encodeBatch(records, { timestamp: Date.now() });
    if (batch.length <= c.batchBytes || count === 1) return { batch, records: count };
    count--;
  }
}

function label(c: BenchCase): string {
  const size = (n: number) => (n >= MIB ? `${n / MIB} MiB` : n >= KIB ? `${n / KIB} KiB` : `${n} B`);
  return `${size(c.recordBytes)} records, ${size(c.batchBytes)} batches`;
}

function secondsSince(started: number): number {
  return (performance.now() - started) / 1000;
}

/** Raw side: one file written with positional writeSync, read with readSync. */
class RawFile {
  private readonly fd: number;
  private position = 0;

  constructor(readonly file: string) {
    this.fd = fs.openSync(file, "w+");
  }

  /** With `verify`, each batch's CRC32C is checked first: the work the log cannot skip. */
  write(batch: Uint8Array, count: number, verify = false): number {
    const started = performance.now();
    const view = Buffer.from(batch.buffer, batch.byteOffset, batch.length);
    for (let i = 0; i < count; i++) {
      if (verify) verifyBatch(view, 0);
      let done = 0;
      while (done < batch.length) done += fs.writeSync(this.fd, batch, done, batch.length - done, this.position + done);
      this.position += batch.length;
    }
    return secondsSince(started);
  }

  /** Reads [from, to) in READ_CHUNK_BYTES reads, into fresh buffers (as a reader handing data out must) or one reused buffer. */
  read(from: number, to: number, freshBuffers: boolean, reused: Buffer): number {
    const started = performance.now();
    let checksum = 0;
    for (let position = from; position < to; position += READ_CHUNK_BYTES) {
      const buf = freshBuffers ? Buffer.allocUnsafe(READ_CHUNK_BYTES) : reused;
      const n = fs.readSync(this.fd, buf, 0, Math.min(READ_CHUNK_BYTES, to - position), position);
      checksum += buf[n - 1];
    }
    if (Number.isNaN(checksum)) throw new Error("unreachable");
    return secondsSince(started);
  }

  close(): void {
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
    fs.rmSync(this.file, { force: true });
  }
}

async function logAppend(log: PartitionLog, batch: Uint8Array, count: number): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < count; i++) await log.append(batch, { leaderEpoch: 0 });
  return secondsSince(started);
}

/** Reads whole batches from `offset` until at least `bytes` were read; returns the time and where it stopped. */
async function logRead(log: PartitionLog, offset: number, bytes: number): Promise<{ seconds: number; offset: number; bytes: number }> {
  const started = performance.now();
  let read = 0;
  while (read < bytes && offset < log.logEndOffset) {
    const { data } = await log.read(offset, { maxBytes: READ_CHUNK_BYTES });
    let pos = 0;
    let last = 0;
    while (pos < data.length) {
      last = pos;
      pos += 12 + ((data[pos + 8] << 24) | (data[pos + 9] << 16) | (data[pos + 10] << 8) | data[pos + 11]);
    }
    offset = readBatchHeader(data, last).lastOffset + 1;
    read += data.length;
  }
  return { seconds: secondsSince(started), offset, bytes: read };
}

async function timeOpen(dir: string): Promise<number> {
  const started = performance.now();
  const log = await PartitionLog.open(dir, {}, { logger: { warn: () => {}, info: () => {} } });
  const seconds = secondsSince(started);
  await log.close();
  return seconds;
}

interface CaseResult {
  appendLog: number;
  appendRaw: number;
  appendRawCrc: number;
  closeSeconds: number;
  readLog: number;
  readRawFresh: number;
  readRawReused: number;
}

/**
 * One round of a case. Raw and log run in alternating SLICE_BYTES slices (which side goes
 * first alternates too), so load from anything else on the machine and filesystem stalls hit
 * both sides alike; the slice times are summed per side.
 */
async function runRound(root: string, dir: string, batch: Uint8Array, count: number, round: number): Promise<CaseResult> {
  const perSlice = Math.max(1, Math.round(SLICE_BYTES / batch.length));
  const raw = new RawFile(path.join(root, "raw.bin"));
  fs.rmSync(dir, { recursive: true, force: true });
  const log = await PartitionLog.open(dir, {});
  const rawCrc = new RawFile(path.join(root, "raw-crc.bin"));
  const r: CaseResult = { appendLog: 0, appendRaw: 0, appendRawCrc: 0, closeSeconds: 0, readLog: 0, readRawFresh: 0, readRawReused: 0 };
  try {
    for (let done = 0, slice = round; done < count; done += perSlice, slice++) {
      const n = Math.min(perSlice, count - done);
      if (slice % 2 === 0) r.appendRaw += raw.write(batch, n);
      r.appendLog += await logAppend(log, batch, n);
      r.appendRawCrc += rawCrc.write(batch, n, true);
      if (slice % 2 === 1) r.appendRaw += raw.write(batch, n);
    }
    rawCrc.close();
    const reused = Buffer.allocUnsafe(READ_CHUNK_BYTES);
    const total = count * batch.length;
    let offset = 0;
    for (let from = 0; from < total; ) {
      const part = await logRead(log, offset, SLICE_BYTES);
      r.readLog += part.seconds;
      r.readRawFresh += raw.read(from, from + part.bytes, true, reused);
      r.readRawReused += raw.read(from, from + part.bytes, false, reused);
      offset = part.offset;
      from += part.bytes;
    }
  } finally {
    const closing = performance.now();
    await log.close(); // fsync: not in the append figure, reported on its own
    r.closeSeconds = secondsSince(closing);
    raw.close();
  }
  return r;
}

async function runCase(root: string, c: BenchCase, totalBytes: number, rounds: number, log: (l: string) => void): Promise<{ best: CaseResult; bytes: number; records: number; dir: string }> {
  const { batch, records } = templateBatch(c);
  const count = Math.max(1, Math.round(totalBytes / batch.length));
  const bytes = count * batch.length;
  const dir = path.join(root, `bench-${c.recordBytes}-${c.batchBytes}-0`);
  // Untimed: let the JIT optimise both paths before anything is measured.
  await runRound(root, dir, batch, Math.max(1, Math.round(WARMUP_BYTES / batch.length)), 0);
  const best: CaseResult = { appendLog: Infinity, appendRaw: Infinity, appendRawCrc: Infinity, closeSeconds: Infinity, readLog: Infinity, readRawFresh: Infinity, readRawReused: Infinity };
  for (let round = 0; round < rounds; round++) {
    const r = await runRound(root, dir, batch, count, round);
    for (const k of Object.keys(best) as (keyof CaseResult)[]) best[k] = Math.min(best[k], r[k]);
    log(`${label(c)} round ${round + 1}/${rounds}: append log ${(bytes / MIB / r.appendLog).toFixed(0)} MB/s, raw ${(bytes / MIB / r.appendRaw).toFixed(0)} MB/s`);
  }
  return { best, bytes, records: count * records, dir };
}

export async function runLogBench(options: LogBenchOptions): Promise<LogBenchResult> {
  const log = options.log ?? ((line: string) => console.error(`  ${line}`));
  const totalBytes = options.totalBytes ?? (options.quick ? 16 * MIB : 256 * MIB);
  const rounds = options.rounds ?? (options.quick ? 1 : 3);
  const root = options.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), "skein-bench-log-"));
  fs.mkdirSync(root, { recursive: true });
  const rows: LogBenchResult["rows"] = [];
  const targets: LogBenchResult["targets"] = [];
  const mbps = (bytes: number, seconds: number) => bytes / MIB / seconds;
  try {
    let recoveryDir = "";
    let recoveryBytes = 0;
    for (const c of CASES) {
      const { best, bytes, records, dir } = await runCase(root, c, totalBytes, rounds, log);
      const appendRatio = best.appendRaw / best.appendLog;
      const readRatio = best.readRawFresh / best.readLog;
      rows.push({
        case: `append ${label(c)}`,
        "log MB/s": mbps(bytes, best.appendLog),
        "raw MB/s": mbps(bytes, best.appendRaw),
        ratio: appendRatio,
        "log records/s": records / best.appendLog,
        note: `raw+CRC32C ${mbps(bytes, best.appendRawCrc).toFixed(0)} MB/s (log ${(best.appendRawCrc / best.appendLog).toFixed(2)} x that); close+fsync ${(best.closeSeconds * 1000).toFixed(0)} ms`,
      });
      rows.push({
        case: `read ${label(c)}`,
        "log MB/s": mbps(bytes, best.readLog),
        "raw MB/s": mbps(bytes, best.readRawFresh),
        ratio: readRatio,
        "log records/s": records / best.readLog,
        note: `raw into a reused buffer: ${mbps(bytes, best.readRawReused).toFixed(0)} MB/s`,
      });
      targets.push({ name: `append ${label(c)}`, rule: `log >= ${TARGET_RATIO} x raw writeSync`, measured: appendRatio, bound: TARGET_RATIO, unit: "x raw", pass: appendRatio >= TARGET_RATIO });
      targets.push({ name: `read ${label(c)}`, rule: `log >= ${TARGET_RATIO} x raw readSync (fresh 1 MiB buffers)`, measured: readRatio, bound: TARGET_RATIO, unit: "x raw", pass: readRatio >= TARGET_RATIO });
      if (c.recordBytes === KIB && c.batchBytes === 16 * KIB) {
        recoveryDir = dir;
        recoveryBytes = bytes;
      } else {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
    const clean = await timeOpen(recoveryDir);
    for (const name of fs.readdirSync(recoveryDir)) if (name.endsWith("index")) fs.rmSync(path.join(recoveryDir, name));
    const rebuild = await timeOpen(recoveryDir);
    const perGib = (seconds: number) => (seconds * GIB) / recoveryBytes;
    rows.push({ case: "recover: open, indexes deleted (full CRC scan)", "log MB/s": mbps(recoveryBytes, rebuild), "raw MB/s": null, ratio: null, "log records/s": null, note: `${perGib(rebuild).toFixed(2)} s per GiB` });
    rows.push({ case: "recover: clean open", "log MB/s": null, "raw MB/s": null, ratio: null, "log records/s": null, note: `${(clean * 1000).toFixed(1)} ms for ${(recoveryBytes / MIB).toFixed(0)} MiB` });
    return {
      suite: "log",
      title: "Partition log vs raw file I/O (same run, best of rounds)",
      columns: ["case", "log MB/s", "raw MB/s", "ratio", "log records/s", "note"],
      rows,
      targets,
      parameters: { totalBytesPerCase: totalBytes, rounds, readChunkBytes: READ_CHUNK_BYTES, logConfig: "defaults (1 GiB segments, no fsync per append)", dir: root, recoverySecondsPerGiB: perGib(rebuild) },
      notes: [
        "MB/s = MiB of batch bytes per second; append timings exclude the fsync on close, raw writes exclude their fsync too",
        "append = CRC32C verify + offset/epoch rewrite + positional writeSync + sparse index; raw = writeSync of the same bytes",
        "raw+CRC32C = raw plus the CRC check every produced batch needs: the floor for any verifying append on this machine",
      ],
    };
  } finally {
    if (options.dir === undefined) fs.rmSync(root, { recursive: true, force: true });
  }
}

function formatCell(v: string | number | null | undefined): string {
  if (v === null || v === undefined) return "-";
  if (typeof v !== "number") return v;
  return v >= 1000 ? Math.round(v).toLocaleString("en-US") : v.toFixed(v >= 10 ? 0 : 2);
}

function printResult(r: LogBenchResult): void {
  const body = r.rows.map((row) => r.columns.map((c) => formatCell(row[c])));
  const widths = r.columns.map((c, i) => Math.max(c.length, ...body.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((v, i) => (i === 0 || i === cells.length - 1 ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join("  ");
  console.log(`\n${r.title}\n\n${line(r.columns)}\n${line(widths.map((w) => "-".repeat(w)))}\n${body.map(line).join("\n")}\n`);
  for (const n of r.notes ?? []) console.log(`note: ${n}`);
  console.log("");
  for (const t of r.targets) console.log(`${t.pass ? "PASS" : "MISS"}  ${t.name}: ${t.measured.toFixed(2)} ${t.unit} (${t.rule})`);
}

async function main(): Promise<void> {
  const quick = process.argv.includes("--quick");
  const result = await runLogBench({ quick });
  printResult(result);
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
  const out = path.join(root, "bench", "results", "log.json");
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const machine = { node: process.version, cpu: os.cpus()[0]?.model ?? "unknown", cores: os.availableParallelism(), platform: `${process.platform}-${process.arch}`, startedAt: new Date().toISOString() };
  fs.writeFileSync(out, JSON.stringify({ machine, quick, ...result }, null, 2) + "\n");
  console.log(`\nwrote ${out}`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e) => {
    console.error("log bench failed:", e);
    process.exit(1);
  });
}
