// JoinGroup (key 11), versions 0-5.
//
//   JoinGroup Request (Version: 0) => group_id session_timeout_ms member_id protocol_type [protocols]
//     group_id => STRING
//     session_timeout_ms => INT32
//     member_id => STRING                  "" for a member joining for the first time
//     protocol_type => STRING              "consumer" for consumer groups
//     protocols => name metadata
//       name => STRING                     an assignor ("RoundRobinAssigner", "range", …)
//       metadata => BYTES                  the member's subscription, opaque to the broker
//   JoinGroup Request (Version: 1-4) => group_id session_timeout_ms rebalance_timeout_ms member_id protocol_type [protocols]
//     rebalance_timeout_ms => INT32        (v1+) v0 waits session_timeout_ms
//   JoinGroup Request (Version: 5) => group_id session_timeout_ms rebalance_timeout_ms member_id group_instance_id protocol_type [protocols]
//     group_instance_id => NULLABLE_STRING (v5+) static membership
//
//   JoinGroup Response (Version: 0-1) => error_code generation_id protocol_name leader member_id [members]
//     error_code => INT16
//     generation_id => INT32
//     protocol_name => STRING              the assignor every member supports
//     leader => STRING                     member id of the leader, which runs the assignor
//     member_id => STRING
//     members => member_id metadata        the leader only gets them
//       member_id => STRING
//       metadata => BYTES
//   JoinGroup Response (Version: 2-4) => throttle_time_ms error_code generation_id protocol_name leader member_id [members]
//     throttle_time_ms => INT32            (v2+)
//   JoinGroup Response (Version: 5) => throttle_time_ms error_code generation_id protocol_name leader member_id [members]
//     members => member_id group_instance_id metadata
//       group_instance_id => NULLABLE_STRING  (v5+)
//
// BYTES is read as NULLABLE_BYTES (a client's null reads as empty metadata).

import { ApiKey } from "./api-keys.js";
import { Int16, Int32, NullableBytes, NullableStr, Str, array, since, struct } from "./schema.js";

export const JoinGroup = {
  name: "JoinGroup",
  apiKey: ApiKey.JoinGroup,
  minVersion: 0,
  maxVersion: 5,
  request: struct({
    groupId: Str,
    sessionTimeoutMs: Int32,
    rebalanceTimeoutMs: since(1, Int32, -1),
    memberId: Str,
    groupInstanceId: since(5, NullableStr, null),
    protocolType: Str,
    protocols: array(struct({ name: Str, metadata: NullableBytes })),
  }),
  response: struct({
    throttleTimeMs: since(2, Int32, 0),
    errorCode: Int16,
    generationId: Int32,
    protocolName: Str,
    leader: Str,
    memberId: Str,
    members: array(struct({ memberId: Str, groupInstanceId: since(5, NullableStr, null), metadata: NullableBytes })),
  }),
};
