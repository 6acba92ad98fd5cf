// What the consumer-group handlers share: where a group's coordinator runs (the leader of the
// group's __consumer_offsets partition, read from this gateway's metadata view), asking it
// over NATS, and which gateway a Kafka client is told to use for the group.
//
// Any gateway can serve any group: it forwards to the coordinator actor wherever that runs. So
// a coordinator on a broker without a gateway is advertised as this gateway (as Metadata does
// for partition leaders), and a client still talking to the previous coordinator's gateway
// after a move keeps working. Member metadata and assignments stay opaque bytes: base64 in
// the coordinator's JSON messages, exactly what the client sent.

import { ErrorCode, SkeinError, isSkeinError } from "../../../protocol/errors.js";
import { KafkaErrorCode, kafkaGroupErrorCode } from "../../../protocol/kafka/errors.js";
import { GROUP_ID, OFFSETS_TOPIC, coordinatorAddress, partitionForGroup } from "../../../protocol/groups.js";
import { findCoordinator } from "../../groups/discovery.js";
import type { GatewayServices } from "../types.js";

/** How long one request keeps retrying a coordinator that is moving or still loading, ms. */
const COORDINATOR_RETRY_MS = 5_000;
const RETRY_BACKOFF_MAX_MS = 250;
/** How long a new __consumer_offsets may take to reach this gateway's view, ms. */
const OFFSETS_TOPIC_VIEW_WAIT_MS = 15_000;
/** Default wait for a coordinator's answer (commits are written with acks=all first), ms. */
export const COORDINATOR_ASK_MS = 10_000;

/**
 * Failures that mean the message reached no coordinator owning the group, or one that
 * applied nothing: retrying cannot apply a request twice.
 */
const NOT_APPLIED: ReadonlySet<string> = new Set([ErrorCode.ACTOR_NOT_FOUND, ErrorCode.NOT_COORDINATOR, ErrorCode.COORDINATOR_NOT_AVAILABLE, ErrorCode.COORDINATOR_LOAD_IN_PROGRESS]);

export const isValidGroupId = (groupId: string) => GROUP_ID.test(groupId);

export interface CoordinatorLocation {
  /** Partition of __consumer_offsets the group hashes to. */
  partition: number;
  /** Broker leading it, where the coordinator actor runs. */
  broker: number;
}

/** Where the group's coordinator runs; creates __consumer_offsets (through the controller) on first use. */
export async function locateCoordinator(s: GatewayServices, groupId: string): Promise<CoordinatorLocation> {
  if (!s.view.topic(OFFSETS_TOPIC)) {
    await findCoordinator(s.client.meta, (a, t, b, o) => s.client.system.ask(a, t, b, o), groupId);
    await s.view.waitUntil(() => s.view.topic(OFFSETS_TOPIC) !== undefined, OFFSETS_TOPIC_VIEW_WAIT_MS);
  }
  const topic = s.view.topic(OFFSETS_TOPIC);
  if (!topic) throw new SkeinError(ErrorCode.COORDINATOR_NOT_AVAILABLE, `${OFFSETS_TOPIC} is being created`, { group: groupId });
  const partition = partitionForGroup(groupId, topic.partitions);
  const broker = s.view.partitionsOf(OFFSETS_TOPIC).get(partition)?.leader ?? -1;
  if (broker < 0) throw new SkeinError(ErrorCode.COORDINATOR_NOT_AVAILABLE, `${OFFSETS_TOPIC}/${partition} has no leader`, { group: groupId, partition });
  return { partition, broker };
}

/**
 * Asks the group's coordinator, waiting up to `timeoutMs` for its answer. A coordinator that
 * is not there yet (leadership moving, actor loading) is looked up again for up to
 * COORDINATOR_RETRY_MS; a timeout is not retried (the coordinator may have acted on it).
 */
export async function askCoordinator<T>(s: GatewayServices, groupId: string, type: string, body: unknown, timeoutMs = COORDINATOR_ASK_MS): Promise<T> {
  const retryUntil = Date.now() + COORDINATOR_RETRY_MS;
  for (let delay = 25; ; delay = Math.min(delay * 2, RETRY_BACKOFF_MAX_MS)) {
    try {
      const { partition, broker } = await locateCoordinator(s, groupId);
      return await s.client.system.ask<T>(coordinatorAddress(partition, broker), type, body, { timeoutMs });
    } catch (e) {
      if (!isSkeinError(e) || !NOT_APPLIED.has(e.code) || Date.now() + delay > retryUntil) throw e;
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

/** Gateways of the live brokers, by broker id (this one included). */
async function liveGateways(s: GatewayServices): Promise<Map<number, number>> {
  const live = await s.view.liveCluster();
  const gateways = new Map<number, number>();
  for (const b of live.brokers) if (b.kafkaPort !== undefined && b.kafkaPort > 0) gateways.set(b.broker, b.kafkaPort);
  gateways.set(s.brokerId, s.port);
  return gateways;
}

/** The gateway a client should use for a coordinator on `broker`: its own, or this one when it has none. */
export async function advertisedCoordinator(s: GatewayServices, broker: number): Promise<{ nodeId: number; host: string; port: number }> {
  const port = (await liveGateways(s)).get(broker);
  if (port === undefined) return { nodeId: s.brokerId, host: s.options.advertisedHost, port: s.port };
  return { nodeId: broker, host: s.options.advertisedHost, port };
}

/**
 * Partitions of __consumer_offsets whose groups this gateway lists (a client asks every broker
 * and concatenates, so each partition belongs to exactly one gateway): the ones led here, and
 * when this is the live gateway with the lowest id, the ones led by brokers without a gateway.
 */
export async function listedPartitions(s: GatewayServices): Promise<CoordinatorLocation[]> {
  const gateways = await liveGateways(s);
  const lowest = Math.min(...gateways.keys());
  const out: CoordinatorLocation[] = [];
  for (const state of s.view.partitionsOf(OFFSETS_TOPIC).values()) {
    if (state.leader < 0) continue;
    const mine = state.leader === s.brokerId || (!gateways.has(state.leader) && lowest === s.brokerId);
    if (mine) out.push({ partition: state.partition, broker: state.leader });
  }
  return out;
}

/**
 * The Kafka code for a member's failed request (SyncGroup, Heartbeat, LeaveGroup, a member's
 * OffsetCommit): a group the coordinator does not know (it moved before the group's first
 * rebalance was written) means the member is not in it, so the client joins afresh.
 */
export function membershipErrorCode(e: unknown): number {
  if (isSkeinError(e) && e.code === ErrorCode.GROUP_ID_NOT_FOUND) return KafkaErrorCode.UNKNOWN_MEMBER_ID;
  return kafkaGroupErrorCode(e);
}

export const toBase64 = (bytes: Uint8Array | null) => (bytes === null ? "" : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64"));

export const fromBase64 = (b64: string): Uint8Array => Buffer.from(b64, "base64");
