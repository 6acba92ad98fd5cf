// FindCoordinator: the gateway of the broker leading the group's __consumer_offsets partition
// (this gateway when that broker runs none). The first lookup creates __consumer_offsets.
// Any failure a retry can outlive (no controller yet, the partition without a leader) is
// COORDINATOR_NOT_AVAILABLE, which clients retry. Skein has no transaction coordinator: a
// transactional lookup is refused.

import { CoordinatorType, FindCoordinator } from "../../../protocol/kafka/find-coordinator.js";
import { KafkaErrorCode, kafkaErrorCode, kafkaErrorMessage } from "../../../protocol/kafka/errors.js";
import { isSkeinError } from "../../../protocol/errors.js";
import { defineHandler } from "../handler.js";
import { advertisedCoordinator, isValidGroupId, locateCoordinator } from "./groups.js";

const none = { throttleTimeMs: 0, nodeId: -1, host: "", port: -1 };

export const findCoordinatorHandler = defineHandler(FindCoordinator, async (request, ctx) => {
  if (request.keyType !== CoordinatorType.GROUP) {
    return { ...none, errorCode: KafkaErrorCode.INVALID_REQUEST, errorMessage: "Skein has no transaction coordinator; only group coordinators (key_type 0)" };
  }
  if (!isValidGroupId(request.key)) {
    return { ...none, errorCode: KafkaErrorCode.INVALID_GROUP_ID, errorMessage: "group ids use 1-249 of [A-Za-z0-9._-]" };
  }
  try {
    const { broker } = await locateCoordinator(ctx.services, request.key);
    return { throttleTimeMs: 0, errorCode: KafkaErrorCode.NONE, errorMessage: null, ...(await advertisedCoordinator(ctx.services, broker)) };
  } catch (e) {
    const errorCode = isSkeinError(e) && e.retriable ? KafkaErrorCode.COORDINATOR_NOT_AVAILABLE : kafkaErrorCode(e);
    return { ...none, errorCode, errorMessage: kafkaErrorMessage(e) };
  }
});
