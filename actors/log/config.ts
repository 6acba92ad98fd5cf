// Defaults of LogConfig and their validation. A bad value is INVALID_CONFIG at open time,
// never a surprise on the first append.

import { ErrorCode, SkeinError } from "../../protocol/errors.js";
import { LOG_OVERHEAD } from "../../protocol/record-batch.js";
import { CleanupPolicy, type LogConfig, type ResolvedLogConfig } from "./types.js";

const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;
const DAY_MS = 24 * 60 * 60 * 1000;
/** Positions in the offset index are int32. */
export const MAX_SEGMENT_BYTES = 0x7fffffff;

export const DEFAULT_LOG_CONFIG: ResolvedLogConfig = {
  segmentBytes: GIB,
  segmentMs: 7 * DAY_MS,
  segmentIndexBytes: 10 * MIB,
  indexIntervalBytes: 4 * KIB,
  retentionMs: 7 * DAY_MS,
  retentionBytes: -1,
  cleanupPolicy: CleanupPolicy.DELETE,
  deleteRetentionMs: DAY_MS,
  minCleanableDirtyRatio: 0.5,
  compactionMaxKeys: 250_000,
  maxMessageBytes: MIB + LOG_OVERHEAD,
  maxReadBytes: 64 * MIB,
  flushMessages: undefined,
  flushMs: undefined,
  retentionCheckIntervalMs: 5 * 60 * 1000,
  compactionCheckIntervalMs: 15 * 1000,
};

function invalid(field: string, message: string): SkeinError {
  return new SkeinError(ErrorCode.INVALID_CONFIG, `log config ${field}: ${message}`, { field });
}

function requireInt(config: ResolvedLogConfig, field: keyof ResolvedLogConfig, min: number, max = Number.MAX_SAFE_INTEGER): void {
  const value = config[field];
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(field, `must be an integer in [${min}, ${max}], got ${String(value)}`);
  }
}

export function resolveLogConfig(config: LogConfig = {}): ResolvedLogConfig {
  const defined = Object.fromEntries(Object.entries(config).filter(([, v]) => v !== undefined));
  const c: ResolvedLogConfig = { ...DEFAULT_LOG_CONFIG, ...defined };
  requireInt(c, "segmentBytes", 64, MAX_SEGMENT_BYTES);
  requireInt(c, "segmentMs", 1);
  requireInt(c, "segmentIndexBytes", 64, MAX_SEGMENT_BYTES);
  requireInt(c, "indexIntervalBytes", 0, MAX_SEGMENT_BYTES);
  requireInt(c, "retentionMs", -1);
  requireInt(c, "retentionBytes", -1);
  requireInt(c, "deleteRetentionMs", 0);
  requireInt(c, "compactionMaxKeys", 1);
  requireInt(c, "maxMessageBytes", 64, MAX_SEGMENT_BYTES);
  requireInt(c, "maxReadBytes", 1, MAX_SEGMENT_BYTES);
  requireInt(c, "retentionCheckIntervalMs", 1);
  requireInt(c, "compactionCheckIntervalMs", 1);
  if (c.flushMessages !== undefined) requireInt(c, "flushMessages", 1);
  if (c.flushMs !== undefined) requireInt(c, "flushMs", 1);
  if (!(c.minCleanableDirtyRatio >= 0 && c.minCleanableDirtyRatio <= 1)) {
    throw invalid("minCleanableDirtyRatio", `must be in [0, 1], got ${c.minCleanableDirtyRatio}`);
  }
  if (c.cleanupPolicy !== CleanupPolicy.DELETE && c.cleanupPolicy !== CleanupPolicy.COMPACT) {
    throw invalid("cleanupPolicy", `must be 'delete' or 'compact', got ${String(c.cleanupPolicy)}`);
  }
  return c;
}
