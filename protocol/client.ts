// Messages of the client actors (producer and consumer) that run in a worker thread of the
// application process. The facade reaches them over a PortRef (MessagePort).

import { z } from "zod";
import { FetchError, FetchManyEntry } from "./cluster.js";

export const ProducerArgs = z.object({
  /** 0, 1 or -1 (all). */
  acks: z.union([z.literal(0), z.literal(1), z.literal(-1)]).default(-1),
  /** Producer id + per-partition sequences: retries never duplicate or reorder. */
  idempotent: z.boolean().default(true),
  /** How long a partition's batch may wait for more records, ms. */
  lingerMs: z.number().int().min(0).max(60_000).default(5),
  /** A batch is sent once it holds this many bytes. */
  batchBytes: z.number().int().min(1024).max(64 * 1024 * 1024).default(512 * 1024),
  /** Upper bound on one produce request's wait at the leader (acks=all), ms. */
  requestTimeoutMs: z.number().int().min(100).max(300_000).default(10_000),
  /** A batch not acknowledged this long after it was sealed fails its sends, ms. */
  deliveryTimeoutMs: z.number().int().min(100).max(3_600_000).default(60_000),
  /** First retry backoff, ms (doubles up to 1 s). */
  retryBackoffMs: z.number().int().min(1).max(10_000).default(50),
  /**
   * Produce requests per partition sent and not yet answered. Default 1 (see
   * ProducerConfig.maxInFlightRequests); at most 5, the batches a leader
   * remembers per producer (CACHED_BATCHES_PER_PRODUCER), so a retry is always recognised.
   */
  maxInFlightRequests: z.number().int().min(1).max(5).optional(),
});
export type ProducerArgs = z.infer<typeof ProducerArgs>;

export const ProducerMessages = {
  /** One send() call: its records framed by actors/client/frames.ts. */
  Send: z.object({ topic: z.string(), frames: z.instanceof(Uint8Array) }),
  /** Resolves once everything accepted so far is acknowledged or failed. */
  Flush: z.object({}),
  /** Internal: linger timer. */
  Linger: z.object({}),
  /** Internal: a produce request finished. */
  Sent: z.object({
    key: z.string(),
    batchId: z.number().int(),
    baseOffset: z.number().int().optional(),
    error: z.object({ code: z.string(), message: z.string(), retriable: z.boolean() }).optional(),
  }),
  /** Internal: retry a partition's in-flight batch after backoff. */
  Retry: z.object({ key: z.string() }),
};

export const ConsumerArgs = z.object({
  /** Bytes asked per partition fetch. */
  maxBytesPerPartition: z.number().int().min(1024).max(64 * 1024 * 1024).default(1024 * 1024),
  /**
   * Bytes per fetch answer from one leader worker (all its partitions of this consumer together,
   * at least one partition's batches); never more than the NATS server's max_payload allows.
   */
  fetchMaxBytes: z.number().int().min(1024).max(64 * 1024 * 1024).default(4 * 1024 * 1024),
  /** Long-poll wait of each fetch, ms. */
  maxWaitMs: z.number().int().min(0).max(30_000).default(500),
  /**
   * Bytes a fetch session's answer waits for (all its partitions together) before maxWaitMs
   * is up (kafkajs and Kafka `minBytes`); 1: answer at the first data.
   */
  minBytes: z.number().int().min(1).max(64 * 1024 * 1024).default(1),
  /** Fetched but not yet polled bytes; fetching pauses above it. */
  maxBufferedBytes: z.number().int().min(64 * 1024).max(1024 * 1024 * 1024).default(16 * 1024 * 1024),
  /** Where to start without a committed offset or after OFFSET_OUT_OF_RANGE. */
  autoOffsetReset: z.enum(["earliest", "latest", "none"]).default("latest"),
  /** Consumer-group membership; absent for manual assignment. */
  group: z
    .object({
      groupId: z.string(),
      /** Static membership: a member restarting within its session keeps its partitions. */
      groupInstanceId: z.string().min(1).optional(),
      clientId: z.string().default("skein"),
      /** The coordinator drops a member whose heartbeats stop for this long, ms. */
      sessionTimeoutMs: z.number().int().min(100).max(3_600_000).default(10_000),
      /** How long the coordinator waits for members to rejoin during a rebalance, ms. */
      rebalanceTimeoutMs: z.number().int().min(100).max(3_600_000).default(10_000),
      heartbeatIntervalMs: z.number().int().min(10).max(600_000).default(1_000),
      /** A member that does not poll for this long leaves the group (stuck processing), ms. */
      maxPollIntervalMs: z.number().int().min(100).max(3_600_000).default(300_000),
      /** Assignors in order of preference. */
      assignors: z.array(z.enum(["cooperative-sticky", "range", "roundrobin"])).min(1).default(["cooperative-sticky"]),
      autoCommit: z.boolean().default(true),
      autoCommitIntervalMs: z.number().int().min(10).max(3_600_000).default(1_000),
    })
    .optional(),
});
export type ConsumerArgs = z.infer<typeof ConsumerArgs>;

const TopicPartition = z.object({ topic: z.string(), partition: z.number().int().min(0) });

export const ConsumerMessages = {
  /** Replace the assignment; `offset` (next to read) wins over the reset policy. */
  Assign: z.object({ partitions: z.array(TopicPartition.extend({ offset: z.number().int().min(0).optional() })) }),
  Seek: TopicPartition.extend({ offset: z.number().int().min(-2) /* -2 earliest, -1 latest */ }),
  /** Seek to the first offset whose timestamp is >= `timestamp` (ms). */
  SeekTimestamp: TopicPartition.extend({ timestamp: z.number().int().min(0) }),
  Pause: z.object({ partitions: z.array(TopicPartition) }),
  Resume: z.object({ partitions: z.array(TopicPartition) }),
  /**
   * Fetched data, waiting up to maxWaitMs for some. `processed` reports how far the facade
   * got with what earlier polls returned (next offset per partition): that is what commits.
   */
  Poll: z.object({
    maxWaitMs: z.number().int().min(0).max(60_000).default(1_000),
    maxBytes: z.number().int().min(1).default(8 * 1024 * 1024),
    processed: z.array(TopicPartition.extend({ offset: z.number().int().min(0) })).default([]),
  }),
  /** Group mode: subscribe to topics (partitions come from the group's assignor). */
  Subscribe: z.object({ topics: z.array(z.string()).min(1) }),
  /** Group mode: commit these offsets (with optional application metadata), or everything processed so far. */
  Commit: z.object({ offsets: z.array(TopicPartition.extend({ offset: z.number().int().min(0), metadata: z.string().max(4096).optional() })).optional() }),
  /** Group mode: commit what was processed and leave the group (static members only commit). */
  Leave: z.object({}),
  /** Internal: the group protocol's asynchronous steps report back here. */
  GroupStep: z.object({
    step: z.enum(["joined", "synced", "heartbeat", "offsets", "committed", "revoked", "coordinator", "metadata"]),
    generation: z.number().int(),
    /** Which JoinGroup a "joined" step answers (a member sends a newer one when it must rejoin). */
    joinSeq: z.number().int().optional(),
    body: z.unknown().optional(),
    error: z.object({ code: z.string(), message: z.string() }).optional(),
  }),
  /** Internal: heartbeat / auto-commit timer. */
  GroupTick: z.object({}),
  /** Positions (next offset to hand out) of the assigned partitions. */
  Positions: z.object({}),
  /** Internal: a fetch finished. */
  Fetched: z.object({
    key: z.string(),
    generation: z.number().int(),
    fromOffset: z.number().int(),
    data: z.instanceof(Uint8Array).optional(),
    highWatermark: z.number().int().optional(),
    error: z.object({ code: z.string(), message: z.string(), logStartOffset: z.number().optional() }).optional(),
  }),
  /** Internal: start or retry fetches. */
  Kick: z.object({}),
  /** Internal: a partition's leader and the leader's worker count are known: it can join a fetch session. */
  LeaderKnown: z.object({ key: z.string(), generation: z.number().int() }),
  /** Internal: a fetch session's request was answered (results per partition) or failed. */
  SessionFetched: z.object({
    session: z.string(),
    seq: z.number().int(),
    results: z.array(FetchManyEntry).default([]),
    data: z.instanceof(Uint8Array).optional(),
    error: FetchError.optional(),
  }),
  /** Internal: send a fetch session's newer request (partitions joined while one was parked). */
  SessionRetry: z.object({ session: z.string() }),
};

export interface GroupEvent {
  type: "group.join" | "group.revoke" | "group.leave" | "group.fenced";
  generation: number;
  memberId: string;
  partitions: Array<{ topic: string; partition: number }>;
  at: number;
}

export interface PollResult {
  chunks: PolledChunk[];
  events: GroupEvent[];
}

export interface PolledChunk {
  topic: string;
  partition: number;
  /** Records below this offset in `data` were already handed out: skip them. */
  fromOffset: number;
  data: Uint8Array;
  highWatermark: number;
}
