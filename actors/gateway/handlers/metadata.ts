// Metadata: live brokers with a gateway, the controller, and per partition its leader,
// replicas and ISR, so clients send each request to the partition's leader as with Kafka.
//
// Any gateway can serve any partition (it forwards to the leader replica over NATS), so
// where a leader or the controller runs no gateway, this broker is advertised in its place:
// clients always get an address that works.

import { Metadata } from "../../../protocol/kafka/metadata.js";
import { KafkaErrorCode } from "../../../protocol/kafka/errors.js";
import { TOPIC_NAME } from "../../../protocol/cluster.js";
import type { RequestOf, ResponseIn } from "../../../protocol/kafka/api.js";
import { defineHandler } from "../handler.js";
import type { GatewayServices } from "../types.js";

type TopicOut = ResponseIn<typeof Metadata>["topics"][number];

/** Topics Kafka clients treat as internal (hidden from listings, not produced to by apps). */
const INTERNAL_TOPICS: ReadonlySet<string> = new Set(["__consumer_offsets"]);

export const metadataHandler = defineHandler(Metadata, async (request, ctx) => {
  const s = ctx.services;
  const live = await s.view.liveCluster();
  const gateways = new Map<number, number>();
  for (const b of live.brokers) if (b.kafkaPort !== undefined && b.kafkaPort > 0) gateways.set(b.broker, b.kafkaPort);
  gateways.set(s.brokerId, s.port);
  const advertised = (broker: number) => (gateways.has(broker) ? broker : s.brokerId);
  const alive = new Set(live.brokers.map((b) => b.broker));
  return {
    throttleTimeMs: 0,
    brokers: [...gateways].sort(([a], [b]) => a - b).map(([nodeId, port]) => ({ nodeId, host: s.options.advertisedHost, port, rack: null })),
    clusterId: s.options.cluster,
    controllerId: advertised(live.controller),
    topics: requestedTopics(request, ctx.header.apiVersion, s).map((name) => describeTopic(name, s, advertised, alive)),
  };
});

function requestedTopics(request: RequestOf<typeof Metadata>, version: number, s: GatewayServices): string[] {
  if (request.topics === null || (version === 0 && request.topics.length === 0)) return s.view.topicNames();
  return [...new Set(request.topics)];
}

function describeTopic(name: string, s: GatewayServices, advertised: (b: number) => number, alive: Set<number>): TopicOut {
  const isInternal = INTERNAL_TOPICS.has(name);
  if (!TOPIC_NAME.test(name)) return { errorCode: KafkaErrorCode.INVALID_TOPIC_EXCEPTION, name, isInternal, partitions: [] };
  const topic = s.view.topic(name);
  if (!topic) return { errorCode: KafkaErrorCode.UNKNOWN_TOPIC_OR_PARTITION, name, isInternal, partitions: [] };
  const states = s.view.partitionsOf(name);
  const partitions = [...states.values()]
    .sort((a, b) => a.partition - b.partition)
    .map((p) => ({
      errorCode: p.leader >= 0 ? KafkaErrorCode.NONE : KafkaErrorCode.LEADER_NOT_AVAILABLE,
      partitionIndex: p.partition,
      leaderId: p.leader >= 0 ? advertised(p.leader) : -1,
      replicaNodes: p.replicas,
      isrNodes: p.isr,
      offlineReplicas: p.replicas.filter((r) => !alive.has(r)),
    }));
  // While the controller is still writing the partition states of a new topic, say so rather
  // than hand out a partition count that is about to change (keyed partitioning depends on it).
  const errorCode = states.size === topic.partitions ? KafkaErrorCode.NONE : KafkaErrorCode.LEADER_NOT_AVAILABLE;
  return { errorCode, name, isInternal, partitions };
}
