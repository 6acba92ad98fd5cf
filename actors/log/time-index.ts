// Sparse time index of one segment, Kafka's layout:
//
//   TimeIndexEntry (12 bytes) =>
//     timestamp       int64   largest batch maxTimestamp from the segment start through this batch
//     relativeOffset  int32   batch base offset - segment base offset
//
// Unlike Kafka, an entry is written at every offset-index point (entry i of both indexes names
// the same batch), even when the running maximum did not grow. That costs 12 bytes per ~4 KiB
// of log and buys two things: recovery can resume from any index point knowing the running
// maximum there, and a lookup maps straight to a file position through the offset index.
// Timestamps never decrease.

import { IndexFile } from "./index-file.js";

export const TIME_INDEX_ENTRY_SIZE = 12;

export interface TimestampOffset {
  timestamp: number;
  offset: number;
}

export class TimeIndex extends IndexFile {
  constructor(path: string, readonly baseOffset: number, maxEntries: number) {
    super(path, TIME_INDEX_ENTRY_SIZE, maxEntries);
  }

  entry(i: number): TimestampOffset {
    const b = this.entryBytes(i);
    return { timestamp: b.readInt32BE(0) * 0x100000000 + b.readUInt32BE(4), offset: this.baseOffset + b.readInt32BE(8) };
  }

  lastEntry(): TimestampOffset | null {
    return this.entries === 0 ? null : this.entry(this.entries - 1);
  }

  append(timestamp: number, offset: number): void {
    const at = this.appendSlot();
    const slots = this.slots;
    const hi = Math.floor(timestamp / 0x100000000);
    slots.writeInt32BE(hi, at);
    slots.writeUInt32BE(timestamp - hi * 0x100000000, at + 4);
    slots.writeInt32BE(offset - this.baseOffset, at + 8);
  }

  /**
   * Index of the last entry whose running maximum is below `timestamp`, or -1. Every batch up
   * to and including that entry's batch is older than `timestamp`, so a search may start there.
   */
  lastEntryBefore(timestamp: number): number {
    let lo = -1;
    let hi = this.entries; // entry(hi).timestamp >= timestamp
    while (hi - lo > 1) {
      const mid = (lo + hi) >>> 1;
      if (this.entry(mid).timestamp < timestamp) lo = mid;
      else hi = mid;
    }
    return lo;
  }

  /**
   * Length of the longest prefix whose timestamps never decrease and whose relative offsets
   * match the offset index's (`offsetEntries`: its raw entries, 8 bytes each).
   */
  validPrefix(offsetEntries: Buffer): number {
    const n = Math.min(this.entries, offsetEntries.length / 8);
    const all = this.readRange(0, n);
    let prevTs = -Infinity;
    for (let i = 0; i < n; i++) {
      const ts = all.readInt32BE(i * 12) * 0x100000000 + all.readUInt32BE(i * 12 + 4);
      if (ts < prevTs || all.readInt32BE(i * 12 + 8) !== offsetEntries.readInt32BE(i * 8)) return i;
      prevTs = ts;
    }
    return n;
  }
}
