// OffsetFetch: a group's committed offsets, for the partitions asked (-1 where nothing is
// committed) or, with topics null, every partition the group committed. Reading offsets
// never creates a group. A failure is the answer's error (v2+) and every partition's (so v1
// clients, which have no group-level error, see it too).

import { OffsetFetch } from "../../../protocol/kafka/offset-fetch.js";
import { KafkaErrorCode, kafkaGroupErrorCode } from "../../../protocol/kafka/errors.js";
import type { CommittedOffset } from "../../../protocol/groups.js";
import type { RequestOf, ResponseIn } from "../../../protocol/kafka/api.js";
import { defineHandler } from "../handler.js";
import { askCoordinator, isValidGroupId } from "./groups.js";

type TopicsIn = RequestOf<typeof OffsetFetch>["topics"];
type TopicOut = ResponseIn<typeof OffsetFetch>["topics"][number];

export const offsetFetchHandler = defineHandler(OffsetFetch, async (request, ctx) => {
  const asked = request.topics?.flatMap((t) => t.partitionIndexes.map((partition) => ({ topic: t.name, partition })));
  if (!isValidGroupId(request.groupId)) return failed(request.topics, KafkaErrorCode.INVALID_GROUP_ID);
  try {
    const { offsets } = await askCoordinator<{ offsets: CommittedOffset[] }>(ctx.services, request.groupId, "OffsetFetch", { groupId: request.groupId, partitions: asked });
    return { throttleTimeMs: 0, errorCode: KafkaErrorCode.NONE, topics: byTopic(offsets.map((o) => ({ ...o, errorCode: KafkaErrorCode.NONE }))) };
  } catch (e) {
    return failed(request.topics, kafkaGroupErrorCode(e));
  }
});

function failed(topics: TopicsIn, errorCode: number) {
  const partitions = (topics ?? []).flatMap((t) => t.partitionIndexes.map((partition) => ({ topic: t.name, partition, offset: -1, metadata: "", errorCode })));
  return { throttleTimeMs: 0, errorCode, topics: byTopic(partitions) };
}

function byTopic(offsets: Array<CommittedOffset & { errorCode: number }>): TopicOut[] {
  const topics = new Map<string, TopicOut>();
  for (const o of offsets) {
    let t = topics.get(o.topic);
    if (!t) topics.set(o.topic, (t = { name: o.topic, partitions: [] }));
    t.partitions.push({ partitionIndex: o.partition, committedOffset: o.offset, metadata: o.metadata, errorCode: o.errorCode });
  }
  return [...topics.values()];
}
