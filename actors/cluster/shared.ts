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
