// Heartbeat (key 12), versions 0-3.
//
//   Heartbeat Request (Version: 0-2) => group_id generation_id member_id
//     group_id => STRING
//     generation_id => INT32
//     member_id => STRING
//   Heartbeat Request (Version: 3) => group_id generation_id member_id group_instance_id
//     group_instance_id => NULLABLE_STRING (v3+)
//
//   Heartbeat Response (Version: 0) => error_code
//     error_code => INT16                  REBALANCE_IN_PROGRESS tells the member to rejoin
//   Heartbeat Response (Version: 1-3) => throttle_time_ms error_code
//     throttle_time_ms => INT32            (v1+)

import { ApiKey } from "./api-keys.js";
import { Int16, Int32, NullableStr, Str, since, struct } from "./schema.js";

export const Heartbeat = {
  name: "Heartbeat",
  apiKey: ApiKey.Heartbeat,
  minVersion: 0,
  maxVersion: 3,
  request: struct({ groupId: Str, generationId: Int32, memberId: Str, groupInstanceId: since(3, NullableStr, null) }),
  response: struct({ throttleTimeMs: since(1, Int32, 0), errorCode: Int16 }),
};
