// The producer actor's batch buffers and leader checks, against a fake leader: a batch sealed
// in its builder's buffer (no copy) must stay intact until it is answered, even while later
// batches are built and earlier buffers reused; and one leader check per partition must still
// give up every request waiting for a leader that moved.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { ProducerState } from "../actors/client/producer.js";
import { encodeFrames, FrameRing, releaseFrames } from "../actors/client/frames.js";
import { ProducerArgs } from "../protocol/client.js";
import { decodeRecords, readBatchHeader, verifyBatch } from "../protocol/record-batch.js";
import { ErrorCode, SkeinError } from "../protocol/errors.js";
import type { MetadataStore } from "../actors/cluster/metadata.js";
import type { ActorContext, ReplyHandle } from "../runtime/actor.js";
import { actorContextBase, seededRandom } from "./helpers.js";

interface Held {
  bytes: Uint8Array;
  /** What the bytes were when the request went out. */
  copy: Uint8Array;
  to: string;
  answer(r: { baseOffset: number } | SkeinError): void;
}

class Harness {
  readonly state: ProducerState;
  readonly ctx: ActorContext<ProducerArgs>;
  /** Requests not answered yet, bytes held by reference as a leader in the same thread would. */
  readonly held: Held[] = [];
  readonly sent: Held[] = [];
  leader = { leader: 1, leaderEpoch: 0, replicas: [1, 2], isr: [1, 2] };
  partitionReads = 0;
  private nextReply: ReplyHandle<unknown> | null = null;

  constructor(args: Partial<ProducerArgs>) {
    const meta = {
      getTopic: async () => ({ partitions: 1 }),
      getPartition: async () => {
        this.partitionReads++;
        return { value: { ...this.leader }, revision: 1 };
      },
      // No live record: the producer sends plain Produces, the requests this harness answers.
      getBroker: async () => null,
    } as unknown as MetadataStore;
    const parsed = ProducerArgs.parse({ lingerMs: 0, requestTimeoutMs: 60_000, retryBackoffMs: 1, ...args });
    this.state = new ProducerState(meta, parsed);
    this.state.producerId = 3;
    this.ctx = {
      ...actorContextBase(parsed),
      tell: (_address, type, body) => setImmediate(() => (type === "Sent" ? this.state.onSent(body as never, this.ctx) : assert.unreachable(type))),
      ask: <T>(address: string, _type: string, body: unknown) =>
        new Promise<T>((resolve, reject) => {
          const bytes = (body as { batches: Uint8Array }).batches;
          const h: Held = { bytes, copy: bytes.slice(), to: address, answer: (r) => (r instanceof SkeinError ? reject(r) : resolve(r as T)) };
          this.held.push(h);
          this.sent.push(h);
        }),
      deferReply: <T>() => this.nextReply as ReplyHandle<T>,
      schedule: (ms, type, body) => {
        const t = setTimeout(() => (type === "Retry" ? this.state.retry((body as { key: string }).key, this.ctx) : this.state.linger(this.ctx)), ms);
        return () => clearTimeout(t);
      },
      stop: () => undefined,
    };
  }

  send(values: Uint8Array[]): Promise<number> {
    return new Promise((resolve, reject) => {
      this.nextReply = { resolve: (r) => resolve((r as Array<{ baseOffset: number }>)[0].baseOffset), reject, settled: false };
      void this.state.send("t", encodeFrames(values.map((value) => ({ value, partition: 0 }))).buffer, this.ctx);
    });
  }

  /** Answers the oldest held request; its bytes must be exactly what was sent, CRC intact. */
  answerOldest(logEnd: { next: number }, error?: SkeinError): void {
    const h = this.held.shift()!;
    assert.equal(Buffer.from(h.bytes).equals(Buffer.from(h.copy)), true, "a batch's bytes stay as sent until it is answered");
    verifyBatch(h.bytes);
    if (error) return h.answer(error);
    const count = readBatchHeader(h.bytes).recordCount;
    h.answer({ baseOffset: logEnd.next });
    logEnd.next += count;
  }
}

const tick = () => new Promise((r) => setTimeout(r, 2));

test("batches sealed in their builder stay intact until answered; their buffers are reused after", async () => {
  // 128 KiB batches of 10 KiB records: a full batch fills more than half of its buffer (batch
  // bytes plus 64 KiB of room), so it is sealed in place.
  const h = new Harness({ batchBytes: 128 * 1024, maxInFlightRequests: 3 });
  const logEnd = { next: 0 };
  const sends: Array<Promise<number>> = [];
  for (let i = 0; i < 12; i++) {
    // 30 records of 10 KiB a send: the batches fill up and are sealed by size.
    sends.push(h.send(Array.from({ length: 30 }, (_, j) => new Uint8Array(10 * 1024).fill((i * 30 + j) % 251))));
    // Answers lag behind: the next send's batches are built (in reused buffers) while the
    // requests of earlier ones are still held.
    await tick();
    while (h.held.length > 0) h.answerOldest(logEnd);
    await tick();
  }
  for (;;) {
    while (h.held.length > 0) h.answerOldest(logEnd);
    const done = await Promise.race([Promise.all(sends).then(() => true), tick().then(() => false)]);
    if (done) break;
  }
  const offsets = await Promise.all(sends);
  assert.equal(offsets, Array.from({ length: 12 }, (_, i) => i * 30), "each send its own offset, in order");
  const buffers = new Set(h.sent.map((s) => s.bytes.buffer));
  assert.ok(buffers.size < h.sent.length, `buffers were reused (${buffers.size} for ${h.sent.length} batches)`);
  let k = 0;
  for (const s of h.sent) {
    for (const r of decodeRecords(s.copy)) {
      assert.is(r.value!.length, 10 * 1024);
      assert.is(r.value![0], k++ % 251, "records in send order");
    }
  }
  assert.is(k, 360);
});

test("a refused batch sealed in place is resent with the same bytes", async () => {
  const h = new Harness({ batchBytes: 128 * 1024 });
  const logEnd = { next: 0 };
  const sends = Array.from({ length: 30 }, (_, i) => h.send([new Uint8Array(10 * 1024).fill(i)]));
  await tick();
  h.answerOldest(logEnd, new SkeinError(ErrorCode.NOT_ENOUGH_REPLICAS, "ISR too small"));
  while (h.held.length === 0) await tick();
  assert.equal(Buffer.from(h.held[0].bytes).equals(Buffer.from(h.sent[0].copy)), true, "the resend is the same batch");
  for (;;) {
    while (h.held.length > 0) h.answerOldest(logEnd);
    const done = await Promise.race([Promise.all(sends).then(() => true), tick().then(() => false)]);
    if (done) break;
  }
  assert.equal(await Promise.all(sends), Array.from({ length: 30 }, (_, i) => i));
});

test("leader moved: every waiting request is given up and resent to the new leader, one partition read per check", async () => {
  const h = new Harness({ maxInFlightRequests: 5 });
  const sends: Array<Promise<number>> = [];
  // The first request goes alone until answered; then the window opens.
  sends.push(h.send([new Uint8Array([0])]));
  await tick();
  const logEnd = { next: 0 };
  h.answerOldest(logEnd);
  for (let i = 1; i <= 20; i++) {
    sends.push(h.send([new Uint8Array([i])]));
    await tick();
  }
  assert.is(h.held.length, 5, "the window is full");
  const waiting = h.held.length;
  const readsBefore = h.partitionReads;
  h.leader = { ...h.leader, leader: 2, leaderEpoch: 1 };
  await new Promise((r) => setTimeout(r, 600));
  // A read per check (and one before the resend), not one per waiting request.
  assert.ok(h.partitionReads - readsBefore < waiting, `partition reads per check: ${h.partitionReads - readsBefore} for ${waiting} waiting requests`);
  assert.ok(h.sent.some((s) => s.to.endsWith("@2")), "resent to the new leader");
  // The given-up requests' answers from the old leader no longer count.
  for (const old of h.held.filter((s) => s.to.endsWith("@1"))) old.answer({ baseOffset: 999 });
  h.held.splice(0, h.held.length, ...h.held.filter((s) => s.to.endsWith("@2")));
  for (;;) {
    while (h.held.length > 0) h.answerOldest(logEnd);
    const done = await Promise.race([Promise.all(sends).then(() => true), tick().then(() => false)]);
    if (done) break;
  }
  assert.equal(await Promise.all(sends), Array.from({ length: 21 }, (_, i) => i));
  h.state.close();
});

test("FrameRing: a region is reused only after the actor released it, oldest first, across wrap-arounds", () => {
  for (let seed = 1; seed <= 20; seed++) {
    const random = seededRandom(seed);
    const ring = new FrameRing(1024);
    const live: Array<{ view: Uint8Array; fill: number }> = [];
    let placed = 0;
    let fallbacks = 0;
    for (let step = 0; step < 2_000; step++) {
      if (live.length > 0 && random() < 0.45) {
        // The actor handles Sends in order: it releases the oldest.
        releaseFrames(live.shift()!.view);
      } else {
        const size = 1 + Math.floor(random() * 300);
        const fill = (step % 250) + 1;
        const view = ring.place(new Uint8Array(size).fill(fill));
        if (!view) {
          fallbacks++;
          assert.ok(size > 256 || live.length > 0, `seed ${seed}: an empty ring takes any send up to a quarter of it`);
          continue;
        }
        assert.ok(view.buffer instanceof SharedArrayBuffer);
        assert.is(view.length, size);
        live.push({ view, fill });
        placed++;
      }
      for (const r of live) assert.ok(r.view.every((b) => b === r.fill), `seed ${seed}, step ${step}: a region not released yet was overwritten`);
    }
    assert.ok(placed > 500 && fallbacks > 0, `seed ${seed}: placed ${placed}, fell back ${fallbacks}`);
  }
});

test("FrameRing: nothing empty or over a quarter of the ring; a ring nobody releases fills up and stays full", () => {
  const ring = new FrameRing(1024);
  assert.is(ring.place(new Uint8Array(0)), null);
  assert.is(ring.place(new Uint8Array(257)), null);
  const views: Uint8Array[] = [];
  for (let v = ring.place(new Uint8Array(200).fill(1)); v; v = ring.place(new Uint8Array(200).fill(1))) views.push(v);
  assert.is(views.length, 5, "five 200-byte regions fit in 1024 bytes");
  assert.is(ring.place(new Uint8Array(30)), null, "full until released (24 bytes left at the end)");
  releaseFrames(views[0]);
  assert.is(ring.place(new Uint8Array(30))?.byteOffset, 8, "room again once the oldest is released: at the start");
  // Frames of an own buffer (a send that did not fit) are nobody's region: releasing them is a no-op.
  releaseFrames(new Uint8Array(5));
});

test("the producer actor releases each Send's ring frames once, also a refused one", async () => {
  const h = new Harness({});
  const ring = new FrameRing(64 * 1024);
  const counter = (v: Uint8Array) => new Int32Array(v.buffer, 0, 1)[0];
  const post = (frames: Uint8Array) =>
    new Promise((resolve, reject) => {
      (h as unknown as { nextReply: ReplyHandle<unknown> }).nextReply = { resolve, reject, settled: false };
      void h.state.send("t", frames, h.ctx);
    });
  const first = ring.place(encodeFrames([{ value: "a", partition: 0 }]).buffer)!;
  const sent = post(first);
  await tick();
  assert.is(counter(first), 1, "released after the first send (partition count read first)");
  const bad = ring.place(encodeFrames([{ value: "b", partition: 7 }]).buffer)!;
  await assert.not.ok(await post(bad).then(() => true, () => false), "partition 7 of 1 refused");
  assert.is(counter(first), 2, "a refused Send is released too");
  while (h.held.length === 0) await tick();
  h.answerOldest({ next: 0 });
  assert.equal(await sent, [{ topic: "t", partition: 0, baseOffset: 0 }]);
  assert.is(counter(first), 2, "once each");
});

test.run();
