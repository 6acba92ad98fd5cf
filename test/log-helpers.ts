// Helpers for the partition log suites (test/log-*.test.ts): batches, a log in a temp dir with
// a controllable clock and a logger that records warnings, and whole-log reads.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeRecords, encodeBatch, iterateBatches, type DecodedRecord, type RecordInput } from "../protocol/record-batch.js";
import { PartitionLog, type LogConfig, type LogLogger } from "../actors/log/mod.js";

export interface TestClock {
  now(): number;
  advance(ms: number): void;
}

export function testClock(startMs = 1_700_000_000_000): TestClock {
  let t = startMs;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

export interface RecordingLogger extends LogLogger {
  warnings: string[];
}

export function recordingLogger(): RecordingLogger {
  const warnings: string[] = [];
  return { warnings, warn: (m) => void warnings.push(m), info: () => {} };
}

export interface LogFixture {
  dir: string;
  log: PartitionLog;
  clock: TestClock;
  logger: RecordingLogger;
  /** Closes the current log and opens the same directory again. */
  reopen(config?: LogConfig): Promise<PartitionLog>;
  /** Closes the log (if open) and removes the directory. */
  cleanup(): Promise<void>;
}

export async function openTestLog(config: LogConfig = {}, name = "topic-0"): Promise<LogFixture> {
  const root = mkdtempSync(join(tmpdir(), "skein-log-"));
  const dir = join(root, name);
  const clock = testClock();
  const logger = recordingLogger();
  const fixture: LogFixture = {
    dir,
    clock,
    logger,
    log: await PartitionLog.open(dir, config, { clock, logger }),
    async reopen(newConfig = config) {
      await fixture.log.close();
      fixture.log = await PartitionLog.open(dir, newConfig, { clock, logger });
      return fixture.log;
    },
    async cleanup() {
      await fixture.log.close().catch(() => undefined);
      rmSync(root, { recursive: true, force: true });
    },
  };
  return fixture;
}

/** A batch of `count` records `value-<i>` (optionally keyed `key-<i>`), `valueBytes` long when given. */
export function makeBatch(count: number, options: { first?: number; valueBytes?: number; keyed?: boolean; timestamp?: number } = {}): Uint8Array {
  const first = options.first ?? 0;
  const records: RecordInput[] = [];
  for (let i = first; i < first + count; i++) {
    const text = `value-${i}`;
    const value = options.valueBytes === undefined ? Buffer.from(text) : Buffer.alloc(options.valueBytes, text);
    records.push({ key: options.keyed ? Buffer.from(`key-${i}`) : null, value });
  }
  return encodeBatch(records, { timestamp: options.timestamp });
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

/** Every record the log serves from `from` up to its end, read in maxBytes chunks. */
export async function readAllRecords(log: PartitionLog, options: { from?: number; maxBytes?: number } = {}): Promise<DecodedRecord[]> {
  const out: DecodedRecord[] = [];
  let offset = options.from ?? log.logStartOffset;
  while (offset < log.logEndOffset) {
    const { data } = await log.read(offset, { maxBytes: options.maxBytes ?? 64 * 1024 });
    if (data.length === 0) break;
    for (const { pos } of iterateBatches(data)) {
      for (const r of decodeRecords(data, pos)) if (r.offset >= offset) out.push(r);
    }
    offset = out.length > 0 ? out[out.length - 1].offset + 1 : offset;
    const last = [...iterateBatches(data, { verifyCrc: false })].pop();
    if (last !== undefined) offset = Math.max(offset, last.header.lastOffset + 1);
  }
  return out;
}

export function text(bytes: Uint8Array | null): string | null {
  return bytes === null ? null : Buffer.from(bytes).toString();
}

/** Headers of the batches in a read result. */
export function batchesIn(data: Uint8Array): { baseOffset: number; lastOffset: number; sizeInBytes: number }[] {
  return [...iterateBatches(data)].map(({ header }) => header);
}

/** Awaits `p` and returns the SkeinError-like rejection; fails if it resolves or rejects with another code. */
export async function rejection(p: Promise<unknown>, code: string): Promise<Error & { code: string; context: Record<string, unknown> }> {
  let error: unknown;
  try {
    await p;
  } catch (e) {
    error = e;
  }
  if (error === undefined) throw new Error(`expected a rejection with ${code}, but it resolved`);
  const e = error as Error & { code: string; context: Record<string, unknown> };
  if (e.code !== code) throw new Error(`expected ${code}, got ${e.code}: ${e.message}`);
  return e;
}
