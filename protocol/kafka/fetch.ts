// Fetch (key 1), versions 4-11: the versions that return RecordBatch v2 and the last stable
// offset. Skein has no transactions, so the last stable offset is the high watermark and
// there are never aborted transactions.
//
//   Fetch Request (Version: 4-11) => replica_id max_wait_ms min_bytes max_bytes isolation_level
//                                    session_id session_epoch [topics] [forgotten_topics_data] rack_id
//     replica_id => INT32                  -1 for consumers
//     max_wait_ms => INT32
//     min_bytes => INT32
//     max_bytes => INT32
//     isolation_level => INT8              0 read_uncommitted, 1 read_committed
//     session_id => INT32                  (v7+) KIP-227 fetch sessions
//     session_epoch => INT32               (v7+)
//     topics => topic [partitions]
//       topic => STRING
//       partitions => partition current_leader_epoch fetch_offset log_start_offset partition_max_bytes
//         partition => INT32
//         current_leader_epoch => INT32    (v9+) -1 = unknown
//         fetch_offset => INT64
//         log_start_offset => INT64        (v5+) followers only
//         partition_max_bytes => INT32
//     forgotten_topics_data => topic [partitions]   (v7+)
//       topic => STRING
//       partitions => INT32
//     rack_id => STRING                    (v11+)
//
//   Fetch Response (Version: 4-11) => throttle_time_ms error_code session_id [responses]
//     throttle_time_ms => INT32
//     error_code => INT16                  (v7+)
//     session_id => INT32                  (v7+) 0 = no session
//     responses => topic [partitions]
//       topic => STRING
//       partitions => partition_index error_code high_watermark last_stable_offset log_start_offset
//                     [aborted_transactions] preferred_read_replica records
//         partition_index => INT32
//         error_code => INT16
//         high_watermark => INT64
//         last_stable_offset => INT64
//         log_start_offset => INT64        (v5+)
//         aborted_transactions => producer_id first_offset   (nullable)
//           producer_id => INT64
//           first_offset => INT64
//         preferred_read_replica => INT32  (v11+) -1 = read from the leader
//         records => RECORDS

import { ApiKey } from "./api-keys.js";
import { Int16, Int32, Int64, Int8, Records, Str, array, nullableArray, since, struct } from "./schema.js";

export const Fetch = {
  name: "Fetch",
  apiKey: ApiKey.Fetch,
  minVersion: 4,
  maxVersion: 11,
  request: struct({
    replicaId: Int32,
    maxWaitMs: Int32,
    minBytes: Int32,
    maxBytes: Int32,
    isolationLevel: Int8,
    sessionId: since(7, Int32, 0),
    sessionEpoch: since(7, Int32, -1),
    topics: array(
      struct({
        topic: Str,
        partitions: array(
          struct({
            partition: Int32,
            currentLeaderEpoch: since(9, Int32, -1),
            fetchOffset: Int64,
            logStartOffset: since(5, Int64, -1),
            partitionMaxBytes: Int32,
          }),
        ),
      }),
    ),
    forgottenTopicsData: since(7, array(struct({ topic: Str, partitions: array(Int32) })), []),
    rackId: since(11, Str, ""),
  }),
  response: struct({
    throttleTimeMs: Int32,
    errorCode: since(7, Int16, 0),
    sessionId: since(7, Int32, 0),
    responses: array(
      struct({
        topic: Str,
        partitions: array(
          struct({
            partitionIndex: Int32,
            errorCode: Int16,
            highWatermark: Int64,
            lastStableOffset: Int64,
            logStartOffset: since(5, Int64, -1),
            abortedTransactions: nullableArray(struct({ producerId: Int64, firstOffset: Int64 })),
            preferredReadReplica: since(11, Int32, -1),
            records: Records,
          }),
        ),
      }),
    ),
  }),
};
