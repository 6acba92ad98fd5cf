// Fetch: reads each partition from its leader replica and returns the stored batches as they
// are (consumers see offsets below the high watermark only).
//
// Long poll in two rounds: first every partition is read without waiting; when that gives no
// data and the client allows a wait, the empty partitions are asked again with the remaining
// wait and the response goes out as soon as one of them has data or an error (or the wait
// ends). So min_bytes is honoured as "at least one byte", which is what kafkajs and most
// clients ask for. The response stays within max_bytes except that its first non-empty
// partition is always whole (KIP-74), so a batch larger than the limit never blocks a consumer.
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

type FetchRequest = RequestOf<typeof Fetch>;
type PartitionOut = ResponseIn<typeof Fetch>["responses"][number]["partitions"][number];

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
  const wanted = wantedPartitions(request, s);
  const results = await fetchAll(s, wanted, 0);
  const maxWaitMs = Math.min(Math.max(request.maxWaitMs, 0), MAX_REPLICA_WAIT_MS);
  if (maxWaitMs > 0 && request.minBytes > 0 && results.every((r) => r.errorCode === KafkaErrorCode.NONE && r.records!.length === 0)) {
    await longPoll(s, wanted, results, maxWaitMs);
  }
  trimToMaxBytes(results, Math.max(request.maxBytes, 1));
  const aborted = request.isolationLevel === 1 ? [] : null;
  let i = 0;
  return {
    throttleTimeMs: 0,
    errorCode: KafkaErrorCode.NONE,
    sessionId: 0,
    responses: request.topics.map((t) => ({
      topic: t.topic,
      partitions: t.partitions.map(() => ({ ...results[i++], abortedTransactions: aborted })),
    })),
  };
});

function wantedPartitions(request: FetchRequest, s: GatewayServices): Wanted[] {
  const cap = Math.min(Math.max(request.maxBytes, 1), s.maxFetchBytes);
  return request.topics.flatMap((t) =>
    t.partitions.map((p) => ({
      topic: t.topic,
      partition: p.partition,
      fetchOffset: p.fetchOffset,
      maxBytes: Math.min(Math.max(p.partitionMaxBytes, 1), cap),
      leaderEpoch: p.currentLeaderEpoch,
    })),
  );
}

/** Reads every partition, `fetchConcurrency` at a time, in request order. */
async function fetchAll(s: GatewayServices, wanted: Wanted[], maxWaitMs: number): Promise<PartitionOut[]> {
  const results: PartitionOut[] = new Array(wanted.length);
  let next = 0;
  const worker = async () => {
    while (next < wanted.length) {
      const i = next++;
      results[i] = await fetchOne(s, wanted[i], maxWaitMs);
    }
  };
  await Promise.all(Array.from({ length: Math.min(s.options.fetchConcurrency, wanted.length) }, worker));
  return results;
}

/** Re-asks every partition with the wait; fills `results` in place, returns at the first data or error. */
async function longPoll(s: GatewayServices, wanted: Wanted[], results: PartitionOut[], maxWaitMs: number): Promise<void> {
  let wake: () => void = () => undefined;
  const woken = new Promise<void>((resolve) => (wake = resolve));
  let answered = false;
  const polls = wanted.map((w, i) =>
    fetchOne(s, w, maxWaitMs).then((r) => {
      if (answered) return; // the response went out; a late read is dropped (the log keeps it)
      results[i] = r;
      if (r.errorCode !== KafkaErrorCode.NONE || r.records!.length > 0) wake();
    }),
  );
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, maxWaitMs)));
  await Promise.race([woken, deadline, Promise.all(polls)]);
  answered = true;
  clearTimeout(timer);
}

async function fetchOne(s: GatewayServices, w: Wanted, maxWaitMs: number): Promise<PartitionOut> {
  const out = (errorCode: number, r?: Partial<FetchResult>): PartitionOut => ({
    partitionIndex: w.partition,
    errorCode,
    highWatermark: r?.highWatermark ?? -1,
    lastStableOffset: r?.highWatermark ?? -1,
    logStartOffset: r?.logStartOffset ?? -1,
    abortedTransactions: null,
    preferredReadReplica: -1,
    records: r?.data ?? EMPTY,
  });
  if (w.fetchOffset < 0) return out(KafkaErrorCode.OFFSET_OUT_OF_RANGE);
  try {
    const leader = s.view.leaderOf(w.topic, w.partition);
    const body = { fromOffset: w.fetchOffset, maxBytes: w.maxBytes, maxWaitMs, leaderEpoch: w.leaderEpoch };
    const r = await s.client.system.ask<FetchResult>(replicaAddress(w.topic, w.partition, leader), "Fetch", body, { timeoutMs: maxWaitMs + ASK_MARGIN_MS });
    return out(KafkaErrorCode.NONE, r);
  } catch (e) {
    // OFFSET_OUT_OF_RANGE carries the log bounds, which the client needs to reset its position.
    const logStartOffset = isSkeinError(e) && typeof e.context.logStartOffset === "number" ? e.context.logStartOffset : undefined;
    return out(kafkaErrorCode(e), { logStartOffset });
  }
}

/** Keeps partitions in request order while they fit in maxBytes; the first non-empty one always stays. */
function trimToMaxBytes(results: PartitionOut[], maxBytes: number): void {
  let total = 0;
  for (const r of results) {
    const size = r.records!.length;
    if (size === 0) continue;
    if (total > 0 && total + size > maxBytes) r.records = EMPTY;
    else total += size;
  }
}
