// ListGroups (key 16), versions 0-2.
//
//   ListGroups Request (Version: 0-2) =>
//
//   ListGroups Response (Version: 0) => error_code [groups]
//     error_code => INT16
//     groups => group_id protocol_type
//       group_id => STRING
//       protocol_type => STRING
//   ListGroups Response (Version: 1-2) => throttle_time_ms error_code [groups]
//     throttle_time_ms => INT32            (v1+)
//
// Each broker lists the groups it coordinates; clients ask every broker and concatenate.

import { ApiKey } from "./api-keys.js";
import { Int16, Int32, Str, array, since, struct } from "./schema.js";

export const ListGroups = {
  name: "ListGroups",
  apiKey: ApiKey.ListGroups,
  minVersion: 0,
  maxVersion: 2,
  request: struct({}),
  response: struct({
    throttleTimeMs: since(1, Int32, 0),
    errorCode: Int16,
    groups: array(struct({ groupId: Str, protocolType: Str })),
  }),
};
