// Produce (key 0), versions 3-7: the versions whose record_set is RecordBatch v2 (magic 2),
// which Skein stores as it is. v0-2 carry the old message sets and are not served.
//
//   Produce Request (Version: 3-7) => transactional_id acks timeout_ms [topic_data]
//     transactional_id => NULLABLE_STRING
//     acks => INT16                       0 none, 1 leader, -1 all in-sync replicas
//     timeout_ms => INT32
//     topic_data => name [partition_data]
//       name => STRING
//       partition_data => index records
//         index => INT32
//         records => RECORDS
//
//   Produce Response (Version: 3-7) => [responses] throttle_time_ms
//     responses => name [partition_responses]
//       name => STRING
//       partition_responses => index error_code base_offset log_append_time_ms log_start_offset
//         index => INT32
//         error_code => INT16
//         base_offset => INT64
//         log_append_time_ms => INT64     -1 unless the topic uses LogAppendTime
//         log_start_offset => INT64       (v5+)
//     throttle_time_ms => INT32
//
// v4 adds KAFKA_STORAGE_ERROR, v5 log_start_offset, v6 throttling before the response, v7
// zstd: the layout is the same otherwise. With acks=0 the broker sends no response at all.

import { ApiKey } from "./api-keys.js";
import { Int16, Int32, Int64, NullableStr, Records, Str, array, since, struct } from "./schema.js";

export const Produce = {
  name: "Produce",
  apiKey: ApiKey.Produce,
  minVersion: 3,
  maxVersion: 7,
  request: struct({
    transactionalId: NullableStr,
    acks: Int16,
    timeoutMs: Int32,
    topics: array(struct({ name: Str, partitions: array(struct({ index: Int32, records: Records })) })),
  }),
  response: struct({
    responses: array(
      struct({
        name: Str,
        partitions: array(
          struct({
            index: Int32,
            errorCode: Int16,
            baseOffset: Int64,
            logAppendTimeMs: Int64,
            logStartOffset: since(5, Int64, -1),
          }),
        ),
      }),
    ),
    throttleTimeMs: Int32,
  }),
};
