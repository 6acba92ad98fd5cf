// CreatePartitions through the controller: grows a topic to `count` partitions, placed by the
// controller. Answers once this gateway's view has them all with leaders (bounded by the
// request's timeout) and their leaders serve, so keyed producers that refresh metadata here
// see the new count and can write to every partition.

import { CreatePartitions } from "../../../protocol/kafka/create-partitions.js";
import { KafkaErrorCode } from "../../../protocol/kafka/errors.js";
import { ErrorCode, SkeinError } from "../../../protocol/errors.js";
import type { RequestOf } from "../../../protocol/kafka/api.js";
import { defineHandler } from "../handler.js";
import type { GatewayServices } from "../types.js";
import { DUPLICATE_MESSAGE, NO_ASSIGNMENT_MESSAGE, awaitLeaders, duplicates, failure, ok, refusal, type ItemResult } from "./admin.js";

type TopicRequest = RequestOf<typeof CreatePartitions>["topics"][number];

export const createPartitionsHandler = defineHandler(CreatePartitions, async (request, ctx) => {
  const twice = duplicates(request.topics.map((t) => t.name));
  const results = await Promise.all(
    request.topics.map((t) =>
      twice.has(t.name) ? refusal(t.name, KafkaErrorCode.INVALID_REQUEST, DUPLICATE_MESSAGE) : grow(ctx.services, t, request.validateOnly, request.timeoutMs),
    ),
  );
  return { throttleTimeMs: 0, results };
});

async function grow(s: GatewayServices, t: TopicRequest, validateOnly: boolean, timeoutMs: number): Promise<ItemResult> {
  if (t.assignments !== null && t.assignments.length > 0) return refusal(t.name, KafkaErrorCode.INVALID_REPLICA_ASSIGNMENT, NO_ASSIGNMENT_MESSAGE);
  try {
    if (validateOnly) {
      const topic = s.view.topic(t.name);
      if (!topic) throw new SkeinError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `topic ${t.name} does not exist`, { topic: t.name });
      if (t.count <= topic.partitions) {
        throw new SkeinError(ErrorCode.INVALID_PARTITIONS, `topic ${t.name} has ${topic.partitions} partitions; the new count must be larger, got ${t.count}`, { topic: t.name });
      }
      return ok(t.name);
    }
    await s.client.createPartitions(t.name, t.count);
    await awaitLeaders(s, t.name, timeoutMs, () => s.view.isComplete(t.name) && s.view.partitionsOf(t.name).size >= t.count);
    return ok(t.name);
  } catch (e) {
    return failure(t.name, e);
  }
}
