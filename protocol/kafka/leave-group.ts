// LeaveGroup (key 13), versions 0-3.
//
//   LeaveGroup Request (Version: 0-2) => group_id member_id
//     group_id => STRING
//     member_id => STRING                  (v0-2)
//   LeaveGroup Request (Version: 3) => group_id [members]
//     members => member_id group_instance_id   (v3+) a batch of members
//       member_id => STRING
//       group_instance_id => NULLABLE_STRING
//
//   LeaveGroup Response (Version: 0) => error_code
//     error_code => INT16
//   LeaveGroup Response (Version: 1-2) => throttle_time_ms error_code
//     throttle_time_ms => INT32            (v1+)
//   LeaveGroup Response (Version: 3) => throttle_time_ms error_code [members]
//     members => member_id group_instance_id error_code   (v3+)
//       member_id => STRING
//       group_instance_id => NULLABLE_STRING
//       error_code => INT16

import { ApiKey } from "./api-keys.js";
import { Int16, Int32, NullableStr, Str, array, since, struct, until } from "./schema.js";

export const LeaveGroup = {
  name: "LeaveGroup",
  apiKey: ApiKey.LeaveGroup,
  minVersion: 0,
  maxVersion: 3,
  request: struct({
    groupId: Str,
    memberId: until(2, Str, ""),
    members: since(3, array(struct({ memberId: Str, groupInstanceId: NullableStr })), []),
  }),
  response: struct({
    throttleTimeMs: since(1, Int32, 0),
    errorCode: Int16,
    members: since(3, array(struct({ memberId: Str, groupInstanceId: NullableStr, errorCode: Int16 })), []),
  }),
};
