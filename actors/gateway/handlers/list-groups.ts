// ListGroups: the groups of the coordinators this gateway answers for. Kafka clients ask every
// broker and concatenate the answers, so each __consumer_offsets partition is listed by one
// gateway only (see listedPartitions). Before __consumer_offsets exists there are no groups.

import { ListGroups } from "../../../protocol/kafka/list-groups.js";
import { KafkaErrorCode } from "../../../protocol/kafka/errors.js";
import { coordinatorAddress } from "../../../protocol/groups.js";
import { defineHandler } from "../handler.js";
import { COORDINATOR_ASK_MS, listedPartitions } from "./groups.js";

interface Listed {
  groups: Array<{ groupId: string; protocolType: string }>;
}

export const listGroupsHandler = defineHandler(ListGroups, async (_request, ctx) => {
  const s = ctx.services;
  const partitions = await listedPartitions(s).catch(() => null);
  if (partitions === null) return { throttleTimeMs: 0, errorCode: KafkaErrorCode.COORDINATOR_NOT_AVAILABLE, groups: [] };
  const lists = await Promise.all(
    partitions.map(({ partition, broker }) =>
      s.client.system.ask<Listed>(coordinatorAddress(partition, broker), "ListGroups", {}, { timeoutMs: COORDINATOR_ASK_MS }).catch(() => null),
    ),
  );
  // A coordinator that cannot answer is still loading (or moving): the client retries.
  if (lists.includes(null)) return { throttleTimeMs: 0, errorCode: KafkaErrorCode.COORDINATOR_LOAD_IN_PROGRESS, groups: [] };
  const groups = lists.flatMap((l) => l!.groups.map((g) => ({ groupId: g.groupId, protocolType: g.protocolType })));
  return { throttleTimeMs: 0, errorCode: KafkaErrorCode.NONE, groups: groups.sort((a, b) => a.groupId.localeCompare(b.groupId)) };
});
