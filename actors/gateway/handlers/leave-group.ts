// LeaveGroup: members leave one by one (v3 carries a batch), each starting a rebalance for
// the rest. v3 answers per member; a failure that concerns the whole group (it has no
// coordinator, its id is invalid) is the top-level error instead.

import { LeaveGroup } from "../../../protocol/kafka/leave-group.js";
import { KafkaErrorCode } from "../../../protocol/kafka/errors.js";
import { defineHandler } from "../handler.js";
import type { GatewayServices } from "../types.js";
import { askCoordinator, isValidGroupId, membershipErrorCode } from "./groups.js";

/** Members one LeaveGroup may name; more are refused with INVALID_REQUEST. */
const MAX_MEMBERS_PER_REQUEST = 1_000;

export const leaveGroupHandler = defineHandler(LeaveGroup, async (request, ctx) => {
  const answer = (errorCode: number, members: { memberId: string; groupInstanceId: string | null; errorCode: number }[] = []) => ({ throttleTimeMs: 0, errorCode, members });
  if (!isValidGroupId(request.groupId)) return answer(KafkaErrorCode.INVALID_GROUP_ID);
  const leaving = ctx.header.apiVersion >= 3 ? request.members : [{ memberId: request.memberId, groupInstanceId: null }];
  if (leaving.length > MAX_MEMBERS_PER_REQUEST) return answer(KafkaErrorCode.INVALID_REQUEST);
  const members = [];
  for (const m of leaving) {
    const errorCode = await leave(ctx.services, request.groupId, m.memberId, m.groupInstanceId);
    if (errorCode === KafkaErrorCode.NOT_COORDINATOR) return answer(errorCode);
    members.push({ ...m, errorCode });
  }
  // v0-2 name one member: its error is the answer's.
  return ctx.header.apiVersion >= 3 ? answer(KafkaErrorCode.NONE, members) : answer(members[0].errorCode);
});

async function leave(s: GatewayServices, groupId: string, memberId: string, groupInstanceId: string | null): Promise<number> {
  // The coordinator finds a member by id, else by instance id (static members may leave by it alone).
  const who = memberId !== "" ? { memberId } : groupInstanceId ? { groupInstanceId } : null;
  if (who === null) return KafkaErrorCode.UNKNOWN_MEMBER_ID;
  try {
    await askCoordinator(s, groupId, "LeaveGroup", { groupId, ...who });
    return KafkaErrorCode.NONE;
  } catch (e) {
    return membershipErrorCode(e);
  }
}
