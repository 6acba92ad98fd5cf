// Consumer groups against a real 3-broker cluster: membership, rebalances (cooperative),
// committed offsets, static membership, group admin, and coordinator failover.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { startLocalCluster, type LocalCluster } from "../bin/broker-cmd.js";
import { Skein, type Admin, type Consumer } from "../actors/client/skein.js";
import { ClusterClient } from "../actors/cluster/admin.js";
import { assign, cooperativeStickyAssign, type MemberSubscription } from "../actors/groups/assignors.js";
import { OFFSETS_TOPIC, partitionForGroup } from "../protocol/groups.js";
import type { GroupEvent } from "../protocol/client.js";
import { ErrorCode, type SkeinError } from "../protocol/errors.js";
import { execFile, spawn } from "node:child_process";
import { cliBundlePath } from "../runtime/paths.js";
import { fixture, tempDir, waitFor, surfaced } from "./helpers.js";

const data = tempDir("skein-groups-");
let cluster: LocalCluster;
let skein: Skein;
let admin: ClusterClient;
/** The exported Admin facade (group admin as applications use it). */
let facade: Admin;
const TOPIC = "jobs";

test.before(surfaced(async () => {
  cluster = await startLocalCluster({ brokers: 3, workers: 1, cluster: "gr", data: data.path }, { extraBrokerArgs: ["--offsets-partitions", "6"] });
  skein = new Skein({ clientId: "gt", nats: cluster.natsUrl, cluster: "gr" });
  admin = await ClusterClient.connect({ nats: { servers: cluster.natsUrl }, cluster: "gr" });
  await waitFor(async () => ((await admin.status()).controller?.epoch ?? -1) >= 0, 15_000, "controller");
  await admin.createTopic(TOPIC, 6, 3);
  await admin.waitForLeaders(TOPIC);
  facade = skein.admin();
  await facade.connect();
}));

test.after(async () => {
  // Members a failed test left connected would keep this process alive (reconnecting to the
  // stopped cluster) until the runner's timeout.
  await Promise.all([...live].map((m) => Promise.race([m.consumer.disconnect().catch(() => {}), new Promise((r) => setTimeout(r, 5_000))])));
  await facade?.disconnect();
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

/** Every member started, for test.after to disconnect what a failed test left behind. */
const live = new Set<Member>();

async function startMember(id: string, extra: Record<string, unknown> = {}, onMessage?: (partition: number) => Promise<void>): Promise<Member> {
  // Each member gets its own client node (worker thread), like separate applications.
  const own = new Skein({ clientId: id, nats: cluster.natsUrl, cluster: "gr" });
  const consumer = own.consumer({ groupId: "workers", sessionTimeout: 3_000, heartbeatInterval: 300, autoCommitInterval: 200, ...extra });
  const m: Member = { consumer, id, seen: new Map(), events: [], count: 0 };
  live.add(m);
  consumer.on("group.join", (e) => m.events.push(e));
  consumer.on("group.revoke", (e) => m.events.push(e));
  consumer.on("group.fenced", (e) => m.events.push(e));
  consumer.on("group.leave", (e) => m.events.push(e));
  await consumer.connect();
  await consumer.subscribe({ topics: [TOPIC], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      await onMessage?.(partition);
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
    if (e.type === "group.fenced" || e.type === "group.leave") set = new Set(); // owns nothing until its next join
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

test("fencing: UNKNOWN_MEMBER_ID for a member not in the group, ILLEGAL_GENERATION for a stale generation; admin refuses a non-empty group", async () => {
  const unknown = (await admin
    .askCoordinator("workers", "OffsetCommit", { groupId: "workers", generation: 0, memberId: "ghost", offsets: [{ topic: TOPIC, partition: 0, offset: 1 }] })
    .catch((e) => e)) as SkeinError;
  assert.is(unknown.code, ErrorCode.UNKNOWN_MEMBER_ID);
  const d = await waitFor(async () => {
    const x = await admin.describeGroup("workers");
    return x.state === "Stable" ? x : null;
  }, 15_000, "stable group");
  const member = d!.members[0].memberId;
  const stale = { groupId: "workers", generation: d!.generation - 1, memberId: member };
  const commit = (await admin.askCoordinator("workers", "OffsetCommit", { ...stale, offsets: [{ topic: TOPIC, partition: 0, offset: 1 }] }).catch((e) => e)) as SkeinError;
  assert.is(commit.code, ErrorCode.ILLEGAL_GENERATION, `stale commit: ${commit.message}`);
  const heartbeat = (await admin.askCoordinator("workers", "Heartbeat", stale).catch((e) => e)) as SkeinError;
  assert.is(heartbeat.code, ErrorCode.ILLEGAL_GENERATION, `stale heartbeat: ${heartbeat.message}`);
  const p0 = (await admin.describeGroup("workers")).offsets.find((o) => o.topic === TOPIC && o.partition === 0);
  assert.ok(p0 && p0.offset > 1, `the refused commit changed nothing (partition 0 committed ${p0?.offset})`);

  const deleteErr = (await facade.deleteGroups(["workers"]).catch((e) => e)) as SkeinError;
  assert.is(deleteErr.code, ErrorCode.NON_EMPTY_GROUP);
  const resetErr = (await facade.resetOffsets({ groupId: "workers", topic: TOPIC, earliest: true }).catch((e) => e)) as SkeinError;
  assert.is(resetErr.code, ErrorCode.NON_EMPTY_GROUP);
  const { groups } = await facade.listGroups();
  assert.ok(groups.some((g) => g.groupId === "workers" && g.members === members.length), JSON.stringify(groups));
});

test("commit metadata: carried to the coordinator, returned by committed(), describeGroups and fetchOffsets", async () => {
  const own = new Skein({ clientId: "meta", nats: cluster.natsUrl, cluster: "gr" });
  const consumer = own.consumer({ groupId: "meta-group", autoCommit: false, heartbeatInterval: 300 });
  await consumer.connect();
  await consumer.subscribe({ topics: [TOPIC] });
  const mine = await waitFor(async () => {
    const d = await admin.describeGroup("meta-group");
    return d.state === "Stable" && d.members[0]?.assignment.length === 6 ? d.members[0].assignment : null;
  }, 20_000, "the only member owns every partition");
  const offsets = mine!.map((tp) => ({ ...tp, offset: 5 + tp.partition, metadata: `checkpoint-${tp.partition}` }));
  // A commit right after the join may still meet the member finishing its sync: retry it.
  await waitFor(() => consumer.commitOffsets(offsets).then(() => true), 10_000, "commit with metadata");
  const committed = await consumer.committed([{ topic: TOPIC, partition: 2 }, { topic: TOPIC, partition: 99 }]);
  assert.equal(committed, [
    { topic: TOPIC, partition: 2, offset: 7, metadata: "checkpoint-2" },
    { topic: TOPIC, partition: 99, offset: -1, metadata: "" },
  ]);
  const [described] = (await facade.describeGroups(["meta-group"])).groups;
  assert.equal(described.offsets.map((o) => [o.partition, o.offset, o.metadata]), offsets.map((o) => [o.partition, o.offset, o.metadata]).sort((a, b) => (a[0] as number) - (b[0] as number)));
  const fetched = await facade.fetchOffsets({ groupId: "meta-group", topics: [TOPIC] });
  assert.is(fetched[0].partitions.find((p) => p.partition === 3)?.metadata, "checkpoint-3");
  await consumer.disconnect();
  await waitFor(async () => (await admin.describeGroup("meta-group")).state === "Empty", 10_000, "meta-group empty");
});

/** Every committed offset (and its metadata) of the suite's groups. */
async function committedNow(): Promise<Map<string, { offset: number; metadata: string }>> {
  const out = new Map<string, { offset: number; metadata: string }>();
  for (const g of ["workers", "meta-group"]) for (const o of (await admin.describeGroup(g)).offsets) out.set(`${g} ${o.topic}/${o.partition}`, { offset: o.offset, metadata: o.metadata });
  return out;
}

/** Every offset committed before the failure is there afterwards and not lower; the idle group's are unchanged. */
function assertSurvived(before: Map<string, { offset: number; metadata: string }>, after: Map<string, { offset: number; metadata: string }>): void {
  assert.ok(before.size >= 12, `${before.size} committed offsets before the failure`);
  for (const [k, o] of before) {
    const now = after.get(k);
    assert.ok(now, `${k} (committed ${o.offset}) is still committed`);
    assert.ok(now.offset >= o.offset, `${k}: committed ${o.offset} before, ${now.offset} after`);
    if (k.startsWith("meta-group")) assert.equal(now, o, `${k}: the empty group's offset and metadata are unchanged`);
  }
}

/** After a broker or worker comes back: preferred leaders return (moving the coordinator again); wait for that to settle. */
async function settle(): Promise<void> {
  // On a timeout the message names the partitions still away from their preferred leader.
  let away: Array<{ topic: string; partition: number; leader: number; replicas: number[]; isr: number[] }> = [];
  await waitFor(async () => {
    const parts = [...(await admin.meta.listPartitions(OFFSETS_TOPIC)), ...(await admin.meta.listPartitions(TOPIC))];
    away = parts.map((x) => x.value).filter((x) => x.leader !== x.replicas[0]);
    return away.length === 0;
  }, 60_000, "preferred leaders restored").catch(async (e: Error) => {
    // What every replica of each such partition says of itself (role, epoch, offsets, fetching).
    const said = await Promise.all(
      away.map(async (x) => {
        const replicas = await Promise.all(x.replicas.map((b) => admin.describeReplica(x.topic, x.partition, b).then((d) => JSON.stringify(d), (err: Error) => `${b}: ${err.message}`)));
        return `${x.topic}/${x.partition} leader ${x.leader} replicas [${x.replicas}] isr [${x.isr}]:\n    ${replicas.join("\n    ")}`;
      }),
    );
    throw new Error(`${e.message}; still away:\n  ${said.join("\n  ")}`);
  });
  await waitFor(async () => {
    const d = await admin.describeGroup("workers").catch(() => null);
    return d?.state === "Stable" && d.members.length === members.length && members.every((m) => owned(m).length > 0);
  }, 30_000, "group stable on the preferred coordinator");
}

async function stableWithAllMembers() {
  return waitFor(async () => {
    const d = await admin.describeGroup("workers").catch(() => null);
    return d && d.state === "Stable" && d.members.length === members.length ? d : null;
  }, 45_000, "group described by the new coordinator");
}

test("the coordinator's worker dies: offsets and membership survive", async () => {
  const before = await committedNow();
  const p = partitionForGroup("workers", 6);
  const leader = (await admin.meta.getPartition(OFFSETS_TOPIC, p))!.value.leader;
  const ids = (await admin.describeGroup("workers")).members.map((m) => m.memberId).sort();
  await admin.system.killWorker(String(leader), 0);
  const after = await stableWithAllMembers();
  assertSurvived(before, await committedNow());
  assert.equal(after!.members.map((m) => m.memberId).sort(), ids, "the same members");
  await settle();
});

test("the coordinator's broker dies: offsets and membership survive on the new leader", async () => {
  const before = await committedNow();
  const p = partitionForGroup("workers", 6);
  const leader = (await admin.meta.getPartition(OFFSETS_TOPIC, p))!.value.leader;
  const ids = (await admin.describeGroup("workers")).members.map((m) => m.memberId).sort();
  await cluster.brokers.get(leader)!.kill();
  const after = await stableWithAllMembers();
  assertSurvived(before, await committedNow());
  assert.equal(after!.members.map((m) => m.memberId).sort(), ids, "the same members");
  await cluster.startBroker(leader);
  await settle();
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

test("members leave cleanly; an empty group's offsets reset to earliest, an offset, latest and a timestamp; deleted with `skein groups delete --json`", async () => {
  for (const m of members) await m.consumer.disconnect();
  await waitFor(async () => (await admin.describeGroup("workers")).state === "Empty", 15_000, "group empty");
  const committedOf = async () => (await admin.describeGroup("workers")).offsets.map((o) => o.offset);
  const reset = await facade.resetOffsets({ groupId: "workers", topic: TOPIC, earliest: true });
  assert.is(reset.length, 8);
  assert.equal(await committedOf(), Array(8).fill(0));
  await facade.resetOffsets({ groupId: "workers", topic: TOPIC, offset: 3 });
  assert.equal(await committedOf(), Array(8).fill(3));
  const since = Date.now();
  await produce(40, "late");
  const high = (await facade.fetchTopicOffsets(TOPIC)).map((o) => Number(o.high));
  await facade.resetOffsets({ groupId: "workers", topic: TOPIC });
  assert.equal(await committedOf(), high, "latest is the high watermark");
  await facade.resetOffsets({ groupId: "workers", topic: TOPIC, timestamp: since });
  const fromTime = await committedOf();
  assert.is(high.reduce((n, h, i) => n + h - fromTime[i], 0), 40, `reset to ${since} leaves exactly the 40 later records to read (${fromTime} vs ${high})`);

  const out = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, [cliBundlePath(), "groups", "delete", "workers", "--json", "--nats", cluster.natsUrl, "--cluster", "gr"], { timeout: 30_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
    ),
  );
  assert.equal(JSON.parse(out), { deleted: "workers" });
  assert.is((await admin.describeGroup("workers")).state, "Dead");
  const missing = (await facade.deleteGroups(["workers"]).catch((e) => e)) as SkeinError;
  assert.is(missing.code, ErrorCode.GROUP_ID_NOT_FOUND);
});

test("range and roundrobin (eager) in a real group: every member gives everything up before a rebalance, and the layouts are contiguous / dealt", async () => {
  const count = (await admin.meta.getTopic(TOPIC))!.partitions;
  for (const assignor of ["range", "roundrobin"] as const) {
    const group = `eager-${assignor}`;
    const extra = { groupId: group, assignors: [assignor] };
    const a = await startMember(`${assignor}-a`, extra);
    const b = await startMember(`${assignor}-b`, extra);
    const covered = (ms: Member[]) => ms.every((m) => owned(m).length > 0) && ms.flatMap(owned).length === count && new Set(ms.flatMap(owned)).size === count;
    await waitFor(() => covered([a, b]), 20_000, `${assignor}: two members own all ${count} partitions`);
    const before = new Map([a, b].map((m) => [m, owned(m)]));
    const c = await startMember(`${assignor}-c`, extra);
    await waitFor(() => covered([a, b, c]), 20_000, `${assignor}: three members own all partitions`);
    assert.is((await admin.describeGroup(group)).protocol, assignor);
    for (const [m, had] of before) {
      // Eager: the member revoked everything it had before joining the new generation.
      const revoked = m.events.filter((e) => e.type === "group.revoke").flatMap((e) => e.partitions.map((p) => p.partition));
      for (const p of had) assert.ok(revoked.includes(p), `${assignor}: ${m.id} revoked ${p} before the rebalance`);
    }
    const layouts = [a, b, c].map(owned);
    for (const l of layouts) {
      const steps = l.slice(1).map((p, i) => p - l[i]);
      if (assignor === "range") assert.ok(steps.every((d) => d === 1), `range gives contiguous partitions: ${l}`);
      else assert.ok(steps.every((d) => d === 3), `roundrobin deals every third partition: ${l}`);
    }
    for (const m of [a, b, c]) await m.consumer.disconnect();
  }
});

test("a member stuck in eachMessage longer than maxPollInterval is removed and its partitions reassigned", async () => {
  const count = (await admin.meta.getTopic(TOPIC))!.partitions;
  let release!: () => void;
  const stuck = new Promise<void>((r) => (release = r));
  let stuckAt = 0;
  const ok = await startMember("steady", { groupId: "slow-group" });
  await waitFor(() => owned(ok).length === count, 20_000, "first member owns everything");
  const slow = await startMember("stuck", { groupId: "slow-group", maxPollInterval: 1_500 }, async () => {
    stuckAt ||= Date.now();
    await stuck;
  });
  try {
    // The first member committed everything: new records give the second one something to process.
    await waitFor(() => owned(slow).length > 0, 20_000, "the second member got partitions");
    await produce(10 * count, "slow");
    await waitFor(() => stuckAt > 0, 20_000, "the second member is stuck processing");
    const removed = await waitFor(async () => {
      const d = await admin.describeGroup("slow-group");
      return d.state === "Stable" && d.members.length === 1 && d.members[0].assignment.length === count ? Date.now() : 0;
    }, 20_000, "the stuck member removed and its partitions reassigned");
    await waitFor(() => owned(ok).length === count, 10_000, "the steady member owns everything again");
    // Measured, not asserted against 1500 ms: the interval runs from the member's last poll,
    // which comes before eachMessage starts by however long the loaded machine takes. That it
    // was maxPollInterval (heartbeats kept going) shows in the group.leave event awaited below.
    console.log(`  measured: stuck member removed and its partitions reassigned ${removed - stuckAt} ms after eachMessage got stuck (maxPollInterval 1500 ms)`);
  } finally {
    release(); // else disconnect() would wait for the stuck handler forever
  }
  await waitFor(() => slow.events.some((e) => e.type === "group.leave" && e.partitions.length > 0), 10_000, "the stuck member is told it lost its partitions");
  await waitFor(() => owned(slow).length > 0 && owned(ok).length < count, 20_000, "the released member rejoins");
  for (const m of [ok, slow]) await m.consumer.disconnect();
});

test("a subscription change triggers a rebalance", async () => {
  await admin.createTopic("jobs-extra", 2, 3);
  await admin.waitForLeaders("jobs-extra");
  const a = await startMember("sub-a", { groupId: "sub-group" });
  const b = await startMember("sub-b", { groupId: "sub-group" });
  await waitFor(() => owned(a).length > 0 && owned(b).length > 0, 20_000, "both members own partitions");
  const { generation } = await admin.describeGroup("sub-group");
  await b.consumer.subscribe({ topics: [TOPIC, "jobs-extra"], fromBeginning: true });
  const d = await waitFor(async () => {
    const x = await admin.describeGroup("sub-group");
    const extra = x.members.flatMap((m) => m.assignment.filter((tp) => tp.topic === "jobs-extra"));
    return x.state === "Stable" && x.generation > generation && extra.length === 2 ? x : null;
  }, 20_000, "jobs-extra assigned after b subscribed to it");
  const owner = d!.members.find((m) => m.assignment.some((tp) => tp.topic === "jobs-extra"))!;
  assert.ok(b.events.some((e) => e.memberId === owner.memberId), "the only subscriber of jobs-extra owns it");
  for (const m of [a, b]) await m.consumer.disconnect();
});

test.run();
