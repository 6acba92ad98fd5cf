// Leader epoch cache: for each leader epoch, the first offset written in it. A follower that
// becomes follower asks the leader for the end offset of its own latest epoch and truncates to
// it (ARCHITECTURE.md §6 rule 4); this cache answers that question (OffsetsForLeaderEpoch).
//
// Persisted as `leader-epoch-checkpoint` in Kafka's checkpoint format (files.ts), rewritten
// atomically and fsynced on every change. Changes are rare (one per leadership change), and
// the log writes the entry for a new epoch BEFORE the first batch of that epoch, so after a
// crash the file never misses an epoch that the log holds below its last index entry.

import { writeCheckpoint, readCheckpoint } from "./files.js";
import type { EpochEndOffset, EpochEntry } from "./types.js";

export const LEADER_EPOCH_CHECKPOINT = "leader-epoch-checkpoint";
const CHECKPOINT_VERSION = 0;
/** Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET. */
export const UNDEFINED_EPOCH = -1;
export const UNDEFINED_EPOCH_OFFSET = -1;

export class LeaderEpochCache {
  private entries: EpochEntry[];

  private constructor(
    private readonly file: string,
    entries: EpochEntry[],
  ) {
    this.entries = entries;
  }

  /** Loads the checkpoint; `status` says whether it was missing or unreadable (the log then rebuilds it). */
  static load(file: string): { cache: LeaderEpochCache; status: "ok" | "missing" | "corrupt"; problem?: string } {
    let rows: number[][] | null;
    try {
      rows = readCheckpoint(file, CHECKPOINT_VERSION, 2);
    } catch (e) {
      return { cache: new LeaderEpochCache(file, []), status: "corrupt", problem: (e as Error).message };
    }
    if (rows === null) return { cache: new LeaderEpochCache(file, []), status: "missing" };
    const entries = rows.map(([epoch, startOffset]) => ({ epoch, startOffset }));
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      const prev = entries[i - 1];
      if (e.epoch < 0 || e.startOffset < 0 || (prev !== undefined && (e.epoch <= prev.epoch || e.startOffset < prev.startOffset))) {
        return { cache: new LeaderEpochCache(file, []), status: "corrupt", problem: `entry ${i} (${e.epoch} ${e.startOffset}) breaks monotonicity` };
      }
    }
    return { cache: new LeaderEpochCache(file, entries), status: "ok" };
  }

  /** Latest known epoch, or -1 when none. */
  get latestEpoch(): number {
    return this.entries.length === 0 ? UNDEFINED_EPOCH : this.entries[this.entries.length - 1].epoch;
  }

  /** Start offset of the latest epoch, or -1 when none. */
  get latestStartOffset(): number {
    return this.entries.length === 0 ? UNDEFINED_EPOCH_OFFSET : this.entries[this.entries.length - 1].startOffset;
  }

  /** The epoch in force at `offset` (of the last entry starting at or before it), or -1. */
  epochAt(offset: number): number {
    for (let i = this.entries.length - 1; i >= 0; i--) if (this.entries[i].startOffset <= offset) return this.entries[i].epoch;
    return UNDEFINED_EPOCH;
  }

  list(): EpochEntry[] {
    return this.entries.map((e) => ({ ...e }));
  }

  /**
   * Records that `epoch` starts at `startOffset` (Kafka's assign): a no-op when it is the
   * latest epoch already starting at or before that offset; otherwise entries that conflict
   * (epoch >= epoch or startOffset >= startOffset) are removed first. Returns true on change.
   */
  assign(epoch: number, startOffset: number): boolean {
    if (!Number.isInteger(epoch) || epoch < 0 || !Number.isSafeInteger(startOffset) || startOffset < 0) {
      throw new RangeError(`epoch entry (${epoch}, ${startOffset}) must be non-negative integers`);
    }
    const latest = this.entries[this.entries.length - 1];
    if (latest !== undefined && latest.epoch === epoch && startOffset >= latest.startOffset) return false;
    this.entries = this.entries.filter((e) => e.epoch < epoch && e.startOffset < startOffset);
    this.entries.push({ epoch, startOffset });
    this.persist();
    return true;
  }

  /**
   * OffsetsForLeaderEpoch: for the latest epoch, the log end offset; for an older known epoch,
   * the start offset of the next higher epoch, with the largest known epoch <= the requested
   * one. Unknown (below the earliest or above the latest epoch, or no epochs): both -1.
   */
  endOffsetFor(requestedEpoch: number, logEndOffset: number): EpochEndOffset {
    const undefinedAnswer = { epoch: UNDEFINED_EPOCH, endOffset: UNDEFINED_EPOCH_OFFSET };
    if (requestedEpoch < 0 || this.entries.length === 0) return undefinedAnswer;
    if (requestedEpoch === this.latestEpoch) return { epoch: requestedEpoch, endOffset: logEndOffset };
    const higher = this.entries.findIndex((e) => e.epoch > requestedEpoch);
    if (higher <= 0) return undefinedAnswer; // above the latest (-1) or below the earliest (0)
    return { epoch: this.entries[higher - 1].epoch, endOffset: this.entries[higher].startOffset };
  }

  /** Removes epochs that start at or after `endOffset` (the log was truncated there). */
  truncateFromEnd(endOffset: number): void {
    const kept = this.entries.filter((e) => e.startOffset < endOffset);
    if (kept.length === this.entries.length) return;
    this.entries = kept;
    this.persist();
  }

  /** The log now starts at `startOffset`: older epochs go, the one covering it now starts there. */
  truncateFromStart(startOffset: number): void {
    const firstKept = this.entries.findIndex((e) => e.startOffset > startOffset);
    const removed = firstKept < 0 ? this.entries.length : firstKept;
    if (removed === 0) return;
    const covering = this.entries[removed - 1];
    if (removed === 1 && covering.startOffset === startOffset) return;
    this.entries = [{ epoch: covering.epoch, startOffset }, ...this.entries.slice(removed)];
    this.persist();
  }

  /** Replaces every entry (rebuild after a lost checkpoint, or truncateFullyAndStartAt). */
  reset(entries: EpochEntry[]): void {
    this.entries = [];
    for (const e of entries) {
      const latest = this.entries[this.entries.length - 1];
      if (e.epoch < 0 || (latest !== undefined && e.epoch <= latest.epoch)) continue;
      this.entries.push({ ...e });
    }
    this.persist();
  }

  private persist(): void {
    writeCheckpoint(this.file, CHECKPOINT_VERSION, this.entries.map((e) => [e.epoch, e.startOffset]));
  }
}
