// Helpers the handlers share: per-item results with Kafka's error code and message, duplicate
// names and partitions in one request, and the bounded wait until this gateway's metadata
// view shows what the controller did (so a client that asks this gateway for Metadata right
// after sees its change) and, for new partitions, until their leaders serve (in Kafka a
// leader is ready before metadata names it; in Skein the replica actor starts after the
// partition state is written).

import { KafkaErrorCode, kafkaErrorCode, kafkaErrorMessage } from "../../../protocol/kafka/errors.js";
import type { GatewayServices } from "../types.js";

/** Longest wait for the view after a topic change, ms (the change itself is already done). */
const MAX_VIEW_WAIT_MS = 30_000;

export interface ItemResult {
  name: string;
  errorCode: number;
  errorMessage: string | null;
}

export const ok = (name: string): ItemResult => ({ name, errorCode: KafkaErrorCode.NONE, errorMessage: null });

export const failure = (name: string, e: unknown): ItemResult => ({ name, errorCode: kafkaErrorCode(e), errorMessage: kafkaErrorMessage(e) });

export const refusal = (name: string, errorCode: number, errorMessage: string): ItemResult => ({ name, errorCode, errorMessage });

/** Names that occur more than once in one request: Kafka refuses all their entries. */
export function duplicates(names: string[]): Set<string> {
  const seen = new Set<string>();
  const twice = new Set<string>();
  for (const n of names) (seen.has(n) ? twice : seen).add(n);
  return twice;
}

/** A topic/partition as one string, for `duplicates` (the partition number ends at the first "/"). */
export const partitionKey = (topic: string, partition: number): string => `${partition}/${topic}`;

export const DUPLICATE_MESSAGE = "the name occurs more than once in the request";

export const NO_ASSIGNMENT_MESSAGE = "manual replica assignment is not supported: Skein's controller places replicas; leave it empty";

/** Waits (bounded by the request's timeout) until the view satisfies `done`. */
export async function awaitView(s: GatewayServices, timeoutMs: number, done: () => boolean): Promise<void> {
  await s.view.waitUntil(done, Math.min(Math.max(timeoutMs, 0), MAX_VIEW_WAIT_MS));
}

/** Waits (bounded by the request's timeout) until the view satisfies `done` and every leader of `topic` serves. */
export async function awaitLeaders(s: GatewayServices, topic: string, timeoutMs: number, done: () => boolean): Promise<void> {
  const deadline = Date.now() + Math.min(Math.max(timeoutMs, 0), MAX_VIEW_WAIT_MS);
  await s.view.waitUntil(done, deadline - Date.now());
  const left = deadline - Date.now();
  // The change itself is done: a leader still starting after the timeout is what a client
  // meets as a retriable NOT_LEADER_OR_FOLLOWER, so the wait's own failure is not an error.
  if (left > 0) await s.client.waitForLeaders(topic, left).catch(() => undefined);
}
