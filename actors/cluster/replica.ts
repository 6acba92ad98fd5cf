// A partition replica: owns the partition's log on this broker and plays the role the
// partition state in the KV gives it.
//
// Leader: appends produce requests, serves fetches (consumers up to the high watermark,
// followers up to the log end), tracks each follower's log end offset from its fetch offset,
// keeps HW = min LEO over the ISR (only ever forward), parks acks=all produces until HW
// passes them, shrinks/expands the ISR by compare-and-set on the partition state.
// Follower: on every new leader epoch asks the leader where its own latest epoch ends
// (OffsetsForLeaderEpoch) and truncates there, then follows: the fetcher of this worker
// (fetcher.ts) fetches for it in one session per leader worker and hands it what the leader
// sends (FollowerData), which it appends. Nothing here blocks the mailbox on the network:
// epoch queries complete by telling this actor an EpochAnswered message.

import { join } from "node:path";
import { rename } from "node:fs/promises";
import { z } from "zod";
import { defineActor, type ActorContext, type ReplyHandle } from "../../runtime/actor.js";
import { ErrorCode, SkeinError, isSkeinError } from "../../protocol/errors.js";
import {
  ReplicaMessages,
  TopicConfigs,
  fetcherAddress,
  replicaAddress,
  type FetchResult,
  type PartitionState,
  type ProduceResult,
  type ReplicaDescription,
} from "../../protocol/cluster.js";
import { PartitionLog } from "../log/log.js";
import { iterateBatches, readBatchHeader } from "../../protocol/record-batch.js";
import { offerEnvelopeHeadroom } from "../../protocol/envelope.js";
import { ProducerStateTable } from "./producer-state.js";
import { placementOf } from "../../protocol/placement.js";
import { logConfigFor, metadataFor } from "./shared.js";
import type { MetadataStore } from "./metadata.js";

export const ReplicaArgs = z.object({
  topic: z.string(),
  topicId: z.string(),
  partition: z.number().int().min(0),
  broker: z.number().int().min(0),
  dataDir: z.string(),
  configs: TopicConfigs,
  /** A follower that has not caught up for this long leaves the ISR, ms. */
  replicaLagTimeMaxMs: z.number().int().min(100).default(5_000),
  /** Worker threads of this broker (the follower's fetcher is the one on this replica's worker). */
  workers: z.number().int().min(1).default(1),
});
export type ReplicaArgs = z.infer<typeof ReplicaArgs>;

type Ctx = ActorContext<ReplicaArgs>;
type FetchRequest = z.infer<typeof ReplicaMessages.Fetch>;

interface FollowerProgress {
  logEndOffset: number;
  lastFetchAt: number;
  /** Leader LEO when this follower last fetched: reaching it later means caught up as of then. */
  leaderEndAtLastFetch: number;
  lastCaughtUpAt: number;
}

interface ParkedFetch {
  request: FetchRequest;
  reply: ReplyHandle<FetchResult>;
  deadline: number;
}

interface PendingAck {
  lastOffset: number;
  result: ProduceResult;
  reply: ReplyHandle<ProduceResult>;
  deadline: number;
}

const RETRY_BACKOFF_MS = 100;
/**
 * Bytes read in front of fetched batches for the reply's envelope (type, JSON of the other
 * fields, field name): a Fetch reply's or a one-partition FetchMany reply's is a few hundred.
 */
const READ_HEADROOM_BYTES = 1024;
/** Delay of the first tick after something starts waiting, ms. */
const TICK_MS = 100;

export class ReplicaState {
  role: "leader" | "follower" | "offline" = "offline";
  partitionState: PartitionState | null = null;
  /** KV revision of the newest partition state applied (or written by this replica's own ISR change). */
  stateRevision = -1;
  leaderEpoch = -1;
  maxControllerEpoch = -1;
  highWatermark = 0;
  isr = new Set<number>();
  followers = new Map<number, FollowerProgress>();
  parkedFetches: ParkedFetch[] = [];
  pendingAcks: PendingAck[] = [];
  /** Following leader epoch `fetchEpoch` through the fetcher, or its epoch query is outstanding. */
  fetchInFlight = false;
  fetchEpoch = -1;
  needsTruncation = false;
  isrChangeInFlight = false;
  /** Followers whose ISR join lost a race: the next Tick tries again. */
  private readonly pendingJoins = new Set<number>();
  /** When the scheduled Tick fires (Infinity: none scheduled) and how to cancel it. */
  tickAt = Infinity;
  cancelTick: (() => void) | null = null;
  readonly producers = new ProducerStateTable();

  /** This worker's fetcher. */
  readonly fetcher: string;

  constructor(
    readonly log: PartitionLog,
    readonly meta: MetadataStore,
    readonly args: ReplicaArgs,
  ) {
    this.fetcher = fetcherAddress(args.broker, placementOf(replicaAddress(args.topic, args.partition, args.broker), args.workers), args.workers);
    this.configs = args.configs;
  }

  /** The topic's configs: from its record in the KV at start, then as altered (Configure). */
  private configs: TopicConfigs;
  /** KV revision of the topic record the configs came from (0: the spawn arguments'). */
  private configsRevision = 0;

  get minInsync(): number {
    return this.configs["min.insync.replicas"] ?? 1;
  }

  /** The topic's configs were altered: the log applies them from now on (a replica of a re-created topic ignores its predecessor's). */
  configure(m: { topicId: string; configs: TopicConfigs; revision?: number }): void {
    if (m.topicId !== this.args.topicId) return;
    // A Configure delivered late (its watch event before the record the replica read at start) is older.
    if (m.revision !== undefined) {
      if (m.revision <= this.configsRevision) return;
      this.configsRevision = m.revision;
    }
    if (JSON.stringify(m.configs) === JSON.stringify(this.configs)) return;
    this.configs = m.configs;
    this.log.reconfigure(logConfigFor(m.configs));
  }

  describe(): ReplicaDescription {
    return {
      topic: this.args.topic,
      partition: this.args.partition,
      broker: this.args.broker,
      role: this.role,
      leaderEpoch: this.leaderEpoch,
      highWatermark: this.highWatermark,
      logStartOffset: this.log.logStartOffset,
      logEndOffset: this.log.logEndOffset,
      isr: [...this.isr].sort((a, b) => a - b),
      ...(this.role === "follower" ? { following: { fetchInFlight: this.fetchInFlight, fetchEpoch: this.fetchEpoch, needsTruncation: this.needsTruncation } } : {}),
      ...(this.role === "leader" ? { followers: this.followerProgress() } : {}),
    };
  }

  private followerProgress(): ReplicaDescription["followers"] {
    const now = Date.now();
    const parked = this.caughtUpByParkedFetch();
    const out: NonNullable<ReplicaDescription["followers"]> = {};
    for (const [r, f] of this.followers) out[r] = { logEndOffset: f.logEndOffset, lastFetchAgoMs: f.lastFetchAt === 0 ? -1 : now - f.lastFetchAt, parked: parked.has(r) };
    return out;
  }

  // Role changes ------------------------------------------------------------------------------

  /**
   * Applies a partition state read from the KV at `revision`. A state older than one already
   * applied is dropped: a watch event can arrive after this replica's own compare-and-set of a
   * newer ISR (or after the state it read at start), and applying it would put back an ISR the
   * KV no longer holds. A leader counting the high watermark over an ISR smaller than the KV's
   * could commit records a replica the controller may elect does not have.
   */
  async apply(state: PartitionState, revision: number, ctx: Ctx): Promise<void> {
    if (state.topicId !== this.args.topicId || state.partition !== this.args.partition) return;
    if (revision < this.stateRevision) return;
    if (state.controllerEpoch < this.maxControllerEpoch) return; // written by a deposed controller
    if (state.leaderEpoch < this.leaderEpoch) return; // stale
    this.maxControllerEpoch = state.controllerEpoch;
    this.stateRevision = revision;
    const sameEpoch = state.leaderEpoch === this.leaderEpoch;
    this.partitionState = state;
    if (sameEpoch) {
      if (this.role === "leader") this.updateIsr(new Set(state.isr), ctx);
      else if (this.role === "follower" && !state.isr.includes(this.args.broker) && this.fetchInFlight && !this.needsTruncation) {
        // Out of the ISR (the controller dropped us while our worker or broker was away): fetch
        // anew, so the leader sees where we are and takes us back once caught up, also while
        // the partition is idle (a fetch parked since before would not tell it).
        this.fetchInFlight = false;
        this.startFetching(ctx);
      }
      return;
    }
    this.leaderEpoch = state.leaderEpoch;
    if (state.leader === this.args.broker) await this.becomeLeader(state, ctx);
    else this.becomeFollower(state, ctx);
  }

  private async becomeLeader(state: PartitionState, ctx: Ctx): Promise<void> {
    this.stopFollowing(ctx);
    this.role = "leader";
    if (this.leaderEpoch > this.log.latestEpoch) await this.log.assignEpochStartOffset(this.leaderEpoch, this.log.logEndOffset);
    this.followers.clear();
    const now = Date.now();
    for (const r of state.replicas) {
      if (r !== this.args.broker) this.followers.set(r, { logEndOffset: -1, lastFetchAt: 0, leaderEndAtLastFetch: 0, lastCaughtUpAt: now });
    }
    this.highWatermark = Math.min(this.highWatermark, this.log.logEndOffset);
    this.updateIsr(new Set(state.isr), ctx);
    this.scheduleTick(ctx);
  }

  private becomeFollower(state: PartitionState, ctx: Ctx): void {
    const wasLeader = this.role === "leader";
    this.role = state.replicas.includes(this.args.broker) ? "follower" : "offline";
    this.isr = new Set(state.isr);
    this.followers.clear();
    const leader = state.leader;
    const notLeader = () =>
      new SkeinError(ErrorCode.NOT_LEADER_OR_FOLLOWER, `broker ${this.args.broker} is no longer the leader of ${this.args.topic}/${this.args.partition}`, {
        topic: this.args.topic,
        partition: this.args.partition,
        leader,
      });
    if (wasLeader) {
      for (const p of this.pendingAcks.splice(0)) p.reply.reject(notLeader());
      for (const f of this.parkedFetches.splice(0)) f.reply.reject(notLeader());
    }
    this.needsTruncation = true;
    if (this.role !== "follower") this.stopFollowing(ctx);
    this.startFetching(ctx);
  }

  /** Takes this partition out of the fetcher's sessions. */
  private stopFollowing(ctx: Ctx): void {
    if (this.fetchEpoch < 0) return;
    this.fetchInFlight = false;
    this.fetchEpoch = -1;
    ctx.tell(this.fetcher, "Unfollow", { topic: this.args.topic, partition: this.args.partition });
  }

  // Leader: produce ---------------------------------------------------------------------------

  async produce(m: z.infer<typeof ReplicaMessages.Produce>, ctx: Ctx): Promise<ProduceResult | undefined> {
    this.requireLeader();
    if (m.acks === -1 && this.isr.size < this.minInsync) {
      throw new SkeinError(
        ErrorCode.NOT_ENOUGH_REPLICAS,
        `${this.args.topic}/${this.args.partition}: ISR ${[...this.isr].join(",")} is smaller than min.insync.replicas=${this.minInsync}`,
        { topic: this.args.topic, partition: this.args.partition },
      );
    }
    const first = readBatchHeader(m.batches, 0);
    if (first.producerId >= 0) {
      if (first.sizeInBytes !== m.batches.length) {
        throw new SkeinError(ErrorCode.INVALID_REQUEST, "an idempotent produce carries exactly one batch per partition", { ...this.errorContext(), field: "batches" });
      }
      const check = this.producers.check(first, { topic: this.args.topic, partition: this.args.partition });
      if (check.kind === "duplicate") return this.acknowledge({ baseOffset: check.baseOffset, lastOffset: check.lastOffset, logAppendTime: Date.now() }, m, ctx);
    }
    const result = await this.log.append(m.batches, { leaderEpoch: this.leaderEpoch });
    if (first.producerId >= 0) this.producers.record(readBatchHeader(m.batches, 0));
    this.maybeAdvanceHighWatermark(ctx);
    this.wakeFetches(ctx);
    return this.acknowledge(result, m, ctx);
  }

  /**
   * Answers now (acks 0/1, or already below HW) or parks the reply until HW passes it. acks=0
   * arrives as a tell (clients and the Kafka gateway never ask with it), so the host has no
   * reply inbox and nothing goes back to the producer, as in Kafka.
   */
  private acknowledge(result: ProduceResult, m: z.infer<typeof ReplicaMessages.Produce>, ctx: Ctx): ProduceResult | undefined {
    if (m.acks !== -1 || this.highWatermark > result.lastOffset) return result;
    const pending = { lastOffset: result.lastOffset, result, reply: ctx.deferReply<ProduceResult>(), deadline: Date.now() + m.timeoutMs };
    // Appends arrive in offset order; only an acknowledged-again duplicate can be older.
    const last = this.pendingAcks[this.pendingAcks.length - 1];
    const at = !last || last.lastOffset <= pending.lastOffset ? -1 : this.pendingAcks.findIndex((p) => p.lastOffset > pending.lastOffset);
    if (at < 0) this.pendingAcks.push(pending);
    else this.pendingAcks.splice(at, 0, pending);
    this.scheduleTick(ctx, pending.deadline);
    return undefined;
  }

  /** Rebuilds idempotent-producer state from the active segment (bounded by segment.bytes). */
  async rebuildProducerState(): Promise<void> {
    this.producers.clear();
    const bases = this.log.segmentBaseOffsets();
    let from = Math.max(bases[bases.length - 1] ?? 0, this.log.logStartOffset);
    while (from < this.log.logEndOffset) {
      const r = await this.log.read(from, { maxBytes: 8 * 1024 * 1024 });
      if (r.data.length === 0) break;
      for (const { header } of iterateBatches(r.data, { verifyCrc: false })) {
        if (header.lastOffset < from) continue;
        this.producers.record(header);
        from = header.lastOffset + 1;
      }
    }
  }

  // Leader: fetch -----------------------------------------------------------------------------

  async fetch(m: FetchRequest, ctx: Ctx): Promise<FetchResult | undefined> {
    this.requireLeader();
    this.checkLeaderEpoch(m.leaderEpoch, "fetch");
    if (m.fromOffset < this.log.logStartOffset || m.fromOffset > this.log.logEndOffset) {
      // Checked before the follower's position is recorded: a fetch offset past this log's end
      // is a log that diverged from this one, not records this leader may count as replicated.
      throw new SkeinError(
        ErrorCode.OFFSET_OUT_OF_RANGE,
        `offset ${m.fromOffset} is outside [${this.log.logStartOffset}, ${this.log.logEndOffset}] of ${this.args.topic}/${this.args.partition}`,
        { ...this.errorContext(), logStartOffset: this.log.logStartOffset, logEndOffset: this.log.logEndOffset },
      );
    }
    if (m.replicaId !== undefined) await this.recordFollowerFetch(m.replicaId, m.fromOffset, ctx);
    const limit = this.readLimit(m);
    if (m.fromOffset < limit || m.maxWaitMs === 0) return this.read(m);
    if (m.replicaId !== undefined) {
      // A follower has one fetch at a time: a newer one answers its older parked one (empty).
      const older = this.parkedFetches.findIndex((f) => f.request.replicaId === m.replicaId);
      if (older >= 0) {
        const [f] = this.parkedFetches.splice(older, 1);
        this.read(f.request).then(f.reply.resolve, f.reply.reject);
      }
    }
    const deadline = Date.now() + m.maxWaitMs;
    this.parkedFetches.push({ request: m, reply: ctx.deferReply<FetchResult>(), deadline });
    this.scheduleTick(ctx, deadline);
    return undefined;
  }

  private readLimit(m: FetchRequest): number {
    return m.replicaId !== undefined || m.upToLogEnd ? this.log.logEndOffset : this.highWatermark;
  }

  private async read(m: FetchRequest): Promise<FetchResult> {
    const limit = this.readLimit(m);
    const r =
      m.fromOffset >= limit
        ? { data: new Uint8Array(0), logStartOffset: this.log.logStartOffset, logEndOffset: this.log.logEndOffset }
        : await this.log.read(m.fromOffset, { maxBytes: m.maxBytes, maxOffset: limit, headroomBytes: READ_HEADROOM_BYTES });
    // The reply's envelope goes in front of the batches rather than into a copy of them (a fetch
    // server that joins several partitions' data makes its own buffer).
    offerEnvelopeHeadroom(r.data);
    return { data: r.data, highWatermark: this.highWatermark, logStartOffset: r.logStartOffset, logEndOffset: r.logEndOffset, leaderEpoch: this.leaderEpoch };
  }

  /** Answers parked fetches that now have data; reads run after the current message. */
  private wakeFetches(ctx: Ctx): void {
    if (this.parkedFetches.length === 0) return;
    const ready = this.parkedFetches.filter((f) => f.request.fromOffset < this.readLimit(f.request));
    if (ready.length === 0) return;
    this.parkedFetches = this.parkedFetches.filter((f) => !ready.includes(f));
    const now = Date.now();
    let followerWoken = false;
    for (const f of ready) {
      // A follower parked here was caught up until this moment (see caughtUpByParkedFetch);
      // from now on its lag limit runs until it fetches again.
      const follower = f.request.replicaId === undefined ? undefined : this.followers.get(f.request.replicaId);
      if (follower) {
        follower.lastCaughtUpAt = Math.max(follower.lastCaughtUpAt, now);
        followerWoken = true;
      }
      this.read(f.request).then(f.reply.resolve, f.reply.reject);
    }
    if (followerWoken && this.role === "leader") this.scheduleTick(ctx, now + this.args.replicaLagTimeMaxMs + 1);
  }

  /**
   * Followers whose fetch is parked at the log end: they have everything, as of now, for as
   * long as the fetch stays parked (new data answers it at once), so the ISR lag limit does
   * not run for them and an idle follower need not ask again before that limit.
   */
  private caughtUpByParkedFetch(): Set<number> {
    const out = new Set<number>();
    const end = this.log.logEndOffset;
    for (const f of this.parkedFetches) if (f.request.replicaId !== undefined && f.request.fromOffset >= end) out.add(f.request.replicaId);
    return out;
  }

  private async recordFollowerFetch(replicaId: number, fetchOffset: number, ctx: Ctx): Promise<void> {
    const f = this.followers.get(replicaId);
    if (!f) {
      throw new SkeinError(ErrorCode.NOT_LEADER_OR_FOLLOWER, `broker ${replicaId} is not a replica of ${this.args.topic}/${this.args.partition}`, this.errorContext());
    }
    const now = Date.now();
    const leaderEnd = this.log.logEndOffset;
    if (fetchOffset >= leaderEnd) f.lastCaughtUpAt = now;
    else if (fetchOffset >= f.leaderEndAtLastFetch) f.lastCaughtUpAt = Math.max(f.lastCaughtUpAt, f.lastFetchAt);
    f.logEndOffset = fetchOffset;
    f.lastFetchAt = now;
    f.leaderEndAtLastFetch = leaderEnd;
    if (!this.isr.has(replicaId) && this.canJoinIsr(f)) await this.joinIsr([replicaId], ctx);
    this.maybeAdvanceHighWatermark(ctx);
  }

  /**
   * Takes caught-up followers into the ISR. A try can lose (another ISR change in flight, or a
   * compare-and-set beaten by the controller's write), and then the next Tick tries again: a
   * caught-up follower's next fetch may be long in coming, since on an idle partition it stays
   * parked here (up to the fetch server's local wait, minutes) and would not ask again.
   */
  private async joinIsr(joining: number[], ctx: Ctx): Promise<void> {
    await this.changeIsr(new Set([...this.isr, ...joining]), ctx);
    if (this.role !== "leader") return;
    for (const r of joining) if (!this.isr.has(r)) this.pendingJoins.add(r);
    if (this.pendingJoins.size > 0) this.scheduleTick(ctx, Date.now() + TICK_MS);
  }

  /** From the Tick: retries the joins that lost, for followers still caught up and still fetching (within the lag limit). */
  private async retryJoins(ctx: Ctx): Promise<void> {
    if (this.pendingJoins.size === 0) return;
    const now = Date.now();
    const parked = this.caughtUpByParkedFetch();
    const joining = [...this.pendingJoins].filter((r) => {
      const f = this.followers.get(r);
      return f !== undefined && !this.isr.has(r) && this.canJoinIsr(f) && (parked.has(r) || now - f.lastFetchAt <= this.args.replicaLagTimeMaxMs);
    });
    this.pendingJoins.clear();
    if (joining.length > 0) await this.joinIsr(joining, ctx);
  }

  private canJoinIsr(f: FollowerProgress): boolean {
    const epochStart = this.log.endOffsetForEpoch(this.leaderEpoch - 1).endOffset;
    return f.logEndOffset >= this.highWatermark && f.logEndOffset >= Math.max(0, epochStart);
  }

  private maybeAdvanceHighWatermark(ctx: Ctx): void {
    let hw = this.log.logEndOffset;
    for (const r of this.isr) {
      if (r === this.args.broker) continue;
      const f = this.followers.get(r);
      hw = Math.min(hw, f ? Math.max(f.logEndOffset, 0) : 0);
    }
    if (hw <= this.highWatermark) return;
    this.highWatermark = hw;
    while (this.pendingAcks.length && this.pendingAcks[0].lastOffset < hw) {
      const p = this.pendingAcks.shift()!;
      p.reply.resolve(p.result);
    }
    this.wakeFetches(ctx);
  }

  // Leader: ISR -------------------------------------------------------------------------------

  private updateIsr(isr: Set<number>, ctx: Ctx): void {
    isr.add(this.args.broker);
    this.isr = isr;
    this.maybeAdvanceHighWatermark(ctx);
    if (this.role === "leader") this.scheduleNextTick(ctx); // a new ISR member has a lag limit to watch
  }

  /** Compare-and-set the ISR in the KV; on a moved epoch, step down to what the KV says. */
  private async changeIsr(isr: Set<number>, ctx: Ctx): Promise<void> {
    if (this.isrChangeInFlight) return;
    this.isrChangeInFlight = true;
    try {
      const current = await this.meta.getPartition(this.args.topic, this.args.partition);
      if (!current || current.value.topicId !== this.args.topicId) return;
      if (current.value.leaderEpoch !== this.leaderEpoch || current.value.leader !== this.args.broker) {
        await this.apply(current.value, current.revision, ctx);
        return;
      }
      const next = { ...current.value, isr: [...isr].sort((a, b) => a - b) };
      const revision = await this.meta.casPartition(next, current.revision);
      if (revision !== null) {
        this.stateRevision = Math.max(this.stateRevision, revision);
        this.partitionState = next;
        this.updateIsr(isr, ctx);
      }
    } finally {
      this.isrChangeInFlight = false;
    }
  }

  // Follower ----------------------------------------------------------------------------------

  startFetching(ctx: Ctx): void {
    // A fetch still waiting on the previous leader does not hold up the new one: that leader
    // may be dead, and its fetch would only end with its timeout.
    if (this.role !== "follower" || (this.fetchInFlight && this.fetchEpoch === this.leaderEpoch)) return;
    const leader = this.partitionState?.leader ?? -1;
    if (leader < 0) return;
    this.fetchInFlight = true;
    const epoch = this.leaderEpoch;
    this.fetchEpoch = epoch;
    const fromOffset = this.log.logEndOffset;
    if (this.needsTruncation) {
      const latest = this.log.latestEpoch;
      if (latest < 0 || fromOffset === 0) {
        this.needsTruncation = false;
      } else {
        const deliver = (body: { endOffset?: number; endEpoch?: number; error?: { code: string; message: string } }) =>
          ctx.tell(ctx.self, "EpochAnswered", { ...body, epoch });
        ctx
          .ask<{ epoch: number; endOffset: number }>(replicaAddress(this.args.topic, this.args.partition, leader), "OffsetsForLeaderEpoch", { epoch: latest, replicaId: this.args.broker, leaderEpoch: epoch }, { timeoutMs: 5_000 })
          .then(
            (r) => deliver({ endOffset: r.endOffset, endEpoch: r.epoch }),
            (e) => deliver({ error: { code: String((e as SkeinError)?.code ?? "UNKNOWN"), message: String((e as Error)?.message ?? e) } }),
          );
        return;
      }
    }
    ctx.tell(this.fetcher, "Follow", { topic: this.args.topic, partition: this.args.partition, leader, leaderEpoch: epoch, fetchOffset: fromOffset, replica: ctx.self });
  }

  /** The leader's answer to this follower's epoch query: truncate where the logs diverge, then follow. */
  async onEpochAnswered(m: z.infer<typeof ReplicaMessages.EpochAnswered>, ctx: Ctx): Promise<void> {
    // Only the outstanding query's answer frees the slot; one of a superseded epoch is dropped.
    if (m.epoch === this.fetchEpoch) this.fetchInFlight = false;
    if (this.role !== "follower" || m.epoch !== this.leaderEpoch) {
      this.startFetching(ctx);
      return;
    }
    if (m.error) {
      // Leader not ready yet, fenced, or gone: the broker agent will tell us the new state.
      ctx.schedule(RETRY_BACKOFF_MS, "FollowAgain", {});
      return;
    }
    let endOffset = m.endOffset ?? -1;
    // The leader knows our epoch only up to an older one: both logs agree up to where that
    // epoch ends on both sides (KIP-279).
    if (endOffset >= 0 && m.endEpoch !== undefined && m.endEpoch >= 0 && m.endEpoch < this.log.latestEpoch) {
      const ours = this.log.endOffsetForEpoch(m.endEpoch).endOffset;
      if (ours >= 0) endOffset = Math.min(endOffset, ours);
    }
    if (endOffset >= 0 && endOffset < this.log.logEndOffset) {
      console.warn(`skein: ${this.args.topic}/${this.args.partition}@${this.args.broker} truncating ${this.log.logEndOffset - endOffset} records from ${endOffset} (diverged from leader epoch ${this.leaderEpoch})`);
      await this.log.truncateTo(endOffset);
      this.highWatermark = Math.min(this.highWatermark, endOffset);
      await this.rebuildProducerState();
    }
    this.needsTruncation = false;
    this.startFetching(ctx);
  }

  /**
   * What the leader sent this follower, from the fetcher: batches to append at `fromOffset`, or
   * an error. Answers the next fetch offset; follow=false takes the partition out of the
   * fetcher's session (this replica follows again when it is ready to).
   */
  async onFollowerData(m: z.infer<typeof ReplicaMessages.FollowerData>, ctx: Ctx): Promise<{ logEndOffset: number; follow: boolean }> {
    if (this.role !== "follower" || m.leaderEpoch !== this.leaderEpoch || !this.fetchInFlight || this.fetchEpoch !== m.leaderEpoch || this.needsTruncation) {
      return { logEndOffset: this.log.logEndOffset, follow: false };
    }
    if (m.error?.code === ErrorCode.OFFSET_OUT_OF_RANGE && (m.error.logStartOffset ?? -1) > this.log.logEndOffset) {
      // Retention on the leader removed what we still need: restart the log at its start.
      console.warn(`skein: ${this.args.topic}/${this.args.partition}@${this.args.broker} is behind the leader's log start ${m.error.logStartOffset}; restarting the log there`);
      await this.log.truncateFullyAndStartAt(m.error.logStartOffset!);
      this.producers.clear();
      this.highWatermark = Math.max(this.highWatermark, m.error.logStartOffset!);
      return { logEndOffset: this.log.logEndOffset, follow: true };
    }
    if (m.error) {
      // Leader not ready yet, fenced, or gone: follow again shortly (the broker agent tells us a new state).
      this.fetchInFlight = false;
      ctx.schedule(RETRY_BACKOFF_MS, "FollowAgain", {});
      return { logEndOffset: this.log.logEndOffset, follow: false };
    }
    if (m.fromOffset === this.log.logEndOffset && m.data && m.data.length > 0) {
      await this.log.appendAsFollower(m.data);
      for (const { header } of iterateBatches(m.data, { verifyCrc: false })) this.producers.record(header);
    }
    if (m.highWatermark !== undefined) this.highWatermark = Math.max(this.highWatermark, Math.min(m.highWatermark, this.log.logEndOffset));
    return { logEndOffset: this.log.logEndOffset, follow: true };
  }

  /**
   * Kafka semantics, including an epoch older than our earliest: it ended where our log's first
   * epoch starts. Answered only by the leader of the asker's epoch: a leader that has not yet
   * seen the new epoch (or was deposed) would describe a log the follower must not truncate to.
   */
  offsetsForLeaderEpoch(epoch: number, currentLeaderEpoch = -1): { epoch: number; endOffset: number } {
    this.requireLeader();
    this.checkLeaderEpoch(currentLeaderEpoch, "epoch query");
    const r = this.log.endOffsetForEpoch(epoch);
    if (r.endOffset >= 0 || epoch < 0) return r;
    const earliest = this.log.epochEntries()[0];
    if (earliest && epoch < earliest.epoch) return { epoch, endOffset: earliest.startOffset };
    return r;
  }

  /**
   * Earliest (-2: any replica's log start), latest (-1: the HW) or the first offset at or after
   * a timestamp (capped at the HW). Latest and by-timestamp come from the leader only, and only
   * once its HW has reached the start of its epoch (KIP-207): a new leader's HW trails its
   * predecessor's until every ISR follower has fetched from it, and answering then would move
   * "latest" backwards.
   */
  async listOffset(timestamp: number): Promise<{ offset: number }> {
    if (timestamp === -2) return { offset: this.log.logStartOffset };
    this.requireLeader();
    const epochStart = this.log.endOffsetForEpoch(this.leaderEpoch - 1).endOffset;
    if (this.highWatermark < epochStart) {
      throw new SkeinError(
        ErrorCode.LEADER_NOT_AVAILABLE,
        `${this.args.topic}/${this.args.partition}: the leader of epoch ${this.leaderEpoch} has not established its high watermark yet (${this.highWatermark} < ${epochStart})`,
        this.errorContext(),
      );
    }
    if (timestamp === -1) return { offset: this.highWatermark };
    const offset = await this.log.offsetForTime(timestamp);
    return { offset: offset === null ? this.highWatermark : Math.min(offset, this.highWatermark) };
  }

  // Timers ------------------------------------------------------------------------------------

  /**
   * Schedules the Tick for `atMs` unless one is due earlier. Ticks follow deadlines (parked
   * fetches and acks, an ISR member's lag limit) rather than a fixed period: thousands of idle
   * leaders each ticking ten times a second were a large part of an idle broker's CPU.
   */
  scheduleTick(ctx: Ctx, atMs = Date.now() + TICK_MS): void {
    if (this.tickAt <= atMs) return;
    this.cancelTick?.();
    this.tickAt = atMs;
    this.cancelTick = ctx.schedule(Math.max(1, atMs - Date.now()), "Tick", {});
  }

  /** The next moment something waits for: a parked fetch or ack deadline, or when an ISR follower would be lagging. */
  private nextDeadline(): number {
    let next = Infinity;
    for (const f of this.parkedFetches) next = Math.min(next, f.deadline);
    for (const p of this.pendingAcks) next = Math.min(next, p.deadline);
    if (this.role === "leader") {
      const parked = this.caughtUpByParkedFetch();
      for (const r of this.isr) {
        if (r !== this.args.broker && !parked.has(r)) next = Math.min(next, (this.followers.get(r)?.lastCaughtUpAt ?? 0) + this.args.replicaLagTimeMaxMs + 1);
      }
    }
    return next;
  }

  /** After a tick or an ISR change: the next tick at the next deadline, but not sooner than TICK_MS. */
  private scheduleNextTick(ctx: Ctx): void {
    const next = this.nextDeadline();
    if (next < Infinity) this.scheduleTick(ctx, Math.max(next, Date.now() + TICK_MS));
  }

  async tick(ctx: Ctx): Promise<void> {
    this.tickAt = Infinity;
    this.cancelTick = null;
    const now = Date.now();
    if (this.role === "leader") {
      // Before expired fetches are answered: a follower parked at the end until now was caught up until now.
      for (const r of this.caughtUpByParkedFetch()) {
        const f = this.followers.get(r);
        if (f) f.lastCaughtUpAt = now;
      }
    }
    const expired = this.parkedFetches.filter((f) => f.deadline <= now);
    if (expired.length) {
      this.parkedFetches = this.parkedFetches.filter((f) => f.deadline > now);
      for (const f of expired) this.read(f.request).then(f.reply.resolve, f.reply.reject);
    }
    const timedOut = this.pendingAcks.filter((p) => p.deadline <= now);
    if (timedOut.length) {
      this.pendingAcks = this.pendingAcks.filter((p) => p.deadline > now);
      for (const p of timedOut) {
        p.reply.reject(
          new SkeinError(ErrorCode.TIMEOUT, `acks=all produce at offset ${p.lastOffset} not replicated to the ISR in time`, { ...this.errorContext(), retriable: true }),
        );
      }
    }
    if (this.role === "leader") {
      const lagging = [...this.isr].filter((r) => r !== this.args.broker && now - (this.followers.get(r)?.lastCaughtUpAt ?? 0) > this.args.replicaLagTimeMaxMs);
      if (lagging.length) await this.changeIsr(new Set([...this.isr].filter((r) => !lagging.includes(r))), ctx);
      if (this.role === "leader") await this.retryJoins(ctx);
    }
    this.scheduleNextTick(ctx);
  }

  /** An asker's leader epoch (-1: none given) must be this leader's: older is fenced, newer not known yet. */
  private checkLeaderEpoch(epoch: number, what: string): void {
    if (epoch >= 0 && epoch < this.leaderEpoch) {
      throw new SkeinError(ErrorCode.FENCED_LEADER_EPOCH, `${what} with epoch ${epoch} < leader epoch ${this.leaderEpoch}`, this.errorContext());
    }
    if (epoch > this.leaderEpoch) {
      throw new SkeinError(ErrorCode.UNKNOWN_LEADER_EPOCH, `${what} with epoch ${epoch} > leader epoch ${this.leaderEpoch}`, this.errorContext());
    }
  }

  private requireLeader(): void {
    if (this.role === "leader") return;
    throw new SkeinError(
      ErrorCode.NOT_LEADER_OR_FOLLOWER,
      `broker ${this.args.broker} is not the leader of ${this.args.topic}/${this.args.partition} (leader: ${this.partitionState?.leader ?? "unknown"})`,
      { ...this.errorContext(), leader: this.partitionState?.leader ?? -1 },
    );
  }

  private errorContext() {
    return { topic: this.args.topic, partition: this.args.partition, broker: String(this.args.broker) };
  }

  async close(): Promise<void> {
    const gone = new SkeinError(ErrorCode.NOT_LEADER_OR_FOLLOWER, `replica ${this.args.topic}/${this.args.partition}@${this.args.broker} stopped`, this.errorContext());
    for (const p of this.pendingAcks.splice(0)) p.reply.reject(gone);
    for (const f of this.parkedFetches.splice(0)) f.reply.reject(gone);
    await this.log.close();
  }
}

/**
 * A replica whose log cannot be opened (a damaged segment that recovery must not cut) is
 * rebuilt from its leader when that is safe: another broker leads the partition, and this
 * one is first taken out of the ISR (compare-and-set on the partition state), so an empty
 * replica is never elected before it has caught up. The damaged directory is kept aside as
 * `<dir>.corrupt-<time>` for inspection, and the replica starts empty and follows. Otherwise
 * (it leads, nobody does, or the state cannot be changed) the storage error stands: the
 * replica stays offline and the broker keeps serving its other partitions.
 */
async function rebuildFromLeader(dir: string, error: SkeinError, meta: MetadataStore, a: ReplicaArgs): Promise<PartitionLog> {
  const where = `${a.topic}/${a.partition}@${a.broker}`;
  const refuse = (why: string) =>
    new SkeinError(ErrorCode.KAFKA_STORAGE_ERROR, `${error.message}; not rebuilt from the leader: ${why}`, { ...error.context, topic: a.topic, partition: a.partition }, { cause: error });
  for (let attempt = 0; ; attempt++) {
    const current = await meta.getPartition(a.topic, a.partition);
    if (!current || current.value.topicId !== a.topicId) throw refuse("the partition is gone");
    const state = current.value;
    if (state.leader < 0 || state.leader === a.broker) throw refuse(state.leader < 0 ? "the partition has no leader" : "this replica is its leader");
    if (!state.isr.includes(a.broker)) break;
    const isr = state.isr.filter((b) => b !== a.broker);
    if ((await meta.casPartition({ ...state, isr }, current.revision)) !== null) break;
    if (attempt >= 10) throw refuse("could not take this replica out of the ISR");
  }
  const aside = `${dir}.corrupt-${Date.now()}`;
  await rename(dir, aside);
  console.warn(`skein: ${where}: ${error.message}; moved the damaged log to ${aside} and rebuilding it from the leader`);
  return PartitionLog.open(dir, logConfigFor(a.configs), { topic: a.topic, partition: a.partition });
}

export function partitionDir(dataDir: string, topic: string, partition: number): string {
  return join(dataDir, `${topic}-${partition}`);
}

export const ReplicaActor = defineActor({
  kind: "replica",
  args: ReplicaArgs,
  messages: ReplicaMessages,
  supervision: { strategy: "restart", maxRestarts: 5, withinMs: 30_000 },
  mailboxCapacity: 50_000,
  async init(ctx) {
    const meta = await metadataFor(ctx.nats, ctx.cluster);
    const a = ctx.args;
    const dir = partitionDir(a.dataDir, a.topic, a.partition);
    let log: PartitionLog;
    try {
      log = await PartitionLog.open(dir, logConfigFor(a.configs), { topic: a.topic, partition: a.partition });
    } catch (e) {
      if (!isSkeinError(e) || e.code !== ErrorCode.KAFKA_STORAGE_ERROR) throw e;
      log = await rebuildFromLeader(dir, e, meta, a);
    }
    return new ReplicaState(log, meta, a);
  },
  // Runs subscribed (runtime/host.ts): a Configure or Become sent after the reads below waits
  // in the mailbox, so none is missed between a read and the subscription.
  async started(state, ctx) {
    // The topic's configs as they are now (altered since this replica was first spawned, maybe);
    // if the KV does not answer, those it was spawned with (a later alteration still arrives).
    const topic = await state.meta.getTopicVersioned(ctx.args.topic).catch(() => null);
    if (topic && topic.value.id === ctx.args.topicId) state.configure({ topicId: topic.value.id, configs: topic.value.configs, revision: topic.revision });
    state.log.startBackgroundTasks();
    await state.rebuildProducerState();
    const current = await state.meta.getPartition(ctx.args.topic, ctx.args.partition);
    if (current) await state.apply(current.value, current.revision, ctx);
  },
  async stopped(state) {
    await state.close();
  },
  handlers: {
    Produce: (s, m, ctx) => s.produce(m, ctx),
    Fetch: (s, m, ctx) => s.fetch(m, ctx),
    OffsetsForLeaderEpoch: (s, m) => s.offsetsForLeaderEpoch(m.epoch, m.leaderEpoch),
    Become: (s, { revision, ...state }, ctx) => s.apply(state, revision, ctx),
    Configure: (s, m) => s.configure(m),
    Describe: (s) => s.describe(),
    ListOffset: (s, m) => s.listOffset(m.timestamp),
    EpochAnswered: (s, m, ctx) => s.onEpochAnswered(m, ctx),
    FollowAgain: (s, _m, ctx) => s.startFetching(ctx),
    FollowerData: (s, m, ctx) => s.onFollowerData(m, ctx),
    Tick: (s, _m, ctx) => s.tick(ctx),
  },
});
