// One broker, driven through the replica actors' own messages: idempotent produce, fetch
// bounds, typed errors on bad input, topic deletion removing data.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { startLocalCluster, type LocalCluster } from "../bin/broker-cmd.js";
import { ClusterClient } from "../actors/cluster/admin.js";
import { ProducerStateTable } from "../actors/cluster/producer-state.js";
import { partitionDir } from "../actors/cluster/replica.js";
import { encodeBatch, readBatchHeader, iterateBatches, decodeRecords } from "../protocol/record-batch.js";
import { ErrorCode, type SkeinError } from "../protocol/errors.js";
import { replicaAddress } from "../protocol/cluster.js";
import { tempDir, waitFor, surfaced } from "./helpers.js";

const enc = new TextEncoder();
const data = tempDir("skein-replica-");
let cluster: LocalCluster;
let client: ClusterClient;

test.before(surfaced(async () => {
  cluster = await startLocalCluster({ brokers: 1, workers: 1, cluster: "rp", data: data.path });
  client = await ClusterClient.connect({ nats: { servers: cluster.natsUrl }, cluster: "rp" });
  await waitFor(async () => ((await client.status()).controller?.epoch ?? -1) >= 0, 15_000, "controller");
  await client.createTopic("idem", 1, 1);
  await client.waitForLeaders("idem");
}));

test.after(async () => {
  await client?.close();
  await cluster?.stop();
  data.remove();
});

const batch = (pid: number, seq: number, n = 2) =>
  encodeBatch(Array.from({ length: n }, (_, i) => ({ value: enc.encode(`p${pid}-s${seq + i}`) })), { producerId: pid, producerEpoch: 0, baseSequence: seq });

const errorOf = (p: Promise<unknown>) => p.then(() => null, (e) => e as SkeinError);

test("producer state table: duplicates answered, gaps and old epochs refused (unit)", () => {
  const t = new ProducerStateTable();
  const ctx = { topic: "t", partition: 0 };
  const h = (seq: number, epoch = 0) => readBatchHeader(encodeBatch([{ value: null }, { value: null }], { producerId: 7, producerEpoch: epoch, baseSequence: seq }));
  const first = h(0);
  first.baseOffset = 10;
  first.lastOffset = 11;
  assert.equal(t.check(first, ctx), { kind: "append" });
  t.record(first);
  assert.equal(t.check(h(0), ctx), { kind: "duplicate", baseOffset: 10, lastOffset: 11 });
  assert.equal(t.check(h(2), ctx), { kind: "append" });
  assert.throws(() => t.check(h(5), ctx), (e: SkeinError) => e.code === ErrorCode.OUT_OF_ORDER_SEQUENCE);
  t.record(Object.assign(h(0, 1), { baseOffset: 12, lastOffset: 13 }));
  assert.throws(() => t.check(h(2, 0), ctx), (e: SkeinError) => e.code === ErrorCode.INVALID_PRODUCER_EPOCH);
});

test("a retried idempotent batch is written once and answered with its first offsets", async () => {
  const { producerId } = await client.initProducerId();
  const a = await client.produce("idem", 0, batch(producerId, 0), { acks: -1 });
  const again = await client.produce("idem", 0, batch(producerId, 0), { acks: -1 });
  assert.equal([again.baseOffset, again.lastOffset], [a.baseOffset, a.lastOffset]);
  const b = await client.produce("idem", 0, batch(producerId, 2), { acks: -1 });
  assert.is(b.baseOffset, a.lastOffset + 1);
  const gap = await errorOf(client.produce("idem", 0, batch(producerId, 9), { acks: -1 }));
  assert.is(gap?.code, ErrorCode.OUT_OF_ORDER_SEQUENCE);
  const f = await client.fetch("idem", 0, 0);
  const values = [...iterateBatches(f.data)].flatMap(({ pos }) => decodeRecords(f.data, pos).map((r) => new TextDecoder().decode(r.value!)));
  assert.equal(values.filter((v) => v.startsWith(`p${producerId}-`)), [`p${producerId}-s0`, `p${producerId}-s1`, `p${producerId}-s2`, `p${producerId}-s3`]);
});

test("idempotent state survives a worker restart (rebuilt from the log)", async () => {
  const { producerId } = await client.initProducerId();
  const a = await client.produce("idem", 0, batch(producerId, 0), { acks: -1 });
  await client.system.killWorker("1", 0);
  const again = await client.produce("idem", 0, batch(producerId, 0), { acks: -1, timeoutMs: 20_000 });
  assert.is(again.baseOffset, a.baseOffset);
});

test("bad input gets typed errors and appends nothing", async () => {
  const leader = replicaAddress("idem", 0, 1);
  const before = (await client.describeReplica("idem", 0, 1)).logEndOffset;
  const corrupt = batch(-1, 0);
  corrupt[corrupt.length - 1] ^= 0xff;
  assert.is((await errorOf(client.system.ask(leader, "Produce", { batches: corrupt, acks: 1 })))?.code, ErrorCode.CORRUPT_MESSAGE);
  assert.is((await errorOf(client.system.ask(leader, "Produce", { batches: "not bytes", acks: 1 })))?.code, ErrorCode.INVALID_REQUEST);
  const big = encodeBatch([{ value: new Uint8Array(2 * 1024 * 1024) }]);
  assert.is((await errorOf(client.system.ask(leader, "Produce", { batches: big, acks: 1 })))?.code, ErrorCode.MESSAGE_TOO_LARGE);
  assert.is((await errorOf(client.fetch("idem", 0, 10_000)))?.code, ErrorCode.OFFSET_OUT_OF_RANGE);
  assert.is((await errorOf(client.produce("nope", 0, batch(-1, 0))))?.code, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
  assert.is((await client.describeReplica("idem", 0, 1)).logEndOffset, before);
});

test("consumers never see offsets at or above the high watermark; fetch long-polls", async () => {
  const d = await client.describeReplica("idem", 0, 1);
  const started = Date.now();
  const empty = await client.fetch("idem", 0, d.highWatermark, { maxWaitMs: 300 });
  assert.is(empty.data.length, 0);
  assert.ok(Date.now() - started >= 250, "an empty fetch waits for data up to maxWaitMs");
  const waiting = client.fetch("idem", 0, d.highWatermark, { maxWaitMs: 5_000 });
  await client.produce("idem", 0, batch(-1, 0), { acks: 1 });
  const woke = await waiting;
  assert.ok(woke.data.length > 0, "a parked fetch is answered when data arrives");
});

test("a partition state from a stale controller epoch is ignored by the replica", async () => {
  const address = replicaAddress("idem", 0, 1);
  const before = await client.describeReplica("idem", 0, 1);
  const current = (await client.meta.getPartition("idem", 0))!.value;
  // A deposed controller's command: newer leader epoch, other leader, older controller epoch.
  const stale = { ...current, leader: 7, leaderEpoch: current.leaderEpoch + 5, controllerEpoch: current.controllerEpoch - 1 };
  await client.system.ask(address, "Become", stale);
  const after = await client.describeReplica("idem", 0, 1);
  assert.is(after.role, "leader");
  assert.is(after.leaderEpoch, before.leaderEpoch);
  const ok = await client.produce("idem", 0, batch(-1, 0), { acks: -1 });
  assert.ok(ok.baseOffset >= 0, "still serving as leader");
});

test("deleting a topic stops its replicas and removes its data", async () => {
  await client.createTopic("doomed", 2, 1);
  await client.waitForLeaders("doomed");
  await client.produce("doomed", 0, batch(-1, 0), { acks: 1 });
  const dir = partitionDir(join(data.path, "broker-1"), "doomed", 0);
  assert.ok(existsSync(dir));
  await client.deleteTopic("doomed");
  await waitFor(() => !existsSync(dir), 10_000, "partition directory removed");
  assert.is((await client.listTopics()).some((t) => t.name === "doomed"), false);
  await client.createTopic("doomed", 1, 1);
  await client.waitForLeaders("doomed");
  assert.is((await client.describeReplica("doomed", 0, 1)).logEndOffset, 0, "a re-created topic starts empty");
});

test.run();
