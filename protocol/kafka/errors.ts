// Kafka error codes (https://kafka.apache.org/protocol#protocol_error_codes) and the one table
// that maps Skein's typed errors onto them. Skein's codes carry Kafka's names where Kafka has
// the condition; the rest are runtime conditions (an actor gone, a worker lost, a timeout)
// mapped to the Kafka code whose client reaction is right: refresh metadata and retry.

import { ErrorCode, isSkeinError } from "../errors.js";

export const KafkaErrorCode = {
  UNKNOWN_SERVER_ERROR: -1,
  NONE: 0,
  OFFSET_OUT_OF_RANGE: 1,
  CORRUPT_MESSAGE: 2,
  UNKNOWN_TOPIC_OR_PARTITION: 3,
  INVALID_FETCH_SIZE: 4,
  LEADER_NOT_AVAILABLE: 5,
  NOT_LEADER_OR_FOLLOWER: 6,
  REQUEST_TIMED_OUT: 7,
  BROKER_NOT_AVAILABLE: 8,
  REPLICA_NOT_AVAILABLE: 9,
  MESSAGE_TOO_LARGE: 10,
  STALE_CONTROLLER_EPOCH: 11,
  OFFSET_METADATA_TOO_LARGE: 12,
  NETWORK_EXCEPTION: 13,
  COORDINATOR_LOAD_IN_PROGRESS: 14,
  COORDINATOR_NOT_AVAILABLE: 15,
  NOT_COORDINATOR: 16,
  INVALID_TOPIC_EXCEPTION: 17,
  RECORD_LIST_TOO_LARGE: 18,
  NOT_ENOUGH_REPLICAS: 19,
  NOT_ENOUGH_REPLICAS_AFTER_APPEND: 20,
  INVALID_REQUIRED_ACKS: 21,
  ILLEGAL_GENERATION: 22,
  INCONSISTENT_GROUP_PROTOCOL: 23,
  INVALID_GROUP_ID: 24,
  UNKNOWN_MEMBER_ID: 25,
  INVALID_SESSION_TIMEOUT: 26,
  REBALANCE_IN_PROGRESS: 27,
  INVALID_COMMIT_OFFSET_SIZE: 28,
  INVALID_TIMESTAMP: 32,
  UNSUPPORTED_VERSION: 35,
  TOPIC_ALREADY_EXISTS: 36,
  INVALID_PARTITIONS: 37,
  INVALID_REPLICATION_FACTOR: 38,
  INVALID_REPLICA_ASSIGNMENT: 39,
  INVALID_CONFIG: 40,
  NOT_CONTROLLER: 41,
  INVALID_REQUEST: 42,
  UNSUPPORTED_FOR_MESSAGE_FORMAT: 43,
  POLICY_VIOLATION: 44,
  OUT_OF_ORDER_SEQUENCE_NUMBER: 45,
  DUPLICATE_SEQUENCE_NUMBER: 46,
  INVALID_PRODUCER_EPOCH: 47,
  INVALID_TXN_STATE: 48,
  INVALID_PRODUCER_ID_MAPPING: 49,
  KAFKA_STORAGE_ERROR: 56,
  UNKNOWN_PRODUCER_ID: 59,
  NON_EMPTY_GROUP: 68,
  GROUP_ID_NOT_FOUND: 69,
  FETCH_SESSION_ID_NOT_FOUND: 70,
  INVALID_FETCH_SESSION_EPOCH: 71,
  FENCED_LEADER_EPOCH: 74,
  UNKNOWN_LEADER_EPOCH: 75,
  UNSUPPORTED_COMPRESSION_TYPE: 76,
  FENCED_INSTANCE_ID: 82,
  INVALID_RECORD: 87,
} as const;
export type KafkaErrorCode = (typeof KafkaErrorCode)[keyof typeof KafkaErrorCode];

/**
 * Skein error → Kafka error, for the codes whose Kafka name differs (or that Kafka does not
 * have). A Skein code named like a Kafka code (NOT_LEADER_OR_FOLLOWER, TOPIC_ALREADY_EXISTS,
 * ILLEGAL_GENERATION, …) maps by name; a unit test checks that every Skein code maps to
 * something, so a new code cannot silently become UNKNOWN_SERVER_ERROR.
 */
export const SKEIN_TO_KAFKA: Readonly<Record<string, KafkaErrorCode>> = {
  // The replica is not where the metadata said (stopped, moved, its worker restarting): the
  // client's reaction to NOT_LEADER_OR_FOLLOWER (refresh metadata, retry) is the right one.
  [ErrorCode.ACTOR_NOT_FOUND]: KafkaErrorCode.NOT_LEADER_OR_FOLLOWER,
  [ErrorCode.ACTOR_FAILED]: KafkaErrorCode.NOT_LEADER_OR_FOLLOWER,
  [ErrorCode.WORKER_LOST]: KafkaErrorCode.NOT_LEADER_OR_FOLLOWER,
  [ErrorCode.TIMEOUT]: KafkaErrorCode.REQUEST_TIMED_OUT,
  [ErrorCode.MAILBOX_FULL]: KafkaErrorCode.REQUEST_TIMED_OUT,
  [ErrorCode.NOT_CONNECTED]: KafkaErrorCode.NETWORK_EXCEPTION,
  [ErrorCode.INVALID_TOPIC]: KafkaErrorCode.INVALID_TOPIC_EXCEPTION,
  [ErrorCode.OUT_OF_ORDER_SEQUENCE]: KafkaErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
  [ErrorCode.DUPLICATE_SEQUENCE]: KafkaErrorCode.DUPLICATE_SEQUENCE_NUMBER,
  [ErrorCode.FETCH_SESSION_NOT_FOUND]: KafkaErrorCode.FETCH_SESSION_ID_NOT_FOUND,
  // Named by string so this table does not depend on when that code lands in protocol/errors.ts.
  FAULTS_NOT_ALLOWED: KafkaErrorCode.POLICY_VIOLATION,
  [ErrorCode.UNKNOWN]: KafkaErrorCode.UNKNOWN_SERVER_ERROR,
};

const BY_NAME = KafkaErrorCode as Readonly<Record<string, KafkaErrorCode>>;

/** The Kafka error code for anything thrown; non-Skein errors are UNKNOWN_SERVER_ERROR. */
export function kafkaErrorCode(e: unknown): KafkaErrorCode {
  if (!isSkeinError(e)) return KafkaErrorCode.UNKNOWN_SERVER_ERROR;
  return SKEIN_TO_KAFKA[e.code] ?? BY_NAME[e.code] ?? KafkaErrorCode.UNKNOWN_SERVER_ERROR;
}

/**
 * The consumer-group APIs (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit,
 * OffsetFetch) answer a coordinator that cannot be reached (its partition moving, its actor
 * loading or its worker restarting) with NOT_COORDINATOR rather than the data-path code:
 * that is what makes a Kafka client look the coordinator up again and retry (a kafkajs
 * consumer whose JoinGroup or SyncGroup fails with anything else crashes and restarts).
 */
export const SKEIN_TO_KAFKA_GROUP: Readonly<Record<string, KafkaErrorCode>> = {
  [ErrorCode.ACTOR_NOT_FOUND]: KafkaErrorCode.NOT_COORDINATOR,
  [ErrorCode.ACTOR_FAILED]: KafkaErrorCode.NOT_COORDINATOR,
  [ErrorCode.WORKER_LOST]: KafkaErrorCode.NOT_COORDINATOR,
  [ErrorCode.NOT_LEADER_OR_FOLLOWER]: KafkaErrorCode.NOT_COORDINATOR,
  [ErrorCode.LEADER_NOT_AVAILABLE]: KafkaErrorCode.NOT_COORDINATOR,
  [ErrorCode.COORDINATOR_NOT_AVAILABLE]: KafkaErrorCode.NOT_COORDINATOR,
  [ErrorCode.COORDINATOR_LOAD_IN_PROGRESS]: KafkaErrorCode.NOT_COORDINATOR,
};

/** kafkaErrorCode, with SKEIN_TO_KAFKA_GROUP first: for the group membership and offset APIs. */
export function kafkaGroupErrorCode(e: unknown): KafkaErrorCode {
  return (isSkeinError(e) ? SKEIN_TO_KAFKA_GROUP[e.code] : undefined) ?? kafkaErrorCode(e);
}

/** Message for the error_message fields (Kafka clients show it), bounded like a STRING. */
export function kafkaErrorMessage(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  return text.length > 1000 ? `${text.slice(0, 997)}...` : text;
}
