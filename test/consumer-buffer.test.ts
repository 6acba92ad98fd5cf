// The consumer actor's buffering of fetched data, without a cluster: what a poll hands the
// facade (structured-cloned, which copies a view's whole underlying buffer).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { ConsumerState } from "../actors/client/consumer.js";
import { ConsumerArgs, type PollResult } from "../protocol/client.js";
import { encodeBatch } from "../protocol/record-batch.js";
import type { MetadataStore } from "../actors/cluster/metadata.js";
import type { ActorContext } from "../runtime/actor.js";
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
  assert.is(chunk.data.buffer.byteLength, batch.length, "a structured clone copies only the data");
});

test("fetched data that nearly fills its buffer is handed out as it is (no copy)", () => {
  const reply = new Uint8Array(batch.length + 8);
  reply.set(batch, 8);
  const data = reply.subarray(8);
  const [chunk] = fetchAndPoll(data).chunks;
  assert.is(chunk.data, data);
});

test.run();
