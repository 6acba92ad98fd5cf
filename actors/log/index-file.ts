// A file of fixed-size index entries with a small bounded write-behind buffer. The offset and
// time indexes both build on it. Entries are appended in memory and written to the file in
// groups (on flush, roll, close, or when PENDING_ENTRIES accumulate), so the hot append path
// costs no extra syscall per index entry. Lookups read entries from the file with positional
// reads (a binary search is ~20 reads of a few bytes), so memory per segment stays bounded no
// matter how many segments a partition has. A crash can lose the unwritten entries; recovery
// rescans the log from the last entry on disk and recreates them.

import fs from "node:fs";
import { closeQuietly, readFully, writeFully } from "./files.js";

/** Write-behind bound: at most this many entries live only in memory. */
const PENDING_ENTRIES = 128;

export class IndexFile {
  private descriptor: number;
  private persisted: number;
  private readonly pending: Buffer;
  private pendingCount = 0;
  private readonly scratch: Buffer;

  protected constructor(
    public path: string,
    readonly entrySize: number,
    readonly maxEntries: number,
  ) {
    this.descriptor = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
    const size = fs.fstatSync(this.descriptor).size;
    // A torn trailing partial entry is simply not an entry.
    this.persisted = Math.min(Math.floor(size / entrySize), maxEntries);
    if (this.persisted * entrySize !== size) fs.ftruncateSync(this.descriptor, this.persisted * entrySize);
    this.pending = Buffer.alloc(PENDING_ENTRIES * entrySize);
    this.scratch = Buffer.alloc(entrySize);
  }

  /** Open descriptor (for a background fsync); -1 once closed. */
  get fd(): number {
    return this.descriptor;
  }

  get entries(): number {
    return this.persisted + this.pendingCount;
  }

  isFull(): boolean {
    return this.entries >= this.maxEntries;
  }

  /** Bytes of entry i in a shared scratch buffer: read the fields before the next call. */
  protected entryBytes(i: number): Buffer {
    if (i < 0 || i >= this.entries) throw new RangeError(`index entry ${i} of ${this.entries} in ${this.path}`);
    if (i >= this.persisted) {
      const at = (i - this.persisted) * this.entrySize;
      return this.pending.subarray(at, at + this.entrySize);
    }
    const n = readFully(this.descriptor, this.scratch, 0, this.entrySize, i * this.entrySize);
    if (n !== this.entrySize) throw new Error(`index ${this.path} shrank under us (entry ${i})`);
    return this.scratch;
  }

  /** Raw bytes of entries [from, to) in one read, for validation scans. */
  readRange(from: number, to: number): Buffer {
    this.flush();
    const buf = Buffer.alloc((to - from) * this.entrySize);
    readFully(this.descriptor, buf, 0, buf.length, from * this.entrySize);
    return buf;
  }

  /**
   * Where in `slots` the caller writes one entry (a byte position, not a view: no allocation
   * per append); the entry becomes visible when the caller returns.
   */
  protected appendSlot(): number {
    if (this.isFull()) throw new Error(`index ${this.path} is full (${this.maxEntries} entries)`);
    if (this.pendingCount === PENDING_ENTRIES) this.flush();
    const at = this.pendingCount * this.entrySize;
    this.pendingCount++;
    return at;
  }

  /** The buffer appendSlot() positions point into. */
  protected get slots(): Buffer {
    return this.pending;
  }

  /** Keep only the first n entries. */
  truncateEntries(n: number): void {
    if (n >= this.entries) return;
    if (n >= this.persisted) {
      this.pendingCount = n - this.persisted;
      return;
    }
    this.pendingCount = 0;
    this.persisted = n;
    fs.ftruncateSync(this.descriptor, n * this.entrySize);
  }

  /** Write the entries held in memory to the file (no fsync). */
  flush(): void {
    if (this.pendingCount === 0) return;
    writeFully(this.descriptor, this.pending, 0, this.pendingCount * this.entrySize, this.persisted * this.entrySize);
    this.persisted += this.pendingCount;
    this.pendingCount = 0;
  }

  sync(): void {
    this.flush();
    fs.fsyncSync(this.descriptor);
  }

  /** The descriptor stays valid across a rename, so a compacted segment can take its final name. */
  rename(to: string): void {
    fs.renameSync(this.path, to);
    this.path = to;
  }

  close(): void {
    if (this.descriptor < 0) return;
    try {
      this.flush();
    } finally {
      closeQuietly(this.descriptor);
      this.descriptor = -1;
    }
  }
}
