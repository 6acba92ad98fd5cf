// Typed errors shared by every layer. Callers decide what to retry by `retriable`, never by
// parsing message text. Codes follow Kafka's names where Kafka has one, so the Kafka gateway
// can map them one to one.

export const ErrorCode = {
  INVALID_REQUEST: "INVALID_REQUEST",
  ACTOR_NOT_FOUND: "ACTOR_NOT_FOUND",
  TIMEOUT: "TIMEOUT",
  MAILBOX_FULL: "MAILBOX_FULL",
  ACTOR_FAILED: "ACTOR_FAILED",
  WORKER_LOST: "WORKER_LOST",
  NOT_CONNECTED: "NOT_CONNECTED",
  CORRUPT_MESSAGE: "CORRUPT_MESSAGE",
  OFFSET_OUT_OF_RANGE: "OFFSET_OUT_OF_RANGE",
  MESSAGE_TOO_LARGE: "MESSAGE_TOO_LARGE",
  KAFKA_STORAGE_ERROR: "KAFKA_STORAGE_ERROR",
  UNKNOWN_TOPIC_OR_PARTITION: "UNKNOWN_TOPIC_OR_PARTITION",
  INVALID_TOPIC: "INVALID_TOPIC",
  TOPIC_ALREADY_EXISTS: "TOPIC_ALREADY_EXISTS",
  INVALID_PARTITIONS: "INVALID_PARTITIONS",
  INVALID_REPLICATION_FACTOR: "INVALID_REPLICATION_FACTOR",
  INVALID_CONFIG: "INVALID_CONFIG",
  NOT_LEADER_OR_FOLLOWER: "NOT_LEADER_OR_FOLLOWER",
  LEADER_NOT_AVAILABLE: "LEADER_NOT_AVAILABLE",
  NOT_ENOUGH_REPLICAS: "NOT_ENOUGH_REPLICAS",
  FENCED_LEADER_EPOCH: "FENCED_LEADER_EPOCH",
  UNKNOWN_LEADER_EPOCH: "UNKNOWN_LEADER_EPOCH",
  STALE_CONTROLLER_EPOCH: "STALE_CONTROLLER_EPOCH",
  NOT_CONTROLLER: "NOT_CONTROLLER",
  OUT_OF_ORDER_SEQUENCE: "OUT_OF_ORDER_SEQUENCE",
  /** A replication fetch session the leader's fetch server does not know (restarted): send the full list. */
  FETCH_SESSION_NOT_FOUND: "FETCH_SESSION_NOT_FOUND",
  DUPLICATE_SEQUENCE: "DUPLICATE_SEQUENCE",
  INVALID_PRODUCER_EPOCH: "INVALID_PRODUCER_EPOCH",
  COORDINATOR_NOT_AVAILABLE: "COORDINATOR_NOT_AVAILABLE",
  NOT_COORDINATOR: "NOT_COORDINATOR",
  COORDINATOR_LOAD_IN_PROGRESS: "COORDINATOR_LOAD_IN_PROGRESS",
  ILLEGAL_GENERATION: "ILLEGAL_GENERATION",
  UNKNOWN_MEMBER_ID: "UNKNOWN_MEMBER_ID",
  REBALANCE_IN_PROGRESS: "REBALANCE_IN_PROGRESS",
  INCONSISTENT_GROUP_PROTOCOL: "INCONSISTENT_GROUP_PROTOCOL",
  GROUP_ID_NOT_FOUND: "GROUP_ID_NOT_FOUND",
  NON_EMPTY_GROUP: "NON_EMPTY_GROUP",
  FENCED_INSTANCE_ID: "FENCED_INSTANCE_ID",
  INVALID_GROUP_ID: "INVALID_GROUP_ID",
  INVALID_SESSION_TIMEOUT: "INVALID_SESSION_TIMEOUT",
  /** Fault injection asked of a node that was not started with fault injection allowed. */
  FAULTS_NOT_ALLOWED: "FAULTS_NOT_ALLOWED",
  UNKNOWN: "UNKNOWN",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const RETRIABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  ErrorCode.ACTOR_NOT_FOUND,
  ErrorCode.TIMEOUT,
  ErrorCode.MAILBOX_FULL,
  ErrorCode.WORKER_LOST,
  ErrorCode.NOT_CONNECTED,
  ErrorCode.CORRUPT_MESSAGE,
  ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
  ErrorCode.NOT_LEADER_OR_FOLLOWER,
  ErrorCode.LEADER_NOT_AVAILABLE,
  ErrorCode.NOT_ENOUGH_REPLICAS,
  ErrorCode.FENCED_LEADER_EPOCH,
  ErrorCode.UNKNOWN_LEADER_EPOCH,
  ErrorCode.NOT_CONTROLLER,
  ErrorCode.COORDINATOR_NOT_AVAILABLE,
  ErrorCode.NOT_COORDINATOR,
  ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
  ErrorCode.REBALANCE_IN_PROGRESS,
  ErrorCode.FETCH_SESSION_NOT_FOUND,
]);

/** Context that makes an error actionable: which actor, topic, partition or broker. */
export interface ErrorContext {
  address?: string;
  topic?: string;
  partition?: number;
  broker?: string;
  /** zod issue path for INVALID_REQUEST, e.g. "amount" or "records.0.key". */
  field?: string;
  [key: string]: unknown;
}

/**
 * Brand shared by every copy of this class: each esbuild bundle (CLI, worker, actors module)
 * carries its own copy, so `instanceof` checks the brand rather than the prototype chain.
 */
const BRAND = Symbol.for("skein.SkeinError");

export class SkeinError extends Error {
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }

  readonly [BRAND] = true;
  readonly code: ErrorCode;
  readonly retriable: boolean;
  readonly context: ErrorContext;

  constructor(code: ErrorCode, message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "SkeinError";
    this.code = code;
    this.retriable = RETRIABLE.has(code);
    this.context = context;
  }

  /** Plain object form that crosses NATS and worker boundaries. */
  toWire(): WireError {
    return { code: this.code, message: this.message, context: this.context };
  }

  static fromWire(w: WireError): SkeinError {
    const code = (Object.values(ErrorCode) as string[]).includes(w.code) ? (w.code as ErrorCode) : ErrorCode.UNKNOWN;
    return new SkeinError(code, w.message, w.context ?? {});
  }
}

export interface WireError {
  code: string;
  message: string;
  context?: ErrorContext;
}

export function isSkeinError(e: unknown, code?: ErrorCode): e is SkeinError {
  return e instanceof SkeinError && (code === undefined || e.code === code);
}

/** Turns anything thrown into a SkeinError, keeping the original as `cause`. */
export function toSkeinError(e: unknown, context: ErrorContext = {}): SkeinError {
  if (e instanceof SkeinError) return e;
  const message = e instanceof Error ? e.message : String(e);
  return new SkeinError(ErrorCode.UNKNOWN, message, context, { cause: e });
}
