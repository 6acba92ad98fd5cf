// Sequential reader of the batches in a byte range of a segment file. It reads in chunks
// (one syscall per chunk, not per batch) and stops at the first batch that is torn, has a bad
// length or header, or (with verifyCrc) fails its CRC, leaving `position` at that batch and the
// reason in `error`. Recovery, index rebuilds, lookups and compaction all walk segments with it.

import { ErrorCode, SkeinError, isSkeinError } from "../../protocol/errors.js";
import { BATCH_HEADER_SIZE, LOG_OVERHEAD, batchSizeAt, readBatchHeader, verifyBatch, type BatchHeader } from "../../protocol/record-batch.js";
import { readFully } from "./files.js";

export interface ScanOptions {
  /** Check each batch's CRC32C (requires reading whole batches). */
  verifyCrc: boolean;
  /** Only headers are needed: a batch larger than the chunk is skipped over, not read. Ignored with verifyCrc. */
  headersOnly: boolean;
  /** Bytes per read; a larger batch gets a read of its own size. */
  chunkBytes: number;
}

export interface ScannedBatch {
  header: BatchHeader;
  /** Byte position of the batch in the file. */
  position: number;
  /**
   * Buffer holding the batch from `bufPos` (only its header when headersOnly and it did not
   * fit in the chunk). Reused by the next call to next(): copy what must outlive it.
   */
  buf: Buffer;
  bufPos: number;
}

export class BatchScanner {
  /** Start of the next batch; after a stop, where the valid data ends. */
  position: number;
  /** Why the scan stopped before `end`, or null. */
  error: SkeinError | null = null;
  private window: Buffer;
  private windowStart = 0;
  private windowLength = 0;
  private readonly headersOnly: boolean;

  constructor(
    private readonly fd: number,
    start: number,
    private readonly end: number,
    private readonly options: ScanOptions,
  ) {
    this.position = start;
    this.headersOnly = options.headersOnly && !options.verifyCrc;
    this.window = Buffer.allocUnsafe(Math.max(BATCH_HEADER_SIZE, Math.min(options.chunkBytes, Math.max(end - start, 0))));
  }

  /** The next valid batch, or null at the end of the range or at the first bad batch (see `error`). */
  next(): ScannedBatch | null {
    if (this.error !== null || this.position >= this.end) return null;
    let off = this.ensure(LOG_OVERHEAD);
    const available = this.windowLength - off;
    if (available < LOG_OVERHEAD) return this.stop(`torn batch: only ${available} bytes at the end`, true);
    const size = batchSizeAt(this.window, off);
    if (size < BATCH_HEADER_SIZE) return this.stop(`bad batch length ${size - LOG_OVERHEAD}`, false);
    if (size > this.end - this.position) {
      return this.stop(`torn batch: needs ${size} bytes, only ${this.end - this.position} remain`, true);
    }
    off = this.ensure(this.headersOnly ? BATCH_HEADER_SIZE : size);
    const view = this.window.subarray(0, this.windowLength);
    const whole = off + size <= view.length;
    if (!whole && (!this.headersOnly || view.length - off < BATCH_HEADER_SIZE)) {
      return this.stop(`torn batch: file ends inside it`, true);
    }
    let header: BatchHeader;
    try {
      header = this.options.verifyCrc ? verifyBatch(view, off) : readBatchHeader(view, off, { headerOnly: !whole });
    } catch (e) {
      if (!isSkeinError(e)) throw e;
      return this.stop(e.message, false);
    }
    const batch = { header, position: this.position, buf: view, bufPos: off };
    this.position += size;
    return batch;
  }

  /** Makes `bytes` bytes at `position` available in the window (fewer at end of file); returns their offset in it. */
  private ensure(bytes: number): number {
    const off = this.position - this.windowStart;
    if (off >= 0 && off + bytes <= this.windowLength) return off;
    const want = Math.min(Math.max(bytes, this.options.chunkBytes), this.end - this.position);
    if (this.window.length < want) this.window = Buffer.allocUnsafe(want);
    this.windowStart = this.position;
    this.windowLength = readFully(this.fd, this.window, 0, want, this.position);
    return 0;
  }

  private stop(reason: string, torn: boolean): null {
    this.error = new SkeinError(ErrorCode.CORRUPT_MESSAGE, `${reason} at position ${this.position}`, {
      position: this.position,
      torn,
    });
    return null;
  }
}
