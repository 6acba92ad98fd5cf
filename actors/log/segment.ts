// One segment of a partition log: `<base>.log` holds whole record batches back to back,
// `<base>.index` and `<base>.timeindex` are its sparse indexes (see offset-index.ts and
// time-index.ts). The segment knows its size, next offset and newest timestamp; it appends,
// locates batches by offset or timestamp, truncates, and recovers itself on open.
//
// Recovery rules (ARCHITECTURE.md §4):
// * A segment wholly below the recovery point (fsynced data) is verified strictly: its index
//   must be sane and the batches after its last index entry must be whole and pass their CRC.
//   Anything else is a KAFKA_STORAGE_ERROR naming the file and position: the replica goes
//   offline rather than serve wrong data. A missing or unusable index is rebuilt by a full
//   CRC scan, which must then find no damage.
// * A segment that may hold unflushed data is scanned from its last index entry at or before
//   the recovery point; the first torn or corrupt batch and everything after it are cut.

import fs from "node:fs";
import { BATCH_HEADER_SIZE, decodeRecords, readBatchHeader, type BatchHeader } from "../../protocol/record-batch.js";
import type { SkeinError } from "../../protocol/errors.js";
import { BatchScanner, type ScanOptions } from "./batch-scanner.js";
import { closeQuietly, readFully, segmentPaths, storageError, unlinkIfExists, writeFully, type SegmentPaths } from "./files.js";
import { OffsetIndex } from "./offset-index.js";
import { TimeIndex } from "./time-index.js";

const INT32_MAX = 0x7fffffff;
/** Read size for recovery and compaction scans. */
export const SCAN_CHUNK_BYTES = 1024 * 1024;

export interface SegmentSettings {
  indexIntervalBytes: number;
  segmentIndexBytes: number;
}

/** The fields of a batch header the segment keeps track of. */
export type BatchSummary = Pick<BatchHeader, "baseOffset" | "lastOffset" | "maxTimestamp" | "sizeInBytes" | "partitionLeaderEpoch">;

/**
 * Checks of the two header fields the CRC does not cover, applied to batches recovered from a
 * possibly torn tail. Kafka does not check them; a damaged byte there would otherwise serve
 * records under the wrong offset or invent a leader epoch.
 */
export interface TailChecks {
  /** Offsets must follow each other without gaps (a log that was never compacted). */
  contiguous: boolean;
  /**
   * The leader epoch the epoch cache holds for an offset (-1 if none), or null when the cache
   * was lost. The log writes a new epoch's entry before its first batch, so every batch on
   * disk carries exactly the epoch the cache names for its base offset (or -1, unstamped).
   */
  epochAt: ((offset: number) => number) | null;
}

export interface SegmentRecovery {
  /** Bytes cut from the end because they were torn or corrupt; 0 when the segment was whole. */
  truncatedBytes: number;
  /** Why bytes were cut, or null. */
  reason: string | null;
  /** True when index entries had to be recreated by scanning the log. */
  indexRebuilt: boolean;
}

interface ScanOutcome {
  ok: boolean;
  /** First byte not covered by valid batches. */
  end: number;
  error: SkeinError | null;
  /** The batch named by the starting index entry was missing or different: the index is wrong. */
  indexMismatch: boolean;
}

const NO_TAIL_CHECKS: TailChecks = { contiguous: false, epochAt: null };

export class LogSegment {
  /** Bytes of whole batches in the .log file. */
  size = 0;
  /** One past the last offset of the last batch; the base offset while empty. */
  nextOffset: number;
  /** Largest batch maxTimestamp in the segment; -1 while empty. Drives time retention. */
  maxTimestamp = -1;
  /** maxTimestamp of the first batch; -1 while empty. Drives segmentMs rolls (as Kafka does). */
  firstBatchTimestamp = -1;
  /** Bumped by every truncation or file swap, so a compaction pass can tell its view is stale. */
  version = 0;
  deleted = false;
  paths: SegmentPaths;
  readonly offsetIndex: OffsetIndex;
  readonly timeIndex: TimeIndex;
  private logFd: number;
  private bytesSinceLastIndexEntry = 0;
  private syncing: Promise<void> | null = null;
  /**
   * Whether every index entry was checked (or written by us). Opening a closed segment checks
   * only the last entry, so startup stays cheap however many segments there are; the rest is
   * checked on the first lookup.
   */
  private indexChecked = true;
  /** Times the index was found wrong during lookups and rebuilt from the log. */
  indexRebuilds = 0;

  private constructor(
    readonly baseOffset: number,
    paths: SegmentPaths,
    private readonly settings: SegmentSettings,
    create: boolean,
  ) {
    this.paths = paths;
    this.nextOffset = baseOffset;
    this.logFd = fs.openSync(paths.log, create ? "w+" : "r+", 0o644);
    try {
      this.offsetIndex = new OffsetIndex(paths.index, baseOffset, settings.segmentIndexBytes);
      this.timeIndex = new TimeIndex(paths.timeIndex, baseOffset, this.offsetIndex.maxEntries);
    } catch (e) {
      closeQuietly(this.logFd);
      throw e;
    }
  }

  /** A new empty segment; existing files of the same name are replaced. */
  static create(dir: string, baseOffset: number, settings: SegmentSettings, suffix = ""): LogSegment {
    const paths = segmentPaths(dir, baseOffset, suffix);
    unlinkIfExists(paths.index);
    unlinkIfExists(paths.timeIndex);
    return new LogSegment(baseOffset, paths, settings, true);
  }

  /**
   * Opens an existing segment. `recoveryPoint` null = verify strictly (all data was fsynced);
   * a number = recover, trusting index entries at or below that offset and cutting a bad tail.
   */
  static open(
    dir: string,
    baseOffset: number,
    settings: SegmentSettings,
    recoveryPoint: number | null,
    checks: TailChecks = NO_TAIL_CHECKS,
  ): { segment: LogSegment; recovery: SegmentRecovery } {
    const segment = new LogSegment(baseOffset, segmentPaths(dir, baseOffset), settings, false);
    try {
      segment.size = fs.fstatSync(segment.logFd).size;
      if (segment.size > INT32_MAX) throw storageError(`segment ${segment.paths.log} is larger than 2 GiB`, { file: segment.paths.log });
      const recovery = recoveryPoint === null ? segment.verifyClosed() : segment.recover(recoveryPoint, checks);
      if (segment.size > 0) segment.firstBatchTimestamp = segment.readHeaderAt(0).maxTimestamp;
      return { segment, recovery };
    } catch (e) {
      segment.close();
      throw e;
    }
  }

  private verifyClosed(): SegmentRecovery {
    const n = this.offsetIndex.entries;
    let start = -1;
    if (n > 0 && this.timeIndex.entries === n) {
      const last = this.offsetIndex.entry(n - 1);
      if (last.position < this.size && this.timeIndex.entry(n - 1).offset === last.offset) start = n - 1;
    }
    this.indexChecked = start < 0;
    let scan = this.scanFrom(start, true, NO_TAIL_CHECKS);
    let rescanned = start < 0 && n > 0;
    if (!scan.ok && start >= 0) {
      scan = this.scanFrom(-1, true, NO_TAIL_CHECKS);
      rescanned = true;
      this.indexChecked = true;
    }
    if (!scan.ok) {
      throw storageError(
        `segment ${this.paths.log} is corrupt at position ${scan.end} (after offset ${this.nextOffset - 1}): ${scan.error?.message}; ` +
          `the replica must go offline and be rebuilt from the leader`,
        { file: this.paths.log, position: scan.end, offset: this.nextOffset },
        scan.error,
      );
    }
    return { truncatedBytes: 0, reason: null, indexRebuilt: rescanned || n !== this.offsetIndex.entries };
  }

  private recover(recoveryPoint: number, checks: TailChecks): SegmentRecovery {
    const entriesBefore = this.offsetIndex.entries;
    const offsetRaw = this.offsetIndex.readRange(0, entriesBefore);
    let valid = this.offsetIndex.validPrefix(this.size, offsetRaw);
    valid = Math.min(valid, this.timeIndex.validPrefix(offsetRaw.subarray(0, valid * 8)));
    this.offsetIndex.truncateEntries(valid);
    this.timeIndex.truncateEntries(valid);
    // Entries past the recovery point may describe data that never reached the disk.
    let scan = this.scanFrom(this.offsetIndex.floorEntryIndex(recoveryPoint), true, checks);
    if (scan.indexMismatch) scan = this.scanFrom(-1, true, checks);
    let truncatedBytes = 0;
    if (!scan.ok) {
      truncatedBytes = this.size - scan.end;
      fs.ftruncateSync(this.logFd, scan.end);
      this.size = scan.end;
      this.version++;
    }
    return {
      truncatedBytes,
      reason: scan.ok ? null : (scan.error?.message ?? "invalid batch"),
      indexRebuilt: valid !== entriesBefore || this.offsetIndex.entries !== entriesBefore,
    };
  }

  /**
   * Re-derives the in-memory state (next offset, max timestamp, index entries) by scanning the
   * log from index entry `startIndex` (-1 = the segment start); entries after it are recreated.
   */
  private scanFrom(startIndex: number, verifyCrc: boolean, checks: TailChecks): ScanOutcome {
    this.offsetIndex.truncateEntries(startIndex + 1);
    this.timeIndex.truncateEntries(startIndex + 1);
    const start = startIndex < 0 ? { offset: this.baseOffset, position: 0 } : this.offsetIndex.entry(startIndex);
    this.maxTimestamp = startIndex < 0 ? -1 : this.timeIndex.entry(startIndex).timestamp;
    this.nextOffset = start.offset;
    this.bytesSinceLastIndexEntry = 0;
    const scanner = this.scanner(start.position, { verifyCrc, headersOnly: !verifyCrc, chunkBytes: SCAN_CHUNK_BYTES });
    const fail = (end: number, error: SkeinError | null, indexMismatch: boolean): ScanOutcome => ({ ok: false, end, error, indexMismatch });
    for (let b = scanner.next(), first = true; b !== null; b = scanner.next(), first = false) {
      const h = b.header;
      if (first && startIndex >= 0 && h.baseOffset !== start.offset) return fail(b.position, null, true);
      const problem = this.headerProblem(h, checks);
      if (problem !== null) return fail(b.position, storageError(`batch at position ${b.position}: ${problem}`, { file: this.paths.log }), false);
      if (first && startIndex >= 0) this.resumeAt(h);
      else this.indexBatch(h, b.position);
    }
    if (scanner.error !== null) return fail(scanner.position, scanner.error, startIndex >= 0 && scanner.position === start.position);
    return { ok: true, end: this.size, error: null, indexMismatch: false };
  }

  /** What is wrong with the CRC-less header fields of the next batch, or null. */
  private headerProblem(h: BatchHeader, checks: TailChecks): string | null {
    if (h.baseOffset < this.nextOffset || h.lastOffset - this.baseOffset > INT32_MAX) {
      return `offsets ${h.baseOffset}..${h.lastOffset} do not follow ${this.nextOffset - 1}`;
    }
    if (checks.contiguous && h.baseOffset !== this.nextOffset) return `offset ${h.baseOffset} leaves a gap after ${this.nextOffset - 1}`;
    const epoch = checks.epochAt?.(h.baseOffset);
    if (epoch !== undefined && h.partitionLeaderEpoch !== -1 && h.partitionLeaderEpoch !== epoch) {
      return `leader epoch ${h.partitionLeaderEpoch} at offset ${h.baseOffset}, the epoch cache says ${epoch}`;
    }
    return null;
  }

  /** State after the batch an index entry names, without adding that entry again. */
  private resumeAt(h: BatchSummary): void {
    if (h.maxTimestamp > this.maxTimestamp) this.maxTimestamp = h.maxTimestamp;
    this.bytesSinceLastIndexEntry = h.sizeInBytes;
    this.nextOffset = h.lastOffset + 1;
  }

  /** The one place index entries are made, so appends and rebuilds produce identical indexes. */
  private indexBatch(h: BatchSummary, position: number): void {
    if (h.maxTimestamp > this.maxTimestamp) this.maxTimestamp = h.maxTimestamp;
    if (this.bytesSinceLastIndexEntry > this.settings.indexIntervalBytes && !this.offsetIndex.isFull()) {
      this.offsetIndex.append(h.baseOffset, position);
      this.timeIndex.append(this.maxTimestamp, h.baseOffset);
      this.bytesSinceLastIndexEntry = 0;
    }
    this.bytesSinceLastIndexEntry += h.sizeInBytes;
    this.nextOffset = h.lastOffset + 1;
  }

  scanner(start: number, options: ScanOptions): BatchScanner {
    return new BatchScanner(this.logFd, start, this.size, options);
  }

  /** True when `bytes` more would not fit, or the offsets or the index would overflow. */
  isFull(bytes: number, lastOffset: number, segmentBytes: number): boolean {
    return (
      this.size > 0 &&
      (this.size + bytes > segmentBytes || this.offsetIndex.isFull() || lastOffset - this.baseOffset > INT32_MAX)
    );
  }

  /**
   * Appends validated batches (their headers in order, sizes summing to data.length). On an I/O
   * error the partial write is cut off again and a KAFKA_STORAGE_ERROR is thrown.
   */
  append(data: Uint8Array, batches: readonly BatchSummary[]): void {
    const start = this.size;
    try {
      writeFully(this.logFd, data, 0, data.length, start);
    } catch (e) {
      let rolledBack = true;
      try {
        fs.ftruncateSync(this.logFd, start);
      } catch {
        rolledBack = false;
      }
      throw storageError(`write to ${this.paths.log} failed: ${(e as Error).message}`, { file: this.paths.log, rolledBack }, e);
    }
    let position = start;
    for (const h of batches) {
      this.indexBatch(h, position);
      position += h.sizeInBytes;
    }
    if (position !== start + data.length) throw new Error(`segment append: batch sizes ${position - start} != data ${data.length}`);
    if (start === 0) this.firstBatchTimestamp = batches[0].maxTimestamp;
    this.size = position;
  }

  /** Checks every index entry once; rebuilds both indexes from the log if any is wrong. */
  private ensureIndexChecked(): void {
    if (this.indexChecked) return;
    const offsetRaw = this.offsetIndex.readRange(0, this.offsetIndex.entries);
    const n = offsetRaw.length / 8;
    const valid = Math.min(this.offsetIndex.validPrefix(this.size, offsetRaw), this.timeIndex.validPrefix(offsetRaw));
    if (valid !== n || this.timeIndex.entries !== n) this.rebuildIndexes();
    this.indexChecked = true;
  }

  /** Recreates both indexes from the batch headers (the log itself was verified on open). */
  private rebuildIndexes(): void {
    const { size, nextOffset } = this;
    const scan = this.scanFrom(-1, false, NO_TAIL_CHECKS);
    if (!scan.ok || this.size !== size || this.nextOffset !== nextOffset) {
      throw storageError(`segment ${this.paths.log} unreadable while rebuilding its index: ${scan.error?.message}`, { file: this.paths.log }, scan.error);
    }
    this.indexRebuilds++;
    this.indexChecked = true;
  }

  /** First batch whose last offset is >= offset (the batch holding it, or the next one after a gap); null if none. */
  locate(offset: number): { position: number; header: BatchHeader } | null {
    this.ensureIndexChecked();
    const found = this.locateOnce(offset);
    if (found !== "index-mismatch") return found;
    this.rebuildIndexes();
    const retry = this.locateOnce(offset);
    if (retry === "index-mismatch") throw storageError(`index ${this.paths.index} still wrong after a rebuild`, { file: this.paths.index });
    return retry;
  }

  private locateOnce(offset: number): { position: number; header: BatchHeader } | null | "index-mismatch" {
    if (offset >= this.nextOffset) return null;
    const i = this.offsetIndex.floorEntryIndex(offset);
    const start = i < 0 ? { offset: this.baseOffset, position: 0 } : this.offsetIndex.entry(i);
    const chunkBytes = Math.min(Math.max(2 * this.settings.indexIntervalBytes, 4096), 65536);
    const scanner = this.scanner(start.position, { verifyCrc: false, headersOnly: true, chunkBytes });
    for (let b = scanner.next(), first = true; b !== null; b = scanner.next(), first = false) {
      if (first && i >= 0 && b.header.baseOffset !== start.offset) return "index-mismatch";
      if (b.header.lastOffset >= offset) return { position: b.position, header: b.header };
    }
    if (scanner.error !== null) {
      if (i >= 0 && scanner.position === start.position) return "index-mismatch";
      throw storageError(`segment ${this.paths.log} unreadable: ${scanner.error.message}`, { file: this.paths.log }, scanner.error);
    }
    return null;
  }

  /**
   * Whole batches from `position`: as many as fit in maxBytes, at least one, none starting at or
   * after maxOffset. Returns the batches and the offset after the last one. `headroom` bytes
   * are left free in front of them in their buffer (see ReadOptions.headroomBytes).
   */
  readBatches(position: number, maxBytes: number, maxOffset: number, headroom = 0): { data: Buffer; nextOffset: number } {
    const length = Math.min(Math.max(maxBytes, BATCH_HEADER_SIZE), this.size - position);
    // Not pooled: the caller may transfer data.buffer to another thread.
    const buf = Buffer.allocUnsafeSlow(headroom + length);
    const n = readFully(this.logFd, buf, headroom, length, position);
    const filled = buf.subarray(headroom, headroom + n);
    let end = 0;
    let nextOffset = -1;
    while (end + BATCH_HEADER_SIZE <= n) {
      const header = this.headerIn(filled, end, position);
      if (header.baseOffset >= maxOffset) break;
      if (end + header.sizeInBytes > n) {
        if (end > 0) break;
        return { data: this.readBatch(position, header.sizeInBytes, headroom), nextOffset: header.lastOffset + 1 };
      }
      end += header.sizeInBytes;
      nextOffset = header.lastOffset + 1;
    }
    return { data: filled.subarray(0, end), nextOffset };
  }

  /** A stored batch header that does not parse is damage on disk, not a bad request. */
  private headerIn(buf: Buffer, pos: number, filePosition: number): BatchHeader {
    try {
      return readBatchHeader(buf, pos, { headerOnly: true });
    } catch (e) {
      throw storageError(`segment ${this.paths.log} is corrupt at position ${filePosition + pos}: ${(e as Error).message}`, { file: this.paths.log }, e);
    }
  }

  /** Exactly `size` bytes at `position` (one whole batch), `headroom` bytes into a buffer of their own. */
  readBatch(position: number, size: number, headroom = 0): Buffer {
    const buf = Buffer.allocUnsafeSlow(headroom + size);
    const n = readFully(this.logFd, buf, headroom, size, position);
    if (n !== size) throw storageError(`segment ${this.paths.log}: short read at ${position}`, { file: this.paths.log });
    return buf.subarray(headroom);
  }

  readHeaderAt(position: number): BatchHeader {
    const buf = Buffer.allocUnsafe(BATCH_HEADER_SIZE);
    const n = readFully(this.logFd, buf, 0, BATCH_HEADER_SIZE, position);
    return this.headerIn(buf.subarray(0, n), 0, position);
  }

  /** First offset whose record timestamp is >= timestamp, or null if the segment has none. */
  offsetForTimestamp(timestamp: number): number | null {
    if (this.maxTimestamp < timestamp) return null;
    this.ensureIndexChecked();
    const k = this.timeIndex.lastEntryBefore(timestamp);
    const start = k < 0 ? 0 : this.offsetIndex.entry(k).position;
    const scanner = this.scanner(start, { verifyCrc: false, headersOnly: true, chunkBytes: SCAN_CHUNK_BYTES });
    for (let b = scanner.next(); b !== null; b = scanner.next()) {
      if (b.header.maxTimestamp < timestamp) continue;
      const batch = this.readBatch(b.position, b.header.sizeInBytes);
      // Compaction keeps a batch's maxTimestamp, so the record that set it may be gone.
      const record = decodeRecords(batch, 0).find((r) => r.timestamp >= timestamp);
      if (record !== undefined) return record.offset;
    }
    return null;
  }

  /**
   * Removes every batch whose last offset is >= offset (a batch holding `offset` goes whole).
   * Returns the bytes removed.
   */
  truncateTo(offset: number): number {
    const cut = this.locate(offset);
    if (cut === null) return 0;
    const removed = this.size - cut.position;
    fs.ftruncateSync(this.logFd, cut.position);
    this.size = cut.position;
    this.version++;
    const scan = this.scanFrom(this.offsetIndex.floorEntryIndex(cut.header.baseOffset - 1), false, NO_TAIL_CHECKS);
    if (!scan.ok) throw storageError(`segment ${this.paths.log} unreadable after truncation: ${scan.error?.message}`, { file: this.paths.log });
    if (this.size === 0) this.firstBatchTimestamp = -1;
    return removed;
  }

  /** Writes index entries held in memory and fdatasyncs the log now (flushMessages, flush()). */
  syncNow(): void {
    this.offsetIndex.flush();
    this.timeIndex.flush();
    fs.fdatasyncSync(this.logFd);
  }

  /**
   * fsyncs the log and both indexes in the background (on roll: a segment of up to segmentBytes
   * must not stall the worker). close() and delete() wait for it.
   */
  syncInBackground(): Promise<void> {
    this.offsetIndex.flush();
    this.timeIndex.flush();
    const fds = [this.logFd, ...this.indexFds()];
    const job = Promise.all(fds.map((fd) => new Promise<void>((resolve, reject) => fs.fsync(fd, (e) => (e ? reject(e) : resolve()))))).then(() => undefined);
    const tracked: Promise<void> = job.finally(() => {
      if (this.syncing === tracked) this.syncing = null;
    });
    this.syncing = tracked.catch(() => undefined);
    return tracked;
  }

  private indexFds(): number[] {
    return [this.offsetIndex.fd, this.timeIndex.fd];
  }

  /** fsyncs everything now (clean close, compaction output). */
  syncAll(): void {
    this.offsetIndex.sync();
    this.timeIndex.sync();
    fs.fsyncSync(this.logFd);
  }

  /** Waits for a background sync to finish (its failure is reported to whoever started it). */
  async settled(): Promise<void> {
    await this.syncing;
  }

  /** Gives the segment new file names; open descriptors stay valid (compaction's swap). */
  renameTo(paths: SegmentPaths): void {
    fs.renameSync(this.paths.log, paths.log);
    this.offsetIndex.rename(paths.index);
    this.timeIndex.rename(paths.timeIndex);
    this.paths = paths;
  }

  close(): void {
    try {
      this.offsetIndex.close();
      this.timeIndex.close();
    } finally {
      if (this.logFd >= 0) closeQuietly(this.logFd);
      this.logFd = -1;
    }
  }

  /** Closes and unlinks the segment's files. */
  deleteFiles(): void {
    this.deleted = true;
    this.close();
    unlinkIfExists(this.paths.log);
    unlinkIfExists(this.paths.index);
    unlinkIfExists(this.paths.timeIndex);
  }
}
