// Consumer groups: the coordinator's messages (Kafka's classic group protocol: join, sync,
// heartbeat, leave, with generations) and the records it keeps in `__consumer_offsets`.
//
// Member metadata and assignments are opaque bytes to the coordinator (the group leader's
// client runs the assignor, as in Kafka), carried as base64 strings in these JSON
// control messages.
//
// __consumer_offsets records (compacted; key and value are UTF-8 JSON, value null = tombstone):
//   key ["o", group, topic, partition]  value { offset, metadata, commitTimestamp }
//   key ["g", group]                    value GroupSnapshot

import { z } from "zod";

export const OFFSETS_TOPIC = "__consumer_offsets";
/** Default partition count of __consumer_offsets (Kafka's offsets.topic.num.partitions). */
export const DEFAULT_OFFSETS_PARTITIONS = 50;
export const GROUP_ID = /^[A-Za-z0-9._-]{1,249}$/;

/** Kafka's Utils.abs(groupId.hashCode) % partitions: Java String.hashCode over UTF-16 units. */
export function partitionForGroup(groupId: string, partitions: number): number {
  let h = 0;
  for (let i = 0; i < groupId.length; i++) h = (Math.imul(31, h) + groupId.charCodeAt(i)) | 0;
  return (h === -2147483648 ? 0 : Math.abs(h)) % partitions;
}

export const coordinatorAddress = (partition: number, broker: number) => `group-coordinator/${partition}@${broker}`;

const GroupId = z.string().regex(GROUP_ID, "group ids use 1-249 of [A-Za-z0-9._-]");
const TopicPartition = z.object({ topic: z.string(), partition: z.number().int().min(0) });

export const GroupState = { EMPTY: "Empty", PREPARING_REBALANCE: "PreparingRebalance", COMPLETING_REBALANCE: "CompletingRebalance", STABLE: "Stable", DEAD: "Dead" } as const;
export type GroupState = (typeof GroupState)[keyof typeof GroupState];

export const CoordinatorMessages = {
  JoinGroup: z.object({
    groupId: GroupId,
    /** "" for a member joining for the first time. */
    memberId: z.string().default(""),
    groupInstanceId: z.string().min(1).optional(),
    clientId: z.string().default(""),
    sessionTimeoutMs: z.number().int().min(100).max(3_600_000),
    rebalanceTimeoutMs: z.number().int().min(100).max(3_600_000),
    protocolType: z.string().default("consumer"),
    protocols: z.array(z.object({ name: z.string(), metadata: z.string() })).min(1),
  }),
  SyncGroup: z.object({
    groupId: GroupId,
    generation: z.number().int(),
    memberId: z.string(),
    groupInstanceId: z.string().optional(),
    /** Leader only: every member's assignment. */
    assignments: z.array(z.object({ memberId: z.string(), assignment: z.string() })).default([]),
  }),
  Heartbeat: z.object({ groupId: GroupId, generation: z.number().int(), memberId: z.string(), groupInstanceId: z.string().optional() }),
  LeaveGroup: z.object({ groupId: GroupId, memberId: z.string().optional(), groupInstanceId: z.string().optional() }),
  OffsetCommit: z.object({
    groupId: GroupId,
    /** -1 with an empty member id: an admin/standalone commit, only accepted for an empty group. */
    generation: z.number().int(),
    memberId: z.string().default(""),
    offsets: z.array(TopicPartition.extend({ offset: z.number().int().min(0), metadata: z.string().max(4096).default("") })),
  }),
  OffsetFetch: z.object({ groupId: GroupId, partitions: z.array(TopicPartition).optional() }),
  DescribeGroup: z.object({ groupId: GroupId }),
  ListGroups: z.object({}),
  DeleteGroup: z.object({ groupId: GroupId }),
  /** Internal timer: session expiry and join deadlines. */
  Tick: z.object({}),
};

export interface JoinGroupResult {
  generation: number;
  protocol: string;
  leaderId: string;
  memberId: string;
  /** Filled for the leader only: what it needs to run the assignor. */
  members: Array<{ memberId: string; groupInstanceId?: string; metadata: string }>;
}

export interface CommittedOffset {
  topic: string;
  partition: number;
  /** Next offset to read; -1 when nothing is committed. */
  offset: number;
  metadata: string;
}

export interface GroupDescription {
  groupId: string;
  state: GroupState;
  protocolType: string;
  protocol: string;
  generation: number;
  leaderId: string;
  members: Array<{ memberId: string; groupInstanceId?: string; clientId: string; assignment: string; metadata: string }>;
  offsets: CommittedOffset[];
}

export const GroupSnapshot = z.object({
  protocolType: z.string(),
  protocol: z.string(),
  generation: z.number().int(),
  leaderId: z.string(),
  members: z.array(
    z.object({
      memberId: z.string(),
      groupInstanceId: z.string().optional(),
      clientId: z.string(),
      sessionTimeoutMs: z.number().int(),
      rebalanceTimeoutMs: z.number().int(),
      protocols: z.array(z.object({ name: z.string(), metadata: z.string() })),
      assignment: z.string(),
    }),
  ),
});
export type GroupSnapshot = z.infer<typeof GroupSnapshot>;

/** What Skein's consumers put in their member metadata and assignments (JSON, base64). */
export const ConsumerSubscription = z.object({
  topics: z.array(z.string()),
  owned: z.array(TopicPartition).default([]),
});
export type ConsumerSubscription = z.infer<typeof ConsumerSubscription>;
export const ConsumerAssignment = z.object({ partitions: z.array(TopicPartition) });
export type ConsumerAssignment = z.infer<typeof ConsumerAssignment>;

export function toBase64Json(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString("base64");
}

export function fromBase64Json<T>(schema: z.ZodType<T>, b64: string): T | null {
  try {
    const r = schema.safeParse(JSON.parse(Buffer.from(b64, "base64").toString("utf8")));
    return r.success ? r.data : null;
  } catch {
    return null;
  }
}
