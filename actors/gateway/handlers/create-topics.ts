// CreateTopics through the controller. num_partitions / replication_factor of -1 take the
// gateway's defaults (kafkajs sends -1 when the caller leaves them out). validate_only runs
// the controller's checks here without creating anything.

import { CreateTopics } from "../../../protocol/kafka/create-topics.js";
import { KafkaErrorCode } from "../../../protocol/kafka/errors.js";
import { ErrorCode, SkeinError } from "../../../protocol/errors.js";
import { MAX_PARTITIONS_PER_TOPIC, parseTopicConfigs, validateTopicName } from "../../../protocol/cluster.js";
import type { RequestOf } from "../../../protocol/kafka/api.js";
import { defineHandler } from "../handler.js";
import type { GatewayServices } from "../types.js";
import { DUPLICATE_MESSAGE, NO_ASSIGNMENT_MESSAGE, awaitLeaders, duplicates, failure, ok, refusal, type ItemResult } from "./admin.js";

type TopicRequest = RequestOf<typeof CreateTopics>["topics"][number];

export const createTopicsHandler = defineHandler(CreateTopics, async (request, ctx) => {
  const twice = duplicates(request.topics.map((t) => t.name));
  const topics = await Promise.all(
    request.topics.map((t) =>
      twice.has(t.name) ? refusal(t.name, KafkaErrorCode.INVALID_REQUEST, DUPLICATE_MESSAGE) : createTopic(ctx.services, t, request.validateOnly, request.timeoutMs),
    ),
  );
  return { throttleTimeMs: 0, topics };
});

async function createTopic(s: GatewayServices, t: TopicRequest, validateOnly: boolean, timeoutMs: number): Promise<ItemResult> {
  if (t.assignments.length > 0) return refusal(t.name, KafkaErrorCode.INVALID_REPLICA_ASSIGNMENT, NO_ASSIGNMENT_MESSAGE);
  try {
    const live = await s.view.liveCluster();
    const partitions = t.numPartitions === -1 ? s.options.defaultPartitions : t.numPartitions;
    const replicationFactor = t.replicationFactor === -1 ? Math.min(s.options.defaultReplicationFactor, Math.max(live.brokers.length, 1)) : t.replicationFactor;
    const configs: Record<string, string> = {};
    for (const c of t.configs) if (c.value !== null) configs[c.name] = c.value;
    if (validateOnly) {
      validate(s, t.name, partitions, replicationFactor, live.brokers.length, configs);
      return ok(t.name);
    }
    await s.client.createTopic(t.name, partitions, replicationFactor, configs);
    await awaitLeaders(s, t.name, timeoutMs, () => s.view.isComplete(t.name));
    return ok(t.name);
  } catch (e) {
    return failure(t.name, e);
  }
}

/** The controller's checks, for validate_only. */
function validate(s: GatewayServices, name: string, partitions: number, replicationFactor: number, liveBrokers: number, configs: Record<string, string>): void {
  validateTopicName(name);
  if (partitions < 1 || partitions > MAX_PARTITIONS_PER_TOPIC) {
    throw new SkeinError(ErrorCode.INVALID_PARTITIONS, `partitions must be 1-${MAX_PARTITIONS_PER_TOPIC}, got ${partitions}`, { topic: name });
  }
  if (replicationFactor < 1 || replicationFactor > liveBrokers) {
    throw new SkeinError(ErrorCode.INVALID_REPLICATION_FACTOR, `replication factor ${replicationFactor} is not possible with ${liveBrokers} live broker(s)`, { topic: name });
  }
  const parsed = parseTopicConfigs(configs);
  if ((parsed["min.insync.replicas"] ?? 1) > replicationFactor) {
    throw new SkeinError(ErrorCode.INVALID_CONFIG, `min.insync.replicas=${parsed["min.insync.replicas"]} exceeds replication factor ${replicationFactor}`, { topic: name });
  }
  if (s.view.topic(name)) throw new SkeinError(ErrorCode.TOPIC_ALREADY_EXISTS, `topic ${name} already exists`, { topic: name });
}
