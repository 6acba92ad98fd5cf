// The history of a chaos run: what clients asked and were told, what group members were
// assigned and committed, what the nemesis did, and what a final read found. The checker
// (checker.ts) judges it; the timeline (timeline.ts) draws it.
//
// Shape, after Jepsen's histories: a list of operations, each with a strictly increasing
// `index` (the order the recorder saw them in), a wall-clock `time` in milliseconds and the
// `process` (client, consumer or "nemesis") it belongs to. A client operation is recorded
// when it is invoked and again when it completes: `ok` (it happened), `fail` (it certainly
// did not happen) or `info` (indeterminate: a timeout, a lost connection — it may have).
//
// On disk a history is JSONL: one operation per line, exactly the objects below.
//
//   {"index":0,"time":1700000000000,"process":"p0","f":"send","type":"invoke","topic":"t","partition":0,"value":"p0-0"}
//   {"index":1,"time":1700000000004,"process":"p0","f":"send","type":"ok","topic":"t","partition":0,"value":"p0-0","offset":0}
//   {"index":2,"time":1700000000010,"process":"c0","f":"poll","type":"ok","topic":"t","partition":0,"records":[{"offset":0,"value":"p0-0"}]}
//   {"index":3,"time":1700000000011,"process":"nemesis","f":"fault","type":"start","kind":"kill-broker","target":"b2"}

import { z } from "zod";
import { ErrorCode, SkeinError } from "../../protocol/errors.js";

const Offset = z.number().int().nonnegative();

/** Fields every operation carries. */
const Base = {
  /** Position in the history; strictly increasing, assigned by the recorder. */
  index: z.number().int().nonnegative(),
  /** Wall-clock time the recorder saw the operation. Milliseconds since the epoch. */
  time: z.number().finite(),
  /** Who performed it: a producer or consumer name (stable across its restarts), "nemesis" for faults, "checker" for final reads. */
  process: z.string().min(1),
};

export const OpType = {
  INVOKE: "invoke",
  OK: "ok",
  FAIL: "fail",
  /** Indeterminate: the operation may or may not have taken effect. */
  INFO: "info",
} as const;
export type OpType = (typeof OpType)[keyof typeof OpType];

export const ReadRecord = z.object({
  offset: Offset,
  /** Unique per send in the chaos workload, so a value identifies the send that wrote it. */
  value: z.string(),
});
export type ReadRecord = z.infer<typeof ReadRecord>;

export const TopicPartition = z.object({ topic: z.string().min(1), partition: Offset });
export type TopicPartition = z.infer<typeof TopicPartition>;

/**
 * A producer's send of one record. `ok` means acknowledged (acks=all in the workload) and
 * carries the offset the broker assigned. A retry of the same value is a new invoke with the
 * same value; only reads decide whether it was written twice.
 */
export const SendOp = z.object({
  ...Base,
  f: z.literal("send"),
  type: z.enum(["invoke", "ok", "fail", "info"]),
  topic: z.string().min(1),
  partition: Offset,
  value: z.string(),
  /** Offset from the acknowledgement; only on `ok`. */
  offset: Offset.optional(),
  /** Error code (protocol/errors.ts) on `fail` and `info`. */
  error: z.string().optional(),
});
export type SendOp = z.infer<typeof SendOp>;

/**
 * Records one consumer poll returned for one partition, in the order returned. A poll that
 * returned several partitions is recorded as one operation per partition. Failed polls carry
 * no records; they only count as errors on the timeline. A consumer's polls of a partition
 * form one sequence until its next `assign` or `seek`: a consumer that restarts must record
 * one of those before polling again, or poll under a new process name.
 */
export const PollOp = z.object({
  ...Base,
  f: z.literal("poll"),
  type: z.enum(["ok", "fail", "info"]),
  topic: z.string().min(1),
  partition: Offset,
  records: z.array(ReadRecord).optional(),
  error: z.string().optional(),
});
export type PollOp = z.infer<typeof PollOp>;

/**
 * The read-back after the cluster is quiet: everything from `logStartOffset` up to the high
 * watermark of one partition. Without `replica` it is what a client reading from the leader
 * saw; with `replica` it is a dump of that replica's log (records at or above
 * `highWatermark` are ignored: an uncommitted tail may legitimately diverge).
 */
export const FinalReadOp = z.object({
  ...Base,
  f: z.literal("final-read"),
  type: z.literal("ok"),
  topic: z.string().min(1),
  partition: Offset,
  /** Broker id or replica address whose log this is; absent for the client read-back. */
  replica: z.string().optional(),
  /**
   * Offsets in [logStartOffset, highWatermark) must all be present. The partition's high
   * watermark for the client read and for a replica in the ISR; for a replica outside the ISR,
   * the smaller of that and the replica's log end offset.
   */
  highWatermark: Offset,
  /** First offset still retained (retention moves it up). Default 0. */
  logStartOffset: Offset.optional(),
  records: z.array(ReadRecord),
});
export type FinalReadOp = z.infer<typeof FinalReadOp>;

/**
 * A group member learned its assignment for a generation (recorded when the member receives
 * it, before it fetches committed offsets). Starts a new poll sequence for every listed
 * partition of this process.
 */
export const AssignOp = z.object({
  ...Base,
  f: z.literal("assign"),
  type: z.literal("ok"),
  group: z.string().min(1),
  generation: z.number().int().nonnegative(),
  /** Member id handed out by the coordinator. */
  member: z.string().min(1),
  /** Static membership id (groupInstanceId): a restarted member keeps its identity with it. */
  instanceId: z.string().min(1).optional(),
  partitions: z.array(TopicPartition),
});
export type AssignOp = z.infer<typeof AssignOp>;

/** An offset commit; `offset` is the next offset the group will read (Kafka's meaning). */
export const CommitOp = z.object({
  ...Base,
  f: z.literal("commit"),
  type: z.enum(["invoke", "ok", "fail", "info"]),
  group: z.string().min(1),
  topic: z.string().min(1),
  partition: Offset,
  offset: Offset,
  generation: z.number().int(),
  member: z.string().min(1),
});
export type CommitOp = z.infer<typeof CommitOp>;

/** An explicit user reset of a group's committed offset (admin `resetOffsets`), which may move it backwards. */
export const ResetOp = z.object({
  ...Base,
  f: z.literal("reset"),
  type: z.literal("ok"),
  group: z.string().min(1),
  topic: z.string().min(1),
  partition: Offset,
  offset: Offset,
});
export type ResetOp = z.infer<typeof ResetOp>;

/** A consumer's explicit seek: its poll sequence for the partition restarts at `offset`. */
export const SeekOp = z.object({
  ...Base,
  f: z.literal("seek"),
  type: z.literal("ok"),
  topic: z.string().min(1),
  partition: Offset,
  offset: Offset,
});
export type SeekOp = z.infer<typeof SeekOp>;

/**
 * A fault the nemesis injected (`start`) or lifted (`end`). A start and an end pair up by
 * kind and target; a start without an end lasts until the next `heal` or the end of the run
 * (instant faults such as kill-worker may have neither).
 */
export const FaultOp = z.object({
  ...Base,
  f: z.literal("fault"),
  type: z.enum(["start", "end"]),
  /** kill-worker, kill-broker, pause-broker, isolate, delay, drop, duplicate, … */
  kind: z.string().min(1),
  /** What it hit: a broker, a worker, an address pattern. */
  target: z.string().min(1),
  detail: z.string().optional(),
});
export type FaultOp = z.infer<typeof FaultOp>;

/** The nemesis lifted every fault still in force. */
export const HealOp = z.object({
  ...Base,
  f: z.literal("heal"),
  type: z.literal("ok"),
  detail: z.string().optional(),
});
export type HealOp = z.infer<typeof HealOp>;

/**
 * The members of a consumer group stopped after being given the time to read every partition
 * of `topics` up to its high watermark. From here the checker expects every acknowledged send
 * to those topics to have been returned by a poll of a member (a process with an `assign` in
 * this group), and the members' polls to reach every final read's high watermark.
 */
export const GroupEndOp = z.object({
  ...Base,
  f: z.literal("group-end"),
  type: z.literal("ok"),
  group: z.string().min(1),
  topics: z.array(z.string().min(1)).min(1),
});
export type GroupEndOp = z.infer<typeof GroupEndOp>;

export const HistoryOp = z.discriminatedUnion("f", [SendOp, PollOp, FinalReadOp, AssignOp, CommitOp, ResetOp, SeekOp, FaultOp, HealOp, GroupEndOp]);
export type HistoryOp = z.infer<typeof HistoryOp>;
export type History = readonly HistoryOp[];

/** Distributes Omit over a union, so each variant keeps its own fields. */
export type OpInput = HistoryOp extends infer O ? (O extends HistoryOp ? Omit<O, "index" | "time"> : never) : never;

/** Wall clock behind an interface so tests and replays stamp times they choose. */
export interface HistoryClock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export interface HistoryRecorderOptions {
  clock?: HistoryClock;
  /** Most operations one recorder keeps; recording more throws. Operations; default 5,000,000. */
  maxOps?: number;
}

/** Stamps operations with the next index and the clock's time, in the order they are recorded. */
export class HistoryRecorder {
  readonly ops: HistoryOp[] = [];
  readonly #clock: HistoryClock;
  readonly #maxOps: number;

  constructor(options: HistoryRecorderOptions = {}) {
    this.#clock = options.clock ?? { now: () => Date.now() };
    this.#maxOps = options.maxOps ?? 5_000_000;
  }

  record(op: OpInput): HistoryOp {
    if (this.ops.length >= this.#maxOps) {
      throw new SkeinError(ErrorCode.INVALID_REQUEST, `history is full: ${this.#maxOps} operations (maxOps)`);
    }
    const stamped = { ...op, index: this.ops.length, time: this.#clock.now() } as HistoryOp;
    this.ops.push(stamped);
    return stamped;
  }

  toJsonl(): string {
    return historyToJsonl(this.ops);
  }
}

export function historyToJsonl(history: History): string {
  let out = "";
  for (const op of history) out += JSON.stringify(op) + "\n";
  return out;
}

/** Parses and validates a JSONL history; blank lines are skipped. Throws INVALID_REQUEST naming the line and field. */
export function parseHistoryJsonl(text: string): HistoryOp[] {
  const ops: HistoryOp[] = [];
  let lineNo = 0;
  for (const line of text.split("\n")) {
    lineNo++;
    if (line.trim() === "") continue;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch (e) {
      throw new SkeinError(ErrorCode.INVALID_REQUEST, `history line ${lineNo}: not JSON (${(e as Error).message})`, { line: lineNo });
    }
    const parsed = HistoryOp.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const field = issue.path.join(".");
      throw new SkeinError(ErrorCode.INVALID_REQUEST, `history line ${lineNo}: ${field || "operation"}: ${issue.message}`, { line: lineNo, field });
    }
    ops.push(parsed.data);
  }
  return ops;
}
