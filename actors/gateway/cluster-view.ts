// The gateway's local copy of the cluster metadata: every topic record and partition state,
// kept current by one watch on the metadata KV bucket (the metadata log), so Metadata answers
// and produce/fetch routing never wait on the KV. Live brokers and the controller lease sit in
// the TTL bucket, whose expiries send no watch events (nats-server 2.9): they are read on
// demand and cached briefly.

import type { KV } from "@nats-io/kv";
import { ErrorCode, SkeinError } from "../../protocol/errors.js";
import { PartitionState, TopicRecord, type BrokerRegistration } from "../../protocol/cluster.js";
import { LatestListing, type MetadataStore } from "../cluster/metadata.js";
import type { GatewayLogger } from "./types.js";

/** How long the live-broker list and controller lease are reused, ms. */
const LIVE_CACHE_MS = 500;
/**
 * How long a Metadata answer waits for a fresh live-broker listing before it uses the last one
 * it had, ms. nats.js's key listing of the TTL'd live bucket stalled for up to 19 s under load
 * (the controller bounds its wait the same way); a Metadata request sat unanswered meanwhile.
 */
const LIVE_LISTING_WAIT_MS = 1_000;
/** Wait before re-opening a watch that ended unexpectedly, ms. */
const REWATCH_DELAY_MS = 500;
const decoder = new TextDecoder();

export interface LiveCluster {
  brokers: BrokerRegistration[];
  /** Broker holding the controller lease, -1 when none does. */
  controller: number;
}

export class ClusterView {
  private readonly topics = new Map<string, TopicRecord>();
  private readonly partitions = new Map<string, Map<number, PartitionState>>();
  /** KV key → what it described, so a delete (which carries only the key) can be applied. */
  private readonly keys = new Map<string, { topic: string; partition?: number }>();
  private readonly listeners = new Set<() => void>();
  private live: { at: number; value: Promise<LiveCluster> } | null = null;
  private readonly liveListing: LatestListing<LiveCluster>;
  private stopWatch: (() => void) | null = null;
  private closed = false;
  /** Highest KV revision applied. */
  private revision = 0;

  private constructor(
    private readonly meta: MetadataStore,
    private readonly logger: GatewayLogger,
  ) {
    this.liveListing = new LatestListing(
      () => Promise.all([meta.listBrokers(), meta.getLease()]).then(([brokers, lease]) => ({ brokers: brokers.map((b) => b.value), controller: lease?.value.broker ?? -1 })),
      LIVE_LISTING_WAIT_MS,
    );
  }

  /** Resolves once the view holds everything the bucket held when it was called. */
  static async open(meta: MetadataStore, logger: GatewayLogger, timeoutMs: number): Promise<ClusterView> {
    const view = new ClusterView(meta, logger);
    const target = (await meta.meta.status()).streamInfo.state.last_seq;
    const caughtUp = view.waitUntil(() => view.revision >= target, timeoutMs);
    await view.watch();
    if (!(await caughtUp)) {
      view.close();
      throw new SkeinError(ErrorCode.TIMEOUT, `gateway: metadata view did not catch up with revision ${target} within ${timeoutMs} ms`);
    }
    return view;
  }

  private async watch(): Promise<void> {
    const kv: KV = this.meta.meta;
    const iter = await kv.watch({ key: ">" });
    this.stopWatch = () => iter.stop();
    void (async () => {
      try {
        for await (const e of iter) this.apply(e.key, e.operation === "PUT" ? e.value : null, e.revision);
      } catch (err) {
        this.logger.warn(`gateway: metadata watch failed: ${(err as Error).message}`);
      }
      if (this.closed) return;
      this.logger.warn("gateway: metadata watch ended; re-opening it");
      setTimeout(() => void this.watch().catch((err) => this.logger.warn(`gateway: cannot re-open the metadata watch: ${(err as Error).message}`)), REWATCH_DELAY_MS);
    })();
  }

  private apply(key: string, value: Uint8Array | null, revision: number): void {
    this.revision = Math.max(this.revision, revision);
    if (value === null) this.remove(key);
    else if (key.startsWith("topic.")) this.putTopic(key, value);
    else if (key.startsWith("partition.")) this.putPartition(key, value);
    for (const l of [...this.listeners]) l();
  }

  private putTopic(key: string, value: Uint8Array): void {
    const parsed = TopicRecord.safeParse(parseJson(value));
    if (!parsed.success) return this.logger.warn(`gateway: ignoring invalid metadata at ${key}`);
    this.topics.set(parsed.data.name, parsed.data);
    this.keys.set(key, { topic: parsed.data.name });
  }

  private putPartition(key: string, value: Uint8Array): void {
    const parsed = PartitionState.safeParse(parseJson(value));
    if (!parsed.success) return this.logger.warn(`gateway: ignoring invalid metadata at ${key}`);
    const s = parsed.data;
    let byIndex = this.partitions.get(s.topic);
    if (!byIndex) this.partitions.set(s.topic, (byIndex = new Map()));
    byIndex.set(s.partition, s);
    this.keys.set(key, { topic: s.topic, partition: s.partition });
  }

  private remove(key: string): void {
    const known = this.keys.get(key);
    if (!known) return;
    this.keys.delete(key);
    if (known.partition === undefined) {
      this.topics.delete(known.topic);
      return;
    }
    const byIndex = this.partitions.get(known.topic);
    byIndex?.delete(known.partition);
    if (byIndex?.size === 0) this.partitions.delete(known.topic);
  }

  // Reads ---------------------------------------------------------------------------------------

  topicNames(): string[] {
    return [...this.topics.keys()].sort();
  }

  topic(name: string): TopicRecord | undefined {
    return this.topics.get(name);
  }

  /** Partition states of the topic's current incarnation, by index (missing ones still being created). */
  partitionsOf(name: string): Map<number, PartitionState> {
    const topic = this.topics.get(name);
    const out = new Map<number, PartitionState>();
    if (!topic) return out;
    for (const [i, s] of this.partitions.get(name) ?? []) if (s.topicId === topic.id && i < topic.partitions) out.set(i, s);
    return out;
  }

  /** True when the topic exists and every one of its partitions has a state with a leader. */
  isComplete(name: string): boolean {
    const topic = this.topics.get(name);
    if (!topic) return false;
    const states = this.partitionsOf(name);
    return states.size === topic.partitions && [...states.values()].every((s) => s.leader >= 0);
  }

  /** The leader broker of a partition; throws UNKNOWN_TOPIC_OR_PARTITION or LEADER_NOT_AVAILABLE. */
  leaderOf(topic: string, partition: number): number {
    const state = this.partitionsOf(topic).get(partition);
    if (!state) throw new SkeinError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `unknown topic or partition ${topic}/${partition}`, { topic, partition });
    if (state.leader < 0) throw new SkeinError(ErrorCode.LEADER_NOT_AVAILABLE, `${topic}/${partition} has no leader`, { topic, partition });
    return state.leader;
  }

  /**
   * Live brokers and the controller, cached for LIVE_CACHE_MS. While a listing is slow the last
   * known ones answer after LIVE_LISTING_WAIT_MS (see LatestListing).
   */
  liveCluster(): Promise<LiveCluster> {
    const now = Date.now();
    if (this.live && now - this.live.at < LIVE_CACHE_MS) return this.live.value;
    const value = this.liveListing.get().then((r) => r.value);
    value.catch(() => {
      if (this.live?.value === value) this.live = null;
    });
    this.live = { at: now, value };
    return value;
  }

  /** Resolves true once `predicate` holds (checked now and after every metadata change), false after `timeoutMs`. */
  waitUntil(predicate: () => boolean, timeoutMs: number): Promise<boolean> {
    if (predicate()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.listeners.delete(check);
        resolve(ok);
      };
      const check = () => {
        if (predicate()) done(true);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      timer.unref(); // a wait never keeps the process alive on its own
      this.listeners.add(check);
    });
  }

  close(): void {
    this.closed = true;
    this.stopWatch?.();
  }
}

function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(decoder.decode(bytes));
  } catch {
    return undefined;
  }
}
