// The leader side of produce fan-in (see ProduceServerMessages in protocol/cluster.ts). One
// produce server runs on every worker of a broker, in front of the leader replicas on that
// worker. A ProduceMany carries the batches of many partitions; each entry is handed to its
// replica as the plain Produce it would have been (an in-thread ask: no NATS hop, no thread
// wake-up), so the replica's checks (leadership, ISR size, idempotence, CRC) and its acks=all
// wait are exactly those of a plain Produce. The request is answered once, when every entry is
// decided, with one result per entry: an entry that fails fails alone.
//
// The handler is synchronous, so the entries reach their replicas' mailboxes in the order the
// requests arrived, behind or ahead of plain Produces from the same producer connection as
// they were sent (a partition's requests stay in order whichever way each one went).

import { z } from "zod";
import { defineActor, type ActorContext, type ReplyHandle } from "../../runtime/actor.js";
import { ErrorCode, SkeinError, isSkeinError } from "../../protocol/errors.js";
import { placementOf } from "../../protocol/placement.js";
import { ProduceServerMessages, replicaAddress, type ProduceManyOutcome, type ProduceManyResult, type ProduceResult } from "../../protocol/cluster.js";

export const ProduceServerArgs = z.object({
  broker: z.number().int().min(0),
  /** The broker's worker count: where each of its replicas lives (placementOf). */
  workers: z.number().int().min(1),
});
type Args = z.infer<typeof ProduceServerArgs>;
type Ctx = ActorContext<Args>;
type ProduceMany = z.infer<typeof ProduceServerMessages.ProduceMany>;

/**
 * Requests waiting for their entries at once, at most. Producers bound their own requests in
 * flight (per partition), so this is only reached by very many producers: the next request is
 * refused as MAILBOX_FULL (retriable) rather than held without bound.
 */
const MAX_PENDING_REQUESTS = 10_000;
/**
 * The in-thread ask to a replica waits this much past the request's timeoutMs: the replica
 * times an acks=all wait out itself (TIMEOUT, retriable) and this is only a backstop.
 */
const LOCAL_ASK_GRACE_MS = 500;

interface PendingRequest {
  reply: ReplyHandle<ProduceManyResult>;
  results: ProduceManyOutcome[];
  remaining: number;
}

export class ProduceServerState {
  readonly pending = new Set<PendingRequest>();

  constructor(readonly args: Args) {}

  produceMany(m: ProduceMany, ctx: Ctx): ProduceManyResult | undefined {
    if (m.acks === 0) return this.tellAll(m, ctx);
    if (this.pending.size >= MAX_PENDING_REQUESTS) {
      throw new SkeinError(ErrorCode.MAILBOX_FULL, `produce server of broker ${this.args.broker} has ${MAX_PENDING_REQUESTS} requests waiting`, { broker: String(this.args.broker) });
    }
    const request: PendingRequest = { reply: ctx.deferReply<ProduceManyResult>(), results: new Array(m.entries.length), remaining: m.entries.length };
    this.pending.add(request);
    const decide = (i: number, outcome: ProduceManyOutcome) => {
      request.results[i] = outcome;
      if (--request.remaining > 0 || !this.pending.delete(request)) return;
      request.reply.resolve({ workers: this.args.workers, results: request.results });
    };
    const askTimeoutMs = m.timeoutMs + LOCAL_ASK_GRACE_MS;
    for (let i = 0; i < m.entries.length; i++) {
      const { topic, partition, start, length } = m.entries[i];
      const address = replicaAddress(topic, partition, this.args.broker);
      if (placementOf(address, this.args.workers) !== ctx.worker) {
        decide(i, { topic, partition, error: notHere(topic, partition, this.args.broker, ctx.worker) });
        continue;
      }
      const body = { batches: m.data.subarray(start, start + length), acks: m.acks, timeoutMs: m.timeoutMs };
      ctx.ask<ProduceResult>(address, "Produce", body, { timeoutMs: askTimeoutMs }).then(
        (r) => decide(i, { topic, partition, baseOffset: r.baseOffset }),
        (e) => decide(i, { topic, partition, error: entryError(e, topic, partition, this.args.broker, ctx.worker) }),
      );
    }
    return undefined;
  }

  /** acks=0: each entry goes on as a tell, as a plain acks=0 Produce would; nothing waits. */
  private tellAll(m: ProduceMany, ctx: Ctx): ProduceManyResult {
    const results: ProduceManyOutcome[] = [];
    for (const { topic, partition, start, length } of m.entries) {
      const address = replicaAddress(topic, partition, this.args.broker);
      if (placementOf(address, this.args.workers) !== ctx.worker) {
        results.push({ topic, partition, error: notHere(topic, partition, this.args.broker, ctx.worker) });
        continue;
      }
      ctx.tell(address, "Produce", { batches: m.data.subarray(start, start + length), acks: 0 });
      results.push({ topic, partition, baseOffset: -1 });
    }
    return { workers: this.args.workers, results };
  }

  close(): void {
    const gone = new SkeinError(ErrorCode.NOT_LEADER_OR_FOLLOWER, `produce server on broker ${this.args.broker} stopped`, { broker: String(this.args.broker) });
    for (const p of this.pending) p.reply.reject(gone);
    this.pending.clear();
  }
}

function notHere(topic: string, partition: number, broker: number, worker: number): { code: string; message: string; retriable: boolean } {
  return { code: ErrorCode.NOT_LEADER_OR_FOLLOWER, message: `${topic}/${partition} is not hosted on worker ${worker} of broker ${broker}`, retriable: true };
}

/**
 * A replica's error as an entry result. ACTOR_NOT_FOUND means no replica of the partition is
 * hosted here (never assigned, moved away, stopped): to the producer that is
 * NOT_LEADER_OR_FOLLOWER, as Kafka answers a partition this broker does not lead.
 */
function entryError(e: unknown, topic: string, partition: number, broker: number, worker: number): { code: string; message: string; retriable: boolean } {
  if (!isSkeinError(e)) return { code: ErrorCode.UNKNOWN, message: String((e as Error)?.message ?? e), retriable: false };
  if (e.code === ErrorCode.ACTOR_NOT_FOUND) return notHere(topic, partition, broker, worker);
  return { code: e.code, message: e.message, retriable: e.retriable };
}

export const ProduceServerActor = defineActor({
  kind: "produce-server",
  args: ProduceServerArgs,
  messages: ProduceServerMessages,
  mailboxCapacity: 100_000,
  init: (ctx) => new ProduceServerState(ctx.args),
  stopped: (s) => s.close(),
  handlers: {
    ProduceMany: (s, m, ctx) => s.produceMany(m, ctx),
  },
});
