// The safety checker: judges a chaos history (history.ts) and reports what did not survive.
// Anomaly names follow Jepsen's and Maelstrom's kafka workloads. One pass over the history in
// index order with hash maps keyed by (partition, offset) and by value, so ~1M operations
// check in a few seconds; a second pass runs only to collect witnesses for inconsistencies.
//
// What each anomaly means here (the exact rules, because "allowed" matters as much):
//
// * lost — an acknowledged send (`send` ok with `offset` o) whose value is not at o in any
//   final read of its partition. If the partition has final reads, o at or above their high
//   watermark counts as lost (an acks=all write the HW never covered, or an HW that moved
//   back); o below every final read's logStartOffset is exempt (retention). Without a final
//   read, the polls decide: lost if o ≤ the highest offset any poll returned for the
//   partition and no read saw the value at o. An ok without an offset is lost if its value is
//   in no final read of its partition.
// * duplicate — one value observed at two or more distinct (topic, partition, offset)
//   positions by reads (polls and final reads). Retried sends are not duplicates by
//   themselves, nor is one offset read again (after a rebalance, or by the final read).
// * inconsistent — two different values observed at one (topic, partition, offset) by reads:
//   polls, the client final read, or replica dumps (below the high watermark).
// * nonmonotonic — within one poll sequence (one process, one partition), an offset not
//   greater than the previous one. A sequence starts at the process's first poll of the
//   partition and restarts at every `assign` for that process (eager semantics: a rebalance
//   may rewind every assigned partition) and at every `seek`. The first offset of a restarted
//   sequence may be anything at or above the group's latest committed offset for the
//   partition as recorded before the assign (or the seek offset); below it is nonmonotonic
//   (reason below-committed / below-seek). Offsets in a final read must also strictly rise.
// * gap — offsets skipped inside a read range that is dense below the high watermark: in a
//   final read, every offset in [logStartOffset, highWatermark) must be present; in a poll
//   sequence, consecutive offsets must differ by exactly one (a restart after assign/seek may
//   start higher). Counted as distinct missing (topic, partition, offset) positions.
//   Topics listed in `compactedTopics` are exempt.
// * double-owner — two owners of one partition in the same generation of one group. An owner
//   is `instanceId` when set (static membership keeps ownership across a restart), else the
//   member id. Counted per (group, generation, partition).
// * commit-regression — a group's committed offset for a partition (successive `commit` ok
//   operations, in history order) moving backwards. A `reset` sets the committed offset; a
//   backwards reset counts only with `allowResets: false`.
//
// * unseen (Jepsen's name) — judged only for a group whose end the history records
//   (`group-end`: its members were given the time to read everything, then stopped): an
//   acknowledged send to one of its topics that no poll of any member returned, at any offset.
//   The group never processed it: lost for the group even when the log has it.
//
// Liveness that still fails a run: undrained — after a `group-end`, a partition of its topics
// whose final read has records below the high watermark that the members' polls never reached
// (the group stopped behind). Counted per (group, partition).
//
// Availability (not safety): the longest window without an acknowledged send, between the
// first and last send operation; and, per fault start, the time to the first ack recorded
// after it.

import { ErrorCode, SkeinError } from "../../protocol/errors.js";
import type { AssignOp, CommitOp, FaultOp, FinalReadOp, GroupEndOp, History, HistoryOp, PollOp, ResetOp, SeekOp, SendOp } from "./history.js";

export interface CheckOptions {
  /** Examples kept per anomaly. Default 8. */
  maxExamples?: number;
  /** Topics with cleanup.policy=compact: their offsets are sparse, so no gap is reported for them. Default none. */
  compactedTopics?: readonly string[];
  /** An explicit `reset` may move a committed offset backwards. Default true. */
  allowResets?: boolean;
}

export interface PartitionOffset {
  topic: string;
  partition: number;
  offset: number;
}

export interface LostExample {
  topic: string;
  partition: number;
  value: string;
  /** Acknowledged offset (null when the ack carried none). */
  offset: number | null;
  /** History index of the ack. */
  index: number;
  /** above-high-watermark: the final read ends before it; missing: no record there; replaced: another value there; unread: no read saw it although later offsets were read. */
  reason: "above-high-watermark" | "missing" | "replaced" | "unread";
  /** Where reads saw this value instead (at most maxExamples positions). */
  seenAt: PartitionOffset[];
}

export interface UnseenExample {
  group: string;
  topic: string;
  partition: number;
  value: string;
  /** Acknowledged offset (null when the ack carried none). */
  offset: number | null;
  /** History index of the ack. */
  index: number;
}

export interface UndrainedExample {
  group: string;
  topic: string;
  partition: number;
  /** Highest offset a member polled; -1 for none. */
  polledUpTo: number;
  highWatermark: number;
}

export interface DuplicateExample {
  value: string;
  at: PartitionOffset[];
}

export interface Witness {
  value: string;
  index: number;
  process: string;
  f: "poll" | "final-read";
  replica?: string;
}

export interface InconsistentExample extends PartitionOffset {
  values: string[];
  /** Which reads saw which value (first reads per value). */
  witnesses: Witness[];
}

export interface NonmonotonicExample {
  process: string;
  topic: string;
  partition: number;
  /** History index of the poll or final read. */
  index: number;
  /** Offset read before (backwards) or the floor the sequence had to start at (below-*). */
  previous: number;
  offset: number;
  reason: "backwards" | "below-committed" | "below-seek";
  replica?: string;
}

export interface GapExample {
  topic: string;
  partition: number;
  /** First missing offset. */
  from: number;
  /** Last missing offset (inclusive). */
  to: number;
  f: "poll" | "final-read";
  index: number;
  process: string;
  replica?: string;
}

export interface DoubleOwnerExample {
  group: string;
  generation: number;
  topic: string;
  partition: number;
  owners: string[];
  indexes: number[];
}

export interface CommitRegressionExample {
  group: string;
  topic: string;
  partition: number;
  from: number;
  to: number;
  index: number;
  via: "commit" | "reset";
  member?: string;
  generation?: number;
}

export interface FaultRef {
  index: number;
  time: number;
  kind: string;
  target: string;
  detail?: string;
}

export interface Recovery {
  fault: FaultRef;
  /** Fault start to the first acknowledged send recorded after it; null if none came. Milliseconds. */
  ms: number | null;
  /**
   * Fault start until every partition sent to after the fault has acknowledged a send invoked
   * after it — the failover time of the partition the fault hurt most (`ms` alone is near 0
   * when other partitions keep working). null if some partition never did. Milliseconds.
   */
  allPartitionsMs: number | null;
}

export interface CheckResult {
  /** True when no safety anomaly was found (availability never fails a run). */
  ok: boolean;
  /** Acknowledged sends. */
  acked: number;
  /** Sends that certainly failed. */
  failed: number;
  /** Sends with an indeterminate outcome. */
  indeterminate: number;
  lost: number;
  duplicate: number;
  inconsistent: number;
  nonmonotonic: number;
  gap: number;
  doubleOwner: number;
  commitRegression: number;
  unseen: number;
  /** Partitions a group stopped reading below the high watermark (see undrained above); fails the run. */
  undrained: number;
  /** Longest window without an acknowledged send. Milliseconds. */
  maxUnavailableMs: number;
  /** The window behind maxUnavailableMs (wall-clock ms), null without sends. */
  maxUnavailableWindow: { from: number; to: number } | null;
  recoveries: Recovery[];
  examples: {
    lost: LostExample[];
    duplicate: DuplicateExample[];
    inconsistent: InconsistentExample[];
    nonmonotonic: NonmonotonicExample[];
    gap: GapExample[];
    doubleOwner: DoubleOwnerExample[];
    commitRegression: CommitRegressionExample[];
    unseen: UnseenExample[];
    undrained: UndrainedExample[];
  };
}

/** The safety anomaly counters of a CheckResult, in report order. */
export const SAFETY_ANOMALIES = ["lost", "duplicate", "inconsistent", "nonmonotonic", "gap", "doubleOwner", "commitRegression", "unseen"] as const;
export type SafetyAnomaly = (typeof SAFETY_ANOMALIES)[number];
/** Counters that fail a run besides the safety anomalies (liveness the workload relies on). */
export const LIVENESS_FAILURES = ["undrained"] as const;

/** Offsets are packed with the partition id into one number key: id * 2^32 + offset. */
const OFFSET_LIMIT = 2 ** 32;
const PARTITION_LIMIT = 2 ** 20;

/** Dense ids for (topic, partition), so positions are plain number keys. */
class PartitionTable {
  readonly names: { topic: string; partition: number }[] = [];
  readonly #ids = new Map<string, Map<number, number>>();

  id(topic: string, partition: number): number {
    let byPartition = this.#ids.get(topic);
    if (byPartition === undefined) this.#ids.set(topic, (byPartition = new Map()));
    let id = byPartition.get(partition);
    if (id === undefined) {
      id = this.names.length;
      if (id >= PARTITION_LIMIT) throw new SkeinError(ErrorCode.INVALID_REQUEST, `history has more than ${PARTITION_LIMIT} partitions`);
      byPartition.set(partition, id);
      this.names.push({ topic, partition });
    }
    return id;
  }

  pos(id: number, offset: number): number {
    if (offset >= OFFSET_LIMIT) throw new SkeinError(ErrorCode.INVALID_REQUEST, `offset ${offset} is beyond what the checker indexes (${OFFSET_LIMIT})`);
    return id * OFFSET_LIMIT + offset;
  }

  unpack(pos: number): PartitionOffset {
    const id = Math.floor(pos / OFFSET_LIMIT);
    return { ...this.names[id], offset: pos - id * OFFSET_LIMIT };
  }
}

interface Sequence {
  /** Last offset read in this sequence; -1 before the first read. */
  last: number;
  /** Lowest offset the first read may start at; -1 for none. */
  floor: number;
  floorReason: "below-committed" | "below-seek";
}

interface Gap {
  tp: number;
  from: number;
  to: number;
}

/** Sends, in history order: the acknowledged ones, and counters. */
class SendLog {
  readonly tp: number[] = [];
  /** History index of the ack's invoke (the ack's own index when the invoke was not recorded). */
  readonly invokeIndex: number[] = [];
  /** Per partition id, the index of the latest send invoke. */
  readonly lastInvoke: number[] = [];
  readonly offset: number[] = [];
  readonly value: string[] = [];
  readonly index: number[] = [];
  readonly time: number[] = [];
  /** Invokes awaiting their completion, by value. */
  readonly pending = new Map<string, number>();
  failed = 0;
  indeterminate = 0;
  firstTime = Infinity;
  lastTime = -Infinity;
}

class Checker {
  readonly tps = new PartitionTable();
  readonly sends = new SendLog();
  // Every read observation (polls and final reads below the HW). Per-partition arrays indexed
  // by offset and a value -> slot map with the slot's position in parallel arrays keep the
  // hot path free of non-small-integer keys and per-record objects.
  readonly valueAt: string[][] = [];
  /** Every distinct value seen at a position that has more than one. */
  readonly conflicts = new Map<number, string[]>();
  readonly firstSlot = new Map<string, number>();
  readonly slotTp: number[] = [];
  readonly slotOffset: number[] = [];
  /** Every distinct position of a value seen at more than one. */
  readonly allPos = new Map<string, number[]>();
  readonly maxReadOffset: number[] = [];
  // Final reads only.
  readonly finalValueAt: string[][] = [];
  readonly finalAlt = new Map<number, string[]>();
  readonly finalHw: number[] = [];
  readonly finalStart: number[] = [];
  readonly gaps: Gap[] = [];
  readonly sequences = new Map<string, Map<number, Sequence>>();
  readonly committed = new Map<string, number>();
  readonly owners = new Map<string, { owner: string; index: number; flagged: boolean }>();
  readonly faults: FaultRef[] = [];
  /** Groups each process joined (by `assign`), so its polls count for them. */
  readonly groupsOf = new Map<string, Set<string>>();
  /** Values each group member's polls returned. */
  readonly polledValues = new Map<string, Set<string>>();
  /** Highest offset each group member polled, per partition id. */
  readonly maxPolled = new Map<string, number[]>();
  readonly groupEnds: GroupEndOp[] = [];
  readonly result: CheckResult;
  readonly maxExamples: number;
  readonly compacted: ReadonlySet<string>;
  readonly allowResets: boolean;

  constructor(options: CheckOptions) {
    this.maxExamples = options.maxExamples ?? 8;
    this.compacted = new Set(options.compactedTopics ?? []);
    this.allowResets = options.allowResets ?? true;
    this.result = emptyResult();
  }

  example<K extends keyof CheckResult["examples"]>(kind: K, example: CheckResult["examples"][K][number]): void {
    const list = this.result.examples[kind] as unknown[];
    if (list.length < this.maxExamples) list.push(example);
  }

  run(history: History): CheckResult {
    for (const op of inIndexOrder(history)) this.apply(op);
    this.judgeLost();
    this.judgeGroups();
    this.countReadAnomalies(history);
    this.countGaps();
    this.judgeAvailability();
    const r = this.result;
    r.ok = SAFETY_ANOMALIES.every((k) => r[k] === 0) && LIVENESS_FAILURES.every((k) => r[k] === 0);
    return r;
  }

  apply(op: HistoryOp): void {
    switch (op.f) {
      case "send": return this.send(op);
      case "poll": return this.poll(op);
      case "final-read": return this.finalRead(op);
      case "assign": return this.assign(op);
      case "commit": return this.commit(op);
      case "reset": return this.reset(op);
      case "seek": return this.seek(op);
      case "fault": return this.fault(op);
      case "group-end": return void this.groupEnds.push(op);
      case "heal": return;
    }
  }

  send(op: SendOp): void {
    const s = this.sends;
    if (op.time < s.firstTime) s.firstTime = op.time;
    if (op.time > s.lastTime) s.lastTime = op.time;
    const tp = this.tps.id(op.topic, op.partition);
    if (op.type === "invoke") {
      s.pending.set(op.value, op.index);
      s.lastInvoke[tp] = op.index;
      return;
    }
    const invokeIndex = s.pending.get(op.value) ?? op.index;
    s.pending.delete(op.value);
    if (op.type === "fail") s.failed++;
    else if (op.type === "info") s.indeterminate++;
    if (op.type !== "ok") return;
    s.tp.push(tp);
    s.invokeIndex.push(invokeIndex);
    s.offset.push(op.offset ?? -1);
    s.value.push(op.value);
    s.index.push(op.index);
    s.time.push(op.time);
  }

  /** Records one read of `value` at (tp, offset): feeds inconsistent and duplicate. */
  observe(tp: number, offset: number, value: string): void {
    const at = (this.valueAt[tp] ??= []);
    const seen = at[offset];
    if (seen === undefined) at[offset] = value;
    else if (seen !== value) addDistinct(this.conflicts, this.tps.pos(tp, offset), seen, value);
    const slot = this.firstSlot.get(value);
    if (slot === undefined) {
      this.firstSlot.set(value, this.slotTp.length);
      this.slotTp.push(tp);
      this.slotOffset.push(offset);
    } else if (this.slotTp[slot] !== tp || this.slotOffset[slot] !== offset) {
      addDistinct(this.allPos, value, this.tps.pos(this.slotTp[slot], this.slotOffset[slot]), this.tps.pos(tp, offset));
    }
  }

  poll(op: PollOp): void {
    if (op.type !== "ok" || op.records === undefined) return;
    const tp = this.tps.id(op.topic, op.partition);
    const seq = this.sequence(op.process, tp);
    const dense = !this.compacted.has(op.topic);
    let maxOffset = this.maxReadOffset[tp] ?? -1;
    if (this.groupsOf.has(op.process)) this.polledByMember(op.process, tp, op.records);
    for (const r of op.records) {
      this.observe(tp, r.offset, r.value);
      if (r.offset > maxOffset) maxOffset = r.offset;
      if (seq.last === -1) {
        if (r.offset < seq.floor) this.nonmonotonic(op, seq.floor, r.offset, seq.floorReason);
      } else if (r.offset <= seq.last) {
        this.nonmonotonic(op, seq.last, r.offset, "backwards");
      } else if (r.offset > seq.last + 1 && dense) {
        this.gap({ tp, from: seq.last + 1, to: r.offset - 1 }, op);
      }
      seq.last = r.offset;
    }
    this.maxReadOffset[tp] = maxOffset;
  }

  polledByMember(process: string, tp: number, records: readonly { offset: number; value: string }[]): void {
    let values = this.polledValues.get(process);
    if (values === undefined) this.polledValues.set(process, (values = new Set()));
    let max = this.maxPolled.get(process);
    if (max === undefined) this.maxPolled.set(process, (max = []));
    for (const r of records) {
      values.add(r.value);
      if (r.offset > (max[tp] ?? -1)) max[tp] = r.offset;
    }
  }

  sequence(process: string, tp: number): Sequence {
    let byTp = this.sequences.get(process);
    if (byTp === undefined) this.sequences.set(process, (byTp = new Map()));
    let seq = byTp.get(tp);
    if (seq === undefined) byTp.set(tp, (seq = { last: -1, floor: -1, floorReason: "below-committed" }));
    return seq;
  }

  nonmonotonic(op: PollOp | FinalReadOp, previous: number, offset: number, reason: NonmonotonicExample["reason"]): void {
    this.result.nonmonotonic++;
    const replica = op.f === "final-read" ? op.replica : undefined;
    this.example("nonmonotonic", { process: op.process, topic: op.topic, partition: op.partition, index: op.index, previous, offset, reason, ...(replica === undefined ? {} : { replica }) });
  }

  gap(gap: Gap, op: PollOp | FinalReadOp): void {
    this.gaps.push(gap);
    const replica = op.f === "final-read" ? op.replica : undefined;
    this.example("gap", { topic: op.topic, partition: op.partition, from: gap.from, to: gap.to, f: op.f, index: op.index, process: op.process, ...(replica === undefined ? {} : { replica }) });
  }

  finalRead(op: FinalReadOp): void {
    const tp = this.tps.id(op.topic, op.partition);
    const start = op.logStartOffset ?? 0;
    const hw = op.highWatermark;
    const dense = !this.compacted.has(op.topic);
    this.finalHw[tp] = Math.max(this.finalHw[tp] ?? 0, hw);
    this.finalStart[tp] = Math.min(this.finalStart[tp] ?? Infinity, start);
    let previous = -1;
    let next = start;
    for (const r of op.records) {
      if (r.offset >= hw) continue;
      this.observe(tp, r.offset, r.value);
      this.observeFinal(tp, r.offset, r.value);
      if (previous !== -1 && r.offset <= previous) this.nonmonotonic(op, previous, r.offset, "backwards");
      else if (r.offset > next && dense) this.gap({ tp, from: next, to: r.offset - 1 }, op);
      previous = r.offset;
      if (r.offset + 1 > next) next = r.offset + 1;
    }
    if (next < hw && dense) this.gap({ tp, from: next, to: hw - 1 }, op);
  }

  observeFinal(tp: number, offset: number, value: string): void {
    const at = (this.finalValueAt[tp] ??= []);
    const seen = at[offset];
    if (seen === undefined) at[offset] = value;
    else if (seen !== value) addDistinct(this.finalAlt, this.tps.pos(tp, offset), value);
  }

  inFinal(tp: number, offset: number, value: string): boolean {
    const seen = this.finalValueAt[tp]?.[offset];
    return seen === value || (seen !== undefined && (this.finalAlt.get(this.tps.pos(tp, offset))?.includes(value) ?? false));
  }

  readAt(tp: number, offset: number, value: string): boolean {
    const seen = this.valueAt[tp]?.[offset];
    return seen === value || (seen !== undefined && (this.conflicts.get(this.tps.pos(tp, offset))?.includes(value) ?? false));
  }

  assign(op: AssignOp): void {
    let groups = this.groupsOf.get(op.process);
    if (groups === undefined) this.groupsOf.set(op.process, (groups = new Set()));
    groups.add(op.group);
    const byTp = new Map<number, Sequence>();
    for (const { topic, partition } of op.partitions) {
      const tp = this.tps.id(topic, partition);
      byTp.set(tp, { last: -1, floor: this.committed.get(groupKey(op.group, tp)) ?? -1, floorReason: "below-committed" });
      this.own(op, tp);
    }
    this.sequences.set(op.process, byTp);
  }

  own(op: AssignOp, tp: number): void {
    const owner = op.instanceId ?? op.member;
    const key = `${op.group}\u0000${op.generation}\u0000${tp}`;
    const current = this.owners.get(key);
    if (current === undefined) {
      this.owners.set(key, { owner, index: op.index, flagged: false });
      return;
    }
    if (current.owner === owner || current.flagged) return;
    current.flagged = true;
    this.result.doubleOwner++;
    const { topic, partition } = this.tps.names[tp];
    this.example("doubleOwner", { group: op.group, generation: op.generation, topic, partition, owners: [current.owner, owner], indexes: [current.index, op.index] });
  }

  commit(op: CommitOp): void {
    if (op.type !== "ok") return;
    const tp = this.tps.id(op.topic, op.partition);
    const key = groupKey(op.group, tp);
    const before = this.committed.get(key);
    if (before !== undefined && op.offset < before) {
      this.commitRegression({ group: op.group, topic: op.topic, partition: op.partition, from: before, to: op.offset, index: op.index, via: "commit", member: op.member, generation: op.generation });
    }
    this.committed.set(key, op.offset);
  }

  reset(op: ResetOp): void {
    const key = groupKey(op.group, this.tps.id(op.topic, op.partition));
    const before = this.committed.get(key);
    if (!this.allowResets && before !== undefined && op.offset < before) {
      this.commitRegression({ group: op.group, topic: op.topic, partition: op.partition, from: before, to: op.offset, index: op.index, via: "reset" });
    }
    this.committed.set(key, op.offset);
  }

  commitRegression(example: CommitRegressionExample): void {
    this.result.commitRegression++;
    this.example("commitRegression", example);
  }

  seek(op: SeekOp): void {
    const seq = this.sequence(op.process, this.tps.id(op.topic, op.partition));
    seq.last = -1;
    seq.floor = op.offset;
    seq.floorReason = "below-seek";
  }

  fault(op: FaultOp): void {
    if (op.type !== "start") return;
    this.faults.push({ index: op.index, time: op.time, kind: op.kind, target: op.target, ...(op.detail === undefined ? {} : { detail: op.detail }) });
  }

  judgeLost(): void {
    const s = this.sends;
    for (let i = 0; i < s.tp.length; i++) {
      const reason = s.offset[i] === -1 ? this.lostWithoutOffset(s.tp[i], s.value[i]) : this.lostAt(s.tp[i], s.offset[i], s.value[i]);
      if (reason === null) continue;
      this.result.lost++;
      const { topic, partition } = this.tps.names[s.tp[i]];
      const offset = s.offset[i] === -1 ? null : s.offset[i];
      this.example("lost", { topic, partition, value: s.value[i], offset, index: s.index[i], reason, seenAt: this.positionsOf(s.value[i]).slice(0, this.maxExamples).map((p) => ({ ...this.tps.names[p.tp], offset: p.offset })) });
    }
  }

  /** unseen and undrained, for every group whose end the history records. */
  judgeGroups(): void {
    for (const end of this.groupEnds) {
      const members = [...this.groupsOf].filter(([, groups]) => groups.has(end.group)).map(([process]) => process);
      const topics = new Set(end.topics);
      const s = this.sends;
      for (let i = 0; i < s.tp.length; i++) {
        const { topic, partition } = this.tps.names[s.tp[i]];
        if (!topics.has(topic) || members.some((m) => this.polledValues.get(m)?.has(s.value[i]))) continue;
        this.result.unseen++;
        this.example("unseen", { group: end.group, topic, partition, value: s.value[i], offset: s.offset[i] === -1 ? null : s.offset[i], index: s.index[i] });
      }
      this.tps.names.forEach(({ topic, partition }, tp) => {
        const hw = this.finalHw[tp];
        if (!topics.has(topic) || hw === undefined || hw <= (this.finalStart[tp] ?? 0)) return;
        const polledUpTo = Math.max(-1, ...members.map((m) => this.maxPolled.get(m)?.[tp] ?? -1));
        if (polledUpTo >= hw - 1) return;
        this.result.undrained++;
        this.example("undrained", { group: end.group, topic, partition, polledUpTo, highWatermark: hw });
      });
    }
  }

  lostAt(tp: number, offset: number, value: string): LostExample["reason"] | null {
    const hw = this.finalHw[tp];
    if (hw === undefined) {
      const unread = offset <= (this.maxReadOffset[tp] ?? -1) && !this.readAt(tp, offset, value);
      return unread ? "unread" : null;
    }
    if (offset < this.finalStart[tp]) return null;
    if (offset >= hw) return "above-high-watermark";
    if (this.inFinal(tp, offset, value)) return null;
    return this.finalValueAt[tp]?.[offset] === undefined ? "missing" : "replaced";
  }

  lostWithoutOffset(tp: number, value: string): LostExample["reason"] | null {
    if (this.finalHw[tp] === undefined) return null;
    return this.positionsOf(value).some((p) => p.tp === tp && this.inFinal(tp, p.offset, value)) ? null : "missing";
  }

  /** Every distinct position reads saw `value` at. */
  positionsOf(value: string): { tp: number; offset: number }[] {
    const slot = this.firstSlot.get(value);
    if (slot === undefined) return [];
    const all = this.allPos.get(value);
    if (all === undefined) return [{ tp: this.slotTp[slot], offset: this.slotOffset[slot] }];
    return all.map((pos) => ({ tp: Math.floor(pos / OFFSET_LIMIT), offset: pos % OFFSET_LIMIT }));
  }

  countReadAnomalies(history: History): void {
    this.result.duplicate = this.allPos.size;
    for (const [value, positions] of this.allPos) {
      if (this.result.examples.duplicate.length >= this.maxExamples) break;
      this.example("duplicate", { value, at: positions.map((pos) => this.tps.unpack(pos)) });
    }
    this.result.inconsistent = this.conflicts.size;
    if (this.conflicts.size > 0) this.result.examples.inconsistent = this.inconsistentExamples(history);
  }

  /** Second pass, only when there are inconsistencies: which reads saw which value. */
  inconsistentExamples(history: History): InconsistentExample[] {
    const examples = new Map<number, InconsistentExample>();
    for (const [pos, values] of this.conflicts) {
      if (examples.size >= this.maxExamples) break;
      examples.set(pos, { ...this.tps.unpack(pos), values, witnesses: [] });
    }
    for (const op of history) {
      if (!(op.f === "final-read" || (op.f === "poll" && op.type === "ok"))) continue;
      const tp = this.tps.id(op.topic, op.partition);
      for (const r of op.records ?? []) {
        const example = examples.get(this.tps.pos(tp, r.offset));
        if (example === undefined || example.witnesses.some((w) => w.value === r.value)) continue;
        if (op.f === "final-read" && r.offset >= op.highWatermark) continue;
        const replica = op.f === "final-read" ? op.replica : undefined;
        example.witnesses.push({ value: r.value, index: op.index, process: op.process, f: op.f, ...(replica === undefined ? {} : { replica }) });
      }
    }
    return [...examples.values()];
  }

  /** Distinct missing positions: the union of the gap ranges, per partition. */
  countGaps(): void {
    this.gaps.sort((a, b) => a.tp - b.tp || a.from - b.from);
    let total = 0;
    let tp = -1;
    let end = -1;
    for (const g of this.gaps) {
      if (g.tp !== tp) {
        tp = g.tp;
        end = -1;
      }
      const from = Math.max(g.from, end + 1);
      if (g.to >= from) total += g.to - from + 1;
      if (g.to > end) end = g.to;
    }
    this.result.gap = total;
  }

  judgeAvailability(): void {
    const s = this.sends;
    const r = this.result;
    r.acked = s.tp.length;
    r.failed = s.failed;
    r.indeterminate = s.indeterminate;
    if (s.firstTime !== Infinity) {
      const window = longestWindow(s.time, s.firstTime, s.lastTime);
      r.maxUnavailableMs = window.to - window.from;
      r.maxUnavailableWindow = window;
    }
    r.recoveries = this.faults.map((fault) => {
      const i = firstGreater(s.index, fault.index);
      const ms = i < s.index.length ? Math.max(0, s.time[i] - fault.time) : null;
      return { fault, ms, allPartitionsMs: this.allPartitionsRecovered(fault, i) };
    });
  }

  /** Scans acks from `from` until each partition invoked after the fault has an ack invoked after it. */
  allPartitionsRecovered(fault: FaultRef, from: number): number | null {
    const s = this.sends;
    const waiting = new Set<number>();
    s.lastInvoke.forEach((index, tp) => index > fault.index && waiting.add(tp));
    let last = fault.time;
    for (let i = from; i < s.index.length && waiting.size > 0; i++) {
      if (s.invokeIndex[i] > fault.index && waiting.delete(s.tp[i])) last = Math.max(last, s.time[i]);
    }
    return waiting.size === 0 ? last - fault.time : null;
  }
}

function emptyResult(): CheckResult {
  return {
    ok: true,
    acked: 0,
    failed: 0,
    indeterminate: 0,
    lost: 0,
    duplicate: 0,
    inconsistent: 0,
    nonmonotonic: 0,
    gap: 0,
    doubleOwner: 0,
    commitRegression: 0,
    unseen: 0,
    undrained: 0,
    maxUnavailableMs: 0,
    maxUnavailableWindow: null,
    recoveries: [],
    examples: { lost: [], duplicate: [], inconsistent: [], nonmonotonic: [], gap: [], doubleOwner: [], commitRegression: [], unseen: [], undrained: [] },
  };
}

function groupKey(group: string, tp: number): string {
  return `${group}\u0000${tp}`;
}

function addDistinct<K, V>(map: Map<K, V[]>, key: K, ...values: V[]): void {
  let list = map.get(key);
  if (list === undefined) map.set(key, (list = []));
  for (const v of values) if (!list.includes(v)) list.push(v);
}

/** The history as given when already in index order (the recorder's), else a sorted copy. */
function inIndexOrder(history: History): History {
  for (let i = 1; i < history.length; i++) {
    if (history[i].index <= history[i - 1].index) return [...history].sort((a, b) => a.index - b.index);
  }
  return history;
}

/** Longest interval between consecutive points of [start, ...ackTimes, end]. */
function longestWindow(ackTimes: number[], start: number, end: number): { from: number; to: number } {
  const times = Float64Array.from(ackTimes).sort();
  let best = { from: start, to: start };
  let previous = start;
  for (const t of times) {
    if (t - previous > best.to - best.from) best = { from: previous, to: t };
    if (t > previous) previous = t;
  }
  if (end - previous > best.to - best.from) best = { from: previous, to: end };
  return best;
}

/** First i with sorted[i] > x (sorted ascending), or sorted.length. */
function firstGreater(sorted: number[], x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] > x) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Judges a history; see the top of this file for what each anomaly means. */
export function checkHistory(history: History, options: CheckOptions = {}): CheckResult {
  return new Checker(options).run(history);
}

/**
 * The machine-readable verdict line of `skein chaos run --json`:
 * {"scenario":…,"seed":…,"acked":N,"lost":0,"duplicate":0,…,"unseen":0,"undrained":0,"maxUnavailableMs":…}
 */
export function verdictJson(result: CheckResult, run: { scenario: string | null; seed: number | string | null }): string {
  const { acked, lost, duplicate, inconsistent, nonmonotonic, gap, doubleOwner, commitRegression, unseen, undrained, maxUnavailableMs } = result;
  return JSON.stringify({ scenario: run.scenario, seed: run.seed, acked, lost, duplicate, inconsistent, nonmonotonic, gap, doubleOwner, commitRegression, unseen, undrained, maxUnavailableMs });
}

const ANOMALY_LABELS: Record<SafetyAnomaly, string> = {
  lost: "lost (acknowledged, not in the final read at its offset)",
  duplicate: "duplicate (one value at several offsets)",
  inconsistent: "inconsistent (several values at one offset)",
  nonmonotonic: "nonmonotonic (a read sequence went backwards)",
  gap: "gap (offsets missing below the high watermark)",
  doubleOwner: "double-owner (two owners of a partition in one generation)",
  commitRegression: "commit-regression (a committed offset moved backwards)",
  unseen: "unseen (acknowledged, never returned to the consumer group)",
};

/** A human summary: verdict, counts, a few examples per anomaly, availability. */
export function summarize(result: CheckResult): string {
  const lines = [
    `${result.ok ? "PASS" : "FAIL"}: ${result.acked} acknowledged sends, ${result.failed} failed, ${result.indeterminate} indeterminate`,
  ];
  for (const kind of SAFETY_ANOMALIES) {
    if (result[kind] === 0) continue;
    lines.push(`  ${ANOMALY_LABELS[kind]}: ${result[kind]}`);
    for (const example of result.examples[kind].slice(0, 3)) lines.push(`    e.g. ${JSON.stringify(example)}`);
  }
  if (result.undrained > 0) {
    lines.push(`  undrained (the consumer group stopped below the high watermark): ${result.undrained} partitions`);
    for (const example of result.examples.undrained.slice(0, 3)) lines.push(`    e.g. ${JSON.stringify(example)}`);
  }
  if (result.ok) lines.push("  no safety anomalies");
  lines.push(`  longest window without an acknowledged send: ${result.maxUnavailableMs} ms`);
  for (const { fault, ms, allPartitionsMs } of result.recoveries) {
    const first = ms === null ? "no acknowledged send afterwards" : `first ack after ${ms} ms`;
    const all = allPartitionsMs === null ? "some partition never acknowledged again" : `every partition acknowledging new sends after ${allPartitionsMs} ms`;
    lines.push(`  ${fault.kind} ${fault.target} at #${fault.index}: ${first}, ${all}`);
  }
  return lines.join("\n");
}
