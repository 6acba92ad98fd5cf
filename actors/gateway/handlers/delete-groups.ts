// DeleteGroups: each group's coordinator removes the group and its committed offsets
// (tombstones in __consumer_offsets). Only a group without members can be deleted
// (NON_EMPTY_GROUP); an unknown one is GROUP_ID_NOT_FOUND.

import { DeleteGroups } from "../../../protocol/kafka/delete-groups.js";
import { KafkaErrorCode, kafkaGroupErrorCode } from "../../../protocol/kafka/errors.js";
import { defineHandler } from "../handler.js";
import type { GatewayServices } from "../types.js";
import { duplicates } from "./admin.js";
import { askCoordinator, isValidGroupId } from "./groups.js";

export const deleteGroupsHandler = defineHandler(DeleteGroups, async (request, ctx) => {
  const twice = duplicates(request.groupsNames);
  const results = [];
  // One at a time: a request deleting many groups must not flood the coordinators.
  for (const groupId of request.groupsNames) {
    results.push({ groupId, errorCode: twice.has(groupId) ? KafkaErrorCode.INVALID_REQUEST : await deleteGroup(ctx.services, groupId) });
  }
  return { throttleTimeMs: 0, results };
});

async function deleteGroup(s: GatewayServices, groupId: string): Promise<number> {
  if (!isValidGroupId(groupId)) return KafkaErrorCode.INVALID_GROUP_ID;
  try {
    await askCoordinator(s, groupId, "DeleteGroup", { groupId });
    return KafkaErrorCode.NONE;
  } catch (e) {
    return kafkaGroupErrorCode(e);
  }
}
