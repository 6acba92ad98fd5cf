// Metadata (key 3), versions 0-6.
//
//   Metadata Request (Version: 0-3) => [topics]
//     topics => name
//       name => STRING
//   Metadata Request (Version: 4-6) => [topics] allow_auto_topic_creation
//     allow_auto_topic_creation => BOOLEAN
//   v0: an empty array means all topics. v1+: null (-1) means all topics, empty means none.
//
//   Metadata Response (Version: 0-6) => throttle_time_ms [brokers] cluster_id controller_id [topics]
//     throttle_time_ms => INT32                         (v3+)
//     brokers => node_id host port rack
//       node_id => INT32
//       host => STRING
//       port => INT32
//       rack => NULLABLE_STRING                         (v1+)
//     cluster_id => NULLABLE_STRING                     (v2+)
//     controller_id => INT32                            (v1+)
//     topics => error_code name is_internal [partitions]
//       error_code => INT16
//       name => STRING
//       is_internal => BOOLEAN                          (v1+)
//       partitions => error_code partition_index leader_id [replica_nodes] [isr_nodes] [offline_replicas]
//         error_code => INT16
//         partition_index => INT32
//         leader_id => INT32
//         replica_nodes => INT32
//         isr_nodes => INT32
//         offline_replicas => INT32                     (v5+)

import { ApiKey } from "./api-keys.js";
import { Bool, Int16, Int32, NullableStr, Str, array, nullableArray, since, struct } from "./schema.js";

export const Metadata = {
  name: "Metadata",
  apiKey: ApiKey.Metadata,
  minVersion: 0,
  maxVersion: 6,
  request: struct({
    topics: nullableArray(Str),
    allowAutoTopicCreation: since(4, Bool, true),
  }),
  response: struct({
    throttleTimeMs: since(3, Int32, 0),
    brokers: array(struct({ nodeId: Int32, host: Str, port: Int32, rack: since(1, NullableStr, null) })),
    clusterId: since(2, NullableStr, null),
    controllerId: since(1, Int32, -1),
    topics: array(
      struct({
        errorCode: Int16,
        name: Str,
        isInternal: since(1, Bool, false),
        partitions: array(
          struct({
            errorCode: Int16,
            partitionIndex: Int32,
            leaderId: Int32,
            replicaNodes: array(Int32),
            isrNodes: array(Int32),
            offlineReplicas: since(5, array(Int32), []),
          }),
        ),
      }),
    ),
  }),
};
