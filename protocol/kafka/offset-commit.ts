// OffsetCommit (key 8), versions 0-5.
//
//   OffsetCommit Request (Version: 0) => group_id [topics]
//     group_id => STRING
//     topics => name [partitions]
//       name => STRING
//       partitions => partition_index committed_offset committed_metadata
//         partition_index => INT32
//         committed_offset => INT64        the next offset to read
//         committed_metadata => NULLABLE_STRING
//   OffsetCommit Request (Version: 1) => group_id generation_id member_id [topics]
//     generation_id => INT32               (v1+) -1 with member_id "": a commit from outside the group
//     member_id => STRING                  (v1+)
//       partitions => partition_index committed_offset commit_timestamp committed_metadata
//         commit_timestamp => INT64        (v1 only)
//   OffsetCommit Request (Version: 2-4) => group_id generation_id member_id retention_time_ms [topics]
//     retention_time_ms => INT64           (v2-4) -1 = the broker's retention
//   OffsetCommit Request (Version: 5) => group_id generation_id member_id [topics]
//
//   OffsetCommit Response (Version: 0-2) => [topics]
//     topics => name [partitions]
//       name => STRING
//       partitions => partition_index error_code
//         partition_index => INT32
//         error_code => INT16
//   OffsetCommit Response (Version: 3-5) => throttle_time_ms [topics]
//     throttle_time_ms => INT32            (v3+)
//
// commit_timestamp and retention_time_ms are read and ignored: Skein keeps committed offsets
// until the group is deleted (__consumer_offsets is compacted, not expired).

import { ApiKey } from "./api-keys.js";
import { Int16, Int32, Int64, NullableStr, Str, array, since, struct, type VersionedField } from "./schema.js";

const retentionTimeMs: VersionedField<number> = { type: Int64, since: 2, until: 4, default: -1 };
const commitTimestamp: VersionedField<number> = { type: Int64, since: 1, until: 1, default: -1 };

export const OffsetCommit = {
  name: "OffsetCommit",
  apiKey: ApiKey.OffsetCommit,
  minVersion: 0,
  maxVersion: 5,
  request: struct({
    groupId: Str,
    generationId: since(1, Int32, -1),
    memberId: since(1, Str, ""),
    retentionTimeMs,
    topics: array(
      struct({
        name: Str,
        partitions: array(struct({ partitionIndex: Int32, committedOffset: Int64, commitTimestamp, committedMetadata: NullableStr })),
      }),
    ),
  }),
  response: struct({
    throttleTimeMs: since(3, Int32, 0),
    topics: array(struct({ name: Str, partitions: array(struct({ partitionIndex: Int32, errorCode: Int16 })) })),
  }),
};
