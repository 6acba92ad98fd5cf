// DescribeConfigs (key 32), versions 0-2.
//
//   DescribeConfigs Request (Version: 0-2) => [resources] include_synonyms
//     resources => resource_type resource_name [configuration_keys]
//       resource_type => INT8              2 topic, 4 broker
//       resource_name => STRING
//       configuration_keys => STRING       nullable; null = all
//     include_synonyms => BOOLEAN          (v1+)
//
//   DescribeConfigs Response (Version: 0-2) => throttle_time_ms [results]
//     throttle_time_ms => INT32
//     results => error_code error_message resource_type resource_name [configs]
//       error_code => INT16
//       error_message => NULLABLE_STRING
//       resource_type => INT8
//       resource_name => STRING
//       configs => name value read_only is_default config_source is_sensitive [synonyms]
//         name => STRING
//         value => NULLABLE_STRING
//         read_only => BOOLEAN
//         is_default => BOOLEAN            (v0 only)
//         config_source => INT8            (v1+) 1 topic config, 5 default
//         is_sensitive => BOOLEAN
//         synonyms => name value source    (v1+)
//           name => STRING
//           value => NULLABLE_STRING
//           source => INT8

import { ApiKey } from "./api-keys.js";
import { Bool, Int16, Int32, Int8, NullableStr, Str, array, nullableArray, since, struct, until } from "./schema.js";

export const ConfigResourceType = { TOPIC: 2, BROKER: 4 } as const;
export const ConfigSource = { TOPIC_CONFIG: 1, DEFAULT_CONFIG: 5 } as const;

export const DescribeConfigs = {
  name: "DescribeConfigs",
  apiKey: ApiKey.DescribeConfigs,
  minVersion: 0,
  maxVersion: 2,
  request: struct({
    resources: array(struct({ resourceType: Int8, resourceName: Str, configurationKeys: nullableArray(Str) })),
    includeSynonyms: since(1, Bool, false),
  }),
  response: struct({
    throttleTimeMs: Int32,
    results: array(
      struct({
        errorCode: Int16,
        errorMessage: NullableStr,
        resourceType: Int8,
        resourceName: Str,
        configs: array(
          struct({
            name: Str,
            value: NullableStr,
            readOnly: Bool,
            isDefault: until(0, Bool, false),
            configSource: since(1, Int8, -1),
            isSensitive: Bool,
            synonyms: since(1, array(struct({ name: Str, value: NullableStr, source: Int8 })), []),
          }),
        ),
      }),
    ),
  }),
};
