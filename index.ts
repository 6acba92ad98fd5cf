// `import { Skein } from "skein"`: the client library, plus the runtime for user-defined actors.
export { Skein, Producer, Consumer, Admin, type SkeinConfig, type ProducerConfig, type ConsumerConfig, type KafkaMessage, type EachMessagePayload, type EachBatchPayload, type CommittedOffset, type GroupListing, type GroupDescription } from "./actors/client/skein.js";
export type { GroupEvent } from "./protocol/client.js";
export type { SendResult } from "./actors/client/producer.js";
export { partitionForKey, murmur2 } from "./protocol/murmur2.js";
export * from "./runtime/mod.js";
// Fault injection and the checker, for your own failure-modelling workloads (README "Failure modelling").
export { Nemesis, type NemesisOptions, type OwnedBrokers } from "./actors/chaos/nemesis.js";
export { checkHistory, summarize, verdictJson, SAFETY_ANOMALIES, LIVENESS_FAILURES, type CheckOptions, type CheckResult, type SafetyAnomaly } from "./actors/chaos/checker.js";
export { HistoryRecorder, parseHistoryJsonl, historyToJsonl, type History, type HistoryOp, type OpInput } from "./actors/chaos/history.js";
