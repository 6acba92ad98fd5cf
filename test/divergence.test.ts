// Divergence after a fast double failover (KIP-101 / KIP-279), with real processes:
// RF 3, min.insync.replicas 1. Both followers are paused (SIGSTOP); the leader writes an
// acks=1 tail only it has, and is SIGKILLed. The followers resume; as soon as one is elected
// it is SIGKILLed too, so the third broker leads and writes new records at the offsets where
// the old tail was. Then everyone restarts. The old leader must truncate exactly its
// unreplicated tail, found by asking the new leader where its own latest epoch ends
// (OffsetsForLeaderEpoch), not by cutting to its high watermark (not kept across restarts,
// so that would cut everything); every acks=all-acknowledged record must be at its offset;
// and all three logs must be byte-identical up to the high watermark.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { join } from "node:path";
import { startLocalCluster, type LocalCluster } from "../bin/broker-cmd.js";
import { ClusterClient } from "../actors/cluster/admin.js";
import { PartitionLog } from "../actors/log/log.js";
import { partitionDir } from "../actors/cluster/replica.js";
import { encodeBatch, iterateBatches, decodeRecords } from "../protocol/record-batch.js";
import { stopProcess, tempDir, waitFor, surfaced } from "./helpers.js";

const TOPIC = "div";
const data = tempDir("skein-divergence-");
let cluster: LocalCluster;
let client: ClusterClient;
const paused = new Set<number>();
const enc = new TextEncoder();
const dec = new TextDecoder();
/** value → offset of every acks=all-acknowledged record */
const acked = new Map<string, number>();

test.before(surfaced(async () => {
  cluster = await startLocalCluster({ brokers: 3, workers: 1, cluster: "div", data: data.path });
  client = await ClusterClient.connect({ nats: { servers: cluster.natsUrl }, cluster: "div" });
  await waitFor(async () => ((await client.status()).controller?.epoch ?? -1) >= 0, 15_000, "controller");
}));

test.after(async () => {
  for (const b of paused) signal(b, "SIGCONT");
  await client?.close();
  await cluster?.stop();
  data.remove();
});

function signal(broker: number, sig: NodeJS.Signals): void {
  try {
    process.kill(cluster.brokers.get(broker)!.pid, sig);
  } catch {
    // already gone
  }
  if (sig === "SIGSTOP") paused.add(broker);
  if (sig === "SIGCONT") paused.delete(broker);
}

async function writeAll(value: string): Promise<void> {
  const r = await client.produce(TOPIC, 0, encodeBatch([{ value: enc.encode(value) }]), { acks: -1, timeoutMs: 30_000 });
  acked.set(value, r.baseOffset);
}

const state = async () => (await client.meta.getPartition(TOPIC, 0))!.value;

/** Every replica's LEO equals the leader's HW and LEO, and the ISR is full. */
async function allCaughtUp(): Promise<boolean> {
  const s = await state();
  if (s.leader < 0 || s.isr.length !== 3) return false;
  const leader = await client.describeReplica(TOPIC, 0, s.leader);
  const ends = await Promise.all(s.replicas.map((b) => client.describeReplica(TOPIC, 0, b)));
  return leader.highWatermark === leader.logEndOffset && ends.every((d) => d.logEndOffset === leader.logEndOffset);
}

async function readLog(broker: number, upTo: number): Promise<Buffer> {
  const log = await PartitionLog.open(partitionDir(join(data.path, `broker-${broker}`), TOPIC, 0), {}, { logger: { warn() {}, info() {} } });
  const chunks: Uint8Array[] = [];
  for (let o = 0; o < upTo; ) {
    const r = await log.read(o, { maxBytes: 1 << 20, maxOffset: upTo });
    if (r.data.length === 0) break;
    chunks.push(r.data);
    for (const { header } of iterateBatches(r.data)) o = header.lastOffset + 1;
  }
  await log.close();
  return Buffer.concat(chunks);
}

test("a fast double failover truncates the old leader's unreplicated tail and leaves no divergence", async () => {
  await client.createTopic(TOPIC, 1, 3, { "min.insync.replicas": "1" });
  await client.waitForLeaders(TOPIC);
  for (let i = 0; i < 10; i++) await writeAll(`before-${i}`);
  await waitFor(allCaughtUp, 20_000, "all replicas caught up");
  const first = await state();
  const oldLeader = first.leader;
  const [f1, f2] = first.replicas.filter((b) => b !== oldLeader);

  // Stopped for real before the trigger is written (see stopProcess).
  for (const f of [f1, f2]) {
    paused.add(f);
    await stopProcess(cluster.brokers.get(f)!.pid);
  }
  // The first acks=1 record answers the followers' parked fetches (they get it when they
  // resume). Their next fetch can only come after they resume, so nothing written after it
  // leaves the old leader: that is the unreplicated tail.
  const trigger = await client.produce(TOPIC, 0, encodeBatch([{ value: enc.encode("trigger") }]), { acks: 1 });
  const TAIL = 5;
  for (let i = 0; i < TAIL; i++) {
    const r = await client.produce(TOPIC, 0, encodeBatch([{ value: enc.encode(`tail-${i}`) }]), { acks: 1 });
    assert.is(r.baseOffset, trigger.baseOffset + 1 + i);
  }
  const tailStart = trigger.baseOffset + 1;
  await cluster.brokers.get(oldLeader)!.kill();
  signal(f1, "SIGCONT");
  signal(f2, "SIGCONT");

  // The first new leader goes down as soon as it is elected.
  const elected = await waitFor(async () => {
    const s = await state();
    return s.leader >= 0 && s.leader !== oldLeader && s.leaderEpoch > first.leaderEpoch ? s : null;
  }, 30_000, "a new leader after the old one was killed");
  const shortLived = elected!.leader;
  await cluster.brokers.get(shortLived)!.kill();
  const survivor = shortLived === f1 ? f2 : f1;
  const second = await waitFor(async () => {
    const s = await state();
    return s.leader === survivor && s.leaderEpoch > elected!.leaderEpoch ? s : null;
  }, 30_000, `broker ${survivor} leading after the second failover`);
  console.log(`  epochs: ${first.leaderEpoch} (broker ${oldLeader}) -> ${elected!.leaderEpoch} (broker ${shortLived}, killed at once) -> ${second!.leaderEpoch} (broker ${survivor})`);
  await client.waitForLeaders(TOPIC);
  for (let i = 0; i < 8; i++) await writeAll(`after-${i}`);
  assert.ok(acked.get("after-0")! <= tailStart + TAIL - 1, "the new leader writes over the old tail's offsets");

  await cluster.startBroker(oldLeader);
  await cluster.startBroker(shortLived);
  await waitFor(allCaughtUp, 40_000, "all three replicas caught up after the restarts");
  await writeAll("final");
  await waitFor(allCaughtUp, 20_000, "all three replicas caught up with the final record");

  // The old leader cut exactly its tail, at the end of its epoch on the new leader.
  const out = cluster.brokers.get(oldLeader)!.output();
  const cut = /truncating (\d+) records from (\d+)/.exec(out);
  assert.ok(cut, `the old leader truncated nothing; its output:\n${out.slice(-2_000)}`);
  assert.equal([Number(cut![1]), Number(cut![2])], [TAIL, tailStart], "truncated the unreplicated tail only (OffsetsForLeaderEpoch), not down to a high watermark");

  const hw = (await client.describeReplica(TOPIC, 0, (await state()).leader)).highWatermark;
  const f = await client.fetch(TOPIC, 0, 0, { maxBytes: 1 << 20 });
  const byOffset = new Map<number, string>();
  for (const { pos } of iterateBatches(f.data)) for (const r of decodeRecords(f.data, pos)) byOffset.set(r.offset, dec.decode(r.value!));
  assert.is(byOffset.size, hw, "one fetch read everything below HW");
  for (const [value, offset] of acked) assert.is(byOffset.get(offset), value, `acks=all record ${value} at ${offset}`);
  assert.ok(![...byOffset.values()].some((v) => v.startsWith("tail-")), "no record of the unreplicated tail survived");

  await client.close();
  await cluster.stop();
  const logs = await Promise.all([1, 2, 3].map((b) => readLog(b, hw)));
  assert.ok(logs[0].length > 0);
  assert.ok(logs[0].equals(logs[1]), "broker 1 and 2 logs differ below HW");
  assert.ok(logs[0].equals(logs[2]), "broker 1 and 3 logs differ below HW");
});

test.run();
