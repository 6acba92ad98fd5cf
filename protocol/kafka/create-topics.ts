// CreateTopics (key 19), versions 0-3.
//
//   CreateTopics Request (Version: 0-3) => [topics] timeout_ms validate_only
//     topics => name num_partitions replication_factor [assignments] [configs]
//       name => STRING
//       num_partitions => INT32            -1 = broker default (kafkajs sends it at every version)
//       replication_factor => INT16        -1 = broker default
//       assignments => partition_index [broker_ids]
//         partition_index => INT32
//         broker_ids => INT32
//       configs => name value
//         name => STRING
//         value => NULLABLE_STRING
//     timeout_ms => INT32
//     validate_only => BOOLEAN             (v1+)
//
//   CreateTopics Response (Version: 0-3) => throttle_time_ms [topics]
//     throttle_time_ms => INT32            (v2+)
//     topics => name error_code error_message
//       name => STRING
//       error_code => INT16
//       error_message => NULLABLE_STRING   (v1+)

import { ApiKey } from "./api-keys.js";
import { Bool, Int16, Int32, NullableStr, Str, array, since, struct } from "./schema.js";

export const CreateTopics = {
  name: "CreateTopics",
  apiKey: ApiKey.CreateTopics,
  minVersion: 0,
  maxVersion: 3,
  request: struct({
    topics: array(
      struct({
        name: Str,
        numPartitions: Int32,
        replicationFactor: Int16,
        assignments: array(struct({ partitionIndex: Int32, brokerIds: array(Int32) })),
        configs: array(struct({ name: Str, value: NullableStr })),
      }),
    ),
    timeoutMs: Int32,
    validateOnly: since(1, Bool, false),
  }),
  response: struct({
    throttleTimeMs: since(2, Int32, 0),
    topics: array(struct({ name: Str, errorCode: Int16, errorMessage: since(1, NullableStr, null) })),
  }),
};
