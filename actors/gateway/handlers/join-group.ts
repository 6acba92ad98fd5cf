// JoinGroup: forwarded to the group's coordinator, whose reply is parked until the rebalance
// completes (every member rejoined, or the rebalance timeout passed). Only this connection
// waits: the connection answers in order, as Kafka does, and other connections carry on.
//
// A member joining with member_id "" gets its id in this very answer (no MEMBER_ID_REQUIRED
// round trip). Protocol metadata (the client's subscription) goes to the coordinator as
// base64 and comes back to the leader byte for byte.

import { JoinGroup } from "../../../protocol/kafka/join-group.js";
import { KafkaErrorCode, kafkaGroupErrorCode } from "../../../protocol/kafka/errors.js";
import { ErrorCode, isSkeinError } from "../../../protocol/errors.js";
import type { JoinGroupResult } from "../../../protocol/groups.js";
import type { RequestOf } from "../../../protocol/kafka/api.js";
import { defineHandler } from "../handler.js";
import { askCoordinator, fromBase64, isValidGroupId, toBase64 } from "./groups.js";

type Request = RequestOf<typeof JoinGroup>;

/** Session and rebalance timeouts the coordinator accepts, ms. */
const MIN_TIMEOUT_MS = 100;
const MAX_TIMEOUT_MS = 3_600_000;
/** The coordinator completes a rebalance at most this long after it starts, ms. */
const MAX_REBALANCE_WAIT_MS = 60_000;
/** Time on top of the rebalance wait for the answer to come back; under kafkajs's 5 s, ms. */
const JOIN_ANSWER_MARGIN_MS = 2_000;

export const joinGroupHandler = defineHandler(JoinGroup, async (request, ctx) => {
  const failed = (errorCode: number) => ({ throttleTimeMs: 0, errorCode, generationId: -1, protocolName: "", leader: "", memberId: request.memberId, members: [] });
  const refused = refusal(request, ctx.services.maxRecordsBytes);
  if (refused !== null) return failed(refused);
  // v0 has no rebalance timeout: the session timeout bounds the rebalance, as in Kafka.
  const rebalanceTimeoutMs = Math.min(Math.max(request.rebalanceTimeoutMs < 0 ? request.sessionTimeoutMs : request.rebalanceTimeoutMs, MIN_TIMEOUT_MS), MAX_TIMEOUT_MS);
  try {
    const r = await askCoordinator<JoinGroupResult>(
      ctx.services,
      request.groupId,
      "JoinGroup",
      {
        groupId: request.groupId,
        memberId: request.memberId,
        groupInstanceId: request.groupInstanceId ?? undefined,
        clientId: ctx.header.clientId ?? "",
        sessionTimeoutMs: request.sessionTimeoutMs,
        rebalanceTimeoutMs,
        protocolType: request.protocolType,
        protocols: request.protocols.map((p) => ({ name: p.name, metadata: toBase64(p.metadata) })),
      },
      Math.min(rebalanceTimeoutMs, MAX_REBALANCE_WAIT_MS) + JOIN_ANSWER_MARGIN_MS,
    );
    return {
      throttleTimeMs: 0,
      errorCode: KafkaErrorCode.NONE,
      generationId: r.generation,
      protocolName: r.protocol,
      leader: r.leaderId,
      memberId: r.memberId,
      members: r.members.map((m) => ({ memberId: m.memberId, groupInstanceId: m.groupInstanceId ?? null, metadata: fromBase64(m.metadata) })),
    };
  } catch (e) {
    // No answer within the rebalance: the client joins again, as after a rebalance it missed.
    if (isSkeinError(e) && e.code === ErrorCode.TIMEOUT) return failed(KafkaErrorCode.REBALANCE_IN_PROGRESS);
    return failed(kafkaGroupErrorCode(e));
  }
});

/** Kafka's error for a join the coordinator must not see, or null when it may. */
function refusal(r: Request, maxBytes: number): number | null {
  if (!isValidGroupId(r.groupId)) return KafkaErrorCode.INVALID_GROUP_ID;
  if (r.sessionTimeoutMs < MIN_TIMEOUT_MS || r.sessionTimeoutMs > MAX_TIMEOUT_MS) return KafkaErrorCode.INVALID_SESSION_TIMEOUT;
  if (r.protocolType === "" || r.protocols.length === 0) return KafkaErrorCode.INCONSISTENT_GROUP_PROTOCOL;
  if (r.groupInstanceId === "") return KafkaErrorCode.INVALID_REQUEST;
  // The metadata travels base64 (4/3 larger) in one NATS message, and back to the leader.
  const metadataBytes = r.protocols.reduce((n, p) => n + (p.metadata?.length ?? 0), 0);
  if (Math.ceil(metadataBytes / 3) * 4 > maxBytes) return KafkaErrorCode.INVALID_REQUEST;
  return null;
}
