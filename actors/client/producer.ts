// The producer actor (runs in a worker thread of the application). It partitions records
// (explicit partition, Kafka's murmur2 for keys, a sticky partition for null keys), builds
// one record batch per partition (sealed at batchBytes, or once lingerMs passed and the
// partition's window has room), and keeps up to maxInFlightRequests produce requests in
// flight per partition, all to one leader, in sequence order (spaced over a round trip, see
// lingerOf). The requests of one turn to partitions led by the same worker of the same broker
// leave as one ProduceMany (see ProduceOutbox). With idempotence each batch
// carries the producer id and a per-partition sequence: a retried batch is recognised by the
// leader and answered with its original offsets, and a batch sent after one the leader
// refused is refused too (OUT_OF_ORDER_SEQUENCE) instead of being written out of order.
//
// Failures stop the partition: once any request fails, nothing new is sent until every
// request of the partition is answered (or given up on); then the unacknowledged batches are
// resent from the oldest, in order, with their sequences (see endRound). The first request
// to a leader, and the first after a failure, goes alone: a leader that does not know this
// producer yet (its first batch, or a leader that just took over without its state) accepts
// any sequence, so a second batch racing a refused first one could be written ahead of it.

import { defineActor, type ActorContext, type ReplyHandle } from "../../runtime/actor.js";
import { ErrorCode, SkeinError, isSkeinError } from "../../protocol/errors.js";
import { controllerAddress, produceServerAddress, replicaAddress, type PartitionState, type ProduceManyResult, type ProduceResult } from "../../protocol/cluster.js";
import { offerEnvelopeHeadroom } from "../../protocol/envelope.js";
import { placementOf } from "../../protocol/placement.js";
import { ProducerArgs, ProducerMessages } from "../../protocol/client.js";
import { RecordBatchBuilder, readBatchHeader, setBaseSequence } from "../../protocol/record-batch.js";
import { partitionForKey } from "../../protocol/murmur2.js";
import { FrameReader, releaseFrames } from "./frames.js";
import { BrokerWorkerCounts, metadataFor } from "../cluster/shared.js";
import type { MetadataStore } from "../cluster/metadata.js";

type Ctx = ActorContext<ProducerArgs>;

export interface SendResult {
  topic: string;
  partition: number;
  /** Offset of the first record of this send() in that partition. */
  baseOffset: number;
}

interface PendingSend {
  topic: string;
  reply: ReplyHandle<SendResult[]>;
  remaining: number;
  results: Map<number, number>;
  failed: boolean;
}

interface Member {
  send: PendingSend;
  /** Index of the send's first record in the batch. */
  index: number;
}

interface OpenBatch {
  /** Records are encoded into the batch as they arrive: no object per record. */
  builder: RecordBatchBuilder;
  members: Member[];
  startedAt: number;
}

/**
 * A sealed batch from its first send until it is completed or failed: "queued" waits to be
 * (re)sent, "inflight" waits for its answer, "acked" waits for an older batch of the partition
 * (sends resolve in order), "error" waits for the partition's other requests (endRound).
 */
type BatchState = "queued" | "inflight" | "acked" | "error" | "failed";

interface SealedBatch {
  id: number;
  bytes: Uint8Array;
  /**
   * The builder `bytes` lives in (sealed in place, see seal), back to the spares once the batch
   * is completed or failed; null for a batch copied out of its builder.
   */
  builder: RecordBatchBuilder | null;
  records: number;
  members: Member[];
  sealedAt: number;
  /** When its latest request went out (for the partition's round-trip estimate). */
  sentAt: number;
  attempts: number;
  state: BatchState;
  baseOffset: number;
  error: { code: string; message: string; retriable: boolean } | null;
  /** The leader its idempotent request in flight went to (see checkLeaders). */
  sentTo: PartitionState | null;
  /** Ends that request as NOT_LEADER_OR_FOLLOWER; null once it is answered or given up. */
  giveUp: ((message: string) => void) | null;
  /** When that request's leader is checked next, ms since the epoch. */
  checkAt: number;
}

interface PartitionQueue {
  key: string;
  topic: string;
  partition: number;
  open: OpenBatch | null;
  sealed: SealedBatch[];
  /** Sent batches not completed or failed yet, oldest first (at most `window` of them). */
  unacked: SealedBatch[];
  /** Requests of `unacked` waiting for their answer. */
  inFlight: number;
  /** A request failed: nothing is sent until endRound ran and the Retry backoff is over. */
  recovering: boolean;
  /** The leader's partition state is being read; sends wait for it (they must go in order). */
  refreshing: boolean;
  /** The current leader acknowledged a batch since the last failure: the window may open. */
  confirmed: boolean;
  /** Round trip of its produce requests, moving average, ms (0 until the first answer). */
  roundTripMs: number;
  nextSequence: number;
  leader: PartitionState | null;
  /** When `leader` was read from the KV (acks=0 re-reads it after ACKS0_METADATA_MAX_AGE_MS). */
  leaderReadAt: number;
  /** The send() whose records are being added to `open` right now (membership bookkeeping). */
  touchedBy: PendingSend | null;
  /** The partition's leader check timer while idempotent requests wait (see checkLeaders). */
  leaderCheck: ReturnType<typeof setTimeout> | null;
  /** The leader worker ("broker/worker") its latest request went to; null while that is not known. */
  destination: string | null;
  /** Size of its latest sealed batch, bytes (0 before the first): what its next open batch is sized for. */
  lastBatchBytes: number;
}

/** How often a produce request that is still waiting checks whether its leader moved, ms. */
const LEADER_CHECK_MS = 250;
/**
 * acks=0 never hears NOT_LEADER_OR_FOLLOWER (the leader does not answer), so it re-reads the
 * partition's leader at least this often instead of sending to a moved leader forever, ms
 * (Kafka's producer refreshes metadata on a timer for the same reason).
 */
const ACKS0_METADATA_MAX_AGE_MS = 1_000;
/** Room past batchBytes in a batch's buffer: the record that crosses batchBytes still fits. */
const BATCH_SLACK_BYTES = 64 * 1024;
/**
 * Emptied builders kept for reuse (each holds a full batch, batchBytes + BATCH_SLACK_BYTES or more): enough for the
 * sticky partition's next batch and a few keyed partitions' at a time.
 */
const MAX_SPARE_BUILDERS = 4;
/**
 * A builder made when no spare is left, for a partition whose latest batch was small, starts
 * this small and doubles as records arrive. With keyed records over thousands of partitions,
 * hundreds of batches are open at once and nearly all stay small: a buffer sized for a full
 * batch for each was most of the producer's allocation and garbage collection at 10,000
 * partitions.
 */
const NEW_BUILDER_BYTES = 16 * 1024;

export class ProducerState {
  readonly queues = new Map<string, PartitionQueue>();
  /** The same queues by topic and partition number: the per-record lookup. */
  private readonly byTopic = new Map<string, Array<PartitionQueue | undefined>>();
  readonly partitionCounts = new Map<string, number>();
  /** When each topic's partition count was read (refreshed in the background after PARTITION_COUNT_MAX_AGE_MS). */
  private readonly countReadAt = new Map<string, number>();
  private readonly countRefreshing = new Set<string>();
  readonly sticky = new Map<string, number>();
  producerId = -1;
  producerEpoch = 0;
  nextBatchId = 1;
  lingerScheduled = false;
  private readonly parsed = new ParsedFrames();
  /** Builders of sealed batches, emptied, for the next open batches (at most MAX_SPARE_BUILDERS). */
  private readonly spareBuilders: RecordBatchBuilder[] = [];
  private readonly batchCapacityBytes: number;
  /** Requests in flight per partition once its leader confirmed one (see the top of the file). */
  readonly window: number;
  flushWaiters: Array<ReplyHandle<unknown>> = [];
  /** Stopped (close ran): the leader checks end. */
  private closed = false;
  /** Requests of this turn, sent at its end: one ProduceMany per leader worker (see ProduceOutbox). */
  private readonly outbox: ProduceOutbox;
  /**
   * Partitions whose open batch waits for a request in flight to their leader worker (see
   * lingerOf), by destination: drained together when it is answered, so they go in one request.
   */
  private readonly waitingOn = new Map<string, Set<PartitionQueue>>();

  constructor(
    readonly meta: MetadataStore,
    readonly args: ProducerArgs,
  ) {
    this.batchCapacityBytes = args.batchBytes + BATCH_SLACK_BYTES;
    // One at a time unless the application asks for more: see ProducerConfig.maxInFlightRequests.
    this.window = args.maxInFlightRequests ?? 1;
    this.outbox = new ProduceOutbox(meta, args, this.batchCapacityBytes);
  }

  async initProducerId(ctx: Ctx): Promise<void> {
    // acks=0 gets no answers, so sequences cannot be kept: a lost batch would leave a gap the
    // leader refuses every later batch for, silently. Kafka likewise requires acks=all for
    // idempotence; here acks=0 simply sends without a producer id.
    if (!this.args.idempotent || this.args.acks === 0) return;
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        const lease = await this.meta.getLease();
        if (!lease) throw new SkeinError(ErrorCode.NOT_CONTROLLER, "no active controller");
        const r = await ctx.ask<{ producerId: number; producerEpoch: number }>(controllerAddress(lease.value.broker), "InitProducerId", {}, { timeoutMs: 5_000 });
        this.producerId = r.producerId;
        this.producerEpoch = r.producerEpoch;
        return;
      } catch (e) {
        if (Date.now() > deadline || (isSkeinError(e) && !e.retriable)) throw e;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  // Accepting records ---------------------------------------------------------------------------

  /**
   * Synchronous once the topic's partition count is known (every send but a topic's first): an
   * async handler costs the mailbox a few promise turns per send(). The frames are released
   * (releaseFrames) once parsed and copied, or refused: nothing here keeps them.
   */
  send(topic: string, frames: Uint8Array, ctx: Ctx): void | Promise<void> {
    const reply = ctx.deferReply<SendResult[]>();
    if (frames.length === 0) {
      releaseFrames(frames);
      return reply.resolve([]);
    }
    const known = this.partitionCounts.get(topic);
    if (known !== undefined) {
      this.refreshCountIfOld(topic);
      let outcome: Accepted = "done";
      try {
        outcome = this.accept(topic, frames, known, reply, ctx, false);
      } finally {
        if (outcome === "done") releaseFrames(frames);
      }
      if (outcome === "done") return;
    }
    // A topic's first send, or one naming a partition beyond the count this producer knows:
    // partitions may have been added since (createPartitions), so the count is read now.
    return this.partitionCount(topic, known !== undefined)
      .then(
        (partitions) => void this.accept(topic, frames, partitions, reply, ctx, true),
        (e) => reply.reject(e),
      )
      .finally(() => releaseFrames(frames));
  }

  /**
   * Parses and queues a send's records, or refuses it whole. With `countIsFresh` false, a send
   * naming a partition beyond `partitions` is neither queued nor refused: "stale" asks the
   * caller to read the count and try once more.
   */
  private accept(topic: string, frames: Uint8Array, partitions: number, reply: ReplyHandle<SendResult[]>, ctx: Ctx, countIsFresh: boolean): Accepted {
    const send: PendingSend = { topic, reply, remaining: 0, results: new Map(), failed: false };
    let parsed: ParsedFrames;
    try {
      // All or nothing: a bad frame or partition refuses the whole send before any record is queued.
      parsed = this.parsed.parse(frames, topic, partitions);
    } catch (e) {
      this.parsed.release();
      if (!countIsFresh && e instanceof PartitionBeyondCount) return "stale";
      reply.reject(e);
      return "done";
    }
    const now = Date.now();
    const queues = this.queuesOf(topic);
    const touched: PartitionQueue[] = [];
    const { partition, timestamp, tailOffset, tailLength, count } = parsed;
    let sticky = -1; // valid until a seal (the sticky partition moves on when its batch is sealed)
    for (let i = 0; i < count; i++) {
      let p = partition[i];
      if (p < 0) p = sticky >= 0 ? sticky : (sticky = this.stickyPartition(topic, partitions));
      const q = queues[p] ?? this.queue(topic, p);
      if (!q.open) q.open = { builder: this.builderFor(q), members: [], startedAt: now };
      const open = q.open;
      if (q.touchedBy !== send) {
        q.touchedBy = send;
        touched.push(q);
        open.members.push({ send, index: open.builder.count });
        send.remaining++;
      }
      const ts = timestamp[i];
      open.builder.appendTail(ts < 0 ? now : ts, frames, tailOffset[i], tailLength[i]);
      if (open.builder.sizeInBytes >= this.args.batchBytes) {
        this.seal(q);
        sticky = -1;
        q.touchedBy = null; // later records of this send start a new membership in the next batch
      }
    }
    this.parsed.release();
    for (const q of touched) {
      q.touchedBy = null;
      this.drain(q, ctx);
    }
    this.scheduleLinger(ctx);
    return "done";
  }

  private stickyPartition(topic: string, partitions: number): number {
    let p = this.sticky.get(topic);
    if (p === undefined || p >= partitions) {
      p = Math.floor(Math.random() * partitions);
      this.sticky.set(topic, p);
    }
    return p;
  }

  private async partitionCount(topic: string, reread = false): Promise<number> {
    const known = this.partitionCounts.get(topic);
    if (known !== undefined && !reread) return known;
    const t = await this.meta.getTopic(topic);
    if (!t) throw new SkeinError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `topic ${topic} does not exist`, { topic });
    this.partitionCounts.set(topic, t.partitions);
    this.countReadAt.set(topic, Date.now());
    return t.partitions;
  }

  /**
   * Partitions added to a topic (createPartitions) are used from the next read of its count:
   * every PARTITION_COUNT_MAX_AGE_MS, in the background (Kafka's metadata.max.age.ms).
   */
  private refreshCountIfOld(topic: string): void {
    if (Date.now() - (this.countReadAt.get(topic) ?? 0) < PARTITION_COUNT_MAX_AGE_MS || this.countRefreshing.has(topic)) return;
    this.countRefreshing.add(topic);
    this.meta
      .getTopic(topic)
      .then(
        (t) => {
          if (t) this.partitionCounts.set(topic, t.partitions);
          this.countReadAt.set(topic, Date.now());
        },
        () => undefined,
      )
      .finally(() => this.countRefreshing.delete(topic));
  }

  private queuesOf(topic: string): Array<PartitionQueue | undefined> {
    let list = this.byTopic.get(topic);
    if (!list) {
      list = [];
      this.byTopic.set(topic, list);
    }
    return list;
  }

  private queue(topic: string, partition: number): PartitionQueue {
    const key = `${topic}/${partition}`;
    let q = this.queues.get(key);
    if (!q) {
      q = { key, topic, partition, open: null, sealed: [], unacked: [], inFlight: 0, recovering: false, refreshing: false, confirmed: false, roundTripMs: 0, nextSequence: 0, leader: null, leaderReadAt: 0, touchedBy: null, leaderCheck: null, destination: null, lastBatchBytes: 0 };
      this.queues.set(key, q);
      this.queuesOf(topic)[partition] = q;
    }
    return q;
  }

  private seal(q: PartitionQueue): void {
    const open = q.open;
    if (!open || open.builder.count === 0) return;
    q.open = null;
    const builder = open.builder;
    const records = builder.count;
    q.lastBatchBytes = builder.sizeInBytes;
    const options = {
      producerId: this.producerId,
      producerEpoch: this.producerId >= 0 ? this.producerEpoch : -1,
      baseSequence: this.producerId >= 0 ? q.nextSequence : -1,
    };
    // A batch that fills most of its buffer keeps it until it is done (a copy would allocate
    // about as much, and every batch byte copied and freed is external memory the worker's
    // major garbage collections are paced by); a smaller one (lingered) is copied out, so that
    // it pins no more than its size while it waits for its answer.
    const inPlace = builder.sizeInBytes * 2 >= builder.capacityBytes;
    const bytes = inPlace ? builder.finishInPlace(options) : builder.finishCopy(options);
    if (!inPlace) this.spare(builder);
    if (this.producerId >= 0) q.nextSequence += records;
    q.sealed.push({ id: this.nextBatchId++, bytes, builder: inPlace ? builder : null, records, members: open.members, sealedAt: Date.now(), sentAt: 0, attempts: 0, state: "queued", baseOffset: -1, error: null, sentTo: null, giveUp: null, checkAt: 0 });
    if (this.sticky.get(q.topic) === q.partition) this.sticky.delete(q.topic);
  }

  /**
   * A builder for the partition's next open batch: a spare, or a new one sized for a full batch
   * if the partition's latest batch was about that big, else a small one (NEW_BUILDER_BYTES).
   */
  private builderFor(q: PartitionQueue): RecordBatchBuilder {
    const spare = this.spareBuilders.pop();
    if (spare) return spare;
    return new RecordBatchBuilder(q.lastBatchBytes * 2 >= this.args.batchBytes ? this.batchCapacityBytes : Math.min(NEW_BUILDER_BYTES, this.batchCapacityBytes));
  }

  /**
   * Keeps an emptied builder for the next open batch. Spares hold a full batch: at least
   * batchCapacityBytes, and less than twice that (what a builder that started small and doubled
   * up to a full batch has). One still small is not kept, nor one that grew for an oversized record.
   */
  private spare(builder: RecordBatchBuilder): void {
    const bytes = builder.capacityBytes;
    if (this.spareBuilders.length < MAX_SPARE_BUILDERS && bytes >= this.batchCapacityBytes && bytes < 2 * this.batchCapacityBytes) this.spareBuilders.push(builder);
  }

  /**
   * A completed or failed batch's buffer, back for new batches: no attempt of it is sent
   * again, and the ones sent were copied on their way (the transport encodes a request's body
   * before ask() or tell() returns; a producer's node hosts no replica, so no ask is local).
   */
  private release(batch: SealedBatch): void {
    if (!batch.builder) return;
    batch.builder.reset();
    this.spare(batch.builder);
    batch.builder = null;
  }

  /**
   * How long the partition's open batch waits for more records before it may go: lingerMs,
   * and while requests are in flight at least a window's share of a round trip. Requests
   * then leave spaced over the round trip instead of one per send() (with lingerMs 0 that was
   * one small request per send: many more requests for the brokers to handle, for records
   * that waited a fraction of a round trip less). A request in flight to the partition's leader
   * worker for other partitions counts too: the open batch then goes with theirs when that
   * request is answered (wakeWaiting), in one ProduceMany, instead of alone. Partitions of one
   * leader worker so keep one request cycle between them, as Kafka's producer keeps one per
   * broker connection; each wait stays bounded by the partition's own round trip.
   */
  private lingerOf(q: PartitionQueue): number {
    return q.inFlight === 0 && !this.outbox.busy(q.destination) ? this.args.lingerMs : Math.max(this.args.lingerMs, q.roundTripMs / this.window);
  }

  /**
   * Wakes the producer when the first open batch that only waits for its linger may go. A
   * partition whose window is full needs no timer: an answer (onSent) drains it.
   */
  scheduleLinger(ctx: Ctx): void {
    if (this.lingerScheduled) return;
    let first = Infinity;
    for (const q of this.queues.values()) {
      if (!q.open || !this.hasRoom(q)) continue;
      const due = q.open.startedAt + this.lingerOf(q);
      if (due < first) first = due;
    }
    if (first === Infinity) return;
    this.lingerScheduled = true;
    ctx.schedule(Math.max(1, first - Date.now()), "Linger", {});
  }

  linger(ctx: Ctx): void {
    this.lingerScheduled = false;
    for (const q of this.queues.values()) this.drain(q, ctx);
    this.scheduleLinger(ctx);
  }

  // Sending ---------------------------------------------------------------------------------------

  /** Requests the partition may have in flight now: 1 until its leader confirmed one. */
  private limit(q: PartitionQueue): number {
    return q.confirmed ? this.window : 1;
  }

  /** Whether drain could send the partition's open batch now (its linger permitting). */
  private hasRoom(q: PartitionQueue): boolean {
    return !q.recovering && !q.refreshing && q.unacked.length < this.limit(q);
  }

  /**
   * Sends the partition's next batches while its window has room: first the batches to resend
   * (queued in `unacked`), then sealed ones. An open batch is sealed only here, when it can go
   * out at once (and its linger is over), not when its linger ends: while the window is full
   * the open batch keeps growing, as Kafka's accumulator does, so a slow round trip makes
   * batches bigger instead of queueing up many small ones.
   */
  drain(q: PartitionQueue, ctx: Ctx): void {
    while (!q.recovering && !q.refreshing && q.inFlight < this.limit(q)) {
      let batch = q.unacked.find((b) => b.state === "queued");
      if (!batch) {
        // `unacked` also bounds the sequences between the oldest unanswered batch and the
        // newest sent: a resend stays among the leader's last CACHED_BATCHES_PER_PRODUCER.
        if (q.unacked.length >= this.limit(q)) return;
        if (q.sealed.length === 0) {
          if (!q.open) return;
          if (Date.now() - q.open.startedAt < this.lingerOf(q)) {
            if (q.inFlight === 0 && q.destination !== null && this.outbox.busy(q.destination)) this.waitFor(q.destination, q);
            return;
          }
          this.seal(q);
        }
        batch = q.sealed.shift()!;
        q.unacked.push(batch);
      }
      batch.state = "inflight";
      q.inFlight++;
      const stale = this.args.acks === 0 && Date.now() - q.leaderReadAt > ACKS0_METADATA_MAX_AGE_MS;
      if (!q.leader || q.leader.leader < 0 || stale) {
        // Sends wait for the leader so that they leave in sequence order, one after the other.
        q.refreshing = true;
        void this.refreshThenRequest(q, batch, ctx);
        return;
      }
      this.request(q, batch, q.leader, ctx);
    }
  }

  private async refreshThenRequest(q: PartitionQueue, batch: SealedBatch, ctx: Ctx): Promise<void> {
    try {
      const fresh = await this.meta.getPartition(q.topic, q.partition);
      if (!fresh) throw new SkeinError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `unknown partition ${q.key}`, { topic: q.topic, partition: q.partition });
      q.leader = fresh.value;
      q.leaderReadAt = Date.now();
      if (fresh.value.leader < 0) throw new SkeinError(ErrorCode.LEADER_NOT_AVAILABLE, `${q.key} has no leader`, { topic: q.topic, partition: q.partition });
    } catch (e) {
      q.refreshing = false;
      ctx.tell(ctx.self, "Sent", { key: q.key, batchId: batch.id, error: asOutcomeError(e) });
      return;
    }
    q.refreshing = false;
    this.request(q, batch, q.leader, ctx);
    this.drain(q, ctx);
    this.scheduleLinger(ctx);
  }

  /**
   * Sends one batch to `leader`: queued in the outbox, which sends everything queued in this
   * turn at its end, in call order (see ProduceOutbox), so the partition's requests reach the
   * leader in the order of calls.
   */
  private request(q: PartitionQueue, batch: SealedBatch, leader: PartitionState, ctx: Ctx): void {
    const attempt = ++batch.attempts;
    batch.sentAt = Date.now();
    const key = q.key;
    // Only this attempt's outcome counts: one given up on (its leader moved) stays silent.
    let settled = false;
    const settle = (body: Outcome) => {
      if (settled || batch.attempts !== attempt) return;
      settled = true;
      batch.giveUp = null;
      ctx.tell(ctx.self, "Sent", { key, batchId: batch.id, ...body });
    };
    if (this.args.acks !== 0 && this.producerId >= 0) {
      batch.sentTo = leader;
      batch.giveUp = (message) => settle({ error: { code: ErrorCode.NOT_LEADER_OR_FOLLOWER, message, retriable: true } });
      batch.checkAt = batch.sentAt + LEADER_CHECK_MS;
      q.leaderCheck ??= setTimeout(() => void this.checkLeaders(q), LEADER_CHECK_MS);
    } else batch.giveUp = null;
    q.destination = this.outbox.destinationOf(leader.leader, q.topic, q.partition);
    this.outbox.add(leader.leader, q.destination, { topic: q.topic, partition: q.partition, bytes: batch.bytes, settle }, ctx);
  }

  /**
   * While idempotent requests wait, checks the partition state every LEADER_CHECK_MS of each
   * one's wait (with one timer and one read per partition, not per request): a request whose
   * leader moved (a new epoch) is given up as NOT_LEADER_OR_FOLLOWER and its batch retried at
   * the new leader at once. A leader whose worker or process died never answers, and waiting
   * out the request timeout (10 s by default) was most of a failover. Safe only with
   * idempotence: should the old leader have appended the batch and the new one have it too,
   * the new leader answers the retry with the original offsets.
   */
  private async checkLeaders(q: PartitionQueue): Promise<void> {
    q.leaderCheck = null;
    const waiting = (b: SealedBatch) => b.state === "inflight" && b.giveUp !== null;
    if (q.unacked.some((b) => waiting(b) && b.checkAt <= Date.now())) {
      const now = await this.meta.getPartition(q.topic, q.partition).catch(() => null);
      const at = Date.now();
      const moved: SealedBatch[] = [];
      for (const b of q.unacked) {
        const sentTo = b.sentTo;
        // Every waiting request is judged by the read, not only the ones due: one read per
        // partition and check, and a request to a leader that moved is lost either way.
        if (!waiting(b) || !sentTo) continue;
        if (now && (now.value.leaderEpoch !== sentTo.leaderEpoch || now.value.leader !== sentTo.leader)) moved.push(b);
        else b.checkAt = at + LEADER_CHECK_MS;
      }
      // Given up after the walk: the answer may be handled at once and change `unacked`.
      for (const b of moved) {
        const sentTo = b.sentTo!;
        b.giveUp?.(`${q.key}: leader moved from broker ${sentTo.leader} (epoch ${sentTo.leaderEpoch}) to ${now!.value.leader} (epoch ${now!.value.leaderEpoch}) while a produce waited`);
      }
    }
    if (this.closed || q.leaderCheck) return;
    let next = Infinity;
    for (const b of q.unacked) if (waiting(b) && b.checkAt < next) next = b.checkAt;
    if (next !== Infinity) q.leaderCheck = setTimeout(() => void this.checkLeaders(q), Math.max(1, next - Date.now()));
  }

  onSent(m: { key: string; batchId: number; baseOffset?: number; error?: { code: string; message: string; retriable: boolean } }, ctx: Ctx): void {
    const q = this.queues.get(m.key);
    const batch = q?.unacked.find((b) => b.id === m.batchId);
    if (!q || !batch || batch.state !== "inflight") return;
    q.inFlight--;
    if (m.error) {
      batch.state = "error";
      batch.error = m.error;
      q.recovering = true;
      q.confirmed = false;
      if (q.inFlight === 0) this.endRound(q, ctx);
    } else {
      batch.state = "acked";
      batch.baseOffset = m.baseOffset ?? -1;
      const rtt = Date.now() - batch.sentAt;
      q.roundTripMs = q.roundTripMs === 0 ? rtt : q.roundTripMs * 0.8 + rtt * 0.2;
      q.confirmed = true;
      if (q.recovering && q.inFlight === 0) this.endRound(q, ctx);
    }
    this.settleInOrder(q);
    this.drain(q, ctx);
    if (q.destination !== null) this.wakeWaiting(q.destination, ctx);
    this.scheduleLinger(ctx);
    this.checkFlushed();
  }

  private waitFor(destination: string, q: PartitionQueue): void {
    let waiting = this.waitingOn.get(destination);
    if (!waiting) {
      waiting = new Set();
      this.waitingOn.set(destination, waiting);
    }
    waiting.add(q);
  }

  /** Once nothing is in flight to the leader worker any more, its waiting partitions go (together: one turn). */
  private wakeWaiting(destination: string, ctx: Ctx): void {
    const waiting = this.waitingOn.get(destination);
    if (!waiting || this.outbox.busy(destination)) return;
    this.waitingOn.delete(destination);
    for (const q of waiting) this.drain(q, ctx);
  }

  /**
   * Every request of a failing partition is answered: decides per batch, oldest first, whether
   * it is resent or fails. Retriable errors are resent (until the delivery timeout), and so is
   * OUT_OF_ORDER_SEQUENCE after such a batch: the leader refused it only because the older
   * one was missing. OUT_OF_ORDER_SEQUENCE with no failed batch before it fails, as it always
   * did. Batches acknowledged meanwhile are done.
   */
  private endRound(q: PartitionQueue, ctx: Ctx): void {
    let retry: SealedBatch | null = null;
    // Records of batches the leader refused outright (MESSAGE_TOO_LARGE, CORRUPT_MESSAGE, …):
    // never written, so the leader still expects their sequence numbers. The batches after
    // them are renumbered down by as many, or every later send would be a gap (as Kafka's
    // idempotent producer adjusts sequences after a failed batch).
    let refused = 0;
    const now = Date.now();
    for (const b of q.unacked) {
      if (b.state === "error") {
        const e = b.error!;
        const expired = now - b.sealedAt > this.args.deliveryTimeoutMs;
        const afterGap = retry !== null || refused > 0;
        if (!expired && (e.retriable || (afterGap && e.code === ErrorCode.OUT_OF_ORDER_SEQUENCE))) {
          b.state = "queued";
          retry ??= b;
        } else {
          b.state = "failed";
          const why = expired ? `gave up after ${b.attempts} attempts in ${this.args.deliveryTimeoutMs} ms: ${e.message}` : e.message;
          b.error = { ...e, message: why };
          if (!e.retriable && e.code !== ErrorCode.OUT_OF_ORDER_SEQUENCE && this.producerId >= 0) {
            refused += b.records;
            continue;
          }
        }
      }
      if (refused > 0 && b.state !== "failed") this.renumber(b, refused);
    }
    if (refused > 0) {
      for (const b of q.sealed) this.renumber(b, refused);
      q.nextSequence -= refused;
    }
    if (!retry) {
      q.recovering = false;
      return;
    }
    // The resend reads the leader again (a TIMEOUT too: the leader may have moved meanwhile).
    q.leader = null;
    const backoff = Math.min(1_000, this.args.retryBackoffMs * 2 ** Math.min(retry.attempts - 1, 10));
    ctx.schedule(backoff, "Retry", { key: q.key });
  }

  /** Moves a sealed batch's sequence numbers down by `by` (see endRound). */
  private renumber(b: SealedBatch, by: number): void {
    setBaseSequence(b.bytes, 0, readBatchHeader(b.bytes, 0).baseSequence - by);
  }

  /** Completes or fails the partition's oldest batches that are decided: sends resolve in order. */
  private settleInOrder(q: PartitionQueue): void {
    while (q.unacked.length > 0) {
      const b = q.unacked[0];
      if (b.state === "acked") this.complete(q, b, b.baseOffset);
      else if (b.state === "failed") this.fail(b, new SkeinError(b.error!.code as ErrorCode, b.error!.message, { topic: q.topic, partition: q.partition }));
      else return;
      q.unacked.shift();
      this.release(b);
    }
  }

  retry(key: string, ctx: Ctx): void {
    const q = this.queues.get(key);
    if (!q?.recovering) return;
    q.recovering = false;
    this.drain(q, ctx);
    this.scheduleLinger(ctx);
  }

  private complete(q: PartitionQueue, batch: SealedBatch, baseOffset: number): void {
    for (const { send, index } of batch.members) {
      if (!send.results.has(q.partition)) send.results.set(q.partition, baseOffset < 0 ? -1 : baseOffset + index);
      if (--send.remaining === 0 && !send.failed) {
        send.reply.resolve([...send.results].map(([partition, off]) => ({ topic: send.topic, partition, baseOffset: off })));
      }
    }
  }

  private fail(batch: { members: Member[] }, error: SkeinError): void {
    for (const { send } of batch.members) {
      send.remaining--;
      if (!send.failed) {
        send.failed = true;
        send.reply.reject(error);
      }
    }
  }

  flush(ctx: Ctx): void {
    for (const q of this.queues.values()) {
      this.seal(q);
      this.drain(q, ctx);
    }
    this.flushWaiters.push(ctx.deferReply());
    this.checkFlushed();
  }

  private checkFlushed(): void {
    if (this.flushWaiters.length === 0) return;
    for (const q of this.queues.values()) if (q.open || q.unacked.length || q.sealed.length) return;
    for (const w of this.flushWaiters.splice(0)) w.resolve({ flushed: true });
  }

  close(): void {
    const gone = new SkeinError(ErrorCode.NOT_CONNECTED, "producer disconnected before these records were acknowledged");
    this.closed = true;
    this.outbox.close();
    this.waitingOn.clear();
    for (const q of this.queues.values()) {
      if (q.leaderCheck) clearTimeout(q.leaderCheck);
      q.leaderCheck = null;
      for (const b of q.unacked) {
        if (b.state === "acked") this.complete(q, b, b.baseOffset);
        else this.fail(b, gone);
      }
      for (const b of q.sealed) this.fail(b, gone);
      if (q.open) this.fail(q.open, gone);
    }
    for (const w of this.flushWaiters.splice(0)) w.reject(gone);
  }
}

/** What a produce request's attempt came to: the batch's base offset, or an error. */
type Outcome = { baseOffset?: number; error?: { code: string; message: string; retriable: boolean } };

/** One batch on its way out: settled with its outcome once (acks=0: once it was sent). */
interface OutgoingBatch {
  topic: string;
  partition: number;
  bytes: Uint8Array;
  settle: (outcome: Outcome) => void;
}

/** How old a topic's known partition count may get before a send reads it again (in the background), ms. */
const PARTITION_COUNT_MAX_AGE_MS = 30_000;

/** Most entries the producer puts in one ProduceMany (the server takes up to MAX_PRODUCE_MANY_ENTRIES). */
const MAX_ENTRIES_PER_REQUEST = 1_000;
/** A ProduceMany entry's JSON is at most this many bytes plus its topic name's (see entriesJsonBytes). */
const ENTRY_JSON_BYTES = 64;
/** The rest of a ProduceMany envelope (type name, acks, timeoutMs, field names), bytes, from above. */
const REQUEST_ENVELOPE_BYTES = 256;

/**
 * Produce fan-in (Kafka's ProduceRequest carries many partitions too). Requests made in one
 * turn of the producer actor wait here until its end (a microtask), then leave grouped by
 * leader: the batches of several partitions led by the same worker of the same broker go as one
 * ProduceMany to that worker's produce server (protocol/cluster.ts), one NATS message and one
 * wake-up instead of one per partition. Partitions answered together drain together, so they
 * stay combined from then on. A batch alone for its leader worker goes as a plain Produce to its
 * replica (no extra hop), and so does every batch while the leader broker's worker count is not
 * known (read from its live record; the produce server's answers keep it current). While a
 * request to a leader worker is in flight, the open batches of its other partitions wait for
 * its answer (busy, see lingerOf), so that from then on they leave together.
 *
 * Per batch nothing changes: each entry is settled with its own outcome, an error of one entry
 * (or a given-up attempt, see checkLeaders) touches no other, and a failed request fails each
 * of its entries with the request's error, as if each had been sent alone.
 */
class ProduceOutbox {
  /**
   * Batches of this turn, in call order, by leader worker ("broker/worker"), or by leader broker
   * ("broker") while its worker count is not known.
   */
  private readonly pending = new Map<string, { broker: number; worker: number; batches: OutgoingBatch[] }>();
  private flushQueued = false;
  /** Requests waiting for their answer, by leader worker (see busy). */
  private readonly inFlightTo = new Map<string, number>();
  /** Worker counts of leader brokers (from their live records, corrected by their produce servers). */
  private readonly workersOf: BrokerWorkerCounts;
  /** A ProduceMany's data and envelope stay within one batch's buffer: what fits a full batch's Produce fits it. */
  private readonly maxRequestBytes: number;
  private closed = false;

  constructor(
    meta: MetadataStore,
    private readonly args: ProducerArgs,
    batchCapacityBytes: number,
  ) {
    this.workersOf = new BrokerWorkerCounts(meta);
    this.maxRequestBytes = batchCapacityBytes;
  }

  /** The leader worker ("broker/worker") that hosts the partition's leader replica, null while the broker's worker count is not known. */
  destinationOf(broker: number, topic: string, partition: number): string | null {
    const workers = this.workersOf.knownOrRead(broker);
    return workers === undefined ? null : `${broker}/${placementOf(replicaAddress(topic, partition, broker), workers)}`;
  }

  /** Whether a request to the leader worker is waiting for its answer. */
  busy(destination: string | null): boolean {
    return destination !== null && (this.inFlightTo.get(destination) ?? 0) > 0;
  }

  add(broker: number, destination: string | null, batch: OutgoingBatch, ctx: Ctx): void {
    const key = destination ?? String(broker);
    let group = this.pending.get(key);
    if (!group) {
      group = { broker, worker: destination === null ? -1 : Number(destination.slice(destination.indexOf("/") + 1)), batches: [] };
      this.pending.set(key, group);
    }
    group.batches.push(batch);
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => this.flush(ctx));
  }

  private flush(ctx: Ctx): void {
    this.flushQueued = false;
    // Closed meanwhile: close() failed these batches' sends already.
    if (this.closed) return this.pending.clear();
    for (const [key, { broker, worker, batches }] of this.pending) {
      const workers = this.workersOf.known(broker);
      // Placed by a worker count that changed since (a produce server corrected it): plain Produces this once.
      if (worker < 0 || workers === undefined || worker >= workers) for (const b of batches) this.produceOne(broker, null, b, ctx);
      else this.produceGrouped(broker, worker, workers, key, batches, ctx);
    }
    this.pending.clear();
  }

  /** A leader worker's batches, in requests within the bounds: entries and bytes. */
  private produceGrouped(broker: number, worker: number, workers: number, destination: string, group: OutgoingBatch[], ctx: Ctx): void {
    let from = 0;
    let bytes = REQUEST_ENVELOPE_BYTES;
    for (let i = 0; i <= group.length; i++) {
      const size = i < group.length ? group[i].bytes.length + ENTRY_JSON_BYTES + group[i].topic.length : 0;
      if (i < group.length && i - from < MAX_ENTRIES_PER_REQUEST && bytes + size <= this.maxRequestBytes) {
        bytes += size;
        continue;
      }
      if (i - from === 1) this.produceOne(broker, destination, group[from], ctx);
      else if (i > from) this.produceMany(broker, worker, workers, destination, group.slice(from, i), ctx);
      from = i;
      bytes = REQUEST_ENVELOPE_BYTES + size;
    }
  }

  /** One batch as a plain Produce, straight to the partition's replica. */
  private produceOne(broker: number, destination: string | null, b: OutgoingBatch, ctx: Ctx): void {
    const address = replicaAddress(b.topic, b.partition, broker);
    if (this.args.acks === 0) {
      // Fire and forget, as Kafka's acks=0: a tell, so the leader has nowhere to answer and
      // nothing here waits for it. A lost batch is lost; that is what acks=0 means.
      ctx.tell(address, "Produce", { batches: b.bytes, acks: 0 });
      return b.settle({ baseOffset: -1 });
    }
    const timeoutMs = this.args.requestTimeoutMs;
    const answered = this.sending(destination);
    ctx.ask<ProduceResult>(address, "Produce", { batches: b.bytes, acks: this.args.acks, timeoutMs }, { timeoutMs: timeoutMs + 1_000 }).then(
      (r) => {
        answered();
        b.settle({ baseOffset: r.baseOffset });
      },
      (e) => {
        answered();
        b.settle({ error: asOutcomeError(e) });
      },
    );
  }

  private produceMany(broker: number, worker: number, workers: number, destination: string, group: OutgoingBatch[], ctx: Ctx): void {
    let total = 0;
    let headroom = REQUEST_ENVELOPE_BYTES;
    for (const b of group) {
      total += b.bytes.length;
      headroom += ENTRY_JSON_BYTES + b.topic.length;
    }
    // The batches are copied once, behind room for the envelope, which is then written in
    // front of them instead of copying them again (offerEnvelopeHeadroom).
    const data = new Uint8Array(new ArrayBuffer(headroom + total), headroom, total);
    const entries = new Array<{ topic: string; partition: number; start: number; length: number }>(group.length);
    let at = 0;
    for (let i = 0; i < group.length; i++) {
      const b = group[i];
      data.set(b.bytes, at);
      entries[i] = { topic: b.topic, partition: b.partition, start: at, length: b.bytes.length };
      at += b.bytes.length;
    }
    offerEnvelopeHeadroom(data);
    const address = produceServerAddress(broker, worker, workers);
    const timeoutMs = this.args.requestTimeoutMs;
    if (this.args.acks === 0) {
      ctx.tell(address, "ProduceMany", { acks: 0, timeoutMs, entries, data });
      for (const b of group) b.settle({ baseOffset: -1 });
      return;
    }
    const answered = this.sending(destination);
    ctx.ask<ProduceManyResult>(address, "ProduceMany", { acks: this.args.acks, timeoutMs, entries, data }, { timeoutMs: timeoutMs + 1_000 }).then(
      (r) => {
        answered();
        this.workersOf.set(broker, r.workers);
        for (let i = 0; i < group.length; i++) {
          const b = group[i];
          const o = r.results[i];
          if (!o || o.topic !== b.topic || o.partition !== b.partition) {
            b.settle({ error: { code: ErrorCode.UNKNOWN, message: `produce server ${address} answered entry ${i} for ${o ? `${o.topic}/${o.partition}` : "nothing"}, not ${b.topic}/${b.partition}`, retriable: false } });
          } else b.settle("error" in o ? { error: o.error } : { baseOffset: o.baseOffset });
        }
      },
      (e) => {
        answered();
        // No produce server there (the broker restarted with other workers, or is gone): plain
        // Produces until its worker count is read again.
        if (isSkeinError(e) && e.code === ErrorCode.ACTOR_NOT_FOUND) this.workersOf.forget(broker);
        const error = asOutcomeError(e);
        for (const b of group) b.settle({ error });
      },
    );
  }

  /**
   * Counts a request to `destination` in flight until the returned function is called (once,
   * before its entries are settled: they see the destination free if it was the last one).
   */
  private sending(destination: string | null): () => void {
    if (destination === null) return () => undefined;
    this.inFlightTo.set(destination, (this.inFlightTo.get(destination) ?? 0) + 1);
    return () => {
      const left = (this.inFlightTo.get(destination) ?? 1) - 1;
      if (left > 0) this.inFlightTo.set(destination, left);
      else this.inFlightTo.delete(destination);
    };
  }

  close(): void {
    this.closed = true;
    this.pending.clear();
  }
}

function asOutcomeError(e: unknown): { code: string; message: string; retriable: boolean } {
  const err = isSkeinError(e) ? e : new SkeinError(ErrorCode.UNKNOWN, String((e as Error)?.message ?? e));
  return { code: err.code, message: err.message, retriable: err.retriable };
}

/** What `accept` did with a send: queued or refused it ("done"), or found its partition count stale. */
type Accepted = "done" | "stale";

/** A send named a partition the topic has not got (as far as the count this producer read). */
class PartitionBeyondCount extends SkeinError {
  constructor(topic: string, partitions: number, partition: number) {
    super(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `topic ${topic} has ${partitions} partitions; partition ${partition} does not exist`, { topic, partition });
  }
}

/** Records parsed per send before the parse arrays grow (and are shrunk back to after the send). */
const PARSED_RECORDS = 8_192;

/**
 * One send's frames parsed in a single pass: the partition chosen for each record (-1 = the
 * sticky partition, picked while appending), its timestamp (-1 = now) and where its tail is.
 * Parsing first keeps a send all or nothing (a bad frame or partition refuses it before any
 * record is queued) without walking the frames twice. The arrays are reused from send to
 * send; a send with more than PARSED_RECORDS records gets larger ones for its own duration.
 */
class ParsedFrames {
  count = 0;
  partition = new Int32Array(PARSED_RECORDS);
  timestamp = new Float64Array(PARSED_RECORDS);
  tailOffset = new Int32Array(PARSED_RECORDS);
  tailLength = new Int32Array(PARSED_RECORDS);

  /** Throws the error a send gets for its first bad frame, timestamp or nonexistent partition. */
  parse(frames: Uint8Array, topic: string, partitions: number): this {
    const reader = new FrameReader(frames);
    let n = 0;
    while (reader.next()) {
      let p = reader.partition;
      if (p >= partitions) {
        throw new PartitionBeyondCount(topic, partitions, p);
      }
      const ts = reader.timestamp;
      // The facade lets any finite number through; a batch holds whole ms (found here, not
      // halfway through appending the send).
      if (ts !== -1 && !Number.isSafeInteger(ts)) throw new SkeinError(ErrorCode.INVALID_REQUEST, `timestamp must be a whole number of ms, got ${ts}`, { field: "timestamp" });
      if (p < 0 && reader.keyLength >= 0) p = partitionForKey(frames, partitions, reader.keyOffset, reader.keyLength);
      if (n === this.partition.length) this.grow();
      this.partition[n] = p;
      this.timestamp[n] = ts;
      this.tailOffset[n] = reader.tailOffset;
      this.tailLength[n] = reader.tailLength;
      n++;
    }
    this.count = n;
    return this;
  }

  private grow(): void {
    this.partition = doubled(this.partition);
    this.timestamp = doubled(this.timestamp);
    this.tailOffset = doubled(this.tailOffset);
    this.tailLength = doubled(this.tailLength);
  }

  /** Back to the usual size once a large send is queued: memory stays bounded between sends. */
  release(): void {
    if (this.partition.length === PARSED_RECORDS) return;
    this.partition = new Int32Array(PARSED_RECORDS);
    this.timestamp = new Float64Array(PARSED_RECORDS);
    this.tailOffset = new Int32Array(PARSED_RECORDS);
    this.tailLength = new Int32Array(PARSED_RECORDS);
  }
}

/** A typed array twice as long, starting with `a`'s elements. */
function doubled<T extends Int32Array | Float64Array>(a: T): T {
  const b = new (a.constructor as new (length: number) => T)(a.length * 2);
  b.set(a);
  return b;
}

export const ProducerActor = defineActor({
  kind: "producer",
  args: ProducerArgs,
  messages: ProducerMessages,
  mailboxCapacity: 100_000,
  async init(ctx) {
    const state = new ProducerState(await metadataFor(ctx.nats, ctx.cluster), ctx.args);
    await state.initProducerId(ctx);
    return state;
  },
  stopped: (s) => s.close(),
  handlers: {
    Send: (s, m, ctx) => s.send(m.topic, m.frames, ctx),
    Flush: (s, _m, ctx) => s.flush(ctx),
    Linger: (s, _m, ctx) => s.linger(ctx),
    Sent: (s, m, ctx) => s.onSent(m, ctx),
    Retry: (s, m, ctx) => s.retry(m.key, ctx),
  },
});
