// Contracts of the partition log: configuration, results and the small interfaces (clock,
// logger) a test replaces. Defaults live in config.ts; behaviour in log.ts.

/**
 * Per-partition log configuration. Names follow Kafka's topic configs in camelCase with the
 * unit in the name (`segment.bytes` -> `segmentBytes`). Every field is optional.
 *
 * Durability: by default nothing is fsynced per append. Writes sit in the OS page cache and
 * replication provides durability, as in Kafka (a process crash loses nothing; a power loss
 * can lose what was not yet replicated). Segments are fsynced when they roll and when the log
 * closes cleanly. Set `flushMessages: 1` to fsync every append before it is acknowledged.
 */
export interface LogConfig {
  /** Roll to a new segment before an append would make the active one larger than this. Bytes; default 1 GiB; at most 2 GiB - 1 (index positions are int32). */
  segmentBytes?: number;
  /** Roll when the active segment's first batch is older than this. Milliseconds; default 7 days. */
  segmentMs?: number;
  /** Largest offset index per segment; the segment rolls when its index is full. Bytes; default 10 MiB (Kafka's segment.index.bytes). */
  segmentIndexBytes?: number;
  /** Add a sparse index entry after at least this many bytes of batches. Bytes; default 4096. */
  indexIntervalBytes?: number;
  /** Delete closed segments whose newest record is older than this; -1 = keep forever. Milliseconds; default 7 days. */
  retentionMs?: number;
  /** Delete the oldest closed segments while the log is larger than this; -1 = no limit. Bytes; default -1. */
  retentionBytes?: number;
  /** 'delete' applies retention; 'compact' keeps the latest record per key instead. Default 'delete'. */
  cleanupPolicy?: CleanupPolicy;
  /** Compaction keeps a tombstone (null value) until it is this old. Milliseconds; default 1 day. */
  deleteRetentionMs?: number;
  /** Background compaction runs when dirty bytes / total bytes of the closed segments reaches this. Ratio 0..1; default 0.5. */
  minCleanableDirtyRatio?: number;
  /** Most distinct keys one compaction pass holds in memory (~100 bytes each; keys over 32 bytes are held as a SHA-256); a pass covers as much of the dirty log as fits, the next pass goes on from there. Keys; default 250,000. */
  compactionMaxKeys?: number;
  /** Largest batch a leader append accepts (MESSAGE_TOO_LARGE above). Bytes; default 1 MiB + 12 (Kafka's 1048588). */
  maxMessageBytes?: number;
  /** Upper bound for one read's maxBytes (a single larger batch is still returned whole). Bytes; default 64 MiB. */
  maxReadBytes?: number;
  /** fsync after this many records since the last fsync; undefined = never per append (rely on replication). Records; default undefined. */
  flushMessages?: number;
  /** fsync the active segment when unflushed data is older than this (background task); undefined = never on a timer. Milliseconds; default undefined. */
  flushMs?: number;
  /** How often the background task applies retention. Milliseconds; default 5 minutes (Kafka's log.retention.check.interval.ms). */
  retentionCheckIntervalMs?: number;
  /** How often the background task checks whether compaction is due. Milliseconds; default 15 s (Kafka's log.cleaner.backoff.ms). */
  compactionCheckIntervalMs?: number;
}

export const CleanupPolicy = {
  DELETE: "delete",
  COMPACT: "compact",
} as const;
export type CleanupPolicy = (typeof CleanupPolicy)[keyof typeof CleanupPolicy];

/** LogConfig with every default applied and validated. */
export type ResolvedLogConfig = Required<Omit<LogConfig, "flushMessages" | "flushMs">> &
  Pick<LogConfig, "flushMessages" | "flushMs">;

/** Wall clock behind an interface so tests drive time (retention, segmentMs, tombstones). */
export interface LogClock {
  /** Milliseconds since the epoch. */
  now(): number;
}

/** Where the log reports what recovery cut or rebuilt; console by default. */
export interface LogLogger {
  warn(message: string): void;
  info(message: string): void;
}

export interface LogOpenOptions {
  /** Default Date.now. */
  clock?: LogClock;
  /** Default console.warn / a silent info. */
  logger?: LogLogger;
  /** For error context; default parsed from the directory name `<topic>-<partition>`. */
  topic?: string;
  /** For error context; default parsed from the directory name. */
  partition?: number;
}

export interface AppendOptions {
  /** The leader's current epoch; stamped on every batch. Must not be below the log's latest epoch. */
  leaderEpoch: number;
}

export interface AppendResult {
  /** Offset assigned to the first record appended. */
  baseOffset: number;
  /** Offset of the last record appended (inclusive). */
  lastOffset: number;
  /** Broker wall-clock time of the append. Milliseconds since the epoch. */
  logAppendTime: number;
}

export interface ReadOptions {
  /** Soft limit on returned bytes: whole batches only, but at least one batch even if larger. Bytes; capped at maxReadBytes. */
  maxBytes: number;
  /** Exclusive: stop before a batch that starts at or after this offset (consumers pass the high watermark). Default: the log end offset. */
  maxOffset?: number;
  /**
   * Bytes left free in front of the data, in the same ArrayBuffer (data.byteOffset equals it),
   * for a header the caller writes there instead of copying the data behind it (the envelope
   * of a fetch reply, see protocol/envelope.ts). Default 0; at most MAX_READ_HEADROOM_BYTES.
   */
  headroomBytes?: number;
}

/** Bound on ReadOptions.headroomBytes. */
export const MAX_READ_HEADROOM_BYTES = 64 * 1024;

export interface ReadResult {
  /** Whole record batches, concatenated; empty when there is nothing to return. */
  data: Uint8Array;
  logStartOffset: number;
  logEndOffset: number;
}

/** One entry of the leader epoch cache: `epoch` started at `startOffset`. */
export interface EpochEntry {
  epoch: number;
  startOffset: number;
}

/** Answer to OffsetsForLeaderEpoch; both -1 (UNDEFINED) when the epoch is unknown. */
export interface EpochEndOffset {
  epoch: number;
  endOffset: number;
}

export interface RetentionResult {
  deletedSegments: number;
  deletedBytes: number;
  logStartOffset: number;
}

export interface CompactionResult {
  /** Segments rewritten with fewer records (a segment with nothing to remove is left as is). */
  segmentsCleaned: number;
  /** Segments deleted because compaction left them empty. */
  segmentsRemoved: number;
  bytesBefore: number;
  bytesAfter: number;
  recordsRemoved: number;
  tombstonesRemoved: number;
  /** True when a truncation, retention or close interrupted the pass (nothing unsafe was swapped in). */
  aborted: boolean;
}
