// Consumer groups against a real 3-broker cluster: membership, rebalances (cooperative),
// committed offsets, static membership, group admin, and coordinator failover.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { startLocalCluster, type LocalCluster } from "../bin/broker-cmd.js";
import { Skein, type Consumer } from "../actors/client/skein.js";
import { ClusterClient } from "../actors/cluster/admin.js";
import { assign, cooperativeStickyAssign, type MemberSubscription } from "../actors/groups/assignors.js";
import { OFFSETS_TOPIC, partitionForGroup } from "../protocol/groups.js";
import type { GroupEvent } from "../protocol/client.js";
import { ErrorCode, type SkeinError } from "../protocol/errors.js";
import { spawn } from "node:child_process";
import { fixture, tempDir, waitFor } from "./helpers.js";

const data = tempDir("skein-groups-");
let cluster: LocalCluster;
let skein: Skein;
let admin: ClusterClient;
const TOPIC = "jobs";

test.before(async () => {
  cluster = await startLocalCluster({ brokers: 3, workers: 1, cluster: "gr", data: data.path }, { extraBrokerArgs: ["--offsets-partitions", "6"] });
  skein = new Skein({ clientId: "gt", nats: cluster.natsUrl, cluster: "gr" });
  admin = await ClusterClient.connect({ nats: { servers: cluster.natsUrl }, cluster: "gr" });
  await waitFor(async () => ((await admin.status()).controller?.epoch ?? -1) >= 0, 15_000, "controller");
  await admin.createTopic(TOPIC, 6, 3);
  await admin.waitForLeaders(TOPIC);
});

test.after(async () => {
  await admin?.close();
  await cluster?.stop();
  data.remove();
});

test("assignors: range, roundrobin and cooperative-sticky (unit)", () => {
  const counts = new Map([["t", 6]]);
  const members: MemberSubscription[] = ["a", "b", "c"].map((memberId) => ({ memberId, topics: ["t"], owned: [] }));
  for (const name of ["range", "roundrobin", "cooperative-sticky"]) {
    const a = assign(name, members, counts);
    const all = [...a.values()].flat().map((tp) => tp.partition).sort();
    assert.equal(all, [0, 1, 2, 3, 4, 5], `${name} assigns every partition once`);
    for (const list of a.values()) assert.is(list.length, 2, `${name} balances`);
  }
  // b leaves: a and c keep theirs, b's partitions are handed out; nothing moves between a and c
  const before = cooperativeStickyAssign(members, counts);
  const afterLeave = cooperativeStickyAssign(
    [{ memberId: "a", topics: ["t"], owned: before.get("a")! }, { memberId: "c", topics: ["t"], owned: before.get("c")! }],
    counts,
  );
  for (const id of ["a", "c"]) for (const tp of before.get(id)!) assert.ok(afterLeave.get(id)!.some((x) => x.partition === tp.partition), `${id} keeps ${tp.partition}`);
  // d joins a balanced group of 2 owning 3 each: the partition that moves is withheld this generation
  const owners = { a: [0, 1, 2], c: [3, 4, 5] };
  const join = cooperativeStickyAssign(
    [
      { memberId: "a", topics: ["t"], owned: owners.a.map((p) => ({ topic: "t", partition: p })) },
      { memberId: "c", topics: ["t"], owned: owners.c.map((p) => ({ topic: "t", partition: p })) },
      { memberId: "d", topics: ["t"], owned: [] },
    ],
    counts,
  );
  assert.is(join.get("d")!.length, 0, "d gets nothing until the owners revoked");
  assert.is(join.get("a")!.length + join.get("c")!.length, 4, "one partition from each overloaded owner is revoked");
});

interface Member {
  consumer: Consumer;
  id: string;
  seen: Map<number, number>;
  events: GroupEvent[];
  count: number;
}

async function startMember(id: string, extra: Record<string, unknown> = {}): Promise<Member> {
  // Each member gets its own client node (worker thread), like separate applications.
  const own = new Skein({ clientId: id, nats: cluster.natsUrl, cluster: "gr" });
  const consumer = own.consumer({ groupId: "workers", sessionTimeout: 3_000, heartbeatInterval: 300, autoCommitInterval: 200, ...extra });
  const m: Member = { consumer, id, seen: new Map(), events: [], count: 0 };
  consumer.on("group.join", (e) => m.events.push(e));
  consumer.on("group.revoke", (e) => m.events.push(e));
  consumer.on("group.fenced", (e) => m.events.push(e));
  await consumer.connect();
  await consumer.subscribe({ topics: [TOPIC], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      m.count++;
      m.seen.set(partition, Number(message.offset));
    },
  });
  return m;
}

/** Owned partitions per member after the latest join minus later revocations. */
function owned(m: Member): number[] {
  return ownedOf(m.events);
}

function ownedOf(events: GroupEvent[]): number[] {
  let set = new Set<number>();
  for (const e of events) {
    if (e.type === "group.join") set = new Set(e.partitions.map((p) => p.partition));
    if (e.type === "group.revoke") for (const p of e.partitions) set.delete(p.partition);
    if (e.type === "group.fenced") set = new Set(); // fenced: it owns nothing until its next join
  }
  return [...set].sort();
}

async function produce(n: number, tag: string): Promise<void> {
  const producer = skein.producer({ acks: "all" });
  await producer.connect();
  await producer.send({ topic: TOPIC, messages: Array.from({ length: n }, (_, i) => ({ key: `${tag}-${i}`, value: `${tag}-${i}` })) });
  await producer.disconnect();
}

const members: Member[] = [];

test("three members share six partitions; each partition has exactly one owner", async () => {
  await produce(600, "a");
  for (const id of ["m1", "m2", "m3"]) members.push(await startMember(id));
  await waitFor(() => members.every((m) => owned(m).length === 2), 20_000, "2 partitions per member");
  const all = members.flatMap(owned).sort();
  assert.equal(all, [0, 1, 2, 3, 4, 5]);
  await waitFor(() => members.reduce((n, m) => n + m.count, 0) >= 600, 20_000, "all 600 records consumed");
  const d = await admin.describeGroup("workers");
  assert.is(d.state, "Stable");
  assert.is(d.members.length, 3);
  assert.is(d.protocol, "cooperative-sticky");
  await waitFor(async () => (await admin.describeGroup("workers")).offsets.reduce((n, o) => n + o.offset, 0) === 600, 10_000, "offsets committed");
  const lag = (await admin.describeGroup("workers")).offsets.map((o) => o.lag);
  assert.ok(lag.every((l) => l === 0), `lag is 0 everywhere: ${lag}`);
});

test("a member process that dies loses its partitions to the survivors; the others never stop", async () => {
  const [, m2, m3] = members;
  // A fourth member in its own process joins, takes partitions, then is SIGKILLed (no LeaveGroup).
  const doomed = spawn(process.execPath, [fixture("group-member"), cluster.natsUrl, "gr", "workers", TOPIC, "3000"], { stdio: ["ignore", "pipe", "inherit"] });
  const lines: GroupEvent[] = [];
  doomed.stdout!.setEncoding("utf8");
  doomed.stdout!.on("data", (chunk: string) => {
    for (const l of chunk.split("\n")) if (l.startsWith("{")) lines.push(JSON.parse(l));
  });
  await waitFor(() => lines.some((e) => e.type === "group.join" && e.partitions.length > 0), 20_000, "doomed member owns partitions");
  await waitFor(() => members.every((m) => owned(m).length > 0) && members.reduce((n, m) => n + owned(m).length, 0) + ownedOf(lines).length === 6, 20_000, "settled with 4 members");
  const keptBy2 = owned(m2);
  const keptBy3 = owned(m3);
  const diedAt = Date.now();
  doomed.kill("SIGKILL");
  await waitFor(() => members.reduce((n, m) => n + owned(m).length, 0) === 6, 15_000, "survivors own all 6 partitions");
  const took = Date.now() - diedAt;
  console.log(`  measured: member died -> all partitions owned again in ${took} ms (session timeout 3000 ms)`);
  assert.ok(took < 3_000 + 5_000, `rebalance took ${took} ms`);
  for (const p of keptBy2) assert.ok(owned(m2).includes(p), `m2 kept partition ${p} (cooperative)`);
  for (const p of keptBy3) assert.ok(owned(m3).includes(p), `m3 kept partition ${p} (cooperative)`);
  const revokes = members.flatMap((m) => m.events.filter((e) => e.type === "group.revoke" && e.at > diedAt));
  assert.is(revokes.length, 0, "no survivor had to give a partition up");
  const before = members.reduce((n, m) => n + m.count, 0);
  await produce(300, "b");
  await waitFor(() => members.reduce((n, m) => n + m.count, 0) >= before + 300, 20_000, "survivors consume the new records");
});

test("killing a consumer's worker: the member comes back and every partition is owned again", async () => {
  const victim = members[0];
  const node = (victim.consumer as unknown as { node: { killWorker(i: number): Promise<string[]> } }).node;
  const generation = (await admin.describeGroup("workers")).generation;
  const killedAt = Date.now();
  await node.killWorker(0);
  await waitFor(async () => {
    const d = await admin.describeGroup("workers");
    const owners = d.members.flatMap((m) => m.assignment.map((tp) => tp.partition));
    return d.generation > generation && d.state === "Stable" && owners.length === 6 && new Set(owners).size === 6 && d.members.length === members.length;
  }, 20_000, "group stable again with every partition owned once");
  console.log(`  measured: consumer worker killed -> group stable again in ${Date.now() - killedAt} ms`);
});

test("a static member restarting within its session keeps its partitions without a rebalance", async () => {
  const s1 = await startMember("s1", { groupInstanceId: "static-1" });
  await waitFor(() => owned(s1).length > 0 && members.every((m) => owned(m).length > 0), 20_000, "static member has partitions");
  await waitFor(async () => (await admin.describeGroup("workers")).state === "Stable", 10_000, "stable");
  const generation = (await admin.describeGroup("workers")).generation;
  const mine = owned(s1);
  await s1.consumer.disconnect(); // a static member does not send LeaveGroup
  const again = await startMember("s1b", { groupInstanceId: "static-1" });
  await waitFor(() => owned(again).length > 0, 10_000, "restarted static member gets partitions");
  assert.equal(owned(again), mine);
  assert.is((await admin.describeGroup("workers")).generation, generation, "no rebalance happened");
  members.push(again);
});

test("commits from a fenced generation are refused; group admin", async () => {
  const coordinatorErr = (await admin
    .askCoordinator("workers", "OffsetCommit", { groupId: "workers", generation: 0, memberId: "ghost", offsets: [{ topic: TOPIC, partition: 0, offset: 1 }] })
    .catch((e) => e)) as SkeinError;
  assert.is(coordinatorErr.code, ErrorCode.UNKNOWN_MEMBER_ID);
  const nonEmpty = (await admin.deleteGroup("workers").catch((e) => e)) as SkeinError;
  assert.is(nonEmpty.code, ErrorCode.NON_EMPTY_GROUP);
  assert.ok((await admin.listGroups()).some((g) => g.groupId === "workers"));
});

test("the coordinator's broker dies: offsets and membership survive on the new leader", async () => {
  const before = await admin.describeGroup("workers");
  const committed = new Map(before.offsets.map((o) => [`${o.partition}`, o.offset]));
  const p = partitionForGroup("workers", 6);
  const leader = (await admin.meta.getPartition(OFFSETS_TOPIC, p))!.value.leader;
  await cluster.brokers.get(leader)!.kill();
  const after = await waitFor(async () => {
    const d = await admin.describeGroup("workers").catch(() => null);
    return d && d.state === "Stable" && d.members.length === members.length ? d : null;
  }, 45_000, "group described by the new coordinator");
  for (const o of after!.offsets) assert.ok(o.offset >= (committed.get(`${o.partition}`) ?? 0), `committed offset of ${o.partition} did not go backwards`);
  await cluster.startBroker(leader);
  // The controller gives the returning broker its preferred leaderships back after a delay,
  // which moves the coordinator once more: let that settle before the next test.
  await waitFor(async () => {
    const parts = [...(await admin.meta.listPartitions(OFFSETS_TOPIC)), ...(await admin.meta.listPartitions(TOPIC))];
    return parts.every((x) => x.value.leader === x.value.replicas[0]);
  }, 60_000, "preferred leaders restored after the broker returned");
  await waitFor(async () => {
    const d = await admin.describeGroup("workers").catch(() => null);
    return d?.state === "Stable" && members.every((m) => owned(m).length > 0);
  }, 30_000, "group stable on the preferred coordinator");
});

test("adding partitions to a subscribed topic triggers a rebalance that assigns them", async () => {
  await admin.createPartitions(TOPIC, 8);
  await admin.waitForLeaders(TOPIC);
  await waitFor(() => {
    const all = members.flatMap(owned);
    return all.length === 8 && new Set(all).size === 8;
  }, 30_000, "all 8 partitions owned, each once").catch(async (e) => {
    // Say what the group looked like, so a failure here can be diagnosed from CI output.
    const d = await admin.describeGroup("workers").catch((x) => String(x));
    const view = members.map((m) => `${m.id}: [${owned(m)}] (${m.events.length} events)`).join("; ");
    throw new Error(`${(e as Error).message}\n  members: ${view}\n  group: ${JSON.stringify(d)}`);
  });
  // Every rebalance of this suite so far is a handful of generations; a rebalance storm (stale
  // heartbeat/commit answers taken as fencing) once reached thousands.
  const { generation } = await admin.describeGroup("workers");
  console.log(`  measured: group generation ${generation} after all rebalances of this suite`);
  assert.ok(generation < 200, `generation ${generation}: no rebalance storm`);
});

test("members leave cleanly; an empty group can be reset and deleted", async () => {
  for (const m of members) await m.consumer.disconnect();
  await waitFor(async () => (await admin.describeGroup("workers")).state === "Empty", 15_000, "group empty");
  const reset = await admin.resetOffsets("workers", TOPIC, { earliest: true });
  assert.is(reset.length, 8);
  assert.ok((await admin.describeGroup("workers")).offsets.every((o) => o.offset === 0));
  await admin.deleteGroup("workers");
  assert.is((await admin.describeGroup("workers")).state, "Dead");
});

test.run();
