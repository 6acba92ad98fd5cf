// Consumer groups through the Kafka gateway. First the group APIs' codecs against kafkajs's
// own encoders and decoders at every version Skein serves; then kafkajs, unchanged, against a
// 3-broker cluster: two consumers share a topic and rebalance when one leaves and when one
// (in its own process) is SIGKILLed; records cross between Skein's client and kafkajs in both
// directions; kafkajs's commits are what Skein's group admin shows; a JoinGroup parked for a
// rebalance holds up only its own connection; malformed group requests leave everyone served.
process.env.KAFKAJS_NO_PARTITIONER_WARNING = "1";
import { spawn, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import * as fc from "fast-check";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Kafka, logLevel, type Admin, type Consumer, type EachMessagePayload } from "kafkajs";
import { startLocalCluster, type LocalCluster } from "../bin/broker-cmd.js";
import { ClusterClient } from "../actors/cluster/admin.js";
import { Skein } from "../actors/client/skein.js";
import { KafkaWireClient } from "../actors/gateway/wire-client.js";
import { freePortRange } from "../actors/gateway/ports.js";
import { ErrorCode, SkeinError } from "../protocol/errors.js";
import { OFFSETS_TOPIC, partitionForGroup } from "../protocol/groups.js";
import { ApiKey } from "../protocol/kafka/api-keys.js";
import { ApiVersions } from "../protocol/kafka/api-versions.js";
import { DeleteGroups } from "../protocol/kafka/delete-groups.js";
import { DescribeGroups } from "../protocol/kafka/describe-groups.js";
import { KafkaErrorCode, kafkaGroupErrorCode } from "../protocol/kafka/errors.js";
import { FindCoordinator } from "../protocol/kafka/find-coordinator.js";
import { FrameDecoder } from "../protocol/kafka/framing.js";
import { readRequestHeader } from "../protocol/kafka/header.js";
import { Heartbeat } from "../protocol/kafka/heartbeat.js";
import { JoinGroup } from "../protocol/kafka/join-group.js";
import { LeaveGroup } from "../protocol/kafka/leave-group.js";
import { ListGroups } from "../protocol/kafka/list-groups.js";
import { Metadata } from "../protocol/kafka/metadata.js";
import { OffsetCommit } from "../protocol/kafka/offset-commit.js";
import { OffsetFetch } from "../protocol/kafka/offset-fetch.js";
import { KafkaWriter } from "../protocol/kafka/primitives.js";
import { decodeExact, type KafkaType } from "../protocol/kafka/schema.js";
import { SyncGroup } from "../protocol/kafka/sync-group.js";
import { hostile, isAlive, tempDir, waitFor } from "./helpers.js";

const GROUP_APIS = [FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, DescribeGroups, ListGroups, DeleteGroups];

// kafkajs codecs ------------------------------------------------------------------------------

const require = createRequire(import.meta.url);
// kafkajs internals are CommonJS without types: each request module is (args) => request.
type KafkajsRequest = { apiKey: number; apiVersion: number; encode(): Promise<{ buffer: Buffer }> };
const kafkajsRequest = (api: string, version: number) => require(`kafkajs/src/protocol/requests/${api}/v${version}/request`) as (args: unknown) => KafkajsRequest;
const kafkajsResponse = (api: string, version: number) =>
  require(`kafkajs/src/protocol/requests/${api}/v${version}/response`) as { decode(b: Buffer): Promise<unknown>; parse(d: unknown): Promise<unknown> };
const kafkajsFrame = require("kafkajs/src/protocol/request") as (a: { correlationId: number; clientId: string; request: KafkajsRequest }) => Promise<{ buffer: Buffer }>;
const kafkajsVersions = (api: string) => (require(`kafkajs/src/protocol/requests/${api}`) as { versions: string[] }).versions.map(Number);

/** kafkajs → whole frame → header + body decoded with Skein's grammar. */
async function viaKafkajs<T>(api: string, version: number, args: unknown, grammar: KafkaType<T, unknown>): Promise<T> {
  const request = kafkajsRequest(api, version)(args);
  assert.is(request.apiVersion, version);
  const frame = (await kafkajsFrame({ correlationId: 9, clientId: "groups-codec", request })).buffer;
  const decoder = new FrameDecoder(1 << 20, 8);
  decoder.push(frame);
  const body = decoder.next()!;
  const { header, bodyOffset } = readRequestHeader(body);
  assert.is(header.apiKey, request.apiKey);
  return decodeExact(grammar, body, bodyOffset, version);
}

/** Skein's grammar → bytes → kafkajs's decoder and parse (which throws on error codes). */
async function toKafkajs<In>(api: string, version: number, grammar: KafkaType<unknown, In>, value: In): Promise<Record<string, any>> {
  const w = new KafkaWriter();
  grammar.write(w, value, version);
  const r = kafkajsResponse(api, version);
  return (await r.parse(await r.decode(Buffer.from(w.toBytes())))) as Record<string, any>;
}

const versions = (spec: { minVersion: number; maxVersion: number }) => Array.from({ length: spec.maxVersion - spec.minVersion + 1 }, (_, i) => spec.minVersion + i);
const bytes = (s: string) => Buffer.from(s);
const hex = (b: Uint8Array | null) => (b === null ? null : Buffer.from(b).toString("hex"));

test("every group API is served at exactly the versions kafkajs 2.2.4 speaks", () => {
  const kafkajsNames = ["findCoordinator", "joinGroup", "syncGroup", "heartbeat", "leaveGroup", "offsetCommit", "offsetFetch", "describeGroups", "listGroups", "deleteGroups"];
  for (const [i, api] of GROUP_APIS.entries()) {
    const theirs = kafkajsVersions(kafkajsNames[i]);
    assert.equal([api.minVersion, api.maxVersion], [Math.min(...theirs), Math.max(...theirs)], api.name);
  }
});

test("FindCoordinator v0-2, JoinGroup v0-5, SyncGroup v0-3: kafkajs requests decode, Skein answers decode in kafkajs", async () => {
  for (const v of versions(FindCoordinator)) {
    const req = await viaKafkajs("findCoordinator", v, v === 0 ? { groupId: "g1" } : { coordinatorKey: "g1", coordinatorType: 0 }, FindCoordinator.request);
    assert.equal(req, { key: "g1", keyType: 0 });
    const res = await toKafkajs("findCoordinator", v, FindCoordinator.response, { errorCode: 0, errorMessage: null, nodeId: 2, host: "127.0.0.1", port: 19093 });
    assert.equal(res.coordinator, { nodeId: 2, host: "127.0.0.1", port: 19093 }, `v${v}`);
  }
  const subscription = bytes("\x00\x01subscription");
  for (const v of versions(JoinGroup)) {
    const req = await viaKafkajs(
      "joinGroup",
      v,
      { groupId: "g1", sessionTimeout: 6000, rebalanceTimeout: 9000, memberId: "", groupInstanceId: "i-1", protocolType: "consumer", groupProtocols: [{ name: "RoundRobinAssigner", metadata: subscription }] },
      JoinGroup.request,
    );
    assert.is(req.sessionTimeoutMs, 6000);
    assert.is(req.rebalanceTimeoutMs, v >= 1 ? 9000 : -1);
    assert.is(req.groupInstanceId, v >= 5 ? "i-1" : null);
    assert.equal(req.protocols.map((p) => [p.name, hex(p.metadata)]), [["RoundRobinAssigner", hex(subscription)]]);
    const res = await toKafkajs("joinGroup", v, JoinGroup.response, {
      errorCode: 0,
      generationId: 3,
      protocolName: "RoundRobinAssigner",
      leader: "m-1",
      memberId: "m-2",
      members: [{ memberId: "m-1", groupInstanceId: null, metadata: subscription }],
    });
    assert.equal([res.generationId, res.groupProtocol, res.leaderId, res.memberId], [3, "RoundRobinAssigner", "m-1", "m-2"], `v${v}`);
    assert.is(hex(res.members[0].memberMetadata), hex(subscription));
  }
  const assignment = bytes("\x00\x01assignment");
  for (const v of versions(SyncGroup)) {
    const req = await viaKafkajs("syncGroup", v, { groupId: "g1", generationId: 3, memberId: "m-1", groupInstanceId: "i-1", groupAssignment: [{ memberId: "m-2", memberAssignment: assignment }] }, SyncGroup.request);
    assert.equal([req.generationId, req.memberId, req.groupInstanceId], [3, "m-1", v >= 3 ? "i-1" : null]);
    assert.equal(req.assignments.map((a) => [a.memberId, hex(a.assignment)]), [["m-2", hex(assignment)]]);
    const res = await toKafkajs("syncGroup", v, SyncGroup.response, { errorCode: 0, assignment });
    assert.is(hex(res.memberAssignment), hex(assignment), `v${v}`);
  }
});

test("Heartbeat v0-3, LeaveGroup v0-3, OffsetCommit v0-5, OffsetFetch v1-4 through kafkajs", async () => {
  for (const v of versions(Heartbeat)) {
    const req = await viaKafkajs("heartbeat", v, { groupId: "g1", groupGenerationId: 4, memberId: "m-1", groupInstanceId: null }, Heartbeat.request);
    assert.equal(req, { groupId: "g1", generationId: 4, memberId: "m-1", groupInstanceId: null });
    const e = await toKafkajs("heartbeat", v, Heartbeat.response, { errorCode: KafkaErrorCode.REBALANCE_IN_PROGRESS }).catch((x: { type?: string }) => x);
    assert.is((e as { type?: string }).type, "REBALANCE_IN_PROGRESS", `v${v}: kafkajs sees the rebalance`);
  }
  for (const v of versions(LeaveGroup)) {
    const req = await viaKafkajs("leaveGroup", v, v < 3 ? { groupId: "g1", memberId: "m-1" } : { groupId: "g1", members: [{ memberId: "m-1" }] }, LeaveGroup.request);
    assert.equal(v < 3 ? req.memberId : req.members, v < 3 ? "m-1" : [{ memberId: "m-1", groupInstanceId: null }]);
    const res = await toKafkajs("leaveGroup", v, LeaveGroup.response, { errorCode: 0, members: [{ memberId: "m-1", groupInstanceId: null, errorCode: 0 }] });
    assert.is(res.errorCode, 0);
  }
  for (const v of versions(OffsetCommit)) {
    const topics = [{ topic: "t", partitions: [{ partition: 1, offset: "42", metadata: "md" }, { partition: 2, offset: "7" }] }];
    const req = await viaKafkajs("offsetCommit", v, { groupId: "g1", groupGenerationId: 5, memberId: "m-1", retentionTime: -1, topics }, OffsetCommit.request);
    assert.equal([req.generationId, req.memberId], v >= 1 ? [5, "m-1"] : [-1, ""], `v${v}`);
    assert.equal(req.topics[0].partitions.map((p) => [p.partitionIndex, p.committedOffset, p.committedMetadata]), [[1, 42, "md"], [2, 7, null]]);
    const res = await toKafkajs("offsetCommit", v, OffsetCommit.response, { topics: [{ name: "t", partitions: [{ partitionIndex: 1, errorCode: 0 }] }] });
    assert.equal(res.responses, [{ topic: "t", partitions: [{ partition: 1, errorCode: 0 }] }]);
  }
  for (const v of versions(OffsetFetch)) {
    const req = await viaKafkajs("offsetFetch", v, { groupId: "g1", topics: [{ topic: "t", partitions: [{ partition: 0 }, { partition: 3 }] }] }, OffsetFetch.request);
    assert.equal(req.topics, [{ name: "t", partitionIndexes: [0, 3] }]);
    if (v >= 3) assert.is((await viaKafkajs("offsetFetch", v, { groupId: "g1", topics: [] }, OffsetFetch.request)).topics, null, "no topics = all");
    const res = await toKafkajs("offsetFetch", v, OffsetFetch.response, {
      errorCode: 0,
      topics: [{ name: "t", partitions: [{ partitionIndex: 0, committedOffset: 12, metadata: "", errorCode: 0 }, { partitionIndex: 3, committedOffset: -1, metadata: "", errorCode: 0 }] }],
    });
    assert.equal(res.responses[0].partitions.map((p: { offset: string }) => p.offset), ["12", "-1"], `v${v}`);
  }
});

test("DescribeGroups v0-2, ListGroups v0-2, DeleteGroups v0-1 through kafkajs; fuzzed group requests fail only as INVALID_REQUEST", async () => {
  for (const v of versions(DescribeGroups)) {
    assert.equal((await viaKafkajs("describeGroups", v, { groupIds: ["a", "b"] }, DescribeGroups.request)).groups, ["a", "b"]);
    const res = await toKafkajs("describeGroups", v, DescribeGroups.response, {
      groups: [
        {
          errorCode: 0,
          groupId: "a",
          groupState: "Stable",
          protocolType: "consumer",
          protocolData: "RoundRobinAssigner",
          members: [{ memberId: "m-1", clientId: "c", clientHost: "", memberMetadata: bytes("md"), memberAssignment: bytes("as") }],
        },
      ],
    });
    const g = res.groups[0];
    assert.equal([g.groupId, g.state, g.protocol, g.members[0].memberAssignment.toString()], ["a", "Stable", "RoundRobinAssigner", "as"], `v${v}`);
  }
  for (const v of versions(ListGroups)) {
    await viaKafkajs("listGroups", v, undefined, ListGroups.request);
    const res = await toKafkajs("listGroups", v, ListGroups.response, { errorCode: 0, groups: [{ groupId: "a", protocolType: "consumer" }] });
    assert.equal(res.groups, [{ groupId: "a", protocolType: "consumer" }]);
  }
  for (const v of versions(DeleteGroups)) {
    assert.equal((await viaKafkajs("deleteGroups", v, ["a", "b"], DeleteGroups.request)).groupsNames, ["a", "b"]);
    const res = await toKafkajs("deleteGroups", v, DeleteGroups.response, { throttleTimeMs: 0, results: [{ groupId: "a", errorCode: KafkaErrorCode.NON_EMPTY_GROUP }] });
    assert.is(res.results[0].error.type, "NON_EMPTY_GROUP");
  }
  fc.assert(
    fc.property(fc.constantFrom(...GROUP_APIS), fc.integer({ min: 0, max: 6 }), fc.uint8Array({ maxLength: 200 }), (api, version, body) => {
      try {
        decodeExact(api.request as KafkaType<unknown, unknown>, body, 0, version);
      } catch (e) {
        assert.instance(e, SkeinError);
        assert.is((e as SkeinError).code, ErrorCode.INVALID_REQUEST);
      }
    }),
    { numRuns: 3_000 },
  );
});

test("group errors: an unreachable coordinator is NOT_COORDINATOR, group conditions keep their Kafka names", () => {
  for (const code of [ErrorCode.ACTOR_NOT_FOUND, ErrorCode.COORDINATOR_NOT_AVAILABLE, ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, ErrorCode.NOT_COORDINATOR]) {
    assert.is(kafkaGroupErrorCode(new SkeinError(code, "x")), KafkaErrorCode.NOT_COORDINATOR, code);
  }
  const named: Array<[string, number]> = [
    [ErrorCode.ILLEGAL_GENERATION, 22],
    [ErrorCode.INCONSISTENT_GROUP_PROTOCOL, 23],
    [ErrorCode.INVALID_GROUP_ID, 24],
    [ErrorCode.UNKNOWN_MEMBER_ID, 25],
    [ErrorCode.REBALANCE_IN_PROGRESS, 27],
    [ErrorCode.NON_EMPTY_GROUP, 68],
    [ErrorCode.GROUP_ID_NOT_FOUND, 69],
    [ErrorCode.FENCED_INSTANCE_ID, 82],
  ];
  for (const [code, kafka] of named) assert.is(kafkaGroupErrorCode(new SkeinError(code as ErrorCode, "x")), kafka, code);
});

// A real cluster -------------------------------------------------------------------------------

const CLUSTER = "kgr";
const TOPIC = "shared";
const PARTITIONS = 6;
const data = tempDir("skein-kafka-groups-");
const root = new URL("../..", import.meta.url).pathname;
let cluster: LocalCluster;
let client: ClusterClient;
let kafka: Kafka;
let admin: Admin;
let basePort = 0;
const children = new Set<ChildProcess>();


test.before(async () => {
  basePort = await freePortRange(3);
  cluster = await startLocalCluster({ brokers: 3, workers: 1, cluster: CLUSTER, data: data.path, kafkaPort: basePort }, { extraBrokerArgs: ["--offsets-partitions", "6"] });
  client = await ClusterClient.connect({ nats: { servers: cluster.natsUrl }, cluster: CLUSTER });
  await waitFor(async () => ((await client.status()).controller?.epoch ?? -1) >= 0, 15_000, "an active controller");
  kafka = new Kafka({ clientId: "kafka-groups-test", brokers: [`127.0.0.1:${basePort}`], logLevel: logLevel.NOTHING, retry: { retries: 10, initialRetryTime: 100 } });
  admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: PARTITIONS, replicationFactor: 3 }] });
});

test.after(async () => {
  for (const c of children) c.kill("SIGKILL");
  await admin?.disconnect();
  await client?.close();
  await cluster?.stop();
  data.remove();
});

interface Member {
  consumer: Consumer;
  /** Partitions of TOPIC from the latest GROUP_JOIN. */
  partitions: number[];
  /** "partition/offset" of every record handed to eachMessage. */
  seen: string[];
}

async function startMember(groupId: string, onMessage: (p: EachMessagePayload) => void = () => undefined): Promise<Member> {
  const consumer = kafka.consumer({ groupId, sessionTimeout: 6_000, rebalanceTimeout: 10_000, heartbeatInterval: 300, maxWaitTimeInMs: 200 });
  const m: Member = { consumer, partitions: [], seen: [] };
  consumer.on(consumer.events.GROUP_JOIN, (e) => (m.partitions = [...(e.payload.memberAssignment[TOPIC] ?? [])].sort()));
  await consumer.connect();
  await consumer.subscribe({ topics: [TOPIC], fromBeginning: true });
  await consumer.run({
    eachMessage: async (p) => {
      m.seen.push(`${p.partition}/${p.message.offset}`);
      onMessage(p);
    },
  });
  return m;
}

/** True when the members' partitions are disjoint, cover the topic, and each has some. */
function shared(...members: Array<{ partitions: number[] }>): boolean {
  const all = members.flatMap((m) => m.partitions).sort();
  return members.every((m) => m.partitions.length > 0) && all.join() === Array.from({ length: PARTITIONS }, (_, i) => i).join();
}

async function produce(prefix: string, count: number): Promise<void> {
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic: TOPIC, messages: Array.from({ length: count }, (_, i) => ({ key: `${prefix}-${i}`, value: `${prefix}-${i}` })) });
  await producer.disconnect();
}

test("FindCoordinator names the gateway of the broker leading the group's __consumer_offsets partition, from every gateway", async () => {
  for (const port of [basePort, basePort + 1, basePort + 2]) {
    const wire = await KafkaWireClient.connect(port);
    try {
      const v = await wire.send(ApiVersions, 2, {});
      const served = new Map(v.apiKeys.map((k) => [k.apiKey, [k.minVersion, k.maxVersion]]));
      for (const api of GROUP_APIS) assert.equal(served.get(api.apiKey), [api.minVersion, api.maxVersion], api.name);
      const found = await wire.send(FindCoordinator, 2, { key: "g-find", keyType: 0 });
      assert.is(found.errorCode, 0);
      const leader = (await client.describeTopic(OFFSETS_TOPIC)).partitions[partitionForGroup("g-find", PARTITIONS)].leader;
      assert.equal([found.nodeId, found.host, found.port], [leader, "127.0.0.1", basePort + leader - 1], `asked on ${port}`);
      assert.is((await wire.send(FindCoordinator, 1, { key: "g-find", keyType: 1 })).errorCode, KafkaErrorCode.INVALID_REQUEST, "no transaction coordinator");
      assert.is((await wire.send(FindCoordinator, 0, { key: "bad group!" })).errorCode, KafkaErrorCode.INVALID_GROUP_ID);
    } finally {
      await wire.close();
    }
  }
});

test("two kafkajs consumers share the partitions; when one disconnects the other takes them all", async () => {
  const a = await startMember("g-share");
  const b = await startMember("g-share");
  await waitFor(() => shared(a, b), 20_000, "both members with disjoint partitions covering the topic");
  await produce("first", 60);
  await waitFor(() => a.seen.length + b.seen.length >= 60, 15_000, "the first 60 records");
  assert.ok(a.seen.length > 0 && b.seen.length > 0, `both consumed (${a.seen.length} + ${b.seen.length})`);
  assert.is(new Set([...a.seen, ...b.seen]).size, a.seen.length + b.seen.length, "no record went to both");
  const leftAt = Date.now();
  await b.consumer.disconnect();
  await waitFor(() => a.partitions.length === PARTITIONS, 15_000, "the remaining member takes every partition");
  console.log(`  measured: clean leave -> survivor owns all ${PARTITIONS} partitions ${Date.now() - leftAt} ms later`);
  const before = a.seen.length;
  await produce("second", 30);
  await waitFor(() => a.seen.length >= before + 30, 15_000, "the survivor reads the new records");
  await a.consumer.disconnect();
});

/** A kafkajs consumer in its own process (CommonJS, resolved from the repo): prints its partitions on every join. */
const CHILD_MEMBER = `
const { Kafka, logLevel } = require("kafkajs");
const kafka = new Kafka({ clientId: "doomed", brokers: [process.env.BROKER], logLevel: logLevel.NOTHING });
const consumer = kafka.consumer({ groupId: process.env.GROUP, sessionTimeout: 4000, rebalanceTimeout: 10000, heartbeatInterval: 300, maxWaitTimeInMs: 200 });
consumer.on(consumer.events.GROUP_JOIN, (e) => console.log(JSON.stringify(e.payload.memberAssignment[process.env.TOPIC] || [])));
(async () => {
  await consumer.connect();
  await consumer.subscribe({ topics: [process.env.TOPIC], fromBeginning: true });
  await consumer.run({ eachMessage: async () => {} });
})().catch((e) => { console.error(e); process.exit(1); });
`;

test("a kafkajs consumer SIGKILLed in its own process: after its session times out the survivor takes its partitions", async () => {
  const survivor = await startMember("g-kill");
  await waitFor(() => survivor.partitions.length === PARTITIONS, 15_000, "the first member owns everything");
  const child = spawn(process.execPath, ["-e", CHILD_MEMBER], {
    cwd: root,
    env: { ...process.env, BROKER: `127.0.0.1:${basePort + 1}`, GROUP: "g-kill", TOPIC, KAFKAJS_NO_PARTITIONER_WARNING: "1" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.add(child);
  const doomed = { partitions: [] as number[] };
  child.stdout!.on("data", (d: Buffer) => {
    for (const line of d.toString().split("\n").filter(Boolean)) doomed.partitions = (JSON.parse(line) as number[]).sort();
  });
  await waitFor(() => shared(survivor, doomed), 20_000, "the child process shares the partitions");
  const killedAt = Date.now();
  child.kill("SIGKILL");
  await waitFor(() => survivor.partitions.length === PARTITIONS, 20_000, "the survivor takes every partition after the session timeout");
  const ms = Date.now() - killedAt;
  console.log(`  measured: member SIGKILLed (session timeout 4000 ms) -> survivor owns all ${PARTITIONS} partitions ${ms} ms later`);
  assert.ok(ms >= 3_000, `rebalanced ${ms} ms after the kill: too early for a session timeout of 4000 ms`);
  children.delete(child);
  await survivor.consumer.disconnect();
});

const text = (b: Buffer | Uint8Array | null | undefined) => (b ? Buffer.from(b).toString() : null);

test("records from Skein's producer reach kafkajs with headers and null keys; kafkajs's commits show in describeGroup", async () => {
  await client.createTopic("native-out", 3, 3);
  await client.waitForLeaders("native-out");
  const skein = new Skein({ clientId: "native", nats: cluster.natsUrl, cluster: CLUSTER });
  const producer = skein.producer();
  await producer.connect();
  const sent = Array.from({ length: 30 }, (_, i) => ({ key: i % 3 === 0 ? null : `k${i}`, value: `v${i}`, headers: { n: String(i), src: "skein" } }));
  await producer.send({ topic: "native-out", messages: sent });
  await producer.disconnect();
  const got = new Map<string, { key: string | null; headers: Record<string, string | null> }>();
  const consumer = kafka.consumer({ groupId: "g-native", sessionTimeout: 6_000, heartbeatInterval: 300, maxWaitTimeInMs: 200 });
  await consumer.connect();
  await consumer.subscribe({ topics: ["native-out"], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      const headers = Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, text(v as Buffer)]));
      got.set(text(message.value)!, { key: text(message.key), headers });
    },
  });
  try {
    await waitFor(() => got.size === sent.length, 20_000, "kafkajs reads every record");
    for (const [i, m] of sent.entries()) assert.equal(got.get(`v${i}`), { key: m.key, headers: m.headers }, `record v${i}`);
    const total = async () => (await client.describeGroup("g-native")).offsets.reduce((n, o) => n + o.offset, 0);
    await waitFor(async () => (await total()) === sent.length, 15_000, "kafkajs's commits cover every record");
    const d = await client.describeGroup("g-native");
    assert.is(d.state, "Stable");
    assert.is(d.members.length, 1);
    assert.is(d.protocolType, "consumer");
    assert.equal(d.members[0].assignment.map((tp) => tp.partition).sort(), d.offsets.map((o) => o.partition).sort(), "the kafkajs member's partitions decode from Kafka's assignment format");
    for (const o of d.offsets) assert.equal([o.topic, o.offset, o.lag], ["native-out", o.highWatermark, 0], `partition ${o.partition}`);
  } finally {
    await consumer.disconnect();
  }
});

test("records from kafkajs reach Skein's consumer with headers and null keys", async () => {
  await admin.createTopics({ topics: [{ topic: "kafkajs-out", numPartitions: 2, replicationFactor: 3 }] });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const sent = Array.from({ length: 20 }, (_, i) => ({ key: i % 4 === 0 ? null : `k${i}`, value: `v${i}`, headers: { n: String(i) } }));
  await producer.send({ topic: "kafkajs-out", messages: sent });
  await producer.disconnect();
  const skein = new Skein({ clientId: "reader", nats: cluster.natsUrl, cluster: CLUSTER });
  const consumer = skein.consumer();
  const got = new Map<string, { key: string | null; headers: Record<string, string | null> }>();
  await consumer.connect();
  await consumer.subscribe({ topics: ["kafkajs-out"], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      got.set(text(message.value)!, { key: text(message.key), headers: Object.fromEntries(Object.entries(message.headers).map(([k, v]) => [k, text(v)])) });
    },
  });
  try {
    await waitFor(() => got.size === sent.length, 15_000, "Skein reads every record");
    for (const [i, m] of sent.entries()) assert.equal(got.get(`v${i}`), { key: m.key, headers: m.headers }, `record v${i}`);
  } finally {
    await consumer.disconnect();
  }
});

const PROTOCOLS = [{ name: "opaque", metadata: Uint8Array.of(0, 1, 2, 255) }];

function joinRequest(memberId: string) {
  return { groupId: "g-park", sessionTimeoutMs: 10_000, rebalanceTimeoutMs: 5_000, memberId, groupInstanceId: null, protocolType: "consumer", protocols: PROTOCOLS };
}

test("a JoinGroup parked for a rebalance holds up only its own connection; metadata and assignments pass byte for byte", async () => {
  const [a, b, c] = await Promise.all([KafkaWireClient.connect(basePort), KafkaWireClient.connect(basePort + 1), KafkaWireClient.connect(basePort)]);
  try {
    const first = await a.send(JoinGroup, 5, joinRequest(""));
    assert.is(first.errorCode, 0);
    assert.is(first.leader, first.memberId, "the only member leads");
    assert.equal(first.members.map((m) => hex(m.metadata)), [hex(PROTOCOLS[0].metadata)]);
    const mine = Uint8Array.of(9, 8, 7);
    const synced = await a.send(SyncGroup, 3, { groupId: "g-park", generationId: first.generationId, memberId: first.memberId, groupInstanceId: null, assignments: [{ memberId: first.memberId, assignment: mine }] });
    assert.equal([synced.errorCode, hex(synced.assignment)], [0, hex(mine)]);
    // b joins: its answer waits until a has rejoined.
    let bAnswered = false;
    const bJoin = b.send(JoinGroup, 5, joinRequest("")).finally(() => (bAnswered = true));
    await waitFor(async () => (await a.send(Heartbeat, 3, { groupId: "g-park", generationId: first.generationId, memberId: first.memberId, groupInstanceId: null })).errorCode === KafkaErrorCode.REBALANCE_IN_PROGRESS, 5_000, "a learns of the rebalance");
    const started = Date.now();
    const m = await c.send(Metadata, 6, { topics: [TOPIC] });
    assert.is(m.topics[0].errorCode, 0);
    assert.ok(Date.now() - started < 1_000, "another connection to the same gateway is answered at once");
    assert.not.ok(bAnswered, "b's join is still parked");
    const again = await a.send(JoinGroup, 5, joinRequest(first.memberId));
    const second = await bJoin;
    assert.equal([again.errorCode, second.errorCode], [0, 0]);
    assert.is(second.generationId, first.generationId + 1);
    assert.equal([again.leader, second.leader], [first.memberId, first.memberId], "the leader stays");
    assert.equal(again.members.map((x) => [x.memberId, hex(x.metadata)]).sort(), [first.memberId, second.memberId].map((id) => [id, hex(PROTOCOLS[0].metadata)]).sort());
    assert.equal(second.members, [], "only the leader gets the members");
    const theirs = Uint8Array.of(1, 2, 3, 4, 5);
    const [syncA, syncB] = await Promise.all([
      a.send(SyncGroup, 3, { groupId: "g-park", generationId: again.generationId, memberId: first.memberId, groupInstanceId: null, assignments: [{ memberId: first.memberId, assignment: mine }, { memberId: second.memberId, assignment: theirs }] }),
      b.send(SyncGroup, 0, { groupId: "g-park", generationId: second.generationId, memberId: second.memberId, groupInstanceId: null, assignments: [] }),
    ]);
    assert.equal([hex(syncA.assignment), hex(syncB.assignment)], [hex(mine), hex(theirs)]);
    // Stale generations and unknown members are fenced with Kafka's codes.
    assert.is((await b.send(Heartbeat, 0, { groupId: "g-park", generationId: first.generationId, memberId: second.memberId })).errorCode, KafkaErrorCode.ILLEGAL_GENERATION);
    assert.is((await b.send(Heartbeat, 1, { groupId: "g-park", generationId: second.generationId, memberId: "nobody" })).errorCode, KafkaErrorCode.UNKNOWN_MEMBER_ID);
    const stale = await b.send(OffsetCommit, 2, { groupId: "g-park", generationId: first.generationId, memberId: second.memberId, retentionTimeMs: -1, topics: [{ name: TOPIC, partitions: [{ partitionIndex: 0, committedOffset: 1, committedMetadata: null }] }] });
    assert.is(stale.topics[0].partitions[0].errorCode, KafkaErrorCode.ILLEGAL_GENERATION);
    const mixed = await b.send(OffsetCommit, 5, {
      groupId: "g-park",
      generationId: second.generationId,
      memberId: second.memberId,
      topics: [
        { name: TOPIC, partitions: [{ partitionIndex: 1, committedOffset: 5, committedMetadata: "m" }, { partitionIndex: 99, committedOffset: 1, committedMetadata: null }] },
        { name: "no-such-topic", partitions: [{ partitionIndex: 0, committedOffset: 1, committedMetadata: null }] },
      ],
    });
    assert.equal(mixed.topics.flatMap((t) => t.partitions.map((p) => [t.name, p.partitionIndex, p.errorCode])), [
      [TOPIC, 1, 0],
      [TOPIC, 99, KafkaErrorCode.UNKNOWN_TOPIC_OR_PARTITION],
      ["no-such-topic", 0, KafkaErrorCode.UNKNOWN_TOPIC_OR_PARTITION],
    ]);
    const fetched = await c.send(OffsetFetch, 1, { groupId: "g-park", topics: [{ name: TOPIC, partitionIndexes: [1, 2] }] });
    assert.equal(fetched.topics[0].partitions.map((p) => [p.partitionIndex, p.committedOffset, p.metadata]), [[1, 5, "m"], [2, -1, ""]]);
    const leftA = await a.send(LeaveGroup, 3, { groupId: "g-park", members: [{ memberId: first.memberId, groupInstanceId: null }, { memberId: "ghost", groupInstanceId: null }] });
    assert.equal([leftA.errorCode, leftA.members.map((x) => x.errorCode)], [0, [0, KafkaErrorCode.UNKNOWN_MEMBER_ID]]);
    assert.is((await b.send(LeaveGroup, 0, { groupId: "g-park", memberId: second.memberId })).errorCode, 0);
    const described = await c.send(DescribeGroups, 2, { groups: ["g-park"] });
    assert.equal([described.groups[0].groupState, described.groups[0].members], ["Empty", []]);
  } finally {
    await Promise.all([a.close(), b.close(), c.close()]);
  }
});


/** A request frame: size, header v1 (client id null), body. */
function frame(apiKey: number, apiVersion: number, body: Uint8Array): Uint8Array {
  const out = Buffer.alloc(14 + body.length);
  out.writeInt32BE(10 + body.length, 0);
  out.writeInt16BE(apiKey, 4);
  out.writeInt16BE(apiVersion, 6);
  out.writeInt32BE(7, 8);
  out.writeInt16BE(-1, 12);
  out.set(body, 14);
  return out;
}

test("malformed group requests close only their own connection; bad values get Kafka errors; the gateway keeps serving groups", async () => {
  const join = new KafkaWriter();
  JoinGroup.request.write(join, joinRequest(""), 5);
  const whole = join.toBytes();
  const random = (n: number) => Uint8Array.from({ length: n }, () => Math.floor(Math.random() * 256));
  const keys = GROUP_APIS.map((api) => api.apiKey).filter((k) => k !== ApiKey.ListGroups); // ListGroups has no body to break
  const closes = await Promise.all([
    hostile(basePort, frame(ApiKey.JoinGroup, 5, whole.subarray(0, whole.length - 3))), // truncated
    hostile(basePort, frame(ApiKey.JoinGroup, 6, whole)), // a version Skein does not serve
    hostile(basePort + 1, frame(ApiKey.SyncGroup, 3, Uint8Array.of(0, 4, 0x67, 0x2d, 0x70, 0x61, 0x7f, 0xff, 0xff, 0xff))), // array count with no elements
    hostile(basePort + 2, frame(ApiKey.OffsetCommit, 2, random(5))),
    ...Array.from({ length: 30 }, (_, i) => hostile(basePort + (i % 3), frame(keys[i % keys.length], i % 4, random(3 + i * 7)))),
  ]);
  for (const [i, c] of closes.slice(0, 4).entries()) assert.is(c, "closed", `malformed request ${i} was not refused`);
  const wire = await KafkaWireClient.connect(basePort + 2);
  try {
    const bad = await wire.send(JoinGroup, 1, { ...joinRequest(""), groupId: "no spaces!" });
    assert.is(bad.errorCode, KafkaErrorCode.INVALID_GROUP_ID);
    assert.is((await wire.send(JoinGroup, 2, { ...joinRequest(""), sessionTimeoutMs: 0 })).errorCode, KafkaErrorCode.INVALID_SESSION_TIMEOUT);
    assert.is((await wire.send(JoinGroup, 3, { ...joinRequest(""), protocols: [] })).errorCode, KafkaErrorCode.INCONSISTENT_GROUP_PROTOCOL);
    assert.is((await wire.send(SyncGroup, 1, { groupId: "never-joined", generationId: 1, memberId: "m", assignments: [] })).errorCode, KafkaErrorCode.UNKNOWN_MEMBER_ID);
    assert.equal((await wire.send(DeleteGroups, 1, { groupsNames: ["never-joined", "bad id!"] })).results.map((r) => r.errorCode), [KafkaErrorCode.GROUP_ID_NOT_FOUND, KafkaErrorCode.INVALID_GROUP_ID]);
  } finally {
    await wire.close();
  }
  for (const b of cluster.brokers.values()) assert.ok(isAlive(b.pid), `broker pid ${b.pid} died`);
  // kafkajs's group still works on every gateway afterwards.
  const member = await startMember("g-after");
  await waitFor(() => member.partitions.length === PARTITIONS, 15_000, "a new group forms after the malformed requests");
  await member.consumer.disconnect();
});

test("kafkajs admin: listGroups once per group, describeGroups, fetchOffsets, setOffsets and deleteGroups", async () => {
  const { groups } = await admin.listGroups();
  const ids = groups.map((g) => g.groupId).sort();
  assert.equal(ids, [...new Set(ids)], "each group is listed by one gateway only");
  for (const g of ["g-share", "g-kill", "g-native", "g-park", "g-after"]) assert.ok(ids.includes(g), `${g} is listed`);
  const described = await admin.describeGroups(["g-native", "g-unknown"]);
  // kafkajs asks each group's coordinator separately: the answers come back in any order.
  assert.equal(described.groups.map((g) => [g.groupId, g.state]).sort(), [["g-native", "Empty"], ["g-unknown", "Dead"]]);
  const offsets = await admin.fetchOffsets({ groupId: "g-native", topics: ["native-out"] });
  const native = await client.describeGroup("g-native");
  assert.equal(
    offsets[0].partitions.map((p) => [p.partition, Number(p.offset)]).sort(),
    native.offsets.map((o) => [o.partition, o.offset]).sort(),
    "kafkajs and Skein see the same committed offsets",
  );
  await admin.setOffsets({ groupId: "g-native", topic: "native-out", partitions: [{ partition: 0, offset: "1" }] });
  assert.is((await client.describeGroup("g-native")).offsets.find((o) => o.partition === 0)!.offset, 1);
  const busy = await startMember("g-busy");
  await waitFor(() => busy.partitions.length === PARTITIONS, 15_000, "g-busy has a member");
  // kafkajs reports the groups it could not delete.
  const refused = await admin.deleteGroups(["g-busy", "g-native"]).then(
    () => [],
    (e: { groups?: Array<{ groupId: string; errorCode: number }> }) => e.groups ?? [],
  );
  assert.equal(refused.map((r) => [r.groupId, r.errorCode]), [["g-busy", KafkaErrorCode.NON_EMPTY_GROUP]]);
  await busy.consumer.disconnect();
  assert.is((await client.describeGroup("g-native")).state, "Dead");
  assert.not.ok((await client.listGroups()).some((g) => g.groupId === "g-native"));
});

test.run();
