// A broker process: a runtime node plus the broker agent (this file, on the main thread).
// The agent heartbeats into the live KV bucket, runs a controller candidate, and follows the
// partition states in the KV: it spawns a replica actor for every partition assigned here,
// tells it each new state, and stops it (and removes its data) when the topic is deleted.

import { rm } from "node:fs/promises";
import { hostname } from "node:os";
import { SkeinNode } from "../../runtime/node.js";
import { bundlePath } from "../../runtime/paths.js";
import type { NatsOptions } from "../../runtime/types.js";
import { controllerAddress, fetchServerAddress, fetcherAddress, produceServerAddress, partitionKey, replicaAddress, type PartitionState, type TopicRecord } from "../../protocol/cluster.js";
import { MetadataStore, whileJetStreamStarts } from "./metadata.js";
import { unescapeToken } from "../../protocol/address.js";
import { KafkaGateway } from "../gateway/gateway.js";
import type { KafkaGatewayOptions } from "../gateway/types.js";
import { OFFSETS_TOPIC, coordinatorAddress } from "../../protocol/groups.js";
import { partitionDir } from "./replica.js";

export interface BrokerOptions {
  /** Broker id: a small non-negative integer, unique in the cluster. */
  id: number;
  cluster?: string;
  nats: NatsOptions;
  /** Directory holding this broker's partition logs. */
  dataDir: string;
  /** Worker threads. Default: number of cores. */
  workers?: number;
  /** Heartbeat period, ms. Default 1000. */
  heartbeatMs?: number;
  /** Broker session timeout = TTL of heartbeats and of the controller lease, ms. Default 3000. */
  sessionTimeoutMs?: number;
  /** A follower not caught up for this long leaves the ISR, ms. Default 5000. */
  replicaLagTimeMaxMs?: number;
  /** Kafka protocol gateway of this broker (port, host, limits); none when absent. */
  kafka?: Omit<KafkaGatewayOptions, "brokerId" | "nats" | "cluster">;
  /** Partitions of __consumer_offsets if this broker's controller creates it. Default 50. */
  offsetsTopicPartitions?: number;
  /** Accept transport fault injection (runtime/faults.ts). Default false. */
  allowFaults?: boolean;
}

interface HostedReplica {
  topic: string;
  topicId: string;
  address: string;
}

export class Broker {
  private readonly replicas = new Map<string, HostedReplica>();
  private readonly chains = new Map<string, Promise<void>>();
  private readonly topics = new Map<string, TopicRecord>();
  private readonly coordinators = new Set<string>();
  private stopping = false;
  private heartbeatTimer: ReturnType<typeof setInterval> | null = null;
  private stopWatch: (() => void) | null = null;
  private stopTopicWatch: (() => void) | null = null;
  private gateway: KafkaGateway | null = null;
  private readonly startedAt = Date.now();
  private readonly actorsModule = bundlePath("actors.js");

  private constructor(
    readonly options: BrokerOptions,
    readonly node: SkeinNode,
    readonly meta: MetadataStore,
  ) {}

  static async start(options: BrokerOptions): Promise<Broker> {
    const node = await SkeinNode.start({ id: String(options.id), cluster: options.cluster, nats: options.nats, workers: options.workers, allowFaults: options.allowFaults });
    let started: Broker | null = null;
    try {
      const meta = await MetadataStore.open(node.nats, node.cluster, { liveTtlMs: options.sessionTimeoutMs ?? 3_000 });
      const broker = (started = new Broker(options, node, meta));
      await whileJetStreamStarts(node.cluster, () => broker.heartbeat());
      broker.heartbeatTimer = setInterval(() => void broker.heartbeat().catch((e) => console.warn(`skein: heartbeat failed: ${(e as Error).message}`)), options.heartbeatMs ?? 1_000);
      await node.spawn({
        kind: "controller",
        module: broker.actorsModule,
        address: controllerAddress(options.id),
        args: { broker: options.id, offsetsTopicPartitions: options.offsetsTopicPartitions },
      });
      // Replication fetch sessions: a fetch server and a fetcher on every worker.
      for (let w = 0; w < node.workerCount; w++) {
        await node.spawn({ kind: "fetch-server", module: broker.actorsModule, address: fetchServerAddress(options.id, w, node.workerCount), args: { broker: options.id } });
        await node.spawn({ kind: "fetcher", module: broker.actorsModule, address: fetcherAddress(options.id, w, node.workerCount), args: { broker: options.id, worker: w } });
        // Produce fan-in: one ProduceMany per producer and leader worker (produce-server.ts).
        await node.spawn({ kind: "produce-server", module: broker.actorsModule, address: produceServerAddress(options.id, w, node.workerCount), args: { broker: options.id, workers: node.workerCount } });
      }
      broker.stopWatch = await meta.watchPartitions((key, state, revision) => broker.enqueue(key, () => broker.onPartitionState(key, state, revision)));
      // Altered topic configs reach the replicas hosted here (a replica started later reads them itself).
      broker.stopTopicWatch = await meta.watchTopics((record, revision) => broker.onTopicRecord(record, revision));
      if (options.kafka) {
        broker.gateway = await KafkaGateway.start({ ...options.kafka, brokerId: options.id, nats: options.nats, cluster: node.cluster });
        await broker.heartbeat(); // advertise the gateway port now rather than at the next beat
      }
      return broker;
    } catch (e) {
      // Half-started: nothing may keep beating or watching for a broker that is not there.
      if (started?.heartbeatTimer) clearInterval(started.heartbeatTimer);
      started?.stopWatch?.();
      started?.stopTopicWatch?.();
      await started?.gateway?.close().catch(() => undefined);
      await node.shutdown();
      throw e;
    }
  }

  get id(): number {
    return this.options.id;
  }

  /** Port of this broker's Kafka gateway, undefined without one. */
  get kafkaPort(): number | undefined {
    return this.gateway?.port;
  }

  private async heartbeat(): Promise<void> {
    await this.meta.heartbeat({
      broker: this.options.id,
      pid: process.pid,
      host: hostname(),
      workers: this.node.workerCount,
      startedAt: this.startedAt,
      heartbeatAt: Date.now(),
      kafkaPort: this.gateway?.port,
    });
  }

  /** Work on one partition runs in order; different partitions proceed independently. */
  private enqueue(key: string, job: () => Promise<void>): void {
    const prev = this.chains.get(key) ?? Promise.resolve();
    const next = prev.then(job).catch((e) => {
      // A failed step (e.g. a replica spawn timing out under load) would otherwise wait for a
      // KV change that may never come: apply the partition's current state again shortly.
      console.error(`skein: broker ${this.id}: ${key}: ${(e as Error).message}; retrying in 1 s`);
      if (!this.stopping) setTimeout(() => this.enqueue(key, () => this.reapply(key)), 1_000).unref();
    });
    this.chains.set(key, next);
    void next.then(() => {
      if (this.chains.get(key) === next) this.chains.delete(key);
    });
  }

  /** Re-reads a partition's state from the KV and applies it (after a failed step). */
  private async reapply(key: string): Promise<void> {
    const m = /^partition\.(.+)\.(\d+)$/.exec(key);
    if (!m || this.stopping) return;
    const current = await this.meta.getPartition(unescapeToken(m[1]), Number(m[2]));
    await this.onPartitionState(key, current?.value ?? null, current?.revision ?? 0);
  }

  /** A topic record was written (created, grown or its configs altered): its replicas here get its configs. */
  private onTopicRecord(record: TopicRecord, revision: number): void {
    if (this.topics.has(record.name)) this.topics.set(record.name, record);
    for (const r of this.replicas.values()) {
      if (r.topic === record.name && r.topicId === record.id) this.node.tell(r.address, "Configure", { topicId: record.id, configs: record.configs, revision });
    }
  }

  private async onPartitionState(key: string, state: PartitionState | null, revision: number): Promise<void> {
    const hosted = this.replicas.get(key);
    if (state === null || (hosted && hosted.topicId !== state.topicId) || (state && !state.replicas.includes(this.id))) {
      if (hosted) await this.removeReplica(key, hosted, state === null || hosted.topicId !== state?.topicId);
      if (!state || !state.replicas.includes(this.id)) return;
    }
    if (!this.replicas.has(key)) {
      const topic = await this.topicRecord(state.topic, state.topicId);
      if (!topic) return; // deleted meanwhile
      const address = replicaAddress(state.topic, state.partition, this.id);
      await this.node.spawn({
        kind: "replica",
        module: this.actorsModule,
        address,
        args: {
          topic: state.topic,
          topicId: state.topicId,
          partition: state.partition,
          broker: this.id,
          dataDir: this.options.dataDir,
          configs: topic.configs,
          replicaLagTimeMaxMs: this.options.replicaLagTimeMaxMs ?? 5_000,
          workers: this.node.workerCount,
        },
      });
      this.replicas.set(key, { topic: state.topic, topicId: state.topicId, address });
      // A new replica reads its state from the KV when it starts.
      if (state.topic === OFFSETS_TOPIC) await this.followCoordinator(state);
      return;
    }
    this.node.tell(this.replicas.get(key)!.address, "Become", { ...state, revision });
    if (state.topic === OFFSETS_TOPIC) await this.followCoordinator(state);
  }

  /** Runs the group coordinator of a __consumer_offsets partition where its leader is. */
  private async followCoordinator(state: PartitionState): Promise<void> {
    const address = coordinatorAddress(state.partition, this.id);
    const running = this.coordinators.has(address);
    if (state.leader !== this.id) {
      if (running) {
        this.coordinators.delete(address);
        await this.node.stop(address);
      }
      return;
    }
    if (running) return;
    const topic = await this.topicRecord(state.topic, state.topicId);
    if (!topic) return;
    this.coordinators.add(address);
    await this.node.spawn({
      kind: "group-coordinator",
      module: this.actorsModule,
      address,
      args: { broker: this.id, partition: state.partition, offsetsPartitions: topic.partitions },
    }).catch((e) => {
      this.coordinators.delete(address);
      console.warn(`skein: broker ${this.id}: group coordinator ${address} did not start (${(e as Error).message}); retrying in 1 s`);
      const key = partitionKey(state.topic, state.partition);
      setTimeout(() => this.enqueue(key, async () => {
        const fresh = await this.meta.getPartition(state.topic, state.partition);
        if (fresh && this.replicas.has(key)) await this.followCoordinator(fresh.value);
      }), 1_000).unref();
    });
  }

  private async removeReplica(key: string, hosted: HostedReplica, deleteData: boolean): Promise<void> {
    this.replicas.delete(key);
    const m0 = /^replica\/__consumer_offsets\/(\d+)@\d+$/.exec(hosted.address);
    if (m0 && this.coordinators.delete(coordinatorAddress(Number(m0[1]), this.id))) await this.node.stop(coordinatorAddress(Number(m0[1]), this.id));
    await this.node.stop(hosted.address);
    if (!deleteData) return;
    const m = /^replica\/(.+)\/(\d+)@\d+$/.exec(hosted.address);
    if (m) await rm(partitionDir(this.options.dataDir, m[1], Number(m[2])), { recursive: true, force: true });
  }

  private async topicRecord(name: string, id: string): Promise<TopicRecord | null> {
    const cached = this.topics.get(name);
    if (cached?.id === id) return cached;
    const t = await this.meta.getTopic(name);
    if (!t || t.id !== id) return null;
    this.topics.set(name, t);
    return t;
  }

  /** Leaves the cluster: stops heartbeats (so the controller moves leadership), then the node. */
  async shutdown(): Promise<void> {
    this.stopping = true;
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    await this.gateway?.close().catch((e) => console.warn(`skein: closing the Kafka gateway: ${(e as Error).message}`));
    this.stopWatch?.();
    this.stopTopicWatch?.();
    await this.meta.removeBroker(this.id).catch(() => undefined);
    await Promise.allSettled([...this.chains.values()]);
    await this.node.shutdown();
  }
}
