// SyncGroup (key 14), versions 0-3.
//
//   SyncGroup Request (Version: 0-2) => group_id generation_id member_id [assignments]
//     group_id => STRING
//     generation_id => INT32
//     member_id => STRING
//     assignments => member_id assignment  the leader's assignor output; empty from the others
//       member_id => STRING
//       assignment => BYTES                opaque to the broker
//   SyncGroup Request (Version: 3) => group_id generation_id member_id group_instance_id [assignments]
//     group_instance_id => NULLABLE_STRING (v3+)
//
//   SyncGroup Response (Version: 0) => error_code assignment
//     error_code => INT16
//     assignment => BYTES                  this member's assignment
//   SyncGroup Response (Version: 1-3) => throttle_time_ms error_code assignment
//     throttle_time_ms => INT32            (v1+)
//
// BYTES is read as NULLABLE_BYTES (a client's null reads as an empty assignment).

import { ApiKey } from "./api-keys.js";
import { Int16, Int32, NullableBytes, NullableStr, Str, array, since, struct } from "./schema.js";

export const SyncGroup = {
  name: "SyncGroup",
  apiKey: ApiKey.SyncGroup,
  minVersion: 0,
  maxVersion: 3,
  request: struct({
    groupId: Str,
    generationId: Int32,
    memberId: Str,
    groupInstanceId: since(3, NullableStr, null),
    assignments: array(struct({ memberId: Str, assignment: NullableBytes })),
  }),
  response: struct({
    throttleTimeMs: since(1, Int32, 0),
    errorCode: Int16,
    assignment: NullableBytes,
  }),
};
