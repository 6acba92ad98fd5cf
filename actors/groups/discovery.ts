// Finding a group's coordinator: the leader of partition partitionForGroup(group) of
// __consumer_offsets, which the controller creates on first use.

import { ErrorCode, SkeinError } from "../../protocol/errors.js";
import { controllerAddress } from "../../protocol/cluster.js";
import { OFFSETS_TOPIC, coordinatorAddress, partitionForGroup } from "../../protocol/groups.js";
import type { MetadataStore } from "../cluster/metadata.js";

type Ask = <T>(address: string, type: string, body: unknown, options: { timeoutMs: number }) => Promise<T>;

export async function findCoordinator(meta: MetadataStore, ask: Ask, groupId: string): Promise<string> {
  let topic = await meta.getTopic(OFFSETS_TOPIC);
  if (!topic) {
    const lease = await meta.getLease();
    if (!lease) throw new SkeinError(ErrorCode.COORDINATOR_NOT_AVAILABLE, "no active controller to create __consumer_offsets");
    await ask(controllerAddress(lease.value.broker), "EnsureOffsetsTopic", {}, { timeoutMs: 15_000 });
    topic = await meta.getTopic(OFFSETS_TOPIC);
    if (!topic) throw new SkeinError(ErrorCode.COORDINATOR_NOT_AVAILABLE, "__consumer_offsets is being created");
  }
  const partition = partitionForGroup(groupId, topic.partitions);
  const state = await meta.getPartition(OFFSETS_TOPIC, partition);
  if (!state || state.value.leader < 0) {
    throw new SkeinError(ErrorCode.COORDINATOR_NOT_AVAILABLE, `${OFFSETS_TOPIC}/${partition} has no leader`, { group: groupId, partition });
  }
  return coordinatorAddress(partition, state.value.leader);
}

/** Errors after which a client looks the coordinator up again and retries. */
export const COORDINATOR_RETRY: ReadonlySet<string> = new Set([
  ErrorCode.NOT_COORDINATOR,
  ErrorCode.COORDINATOR_NOT_AVAILABLE,
  ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
  ErrorCode.ACTOR_NOT_FOUND,
  ErrorCode.TIMEOUT,
  ErrorCode.NOT_LEADER_OR_FOLLOWER,
  ErrorCode.LEADER_NOT_AVAILABLE,
  ErrorCode.NOT_CONTROLLER,
]);
