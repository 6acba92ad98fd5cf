// Fetch: reads each partition from its leader replica and returns the stored batches as they
// are (consumers see offsets below the high watermark only).
//
// Memory: a request's partitions are deduplicated (the first entry of a topic/partition
// wins, as in Kafka, where the request becomes a map) and read in request order, at most
// `fetchConcurrency` at a time, each read reserving the bytes it may return. A read starts
// only while the response has room: max_bytes, clamped to the gateway's `fetchMaxBytes`, less
// what earlier reads returned and running reads reserved. So one Fetch holds about max_bytes,
// plus at most one batch per running read (a read returns at least one whole batch). The
// response stays within max_bytes except that its first non-empty partition is always whole
// (KIP-74), so a batch larger than the limit never blocks a consumer; partitions not read
// because the response was full come back empty (high watermark -1, which clients ignore) and
// are read by the client's next Fetch.
//
// Long poll in two rounds: first the partitions are read without waiting; when that gives no
// data and no error and the client allows a wait, the first `fetchLongPollPartitions` of them
// are asked again with the remaining wait, and the response goes out as soon as one of them
// has data or an error (or the wait ends). So min_bytes is honoured as "at least one byte",
// which is what kafkajs and most clients ask for. Answers that come after the response went
// out, or that would take it past max_bytes, are dropped (the log keeps the records).
//
// Fetch sessions (KIP-227) are declined the way the protocol allows: session_id 0 in every
// response, so clients keep sending full fetch requests.

import { Fetch } from "../../../protocol/kafka/fetch.js";
import { KafkaErrorCode, kafkaErrorCode } from "../../../protocol/kafka/errors.js";
import { replicaAddress, type FetchResult } from "../../../protocol/cluster.js";
import type { RequestOf, ResponseIn } from "../../../protocol/kafka/api.js";
import { isSkeinError } from "../../../protocol/errors.js";
import { defineHandler } from "../handler.js";
import type { GatewayServices } from "../types.js";
import { partitionKey } from "./admin.js";

type FetchRequest = RequestOf<typeof Fetch>;
type FetchResponse = ResponseIn<typeof Fetch>;
type PartitionOut = FetchResponse["responses"][number]["partitions"][number];

interface Wanted {
  topic: string;
  partition: number;
  fetchOffset: number;
  maxBytes: number;
  leaderEpoch: number;
}

/** Longest wait the replica accepts for one fetch, ms. */
const MAX_REPLICA_WAIT_MS = 30_000;
/** Extra time a replica fetch ask gets over its long-poll wait, ms. */
const ASK_MARGIN_MS = 5_000;
const EMPTY = new Uint8Array(0);

export const fetchHandler = defineHandler(Fetch, async (request, ctx) => {
  const s = ctx.services;
  if (request.sessionId !== 0 || request.sessionEpoch > 0) {
    const errorCode = request.sessionId !== 0 ? KafkaErrorCode.FETCH_SESSION_ID_NOT_FOUND : KafkaErrorCode.INVALID_FETCH_SESSION_EPOCH;
    return { throttleTimeMs: 0, errorCode, sessionId: 0, responses: [] };
  }
  const budgetBytes = Math.min(Math.max(request.maxBytes, 1), s.options.fetchMaxBytes);
  const wanted = wantedPartitions(request, s, budgetBytes);
  const results = await readInOrder(s, wanted, budgetBytes);
  const maxWaitMs = Math.min(Math.max(request.maxWaitMs, 0), MAX_REPLICA_WAIT_MS);
  const nothing = results.every((r) => r.errorCode === KafkaErrorCode.NONE && r.records!.length === 0);
  if (maxWaitMs > 0 && request.minBytes > 0 && nothing) await longPoll(s, wanted, results, maxWaitMs, budgetBytes);
  trimToMaxBytes(results, budgetBytes);
  return { throttleTimeMs: 0, errorCode: KafkaErrorCode.NONE, sessionId: 0, responses: byTopic(wanted, results, request.isolationLevel === 1 ? [] : null) };
});

/** Distinct topic/partitions in request order (the first entry of each wins). */
function wantedPartitions(request: FetchRequest, s: GatewayServices, budgetBytes: number): Wanted[] {
  const cap = Math.min(budgetBytes, s.maxFetchBytes);
  const seen = new Set<string>();
  const out: Wanted[] = [];
  for (const t of request.topics) {
    for (const p of t.partitions) {
      const key = partitionKey(t.topic, p.partition);
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({
        topic: t.topic,
        partition: p.partition,
        fetchOffset: p.fetchOffset,
        maxBytes: Math.min(Math.max(p.partitionMaxBytes, 1), cap),
        leaderEpoch: p.currentLeaderEpoch,
      });
    }
  }
  return out;
}

/** One response entry per topic, in order of first appearance. */
function byTopic(wanted: Wanted[], results: PartitionOut[], aborted: [] | null): FetchResponse["responses"] {
  const topics = new Map<string, PartitionOut[]>();
  for (const [i, w] of wanted.entries()) {
    const partitions = topics.get(w.topic) ?? topics.set(w.topic, []).get(w.topic)!;
    partitions.push({ ...results[i], abortedTransactions: aborted });
  }
  return [...topics].map(([topic, partitions]) => ({ topic, partitions }));
}

/**
 * Reads partitions in request order, `fetchConcurrency` at a time; a read reserves its max
 * bytes out of the budget and starts only when they fit (the first read always starts). Stops
 * starting reads once the budget is used up; partitions left unread answer empty.
 */
async function readInOrder(s: GatewayServices, wanted: Wanted[], budgetBytes: number): Promise<PartitionOut[]> {
  const results = wanted.map((w) => emptyResult(w.partition));
  let next = 0;
  let usedBytes = 0;
  let reservedBytes = 0;
  let freeRoom: () => void = () => undefined;
  let roomFreed = new Promise<void>((resolve) => (freeRoom = resolve));
  const lane = async (): Promise<void> => {
    while (next < wanted.length) {
      const room = budgetBytes - usedBytes - reservedBytes;
      if (room <= 0) {
        if (reservedBytes === 0) return; // full: what is read is the response
        await roomFreed; // a running read may leave room when it returns
        continue;
      }
      const i = next++;
      const maxBytes = Math.min(wanted[i].maxBytes, room);
      reservedBytes += maxBytes;
      const r = await fetchOne(s, { ...wanted[i], maxBytes }, 0);
      reservedBytes -= maxBytes;
      usedBytes += r.records!.length;
      results[i] = r;
      const wakeWaiting = freeRoom;
      roomFreed = new Promise((resolve) => (freeRoom = resolve));
      wakeWaiting();
    }
  };
  await Promise.all(Array.from({ length: Math.min(s.options.fetchConcurrency, wanted.length) }, lane));
  return results;
}

/**
 * Re-asks the first `fetchLongPollPartitions` partitions with the wait; fills `results` in
 * place with answers that fit the budget, returns at the first data or error.
 */
async function longPoll(s: GatewayServices, wanted: Wanted[], results: PartitionOut[], maxWaitMs: number, budgetBytes: number): Promise<void> {
  let wake: () => void = () => undefined;
  const woken = new Promise<void>((resolve) => (wake = resolve));
  let answered = false;
  let usedBytes = 0;
  const polled = wanted.slice(0, s.options.fetchLongPollPartitions);
  const polls = polled.map((w, i) =>
    fetchOne(s, w, maxWaitMs).then((r) => {
      if (answered) return; // the response went out; a late read is dropped (the log keeps it)
      const size = r.records!.length;
      if (size > 0 && usedBytes > 0 && usedBytes + size > budgetBytes) return;
      usedBytes += size;
      results[i] = r;
      if (r.errorCode !== KafkaErrorCode.NONE || size > 0) wake();
    }),
  );
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, maxWaitMs)));
  await Promise.race([woken, deadline, Promise.all(polls)]);
  answered = true;
  clearTimeout(timer);
}

function emptyResult(partition: number, errorCode: number = KafkaErrorCode.NONE, r?: Partial<FetchResult>): PartitionOut {
  return {
    partitionIndex: partition,
    errorCode,
    highWatermark: r?.highWatermark ?? -1,
    lastStableOffset: r?.highWatermark ?? -1,
    logStartOffset: r?.logStartOffset ?? -1,
    abortedTransactions: null,
    preferredReadReplica: -1,
    records: r?.data ?? EMPTY,
  };
}

async function fetchOne(s: GatewayServices, w: Wanted, maxWaitMs: number): Promise<PartitionOut> {
  if (w.fetchOffset < 0) return emptyResult(w.partition, KafkaErrorCode.OFFSET_OUT_OF_RANGE);
  try {
    const leader = s.view.leaderOf(w.topic, w.partition);
    const body = { fromOffset: w.fetchOffset, maxBytes: w.maxBytes, maxWaitMs, leaderEpoch: w.leaderEpoch };
    const r = await s.client.system.ask<FetchResult>(replicaAddress(w.topic, w.partition, leader), "Fetch", body, { timeoutMs: maxWaitMs + ASK_MARGIN_MS });
    return emptyResult(w.partition, KafkaErrorCode.NONE, r);
  } catch (e) {
    // OFFSET_OUT_OF_RANGE carries the log bounds, which the client needs to reset its position.
    const logStartOffset = isSkeinError(e) && typeof e.context.logStartOffset === "number" ? e.context.logStartOffset : undefined;
    return emptyResult(w.partition, kafkaErrorCode(e), { logStartOffset });
  }
}

/**
 * Keeps partitions in request order while they fit in maxBytes; the first non-empty one
 * always stays. Only a read that returned one batch larger than its share goes past the
 * budget; this drops it.
 */
function trimToMaxBytes(results: PartitionOut[], maxBytes: number): void {
  let total = 0;
  for (const r of results) {
    const size = r.records!.length;
    if (size === 0) continue;
    if (total > 0 && total + size > maxBytes) r.records = EMPTY;
    else total += size;
  }
}
