// SyncGroup: the leader hands in every member's assignment, each member gets its own. A
// member's reply is parked until the leader's assignment is durable in __consumer_offsets.
// Assignments are opaque bytes (kafkajs's ConsumerProtocol), carried as base64.

import { SyncGroup } from "../../../protocol/kafka/sync-group.js";
import { KafkaErrorCode } from "../../../protocol/kafka/errors.js";
import { ErrorCode, isSkeinError } from "../../../protocol/errors.js";
import { defineHandler } from "../handler.js";
import { askCoordinator, fromBase64, isValidGroupId, membershipErrorCode, toBase64 } from "./groups.js";

/** Longest wait for the leader's assignment; under kafkajs's default request timeout (30 s), ms. */
const SYNC_WAIT_MS = 25_000;

export const syncGroupHandler = defineHandler(SyncGroup, async (request, ctx) => {
  const failed = (errorCode: number) => ({ throttleTimeMs: 0, errorCode, assignment: new Uint8Array(0) });
  if (!isValidGroupId(request.groupId)) return failed(KafkaErrorCode.INVALID_GROUP_ID);
  const assignmentBytes = request.assignments.reduce((n, a) => n + (a.assignment?.length ?? 0), 0);
  if (Math.ceil(assignmentBytes / 3) * 4 > ctx.services.maxRecordsBytes) return failed(KafkaErrorCode.INVALID_REQUEST);
  try {
    const r = await askCoordinator<{ assignment: string }>(
      ctx.services,
      request.groupId,
      "SyncGroup",
      {
        groupId: request.groupId,
        generation: request.generationId,
        memberId: request.memberId,
        groupInstanceId: request.groupInstanceId ?? undefined,
        assignments: request.assignments.map((a) => ({ memberId: a.memberId, assignment: toBase64(a.assignment) })),
      },
      SYNC_WAIT_MS,
    );
    return { throttleTimeMs: 0, errorCode: KafkaErrorCode.NONE, assignment: fromBase64(r.assignment) };
  } catch (e) {
    // No assignment in time: the group moved on without this member, which joins again.
    if (isSkeinError(e) && e.code === ErrorCode.TIMEOUT) return failed(KafkaErrorCode.REBALANCE_IN_PROGRESS);
    return failed(membershipErrorCode(e));
  }
});
