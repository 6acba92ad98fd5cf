// Per-thread shared resources of cluster actors: one MetadataStore per (connection, cluster),
// so thousands of replica actors in a worker share one KV handle.

import type { NatsConnection } from "@nats-io/transport-node";
import { MetadataStore } from "./metadata.js";
import type { TopicConfigs } from "../../protocol/cluster.js";
import type { LogConfig } from "../log/types.js";

const stores = new WeakMap<NatsConnection, Map<string, Promise<MetadataStore>>>();

export function metadataFor(nc: NatsConnection, cluster: string): Promise<MetadataStore> {
  let byCluster = stores.get(nc);
  if (!byCluster) stores.set(nc, (byCluster = new Map()));
  let store = byCluster.get(cluster);
  if (!store) {
    store = MetadataStore.open(nc, cluster);
    store.catch(() => byCluster!.delete(cluster));
    byCluster.set(cluster, store);
  }
  return store;
}

/**
 * Worker counts of brokers, read from their live registrations and kept: where a broker's
 * replica of a partition lives (placementOf), so a fetch session can be addressed to that
 * worker's fetch server. A broker that restarts may come back with another count: whoever
 * finds its actor gone (ACTOR_NOT_FOUND) forgets the count, and the next lookup reads it again.
 */
export class BrokerWorkerCounts {
  private readonly counts = new Map<number, number>();
  /** When each broker's registration was last read in the background (knownOrRead), ms since the epoch. */
  private readonly readAt = new Map<number, number>();

  constructor(private readonly meta: MetadataStore) {}

  /** The count if known, without a read. */
  known(broker: number): number | undefined {
    return this.counts.get(broker);
  }

  /** The count, read from the broker's registration when not known; null while it is not registered. */
  async of(broker: number): Promise<number | null> {
    const known = this.counts.get(broker);
    if (known !== undefined) return known;
    const reg = await this.meta.getBroker(broker).catch(() => null);
    if (!reg) return null;
    this.counts.set(broker, reg.value.workers);
    return reg.value.workers;
  }

  /**
   * The count if known, without waiting: otherwise undefined, and a read of the registration
   * starts in the background (at most one per broker per REREAD_MS), for a caller that goes on
   * without the count meanwhile.
   */
  knownOrRead(broker: number): number | undefined {
    const known = this.counts.get(broker);
    if (known !== undefined) return known;
    const now = Date.now();
    if (now - (this.readAt.get(broker) ?? 0) < REREAD_MS) return undefined;
    this.readAt.set(broker, now);
    this.of(broker).catch(() => undefined); // of() never rejects; a failed read is retried at a later call
    return undefined;
  }

  /** A count learnt elsewhere (an answer from one of the broker's actors that carries it). */
  set(broker: number, workers: number): void {
    if (Number.isInteger(workers) && workers >= 1) this.counts.set(broker, workers);
  }

  forget(broker: number): void {
    this.counts.delete(broker);
  }
}

/** Background reads of one broker's registration (BrokerWorkerCounts.knownOrRead) are this far apart at least, ms. */
const REREAD_MS = 1_000;

/** Maps Kafka-named topic configs onto the log's options. */
export function logConfigFor(configs: TopicConfigs): LogConfig {
  const c: LogConfig = {};
  if (configs["retention.ms"] !== undefined) c.retentionMs = configs["retention.ms"];
  if (configs["retention.bytes"] !== undefined) c.retentionBytes = configs["retention.bytes"];
  if (configs["segment.bytes"] !== undefined) c.segmentBytes = configs["segment.bytes"];
  if (configs["segment.ms"] !== undefined) c.segmentMs = configs["segment.ms"];
  if (configs["cleanup.policy"] !== undefined) c.cleanupPolicy = configs["cleanup.policy"];
  if (configs["delete.retention.ms"] !== undefined) c.deleteRetentionMs = configs["delete.retention.ms"];
  if (configs["max.message.bytes"] !== undefined) c.maxMessageBytes = configs["max.message.bytes"];
  if (configs["flush.messages"] !== undefined) c.flushMessages = configs["flush.messages"];
  if (configs["flush.ms"] !== undefined) c.flushMs = configs["flush.ms"];
  if (configs["retention.check.interval.ms"] !== undefined) c.retentionCheckIntervalMs = configs["retention.check.interval.ms"];
  return c;
}
