// Cluster metadata records (stored as JSON in the JetStream KV buckets) and the messages of
// the controller and of partition replicas.
//
// Buckets, per cluster C:
//   skein-C-meta   (no TTL)  topic.<T>            TopicRecord
//                            partition.<T>.<P>     PartitionState   (CAS on every write)
//   skein-C-live   (TTL)     controller           ControllerLease  (create / update with revision)
//                            broker.<B>           BrokerRegistration (heartbeat rewrites it)
// <T> is the topic name escaped like a subject token (see protocol/address.ts).

import { z } from "zod";
import { escapeToken } from "./address.js";
import { workerPinnedAddress } from "./placement.js";
import { ErrorCode, SkeinError } from "./errors.js";

export const TOPIC_NAME = /^[A-Za-z0-9._-]{1,249}$/;
/** Largest partition count per topic. */
export const MAX_PARTITIONS_PER_TOPIC = 10_000;
/** Broker ids are small non-negative integers, like Kafka's. */
export const BrokerId = z.number().int().min(0).max(1_000_000);

export function validateTopicName(name: unknown): string {
  if (typeof name !== "string" || !TOPIC_NAME.test(name) || name === "." || name === "..") {
    throw new SkeinError(ErrorCode.INVALID_TOPIC, `invalid topic name ${JSON.stringify(name)}: use 1-249 of [A-Za-z0-9._-], not "." or ".."`, {
      topic: String(name),
    });
  }
  return name;
}

export const metaBucket = (cluster: string) => `skein-${escapeToken(cluster)}-meta`;
export const liveBucket = (cluster: string) => `skein-${escapeToken(cluster)}-live`;
export const topicKey = (topic: string) => `topic.${escapeToken(topic)}`;
export const partitionKey = (topic: string, partition: number) => `partition.${escapeToken(topic)}.${partition}`;
export const brokerKey = (broker: number) => `broker.${broker}`;
export const CONTROLLER_KEY = "controller";
/** Last producer id handed out (meta bucket). */
export const PRODUCER_ID_KEY = "producer-id";
export const replicaAddress = (topic: string, partition: number, broker: number) => `replica/${topic}/${partition}@${broker}`;
export const controllerAddress = (broker: number) => `controller@${broker}`;
/** The fetch server on worker `worker` of broker `broker` (which has `workers` workers). */
export const fetchServerAddress = (broker: number, worker: number, workers: number) => workerPinnedAddress("fetch-server", worker, String(broker), workers);
/** The fetcher on worker `worker` of broker `broker`. */
export const fetcherAddress = (broker: number, worker: number, workers: number) => workerPinnedAddress("fetcher", worker, String(broker), workers);

/** Per-topic configs, Kafka names. Values are validated by parseTopicConfigs. */
export const TopicConfigs = z
  .object({
    "retention.ms": z.number().int().min(-1),
    "retention.bytes": z.number().int().min(-1),
    "segment.bytes": z.number().int().min(1024).max(2 ** 31 - 1),
    "segment.ms": z.number().int().min(1),
    "cleanup.policy": z.enum(["delete", "compact"]),
    "delete.retention.ms": z.number().int().min(0),
    "min.insync.replicas": z.number().int().min(1),
    "max.message.bytes": z.number().int().min(64),
    "unclean.leader.election.enable": z.boolean(),
    "flush.messages": z.number().int().min(1),
    "flush.ms": z.number().int().min(1),
    /** Skein extension (a broker-wide setting in Kafka): how often retention runs, ms. */
    "retention.check.interval.ms": z.number().int().min(10),
  })
  .partial()
  .strict();
export type TopicConfigs = z.infer<typeof TopicConfigs>;

/** Parses `key=value` strings (CLI) into typed topic configs; throws INVALID_CONFIG. */
export function parseTopicConfigs(input: Record<string, unknown>): TopicConfigs {
  const coerced: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(input)) {
    if (typeof v !== "string") coerced[k] = v;
    else if (k === "cleanup.policy") coerced[k] = v;
    else if (v === "true" || v === "false") coerced[k] = v === "true";
    else coerced[k] = /^-?\d+$/.test(v) ? Number(v) : v;
  }
  const r = TopicConfigs.safeParse(coerced);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new SkeinError(ErrorCode.INVALID_CONFIG, `invalid topic config ${issue.path.join(".") || ""}: ${issue.message}`, { field: issue.path.join(".") });
  }
  return r.data;
}

export const TopicRecord = z.object({
  name: z.string(),
  /** Unique per creation, so a re-created topic is never confused with its predecessor. */
  id: z.string(),
  partitions: z.number().int().min(1),
  replicationFactor: z.number().int().min(1),
  configs: TopicConfigs,
  createdAt: z.number(),
});
export type TopicRecord = z.infer<typeof TopicRecord>;

export const PartitionState = z.object({
  topic: z.string(),
  topicId: z.string(),
  partition: z.number().int().min(0),
  /** Broker id of the leader, -1 when offline. */
  leader: z.number().int().min(-1),
  leaderEpoch: z.number().int().min(0),
  isr: z.array(BrokerId),
  /** Assigned replicas; the first is the preferred leader. */
  replicas: z.array(BrokerId),
  /** Epoch of the controller that last elected a leader here. */
  controllerEpoch: z.number().int().min(0),
});
export type PartitionState = z.infer<typeof PartitionState>;

export const ControllerLease = z.object({ broker: BrokerId, since: z.number() });
export type ControllerLease = z.infer<typeof ControllerLease>;

export const BrokerRegistration = z.object({
  broker: BrokerId,
  pid: z.number().int(),
  host: z.string(),
  workers: z.number().int(),
  startedAt: z.number(),
  heartbeatAt: z.number(),
  kafkaPort: z.number().int().optional(),
});
export type BrokerRegistration = z.infer<typeof BrokerRegistration>;

export const Acks = z.union([z.literal(0), z.literal(1), z.literal(-1)]);

/** A fetch error as data (code, message, and the leader's log start for OFFSET_OUT_OF_RANGE). */
export const FetchError = z.object({ code: z.string(), message: z.string(), logStartOffset: z.number().int().optional() });
export type FetchError = z.infer<typeof FetchError>;

/** Messages a partition replica accepts. */
export const ReplicaMessages = {
  /** The topic's configs changed (AlterTopicConfigs): the log takes them over, for a replica of that topic id. */
  Configure: z.object({
    topicId: z.string(),
    configs: TopicConfigs,
    /** KV revision of the topic record they come from: an older one than the replica applied is ignored. */
    revision: z.number().int().nonnegative().optional(),
  }),
  /** Client produce: one or more record batches; leader only. */
  Produce: z.object({
    batches: z.instanceof(Uint8Array),
    /** 0, 1 or -1 (all). */
    acks: Acks.default(-1),
    /** How long an acks=all produce may wait for the ISR, ms. */
    timeoutMs: z.number().int().min(1).max(300_000).default(30_000),
  }),
  /** Consumer or follower fetch; leader only. */
  Fetch: z.object({
    fromOffset: z.number().int().min(0),
    maxBytes: z.number().int().min(1).max(64 * 1024 * 1024).default(1024 * 1024),
    maxWaitMs: z.number().int().min(0).max(300_000).default(500),
    /** Set by followers; consumers leave it out. */
    replicaId: BrokerId.optional(),
    /** The fetcher's view of the leader epoch; fenced when stale. */
    leaderEpoch: z.number().int().min(-1).default(-1),
    /** Internal (the group coordinator loading its partition on the leader): read to the log end, not the HW. */
    upToLogEnd: z.boolean().default(false),
  }),
  /** Follower asks where its latest epoch ends on the leader (Kafka OffsetsForLeaderEpoch). */
  OffsetsForLeaderEpoch: z.object({
    epoch: z.number().int().min(-1),
    replicaId: BrokerId,
    /** The asker's view of the current leader epoch (KIP-320): a leader at another epoch refuses to answer. */
    leaderEpoch: z.number().int().min(-1).default(-1),
  }),
  /**
   * From the broker agent: the partition state in the KV changed, with the KV revision it was
   * written at (a later revision supersedes: the replica drops a state older than one it applied).
   */
  Become: PartitionState.extend({ revision: z.number().int().min(0) }),
  /** HW, LEO, log start and role, for describe/admin. */
  Describe: z.object({}),
  /** Earliest / latest / by timestamp. */
  ListOffset: z.object({ timestamp: z.number().int() /* -2 earliest, -1 latest */ }),
  /** Internal: the leader's answer to this follower's OffsetsForLeaderEpoch, delivered to itself. */
  EpochAnswered: z.object({
    /** The leader epoch the query was made in; an answer from an older epoch is dropped. */
    epoch: z.number().int(),
    endOffset: z.number().int().optional(),
    endEpoch: z.number().int().optional(),
    error: z.object({ code: z.string(), message: z.string() }).optional(),
  }),
  /** Internal: follow again (a while after a failed epoch query or fetch). */
  FollowAgain: z.object({}),
  /** Internal timer tick (ISR shrink check and joins that lost a race, long-poll expiry). */
  Tick: z.object({}),
  /**
   * From this worker's fetcher: what the leader answered for this follower (batches to append
   * from `fromOffset`, or an error). Answers `{ logEndOffset, follow }`; follow=false takes the
   * partition out of the fetcher's session until the replica sends Follow again.
   */
  FollowerData: z.object({
    leaderEpoch: z.number().int(),
    fromOffset: z.number().int().min(0),
    data: z.instanceof(Uint8Array).optional(),
    highWatermark: z.number().int().optional(),
    error: FetchError.optional(),
  }),
};

/** Replication fetch sessions: one request per (follower worker, leader worker) pair. */
export const SessionPartition = z.object({
  topic: z.string(),
  partition: z.number().int().min(0),
  fetchOffset: z.number().int().min(0),
  leaderEpoch: z.number().int().min(-1),
});
export type SessionPartition = z.infer<typeof SessionPartition>;

/** Messages of a fetch server: one per worker of a broker, serving the leaders on that worker. */
export const FetchServerMessages = {
  /**
   * A follower worker's fetch for all partitions it follows whose leaders are on this worker.
   * Answered when any partition
   * has data or an error, or after maxWaitMs with nothing; a newer FetchMany of the same
   * session answers a parked one at once, empty.
   */
  FetchMany: z.object({
    session: z.string().min(1).max(300),
    /**
     * The client instance (a restarted client is a new one) and its request number, increasing
     * per instance: a copy of a request already served (the transport delivered it twice, or
     * late) is not served again. Serving it would hand out results its answer, dropped by the
     * client as a duplicate reply, took with it, and the client would wait for them forever.
     */
    instance: z.string().min(1).max(100),
    seq: z.number().int().min(1),
    replicaId: BrokerId,
    maxWaitMs: z.number().int().min(0).max(60_000),
    maxBytes: z.number().int().min(1024).max(64 * 1024 * 1024),
    /**
     * full: `partitions` is the whole session (a new session, or after an error). Otherwise
     * only what changed since the previous FetchMany: new or moved partitions in `partitions`,
     * partitions that left in `removed` (Kafka's incremental fetch sessions, KIP-227). An
     * incremental request for a session the server does not know gets FETCH_SESSION_NOT_FOUND.
     */
    full: z.boolean(),
    partitions: z.array(SessionPartition).max(100_000),
    removed: z.array(z.object({ topic: z.string(), partition: z.number().int().min(0) })).max(100_000).default([]),
  }),
  /** Internal: a local replica answered the server's fetch for one session partition. */
  LocalFetched: z.object({
    session: z.string(),
    key: z.string(),
    generation: z.number().int(),
    data: z.instanceof(Uint8Array).optional(),
    highWatermark: z.number().int().optional(),
    error: FetchError.optional(),
  }),
  Tick: z.object({}),
};

/** One partition of a FetchMany answer: a slice of the answer's `data` (start, length) or an error. */
export const FetchManyEntry = z.object({
  topic: z.string(),
  partition: z.number().int(),
  fetchOffset: z.number().int(),
  start: z.number().int(),
  length: z.number().int(),
  highWatermark: z.number().int().optional(),
  error: FetchError.optional(),
});

export interface FetchManyResult {
  results: Array<z.infer<typeof FetchManyEntry>>;
  data: Uint8Array;
}

/**
 * Consumer fetch sessions: a consumer's one request per leader worker for all its partitions
 * led there, served by the same fetch server as the followers' sessions. Unlike a follower's,
 * a consumer session reads up to the high watermark only and never counts as a follower's
 * fetch (no effect on LEO, ISR or HW); it carries no replica id and no leader epoch.
 */
export const ConsumerSessionMessages = {
  /**
   * All partitions of one consumer whose leaders are on this worker. Answered when any listed
   * partition has data or an error (each partition's result once; it is fetched again when
   * listed again), or after maxWaitMs with nothing; a newer request of the same session answers
   * a parked one at once, empty. `full` and `removed` work as in FetchMany.
   */
  ConsumerFetchMany: z.object({
    session: z.string().min(1).max(300),
    /** Client instance and request number, as in FetchMany: a copy of a request already served is not served again. */
    instance: z.string().min(1).max(100),
    seq: z.number().int().min(1),
    maxWaitMs: z.number().int().min(0).max(60_000),
    /** Bytes per answer, all partitions together (at least one partition's batches). */
    maxBytes: z.number().int().min(1024).max(64 * 1024 * 1024),
    /** Bytes per partition per answer. */
    partitionMaxBytes: z.number().int().min(1024).max(64 * 1024 * 1024),
    /** The answer waits until this many bytes are ready (or an error, or maxWaitMs is up): Kafka's fetch min bytes. */
    minBytes: z.number().int().min(1).max(64 * 1024 * 1024).default(1),
    full: z.boolean(),
    partitions: z.array(SessionPartition).max(100_000),
    removed: z.array(z.object({ topic: z.string(), partition: z.number().int().min(0) })).max(100_000).default([]),
  }),
  /** Internal: a consumer session's parked request reached its maxWaitMs. */
  ConsumerSessionExpire: z.object({ session: z.string(), seq: z.number().int() }),
  /** A stopping consumer's goodbye (a tell): its session ends now rather than when it idles out. */
  ConsumerSessionClose: z.object({ session: z.string().min(1).max(300), instance: z.string().min(1).max(100) }),
};

/** Messages of a fetcher: one per worker of a broker, fetching for the follower replicas on that worker. */
export const FetcherMessages = {
  /** A follower replica starts (or restarts) following `leader` from `fetchOffset`. */
  Follow: z.object({
    topic: z.string(),
    partition: z.number().int().min(0),
    leader: BrokerId,
    leaderEpoch: z.number().int().min(-1),
    fetchOffset: z.number().int().min(0),
    replica: z.string(),
  }),
  /** The replica stopped following (leader now, offline, stopped). */
  Unfollow: z.object({ topic: z.string(), partition: z.number().int().min(0) }),
  /** Internal: a session's FetchMany was answered (or failed). */
  SessionAnswered: z.object({
    session: z.string(),
    seq: z.number().int(),
    results: z.array(FetchManyEntry).default([]),
    data: z.instanceof(Uint8Array).optional(),
    error: FetchError.optional(),
  }),
  /** Internal: retry a session after a failed request. */
  Retry: z.object({ session: z.string() }),
};

export const ControllerMessages = {
  CreateTopic: z.object({
    name: z.string(),
    partitions: z.number().int(),
    replicationFactor: z.number().int(),
    configs: z.record(z.string(), z.unknown()).default({}),
  }),
  DeleteTopic: z.object({ name: z.string() }),
  /** Grow a topic to `totalCount` partitions (never shrink). */
  CreatePartitions: z.object({ name: z.string(), totalCount: z.number().int() }),
  /**
   * Change a topic's configs: each entry sets its config, a null value returns it to the default;
   * configs not named keep their values (Kafka's IncrementalAlterConfigs SET and DELETE).
   */
  AlterTopicConfigs: z.object({ name: z.string(), configs: z.record(z.string(), z.unknown()), validateOnly: z.boolean().default(false) }),
  /** A new producer id for an idempotent producer (epoch 0). */
  InitProducerId: z.object({}),
  /** Creates __consumer_offsets if it does not exist yet (first FindCoordinator). */
  EnsureOffsetsTopic: z.object({}),
  Status: z.object({}),
  /** Internal timer tick: liveness, elections, preferred leaders. */
  Tick: z.object({}),
  /** Internal: a worker exited or came back (runtime event forwarded to the controller). */
  WorkerEvent: z.object({ type: z.enum(["worker.exited", "worker.restarted"]), node: z.string(), actors: z.array(z.string()) }),
};

export interface ProduceResult {
  baseOffset: number;
  lastOffset: number;
  logAppendTime: number;
}

export interface FetchResult {
  data: Uint8Array;
  highWatermark: number;
  logStartOffset: number;
  logEndOffset: number;
  leaderEpoch: number;
}

export interface ReplicaDescription {
  topic: string;
  partition: number;
  broker: number;
  role: "leader" | "follower" | "offline";
  leaderEpoch: number;
  highWatermark: number;
  logStartOffset: number;
  logEndOffset: number;
  isr: number[];
  /** A follower's fetching: a fetch (or epoch query) outstanding, and whether it must truncate first. */
  following?: { fetchInFlight: boolean; fetchEpoch: number; needsTruncation: boolean };
  /** A leader's view of its followers: the offset each last fetched from and how long ago (ms; -1: never). */
  followers?: Record<string, { logEndOffset: number; lastFetchAgoMs: number; parked: boolean }>;
}

// Produce fan-in ------------------------------------------------------------------------------
// A producer sends the batches of all its partitions led by one worker of one broker as one
// ProduceMany to that worker's produce server (Kafka's ProduceRequest carries many partitions
// too): one NATS message and one wake-up per leader worker instead of one per partition.
//
// ProduceMany layout: `entries` (JSON) name each partition and where its batches are in the
// binary field `data`: bytes [start, start + length). Each entry holds what one plain Produce
// would (an idempotent entry: exactly one batch). The answer lists one result per entry, in
// entry order, once every entry is decided.

/** The produce server on worker `worker` of broker `broker` (which has `workers` workers). */
export const produceServerAddress = (broker: number, worker: number, workers: number) => workerPinnedAddress("produce-server", worker, String(broker), workers);

/** Most entries a produce server takes in one ProduceMany. */
export const MAX_PRODUCE_MANY_ENTRIES = 10_000;

export const ProduceManyEntry = z.object({
  topic: z.string(),
  partition: z.number().int().min(0),
  /** Where the entry's batches start in `data`, bytes. */
  start: z.number().int().min(0),
  length: z.number().int().min(1),
});

/** Messages of a produce server: one per worker of a broker, in front of the leaders on that worker. */
export const ProduceServerMessages = {
  ProduceMany: z
    .object({
      /** 0, 1 or -1 (all), for every entry. With 0 it comes as a tell and nothing answers. */
      acks: Acks,
      /** How long an acks=all entry may wait for the ISR, ms. */
      timeoutMs: z.number().int().min(1).max(300_000),
      entries: z.array(ProduceManyEntry).min(1).max(MAX_PRODUCE_MANY_ENTRIES),
      data: z.instanceof(Uint8Array),
    })
    .superRefine((m, ctx) => {
      m.entries.forEach((e, i) => {
        if (e.start + e.length > m.data.length) ctx.addIssue({ code: "custom", path: ["entries", i, "length"], message: `entry ends at byte ${e.start + e.length}, past the ${m.data.length} bytes of data` });
      });
    }),
};

/** One entry's outcome: where its batches were appended, or why not (that entry alone). */
export type ProduceManyOutcome =
  | { topic: string; partition: number; baseOffset: number }
  | { topic: string; partition: number; error: { code: string; message: string; retriable: boolean } };

export interface ProduceManyResult {
  /** The answering broker's worker count: a producer that placed entries by a stale count corrects it. */
  workers: number;
  /** One per entry, in entry order. */
  results: ProduceManyOutcome[];
}
