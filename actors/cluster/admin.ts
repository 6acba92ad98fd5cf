// ClusterClient: what a tool or an application needs to talk to a Skein cluster without
// hosting actors: find the controller, create/describe/delete topics, route produce and fetch
// requests to partition leaders (refreshing metadata and retrying on leader changes).

import { ActorSystem } from "../../runtime/system.js";
import type { NatsOptions } from "../../runtime/types.js";
import { ErrorCode, SkeinError, isSkeinError } from "../../protocol/errors.js";
import {
  controllerAddress,
  replicaAddress,
  validateTopicName,
  type BrokerRegistration,
  type FetchResult,
  type PartitionState,
  type ProduceResult,
  type ReplicaDescription,
  type TopicRecord,
} from "../../protocol/cluster.js";
import { MetadataStore } from "./metadata.js";
import { COORDINATOR_RETRY, findCoordinator } from "../groups/discovery.js";
import { ConsumerAssignment, OFFSETS_TOPIC, coordinatorAddress, fromBase64Json, type CommittedOffset, type GroupDescription } from "../../protocol/groups.js";

export interface ClusterClientOptions {
  nats: NatsOptions;
  cluster?: string;
  name?: string;
}

export interface PartitionDescription {
  partition: number;
  leader: number;
  replicas: number[];
  isr: number[];
  leaderEpoch: number;
  highWatermark: number | null;
  logStartOffset: number | null;
  logEndOffset: number | null;
}

export interface TopicDescription {
  topic: string;
  id: string;
  partitions: PartitionDescription[];
  configs: TopicRecord["configs"];
  replicationFactor: number;
}

export interface ClusterStatus {
  cluster: string;
  controller: { broker: number; epoch: number } | null;
  brokers: BrokerRegistration[];
}

const RETRIABLE_ROUTING: ReadonlySet<string> = new Set([
  ErrorCode.NOT_LEADER_OR_FOLLOWER,
  ErrorCode.LEADER_NOT_AVAILABLE,
  ErrorCode.ACTOR_NOT_FOUND,
  ErrorCode.NOT_CONTROLLER,
  ErrorCode.FENCED_LEADER_EPOCH,
  ErrorCode.UNKNOWN_LEADER_EPOCH,
]);

export class ClusterClient {
  private readonly leaders = new Map<string, PartitionState>();

  private constructor(
    readonly system: ActorSystem,
    readonly meta: MetadataStore,
    readonly cluster: string,
  ) {}

  static async connect(options: ClusterClientOptions): Promise<ClusterClient> {
    const cluster = options.cluster ?? "default";
    const system = await ActorSystem.connect({ nats: options.nats, cluster, name: options.name ?? "skein:admin" });
    try {
      const meta = await MetadataStore.open(system.nc, cluster);
      return new ClusterClient(system, meta, cluster);
    } catch (e) {
      await system.close();
      throw e;
    }
  }

  async close(): Promise<void> {
    await this.system.close();
  }

  // Controller and topics ----------------------------------------------------------------------

  /** Asks the active controller, following lease changes until `timeoutMs`. */
  async askController<T>(type: string, body: unknown, timeoutMs = 15_000): Promise<T> {
    return this.retrying(timeoutMs, `controller ${type}`, async () => {
      const lease = await this.meta.getLease();
      if (!lease) throw new SkeinError(ErrorCode.NOT_CONTROLLER, "no active controller (are any brokers running?)");
      return this.system.ask<T>(controllerAddress(lease.value.broker), type, body, { timeoutMs: Math.min(timeoutMs, 10_000) });
    });
  }

  createTopic(name: string, partitions: number, replicationFactor: number, configs: Record<string, unknown> = {}) {
    return this.askController<{ name: string; assignment: number[][] }>("CreateTopic", { name, partitions, replicationFactor, configs });
  }

  deleteTopic(name: string) {
    return this.askController<{ name: string; partitions: number }>("DeleteTopic", { name });
  }

  /** Sets (null: resets to the default) the named configs of a topic; the others keep their values. */
  alterTopicConfigs(name: string, configs: Record<string, unknown>, validateOnly = false) {
    return this.askController<{ name: string; configs: TopicRecord["configs"] }>("AlterTopicConfigs", { name, configs, validateOnly });
  }

  createPartitions(name: string, totalCount: number) {
    return this.askController<{ name: string; assignment: number[][] }>("CreatePartitions", { name, totalCount });
  }

  initProducerId() {
    return this.askController<{ producerId: number; producerEpoch: number }>("InitProducerId", {});
  }

  listTopics(): Promise<TopicRecord[]> {
    return this.meta.listTopics();
  }

  async describeTopic(name: string): Promise<TopicDescription> {
    validateTopicName(name);
    const topic = await this.meta.getTopic(name);
    if (!topic) throw new SkeinError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `topic ${name} does not exist`, { topic: name });
    const states = await this.meta.listPartitions(name);
    const partitions = await Promise.all(
      states.map(async ({ value: p }) => {
        const replica = p.leader >= 0 ? await this.describeReplica(name, p.partition, p.leader).catch(() => null) : null;
        // Only the replica leading at the KV's epoch speaks for the partition: one that has not
        // taken the leadership yet reports a follower's HW and log end (nulls until it has).
        const d = replica?.role === "leader" && replica.leaderEpoch === p.leaderEpoch ? replica : null;
        return {
          partition: p.partition,
          leader: p.leader,
          replicas: p.replicas,
          isr: p.isr,
          leaderEpoch: p.leaderEpoch,
          highWatermark: d?.highWatermark ?? null,
          logStartOffset: d?.logStartOffset ?? null,
          logEndOffset: d?.logEndOffset ?? null,
        };
      }),
    );
    return { topic: name, id: topic.id, partitions, configs: topic.configs, replicationFactor: topic.replicationFactor };
  }

  describeReplica(topic: string, partition: number, broker: number): Promise<ReplicaDescription> {
    return this.system.ask<ReplicaDescription>(replicaAddress(topic, partition, broker), "Describe", {}, { timeoutMs: 3_000 });
  }

  async status(): Promise<ClusterStatus> {
    const lease = await this.meta.getLease();
    const brokers = (await this.meta.listBrokers()).map((b) => b.value);
    let controller: ClusterStatus["controller"] = null;
    if (lease) {
      const s = await this.system
        .ask<{ active: boolean; epoch: number }>(controllerAddress(lease.value.broker), "Status", {}, { timeoutMs: 3_000 })
        .catch(() => null);
      controller = { broker: lease.value.broker, epoch: s?.active ? s.epoch : -1 };
    }
    return { cluster: this.cluster, controller, brokers };
  }

  /** Resolves when every partition of `topic` has a leader that answers as leader. */
  async waitForLeaders(topic: string, timeoutMs = 20_000): Promise<PartitionState[]> {
    return this.retrying(timeoutMs, `leaders of ${topic}`, async () => {
      const states = (await this.meta.listPartitions(topic)).map((s) => s.value);
      if (states.length === 0) throw new SkeinError(ErrorCode.LEADER_NOT_AVAILABLE, `topic ${topic} has no partitions yet`, { topic });
      for (const p of states) {
        if (p.leader < 0) throw new SkeinError(ErrorCode.LEADER_NOT_AVAILABLE, `${topic}/${p.partition} has no leader`, { topic, partition: p.partition });
        const d = await this.describeReplica(topic, p.partition, p.leader);
        if (d.role !== "leader" || d.leaderEpoch !== p.leaderEpoch) {
          throw new SkeinError(ErrorCode.LEADER_NOT_AVAILABLE, `${topic}/${p.partition}: broker ${p.leader} is not leading yet`, { topic, partition: p.partition });
        }
      }
      return states;
    });
  }

  // Groups --------------------------------------------------------------------------------------

  /** Asks a group's coordinator, following coordinator moves until `timeoutMs`. */
  askCoordinator<T>(groupId: string, type: string, body: unknown, timeoutMs = 15_000): Promise<T> {
    return this.retryingOn(COORDINATOR_RETRY, timeoutMs, `coordinator of ${groupId}: ${type}`, async () => {
      const address = await findCoordinator(this.meta, (a, t, b, o) => this.system.ask(a, t, b, o), groupId);
      return this.system.ask<T>(address, type, body, { timeoutMs: Math.min(timeoutMs, 10_000) });
    });
  }

  /** Every group of every coordinator (empty when __consumer_offsets does not exist yet). */
  async listGroups(): Promise<Array<{ groupId: string; state: string; protocolType: string; members: number }>> {
    const topic = await this.meta.getTopic(OFFSETS_TOPIC);
    if (!topic) return [];
    const states = await this.meta.listPartitions(OFFSETS_TOPIC);
    const lists = await Promise.all(
      states
        .filter((s) => s.value.leader >= 0)
        .map((s) =>
          this.system
            .ask<{ groups: Array<{ groupId: string; state: string; protocolType: string; members: number }> }>(coordinatorAddress(s.value.partition, s.value.leader), "ListGroups", {}, { timeoutMs: 5_000 })
            .then((r) => r.groups, () => []),
        ),
    );
    return lists.flat().sort((a, b) => a.groupId.localeCompare(b.groupId));
  }

  /** The group's committed offsets (-1 where none) with metadata: of `partitions`, or of every partition it committed. */
  async fetchCommitted(groupId: string, partitions?: Array<{ topic: string; partition: number }>): Promise<CommittedOffset[]> {
    return (await this.askCoordinator<{ offsets: CommittedOffset[] }>(groupId, "OffsetFetch", { groupId, partitions })).offsets;
  }

  /** State, members with assignments, committed offsets and lag (HW − committed) per partition. */
  async describeGroup(groupId: string) {
    const d = await this.askCoordinator<GroupDescription>(groupId, "DescribeGroup", { groupId });
    const topics = [...new Set(d.offsets.map((o) => o.topic))];
    const hw = new Map<string, number>();
    for (const t of topics) {
      const desc = await this.describeTopic(t).catch(() => null);
      for (const p of desc?.partitions ?? []) hw.set(`${t}/${p.partition}`, p.highWatermark ?? -1);
    }
    return {
      ...d,
      members: d.members.map((m) => ({ ...m, assignment: fromBase64Json(ConsumerAssignment, m.assignment)?.partitions ?? decodeKafkaAssignment(m.assignment) })),
      offsets: d.offsets
        .map((o) => {
          const high = hw.get(`${o.topic}/${o.partition}`) ?? -1;
          return { ...o, highWatermark: high, lag: high >= 0 && o.offset >= 0 ? Math.max(0, high - o.offset) : null };
        })
        .sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition),
    };
  }

  deleteGroup(groupId: string) {
    return this.askCoordinator<{ deleted: string }>(groupId, "DeleteGroup", { groupId });
  }

  /** Commits new offsets for an EMPTY group: earliest, latest, a timestamp or an explicit offset. */
  async resetOffsets(groupId: string, topic: string, to: { earliest: true } | { latest: true } | { timestamp: number } | { offset: number }) {
    const t = await this.meta.getTopic(topic);
    if (!t) throw new SkeinError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `topic ${topic} does not exist`, { topic });
    const offsets: Array<{ topic: string; partition: number; offset: number }> = [];
    for (let p = 0; p < t.partitions; p++) {
      let offset: number;
      if ("offset" in to) offset = to.offset;
      else {
        const leader = await this.leaderOf(topic, p, true);
        const ts = "earliest" in to ? -2 : "latest" in to ? -1 : to.timestamp;
        offset = (await this.system.ask<{ offset: number }>(replicaAddress(topic, p, leader.leader), "ListOffset", { timestamp: ts })).offset;
      }
      offsets.push({ topic, partition: p, offset });
    }
    await this.askCoordinator(groupId, "OffsetCommit", { groupId, generation: -1, memberId: "", offsets });
    return offsets;
  }

  // Data path ----------------------------------------------------------------------------------

  async leaderOf(topic: string, partition: number, refresh = false): Promise<PartitionState> {
    const key = `${topic}/${partition}`;
    const cached = this.leaders.get(key);
    if (cached && !refresh && cached.leader >= 0) return cached;
    const fresh = await this.meta.getPartition(topic, partition);
    if (!fresh) throw new SkeinError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `unknown topic or partition ${topic}/${partition}`, { topic, partition });
    this.leaders.set(key, fresh.value);
    if (fresh.value.leader < 0) throw new SkeinError(ErrorCode.LEADER_NOT_AVAILABLE, `${topic}/${partition} has no leader`, { topic, partition });
    return fresh.value;
  }

  /**
   * Produce batches to the partition leader; retries leader moves until `timeoutMs`. Each
   * attempt waits at most `requestTimeoutMs` (also the leader's acks=all wait). Without an
   * idempotent producer a retried attempt may duplicate the batch (at another offset).
   * acks=0 is fire and forget: a tell to the leader (which therefore cannot answer), resolved
   * at once with offsets -1; only finding the leader can fail.
   */
  produce(topic: string, partition: number, batches: Uint8Array, options: { acks?: 0 | 1 | -1; timeoutMs?: number; requestTimeoutMs?: number } = {}): Promise<ProduceResult> {
    const timeoutMs = options.timeoutMs ?? 30_000;
    const requestTimeoutMs = Math.min(options.requestTimeoutMs ?? 5_000, timeoutMs);
    let refresh = false;
    return this.retrying(timeoutMs, `produce to ${topic}/${partition}`, async () => {
      const leader = await this.leaderOf(topic, partition, refresh);
      refresh = true;
      if (options.acks === 0) {
        this.system.tell(replicaAddress(topic, partition, leader.leader), "Produce", { batches, acks: 0 });
        return { baseOffset: -1, lastOffset: -1, logAppendTime: -1 };
      }
      const r = await this.system.ask<ProduceResult>(
        replicaAddress(topic, partition, leader.leader),
        "Produce",
        { batches, acks: options.acks ?? -1, timeoutMs: requestTimeoutMs },
        { timeoutMs: requestTimeoutMs + 500 },
      );
      refresh = false;
      return r;
    });
  }

  /** Fetch from the partition leader (consumers see offsets below the high watermark only). */
  fetch(topic: string, partition: number, fromOffset: number, options: { maxBytes?: number; maxWaitMs?: number; timeoutMs?: number } = {}): Promise<FetchResult> {
    let refresh = false;
    return this.retrying(options.timeoutMs ?? 15_000, `fetch from ${topic}/${partition}`, async () => {
      const leader = await this.leaderOf(topic, partition, refresh);
      refresh = true;
      const maxWaitMs = options.maxWaitMs ?? 0;
      const r = await this.system.ask<FetchResult>(
        replicaAddress(topic, partition, leader.leader),
        "Fetch",
        { fromOffset, maxBytes: options.maxBytes ?? 1024 * 1024, maxWaitMs },
        { timeoutMs: maxWaitMs + 5_000 },
      );
      refresh = false;
      return r;
    });
  }

  private retrying<T>(timeoutMs: number, what: string, attempt: () => Promise<T>): Promise<T> {
    return this.retryingOn(RETRIABLE_ROUTING, timeoutMs, what, attempt, true);
  }

  private async retryingOn<T>(codes: ReadonlySet<string>, timeoutMs: number, _what: string, attempt: () => Promise<T>, retryTimeouts = false): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let delay = 25;
    for (;;) {
      try {
        return await attempt();
      } catch (e) {
        const retriable = isSkeinError(e) && (codes.has(e.code) || (retryTimeouts && e.code === ErrorCode.TIMEOUT));
        if (!retriable || Date.now() + delay > deadline) throw e;
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 500);
      }
    }
  }
}

/**
 * Kafka's ConsumerProtocol assignment (what kafkajs members send through the gateway):
 *   version int16, [topic string(int16 length), [partition int32]], user_data bytes.
 * Returns [] for anything else.
 */
export function decodeKafkaAssignment(b64: string): Array<{ topic: string; partition: number }> {
  const buf = Buffer.from(b64, "base64");
  const out: Array<{ topic: string; partition: number }> = [];
  try {
    let o = 2;
    const topics = buf.readInt32BE(o);
    o += 4;
    if (topics < 0 || topics > 100_000) return [];
    for (let t = 0; t < topics; t++) {
      const len = buf.readInt16BE(o);
      o += 2;
      const topic = buf.toString("utf8", o, o + len);
      o += len;
      const count = buf.readInt32BE(o);
      o += 4;
      if (count < 0 || o + count * 4 > buf.length) return [];
      for (let i = 0; i < count; i++, o += 4) out.push({ topic, partition: buf.readInt32BE(o) });
    }
    return out;
  } catch {
    return [];
  }
}
