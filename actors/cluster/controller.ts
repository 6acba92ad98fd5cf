// The controller: one candidate per broker; the one holding the `controller` lease in the
// live KV bucket is active. The KV revision at which it took the lease is its controller
// epoch, stamped on every partition state it writes. The active controller creates and
// deletes topics, watches broker liveness (heartbeat keys expire with the bucket TTL) and
// worker-lost events, and elects leaders from the ISR only (unclean election is a per-topic
// opt-in), bumping the leader epoch on every change. All writes are compare-and-set.

import { randomUUID } from "node:crypto";
import { z } from "zod";
import { defineActor, type ActorContext } from "../../runtime/actor.js";
import { ErrorCode, SkeinError } from "../../protocol/errors.js";
import { eventSubject } from "../../protocol/address.js";
import {
  ControllerMessages,
  MAX_PARTITIONS_PER_TOPIC,
  parseTopicConfigs,
  partitionKey,
  validateTopicName,
  type BrokerRegistration,
  type PartitionState,
  type TopicConfigs,
  type TopicRecord,
} from "../../protocol/cluster.js";
import type { RuntimeEvent } from "../../runtime/types.js";
import { DEFAULT_OFFSETS_PARTITIONS, OFFSETS_TOPIC } from "../../protocol/groups.js";
import { LatestListing, type MetadataStore, type Versioned } from "./metadata.js";
import { metadataFor } from "./shared.js";

export const ControllerArgs = z.object({
  broker: z.number().int().min(0),
  /** How often the controller checks liveness and leaders, ms. */
  tickMs: z.number().int().min(20).default(200),
  /** A broker back for this long gets its preferred leaderships back, ms. */
  preferredLeaderDelayMs: z.number().int().min(0).default(5_000),
  /** At most this many preferred-leader moves per tick (bounded churn). */
  maxPreferredMovesPerTick: z.number().int().min(0).default(16),
  /** Partitions of __consumer_offsets when the controller creates it. */
  offsetsTopicPartitions: z.number().int().min(1).max(1000).default(DEFAULT_OFFSETS_PARTITIONS),
});
type Args = z.infer<typeof ControllerArgs>;
/** Longest a replica counts as offline after its worker died without a restart event, ms. */
const OFFLINE_REPLICA_MAX_MS = 30_000;
/** Compare-and-set attempts to delete one partition state whose ISR keeps changing. */
const MAX_DELETE_ATTEMPTS = 20;
/** Longest time between two looks at every partition (a safety net; changes are seen at once). */
const FULL_SCAN_MS = 5_000;
type Ctx = ActorContext<Args>;

export class ControllerState {
  active = false;
  epoch = -1;
  leaseRevision = 0;
  lastRenewAt = 0;
  /** Partition states as last seen through the KV watch, by KV key. */
  partitions = new Map<string, Versioned<PartitionState>>();
  topics = new Map<string, TopicRecord>();
  alive = new Map<number, { since: number }>();
  /**
   * Replicas whose worker died, "topic/partition@broker" → until when (ms). Cleared when the
   * worker restarts; the expiry covers a lost restart event (events are at-most-once).
   */
  offlineReplicas = new Map<string, number>();
  /**
   * Partition keys changed (watch) since the last tick; a tick looks only at those unless a
   * full scan is due: liveness or offline replicas changed, a time-based condition may have
   * come true (a returned broker's preferred-leader delay, an offline replica's expiry), the
   * preferred-move budget ran out, or FULL_SCAN_MS passed. Scanning 10,000 partitions every
   * tick (200 ms) was a visible part of an idle controller broker's CPU.
   */
  dirtyPartitions = new Set<string>();
  fullScanAt = 0;
  stopWatch: (() => void) | null = null;
  stopEvents: (() => void) | null = null;

  /** Live brokers as the heartbeats list them, without waiting long on a stalled listing. */
  private readonly brokerListing: LatestListing<Versioned<BrokerRegistration>[]>;

  constructor(
    readonly meta: MetadataStore,
    readonly args: Args,
  ) {
    this.brokerListing = new LatestListing(() => meta.listBrokers(), Math.max(1, Math.floor(meta.liveTtlMs / 3)));
  }

  // Lease --------------------------------------------------------------------------------------

  async maintainLease(): Promise<void> {
    const now = Date.now();
    const lease = { broker: this.args.broker, since: now };
    if (this.active) {
      if (now - this.lastRenewAt < this.meta.liveTtlMs / 3) return;
      const rev = await this.meta.updateLease(lease, this.leaseRevision);
      if (rev === null) return this.stepDown("lease renewal failed");
      this.leaseRevision = rev;
      this.lastRenewAt = now;
      return;
    }
    const current = await this.meta.getLease();
    let rev: number | null = null;
    if (!current) rev = await this.meta.createLease(lease);
    else if (current.value.broker === this.args.broker) rev = await this.meta.updateLease(lease, current.revision); // our own, from before a restart
    if (rev === null) return;
    this.active = true;
    this.epoch = rev;
    this.leaseRevision = rev;
    this.lastRenewAt = now;
    console.log(`skein: broker ${this.args.broker} is the active controller (epoch ${rev})`);
  }

  stepDown(why: string): void {
    if (!this.active) return;
    console.warn(`skein: controller on broker ${this.args.broker} steps down: ${why}`);
    this.active = false;
  }

  /** Before any write: a controller that cannot prove its lease is fresh must not act. */
  private requireActive(): void {
    if (this.active && Date.now() - this.lastRenewAt < this.meta.liveTtlMs) return;
    throw new SkeinError(ErrorCode.NOT_CONTROLLER, `broker ${this.args.broker} is not the active controller`, { broker: String(this.args.broker) });
  }

  /**
   * Renews the lease by compare-and-set right before a batch of writes, so a controller that
   * was paused (GC, SIGSTOP) and lost its lease finds out before it writes, not after.
   */
  private async confirmLease(): Promise<void> {
    this.requireActive();
    const rev = await this.meta.updateLease({ broker: this.args.broker, since: Date.now() }, this.leaseRevision);
    if (rev === null) {
      this.stepDown("lease taken by another controller");
      this.requireActive();
    }
    this.leaseRevision = rev!;
    this.lastRenewAt = Date.now();
  }

  // Periodic work -------------------------------------------------------------------------------

  async tick(): Promise<void> {
    const wasActive = this.active;
    await this.maintainLease();
    if (!this.active) {
      this.dirtyPartitions.clear(); // a standby scans everything once it becomes active
      return;
    }
    if (!wasActive) this.wantFullScan(); // a new controller looks at everything once
    await this.refreshLiveness();
    const now = Date.now();
    let entries: Versioned<PartitionState>[];
    if (now >= this.fullScanAt) {
      entries = [...this.partitions.values()];
      this.fullScanAt = this.nextFullScan(now);
    } else {
      entries = [];
      for (const key of this.dirtyPartitions) {
        const entry = this.partitions.get(key);
        if (entry) entries.push(entry);
      }
    }
    this.dirtyPartitions.clear();
    let preferredMoves = 0;
    let confirmed = false;
    for (const entry of entries) {
      const next = this.desiredState(entry.value, preferredMoves < this.args.maxPreferredMovesPerTick);
      if (!next) continue;
      if (!confirmed) {
        await this.confirmLease();
        confirmed = true;
      }
      if (next.leader !== entry.value.leader && entry.value.leader >= 0 && this.isUsable(entry.value.leader, entry.value)) preferredMoves++;
      await this.write(next, entry.revision);
    }
    if (preferredMoves >= this.args.maxPreferredMovesPerTick) this.wantFullScan(); // more moves next tick
  }

  /** When the next full scan is due: the earliest time-based condition, at most FULL_SCAN_MS away. */
  private nextFullScan(now: number): number {
    let next = now + FULL_SCAN_MS;
    for (const { since } of this.alive.values()) {
      const eligible = since + this.args.preferredLeaderDelayMs;
      if (eligible > now) next = Math.min(next, eligible);
    }
    for (const until of this.offlineReplicas.values()) if (until > now) next = Math.min(next, until);
    return next;
  }

  /** Something that can change any partition's desired state happened: look at all of them next tick. */
  private wantFullScan(): void {
    this.fullScanAt = 0;
  }

  /**
   * Updates `alive` from the broker heartbeats, waiting at most a third of the lease TTL for
   * the listing: past that the last known set stands (stale by at most the stall, like a
   * heartbeat that arrives late), so the tick goes on to renew the lease and queued requests
   * are answered. Until a first listing completes it waits for it: "no live brokers" is not
   * known then, and a TIMEOUT would not be retried by clients.
   */
  private async refreshLiveness(): Promise<void> {
    const { value: brokers, fresh } = await this.brokerListing.get();
    if (!fresh) return;
    const now = Date.now();
    const present = new Set<number>();
    for (const b of brokers) {
      present.add(b.value.broker);
      if (!this.alive.has(b.value.broker)) {
        this.alive.set(b.value.broker, { since: now });
        this.wantFullScan();
      }
    }
    for (const b of [...this.alive.keys()]) {
      if (!present.has(b)) {
        this.alive.delete(b);
        this.wantFullScan();
        console.warn(`skein: controller: broker ${b} is gone (no heartbeat)`);
      }
    }
  }

  private isUsable(broker: number, p: PartitionState): boolean {
    if (!this.alive.has(broker)) return false;
    const key = `${p.topic}/${p.partition}@${broker}`;
    const until = this.offlineReplicas.get(key);
    if (until === undefined) return true;
    if (until > Date.now()) return false;
    this.offlineReplicas.delete(key);
    return true;
  }

  /** What the partition state should be now, or null when it is fine as it is. */
  desiredState(p: PartitionState, allowPreferredMove: boolean): PartitionState | null {
    const usableIsr = p.isr.filter((b) => this.isUsable(b, p));
    const leaderOk = p.leader >= 0 && this.isUsable(p.leader, p);
    if (leaderOk) {
      // Drop dead followers from the ISR now instead of waiting for the leader's lag timeout.
      const isr = p.isr.filter((b) => b === p.leader || this.isUsable(b, p));
      const preferred = p.replicas[0];
      const preferredReady =
        allowPreferredMove &&
        preferred !== p.leader &&
        isr.includes(preferred) &&
        this.isUsable(preferred, p) &&
        Date.now() - (this.alive.get(preferred)?.since ?? Date.now()) >= this.args.preferredLeaderDelayMs;
      if (preferredReady) return { ...p, leader: preferred, leaderEpoch: p.leaderEpoch + 1, isr, controllerEpoch: this.epoch };
      if (isr.length !== p.isr.length) return { ...p, isr, controllerEpoch: this.epoch };
      return null;
    }
    const ordered = p.replicas.filter((b) => usableIsr.includes(b));
    let leader = ordered[0] ?? -1;
    let isr = usableIsr;
    if (leader < 0 && this.topics.get(p.topic)?.configs["unclean.leader.election.enable"]) {
      leader = p.replicas.find((b) => this.isUsable(b, p)) ?? -1;
      if (leader >= 0) {
        console.warn(`skein: UNCLEAN leader election for ${p.topic}/${p.partition}: broker ${leader} was not in the ISR; acknowledged records may be lost`);
        isr = [leader];
      }
    }
    if (leader < 0) {
      // No ISR member is usable: the partition goes offline and keeps its ISR, so the last
      // in-sync replica is elected when it returns.
      if (p.leader === -1) return null;
      return { ...p, leader: -1, leaderEpoch: p.leaderEpoch + 1, controllerEpoch: this.epoch };
    }
    return { ...p, leader, leaderEpoch: p.leaderEpoch + 1, isr, controllerEpoch: this.epoch };
  }

  private async write(next: PartitionState, revision: number): Promise<void> {
    this.requireActive();
    const key = partitionKey(next.topic, next.partition);
    const rev = await this.meta.casPartition(next, revision);
    if (rev === null) {
      const fresh = await this.meta.getPartition(next.topic, next.partition);
      if (fresh) {
        this.partitions.set(key, fresh);
        this.dirtyPartitions.add(key); // look again next tick
        if (fresh.value.controllerEpoch > this.epoch) this.stepDown(`partition state written by newer controller epoch ${fresh.value.controllerEpoch}`);
      }
      return;
    }
    this.partitions.set(key, { value: next, revision: rev });
    if (next.leader !== -1) return;
    console.warn(`skein: ${next.topic}/${next.partition} is OFFLINE: no live in-sync replica (ISR ${next.isr.join(",")})`);
  }

  onWorkerLost(actors: string[]): void {
    for (const a of actors) {
      const m = /^replica\/(.+)\/(\d+)@(\d+)$/.exec(a);
      if (m) this.offlineReplicas.set(`${m[1]}/${m[2]}@${m[3]}`, Date.now() + OFFLINE_REPLICA_MAX_MS);
    }
    this.wantFullScan();
  }

  /**
   * The active controller's worker died: a standby takes the lease over at once (CAS on the
   * lease revision) instead of waiting for it to expire. Standbys track offline replicas too,
   * so the new controller acts on the same event.
   */
  async takeOverFrom(deadController: number): Promise<void> {
    if (this.active || deadController === this.args.broker) return;
    const lease = await this.meta.getLease();
    if (!lease || lease.value.broker !== deadController) return;
    const rev = await this.meta.updateLease({ broker: this.args.broker, since: Date.now() }, lease.revision);
    if (rev === null) return;
    this.active = true;
    this.epoch = rev;
    this.leaseRevision = rev;
    this.lastRenewAt = Date.now();
    console.log(`skein: broker ${this.args.broker} took over as controller from broker ${deadController} (epoch ${rev})`);
  }

  onWorkerBack(actors: string[]): void {
    for (const a of actors) {
      const m = /^replica\/(.+)\/(\d+)@(\d+)$/.exec(a);
      if (m) this.offlineReplicas.delete(`${m[1]}/${m[2]}@${m[3]}`);
    }
    this.wantFullScan();
  }

  // Topic admin --------------------------------------------------------------------------------

  async createTopic(m: z.infer<typeof ControllerMessages.CreateTopic>): Promise<{ name: string; assignment: number[][] }> {
    await this.confirmLease();
    const name = validateTopicName(m.name);
    if (!Number.isInteger(m.partitions) || m.partitions < 1 || m.partitions > MAX_PARTITIONS_PER_TOPIC) {
      throw new SkeinError(ErrorCode.INVALID_PARTITIONS, `partitions must be 1-${MAX_PARTITIONS_PER_TOPIC}, got ${m.partitions}`, { topic: name });
    }
    await this.refreshLiveness();
    const brokers = [...this.alive.keys()].sort((a, b) => a - b);
    if (!Number.isInteger(m.replicationFactor) || m.replicationFactor < 1 || m.replicationFactor > brokers.length) {
      throw new SkeinError(
        ErrorCode.INVALID_REPLICATION_FACTOR,
        `replication factor ${m.replicationFactor} is not possible with ${brokers.length} live broker(s) (${brokers.join(", ")})`,
        { topic: name },
      );
    }
    const configs = parseTopicConfigs(m.configs);
    checkMinInsync(name, configs, m.replicationFactor);
    const record: TopicRecord = { name, id: randomUUID(), partitions: m.partitions, replicationFactor: m.replicationFactor, configs, createdAt: Date.now() };
    const assignment = assignReplicas(brokers, m.partitions, m.replicationFactor, Math.floor(Math.random() * brokers.length));
    await this.meta.createTopic(record);
    this.topics.set(name, record);
    for (let p = 0; p < m.partitions; p++) {
      const replicas = assignment[p];
      const state: PartitionState = { topic: name, topicId: record.id, partition: p, leader: replicas[0], leaderEpoch: 0, isr: replicas, replicas, controllerEpoch: this.epoch };
      const rev = await this.meta.createPartition(state);
      this.partitions.set(partitionKey(name, p), { value: state, revision: rev });
    }
    return { name, assignment };
  }

  async deleteTopic(name: string): Promise<{ name: string; partitions: number }> {
    await this.confirmLease();
    validateTopicName(name);
    const topic = await this.meta.getTopicVersioned(name);
    if (!topic) throw new SkeinError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `topic ${name} does not exist`, { topic: name });
    for (let p = 0; p < topic.value.partitions; p++) {
      await this.deletePartitionState(topic.value, p);
      this.partitions.delete(partitionKey(name, p));
    }
    if (!(await this.meta.deleteTopicRecord(name, topic.revision))) {
      throw new SkeinError(ErrorCode.INVALID_REQUEST, `topic ${name} changed while it was being deleted; retry`, { topic: name });
    }
    this.topics.delete(name);
    return { name, partitions: topic.value.partitions };
  }

  /**
   * Deletes one partition state of `topic` by compare-and-set, re-reading when its leader
   * changed the ISR meanwhile; a state of another topic id (a re-creation) is left alone.
   */
  private async deletePartitionState(topic: TopicRecord, partition: number): Promise<void> {
    for (let attempt = 0; attempt < MAX_DELETE_ATTEMPTS; attempt++) {
      const current = await this.meta.getPartition(topic.name, partition);
      if (!current || current.value.topicId !== topic.id) return;
      if (await this.meta.deletePartition(topic.name, partition, current.revision)) return;
    }
    throw new SkeinError(ErrorCode.INVALID_REQUEST, `${topic.name}/${partition} kept changing while it was being deleted; retry`, { topic: topic.name, partition });
  }

  /** The topic's record, for a change by this (active) controller; UNKNOWN_TOPIC_OR_PARTITION without one. */
  private async activeTopic(name: string): Promise<TopicRecord> {
    this.requireActive();
    validateTopicName(name);
    const topic = await this.meta.getTopic(name);
    if (!topic) throw new SkeinError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `topic ${name} does not exist`, { topic: name });
    return topic;
  }

  async createPartitions(name: string, totalCount: number): Promise<{ name: string; assignment: number[][] }> {
    const topic = await this.activeTopic(name);
    if (!Number.isInteger(totalCount) || totalCount <= topic.partitions || totalCount > MAX_PARTITIONS_PER_TOPIC) {
      throw new SkeinError(ErrorCode.INVALID_PARTITIONS, `topic ${name} has ${topic.partitions} partitions; the new count must be larger (at most ${MAX_PARTITIONS_PER_TOPIC}), got ${totalCount}`, { topic: name });
    }
    await this.refreshLiveness();
    const brokers = [...this.alive.keys()].sort((a, b) => a - b);
    if (brokers.length < topic.replicationFactor) {
      throw new SkeinError(ErrorCode.INVALID_REPLICATION_FACTOR, `only ${brokers.length} live broker(s) for replication factor ${topic.replicationFactor}`, { topic: name });
    }
    const added = assignReplicas(brokers, totalCount - topic.partitions, topic.replicationFactor, Math.floor(Math.random() * brokers.length));
    if (!(await this.meta.updateTopic({ ...topic, partitions: totalCount }))) {
      throw new SkeinError(ErrorCode.INVALID_REQUEST, `topic ${name} changed concurrently; retry`, { topic: name });
    }
    this.topics.set(name, { ...topic, partitions: totalCount });
    for (let i = 0; i < added.length; i++) {
      const p = topic.partitions + i;
      const replicas = added[i];
      const state: PartitionState = { topic: name, topicId: topic.id, partition: p, leader: replicas[0], leaderEpoch: 0, isr: replicas, replicas, controllerEpoch: this.epoch };
      const rev = await this.meta.createPartition(state);
      this.partitions.set(partitionKey(name, p), { value: state, revision: rev });
    }
    return { name, assignment: added };
  }

  /** Sets (or, with null, resets) the named configs of a topic; replicas take them over from the KV (Configure). */
  async alterTopicConfigs(name: string, changes: Record<string, unknown>, validateOnly: boolean): Promise<{ name: string; configs: TopicConfigs }> {
    const topic = await this.activeTopic(name);
    const merged: Record<string, unknown> = { ...topic.configs };
    for (const [k, v] of Object.entries(changes)) {
      if (v === null || v === undefined) delete merged[k];
      else merged[k] = v;
    }
    const configs = parseTopicConfigs(merged);
    checkMinInsync(name, configs, topic.replicationFactor);
    if (validateOnly) return { name, configs };
    if (!(await this.meta.updateTopic({ ...topic, configs }))) {
      throw new SkeinError(ErrorCode.INVALID_REQUEST, `topic ${name} changed concurrently; retry`, { topic: name });
    }
    this.topics.set(name, { ...topic, configs });
    return { name, configs };
  }

  /** Creates __consumer_offsets (compacted, RF min(3, live brokers)) unless it exists. */
  async ensureOffsetsTopic(): Promise<{ name: string; partitions: number }> {
    this.requireActive();
    const existing = await this.meta.getTopic(OFFSETS_TOPIC);
    if (existing) return { name: OFFSETS_TOPIC, partitions: existing.partitions };
    await this.refreshLiveness();
    const rf = Math.min(3, this.alive.size);
    try {
      await this.createTopic({ name: OFFSETS_TOPIC, partitions: this.args.offsetsTopicPartitions, replicationFactor: rf, configs: { "cleanup.policy": "compact", "segment.bytes": 16 * 1024 * 1024 } });
    } catch (e) {
      if ((e as SkeinError).code !== ErrorCode.TOPIC_ALREADY_EXISTS) throw e;
    }
    return { name: OFFSETS_TOPIC, partitions: this.args.offsetsTopicPartitions };
  }

  async initProducerId(): Promise<{ producerId: number; producerEpoch: number }> {
    this.requireActive();
    return { producerId: await this.meta.nextProducerId(), producerEpoch: 0 };
  }

  status() {
    return { broker: this.args.broker, active: this.active, epoch: this.active ? this.epoch : -1, aliveBrokers: [...this.alive.keys()].sort((a, b) => a - b) };
  }
}

/**
 * Kafka-style spread: partition p's replicas start at broker (start + p) and step by a shift
 * that grows with p / brokers, so leaders are balanced and followers are not always the
 * same neighbours.
 */
export function assignReplicas(brokers: number[], partitions: number, rf: number, start: number): number[][] {
  const n = brokers.length;
  const out: number[][] = [];
  for (let p = 0; p < partitions; p++) {
    const first = (start + p) % n;
    const shift = n > 1 ? 1 + (Math.floor(p / n) % (n - 1)) : 0;
    const replicas = [brokers[first]];
    for (let i = 1; i < rf; i++) {
      let idx = (first + i * shift) % n;
      while (replicas.includes(brokers[idx])) idx = (idx + 1) % n;
      replicas.push(brokers[idx]);
    }
    out.push(replicas);
  }
  return out;
}

/** min.insync.replicas above the replication factor would refuse every acks=all produce: INVALID_CONFIG. */
function checkMinInsync(topic: string, configs: TopicConfigs, replicationFactor: number): void {
  if ((configs["min.insync.replicas"] ?? 1) > replicationFactor) {
    throw new SkeinError(ErrorCode.INVALID_CONFIG, `min.insync.replicas=${configs["min.insync.replicas"]} exceeds replication factor ${replicationFactor}`, { topic, field: "min.insync.replicas" });
  }
}

export const ControllerActor = defineActor({
  kind: "controller",
  args: ControllerArgs,
  messages: ControllerMessages,
  async init(ctx) {
    const meta = await metadataFor(ctx.nats, ctx.cluster);
    return new ControllerState(meta, ctx.args);
  },
  async started(state, ctx) {
    for (const t of await state.meta.listTopics()) state.topics.set(t.name, t);
    state.stopWatch = await state.meta.watchPartitions((key, value, revision) => {
      if (value === null) state.partitions.delete(key);
      else {
        const known = state.partitions.get(key);
        if (!known || known.revision < revision) {
          state.partitions.set(key, { value, revision });
          state.dirtyPartitions.add(key);
        }
      }
    });
    const decoder = new TextDecoder();
    const sub = ctx.nats.subscribe(eventSubject(ctx.cluster, "*"), {
      callback: (err, msg) => {
        if (err) return;
        try {
          const e = JSON.parse(decoder.decode(msg.data)) as RuntimeEvent;
          if (e.type === "worker.exited" || e.type === "worker.restarted") ctx.tell(ctx.self, "WorkerEvent", { type: e.type, node: e.node, actors: e.actors });
        } catch {
          // events are informational
        }
      },
    });
    state.stopEvents = () => sub.unsubscribe();
    ctx.schedule(0, "Tick", {});
  },
  async stopped(state) {
    state.stopWatch?.();
    state.stopEvents?.();
    if (state.active) await state.meta.releaseLease(state.leaseRevision);
  },
  handlers: {
    CreateTopic: (s, m) => s.createTopic(m),
    DeleteTopic: (s, m) => s.deleteTopic(m.name),
    CreatePartitions: (s, m) => s.createPartitions(m.name, m.totalCount),
    AlterTopicConfigs: (s, m) => s.alterTopicConfigs(m.name, m.configs, m.validateOnly),
    InitProducerId: (s) => s.initProducerId(),
    EnsureOffsetsTopic: (s) => s.ensureOffsetsTopic(),
    Status: (s) => s.status(),
    WorkerEvent: async (s, m) => {
      if (m.type === "worker.exited") {
        s.onWorkerLost(m.actors);
        const dead = m.actors.map((a) => /^controller@(\d+)$/.exec(a)).find(Boolean);
        if (dead) await s.takeOverFrom(Number(dead[1]));
      } else s.onWorkerBack(m.actors);
      if (s.active) await s.tick();
    },
    Tick: async (s, _m, ctx) => {
      try {
        await s.tick();
      } catch (e) {
        console.warn(`skein: controller tick on broker ${ctx.args.broker} failed: ${(e as Error).message}`);
      } finally {
        ctx.schedule(ctx.args.tickMs, "Tick", {});
      }
    },
  },
});
