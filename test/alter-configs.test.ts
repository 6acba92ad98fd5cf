// Altering a topic's configs (kafkajs `admin.alterConfigs`, `skein topics alter`) against a real
// 2-broker cluster: the running replicas apply the change at once, new replicas start with it,
// configs not named keep their values, null returns one to its default, and bad changes are
// refused with typed errors without changing anything.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { execFile } from "node:child_process";
import { startLocalCluster, type LocalCluster } from "../bin/broker-cmd.js";
import { Skein, type Admin, type Producer } from "../actors/client/skein.js";
import { ErrorCode, type SkeinError } from "../protocol/errors.js";
import { cliBundlePath } from "../runtime/paths.js";
import { tempDir, waitFor, surfaced } from "./helpers.js";

const CLUSTER = "alter";
const data = tempDir("skein-alter-");
let cluster: LocalCluster;
let skein: Skein;
let admin: Admin;
let producer: Producer;

test.before(surfaced(async () => {
  cluster = await startLocalCluster({ brokers: 2, workers: 1, cluster: CLUSTER, data: data.path });
  skein = new Skein({ clientId: "test", nats: cluster.natsUrl, cluster: CLUSTER });
  admin = skein.admin();
  await admin.connect();
  await waitFor(async () => (await admin.describeCluster()).controller !== null, 15_000, "controller");
  await admin.createTopics({ topics: [{ topic: "alt", numPartitions: 2, replicationFactor: 2, configEntries: [{ name: "retention.ms", value: "3600000" }] }] });
  producer = skein.producer({ acks: "all" });
  await producer.connect();
}));

test.after(async () => {
  await producer?.disconnect();
  await admin?.disconnect();
  await cluster?.stop();
  data.remove();
});

const errorOf = (p: Promise<unknown>) => p.then(() => null, (e) => e as SkeinError);
const big = (partition: number) => producer.send({ topic: "alt", messages: [{ partition, value: new Uint8Array(4_000) }] });
const configsOf = async (topic: string) => (await admin.describeTopics({ topics: [topic] }))[0].configs as Record<string, unknown>;

test("max.message.bytes lowered on a live topic: its leaders refuse larger batches at once; the other configs stay", async () => {
  await big(0); // fits the default
  const [r] = await admin.alterConfigs({ resources: [{ type: "topic", name: "alt", configEntries: [{ name: "max.message.bytes", value: "1024" }] }] });
  assert.is(r.configs["max.message.bytes"], 1024);
  assert.is(r.configs["retention.ms"], 3_600_000, "a config not named keeps its value");
  assert.equal(await configsOf("alt"), { "retention.ms": 3_600_000, "max.message.bytes": 1024 });
  // The brokers' replicas learn it from the KV watch: wait until both partitions' leaders refuse.
  for (const p of [0, 1]) {
    await waitFor(async () => (await errorOf(big(p)))?.code === ErrorCode.MESSAGE_TOO_LARGE, 10_000, `partition ${p} refuses a 4 KB batch`);
  }
  // The refused batches were never written: the idempotent producer renumbers what follows
  // them, so its next sends go on (before, every later send to the partition was a sequence gap).
  const offsets: number[] = [];
  for (let i = 0; i < 3; i++) offsets.push((await producer.send({ topic: "alt", messages: [{ partition: 0, value: `small ${i}` }] }))[0].baseOffset);
  assert.equal([offsets[1] - offsets[0], offsets[2] - offsets[1]], [1, 1], `consecutive offsets ${offsets}`);
});

test("replicas started after the change (new partitions) start with the altered configs; a producer sees the new partition at once", async () => {
  await admin.createPartitions({ topicPartitions: [{ topic: "alt", count: 3 }] });
  // This producer knew 2 partitions: naming the third makes it read the count again at once
  // (not at its 30 s background re-read), and the third partition's leader judges the batch.
  assert.is((await errorOf(big(2)))?.code, ErrorCode.MESSAGE_TOO_LARGE);
  const beyond = await errorOf(big(3));
  assert.is(beyond?.code, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
  assert.match(beyond!.message, /has 3 partitions; partition 3 does not exist/);
});

test("null returns a config to its default; validateOnly changes nothing", async () => {
  const [checked] = await admin.alterConfigs({ validateOnly: true, resources: [{ type: "topic", name: "alt", configEntries: [{ name: "segment.bytes", value: "65536" }] }] });
  assert.is(checked.configs["segment.bytes"], 65_536);
  assert.is((await configsOf("alt"))["segment.bytes"], undefined, "validateOnly wrote nothing");
  await admin.alterConfigs({ resources: [{ type: 2, name: "alt", configEntries: [{ name: "max.message.bytes", value: null }] }] });
  assert.equal(await configsOf("alt"), { "retention.ms": 3_600_000 });
  for (const p of [0, 1, 2]) await waitFor(async () => (await errorOf(big(p))) === null, 10_000, `partition ${p} takes a 4 KB batch again`);
});

test("bad changes are refused with typed errors and change nothing", async () => {
  const alter = (name: string, entries: Array<{ name: string; value: string | null }>) => errorOf(admin.alterConfigs({ resources: [{ type: "topic", name, configEntries: entries }] }));
  assert.is((await alter("alt", [{ name: "min.insync.replicas", value: "3" }]))?.code, ErrorCode.INVALID_CONFIG, "min.insync.replicas above the replication factor");
  assert.is((await alter("alt", [{ name: "no.such.config", value: "1" }]))?.code, ErrorCode.INVALID_CONFIG);
  assert.is((await alter("alt", [{ name: "retention.ms", value: "soon" }]))?.code, ErrorCode.INVALID_CONFIG);
  assert.is((await alter("nope", [{ name: "retention.ms", value: "1000" }]))?.code, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
  assert.equal(await configsOf("alt"), { "retention.ms": 3_600_000 });
});

test("skein topics alter sets and deletes configs from the command line", async () => {
  const run = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(process.execPath, [cliBundlePath(), "topics", "alter", "alt", "--nats", cluster.natsUrl, "--cluster", CLUSTER, ...args], { timeout: 30_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr }),
      ),
    );
  const set = await run(["--config", "retention.bytes=1048576", "--delete-config", "retention.ms", "--json"]);
  assert.is(set.code, 0, set.stderr);
  assert.equal(JSON.parse(set.stdout), { topic: "alt", configs: { "retention.bytes": 1_048_576 } });
  const none = await run([]);
  assert.is(none.code, 2);
  assert.match(none.stderr, /nothing to change/);
});

test.run();
