// Listing a metadata bucket's keys is bounded: a listing that never ends (nats.js's key consumer
// waiting for a message that expired, on the live bucket) is abandoned and tried again, and after
// the last try fails with a typed, retriable TIMEOUT rather than hanging its caller.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { MetadataStore } from "../actors/cluster/metadata.js";
import { ErrorCode, isSkeinError } from "../protocol/errors.js";

/** The keys a listing yields, then the end, or (`hang`) nothing more ever; stop() ends it as nats.js's does. */
function listing(keys: string[], hang: boolean) {
  let stop: () => void = () => undefined;
  const stopped = new Promise<void>((r) => (stop = r));
  return {
    stop: () => stop(),
    async *[Symbol.asyncIterator]() {
      for (const k of keys) yield k;
      if (hang) await stopped;
    },
  };
}

const registration = { broker: 1, pid: 1, host: "h", workers: 1, startedAt: 1, heartbeatAt: 1 };

function storeWhoseListings(hangs: boolean[]): { store: MetadataStore; tries: () => number } {
  let tries = 0;
  const live = {
    keys: async () => listing(["broker.1"], hangs[tries++] ?? false),
    get: async () => ({ operation: "PUT", revision: 7, value: new TextEncoder().encode(JSON.stringify(registration)) }),
  };
  const Store = MetadataStore as unknown as new (meta: unknown, live: unknown, ttl: number, cluster: string) => MetadataStore;
  return { store: new Store({}, live, 3_000, "unit"), tries: () => tries };
}

test("a key listing that never ends is tried again, and its second try answers", async () => {
  const { store, tries } = storeWhoseListings([true, false]);
  const brokers = await store.listBrokers();
  assert.equal(brokers.map((b) => b.value.broker), [1]);
  assert.is(tries(), 2);
});

test("a key listing that never ends on every try fails with a retriable TIMEOUT", async () => {
  const { store, tries } = storeWhoseListings([true, true, true]);
  const e = await store.listBrokers().catch((x) => x);
  assert.ok(isSkeinError(e, ErrorCode.TIMEOUT), String(e));
  assert.ok(e.retriable);
  assert.match(e.message, /did not finish in 3 tries/);
  assert.is(tries(), 3);
});

test.run();
