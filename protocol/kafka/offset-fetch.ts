// OffsetFetch (key 9), versions 1-4 (v0 read offsets from ZooKeeper).
//
//   OffsetFetch Request (Version: 1-4) => group_id [topics]
//     group_id => STRING
//     topics => name [partition_indexes]   null (v2+) = every partition the group committed
//       name => STRING
//       partition_indexes => INT32
//
//   OffsetFetch Response (Version: 1) => [topics]
//     topics => name [partitions]
//       name => STRING
//       partitions => partition_index committed_offset metadata error_code
//         partition_index => INT32
//         committed_offset => INT64        -1 when nothing is committed
//         metadata => NULLABLE_STRING
//         error_code => INT16
//   OffsetFetch Response (Version: 2) => [topics] error_code
//     error_code => INT16                  (v2+) group-level error
//   OffsetFetch Response (Version: 3-4) => throttle_time_ms [topics] error_code
//     throttle_time_ms => INT32            (v3+)

import { ApiKey } from "./api-keys.js";
import { Int16, Int32, Int64, NullableStr, Str, array, nullableArray, since, struct } from "./schema.js";

export const OffsetFetch = {
  name: "OffsetFetch",
  apiKey: ApiKey.OffsetFetch,
  minVersion: 1,
  maxVersion: 4,
  request: struct({
    groupId: Str,
    topics: nullableArray(struct({ name: Str, partitionIndexes: array(Int32) })),
  }),
  response: struct({
    throttleTimeMs: since(3, Int32, 0),
    topics: array(
      struct({
        name: Str,
        partitions: array(struct({ partitionIndex: Int32, committedOffset: Int64, metadata: NullableStr, errorCode: Int16 })),
      }),
    ),
    errorCode: since(2, Int16, 0),
  }),
};
