// The consumer actor's buffering of fetched data, without a cluster: what a poll hands the
// facade, whose buffers move to the main thread (transferred: detached in the worker).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { MessageChannel } from "node:worker_threads";
import { Parser } from "@nats-io/transport-node";
import { ConsumerState, SharedAnswers } from "../actors/client/consumer.js";
import { decodeChunkMessages } from "../actors/client/decode.js";
import { ConsumerArgs, type PollResult } from "../protocol/client.js";
import { encodeBatch } from "../protocol/record-batch.js";
import type { MetadataStore } from "../actors/cluster/metadata.js";
import type { ActorContext } from "../runtime/actor.js";
import { transferListOf } from "../runtime/port-ref.js";
import { presizeLargeNatsMessages } from "../runtime/nats-parser.js";
import type { PolledChunk } from "../protocol/client.js";
import { fakeConsumerContext } from "./helpers.js";

function fakeContext(): ActorContext<ConsumerArgs> {
  // Fetches never complete here: the test hands the state its Fetched results itself.
  return fakeConsumerContext({ ask: () => new Promise(() => undefined) });
}

/** One partition at offset 0 with `data` fetched for it; returns what a poll hands out. */
function fetchAndPoll(data: Uint8Array<ArrayBuffer>): PollResult {
  const ctx = fakeContext();
  const state = new ConsumerState({} as MetadataStore, ConsumerArgs.parse({}));
  state.assign([{ topic: "t", partition: 0, offset: 0 }], ctx);
  const { generation } = state.assigned.get("t/0")!;
  state.onFetched({ key: "t/0", generation, fromOffset: 0, data, highWatermark: 3 }, ctx);
  assert.is(state.bufferedBytes, data.length, "buffered bytes counted");
  return state.poll({ maxWaitMs: 0, maxBytes: 1 << 20, processed: [] }, ctx)!;
}

const batch = encodeBatch([{ value: new Uint8Array(10) }, { value: null }, { key: new Uint8Array(3), value: new Uint8Array(1) }]);

test("fetched data in a much larger buffer is handed out in a buffer of its own, same bytes", () => {
  const reply = new Uint8Array(batch.length * 2 + 100);
  reply.set(batch, 50);
  const [chunk] = fetchAndPoll(reply.subarray(50, 50 + batch.length)).chunks;
  assert.equal([...chunk.data], [...batch]);
  assert.is(chunk.data.buffer.byteLength, batch.length, "the facade receives only the data");
});

test("fetched data that nearly fills the NATS client's buffer is still copied: only the copy is marked to move", () => {
  const reply = new Uint8Array(batch.length + 8);
  reply.set(batch, 8);
  const result = fetchAndPoll(reply.subarray(8));
  const [chunk] = result.chunks;
  assert.is.not(chunk.data.buffer, reply.buffer, "the NATS client's buffer is never handed over");
  assert.equal([...chunk.data], [...batch]);
  assert.equal(transferListOf(result), [chunk.data.buffer]);
});

/** Posts a poll result the way the worker answers the facade (worker-entry's attachPort). */
function postReply(result: PollResult): Promise<PollResult> {
  const { port1, port2 } = new MessageChannel();
  return new Promise((resolve) => {
    port2.once("message", (m: PollResult) => {
      port1.close();
      resolve(m);
    });
    port1.postMessage(result, transferListOf(result));
  });
}

test("moving a poll's buffers to the facade loses no record and leaves the actor's other data alone", async () => {
  const ctx = fakeContext();
  const state = new ConsumerState({} as MetadataStore, ConsumerArgs.parse({}));
  state.assign([{ topic: "t", partition: 0, offset: 0 }], ctx);
  const { generation } = state.assigned.get("t/0")!;
  // Three fetch replies that the NATS client read out of one socket buffer, side by side.
  const batches = [0, 1, 2].map((i) => encodeBatch([{ value: new Uint8Array([i, 1]) }, { key: new Uint8Array([i]), value: new Uint8Array([i, 2]) }], { baseOffset: 2 * i }));
  const socket = new Uint8Array(batches.reduce((n, b) => n + b.length, 0));
  let at = 0;
  for (const b of batches) {
    socket.set(b, at);
    state.onFetched({ key: "t/0", generation, fromOffset: state.assigned.get("t/0")!.fetchOffset, data: socket.subarray(at, at + b.length), highWatermark: 6 }, ctx);
    at += b.length;
  }
  const values: number[][] = [];
  // A poll for one chunk at a time: the chunks still buffered must survive each transfer.
  for (let poll = 0; poll < 3; poll++) {
    const result = state.poll({ maxWaitMs: 0, maxBytes: 1, processed: [] }, ctx)!;
    assert.is(result.chunks.length, 1, `poll ${poll} hands out one chunk`);
    const sent = result.chunks[0].data;
    const received = await postReply(result);
    assert.is(sent.length, 0, "the chunk's buffer moved (detached in the worker)");
    assert.is(socket.length, at, "the NATS client's buffer stayed where it was");
    for (const m of decodeChunkMessages(received.chunks[0].data, received.chunks[0].fromOffset)) values.push([Number(m.offset), ...m.value!]);
    assert.is(state.bufferedBytes, batches.slice(poll + 1).reduce((n, b) => n + b.length, 0), "what is still buffered is counted");
  }
  assert.equal(values, [[0, 0, 1], [1, 0, 2], [2, 1, 1], [3, 1, 2], [4, 2, 1], [5, 2, 2]]);
  assert.equal(state.positions(), [{ topic: "t", partition: 0, offset: 6, highWatermark: 6 }]);
  assert.is(state.poll({ maxWaitMs: 0, maxBytes: 1, processed: [] }, ctx)!.chunks.length, 0, "nothing handed out twice");
});

/**
 * `payload` as nats.js's parser hands it out when it arrives over two socket reads (as every
 * large fetch answer does): in a buffer of its own that the consumer may keep (takeExclusive).
 */
function ownedByParser(payload: Uint8Array): Uint8Array<ArrayBuffer> {
  presizeLargeNatsMessages();
  const wire = Buffer.concat([Buffer.from(`MSG s 1 ${payload.length}\r\n`), payload, Buffer.from("\r\n")]);
  let data: Uint8Array | undefined;
  const parser = new Parser({ push: (e: { data?: Uint8Array }) => void (data = e.data) } as unknown as ConstructorParameters<typeof Parser>[0]);
  const half = Math.floor(wire.length / 2);
  parser.parse(wire.subarray(0, half));
  parser.parse(wire.subarray(half));
  assert.is(data!.buffer.byteLength, payload.length, "presized by the parser");
  return data as Uint8Array<ArrayBuffer>;
}

test("a fetch answer in a buffer of its own is handed out as it is: moved to the facade, not copied", async () => {
  const ctx = fakeContext();
  const state = new ConsumerState({} as MetadataStore, ConsumerArgs.parse({}));
  state.assign([{ topic: "t", partition: 0, offset: 0 }], ctx);
  const { generation } = state.assigned.get("t/0")!;
  const answer = ownedByParser(batch);
  state.onFetched({ key: "t/0", generation, fromOffset: 0, data: answer, highWatermark: 3 }, ctx);
  const result = state.poll({ maxWaitMs: 0, maxBytes: 1 << 20, processed: [] }, ctx)!;
  assert.is(result.chunks[0].data.buffer, answer.buffer, "no copy");
  assert.equal(transferListOf(result), [answer.buffer]);
  const received = await postReply(result);
  assert.is(answer.length, 0, "moved: detached in the worker");
  assert.equal(decodeChunkMessages(received.chunks[0].data, 0).map((m) => m.offset), ["0", "1", "2"]);
});

test("chunks sharing an answer's buffer: copied out when one stays behind, moved with the last", () => {
  const parts = [0, 1, 2].map((i) => encodeBatch([{ value: new Uint8Array([i, i]) }], { baseOffset: i }));
  const whole = Buffer.concat(parts);
  const chunkOf = (data: Uint8Array, i: number): PolledChunk => ({ topic: "t", partition: i, fromOffset: i, data, highWatermark: 3 });
  const views = (answer: Uint8Array) => {
    let at = 0;
    return parts.map((p, i) => chunkOf(answer.subarray((at += p.length) - p.length, at), i));
  };

  // Handed out one by one: the first two are copied, the last takes the buffer.
  let shared = new SharedAnswers();
  let answer = ownedByParser(whole);
  let handle = shared.answer(answer)!;
  assert.ok(handle, "the parser's buffer is the consumer's to keep");
  assert.is(shared.answer(answer), null, "once");
  let chunks = views(answer);
  for (const c of chunks) shared.add(c, handle);
  shared.handOut([chunks[0]]);
  shared.handOut([chunks[1]]);
  shared.handOut([chunks[2]]);
  assert.is.not(chunks[0].data.buffer, answer.buffer, "copied: others still view the buffer");
  assert.is.not(chunks[1].data.buffer, answer.buffer);
  assert.is(chunks[2].data.buffer, answer.buffer, "the last one moves the buffer");
  chunks.forEach((c, i) => assert.equal([...c.data], [...parts[i]]));

  // All in one handout: none copied.
  shared = new SharedAnswers();
  answer = ownedByParser(whole);
  handle = shared.answer(answer)!;
  chunks = views(answer);
  for (const c of chunks) shared.add(c, handle);
  shared.handOut([chunks[2], chunks[0], chunks[1]]);
  for (const c of chunks) assert.is(c.data.buffer, answer.buffer);

  // A dropped chunk (a seek) no longer holds the buffer back.
  shared = new SharedAnswers();
  answer = ownedByParser(whole);
  handle = shared.answer(answer)!;
  chunks = views(answer);
  for (const c of chunks) shared.add(c, handle);
  shared.drop(chunks[1]);
  shared.handOut([chunks[0], chunks[2]]);
  assert.is(chunks[0].data.buffer, answer.buffer);
  assert.is(chunks[2].data.buffer, answer.buffer);

  // A buffer the parser did not presize (several messages in one read) is never kept.
  assert.is(new SharedAnswers().answer(new Uint8Array(whole)), null);
});

test.run();
