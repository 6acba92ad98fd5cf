// The producer's in-flight window per partition, against a simulated leader that checks
// sequences with the broker's own ProducerStateTable: requests answered out of order, refused
// (retriable), duplicated on the wire, or appended with their answer lost must still leave the
// log with every record once, in order, and each send() with its own offset.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { ProducerState } from "../actors/client/producer.js";
import { encodeFrames } from "../actors/client/frames.js";
import { ProducerStateTable } from "../actors/cluster/producer-state.js";
import { ProducerArgs } from "../protocol/client.js";
import { readBatchHeader } from "../protocol/record-batch.js";
import { ErrorCode, SkeinError, isSkeinError } from "../protocol/errors.js";
import type { MetadataStore } from "../actors/cluster/metadata.js";
import type { ActorContext, ReplyHandle } from "../runtime/actor.js";
import { actorContextBase, seededRandom } from "./helpers.js";

/** What the simulated network and leader do with one produce request. */
type Fate =
  | "ok" // appended (or recognised as a duplicate) and answered
  | "refuse" // refused before the append with a retriable error (NOT_ENOUGH_REPLICAS)
  | "lost-reply" // appended, but the answer never arrives (the producer's ask times out)
  | "duplicate"; // delivered twice, answered once

interface Request {
  seq: number;
  index: number;
}

class Harness {
  readonly table = new ProducerStateTable();
  /** The leader's log: [baseSequence, lastSequence] of each appended batch, in offset order. */
  readonly log: Array<{ baseSequence: number; lastSequence: number; baseOffset: number }> = [];
  logEnd = 0;
  inFlight = 0;
  maxInFlight = 0;
  requests: Request[] = [];
  /** Produce requests in arrival order, processed one at a time like the replica's mailbox. */
  private readonly wire: Array<() => void> = [];
  private readonly mailbox: Array<() => void> = [];
  private nextReply: ReplyHandle<unknown> | null = null;
  readonly state: ProducerState;
  readonly ctx: ActorContext<ProducerArgs>;

  constructor(
    args: Partial<ProducerArgs>,
    private readonly fate: (r: Request) => Fate,
    private readonly replyDelay: () => number = () => 0,
  ) {
    const meta = {
      getTopic: async () => ({ partitions: 1 }),
      getPartition: async () => ({ value: { leader: 1, leaderEpoch: 0, replicas: [1], isr: [1] }, revision: 1 }),
      // No live record: the producer sends plain Produces, the requests this harness answers.
      getBroker: async () => null,
    } as unknown as MetadataStore;
    const parsed = ProducerArgs.parse({ lingerMs: 0, requestTimeoutMs: 100, retryBackoffMs: 1, ...args });
    this.state = new ProducerState(meta, parsed);
    this.state.producerId = 7;
    this.state.producerEpoch = 0;
    const post = (fn: () => void) => {
      this.mailbox.push(fn);
      if (this.mailbox.length === 1) setImmediate(() => this.runMailbox());
    };
    this.ctx = {
      ...actorContextBase(parsed),
      tell: (address, type, body) => {
        assert.is(address, "producer", "only tells to itself");
        const m = body as never;
        post(() => (type === "Sent" ? this.state.onSent(m, this.ctx) : assert.unreachable(`tell ${type}`)));
      },
      ask: <T>(_address: string, _type: string, body: unknown, options?: { timeoutMs?: number }) => this.produce((body as { batches: Uint8Array }).batches, options?.timeoutMs ?? 1_000) as Promise<T>,
      deferReply: <T>() => this.nextReply as ReplyHandle<T>,
      schedule: (ms, type, body) => {
        const t = setTimeout(() => post(() => (type === "Retry" ? this.state.retry((body as { key: string }).key, this.ctx) : this.state.linger(this.ctx))), ms);
        return () => clearTimeout(t);
      },
      stop: () => undefined,
    };
  }

  private runMailbox(): void {
    while (this.mailbox.length > 0) this.mailbox[0](), this.mailbox.shift();
  }

  /** One record per send, its value the send's index: resolves with its offset. */
  send(index: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.nextReply = {
        resolve: (r) => resolve((r as Array<{ baseOffset: number }>)[0].baseOffset),
        reject,
        settled: false,
      };
      void this.state.send("t", encodeFrames([{ value: String(index), partition: 0 }]).buffer, this.ctx);
    });
  }

  private produce(bytes: Uint8Array, timeoutMs: number): Promise<{ baseOffset: number }> {
    const h = readBatchHeader(bytes, 0);
    const request = { seq: h.baseSequence, index: this.requests.length };
    this.requests.push(request);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const fate = this.fate(request);
    return new Promise((resolve, reject) => {
      const answer = (fn: () => void) => setTimeout(() => {
        this.inFlight--;
        fn();
      }, this.replyDelay());
      const handle = () => {
        if (fate === "refuse") return answer(() => reject(new SkeinError(ErrorCode.NOT_ENOUGH_REPLICAS, "ISR too small")));
        let result: { baseOffset: number };
        try {
          result = this.append(h);
        } catch (e) {
          if (!isSkeinError(e)) throw e;
          return answer(() => reject(e));
        }
        if (fate === "lost-reply") return answer(() => setTimeout(() => reject(new SkeinError(ErrorCode.TIMEOUT, "ask timed out")), Math.min(timeoutMs, 5)));
        answer(() => resolve(result));
      };
      this.onWire(handle);
      if (fate === "duplicate") this.onWire(() => void this.tryAppend(h));
    });
  }

  private onWire(fn: () => void): void {
    this.wire.push(fn);
    if (this.wire.length === 1) queueMicrotask(() => {
      while (this.wire.length > 0) this.wire[0](), this.wire.shift();
    });
  }

  private tryAppend(h: ReturnType<typeof readBatchHeader>): void {
    try {
      this.append(h);
    } catch {
      // a duplicate copy refused: its answer goes nowhere
    }
  }

  /** The leader's produce: sequence check, then append and record (replica.ts). */
  private append(h: ReturnType<typeof readBatchHeader>): { baseOffset: number } {
    const check = this.table.check(h, { topic: "t", partition: 0 });
    if (check.kind === "duplicate") return { baseOffset: check.baseOffset };
    const baseOffset = this.logEnd;
    this.logEnd += h.recordCount;
    this.log.push({ baseSequence: h.baseSequence, lastSequence: h.baseSequence + h.lastOffsetDelta, baseOffset });
    this.table.record({ ...h, baseOffset, lastOffset: baseOffset + h.lastOffsetDelta });
    return { baseOffset };
  }

  /** Every record once, in order: the log's sequences run 0, 1, 2, … with offsets equal to them. */
  assertExact(total: number, offsets: number[]): void {
    let next = 0;
    for (const b of this.log) {
      assert.is(b.baseSequence, next, `batch at offset ${b.baseOffset} starts at sequence ${b.baseSequence}, expected ${next}: ${JSON.stringify(this.log)}`);
      assert.is(b.baseOffset, b.baseSequence, "offset = sequence (one producer, log from 0)");
      next = b.lastSequence + 1;
    }
    assert.is(next, total, "every record in the log");
    assert.equal(offsets, Array.from({ length: total }, (_, i) => i), "each send resolves with its own offset");
  }
}

/**
 * Sends `total` records, one per send, `perTurn` every ms: spread over several round trips,
 * so the window fills (the producer spaces requests over a round trip, see lingerOf).
 */
async function run(h: Harness, total: number, perTurn = 3): Promise<number[]> {
  const sends: Promise<number>[] = [];
  for (let i = 0; i < total; i++) {
    sends.push(h.send(i));
    if (i % perTurn === perTurn - 1) await new Promise((r) => setTimeout(r, 1));
  }
  return Promise.all(sends);
}

test("window 5: requests overlap, never more than 5, log exact", async () => {
  const h = new Harness({ maxInFlightRequests: 5 }, () => "ok", () => 20);
  const offsets = await run(h, 300);
  h.assertExact(300, offsets);
  assert.ok(h.maxInFlight >= 3 && h.maxInFlight <= 5, `the window fills: ${h.maxInFlight}`);
});

test("window 2: at most 2 in flight", async () => {
  const h = new Harness({ maxInFlightRequests: 2 }, () => "ok", () => 20);
  h.assertExact(200, await run(h, 200));
  assert.is(h.maxInFlight, 2);
});

test("default: one request at a time (idempotent too), batches growing while it waits", async () => {
  const one = new Harness({}, () => "ok", () => 5);
  one.assertExact(100, await run(one, 100));
  assert.is(one.maxInFlight, 1);
  assert.ok(one.requests.length < 100, "batches grow while the one request waits");
});

test("not idempotent: one request at a time unless asked for more", async () => {
  const h = new Harness({ idempotent: false }, () => "ok", () => 5);
  h.state.producerId = -1;
  await run(h, 50);
  assert.is(h.maxInFlight, 1);
});

test("a refused request in the middle of the window: later ones are resent in order", async () => {
  // Request 10 is refused; those behind it get OUT_OF_ORDER_SEQUENCE from the sequence check.
  const h = new Harness({ maxInFlightRequests: 5 }, (r) => (r.index === 10 ? "refuse" : "ok"), () => 10);
  const offsets = await run(h, 200);
  h.assertExact(200, offsets);
  assert.ok(h.requests.length > h.log.length, "something was resent");
});

test("first request alone: a leader that does not know the producer cannot take a later batch ahead", async () => {
  // The table knows no producer, so it would append any sequence: only sending the first
  // request alone (and again after each failure) keeps a refused first batch first.
  const h = new Harness({ maxInFlightRequests: 5 }, (r) => (r.index === 0 || r.index === 1 ? "refuse" : "ok"), () => 2);
  const offsets = await run(h, 100, 50);
  h.assertExact(100, offsets);
  assert.is(h.requests[0].seq, 0);
  assert.is(h.requests[1].seq, 0, "the resend of sequence 0 went alone");
  assert.is(h.requests[2].seq, 0, "and again after its second refusal");
});

test("injected duplicates on the wire and lost answers: no duplicates, original offsets back", async () => {
  const h = new Harness({ maxInFlightRequests: 5 }, (r) => (r.index % 5 === 1 ? "duplicate" : r.index % 7 === 3 ? "lost-reply" : "ok"), () => 10);
  const offsets = await run(h, 300);
  h.assertExact(300, offsets);
});

test("random refusals, lost answers, duplicates and reply order, many seeds", async () => {
  let overlapped = 0;
  for (let seed = 1; seed <= 30; seed++) {
    const random = seededRandom(seed);
    const fate = (): Fate => {
      const x = random();
      return x < 0.05 ? "refuse" : x < 0.08 ? "lost-reply" : x < 0.12 ? "duplicate" : "ok";
    };
    const h = new Harness({ maxInFlightRequests: 5 }, fate, () => Math.floor(random() * 12));
    let offsets: number[];
    try {
      offsets = await run(h, 150, 1 + (seed % 5));
    } catch (e) {
      throw new Error(`seed ${seed}: ${(e as Error).message}`);
    }
    h.assertExact(150, offsets);
    assert.ok(h.maxInFlight <= 5, `seed ${seed}: at most 5 in flight`);
    overlapped = Math.max(overlapped, h.maxInFlight);
  }
  assert.ok(overlapped >= 3, `requests overlapped (${overlapped})`);
});

test.run();
