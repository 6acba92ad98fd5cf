// Heartbeat: keeps a member's session alive; REBALANCE_IN_PROGRESS in the answer is how a
// member learns it must join again.

import { Heartbeat } from "../../../protocol/kafka/heartbeat.js";
import { KafkaErrorCode } from "../../../protocol/kafka/errors.js";
import { defineHandler } from "../handler.js";
import { askCoordinator, isValidGroupId, membershipErrorCode } from "./groups.js";

export const heartbeatHandler = defineHandler(Heartbeat, async (request, ctx) => {
  if (!isValidGroupId(request.groupId)) return { throttleTimeMs: 0, errorCode: KafkaErrorCode.INVALID_GROUP_ID };
  try {
    await askCoordinator(ctx.services, request.groupId, "Heartbeat", {
      groupId: request.groupId,
      generation: request.generationId,
      memberId: request.memberId,
      groupInstanceId: request.groupInstanceId ?? undefined,
    });
    return { throttleTimeMs: 0, errorCode: KafkaErrorCode.NONE };
  } catch (e) {
    return { throttleTimeMs: 0, errorCode: membershipErrorCode(e) };
  }
});
