// FindCoordinator (key 10), versions 0-2.
//
//   FindCoordinator Request (Version: 0) => key
//     key => STRING                        the group id
//   FindCoordinator Request (Version: 1-2) => key key_type
//     key_type => INT8                     0 group, 1 transaction
//
//   FindCoordinator Response (Version: 0) => error_code node_id host port
//     error_code => INT16
//     node_id => INT32
//     host => STRING
//     port => INT32
//   FindCoordinator Response (Version: 1-2) => throttle_time_ms error_code error_message node_id host port
//     throttle_time_ms => INT32
//     error_message => NULLABLE_STRING

import { ApiKey } from "./api-keys.js";
import { Int16, Int32, Int8, NullableStr, Str, since, struct } from "./schema.js";

export const CoordinatorType = { GROUP: 0, TRANSACTION: 1 } as const;

export const FindCoordinator = {
  name: "FindCoordinator",
  apiKey: ApiKey.FindCoordinator,
  minVersion: 0,
  maxVersion: 2,
  request: struct({ key: Str, keyType: since(1, Int8, CoordinatorType.GROUP) }),
  response: struct({
    throttleTimeMs: since(1, Int32, 0),
    errorCode: Int16,
    errorMessage: since(1, NullableStr, null),
    nodeId: Int32,
    host: Str,
    port: Int32,
  }),
};
