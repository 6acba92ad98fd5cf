// The library API (kafkajs-shaped) against a real 3-broker cluster.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { startLocalCluster, type LocalCluster } from "../bin/broker-cmd.js";
import { Skein, type EachMessagePayload } from "../actors/client/skein.js";
import { partitionForKey } from "../protocol/murmur2.js";
import { ErrorCode, type SkeinError } from "../protocol/errors.js";
import { tempDir, waitFor, surfaced } from "./helpers.js";

const data = tempDir("skein-client-");
let cluster: LocalCluster;
let skein: Skein;

test.before(surfaced(async () => {
  cluster = await startLocalCluster({ brokers: 3, workers: 1, cluster: "cl", data: data.path });
  skein = new Skein({ clientId: "test", nats: cluster.natsUrl, cluster: "cl" });
  const admin = skein.admin();
  await admin.connect();
  await waitFor(async () => (await admin.describeCluster()).controller !== null, 15_000, "controller");
  await admin.createTopics({ topics: [{ topic: "orders", numPartitions: 4, replicationFactor: 3 }, { topic: "small", numPartitions: 1, replicationFactor: 1, configEntries: [{ name: "segment.bytes", value: "2048" }, { name: "retention.bytes", value: "4096" }, { name: "retention.check.interval.ms", value: "100" }] }] });
}));

test.after(async () => {
  await cluster?.stop();
  data.remove();
});

const errorOf = (p: Promise<unknown>) => p.then(() => null, (e) => e as SkeinError);

async function collect(topic: string, expected: number, timeoutMs = 15_000): Promise<EachMessagePayload[]> {
  const consumer = skein.consumer();
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  const got: EachMessagePayload[] = [];
  await consumer.run({ eachMessage: async (m) => void got.push(m) });
  try {
    await waitFor(() => got.length >= expected, timeoutMs, `${expected} messages from ${topic}`);
  } finally {
    await consumer.disconnect();
  }
  return got;
}

test("round trip of keys, values, headers, nulls and binary data", async () => {
  const producer = skein.producer({ acks: "all" });
  await producer.connect();
  const binary = new Uint8Array([0, 255, 1, 254]);
  const r = await producer.send({
    topic: "orders",
    messages: [
      { key: "k1", value: "v1", headers: { h: "x", empty: null } },
      { key: null, value: null },
      { key: binary, value: Buffer.from("buf"), partition: 2 },
    ],
  });
  assert.ok(r.length >= 1 && r.every((x) => x.topic === "orders" && x.baseOffset >= 0));
  await producer.disconnect();
  const got = await collect("orders", 3);
  const k1 = got.find((m) => m.message.key?.toString() === "k1")!;
  assert.is(k1.message.value!.toString(), "v1");
  assert.is(k1.message.headers.h!.toString(), "x");
  assert.is(k1.message.headers.empty, null);
  assert.is(k1.partition, partitionForKey(new TextEncoder().encode("k1"), 4), "keys go to Kafka's murmur2 partition");
  const nul = got.find((m) => m.message.key === null && m.message.value === null);
  assert.ok(nul, "null key and value survive");
  const bin = got.find((m) => m.partition === 2 && m.message.value?.toString() === "buf")!;
  assert.equal([...bin.message.key!], [...binary]);
});

test("order is kept per partition across many sends", async () => {
  const producer = skein.producer({ acks: 1, lingerMs: 2 });
  await producer.connect();
  const sends = [];
  for (let i = 0; i < 2000; i++) sends.push(producer.send({ topic: "orders", messages: [{ key: `key-${i % 7}`, value: String(i) }] }));
  await Promise.all(sends);
  await producer.disconnect();
  const got = await collect("orders", 2003);
  const byKey = new Map<string, number[]>();
  for (const m of got) {
    const k = m.message.key?.toString();
    if (!k?.startsWith("key-")) continue;
    byKey.set(k, [...(byKey.get(k) ?? []), Number(m.message.value)]);
  }
  for (const [k, values] of byKey) assert.equal(values, [...values].sort((a, b) => a - b), `order of ${k}`);
  assert.is([...byKey.values()].reduce((n, v) => n + v.length, 0), 2000);
});

test("bad input gives typed errors", async () => {
  const producer = skein.producer();
  await producer.connect();
  assert.is((await errorOf(producer.send({ topic: "missing-topic", messages: [{ value: "x" }] })))?.code, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
  assert.is((await errorOf(producer.send({ topic: "bad topic!", messages: [{ value: "x" }] })))?.code, ErrorCode.INVALID_TOPIC);
  assert.is((await errorOf(producer.send({ topic: "orders", messages: [{ value: 42 as unknown as string }] })))?.code, ErrorCode.INVALID_REQUEST);
  assert.is((await errorOf(producer.send({ topic: "orders", messages: [{ value: "x", partition: 99 }] })))?.code, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
  // A timestamp that is a number but not whole ms is refused with the whole send, by the
  // producer actor's all-or-nothing check, and the producer keeps working.
  assert.is((await errorOf(producer.send({ topic: "orders", messages: [{ value: "x", partition: 0 }, { value: "y", partition: 0, timestamp: 1.5 }] })))?.code, ErrorCode.INVALID_REQUEST);
  assert.is((await producer.send({ topic: "orders", messages: [{ value: "after a refused send", partition: 0 }] })).length, 1);
  assert.is((await errorOf(producer.send({ topic: "orders", messages: [{ value: new Uint8Array(2 * 1024 * 1024) }] })))?.code, ErrorCode.MESSAGE_TOO_LARGE);
  await producer.disconnect();
  const notConnected = skein.producer();
  assert.is((await errorOf(notConnected.send({ topic: "orders", messages: [{ value: "x" }] })))?.code, ErrorCode.NOT_CONNECTED);
});

test("a consumer whose position fell below the log start resets per policy", async () => {
  const producer = skein.producer({ acks: 1, lingerMs: 0 });
  await producer.connect();
  for (let i = 0; i < 60; i++) await producer.send({ topic: "small", messages: [{ value: `r${i}-${"x".repeat(100)}` }] });
  await producer.disconnect();
  const admin = skein.admin();
  await admin.connect();
  // retention.bytes=4096 on 2 KB segments, checked every 100 ms: the log start moves past 0
  const low = await waitFor(async () => {
    const o = await admin.fetchTopicOffsets("small");
    return Number(o[0].low) > 0 ? Number(o[0].low) : 0;
  }, 10_000, "retention to advance the log start");
  const consumer = skein.consumer();
  await consumer.connect();
  await consumer.assign([{ topic: "small", partition: 0, offset: 0 }]);
  const first = await waitFor(async () => (await consumer.poll(1_000))[0], 10_000, "records after the reset");
  assert.ok(Number(first.batch.messages[0].offset) >= low, `reset to earliest (>= ${low}), got ${first.batch.messages[0].offset}`);
  await consumer.disconnect();
});

for (const maxInFlightRequests of [1, 5]) test(`idempotent producer (${maxInFlightRequests} in flight) across a leader SIGKILL: no duplicates, no gaps, order kept`, async () => {
  const admin = skein.admin();
  await admin.connect();
  const topic = `exact-${maxInFlightRequests}`;
  await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 3, configEntries: [{ name: "min.insync.replicas", value: "2" }] }] });
  const producer = skein.producer({ acks: "all", idempotent: true, lingerMs: 1, requestTimeoutMs: 1_000, maxInFlightRequests });
  await producer.connect();
  const total = 3000;
  const sends: Promise<unknown>[] = [];
  let killed: number | null = null;
  for (let i = 0; i < total; i += 10) {
    sends.push(producer.send({ topic, messages: Array.from({ length: 10 }, (_, j) => ({ value: String(i + j) })) }));
    if (i === 1000) {
      const leader = (await admin.describeTopics({ topics: [topic] }))[0].partitions[0].leader;
      killed = leader;
      await cluster.brokers.get(leader)!.kill();
    }
    if (i % 200 === 0) await new Promise((r) => setTimeout(r, 5));
  }
  await Promise.all(sends);
  await producer.disconnect();
  await cluster.startBroker(killed!);
  const consumer = skein.consumer();
  await consumer.connect();
  await consumer.assign([{ topic, partition: 0, offset: 0 }]);
  const values: number[] = [];
  const offsets: number[] = [];
  await waitFor(async () => {
    for (const b of await consumer.poll(500)) for (const m of b.batch.messages) {
      values.push(Number(m.value!.toString()));
      offsets.push(Number(m.offset));
    }
    return values.length >= total;
  }, 30_000, "all records back");
  await consumer.disconnect();
  assert.is(values.length, total, "no duplicates");
  assert.equal(values, Array.from({ length: total }, (_, i) => i), "every value once, in order");
  assert.equal(offsets, Array.from({ length: total }, (_, i) => i), "offsets contiguous from 0");
});

test("backpressure: send() waits when bufferBytes are unacknowledged", async () => {
  const producer = skein.producer({ acks: "all", bufferBytes: 1024 * 1024, lingerMs: 5 });
  await producer.connect();
  const value = new Uint8Array(100 * 1024);
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, producer.bufferedBytes)), 1);
  const sends = Array.from({ length: 100 }, () => producer.send({ topic: "orders", messages: [{ value }] }));
  await Promise.all(sends);
  clearInterval(sampler);
  await producer.disconnect();
  assert.ok(peak > 0, "something was buffered");
  assert.ok(peak <= 1024 * 1024 + value.length + 1024, `peak ${peak} bytes stays within bufferBytes plus one send`);
});

test("pause/resume and seek by timestamp", async () => {
  const producer = skein.producer({ acks: 1 });
  await producer.connect();
  await producer.send({ topic: "orders", messages: [{ value: "old", partition: 3 }] });
  await new Promise((r) => setTimeout(r, 50));
  const cut = Date.now();
  await new Promise((r) => setTimeout(r, 50));
  await producer.send({ topic: "orders", messages: [{ value: "new", partition: 3 }] });
  await producer.disconnect();
  const consumer = skein.consumer();
  await consumer.connect();
  await consumer.assign([{ topic: "orders", partition: 3, offset: 0 }]);
  await consumer.seekToTimestamp({ topic: "orders", partition: 3, timestamp: cut });
  const first = await waitFor(async () => (await consumer.poll(500))[0], 10_000, "records after the timestamp");
  assert.is(first.batch.messages[0].value!.toString(), "new");
  await consumer.pause([{ topic: "orders", partitions: [3] }]);
  await consumer.seek({ topic: "orders", partition: 3, offset: 0 });
  assert.equal(await consumer.poll(300), [], "a paused partition hands out nothing");
  await consumer.resume([{ topic: "orders", partitions: [3] }]);
  const again = await waitFor(async () => (await consumer.poll(500))[0], 10_000, "records after resume");
  assert.is(again.batch.messages[0].offset, "0");
  await consumer.disconnect();
});

test.run();
