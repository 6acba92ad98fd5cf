// consumer.run() against a real cluster, for what the facade does between a poll and the
// handlers: a fetched chunk is decoded and handed out slice by slice (EACH_BATCH_MAX_BYTES),
// in order, every record once, and eachMessage sees the same records one by one. A chunk
// damaged on its way (CRC fails in the facade) is fetched again: nothing is skipped.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { startLocalCluster, type LocalCluster } from "../bin/broker-cmd.js";
import { Skein, type Consumer, type KafkaMessage } from "../actors/client/skein.js";
import { EACH_BATCH_MAX_BYTES } from "../actors/client/decode.js";
import { ErrorCode, SkeinError } from "../protocol/errors.js";
import type { PolledChunk } from "../protocol/client.js";
import { tempDir, waitFor, surfaced } from "./helpers.js";

const data = tempDir("skein-consumer-run-");
let cluster: LocalCluster;
let skein: Skein;
const RECORDS = 12_000;
const VALUE_BYTES = 100;

test.before(surfaced(async () => {
  cluster = await startLocalCluster({ brokers: 1, workers: 1, cluster: "cr", data: data.path });
  skein = new Skein({ clientId: "test", nats: cluster.natsUrl, cluster: "cr" });
  const admin = skein.admin();
  await admin.connect();
  await waitFor(async () => (await admin.describeCluster()).controller !== null, 15_000, "controller");
  await admin.createTopics({ topics: [{ topic: "big", numPartitions: 1, replicationFactor: 1 }] });
  const producer = skein.producer({ acks: 1 });
  await producer.connect();
  // ~1.3 MB: fetches of 1 MiB per partition (the default) come back bigger than one slice.
  for (let i = 0; i < RECORDS; i += 1_000) {
    await producer.send({ topic: "big", messages: Array.from({ length: 1_000 }, (_, j) => ({ value: String(i + j).padStart(VALUE_BYTES, "0") })) });
  }
  await producer.disconnect();
}));

test.after(async () => {
  await cluster?.stop();
  data.remove();
});

function assertInOrder(got: KafkaMessage[]): void {
  assert.is(got.length, RECORDS, "every record once");
  for (let i = 0; i < got.length; i++) {
    if (got[i].offset !== String(i) || Number(got[i].value!.toString()) !== i) assert.unreachable(`position ${i} holds offset ${got[i].offset}, value ${got[i].value}`);
  }
}

test("eachBatch: slices of at most EACH_BATCH_MAX_BYTES of records, in order, every record once", async () => {
  const consumer = skein.consumer();
  await consumer.connect();
  await consumer.subscribe({ topics: ["big"], fromBeginning: true });
  const got: KafkaMessage[] = [];
  let largestBatchBytes = 0;
  await consumer.run({
    eachBatch: async ({ batch }) => {
      largestBatchBytes = Math.max(largestBatchBytes, batch.messages.reduce((n, m) => n + m.value!.length, 0));
      got.push(...batch.messages);
    },
  });
  try {
    await waitFor(() => got.length >= RECORDS, 15_000, `${RECORDS} records`);
  } finally {
    await consumer.disconnect();
  }
  assertInOrder(got);
  assert.ok(largestBatchBytes <= EACH_BATCH_MAX_BYTES, `a batch of ${largestBatchBytes} value bytes (slices are at most ${EACH_BATCH_MAX_BYTES})`);
});

test("eachMessage: the same records one by one", async () => {
  const consumer = skein.consumer();
  await consumer.connect();
  await consumer.subscribe({ topics: ["big"], fromBeginning: true });
  const got: KafkaMessage[] = [];
  await consumer.run({ eachMessage: ({ message }) => void got.push(message) });
  try {
    await waitFor(() => got.length >= RECORDS, 15_000, `${RECORDS} records`);
  } finally {
    await consumer.disconnect();
  }
  assertInOrder(got);
});

test("eachMessage that throws: the group commits up to the message before it", async () => {
  const consumer = skein.consumer({ groupId: "throws" });
  await consumer.connect();
  await consumer.subscribe({ topics: ["big"], fromBeginning: true });
  const FAIL_AT = 5_432;
  let seen = 0;
  await consumer.run({
    eachMessage: async ({ message }) => {
      seen++;
      if (message.offset === String(FAIL_AT)) throw new Error("handler failed");
    },
  });
  try {
    await waitFor(() => seen > FAIL_AT, 15_000, `offset ${FAIL_AT} handled`);
  } finally {
    await consumer.disconnect();
  }
  assert.is(seen, FAIL_AT + 1, "run() stopped at the throwing message");
  const admin = new Skein({ clientId: "test-admin", nats: cluster.natsUrl, cluster: "cr" }).admin();
  await admin.connect();
  const [group] = (await admin.describeGroups(["throws"])).groups;
  await admin.disconnect();
  assert.equal(group.offsets.map((o) => [o.partition, o.offset]), [[0, FAIL_AT]], "committed: the next offset to read is the failed message");
});

/** Flips a byte near the end of the first chunk of the next `polls` polls that return data (a record value: its batch fails its CRC). */
function damagePolls(consumer: Consumer, polls: number): { damaged: () => number; chunksInDamagedPolls: () => number } {
  const c = consumer as unknown as { pollChunks(maxWaitMs: number): Promise<PolledChunk[]> };
  const original = c.pollChunks.bind(c);
  let damaged = 0;
  let chunksInDamaged = 0;
  c.pollChunks = async (maxWaitMs) => {
    const chunks = await original(maxWaitMs);
    if (damaged < polls && chunks.length > 0 && chunks[0].data.length > 0) {
      const data = chunks[0].data;
      data[data.length - 10] ^= 0xff;
      damaged++;
      chunksInDamaged += chunks.length;
    }
    return chunks;
  };
  return { damaged: () => damaged, chunksInDamagedPolls: () => chunksInDamaged };
}

test("a fetched chunk that fails its CRC is fetched again: every record once, in order", async () => {
  const consumer = skein.consumer();
  await consumer.connect();
  await consumer.subscribe({ topics: ["big"], fromBeginning: true });
  const damage = damagePolls(consumer, 2);
  const got: KafkaMessage[] = [];
  await consumer.run({ eachBatch: ({ batch }) => void got.push(...batch.messages) });
  try {
    await waitFor(() => got.length >= RECORDS, 15_000, `${RECORDS} records`);
  } finally {
    await consumer.disconnect();
  }
  assert.is(damage.damaged(), 2, "two polls were damaged");
  assertInOrder(got);
});

test("poll(): the chunks behind one that fails its CRC wait for its refetch: every record once, in order", async () => {
  const consumer = skein.consumer({ maxBytesPerPartition: 16 * 1024 });
  await consumer.connect();
  await consumer.assign([{ topic: "big", partition: 0, offset: 0 }]);
  // Small fetches, buffered for a while: the damaged poll carries many chunks of the partition.
  await new Promise((r) => setTimeout(r, 1_000));
  const damage = damagePolls(consumer, 1);
  const got: KafkaMessage[] = [];
  try {
    for (let i = 0; i < 200 && got.length < RECORDS; i++) for (const b of await consumer.poll(2_000)) got.push(...b.batch.messages);
  } finally {
    await consumer.disconnect();
  }
  assert.ok(damage.chunksInDamagedPolls() > 1, "the damaged poll held more than the damaged chunk");
  assertInOrder(got);
});

test("poll(): a batch that fails its CRC every time is reported as CORRUPT_MESSAGE, not skipped", async () => {
  const consumer = skein.consumer();
  await consumer.connect();
  await consumer.assign([{ topic: "big", partition: 0, offset: 0 }]);
  damagePolls(consumer, Number.MAX_SAFE_INTEGER);
  const got: KafkaMessage[] = [];
  let error: unknown;
  try {
    for (let i = 0; i < 50 && error === undefined; i++) {
      try {
        for (const b of await consumer.poll(2_000)) got.push(...b.batch.messages);
      } catch (e) {
        error = e;
      }
    }
  } finally {
    await consumer.disconnect();
  }
  assert.instance(error, SkeinError);
  assert.is((error as SkeinError).code, ErrorCode.CORRUPT_MESSAGE);
  // Whatever came before the damaged batch was returned once, in order, and nothing after it.
  got.forEach((m, i) => assert.is(m.offset, String(i)));
});

test.run();
