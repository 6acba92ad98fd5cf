// ListOffsets: earliest (-2), latest (-1, the high watermark: Skein has no transactions, so it
// is also the last stable offset) or the first offset at or after a timestamp, from each
// partition's leader. A timestamp past the last record answers the high watermark; the
// matching record's timestamp is not looked up, so `timestamp` is -1 in answers. As in Kafka,
// a partition named twice in one request gets INVALID_REQUEST in every entry (so one request
// asks each distinct existing partition at most once, whatever its entry count).

import { ListOffsets } from "../../../protocol/kafka/list-offsets.js";
import { KafkaErrorCode, kafkaErrorCode } from "../../../protocol/kafka/errors.js";
import { replicaAddress } from "../../../protocol/cluster.js";
import type { ResponseIn } from "../../../protocol/kafka/api.js";
import { defineHandler } from "../handler.js";
import type { GatewayServices } from "../types.js";
import { duplicates, partitionKey } from "./admin.js";

type PartitionOut = ResponseIn<typeof ListOffsets>["topics"][number]["partitions"][number];

const ASK_TIMEOUT_MS = 5_000;

export const listOffsetsHandler = defineHandler(ListOffsets, async (request, ctx) => {
  const twice = duplicates(request.topics.flatMap((t) => t.partitions.map((p) => partitionKey(t.name, p.partitionIndex))));
  return {
    throttleTimeMs: 0,
    topics: await Promise.all(
      request.topics.map(async (t) => ({
        name: t.name,
        partitions: await Promise.all(
          t.partitions.map((p) =>
            twice.has(partitionKey(t.name, p.partitionIndex)) ? refused(p.partitionIndex, KafkaErrorCode.INVALID_REQUEST) : offsetOf(ctx.services, t.name, p.partitionIndex, p.timestamp),
          ),
        ),
      })),
    ),
  };
});

const refused = (partition: number, errorCode: number): PartitionOut => ({ partitionIndex: partition, errorCode, oldStyleOffsets: [], timestamp: -1, offset: -1 });

async function offsetOf(s: GatewayServices, topic: string, partition: number, timestamp: number): Promise<PartitionOut> {
  try {
    const address = replicaAddress(topic, partition, s.view.leaderOf(topic, partition));
    const { offset } = await s.client.system.ask<{ offset: number }>(address, "ListOffset", { timestamp }, { timeoutMs: ASK_TIMEOUT_MS });
    return { partitionIndex: partition, errorCode: KafkaErrorCode.NONE, oldStyleOffsets: [offset], timestamp: -1, offset };
  } catch (e) {
    return refused(partition, kafkaErrorCode(e));
  }
}
