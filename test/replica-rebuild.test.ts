// A follower whose log cannot be opened (a damaged closed segment that recovery must not cut)
// is rebuilt from its leader: it leaves the ISR first, its damaged directory is kept aside,
// it re-replicates everything, and it returns to the ISR with the same records as the leader.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startLocalCluster, type LocalCluster } from "../bin/broker-cmd.js";
import { ClusterClient } from "../actors/cluster/admin.js";
import { PartitionLog } from "../actors/log/log.js";
import { partitionDir } from "../actors/cluster/replica.js";
import { encodeBatch, iterateBatches, decodeRecords } from "../protocol/record-batch.js";
import { tempDir, waitFor, surfaced } from "./helpers.js";

const data = tempDir("skein-rebuild-");
let cluster: LocalCluster;
let client: ClusterClient;
const enc = new TextEncoder();
const dec = new TextDecoder();

test.before(surfaced(async () => {
  cluster = await startLocalCluster({ brokers: 3, workers: 1, cluster: "rb", data: data.path });
  client = await ClusterClient.connect({ nats: { servers: cluster.natsUrl }, cluster: "rb" });
  await waitFor(async () => ((await client.status()).controller?.epoch ?? -1) >= 0, 15_000, "controller");
}));

test.after(async () => {
  await client?.close();
  await cluster?.stop();
  data.remove();
});

async function values(dir: string): Promise<string[]> {
  const log = await PartitionLog.open(dir, {}, { logger: { warn() {}, info() {} } });
  try {
    const out: string[] = [];
    let from = log.logStartOffset;
    while (from < log.logEndOffset) {
      const r = await log.read(from, { maxBytes: 1024 * 1024 });
      for (const { header, pos } of iterateBatches(r.data)) {
        for (const rec of decodeRecords(r.data, pos)) if (rec.offset >= from) out.push(dec.decode(rec.value!));
        from = header.lastOffset + 1;
      }
    }
    return out;
  } finally {
    await log.close();
  }
}

test("a follower with a damaged closed segment is rebuilt from the leader and rejoins the ISR", async () => {
  await client.createTopic("rb", 1, 3, { "segment.bytes": 4096 });
  await client.waitForLeaders("rb");
  for (let i = 0; i < 40; i++) {
    const batch = encodeBatch(Array.from({ length: 5 }, (_, j) => ({ value: enc.encode(`v${i * 5 + j}-${"x".repeat(80)}`) })));
    await client.produce("rb", 0, batch, { acks: -1, timeoutMs: 10_000 });
  }
  const state = (await client.meta.getPartition("rb", 0))!.value;
  const follower = state.replicas.find((b) => b !== state.leader)!;
  await waitFor(async () => (await client.describeReplica("rb", 0, follower)).logEndOffset === 200, 15_000, "the follower caught up");
  await cluster.brokers.get(follower)!.stop();

  // Damage the middle of the follower's first (closed) segment and drop its index, so the open
  // scans it and finds the damage; recovery must not cut a closed segment.
  const dir = partitionDir(join(data.path, `broker-${follower}`), "rb", 0);
  const segments = readdirSync(dir).filter((f) => f.endsWith(".log")).sort();
  assert.ok(segments.length >= 3, `several segments (${segments.length})`);
  const first = join(dir, segments[0]);
  const bytes = readFileSync(first);
  for (let i = 0; i < 16; i++) bytes[Math.floor(bytes.length / 2) + i] ^= 0xff;
  writeFileSync(first, bytes);
  rmSync(first.replace(/\.log$/, ".index"), { force: true });

  await cluster.startBroker(follower);
  await waitFor(async () => {
    const p = (await client.meta.getPartition("rb", 0))!.value;
    const r = await client.describeReplica("rb", 0, follower).catch(() => null);
    return p.isr.includes(follower) && r?.logEndOffset === 200;
  }, 30_000, "the rebuilt follower back in the ISR with every record");
  const aside = readdirSync(join(data.path, `broker-${follower}`)).filter((d) => d.startsWith("rb-0.corrupt-"));
  assert.is(aside.length, 1, "the damaged log was kept aside");
  const output = cluster.brokers.get(follower)!.output();
  assert.match(output, "rebuilding it from the leader");

  // Same records, in the same order, as the leader's log (brokers stopped to read the files).
  const leader = (await client.meta.getPartition("rb", 0))!.value.leader;
  await client.close();
  await cluster.stop();
  const expected = Array.from({ length: 200 }, (_, i) => `v${i}-${"x".repeat(80)}`);
  assert.equal(await values(dir), expected, "the rebuilt follower holds every record");
  assert.equal(await values(partitionDir(join(data.path, `broker-${leader}`), "rb", 0)), expected, "the leader too");
  assert.ok(existsSync(join(data.path, `broker-${follower}`, aside[0])));
  // (the suite's after hook stops what is left)
  client = null as unknown as ClusterClient;
  cluster = null as unknown as LocalCluster;
});

test.run();
