// IncrementalAlterConfigs (key 44), version 0 (what Kafka's Java AdminClient and librdkafka send
// for incrementalAlterConfigs; version 1 is the flexible encoding, which the gateway does not speak).
//
//   IncrementalAlterConfigs Request (Version: 0) => [resources] validate_only
//     resources => resource_type resource_name [configs]
//       resource_type => INT8              2 topic, 4 broker
//       resource_name => STRING
//       configs => name config_operation value
//         name => STRING
//         config_operation => INT8         0 SET, 1 DELETE, 2 APPEND, 3 SUBTRACT
//         value => NULLABLE_STRING
//     validate_only => BOOLEAN
//
//   IncrementalAlterConfigs Response (Version: 0) => throttle_time_ms [responses]
//     throttle_time_ms => INT32
//     responses => error_code error_message resource_type resource_name
//       error_code => INT16
//       error_message => NULLABLE_STRING
//       resource_type => INT8
//       resource_name => STRING

import { ApiKey } from "./api-keys.js";
import { Bool, Int16, Int32, Int8, NullableStr, Str, array, struct } from "./schema.js";

/** What an IncrementalAlterConfigs entry does to its config. */
export const ConfigOperation = { SET: 0, DELETE: 1, APPEND: 2, SUBTRACT: 3 } as const;

export const IncrementalAlterConfigs = {
  name: "IncrementalAlterConfigs",
  apiKey: ApiKey.IncrementalAlterConfigs,
  minVersion: 0,
  maxVersion: 0,
  request: struct({
    resources: array(struct({ resourceType: Int8, resourceName: Str, configs: array(struct({ name: Str, configOperation: Int8, value: NullableStr })) })),
    validateOnly: Bool,
  }),
  response: struct({
    throttleTimeMs: Int32,
    responses: array(struct({ errorCode: Int16, errorMessage: NullableStr, resourceType: Int8, resourceName: Str })),
  }),
};
