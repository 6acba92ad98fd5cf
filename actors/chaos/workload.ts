// The chaos workload: what runs against the cluster while the nemesis works, recorded into a
// History (history.ts) for the checker.
//
// * Producers (idempotent, acks=all) write unique values `p<i>-<n>` round robin over the
//   partitions (skipping a partition with `maxInFlight` sends outstanding), one record per
//   send() so every ack names its record's offset, paced to `ratePerSecond`.
// * Consumers form one group and poll; a `group.join` event is recorded as `assign` before the
//   records of that poll (the event precedes the offset fetch in the member), each poll as one
//   `poll` per partition. Commits are automatic (every `autoCommitIntervalMs`).
// * An observer asks the group coordinator for the committed offsets every `observeEveryMs`
//   and records each change as a `commit` (process "observer"): the checker's
//   commit-regression looks at what the group has committed, whoever committed it.
// * The final read fetches every partition from its log start to its high watermark.

import { Skein, type Consumer, type Producer } from "../client/skein.js";
import type { ClusterClient } from "../cluster/admin.js";
import type { SkeinNode } from "../../runtime/node.js";
import type { NatsOptions } from "../../runtime/types.js";
import { ErrorCode, isSkeinError } from "../../protocol/errors.js";
import { decodeRecords, iterateBatches } from "../../protocol/record-batch.js";
import type { CommittedOffset } from "../../protocol/groups.js";
import type { HistoryRecorder, ReadRecord } from "./history.js";

export interface WorkloadOptions {
  nats: NatsOptions;
  cluster: string;
  topic: string;
  partitions: number;
  group: string;
  /** Producer processes (p0, p1, …). Default 2. */
  producers?: number;
  /** Group members (c0, c1, …), each in its own client node. Default 2. */
  consumers?: number;
  /** Sends per second per producer. Default 100. */
  ratePerSecond?: number;
  /** Outstanding sends per producer and partition: a stalled partition does not stall the others. Default 8. */
  maxInFlight?: number;
  /** A send not acknowledged within this fails (indeterminate), ms. Default 15000. */
  deliveryTimeoutMs?: number;
  /** Group session timeout, ms. Default 4000. */
  sessionTimeoutMs?: number;
  /** Auto-commit period, ms. Default 300. */
  autoCommitIntervalMs?: number;
  /** Committed-offset observation period, ms. Default 250. */
  observeEveryMs?: number;
  history: HistoryRecorder;
  log?: (line: string) => void;
}

/** Errors after which a send certainly did not happen; anything else is indeterminate. */
const DEFINITE_FAILURES: ReadonlySet<string> = new Set([ErrorCode.INVALID_REQUEST, ErrorCode.MESSAGE_TOO_LARGE, ErrorCode.INVALID_TOPIC, ErrorCode.CORRUPT_MESSAGE]);

interface Member {
  name: string;
  skein: Skein;
  consumer: Consumer;
  node: SkeinNode;
  loop: Promise<void>;
  /** Highest offset this member polled, per partition. */
  polled: Map<number, number>;
}

export class Workload {
  private producing = false;
  private consuming = false;
  private observing = false;
  private producerSkein: Skein | null = null;
  private producerLoops: Promise<void>[] = [];
  private readonly members: Member[] = [];
  private observer: Promise<void> | null = null;
  private readonly lastObserved = new Map<number, number>();
  /** Acknowledged sends so far (for progress lines). */
  acked = 0;
  /** Per partition, the highest history index of a send invoke that was acknowledged. */
  private readonly ackedInvoke: number[] = [];

  private client: ClusterClient | null = null;
  private consumersStopped = false;

  constructor(private readonly options: WorkloadOptions) {}

  private get log(): (line: string) => void {
    return this.options.log ?? (() => undefined);
  }

  /**
   * Boots the client nodes (each member's, and the producers'), which needs NATS but no broker,
   * so it can overlap the cluster's start-up.
   */
  async prepare(): Promise<void> {
    const o = this.options;
    this.producerSkein = new Skein({ clientId: "chaos-producers", nats: o.nats, cluster: o.cluster });
    // Members boot together: each is a client node with its own worker thread.
    const [members] = await Promise.all([Promise.all(Array.from({ length: o.consumers ?? 2 }, (_, i) => this.prepareMember(i))), this.producerSkein.acquireNode()]);
    this.members.push(...members);
  }

  /** Subscribes the members, starts producing and observing commits (prepare() first). */
  async start(client: ClusterClient): Promise<void> {
    const o = this.options;
    this.client = client;
    this.producing = this.consuming = this.observing = true;
    await Promise.all(this.members.map((m) => this.startMember(m)));
    const producerSkein = this.producerSkein!;
    for (let i = 0; i < (o.producers ?? 2); i++) {
      const producer = producerSkein.producer({ acks: "all", idempotent: true, lingerMs: 2, requestTimeoutMs: 2_000, deliveryTimeoutMs: o.deliveryTimeoutMs ?? 15_000 });
      await producer.connect();
      this.producerLoops.push(this.produce(`p${i}`, producer));
    }
    this.observer = this.observe();
  }

  // Producers --------------------------------------------------------------------------------

  private async produce(name: string, producer: Producer): Promise<void> {
    const o = this.options;
    const intervalMs = 1_000 / (o.ratePerSecond ?? 100);
    const maxInFlight = o.maxInFlight ?? 8;
    const inFlight = new Set<Promise<void>>();
    const outstanding = new Array<number>(o.partitions).fill(0);
    let seq = 0;
    let turn = 0;
    let next = Date.now();
    while (this.producing) {
      const open = Array.from({ length: o.partitions }, (_, k) => (turn + k) % o.partitions).find((p) => outstanding[p] < maxInFlight);
      if (open === undefined) {
        await Promise.race(inFlight);
        continue;
      }
      const wait = next - Date.now();
      if (wait > 0) await sleep(wait);
      next = Math.max(next + intervalMs, Date.now() - 10 * intervalMs);
      if (!this.producing) break;
      const value = `${name}-${seq++}`;
      const partition = open;
      turn = partition + 1;
      outstanding[partition]++;
      const invoke = o.history.record({ process: name, f: "send", type: "invoke", topic: o.topic, partition, value });
      const send = producer.send({ topic: o.topic, messages: [{ value, partition }] }).then(
        (r) => {
          this.acked++;
          this.ackedInvoke[partition] = Math.max(this.ackedInvoke[partition] ?? -1, invoke.index);
          o.history.record({ process: name, f: "send", type: "ok", topic: o.topic, partition, value, offset: r[0].baseOffset });
        },
        (e) => {
          const code = isSkeinError(e) ? e.code : ErrorCode.UNKNOWN;
          o.history.record({ process: name, f: "send", type: DEFINITE_FAILURES.has(code) ? "fail" : "info", topic: o.topic, partition, value, error: code });
        },
      );
      inFlight.add(send);
      void send.finally(() => {
        inFlight.delete(send);
        outstanding[partition]--;
      });
    }
    await Promise.all(inFlight);
    await producer.disconnect().catch((e) => this.log(`${name}: disconnect failed: ${(e as Error).message}`));
  }

  /** True when every partition has acknowledged a send invoked after history index `index`. */
  ackedOnEveryPartitionSince(index: number): boolean {
    return Array.from({ length: this.options.partitions }, (_, p) => this.ackedInvoke[p] ?? -1).every((i) => i > index);
  }

  /** Stops sending and waits for every outstanding send (bounded by the delivery timeout). */
  async stopProducers(): Promise<void> {
    this.producing = false;
    await Promise.all(this.producerLoops);
    this.producerLoops = [];
    await this.producerSkein?.releaseClient();
    await this.producerSkein?.releaseNode(); // prepare()'s
    this.producerSkein = null;
  }

  // Consumers --------------------------------------------------------------------------------

  private async prepareMember(i: number): Promise<Member> {
    const o = this.options;
    const name = `c${i}`;
    const skein = new Skein({ clientId: `chaos-${name}`, nats: o.nats, cluster: o.cluster });
    const sessionTimeout = o.sessionTimeoutMs ?? 4_000;
    const consumer = skein.consumer({
      groupId: o.group,
      sessionTimeout,
      rebalanceTimeout: sessionTimeout,
      heartbeatInterval: Math.max(100, Math.floor(sessionTimeout / 8)),
      autoCommitInterval: o.autoCommitIntervalMs ?? 300,
      maxWaitTimeInMs: 200,
    });
    await consumer.connect();
    // The facade's client node (shared with nothing else): its worker is what kill-consumer kills.
    const node = await skein.acquireNode();
    consumer.on("group.join", (e) => {
      o.history.record({ process: name, f: "assign", type: "ok", group: o.group, generation: e.generation, member: e.memberId, partitions: e.partitions });
    });
    return { name, skein, consumer, node, loop: Promise.resolve(), polled: new Map() };
  }

  private async startMember(m: Member): Promise<void> {
    await m.consumer.subscribe({ topics: [this.options.topic], fromBeginning: true });
    m.loop = this.consume(m);
  }

  private async consume(m: Member): Promise<void> {
    const o = this.options;
    while (this.consuming) {
      let batches;
      const t = Date.now();
      try {
        batches = await m.consumer.poll(200);
        if (Date.now() - t > 2000) this.log(`${m.name}: poll took ${Date.now() - t} ms`);
      } catch (e) {
        if (Date.now() - t > 2000) this.log(`${m.name}: poll failed after ${Date.now() - t} ms: ${(e as Error).message}`);
        if (!this.consuming) break;
        if (!isSkeinError(e) || !e.retriable) this.log(`${m.name}: poll failed: ${(e as Error).message}`);
        await sleep(100);
        continue;
      }
      for (const { batch } of batches) {
        const records: ReadRecord[] = batch.messages.map((msg) => ({ offset: Number(msg.offset), value: msg.value?.toString() ?? "" }));
        o.history.record({ process: m.name, f: "poll", type: "ok", topic: batch.topic, partition: batch.partition, records });
        const last = records[records.length - 1];
        if (last) m.polled.set(batch.partition, Math.max(m.polled.get(batch.partition) ?? -1, last.offset));
      }
    }
  }

  /** Terminates the worker thread of consumer `i`'s client node; the facade subscribes again. */
  async killConsumer(i: number): Promise<string> {
    const m = this.members[i % this.members.length];
    await m.node.killWorker(0);
    return m.name;
  }

  get consumerCount(): number {
    return this.members.length;
  }

  /** Highest offset any member polled, per partition. */
  polledUpTo(partition: number): number {
    return Math.max(-1, ...this.members.map((m) => m.polled.get(partition) ?? -1));
  }

  /** Stops polling, commits what was processed and leaves the group. */
  async stopConsumers(): Promise<void> {
    if (this.consumersStopped) return;
    this.consumersStopped = true;
    this.consuming = false;
    await Promise.all(this.members.map((m) => m.loop));
    for (const m of this.members) {
      const started = Date.now();
      await m.consumer.disconnect().catch((e) => this.log(`${m.name}: disconnect failed: ${(e as Error).message}`));
      await m.skein.releaseNode().catch(() => undefined);
      this.log(`${m.name}: left the group in ${Date.now() - started} ms`);
    }
    this.observing = false;
    await this.observer;
    await this.observeOnce().catch(() => undefined);
  }

  // Committed offsets ----------------------------------------------------------------------------

  private async observe(): Promise<void> {
    while (this.observing) {
      await this.observeOnce().catch(() => undefined);
      await sleep(this.options.observeEveryMs ?? 250);
    }
  }

  private async observeOnce(): Promise<void> {
    const o = this.options;
    const partitions = Array.from({ length: o.partitions }, (_, p) => ({ topic: o.topic, partition: p }));
    const r = await this.client!.askCoordinator<{ offsets: CommittedOffset[] }>(o.group, "OffsetFetch", { groupId: o.group, partitions }, 2_000);
    for (const c of r.offsets) {
      if (c.topic !== o.topic || c.offset < 0 || this.lastObserved.get(c.partition) === c.offset) continue;
      this.lastObserved.set(c.partition, c.offset);
      o.history.record({ process: "observer", f: "commit", type: "ok", group: o.group, topic: o.topic, partition: c.partition, offset: c.offset, generation: -1, member: "observer" });
    }
  }
}

export interface FinalPartition {
  partition: number;
  leader: number;
  highWatermark: number;
  isr: number[];
  replicas: number[];
}

/**
 * Everything from each partition's log start to its high watermark, as the checker's final
 * read. A view counts only when it is settled and stable: before the read every partition's
 * leader (the replica leading at the KV's epoch) has its HW at its log end, and after it the
 * same leaders lead at the same epochs with the same HWs. A leader change in between (the
 * controller's preferred-leader move, a few seconds after a heal) brings a leader whose HW has
 * not yet caught up with its predecessor's: a read from it ends early, which the checker would
 * report as a lost record or a gap that no log has. Retried for up to `timeoutMs`; past that
 * the last view is recorded as it is (the checker judges it) and `log` says so.
 */
export async function finalRead(client: ClusterClient, topic: string, history: HistoryRecorder, options: { timeoutMs?: number; log?: (line: string) => void } = {}): Promise<FinalPartition[]> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  for (let attempt = 1; ; attempt++) {
    const before = (await client.describeTopic(topic).catch(() => null))?.partitions ?? null;
    const unsettled = before === null ? ["no description"] : before.filter((p) => p.highWatermark === null || p.highWatermark !== p.logEndOffset).map((p) => `p${p.partition} HW ${p.highWatermark} log end ${p.logEndOffset}`);
    const last = Date.now() > deadline;
    if (before && (unsettled.length === 0 || last)) {
      const reads = await readCommitted(client, topic, before).catch(() => null);
      const after = reads && !last ? (await client.describeTopic(topic).catch(() => null))?.partitions : null;
      const unchanged = (p: (typeof before)[number]) => after?.some((a) => a.partition === p.partition && a.leader === p.leader && a.leaderEpoch === p.leaderEpoch && a.highWatermark === p.highWatermark);
      if (reads && (last || before.every(unchanged))) {
        if (last) options.log?.(`final read: no settled, stable view of ${topic} in ${options.timeoutMs ?? 10_000} ms (${attempt} attempts${unsettled.length ? `; ${unsettled.join(", ")}` : ""}); recorded as read`);
        for (const r of reads) history.record({ process: "checker", f: "final-read", type: "ok", topic, partition: r.partition, highWatermark: r.highWatermark, logStartOffset: r.logStartOffset, records: r.records });
        return before.map((p) => ({ partition: p.partition, leader: p.leader, highWatermark: p.highWatermark ?? 0, isr: p.isr, replicas: p.replicas }));
      }
    }
    await sleep(100);
  }
}

/** One read of every partition from its leader, up to the HW described. */
async function readCommitted(client: ClusterClient, topic: string, partitions: Array<{ partition: number; highWatermark: number | null; logStartOffset: number | null }>): Promise<Array<{ partition: number; highWatermark: number; logStartOffset: number; records: ReadRecord[] }>> {
  const decoder = new TextDecoder();
  const out: Array<{ partition: number; highWatermark: number; logStartOffset: number; records: ReadRecord[] }> = [];
  for (const p of partitions) {
    const hw = p.highWatermark ?? 0;
    const start = p.logStartOffset ?? 0;
    const records: ReadRecord[] = [];
    for (let offset = start; offset < hw; ) {
      const f = await client.fetch(topic, p.partition, offset, { maxBytes: 1 << 20, timeoutMs: 20_000 });
      let next = offset;
      for (const { pos } of iterateBatches(f.data)) {
        for (const r of decodeRecords(f.data, pos)) {
          if (r.offset < offset || r.offset >= hw) continue;
          records.push({ offset: r.offset, value: r.value ? decoder.decode(r.value) : "" });
          next = Math.max(next, r.offset + 1);
        }
      }
      if (next === offset) break; // nothing more below the HW: the checker reports the gap
      offset = next;
    }
    out.push({ partition: p.partition, highWatermark: hw, logStartOffset: start, records });
  }
  return out;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
