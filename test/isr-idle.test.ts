// The ISR with long follower polls: a follower whose fetch is parked at the leader's log end
// is caught up, so idle followers stay in the ISR although they ask only every
// replicaFetchWaitMs (10 s) and the lag limit here is 500 ms; a follower that stops fetching
// (its broker paused) leaves the ISR within the lag limit once new data arrives, and comes
// back when it catches up. And the fetch sessions: an idle cluster with many follower
// partitions exchanges a handful of actor messages, not one long poll per partition.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { startLocalCluster, type LocalCluster } from "../bin/broker-cmd.js";
import { ClusterClient } from "../actors/cluster/admin.js";
import { encodeBatch } from "../protocol/record-batch.js";
import { stopProcess, tempDir, waitFor, surfaced } from "./helpers.js";
import { connect } from "@nats-io/transport-node";

const LAG_MS = 500;
const data = tempDir("skein-isr-idle-");
let cluster: LocalCluster;
let client: ClusterClient;
const enc = new TextEncoder();

test.before(surfaced(async () => {
  // A long broker session, so the controller's liveness check stays out of this test.
  cluster = await startLocalCluster(
    { brokers: 3, workers: 1, cluster: "isr", data: data.path },
    { extraBrokerArgs: ["--replica-lag-max-ms", String(LAG_MS), "--session-timeout-ms", "30000"] },
  );
  client = await ClusterClient.connect({ nats: { servers: cluster.natsUrl }, cluster: "isr" });
  await waitFor(async () => ((await client.status()).controller?.epoch ?? -1) >= 0, 15_000, "controller");
  await client.createTopic("idle", 1, 3);
  await client.waitForLeaders("idle");
}));

test.after(async () => {
  for (const b of cluster?.brokers.values() ?? []) {
    try {
      process.kill(b.pid, "SIGCONT");
    } catch {
      // already gone
    }
  }
  await client?.close();
  await cluster?.stop();
  data.remove();
});

const partition = async () => (await client.meta.getPartition("idle", 0))!;

test("idle caught-up followers stay in the ISR for many lag limits", async () => {
  await client.produce("idle", 0, encodeBatch([{ value: enc.encode("first") }]), { acks: -1, timeoutMs: 10_000 });
  await waitFor(async () => (await partition()).value.isr.length === 3, 15_000, "full ISR");
  const before = await partition();
  await new Promise((r) => setTimeout(r, 6 * LAG_MS));
  const after = await partition();
  assert.equal(after.value.isr, before.value.isr, "nobody left the ISR while idle");
  assert.is(after.revision, before.revision, "no ISR change was written at all");
});

test("a follower that stops fetching leaves the ISR once data arrives, and returns after", async () => {
  const state = (await partition()).value;
  const follower = state.replicas.find((r) => r !== state.leader)!;
  const pid = cluster.brokers.get(follower)!.pid;
  try {
    await stopProcess(pid);
    const sentAt = Date.now();
    await client.produce("idle", 0, encodeBatch([{ value: enc.encode("second") }]), { acks: 1, timeoutMs: 10_000 });
    await waitFor(async () => !(await partition()).value.isr.includes(follower), 10_000, `broker ${follower} out of the ISR`);
    const ms = Date.now() - sentAt;
    console.log(`  measured: paused follower left the ISR ${ms} ms after the produce (lag limit ${LAG_MS} ms)`);
    assert.ok(ms < LAG_MS + 5_000, `left within the lag limit plus scheduling slack (${ms} ms), not at the next 10 s poll`);
  } finally {
    process.kill(pid, "SIGCONT");
  }
  await waitFor(async () => (await partition()).value.isr.includes(follower), 20_000, `broker ${follower} back in the ISR`);
  const r = await client.produce("idle", 0, encodeBatch([{ value: enc.encode("third") }]), { acks: -1, timeoutMs: 10_000 });
  assert.is(r.baseOffset, 2);
});

test("fetch sessions: 120 idle follower partitions cost a few messages, and data still flows to all", async () => {
  await client.createTopic("many", 60, 3);
  await client.waitForLeaders("many");
  await waitFor(async () => (await client.meta.listPartitions("many")).every((p) => p.value.isr.length === 3), 20_000, "full ISRs");
  await new Promise((r) => setTimeout(r, 1_000)); // let the sessions' burst of new partitions go out
  const nc = await connect({ servers: cluster.natsUrl });
  let messages = 0;
  const sub = nc.subscribe("skein.isr.a.>", { callback: () => void messages++ }); // requests to actors (replies go to inboxes)
  await new Promise((r) => setTimeout(r, 4_000));
  sub.unsubscribe();
  await nc.close();
  console.log(`  measured: ${messages} actor messages in 4 s idle with 120 follower partitions`);
  // Per-partition long polls (the design before sessions) sent one request per follower
  // partition per poll: >= 48 in 4 s even at a 10 s poll; sessions: one per (follower worker,
  // leader worker) pair per 10 s, here 6 pairs.
  assert.ok(messages < 20, `${messages} actor requests while idle`);
  for (let p = 0; p < 60; p++) await client.produce("many", p, encodeBatch([{ value: enc.encode(`m${p}`) }]), { acks: -1, timeoutMs: 10_000 });
  const states = await client.meta.listPartitions("many");
  assert.ok(states.every((p) => p.value.isr.length === 3), "acks=all writes to every partition were replicated to the full ISR");
});

test.run();
