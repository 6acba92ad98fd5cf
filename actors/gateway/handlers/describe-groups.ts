// DescribeGroups: each group's state, protocol and members, from its coordinator (groups of
// one request may live on different coordinators). A group nobody knows is "Dead" with no
// error, as in Kafka. The coordinator does not know members' hosts: client_host is "".

import { DescribeGroups } from "../../../protocol/kafka/describe-groups.js";
import { KafkaErrorCode, kafkaGroupErrorCode } from "../../../protocol/kafka/errors.js";
import { GroupState, type GroupDescription } from "../../../protocol/groups.js";
import type { ResponseIn } from "../../../protocol/kafka/api.js";
import { defineHandler } from "../handler.js";
import type { GatewayServices } from "../types.js";
import { askCoordinator, fromBase64, isValidGroupId } from "./groups.js";

type GroupOut = ResponseIn<typeof DescribeGroups>["groups"][number];

/** Groups described at once (each is one coordinator ask). */
const DESCRIBE_CONCURRENCY = 16;

export const describeGroupsHandler = defineHandler(DescribeGroups, async (request, ctx) => {
  const groups: GroupOut[] = [];
  for (let i = 0; i < request.groups.length; i += DESCRIBE_CONCURRENCY) {
    groups.push(...(await Promise.all(request.groups.slice(i, i + DESCRIBE_CONCURRENCY).map((g) => describe(ctx.services, g)))));
  }
  return { throttleTimeMs: 0, groups };
});

async function describe(s: GatewayServices, groupId: string): Promise<GroupOut> {
  const empty = { groupId, groupState: GroupState.DEAD, protocolType: "", protocolData: "", members: [] };
  if (!isValidGroupId(groupId)) return { ...empty, errorCode: KafkaErrorCode.INVALID_GROUP_ID };
  try {
    const d = await askCoordinator<GroupDescription>(s, groupId, "DescribeGroup", { groupId });
    return {
      errorCode: KafkaErrorCode.NONE,
      groupId,
      groupState: d.state,
      protocolType: d.protocolType,
      protocolData: d.protocol,
      members: d.members.map((m) => ({ memberId: m.memberId, clientId: m.clientId, clientHost: "", memberMetadata: fromBase64(m.metadata), memberAssignment: fromBase64(m.assignment) })),
    };
  } catch (e) {
    return { ...empty, errorCode: kafkaGroupErrorCode(e) };
  }
}
