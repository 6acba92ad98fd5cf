// OffsetCommit: a member's commit (checked against its generation) or, with generation -1
// (and always in v0), a commit from outside the group, which the coordinator takes only
// while the group has no members. The coordinator writes the request's offsets as one batch
// with acks=all, so every partition it accepts shares one outcome; partitions refused here
// (unknown, a negative offset, metadata too long) get their own error and are not sent.

import { OffsetCommit } from "../../../protocol/kafka/offset-commit.js";
import { KafkaErrorCode } from "../../../protocol/kafka/errors.js";
import type { RequestOf, ResponseIn } from "../../../protocol/kafka/api.js";
import { defineHandler } from "../handler.js";
import type { GatewayServices } from "../types.js";
import { askCoordinator, isValidGroupId, membershipErrorCode } from "./groups.js";

type Request = RequestOf<typeof OffsetCommit>;
type TopicOut = ResponseIn<typeof OffsetCommit>["topics"][number];

/** The coordinator's bound on commit metadata (protocol/groups.ts), characters. */
const MAX_METADATA_CHARS = 4096;

interface Entry {
  topic: string;
  partition: number;
  offset: number;
  metadata: string;
  /** Set when refused here. */
  errorCode?: number;
}

export const offsetCommitHandler = defineHandler(OffsetCommit, async (request, ctx) => {
  const s = ctx.services;
  const entries = request.topics.flatMap((t) =>
    t.partitions.map((p): Entry => ({ topic: t.name, partition: p.partitionIndex, offset: p.committedOffset, metadata: p.committedMetadata ?? "", errorCode: precheck(s, request, t.name, p) })),
  );
  const accepted = entries.filter((e) => e.errorCode === undefined);
  const outcome = accepted.length === 0 ? KafkaErrorCode.NONE : await commit(s, request, accepted);
  return { throttleTimeMs: 0, topics: answer(entries, outcome) };
});

function precheck(s: GatewayServices, request: Request, topic: string, p: Request["topics"][number]["partitions"][number]): number | undefined {
  if (!isValidGroupId(request.groupId)) return KafkaErrorCode.INVALID_GROUP_ID;
  if (!s.view.partitionsOf(topic).has(p.partitionIndex)) return KafkaErrorCode.UNKNOWN_TOPIC_OR_PARTITION;
  if (p.committedOffset < 0) return KafkaErrorCode.INVALID_REQUEST;
  if ((p.committedMetadata ?? "").length > MAX_METADATA_CHARS) return KafkaErrorCode.OFFSET_METADATA_TOO_LARGE;
  return undefined;
}

async function commit(s: GatewayServices, request: Request, accepted: Entry[]): Promise<number> {
  const body = {
    groupId: request.groupId,
    generation: request.generationId,
    memberId: request.memberId,
    offsets: accepted.map(({ topic, partition, offset, metadata }) => ({ topic, partition, offset, metadata })),
  };
  // One NATS message to the coordinator, one batch in __consumer_offsets.
  if (JSON.stringify(body).length > s.maxRecordsBytes) return KafkaErrorCode.INVALID_COMMIT_OFFSET_SIZE;
  try {
    await askCoordinator(s, request.groupId, "OffsetCommit", body);
    return KafkaErrorCode.NONE;
  } catch (e) {
    return membershipErrorCode(e);
  }
}

/** Per topic, in request order; a partition refused here keeps its own error. */
function answer(entries: Entry[], outcome: number): TopicOut[] {
  const topics = new Map<string, TopicOut>();
  for (const e of entries) {
    let t = topics.get(e.topic);
    if (!t) topics.set(e.topic, (t = { name: e.topic, partitions: [] }));
    t.partitions.push({ partitionIndex: e.partition, errorCode: e.errorCode ?? outcome });
  }
  return [...topics.values()];
}
