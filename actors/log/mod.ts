// Public face of the partition log storage engine (one PartitionLog per partition replica).
export { PartitionLog, LOG_START_OFFSET_CHECKPOINT, RECOVERY_POINT_CHECKPOINT } from "./log.js";
export { DEFAULT_LOG_CONFIG, MAX_SEGMENT_BYTES, resolveLogConfig } from "./config.js";
export { LEADER_EPOCH_CHECKPOINT, LeaderEpochCache, UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET } from "./epoch-cache.js";
export { segmentBaseName, segmentPaths, type SegmentPaths } from "./files.js";
export { LogSegment, type SegmentRecovery } from "./segment.js";
export { OffsetIndex, OFFSET_INDEX_ENTRY_SIZE } from "./offset-index.js";
export { TimeIndex, TIME_INDEX_ENTRY_SIZE } from "./time-index.js";
export {
  CleanupPolicy,
  MAX_READ_HEADROOM_BYTES,
  type AppendOptions,
  type AppendResult,
  type CompactionResult,
  type EpochEndOffset,
  type EpochEntry,
  type LogClock,
  type LogConfig,
  type LogLogger,
  type LogOpenOptions,
  type ReadOptions,
  type ReadResult,
  type ResolvedLogConfig,
  type RetentionResult,
} from "./types.js";
