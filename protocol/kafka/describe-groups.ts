// DescribeGroups (key 15), versions 0-2.
//
//   DescribeGroups Request (Version: 0-2) => [groups]
//     groups => STRING
//
//   DescribeGroups Response (Version: 0) => [groups]
//     groups => error_code group_id group_state protocol_type protocol_data [members]
//       error_code => INT16
//       group_id => STRING
//       group_state => STRING              Empty, PreparingRebalance, CompletingRebalance, Stable, Dead
//       protocol_type => STRING
//       protocol_data => STRING            the assignor chosen for the current generation
//       members => member_id client_id client_host member_metadata member_assignment
//         member_id => STRING
//         client_id => STRING
//         client_host => STRING
//         member_metadata => BYTES
//         member_assignment => BYTES
//   DescribeGroups Response (Version: 1-2) => throttle_time_ms [groups]
//     throttle_time_ms => INT32            (v1+)

import { ApiKey } from "./api-keys.js";
import { Int16, Int32, NullableBytes, Str, array, since, struct } from "./schema.js";

export const DescribeGroups = {
  name: "DescribeGroups",
  apiKey: ApiKey.DescribeGroups,
  minVersion: 0,
  maxVersion: 2,
  request: struct({ groups: array(Str) }),
  response: struct({
    throttleTimeMs: since(1, Int32, 0),
    groups: array(
      struct({
        errorCode: Int16,
        groupId: Str,
        groupState: Str,
        protocolType: Str,
        protocolData: Str,
        members: array(struct({ memberId: Str, clientId: Str, clientHost: Str, memberMetadata: NullableBytes, memberAssignment: NullableBytes })),
      }),
    ),
  }),
};
