// DescribeConfigs: a topic's configs (Kafka names) with where each value comes from: set on
// the topic, or Skein's default. Brokers have no configs a Kafka client can use; a broker
// resource answers an empty list.

import { ConfigResourceType, ConfigSource, DescribeConfigs } from "../../../protocol/kafka/describe-configs.js";
import { KafkaErrorCode } from "../../../protocol/kafka/errors.js";
import { TopicConfigs, type TopicRecord } from "../../../protocol/cluster.js";
import type { RequestOf, ResponseIn } from "../../../protocol/kafka/api.js";
import { DEFAULT_LOG_CONFIG } from "../../log/config.js";
import { defineHandler } from "../handler.js";
import type { GatewayServices } from "../types.js";

type ResourceRequest = RequestOf<typeof DescribeConfigs>["resources"][number];
type ResourceOut = ResponseIn<typeof DescribeConfigs>["results"][number];

/** Values a topic has when the config is not set on it; null = not applicable (no forced flush). */
const DEFAULTS: Readonly<Record<string, string | null>> = {
  "retention.ms": String(DEFAULT_LOG_CONFIG.retentionMs),
  "retention.bytes": String(DEFAULT_LOG_CONFIG.retentionBytes),
  "segment.bytes": String(DEFAULT_LOG_CONFIG.segmentBytes),
  "segment.ms": String(DEFAULT_LOG_CONFIG.segmentMs),
  "cleanup.policy": DEFAULT_LOG_CONFIG.cleanupPolicy,
  "delete.retention.ms": String(DEFAULT_LOG_CONFIG.deleteRetentionMs),
  "min.insync.replicas": "1",
  "max.message.bytes": String(DEFAULT_LOG_CONFIG.maxMessageBytes),
  "unclean.leader.election.enable": "false",
  "flush.messages": null,
  "flush.ms": null,
};

const CONFIG_NAMES = Object.keys(TopicConfigs.shape);

export const describeConfigsHandler = defineHandler(DescribeConfigs, async (request, ctx) => ({
  throttleTimeMs: 0,
  results: request.resources.map((r) => describe(ctx.services, r)),
}));

function describe(s: GatewayServices, r: ResourceRequest): ResourceOut {
  const base = { resourceType: r.resourceType, resourceName: r.resourceName };
  if (r.resourceType === ConfigResourceType.BROKER) return { ...base, errorCode: KafkaErrorCode.NONE, errorMessage: null, configs: [] };
  if (r.resourceType !== ConfigResourceType.TOPIC) {
    return { ...base, errorCode: KafkaErrorCode.INVALID_REQUEST, errorMessage: `resource type ${r.resourceType} is not supported (2 = topic, 4 = broker)`, configs: [] };
  }
  const topic = s.view.topic(r.resourceName);
  if (!topic) return { ...base, errorCode: KafkaErrorCode.UNKNOWN_TOPIC_OR_PARTITION, errorMessage: `topic ${r.resourceName} does not exist`, configs: [] };
  const names = r.configurationKeys === null ? CONFIG_NAMES : CONFIG_NAMES.filter((n) => r.configurationKeys!.includes(n));
  return { ...base, errorCode: KafkaErrorCode.NONE, errorMessage: null, configs: names.map((n) => entry(topic, n)) };
}

function entry(topic: TopicRecord, name: string) {
  const set = (topic.configs as Record<string, unknown>)[name];
  const isDefault = set === undefined;
  return {
    name,
    value: isDefault ? (DEFAULTS[name] ?? null) : String(set),
    readOnly: false,
    isDefault,
    configSource: isDefault ? ConfigSource.DEFAULT_CONFIG : ConfigSource.TOPIC_CONFIG,
    isSensitive: false,
    synonyms: [],
  };
}
