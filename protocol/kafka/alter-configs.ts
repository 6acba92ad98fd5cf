// AlterConfigs (key 33), versions 0-1 (what kafkajs's admin.alterConfigs sends).
//
//   AlterConfigs Request (Version: 0-1) => [resources] validate_only
//     resources => resource_type resource_name [configs]
//       resource_type => INT8              2 topic, 4 broker
//       resource_name => STRING
//       configs => name value
//         name => STRING
//         value => NULLABLE_STRING
//     validate_only => BOOLEAN
//
//   AlterConfigs Response (Version: 0-1) => throttle_time_ms [responses]
//     throttle_time_ms => INT32
//     responses => error_code error_message resource_type resource_name
//       error_code => INT16
//       error_message => NULLABLE_STRING
//       resource_type => INT8
//       resource_name => STRING

import { ApiKey } from "./api-keys.js";
import { Bool, Int16, Int32, Int8, NullableStr, Str, array, struct } from "./schema.js";

export const AlterConfigs = {
  name: "AlterConfigs",
  apiKey: ApiKey.AlterConfigs,
  minVersion: 0,
  maxVersion: 1,
  request: struct({
    resources: array(struct({ resourceType: Int8, resourceName: Str, configs: array(struct({ name: Str, value: NullableStr })) })),
    validateOnly: Bool,
  }),
  response: struct({
    throttleTimeMs: Int32,
    responses: array(struct({ errorCode: Int16, errorMessage: NullableStr, resourceType: Int8, resourceName: Str })),
  }),
};
