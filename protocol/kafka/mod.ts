// The Kafka wire codec: primitives, message grammars per API (one file each, grammar at the
// top), headers and framing. No I/O; the gateway (actors/gateway) serves it over TCP.

export * from "./primitives.js";
export * from "./schema.js";
export * from "./api-keys.js";
export * from "./errors.js";
export * from "./header.js";
export * from "./framing.js";
export { ApiVersions } from "./api-versions.js";
export { Metadata } from "./metadata.js";
export { Produce } from "./produce.js";
export { Fetch } from "./fetch.js";
export { ListOffsets } from "./list-offsets.js";
export { CreateTopics } from "./create-topics.js";
export { DeleteTopics } from "./delete-topics.js";
export { CreatePartitions } from "./create-partitions.js";
export { DescribeConfigs, ConfigResourceType, ConfigSource } from "./describe-configs.js";
export { AlterConfigs } from "./alter-configs.js";
export { IncrementalAlterConfigs, ConfigOperation } from "./incremental-alter-configs.js";
export { InitProducerId } from "./init-producer-id.js";
export type { RequestOf, ResponseIn } from "./api.js";
