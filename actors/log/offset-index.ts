// Sparse offset index of one segment, Kafka's layout:
//
//   OffsetIndexEntry (8 bytes) =>
//     relativeOffset  int32   batch base offset - segment base offset
//     position        int32   byte position of that batch in the .log file
//
// An entry is added for the first batch after at least indexIntervalBytes of batches since the
// previous entry, so a lookup lands at most ~indexIntervalBytes + one batch before its target.
// Entries strictly increase in both fields.

import { IndexFile } from "./index-file.js";

export const OFFSET_INDEX_ENTRY_SIZE = 8;

export interface OffsetPosition {
  offset: number;
  position: number;
}

export class OffsetIndex extends IndexFile {
  private lastOffset: number;
  private lastPosition: number;

  constructor(path: string, readonly baseOffset: number, maxIndexBytes: number) {
    super(path, OFFSET_INDEX_ENTRY_SIZE, Math.floor(maxIndexBytes / OFFSET_INDEX_ENTRY_SIZE));
    this.lastOffset = -1;
    this.lastPosition = -1;
    this.refreshLast();
  }

  private refreshLast(): void {
    if (this.entries === 0) {
      this.lastOffset = -1;
      this.lastPosition = -1;
    } else {
      const e = this.entry(this.entries - 1);
      this.lastOffset = e.offset;
      this.lastPosition = e.position;
    }
  }

  entry(i: number): OffsetPosition {
    const b = this.entryBytes(i);
    return { offset: this.baseOffset + b.readInt32BE(0), position: b.readInt32BE(4) };
  }

  lastEntry(): OffsetPosition | null {
    return this.entries === 0 ? null : { offset: this.lastOffset, position: this.lastPosition };
  }

  append(offset: number, position: number): void {
    if (offset <= this.lastOffset || position <= this.lastPosition) {
      throw new Error(`offset index ${this.path}: entry (${offset}, ${position}) after (${this.lastOffset}, ${this.lastPosition})`);
    }
    const at = this.appendSlot();
    const slots = this.slots;
    slots.writeInt32BE(offset - this.baseOffset, at);
    slots.writeInt32BE(position, at + 4);
    this.lastOffset = offset;
    this.lastPosition = position;
  }

  /** Index of the last entry whose offset is <= target, or -1. */
  floorEntryIndex(target: number): number {
    if (this.entries === 0 || target < this.entry(0).offset) return -1;
    if (target >= this.lastOffset) return this.entries - 1;
    let lo = 0;
    let hi = this.entries - 1; // entry(hi).offset > target
    while (hi - lo > 1) {
      const mid = (lo + hi) >>> 1;
      if (this.entry(mid).offset <= target) lo = mid;
      else hi = mid;
    }
    return lo;
  }

  /** Where to start scanning for `target`: the last entry at or before it, else the segment start. */
  lookup(target: number): OffsetPosition {
    const i = this.floorEntryIndex(target);
    return i < 0 ? { offset: this.baseOffset, position: 0 } : this.entry(i);
  }

  override truncateEntries(n: number): void {
    super.truncateEntries(n);
    this.refreshLast();
  }

  /**
   * Length of the longest prefix of well-formed entries: both fields strictly increasing,
   * positions inside a log of `logSize` bytes and above 0. Recovery truncates the index to it.
   */
  validPrefix(logSize: number, all: Buffer = this.readRange(0, this.entries)): number {
    const n = all.length / OFFSET_INDEX_ENTRY_SIZE;
    let prevRel = -1;
    let prevPos = 0; // the first batch of a segment never gets an entry: position 0 is not one
    for (let i = 0; i < n; i++) {
      const rel = all.readInt32BE(i * 8);
      const pos = all.readInt32BE(i * 8 + 4);
      if (rel <= prevRel || pos <= prevPos || pos >= logSize) return i;
      prevRel = rel;
      prevPos = pos;
    }
    return n;
  }
}
