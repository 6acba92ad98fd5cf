// CreatePartitions (key 37), versions 0-1.
//
//   CreatePartitions Request (Version: 0-1) => [topics] timeout_ms validate_only
//     topics => name count [assignments]
//       name => STRING
//       count => INT32                     the new total number of partitions
//       assignments => [broker_ids]        nullable; null = let the controller place them
//         broker_ids => INT32
//     timeout_ms => INT32
//     validate_only => BOOLEAN
//
//   CreatePartitions Response (Version: 0-1) => throttle_time_ms [results]
//     throttle_time_ms => INT32
//     results => name error_code error_message
//       name => STRING
//       error_code => INT16
//       error_message => NULLABLE_STRING

import { ApiKey } from "./api-keys.js";
import { Bool, Int16, Int32, NullableStr, Str, array, nullableArray, struct } from "./schema.js";

export const CreatePartitions = {
  name: "CreatePartitions",
  apiKey: ApiKey.CreatePartitions,
  minVersion: 0,
  maxVersion: 1,
  request: struct({
    topics: array(struct({ name: Str, count: Int32, assignments: nullableArray(array(Int32)) })),
    timeoutMs: Int32,
    validateOnly: Bool,
  }),
  response: struct({
    throttleTimeMs: Int32,
    results: array(struct({ name: Str, errorCode: Int16, errorMessage: NullableStr })),
  }),
};
