// Kafka wire-protocol gateway: existing Kafka clients (kafkajs) talk to Skein unchanged.
export { KafkaGateway, type GatewayStats } from "./gateway.js";
export type { KafkaGatewayOptions, GatewayLogger } from "./types.js";
