// DeleteGroups (key 42), versions 0-1.
//
//   DeleteGroups Request (Version: 0-1) => [groups_names]
//     groups_names => STRING
//
//   DeleteGroups Response (Version: 0-1) => throttle_time_ms [results]
//     throttle_time_ms => INT32
//     results => group_id error_code
//       group_id => STRING
//       error_code => INT16                NON_EMPTY_GROUP while members remain, GROUP_ID_NOT_FOUND

import { ApiKey } from "./api-keys.js";
import { Int16, Int32, Str, array, struct } from "./schema.js";

export const DeleteGroups = {
  name: "DeleteGroups",
  apiKey: ApiKey.DeleteGroups,
  minVersion: 0,
  maxVersion: 1,
  request: struct({ groupsNames: array(Str) }),
  response: struct({
    throttleTimeMs: Int32,
    results: array(struct({ groupId: Str, errorCode: Int16 })),
  }),
};
