// ListOffsets (key 2), versions 0-3.
//
//   ListOffsets Request (Version: 0) => replica_id [topics]
//     replica_id => INT32
//     topics => name [partitions]
//       name => STRING
//       partitions => partition_index timestamp max_num_offsets
//         partition_index => INT32
//         timestamp => INT64              -1 latest, -2 earliest, else ms
//         max_num_offsets => INT32        (v0 only)
//   ListOffsets Request (Version: 1) => replica_id [topics]            (no max_num_offsets)
//   ListOffsets Request (Version: 2-3) => replica_id isolation_level [topics]
//     isolation_level => INT8
//
//   ListOffsets Response (Version: 0) => [topics]
//     topics => name [partitions]
//       name => STRING
//       partitions => partition_index error_code [old_style_offsets]
//         partition_index => INT32
//         error_code => INT16
//         old_style_offsets => INT64     (v0 only)
//   ListOffsets Response (Version: 1) => [topics]
//       partitions => partition_index error_code timestamp offset
//         timestamp => INT64             (v1+)
//         offset => INT64                (v1+)
//   ListOffsets Response (Version: 2-3) => throttle_time_ms [topics]
//     throttle_time_ms => INT32

import { ApiKey } from "./api-keys.js";
import { Int16, Int32, Int64, Int8, Str, array, since, struct, until } from "./schema.js";

export const ListOffsets = {
  name: "ListOffsets",
  apiKey: ApiKey.ListOffsets,
  minVersion: 0,
  maxVersion: 3,
  request: struct({
    replicaId: Int32,
    isolationLevel: since(2, Int8, 0),
    topics: array(
      struct({
        name: Str,
        partitions: array(struct({ partitionIndex: Int32, timestamp: Int64, maxNumOffsets: until(0, Int32, 1) })),
      }),
    ),
  }),
  response: struct({
    throttleTimeMs: since(2, Int32, 0),
    topics: array(
      struct({
        name: Str,
        partitions: array(
          struct({
            partitionIndex: Int32,
            errorCode: Int16,
            oldStyleOffsets: until(0, array(Int64), []),
            timestamp: since(1, Int64, -1),
            offset: since(1, Int64, -1),
          }),
        ),
      }),
    ),
  }),
};
