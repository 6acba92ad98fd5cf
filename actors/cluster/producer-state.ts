// Idempotent-producer state of one partition (Kafka's ProducerStateManager, simplified): per
// producer id the epoch, the last sequence written and the offsets of its last few batches,
// so a retried batch is answered with its original offsets instead of being written twice,
// and a gap in sequences is refused (OUT_OF_ORDER_SEQUENCE) instead of reordering records.
// Followers keep it too (they see the same batches), so a new leader has it at once.

import { ErrorCode, SkeinError } from "../../protocol/errors.js";
import type { BatchHeader } from "../../protocol/record-batch.js";

/** Batches remembered per producer for duplicate detection (Kafka keeps 5, its max in-flight). */
export const CACHED_BATCHES_PER_PRODUCER = 5;
/** Producers tracked per partition; the least recently active is forgotten beyond this. */
export const MAX_PRODUCERS_PER_PARTITION = 10_000;

interface BatchMeta {
  baseSequence: number;
  lastSequence: number;
  baseOffset: number;
  lastOffset: number;
}

interface ProducerEntry {
  epoch: number;
  lastSequence: number;
  recent: BatchMeta[];
}

export type SequenceCheck = { kind: "append" } | { kind: "duplicate"; baseOffset: number; lastOffset: number };

export class ProducerStateTable {
  /** Insertion order = recency: an entry is re-inserted on every append. */
  private readonly producers = new Map<number, ProducerEntry>();

  get size(): number {
    return this.producers.size;
  }

  /** Decides what to do with an idempotent batch before it is appended. */
  check(h: BatchHeader, context: { topic: string; partition: number }): SequenceCheck {
    const entry = this.producers.get(h.producerId);
    if (!entry) return { kind: "append" }; // unknown producer (new, or its state aged out)
    if (h.producerEpoch < entry.epoch) {
      throw new SkeinError(ErrorCode.INVALID_PRODUCER_EPOCH, `producer ${h.producerId} epoch ${h.producerEpoch} is older than ${entry.epoch}`, context);
    }
    const lastSequence = h.baseSequence + h.lastOffsetDelta;
    if (h.producerEpoch > entry.epoch) {
      if (h.baseSequence !== 0) {
        throw new SkeinError(ErrorCode.OUT_OF_ORDER_SEQUENCE, `producer ${h.producerId} new epoch ${h.producerEpoch} must start at sequence 0, got ${h.baseSequence}`, context);
      }
      return { kind: "append" };
    }
    const cached = entry.recent.find((b) => b.baseSequence === h.baseSequence && b.lastSequence === lastSequence);
    if (cached) return { kind: "duplicate", baseOffset: cached.baseOffset, lastOffset: cached.lastOffset };
    if (h.baseSequence === entry.lastSequence + 1) return { kind: "append" };
    if (h.baseSequence <= entry.lastSequence) {
      throw new SkeinError(ErrorCode.DUPLICATE_SEQUENCE, `producer ${h.producerId} sequence ${h.baseSequence} was written long ago (last ${entry.lastSequence})`, context);
    }
    throw new SkeinError(
      ErrorCode.OUT_OF_ORDER_SEQUENCE,
      `producer ${h.producerId} sequence ${h.baseSequence} leaves a gap after ${entry.lastSequence}`,
      { ...context, expectedSequence: entry.lastSequence + 1 },
    );
  }

  /** Records a batch that is now in the log (header with its final offsets). */
  record(h: BatchHeader): void {
    if (h.producerId < 0) return;
    const lastSequence = h.baseSequence + h.lastOffsetDelta;
    let entry = this.producers.get(h.producerId);
    if (!entry || h.producerEpoch > entry.epoch) entry = { epoch: h.producerEpoch, lastSequence: -1, recent: [] };
    this.producers.delete(h.producerId);
    entry.lastSequence = lastSequence;
    entry.recent.push({ baseSequence: h.baseSequence, lastSequence, baseOffset: h.baseOffset, lastOffset: h.lastOffset });
    if (entry.recent.length > CACHED_BATCHES_PER_PRODUCER) entry.recent.shift();
    this.producers.set(h.producerId, entry);
    if (this.producers.size > MAX_PRODUCERS_PER_PARTITION) this.producers.delete(this.producers.keys().next().value!);
  }

  /** After a truncation the state may describe batches that are gone: forget it all, then rebuild. */
  clear(): void {
    this.producers.clear();
  }
}
