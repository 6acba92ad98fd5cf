// The library API, shaped like kafkajs because that is what Node users know:
//
//   const skein = new Skein({ clientId: "app", nats: "nats://127.0.0.1:4222" })
//   const producer = skein.producer({ acks: "all" }); await producer.connect()
//   await producer.send({ topic: "orders", messages: [{ key: "k1", value: "v1" }] })
//   const consumer = skein.consumer({}); await consumer.connect()
//   await consumer.subscribe({ topics: ["orders"], fromBeginning: true })
//   await consumer.run({ eachMessage: async ({ topic, partition, message }) => {} })
//
// Producer and consumer are actors in a worker thread of this process (one client node per
// Skein instance); this facade hands them whole batches over a MessagePort.

import { randomUUID } from "node:crypto";
import { SkeinNode } from "../../runtime/node.js";
import { bundlePath } from "../../runtime/paths.js";
import type { PortRef } from "../../runtime/port-ref.js";
import type { NatsOptions } from "../../runtime/types.js";
import { ErrorCode, SkeinError } from "../../protocol/errors.js";
import { validateTopicName } from "../../protocol/cluster.js";
import type { GroupEvent, PollResult, PolledChunk } from "../../protocol/client.js";
import type { CommittedOffset } from "../../protocol/groups.js";
import { ClusterClient } from "../cluster/admin.js";
import { encodeFramesScratch, FrameRing, ownCopy, type OutgoingMessage } from "./frames.js";
import { decodeChunkMessages, EACH_BATCH_MAX_BYTES, splitChunk } from "./decode.js";
import type { SendResult } from "./producer.js";

export interface SkeinConfig {
  /** Shown in connection names and actor addresses. */
  clientId?: string;
  /** NATS URL(s) or full connection options. */
  nats: string | string[] | NatsOptions;
  /** Cluster namespace. Default "default". */
  cluster?: string;
}

export interface ProducerConfig {
  /**
   * "all" (default), 1 or 0; -1 means all. 0 is fire and forget: send() resolves once the
   * batch is handed to the leader, with baseOffset -1, and never learns whether it arrived.
   */
  acks?: "all" | 0 | 1 | -1;
  /** Default true; ignored with acks 0 (no answers, so no sequences to keep). */
  idempotent?: boolean;
  /** Default 5 ms. */
  lingerMs?: number;
  /** Default 512 KiB. */
  batchBytes?: number;
  /** Bytes handed to the producer and not yet acknowledged; send() waits above it. Default 32 MiB. */
  bufferBytes?: number;
  requestTimeoutMs?: number;
  deliveryTimeoutMs?: number;
  /**
   * Produce requests per partition in flight at once (1–5), like Kafka's
   * max.in.flight.requests.per.connection. Default 1. With idempotence up to 5 keep order and
   * drop duplicates across retries (the leader's sequence checks); it pays where a round trip
   * is long (brokers on other machines). On one 2-core machine it measured no throughput gain
   * and a higher latency (more, smaller requests for the same CPU): bench/RESULTS.md. Without
   * idempotence a retried request may land after a later one (reordering) or twice; set it
   * higher there only if that is acceptable.
   */
  maxInFlightRequests?: number;
}

export interface ConsumerConfig {
  /** Consumer group (coordinated consumption and committed offsets). */
  groupId?: string;
  /** Static membership: restarting within sessionTimeout keeps the partitions, no rebalance. */
  groupInstanceId?: string;
  /** Default 10000 ms. */
  sessionTimeout?: number;
  /** Default 10000 ms. */
  rebalanceTimeout?: number;
  /** Default 1000 ms. */
  heartbeatInterval?: number;
  /** A member that does not come back for more records within this leaves the group. Default 300000 ms. */
  maxPollInterval?: number;
  /** Assignors in order of preference: "cooperative-sticky" (default), "range", "roundrobin". */
  assignors?: Array<"cooperative-sticky" | "range" | "roundrobin">;
  /** Commit processed offsets every autoCommitInterval ms (default true, 1000 ms). */
  autoCommit?: boolean;
  autoCommitInterval?: number;
  maxBytesPerPartition?: number;
  /**
   * Bytes per fetch answer from one leader worker, all of its partitions together (kafkajs
   * `maxBytes`). Default 4 MiB; always kept under the NATS server's max_payload.
   */
  maxBytes?: number;
  maxWaitTimeInMs?: number;
  /**
   * Bytes a fetch answer from a leader worker waits for, its partitions together, before
   * `maxWaitTimeInMs` is up (kafkajs `minBytes`). Default 1: records go out as they come.
   */
  minBytes?: number;
  maxBufferedBytes?: number;
}

export interface KafkaMessage {
  key: Buffer | null;
  value: Buffer | null;
  /**
   * Header values by key. Unlike kafkajs, a message without headers shares one frozen empty
   * object (one allocation less per message): copy it to add headers, e.g. `{ ...headers }`.
   */
  headers: Record<string, Buffer | null>;
  /** As kafkajs: a decimal string. */
  offset: string;
  /** Milliseconds since the epoch, as a decimal string (kafkajs). */
  timestamp: string;
}

export interface EachMessagePayload {
  topic: string;
  partition: number;
  message: KafkaMessage;
}

export interface EachBatchPayload {
  batch: { topic: string; partition: number; highWatermark: string; messages: KafkaMessage[] };
}

export class Skein {
  private nodePromise: Promise<SkeinNode> | null = null;
  private clientPromise: Promise<ClusterClient> | null = null;
  private users = 0;
  private counter = 0;
  readonly clientId: string;
  readonly cluster: string;
  readonly nats: NatsOptions;

  constructor(config: SkeinConfig) {
    if (!config || !config.nats) throw new SkeinError(ErrorCode.INVALID_REQUEST, "new Skein({ nats }) needs a NATS URL", { field: "nats" });
    this.clientId = (config.clientId ?? "skein").replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 40);
    this.cluster = config.cluster ?? "default";
    this.nats = typeof config.nats === "string" || Array.isArray(config.nats) ? { servers: config.nats } : config.nats;
  }

  producer(config: ProducerConfig = {}): Producer {
    return new Producer(this, config);
  }

  consumer(config: ConsumerConfig = {}): Consumer {
    return new Consumer(this, config);
  }

  admin(): Admin {
    return new Admin(this);
  }

  /** @internal one client node (1 worker) per Skein instance, shared by its producers and consumers. */
  async acquireNode(): Promise<SkeinNode> {
    this.users++;
    this.nodePromise ??= SkeinNode.start({ id: `${this.clientId}-${randomUUID().slice(0, 8)}`, cluster: this.cluster, nats: this.nats, workers: 1 });
    return this.nodePromise;
  }

  /** @internal */
  async releaseNode(): Promise<void> {
    if (--this.users > 0 || !this.nodePromise) return;
    const node = await this.nodePromise;
    this.nodePromise = null;
    await node.shutdown();
  }

  /** @internal */
  acquireClient(): Promise<ClusterClient> {
    this.clientPromise ??= ClusterClient.connect({ nats: this.nats, cluster: this.cluster, name: `skein:${this.clientId}` });
    return this.clientPromise;
  }

  /** @internal */
  async releaseClient(): Promise<void> {
    const c = await this.clientPromise?.catch(() => null);
    this.clientPromise = null;
    await c?.close();
  }

  /** @internal */
  nextAddress(kind: string, node: SkeinNode): string {
    return `${kind}/${++this.counter}@${node.id}`;
  }
}

export class Producer {
  private node: SkeinNode | null = null;
  private ref: PortRef | null = null;
  private inFlightBytes = 0;
  private waiters: Array<() => void> = [];
  private readonly bufferBytes: number;
  /** Where send() puts its frames for the actor (see FrameRing); a new one for a new actor. */
  private ring = new FrameRing();

  constructor(
    private readonly skein: Skein,
    private readonly config: ProducerConfig,
  ) {
    this.bufferBytes = config.bufferBytes ?? 32 * 1024 * 1024;
  }

  async connect(): Promise<void> {
    if (this.ref) return;
    const node = await this.skein.acquireNode();
    const address = this.skein.nextAddress("producer", node);
    const acks = this.config.acks === undefined || this.config.acks === "all" ? -1 : this.config.acks;
    try {
      await node.spawn({
        kind: "producer",
        module: bundlePath("actors.js"),
        address,
        args: {
          acks,
          idempotent: this.config.idempotent ?? true,
          lingerMs: this.config.lingerMs,
          batchBytes: this.config.batchBytes,
          requestTimeoutMs: this.config.requestTimeoutMs,
          deliveryTimeoutMs: this.config.deliveryTimeoutMs,
          maxInFlightRequests: this.config.maxInFlightRequests,
        },
      });
    } catch (e) {
      await this.skein.releaseNode();
      throw e;
    }
    this.node = node;
    this.ref = node.portRef(address);
    this.ring = new FrameRing();
  }

  /** Bytes handed to the producer actor and not yet acknowledged (bounded by bufferBytes). */
  get bufferedBytes(): number {
    return this.inFlightBytes;
  }

  /** Resolves when every message is acknowledged (per `acks`), with each partition's base offset. */
  async send(record: { topic: string; messages: OutgoingMessage[] }): Promise<SendResult[]> {
    if (!this.ref) throw new SkeinError(ErrorCode.NOT_CONNECTED, "producer is not connected: call connect() first");
    if (!record || typeof record !== "object") throw new SkeinError(ErrorCode.INVALID_REQUEST, "send({ topic, messages }) takes an object", { field: "(root)" });
    validateTopicName(record.topic);
    if (!Array.isArray(record.messages)) throw new SkeinError(ErrorCode.INVALID_REQUEST, "messages must be an array", { field: "messages" });
    const encoded = encodeFramesScratch(record.messages);
    const bytes = encoded.length;
    const full = () => this.inFlightBytes > 0 && this.inFlightBytes + bytes > this.bufferBytes;
    // Into the ring only when the ask follows at once: regions must be placed in posting order.
    const ring = this.ring;
    const frames = (full() ? null : ring.place(encoded)) ?? ownCopy(encoded);
    while (full()) await new Promise<void>((r) => this.waiters.push(r));
    this.inFlightBytes += bytes;
    try {
      const transfer = frames.buffer instanceof SharedArrayBuffer ? [] : [frames.buffer as ArrayBuffer];
      return await this.ref.ask<SendResult[]>("Send", { topic: record.topic, frames }, { timeoutMs: (this.config.deliveryTimeoutMs ?? 60_000) + 5_000, transfer });
    } catch (e) {
      // Regions posted to an actor that stopped or a worker that died may never be released:
      // start over on a new ring (the old one is never written again, so late reads are safe).
      if (e instanceof SkeinError && (e.code === ErrorCode.WORKER_LOST || e.code === ErrorCode.ACTOR_NOT_FOUND) && this.ring === ring) this.ring = new FrameRing();
      throw e;
    } finally {
      this.inFlightBytes -= bytes;
      this.waiters.shift()?.();
    }
  }

  /** kafkajs-style sendBatch: several topics in one call. */
  async sendBatch(batch: { topicMessages: Array<{ topic: string; messages: OutgoingMessage[] }> }): Promise<SendResult[]> {
    const all = await Promise.all(batch.topicMessages.map((t) => this.send(t)));
    return all.flat();
  }

  async flush(): Promise<void> {
    await this.ref?.ask("Flush", {}, { timeoutMs: (this.config.deliveryTimeoutMs ?? 60_000) + 5_000 });
  }

  async disconnect(): Promise<void> {
    if (!this.ref || !this.node) return;
    await this.flush().catch(() => undefined);
    await this.node.stop(this.ref.address);
    await this.ref.close();
    this.ref = null;
    this.node = null;
    await this.skein.releaseNode();
  }
}

export interface TopicPartitionOffset {
  topic: string;
  partition: number;
  offset?: number | string;
}

export class Consumer {
  private node: SkeinNode | null = null;
  private ref: PortRef | null = null;
  private running = false;
  private stopped: Promise<void> | null = null;
  private subscription: { topics: string[]; fromBeginning: boolean } | null = null;

  constructor(
    private readonly skein: Skein,
    private readonly config: ConsumerConfig,
  ) {}

  private readonly listeners = new Map<string, Array<(e: GroupEvent) => void>>();
  /** Next offset per partition that run()/eachMessage finished: reported on the next poll. */
  private readonly processed = new Map<string, { topic: string; partition: number; offset: number }>();

  async connect(): Promise<void> {
    if (this.ref) return;
    const node = await this.skein.acquireNode();
    this.node = node;
    this.ref = node.portRef(this.skein.nextAddress("consumer", node));
  }

  /**
   * Group events: "group.join" (generation, memberId, partitions: the new assignment),
   * "group.revoke" (given up in a rebalance, after committing), "group.fenced" (the group
   * dropped this member: partitions lost without a commit) and "group.leave" (left after
   * maxPollInterval without a poll: partitions lost without a commit).
   */
  on(event: GroupEvent["type"], listener: (e: GroupEvent) => void): () => void {
    const list = this.listeners.get(event) ?? [];
    list.push(listener);
    this.listeners.set(event, list);
    return () => this.listeners.set(event, (this.listeners.get(event) ?? []).filter((l) => l !== listener));
  }

  private groupArgs() {
    const c = this.config;
    if (c.groupId === undefined) return undefined;
    return {
      groupId: c.groupId, groupInstanceId: c.groupInstanceId, clientId: this.skein.clientId, sessionTimeoutMs: c.sessionTimeout, rebalanceTimeoutMs: c.rebalanceTimeout,
      heartbeatIntervalMs: c.heartbeatInterval, maxPollIntervalMs: c.maxPollInterval, assignors: c.assignors, autoCommit: c.autoCommit, autoCommitIntervalMs: c.autoCommitInterval,
    };
  }

  private async spawn(autoOffsetReset: "earliest" | "latest"): Promise<PortRef> {
    if (!this.ref || !this.node) throw new SkeinError(ErrorCode.NOT_CONNECTED, "consumer is not connected: call connect() first");
    const known = await this.node.list();
    if (!known.some((a) => a.address === this.ref!.address)) {
      // After a worker restart the supervisor may re-create the actor at the same moment.
      await this.node.spawn({
        kind: "consumer",
        module: bundlePath("actors.js"),
        address: this.ref.address,
        args: { autoOffsetReset, maxBytesPerPartition: this.config.maxBytesPerPartition, fetchMaxBytes: this.config.maxBytes, maxWaitMs: this.config.maxWaitTimeInMs, minBytes: this.config.minBytes, maxBufferedBytes: this.config.maxBufferedBytes, group: this.groupArgs() },
      }).catch((e) => {
        if (!/already runs/.test((e as Error).message)) throw e;
      });
    }
    return this.ref;
  }

  /** Consume every partition of these topics (without a group: all of them, here). */
  async subscribe(s: { topics?: string[]; topic?: string; fromBeginning?: boolean }): Promise<void> {
    const topics = s.topics ?? (s.topic ? [s.topic] : []);
    if (topics.length === 0) throw new SkeinError(ErrorCode.INVALID_REQUEST, "subscribe({ topics }) needs at least one topic", { field: "topics" });
    topics.forEach(validateTopicName);
    this.subscription = { topics, fromBeginning: s.fromBeginning ?? false };
    const client = await this.skein.acquireClient();
    for (const topic of topics) {
      if (!(await client.meta.getTopic(topic))) throw new SkeinError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `topic ${topic} does not exist`, { topic });
    }
    if (this.config.groupId !== undefined) {
      const ref = await this.spawn(s.fromBeginning ? "earliest" : "latest");
      await ref.ask("Subscribe", { topics });
      return;
    }
    const partitions: TopicPartitionOffset[] = [];
    for (const topic of topics) {
      const t = await client.meta.getTopic(topic);
      if (!t) throw new SkeinError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `topic ${topic} does not exist`, { topic });
      for (let p = 0; p < t.partitions; p++) partitions.push({ topic, partition: p });
    }
    const ref = await this.spawn(s.fromBeginning ? "earliest" : "latest");
    await ref.ask("Assign", { partitions });
  }

  /** Manual assignment; `offset` is the next offset to read (else the reset policy applies). */
  async assign(partitions: TopicPartitionOffset[]): Promise<void> {
    if (this.config.groupId !== undefined) throw new SkeinError(ErrorCode.INVALID_REQUEST, "assign() is for consumers without a groupId; group members subscribe()", { field: "groupId" });
    const ref = await this.spawn("earliest");
    await ref.ask("Assign", { partitions: partitions.map((p) => ({ topic: p.topic, partition: p.partition, offset: p.offset === undefined ? undefined : Number(p.offset) })) });
  }

  async seek(p: { topic: string; partition: number; offset: number | string }): Promise<void> {
    const ref = await this.spawn("earliest");
    await ref.ask("Seek", { topic: p.topic, partition: p.partition, offset: Number(p.offset) });
  }

  async seekToTimestamp(p: { topic: string; partition: number; timestamp: number }): Promise<void> {
    const ref = await this.spawn("earliest");
    await ref.ask("SeekTimestamp", p);
  }

  async pause(partitions: Array<{ topic: string; partitions?: number[]; partition?: number }>): Promise<void> {
    await this.ref?.ask("Pause", { partitions: await this.expand(partitions) });
  }

  async resume(partitions: Array<{ topic: string; partitions?: number[]; partition?: number }>): Promise<void> {
    await this.ref?.ask("Resume", { partitions: await this.expand(partitions) });
  }

  private async expand(list: Array<{ topic: string; partitions?: number[]; partition?: number }>) {
    const out: Array<{ topic: string; partition: number }> = [];
    for (const t of list) {
      if (t.partition !== undefined) out.push({ topic: t.topic, partition: t.partition });
      else if (t.partitions) for (const p of t.partitions) out.push({ topic: t.topic, partition: p });
      else {
        const topic = await (await this.skein.acquireClient()).meta.getTopic(t.topic);
        for (let p = 0; p < (topic?.partitions ?? 0); p++) out.push({ topic: t.topic, partition: p });
      }
    }
    return out;
  }

  /** Positions (next offset) per assigned partition. */
  async positions(): Promise<Array<{ topic: string; partition: number; offset: number; highWatermark: number }>> {
    return (await this.ref?.ask("Positions", {})) ?? [];
  }

  /**
   * Polls once: decoded messages per partition chunk. Calling poll again means everything it
   * returned before was processed (that is what a group commits); use markProcessed() for
   * finer control.
   */
  async poll(maxWaitMs = 1_000): Promise<EachBatchPayload[]> {
    const batches: EachBatchPayload[] = [];
    const next = new Map<string, number>();
    for (const c of await this.pollChunks(maxWaitMs)) {
      const decoded = await this.decodeInOrder(c, next);
      if (decoded) batches.push(decoded.payload);
    }
    if (!this.inRun) {
      // A plain poll() caller has "processed" what it got once it polls again.
      for (const b of batches) {
        const last = b.batch.messages[b.batch.messages.length - 1];
        this.markProcessed({ topic: b.batch.topic, partition: b.batch.partition, offset: Number(last.offset) + 1 });
      }
    }
    return batches;
  }

  /** Per partition: the offset whose batch last failed its CRC, and how many times in a row. */
  private corrupt = new Map<string, { offset: number; times: number }>();

  /**
   * Decodes a fetched chunk (CRC-checked). A chunk that fails its CRC was damaged on its way
   * here or on the leader's disk, and the consumer's position has already moved past it: the
   * partition is fetched again from `from` (the first offset not handed to the application)
   * and null is returned, so nothing is skipped. The same offset failing
   * CORRUPT_REFETCHES times in a row is not the wire: the CORRUPT_MESSAGE error is thrown.
   */
  private async decodeOrRefetch(chunk: PolledChunk, from: number): Promise<EachBatchPayload | null> {
    const k = `${chunk.topic}/${chunk.partition}`;
    try {
      const b = decodeChunk(chunk);
      this.corrupt.delete(k);
      return b;
    } catch (e) {
      if ((e as SkeinError).code !== ErrorCode.CORRUPT_MESSAGE) throw e;
      const seen = this.corrupt.get(k);
      const times = seen?.offset === from ? seen.times + 1 : 1;
      if (times >= CORRUPT_REFETCHES) {
        this.corrupt.delete(k);
        throw e;
      }
      this.corrupt.set(k, { offset: from, times });
      // No longer ours (revoked meanwhile): its new owner reads it from the committed offset.
      await this.seek({ topic: chunk.topic, partition: chunk.partition, offset: from }).catch(() => undefined);
      return null;
    }
  }

  /**
   * Decodes one chunk (or slice) of a poll, in order with the ones before it. `next` holds
   * per partition the first offset this poll has not handed out yet. A partition whose chunk
   * failed its CRC is fetched again from there (decodeOrRefetch) and its later chunks in the
   * same poll are dropped (null): they come again after the refetched records, never ahead.
   * Null also for a chunk without messages at or after its fromOffset.
   */
  private async decodeInOrder(chunk: PolledChunk, next: Map<string, number>): Promise<{ payload: EachBatchPayload; end: number } | null> {
    const k = `${chunk.topic}/${chunk.partition}`;
    const from = next.get(k) ?? chunk.fromOffset;
    if (from < 0) return null;
    const payload = await this.decodeOrRefetch(chunk, from);
    if (!payload) {
      next.set(k, -1);
      return null;
    }
    const messages = payload.batch.messages;
    if (messages.length === 0) return null;
    const end = Number(messages[messages.length - 1].offset) + 1;
    next.set(k, end);
    return { payload, end };
  }

  /** Polls once and tells the group event listeners; the chunks are not decoded yet. */
  private async pollChunks(maxWaitMs: number): Promise<PolledChunk[]> {
    if (!this.ref) throw new SkeinError(ErrorCode.NOT_CONNECTED, "consumer is not connected");
    const processed = [...this.processed.values()];
    this.processed.clear();
    let r: PollResult;
    try {
      r = await this.ref.ask<PollResult>("Poll", { maxWaitMs, processed }, { timeoutMs: maxWaitMs + 10_000 });
    } catch (e) {
      if ((e as SkeinError).code === ErrorCode.WORKER_LOST || (e as SkeinError).code === ErrorCode.ACTOR_NOT_FOUND) await this.recover();
      throw e;
    }
    for (const e of r.events) for (const l of this.listeners.get(e.type) ?? []) l(e);
    return r.chunks;
  }

  private inRun = false;

  /**
   * Our worker died and the runtime re-created the consumer actor empty: subscribe again
   * (a group member rejoins as a new member; its old membership expires with its session).
   */
  private async recover(): Promise<void> {
    const sub = this.subscription;
    if (!sub || !this.ref) return;
    await this.subscribe({ topics: sub.topics, fromBeginning: sub.fromBeginning }).catch((e) => {
      console.warn(`skein consumer: could not subscribe again after the worker restarted: ${(e as Error).message}`);
    });
  }

  /** Records that everything before `offset` in this partition is processed (committed by the group). */
  markProcessed(p: { topic: string; partition: number; offset: number }): void {
    const k = `${p.topic}/${p.partition}`;
    const prev = this.processed.get(k);
    if (!prev || prev.offset < p.offset) this.processed.set(k, p);
  }

  /**
   * Commits the given offsets (next to read), each with optional `metadata` (an application
   * string up to 4096 characters, returned by committed() and describeGroups), or everything
   * processed so far.
   */
  async commitOffsets(offsets?: Array<{ topic: string; partition: number; offset: number | string; metadata?: string }>): Promise<void> {
    if (!this.ref) throw new SkeinError(ErrorCode.NOT_CONNECTED, "consumer is not connected");
    this.requireGroupId("commitOffsets()");
    await this.ref.ask("Commit", offsets ? { offsets: offsets.map((o) => ({ topic: o.topic, partition: o.partition, offset: Number(o.offset), metadata: o.metadata })) } : {}, { timeoutMs: 15_000 });
  }

  /**
   * The group's committed offsets (next offset to read; -1 when nothing is committed) with
   * their metadata, for these partitions or for every partition the group has committed.
   */
  async committed(partitions?: Array<{ topic: string; partition: number }>): Promise<CommittedOffset[]> {
    const groupId = this.requireGroupId("committed()");
    const client = await this.skein.acquireClient();
    return client.fetchCommitted(groupId, partitions);
  }

  private requireGroupId(what: string): string {
    if (this.config.groupId === undefined) throw new SkeinError(ErrorCode.INVALID_REQUEST, `${what} needs a consumer with a groupId`, { field: "groupId" });
    return this.config.groupId;
  }

  async run(handlers: { eachMessage?: (p: EachMessagePayload) => Promise<void> | void; eachBatch?: (p: EachBatchPayload) => Promise<void> | void }): Promise<void> {
    if (!handlers?.eachMessage && !handlers?.eachBatch) throw new SkeinError(ErrorCode.INVALID_REQUEST, "run() needs eachMessage or eachBatch", { field: "eachMessage" });
    if (this.running) throw new SkeinError(ErrorCode.INVALID_REQUEST, "run() is already running");
    this.running = true;
    this.inRun = true;
    this.stopped = (async () => {
      while (this.running) {
        let chunks: PolledChunk[];
        try {
          chunks = await this.pollChunks(500);
        } catch (e) {
          if (!this.running || !this.ref) break;
          if ((e as SkeinError).retriable) {
            await new Promise((r) => setTimeout(r, 100));
            continue;
          }
          throw e;
        }
        // Decoded slice by slice, each just before its handler: see EACH_BATCH_MAX_BYTES.
        const slices = chunks.flatMap((c) => splitChunk(c.data, EACH_BATCH_MAX_BYTES).map((data) => ({ ...c, data })));
        const next = new Map<string, number>();
        for (const slice of slices) {
          if (!this.running) break;
          const decoded = await this.decodeInOrder(slice, next);
          if (!decoded) continue;
          const { payload: b, end } = decoded;
          const { topic, partition } = b.batch;
          if (handlers.eachBatch) {
            await handlers.eachBatch(b);
            this.markProcessed({ topic, partition, offset: end });
          } else {
            // What completed is marked once per batch (it is read only by the next poll), also
            // when a handler throws: not a key string and an object per message.
            const messages = b.batch.messages;
            let done = 0;
            try {
              for (; done < messages.length; done++) await handlers.eachMessage!({ topic, partition, message: messages[done] });
            } finally {
              if (done > 0) this.markProcessed({ topic, partition, offset: Number(messages[done - 1].offset) + 1 });
            }
          }
        }
      }
    })();
    this.stopped.catch((e) => console.error("skein consumer: run() stopped:", e));
  }

  /** Async iteration over messages: `for await (const m of consumer) {}`. */
  async *[Symbol.asyncIterator](): AsyncGenerator<EachMessagePayload> {
    while (this.ref) {
      for (const b of await this.poll(500)) for (const message of b.batch.messages) yield { topic: b.batch.topic, partition: b.batch.partition, message };
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.stopped?.catch(() => undefined);
    this.inRun = false;
  }

  async disconnect(): Promise<void> {
    await this.stop();
    if (!this.ref || !this.node) return;
    if (this.config.groupId !== undefined) {
      // Report what was processed, then commit it and leave the group.
      await this.ref.ask("Poll", { maxWaitMs: 0, processed: [...this.processed.values()] }, { timeoutMs: 10_000 }).catch(() => undefined);
      this.processed.clear();
      await this.ref.ask("Leave", {}, { timeoutMs: 20_000 }).catch(() => undefined);
    }
    await this.node.stop(this.ref.address);
    await this.ref.close();
    this.ref = null;
    this.node = null;
    await this.skein.releaseNode();
    await this.skein.releaseClient();
  }
}

/** A batch failing its CRC this many times in a row at one offset is reported, not fetched again. */
const CORRUPT_REFETCHES = 3;

function decodeChunk(c: PolledChunk): EachBatchPayload {
  return { batch: { topic: c.topic, partition: c.partition, highWatermark: String(c.highWatermark), messages: decodeChunkMessages(c.data, c.fromOffset) } };
}

export class Admin {
  private client: ClusterClient | null = null;

  constructor(private readonly skein: Skein) {}

  async connect(): Promise<void> {
    this.client = await this.skein.acquireClient();
  }

  private get c(): ClusterClient {
    if (!this.client) throw new SkeinError(ErrorCode.NOT_CONNECTED, "admin is not connected: call connect() first");
    return this.client;
  }

  /** Returns true when every topic was created (false when some existed), like kafkajs. */
  async createTopics(o: { topics: Array<{ topic: string; numPartitions?: number; replicationFactor?: number; configEntries?: Array<{ name: string; value: string }> }>; waitForLeaders?: boolean }): Promise<boolean> {
    let all = true;
    for (const t of o.topics) {
      const configs = Object.fromEntries((t.configEntries ?? []).map((e) => [e.name, e.value]));
      try {
        await this.c.createTopic(t.topic, t.numPartitions ?? 1, t.replicationFactor ?? 1, configs);
      } catch (e) {
        if ((e as SkeinError).code === ErrorCode.TOPIC_ALREADY_EXISTS) {
          all = false;
          continue;
        }
        throw e;
      }
      if (o.waitForLeaders ?? true) await this.c.waitForLeaders(t.topic);
    }
    return all;
  }

  async deleteTopics(o: { topics: string[] }): Promise<void> {
    for (const t of o.topics) await this.c.deleteTopic(t);
  }

  async listTopics(): Promise<string[]> {
    return (await this.c.listTopics()).map((t) => t.name);
  }

  async describeTopics(o: { topics: string[] }) {
    return Promise.all(o.topics.map((t) => this.c.describeTopic(t)));
  }

  /** kafkajs name for describeTopics. */
  async fetchTopicMetadata(o: { topics: string[] }) {
    const topics = await this.describeTopics(o);
    return { topics: topics.map((t) => ({ name: t.topic, partitions: t.partitions.map((p) => ({ partitionId: p.partition, leader: p.leader, replicas: p.replicas, isr: p.isr })) })) };
  }

  async describeCluster() {
    const s = await this.c.status();
    return { clusterId: s.cluster, controller: s.controller?.broker ?? null, brokers: s.brokers.map((b) => ({ nodeId: b.broker, host: b.host, port: b.kafkaPort ?? 0 })) };
  }

  /** Earliest, latest (high watermark) and optionally by timestamp, per partition. */
  async fetchTopicOffsets(topic: string) {
    let d = await this.c.describeTopic(topic);
    if (d.partitions.some((p) => p.highWatermark === null)) {
      // A partition between leaders has no HW to report yet: wait until every leader leads.
      await this.c.waitForLeaders(topic, 10_000);
      d = await this.c.describeTopic(topic);
    }
    return d.partitions.map((p) => ({ partition: p.partition, offset: String(p.highWatermark ?? 0), high: String(p.highWatermark ?? 0), low: String(p.logStartOffset ?? 0) }));
  }

  async fetchTopicOffsetsByTimestamp(topic: string, timestamp: number) {
    const d = await this.c.describeTopic(topic);
    return Promise.all(
      d.partitions.map(async (p) => {
        const r = await this.c.system.ask<{ offset: number }>(`replica/${topic}/${p.partition}@${p.leader}`, "ListOffset", { timestamp });
        return { partition: p.partition, offset: String(r.offset) };
      }),
    );
  }

  /**
   * kafkajs's `alterConfigs` for topics (`type: "topic"` or kafkajs's ConfigResourceTypes.TOPIC,
   * 2). Unlike Kafka's AlterConfigs, configs not named keep their values (IncrementalAlterConfigs
   * SET); a null value returns one to its default. Replicas apply the change at once: retention,
   * segment size and age, message size, flushing, min.insync.replicas, cleanup policy.
   */
  async alterConfigs(o: { validateOnly?: boolean; resources: Array<{ type: "topic" | 2; name: string; configEntries: Array<{ name: string; value: string | null }> }> }): Promise<Array<{ name: string; configs: Record<string, unknown> }>> {
    const out: Array<{ name: string; configs: Record<string, unknown> }> = [];
    for (const r of o.resources) {
      if (r.type !== "topic" && r.type !== 2) throw new SkeinError(ErrorCode.INVALID_REQUEST, `alterConfigs: only topic resources (type "topic" or 2) are supported, got ${String(r.type)}`, { field: "type" });
      out.push(await this.c.alterTopicConfigs(r.name, Object.fromEntries(r.configEntries.map((e) => [e.name, e.value])), o.validateOnly ?? false));
    }
    return out;
  }

  async createPartitions(o: { topicPartitions: Array<{ topic: string; count: number }> }): Promise<void> {
    for (const t of o.topicPartitions) {
      await this.c.createPartitions(t.topic, t.count);
      await this.c.waitForLeaders(t.topic);
    }
  }

  // Groups ----------------------------------------------------------------------------------------

  /** Every consumer group (Skein's and kafkajs clients' through the gateway). */
  async listGroups(): Promise<{ groups: GroupListing[] }> {
    return { groups: await this.c.listGroups() };
  }

  /**
   * State, generation, members with their partitions, and committed offsets with metadata and
   * lag (high watermark − committed) per partition. An unknown group is described as "Dead".
   */
  async describeGroups(groupIds: string[]): Promise<{ groups: GroupDescription[] }> {
    return { groups: await Promise.all(groupIds.map((g) => this.c.describeGroup(g))) };
  }

  /**
   * Deletes empty groups and their committed offsets. Rejects with the first refusal:
   * NON_EMPTY_GROUP (it has members) or GROUP_ID_NOT_FOUND; groups before it are deleted.
   */
  async deleteGroups(groupIds: string[]): Promise<Array<{ groupId: string }>> {
    const out: Array<{ groupId: string }> = [];
    for (const groupId of groupIds) {
      await this.c.deleteGroup(groupId);
      out.push({ groupId });
    }
    return out;
  }

  /**
   * Sets the committed offsets of an EMPTY group for every partition of `topic`: to `offset`,
   * to the first record at or after `timestamp` (ms), or to the earliest (`earliest: true`) or
   * latest (default, as kafkajs) offset. A group with members refuses with NON_EMPTY_GROUP.
   */
  async resetOffsets(o: { groupId: string; topic: string; earliest?: boolean; timestamp?: number; offset?: number }): Promise<Array<{ topic: string; partition: number; offset: number }>> {
    const to = o.offset !== undefined ? { offset: o.offset } : o.timestamp !== undefined ? { timestamp: o.timestamp } : o.earliest ? { earliest: true as const } : { latest: true as const };
    return this.c.resetOffsets(o.groupId, o.topic, to);
  }

  /** kafkajs shape: committed offsets (strings, "-1" when none) and metadata per topic. */
  async fetchOffsets(o: { groupId: string; topics?: string[] }): Promise<Array<{ topic: string; partitions: Array<{ partition: number; offset: string; metadata: string | null }> }>> {
    const offsets = await this.c.fetchCommitted(o.groupId);
    const topics = o.topics ?? [...new Set(offsets.map((x) => x.topic))].sort();
    return topics.map((topic) => ({
      topic,
      partitions: offsets
        .filter((x) => x.topic === topic)
        .sort((a, b) => a.partition - b.partition)
        .map((x) => ({ partition: x.partition, offset: String(x.offset), metadata: x.metadata || null })),
    }));
  }

  async disconnect(): Promise<void> {
    this.client = null;
    await this.skein.releaseClient();
  }
}

export type { CommittedOffset };
export type GroupListing = Awaited<ReturnType<ClusterClient["listGroups"]>>[number];
export type GroupDescription = Awaited<ReturnType<ClusterClient["describeGroup"]>>;
