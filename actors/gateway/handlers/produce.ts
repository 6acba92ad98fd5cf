// Produce: each partition's record set goes to its leader replica as it arrived (RecordBatch
// v2, gzip or not); the replica checks it (CRC, sizes, sequence numbers for idempotent
// producers) and rewrites baseOffset in place. Partitions of one request run in parallel;
// requests of one connection run one after another, so per partition the order is the
// client's. A partition named twice in one request is refused in every entry (INVALID_REQUEST,
// nothing appended): which copy was meant is unclear, and refusing keeps the work of one
// request to one append per distinct existing partition, whatever its entry count.

import { Produce } from "../../../protocol/kafka/produce.js";
import { KafkaErrorCode, kafkaErrorCode } from "../../../protocol/kafka/errors.js";
import { ErrorCode, isSkeinError } from "../../../protocol/errors.js";
import { replicaAddress, type ProduceResult } from "../../../protocol/cluster.js";
import type { ResponseIn } from "../../../protocol/kafka/api.js";
import { BATCH_HEADER_SIZE, BatchAttributes, CompressionCodec, batchSizeAt } from "../../../protocol/record-batch.js";
import { defineHandler } from "../handler.js";
import type { GatewayServices } from "../types.js";
import { duplicates, partitionKey } from "./admin.js";

type PartitionOut = ResponseIn<typeof Produce>["responses"][number]["partitions"][number];

/** Replica produce timeouts allowed (the replica's own bounds), ms. */
const MIN_TIMEOUT_MS = 1;
const MAX_TIMEOUT_MS = 300_000;
/** Extra time the NATS ask gets over the replica's acks=all wait, ms. */
const ASK_MARGIN_MS = 1_000;
/** Where a RecordBatch's int16 attributes start (see protocol/record-batch.ts). */
const ATTRIBUTES_POS = 21;

export const produceHandler = defineHandler(Produce, async (request, ctx) => {
  const s = ctx.services;
  const { acks } = request;
  const timeoutMs = Math.min(Math.max(request.timeoutMs, MIN_TIMEOUT_MS), MAX_TIMEOUT_MS);
  // Skein has no transaction coordinator: a transactional producer cannot be served.
  const refused = request.transactionalId !== null ? KafkaErrorCode.INVALID_REQUEST : acks === 0 || acks === 1 || acks === -1 ? null : KafkaErrorCode.INVALID_REQUIRED_ACKS;
  const twice = duplicates(request.topics.flatMap((t) => t.partitions.map((p) => partitionKey(t.name, p.index))));
  const responses = await Promise.all(
    request.topics.map(async (t) => ({
      name: t.name,
      partitions: await Promise.all(
        t.partitions.map((p) => {
          if (refused !== null) return partitionResult(p.index, refused);
          if (twice.has(partitionKey(t.name, p.index))) return partitionResult(p.index, KafkaErrorCode.INVALID_REQUEST);
          return produceTo(s, t.name, p.index, p.records, acks as 0 | 1 | -1, timeoutMs);
        }),
      ),
    })),
  );
  return acks === 0 ? null : { responses, throttleTimeMs: 0 };
});

/**
 * False when a batch uses a codec the log cannot read (snappy, lz4, zstd). Said here because
 * the log would call it CORRUPT_MESSAGE, which Kafka clients retry. Only the attributes are
 * looked at; lengths and CRCs are the replica's to check.
 */
function compressionSupported(records: Uint8Array): boolean {
  for (let pos = 0; pos + BATCH_HEADER_SIZE <= records.length; ) {
    const codec = ((records[pos + ATTRIBUTES_POS] << 8) | records[pos + ATTRIBUTES_POS + 1]) & BatchAttributes.COMPRESSION_MASK;
    if (codec !== CompressionCodec.NONE && codec !== CompressionCodec.GZIP) return false;
    const size = batchSizeAt(records, pos);
    if (size < BATCH_HEADER_SIZE) return true;
    pos += size;
  }
  return true;
}

function partitionResult(index: number, errorCode: number, baseOffset = -1): PartitionOut {
  return { index, errorCode, baseOffset, logAppendTimeMs: -1, logStartOffset: -1 };
}

async function produceTo(s: GatewayServices, topic: string, partition: number, records: Uint8Array | null, acks: 0 | 1 | -1, timeoutMs: number): Promise<PartitionOut> {
  if (records === null || records.length === 0) return partitionResult(partition, KafkaErrorCode.CORRUPT_MESSAGE);
  if (records.length > s.maxRecordsBytes) return partitionResult(partition, KafkaErrorCode.MESSAGE_TOO_LARGE);
  if (!compressionSupported(records)) return partitionResult(partition, KafkaErrorCode.UNSUPPORTED_COMPRESSION_TYPE);
  try {
    const address = replicaAddress(topic, partition, s.view.leaderOf(topic, partition));
    const body = { batches: records, acks, timeoutMs };
    if (acks === 0) {
      s.client.system.tell(address, "Produce", body);
      return partitionResult(partition, KafkaErrorCode.NONE);
    }
    const r = await s.client.system.ask<ProduceResult>(address, "Produce", body, { timeoutMs: timeoutMs + ASK_MARGIN_MS });
    return partitionResult(partition, KafkaErrorCode.NONE, r.baseOffset);
  } catch (e) {
    // A retried batch the leader already has is a success, as in Kafka: the producer gets
    // the offset it was written at.
    if (isSkeinError(e, ErrorCode.DUPLICATE_SEQUENCE)) return partitionResult(partition, KafkaErrorCode.NONE, Number(e.context.baseOffset ?? -1));
    return partitionResult(partition, kafkaErrorCode(e));
  }
}
