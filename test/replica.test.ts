// One broker, driven through the replica actors' own messages: idempotent produce, fetch
// bounds, typed errors on bad input, topic deletion removing data.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { startLocalCluster, type LocalCluster } from "../bin/broker-cmd.js";
import { ClusterClient } from "../actors/cluster/admin.js";
import { ProducerStateTable } from "../actors/cluster/producer-state.js";
import { ReplicaArgs, ReplicaState, partitionDir } from "../actors/cluster/replica.js";
import { FetchServerArgs, FetchServerState } from "../actors/cluster/fetch-server.js";
import { logConfigFor } from "../actors/cluster/shared.js";
import type { MetadataStore } from "../actors/cluster/metadata.js";
import { PartitionLog } from "../actors/log/log.js";
import { EnvelopeKind, decodeEnvelope, encodeEnvelope, localEnvelope } from "../protocol/envelope.js";
import { encodeBatch, readBatchHeader, iterateBatches, decodeRecords } from "../protocol/record-batch.js";
import { ErrorCode, type SkeinError } from "../protocol/errors.js";
import { replicaAddress, type FetchManyResult } from "../protocol/cluster.js";
import { tempDir, waitFor, surfaced } from "./helpers.js";

const enc = new TextEncoder();
const data = tempDir("skein-replica-");
const unitData = tempDir("skein-replica-unit-");
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
  unitData.remove();
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
  const { value: current, revision } = (await client.meta.getPartition("idem", 0))!;
  // A deposed controller's command: newer leader epoch, other leader, older controller epoch.
  const stale = { ...current, leader: 7, leaderEpoch: current.leaderEpoch + 5, controllerEpoch: current.controllerEpoch - 1, revision: revision + 1 };
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

/** A leader replica of `topic`/0 on broker 0 over a log of its own (unit: no actor around it), followed by broker 1. */
async function leaderOf(topic: string, records: number): Promise<ReplicaState> {
  const args = ReplicaArgs.parse({ topic, topicId: `${topic}-id`, partition: 0, broker: 0, dataDir: unitData.path, configs: {} });
  const log = await PartitionLog.open(partitionDir(unitData.path, topic, 0), logConfigFor(args.configs), { topic, partition: 0 });
  for (let i = 0; i < records; i += 100) {
    await log.append(encodeBatch(Array.from({ length: 100 }, (_, j) => ({ value: enc.encode(`${topic}-${i + j}`.padEnd(100, ".")) }))), { leaderEpoch: 0 });
  }
  const r = new ReplicaState(log, {} as MetadataStore, args);
  r.role = "leader";
  r.leaderEpoch = 0;
  r.highWatermark = log.logEndOffset;
  r.isr = new Set([0, 1]);
  r.followers.set(1, { logEndOffset: 0, lastFetchAt: 0, leaderEndAtLastFetch: 0, lastCaughtUpAt: Date.now() });
  return r;
}

/** A replica of its own (broker 0, empty log, no metadata store) driven by direct calls, with a context that does nothing. */
async function unitReplica(topic: string): Promise<{ r: ReplicaState; log: PartitionLog; ctx: never }> {
  const args = ReplicaArgs.parse({ topic, topicId: `${topic}-id`, partition: 0, broker: 0, dataDir: unitData.path, configs: {} });
  const log = await PartitionLog.open(partitionDir(unitData.path, topic, 0), logConfigFor(args.configs), { topic, partition: 0 });
  return { r: new ReplicaState(log, {} as MetadataStore, args), log, ctx: { self: "replica", schedule: () => () => {}, tell: () => {} } as never };
}

test("a partition state older than one the leader applied does not shrink its ISR back: the HW waits for every replica the KV lists (unit)", async () => {
  const { r, log, ctx } = await unitReplica("unit-rev");
  const state = (isr: number[]) => ({ topic: "unit-rev", topicId: "unit-rev-id", partition: 0, leader: 0, leaderEpoch: 1, isr, replicas: [0, 1, 2], controllerEpoch: 1 });
  const fetchAt = (replicaId: number, fromOffset: number) => r.fetch({ fromOffset, maxBytes: 1 << 20, maxWaitMs: 0, replicaId, leaderEpoch: 1, upToLogEnd: false }, ctx);
  try {
    // The leader's own ISR change (or the state it read at start) is revision 10; the watch
    // then delivers revision 9, written before it, when replica 2 was out of the ISR.
    await r.apply(state([0, 1, 2]), 10, ctx);
    await r.apply(state([0, 1]), 9, ctx);
    assert.equal(r.describe().isr, [0, 1, 2], "the older state is dropped");
    await log.append(encodeBatch([{ value: enc.encode("a") }, { value: enc.encode("b") }]), { leaderEpoch: 1 });
    await fetchAt(2, 0);
    await fetchAt(1, 2);
    assert.is(r.highWatermark, 0, "replica 2, in the KV's ISR, has nothing yet");
    // A newer state that shrinks the ISR counts.
    await r.apply(state([0, 1]), 11, ctx);
    assert.is(r.highWatermark, 2, "without replica 2 in the ISR both records are committed");
  } finally {
    await r.close();
  }
});

test("a caught-up follower whose ISR join lost a race joins on a retry, without fetching again (unit)", async () => {
  const { r, log } = await unitReplica("unit-join");
  const state = (isr: number[]) => ({ topic: "unit-join", topicId: "unit-join-id", partition: 0, leader: 0, leaderEpoch: 1, isr, replicas: [0, 1, 2], controllerEpoch: 1 });
  // The KV: its first compare-and-set loses (the controller wrote meanwhile), later ones win.
  let kv = { value: state([0, 1]), revision: 5 };
  let casCalls = 0;
  (r as unknown as { meta: Partial<MetadataStore> }).meta = {
    getPartition: async () => kv,
    casPartition: async (next: typeof kv.value, revision: number) => {
      if (++casCalls === 1 || revision !== kv.revision) return null;
      kv = { value: next, revision: revision + 1 };
      return kv.revision;
    },
  } as Partial<MetadataStore>;
  const ctx = { self: "replica", schedule: () => () => {}, tell: () => {}, deferReply: () => ({ resolve: () => {}, reject: () => {} }) } as never;
  try {
    await r.apply(state([0, 1]), 5, ctx);
    await log.append(encodeBatch([{ value: enc.encode("a") }]), { leaderEpoch: 1 });
    await r.fetch({ fromOffset: 1, maxBytes: 1 << 20, maxWaitMs: 0, replicaId: 1, leaderEpoch: 1, upToLogEnd: false }, ctx);
    // Replica 2 has caught up; its fetch parks here (an idle partition: it will not ask again for minutes).
    assert.is(await r.fetch({ fromOffset: 1, maxBytes: 1 << 20, maxWaitMs: 120_000, replicaId: 2, leaderEpoch: 1, upToLogEnd: false }, ctx), undefined);
    assert.equal(r.describe().isr, [0, 1], "the first try lost");
    // Without the retry the next Tick is the parked fetch's deadline, two minutes away.
    assert.ok(r.tickAt <= Date.now() + 100, `a retry is scheduled (tick in ${r.tickAt - Date.now()} ms)`);
    await r.tick(ctx);
    assert.equal(r.describe().isr, [0, 1, 2]);
    assert.equal(kv.value.isr, [0, 1, 2], "and the KV holds it");
  } finally {
    await r.close();
  }
});

test("a Configure older than the topic record a replica applied is ignored (unit)", async () => {
  const { r, log } = await unitReplica("unit-cfg");
  const configure = (revision: number, bytes: number) => r.configure({ topicId: "unit-cfg-id", configs: { "max.message.bytes": bytes }, revision });
  try {
    configure(5, 2_048); // the record the replica read at start
    configure(3, 4_096); // a watch event written before it, delivered late
    assert.is(log.config.maxMessageBytes, 2_048);
    configure(6, 8_192);
    assert.is(log.config.maxMessageBytes, 8_192);
  } finally {
    await r.close();
  }
});

test("a follower fetching past the leader's log end is refused and not counted as having those offsets; an epoch query from another epoch is refused (unit)", async () => {
  const { r, log, ctx } = await unitReplica("unit-div");
  const fetchAt = (replicaId: number, fromOffset: number) => r.fetch({ fromOffset, maxBytes: 1 << 20, maxWaitMs: 0, replicaId, leaderEpoch: 2, upToLogEnd: false }, ctx);
  const records = (n: number) => encodeBatch(Array.from({ length: n }, (_, i) => ({ value: enc.encode(`r${i}`) })));
  try {
    await r.apply({ topic: "unit-div", topicId: "unit-div-id", partition: 0, leader: 0, leaderEpoch: 2, isr: [0, 1, 2], replicas: [0, 1, 2], controllerEpoch: 1 }, 1, ctx);
    await log.append(records(2), { leaderEpoch: 2 });
    await fetchAt(2, 2);
    // Replica 1 holds 5 records of a log that diverged (it has not truncated yet).
    const refused = await errorOf(fetchAt(1, 5));
    assert.is(refused?.code, ErrorCode.OFFSET_OUT_OF_RANGE);
    await log.append(records(3), { leaderEpoch: 2 });
    await fetchAt(2, 5);
    assert.is(r.highWatermark, 0, "replica 1 never fetched an offset of this log");
    assert.is((await errorOf(Promise.resolve().then(() => r.offsetsForLeaderEpoch(1, 1))))?.code, ErrorCode.FENCED_LEADER_EPOCH);
    assert.is((await errorOf(Promise.resolve().then(() => r.offsetsForLeaderEpoch(1, 3))))?.code, ErrorCode.UNKNOWN_LEADER_EPOCH);
    assert.equal(r.offsetsForLeaderEpoch(2, 2), { epoch: 2, endOffset: 5 });
  } finally {
    await r.close();
  }
});

test("a new leader answers 'latest' only once its HW reached the start of its epoch, so latest never moves backwards (unit, KIP-207)", async () => {
  const { r, log, ctx } = await unitReplica("unit-lo");
  try {
    // Five records copied from the leader of epoch 1 (whose HW was 5); this replica leads epoch 2.
    await log.append(encodeBatch(Array.from({ length: 5 }, (_, i) => ({ value: enc.encode(`r${i}`) }))), { leaderEpoch: 1 });
    r.highWatermark = 3; // what it had learned as a follower
    assert.is((await errorOf(r.listOffset(-1)))?.code, ErrorCode.NOT_LEADER_OR_FOLLOWER, "not the leader yet");
    await r.apply({ topic: "unit-lo", topicId: "unit-lo-id", partition: 0, leader: 0, leaderEpoch: 2, isr: [0, 1], replicas: [0, 1], controllerEpoch: 1 }, 1, ctx);
    const early = await errorOf(r.listOffset(-1));
    assert.is(early?.code, ErrorCode.LEADER_NOT_AVAILABLE);
    assert.ok(early?.retriable, "retriable");
    assert.equal(await r.listOffset(-2), { offset: 0 }, "earliest needs no HW");
    await r.fetch({ fromOffset: 5, maxBytes: 1 << 20, maxWaitMs: 0, replicaId: 1, leaderEpoch: 2, upToLogEnd: false }, ctx);
    assert.equal(await r.listOffset(-1), { offset: 5 });
  } finally {
    await r.close();
  }
});

/** The reply's envelope as the transport writes it, and whether it shares the buffer of `data` (written around it, no copy). */
function replyEnvelope(body: { data: Uint8Array }): { shared: boolean; decoded: { data: Uint8Array } } {
  const env = encodeEnvelope(EnvelopeKind.REPLY_OK, "reply", body);
  return { shared: env.buffer === body.data.buffer, decoded: decodeEnvelope(env).body as { data: Uint8Array } };
}

test("a fetch reply's envelope is written in front of the batches the leader read, not around a copy of them (unit)", async () => {
  const r = await leaderOf("unit-headroom", 1_000);
  try {
    // A consumer's fetch, and a follower's: both read behind room for the reply's envelope.
    for (const replicaId of [undefined, 1]) {
      const result = await r.fetch({ fromOffset: 0, maxBytes: 1024 * 1024, maxWaitMs: 0, replicaId, leaderEpoch: 0, upToLogEnd: false }, {} as never);
      assert.ok(result && result.data.length > 100_000, "batches read");
      const { shared, decoded } = replyEnvelope(result!);
      assert.ok(shared, `no copy of the batches (replicaId ${replicaId})`);
      assert.ok(Buffer.from(decoded.data).equals(result!.data), "the same bytes");
      assert.is([...iterateBatches(decoded.data)].reduce((n, b) => n + b.header.recordCount, 0), 1_000);
    }
  } finally {
    await r.close();
  }
});

test("a fetch server's FetchMany reply is written in front of its data, for one partition and joined partitions (unit)", async () => {
  const leaders = [await leaderOf("unit-fm-a", 300), await leaderOf("unit-fm-b", 500)];
  const byTopic = new Map(leaders.map((r) => [r.args.topic, r]));
  const server = new FetchServerState(FetchServerArgs.parse({ broker: 0 }));
  let answered: Promise<void> = Promise.resolve();
  const parked: { answer: FetchManyResult | null } = { answer: null };
  // What the fetch server's context does, with the same-thread delivery the runtime uses (localEnvelope).
  const ctx = {
    self: "fetch-server",
    ask: async (address: string, _type: string, body: Record<string, unknown>) => {
      const replica = byTopic.get(address.split("/")[1])!;
      const result = await replica.fetch(localEnvelope(EnvelopeKind.MESSAGE, "Fetch", body).body as never, {} as never);
      return localEnvelope(EnvelopeKind.REPLY_OK, "reply", result).body;
    },
    tell: (_to: string, _type: string, body: unknown) => {
      answered = answered.then(() => server.localFetched(localEnvelope(EnvelopeKind.MESSAGE, "LocalFetched", body).body as never, ctx as never));
    },
    deferReply: () => ({ resolve: (v: FetchManyResult) => (parked.answer = v), reject: (e: unknown) => assert.unreachable(String(e)) }),
  };
  let seq = 0;
  const request = (full: boolean, partitions: Array<{ topic: string; partition: number; fetchOffset: number; leaderEpoch: number }>, maxWaitMs: number) =>
    server.fetchMany({ session: "s", instance: "i", seq: ++seq, replicaId: 1, maxWaitMs, maxBytes: 8 * 1024 * 1024, full, partitions, removed: [] }, ctx as never);
  const settle = async () => {
    await waitFor(async () => {
      await answered;
      return [...server.sessions.values()].every((s) => [...s.entries.values()].every((e) => !e.outstanding));
    }, 5_000, "local fetches answered");
  };
  try {
    // One partition ready: its read buffer is the reply's.
    assert.is(request(true, [{ topic: "unit-fm-a", partition: 0, fetchOffset: 0, leaderEpoch: 0 }], 5_000), undefined, "parked");
    await settle();
    assert.ok(parked.answer, "answered when the data came");
    const one = replyEnvelope(parked.answer!);
    assert.ok(one.shared, "one partition: no copy");
    assert.ok(Buffer.from(one.decoded.data).equals(parked.answer!.data), "the same bytes");

    // Both ready at once: joined into one buffer that has room for the envelope too.
    const both = [
      { topic: "unit-fm-a", partition: 0, fetchOffset: 300, leaderEpoch: 0 },
      { topic: "unit-fm-b", partition: 0, fetchOffset: 0, leaderEpoch: 0 },
    ];
    for (const r of leaders) await r.log.append(encodeBatch([{ value: enc.encode(`${r.args.topic}-more`) }]), { leaderEpoch: 0 });
    leaders.forEach((r) => (r.highWatermark = r.log.logEndOffset));
    assert.equal(request(true, both, 0), { results: [], data: new Uint8Array(0) }, "nothing ready yet");
    await settle();
    const joined = request(false, [], 0)!;
    assert.is(joined.results.length, 2);
    const many = replyEnvelope(joined);
    assert.ok(many.shared, "joined partitions: no second copy for the envelope");
    for (const e of joined.results) {
      const records = [...iterateBatches(many.decoded.data.subarray(e.start, e.start + e.length))].reduce((n, b) => n + b.header.recordCount, 0);
      assert.is(records, e.topic === "unit-fm-a" ? 1 : 501, e.topic);
    }
  } finally {
    server.close();
    for (const r of leaders) await r.close();
  }
});

/**
 * A fetch server on broker 0 whose local fetches go straight to `leader`, driven by direct
 * calls: its context records every reply handle in the order made (`replies`) and delivers each
 * LocalFetched `copies` times, in order (`fetched` settles once they are all handled).
 */
function fetchServerOver(leader: ReplicaState, copies = 1) {
  const server = new FetchServerState(FetchServerArgs.parse({ broker: 0 }));
  const h = { server, replies: [] as Array<{ answer: FetchManyResult | null }>, fetched: Promise.resolve() as Promise<void>, ctx: {} as never };
  h.ctx = {
    self: "fetch-server",
    schedule: () => () => {},
    ask: async (_address: string, _type: string, body: Record<string, unknown>) => {
      const result = await leader.fetch(localEnvelope(EnvelopeKind.MESSAGE, "Fetch", body).body as never, {} as never);
      return localEnvelope(EnvelopeKind.REPLY_OK, "reply", result).body;
    },
    tell: (_to: string, _type: string, body: unknown) => {
      for (let c = 0; c < copies; c++) h.fetched = h.fetched.then(() => server.localFetched(localEnvelope(EnvelopeKind.MESSAGE, "LocalFetched", body).body as never, h.ctx));
    },
    deferReply: () => {
      const reply = { answer: null as FetchManyResult | null };
      h.replies.push(reply);
      return { resolve: (v: FetchManyResult) => (reply.answer = v), reject: () => {} };
    },
  } as never;
  return h;
}

/** A consumer session request to `server` for partition 0 of `topic`. */
function consumerRequest(h: ReturnType<typeof fetchServerOver>, topic: string, seq: number, fetchOffset: number) {
  return h.server.consumerFetchMany({ session: "c", instance: "i", seq, maxWaitMs: 5_000, maxBytes: 1 << 20, partitionMaxBytes: 1 << 20, minBytes: 1, full: seq === 1, partitions: [{ topic, partition: 0, fetchOffset, leaderEpoch: -1 }], removed: [] }, h.ctx);
}

test("a fetch server serves each session request once: a copy delivered again neither takes the answer's data nor resets the session (unit)", async () => {
  const leader = await leaderOf("unit-dup", 200);
  const h = fetchServerOver(leader);
  const { server, replies } = h;
  // Reply handles are rejected only when the server closes at the end (request 2 is still parked then).
  const request = (seq: number, fetchOffset: number) => consumerRequest(h, "unit-dup", seq, fetchOffset);
  const settle = () => waitFor(async () => (await h.fetched, [...server.sessions.get("c")!.entries.values()].every((e) => !e.outstanding)), 5_000, "local fetches answered");
  try {
    assert.is(request(1, 0), undefined, "parked until its local fetch answers");
    // The transport delivers request 1 again: no second reply, and the parked one stays.
    assert.is(request(1, 0), undefined);
    await settle();
    await new Promise((resolve) => setImmediate(resolve)); // parked answers go out at the end of the turn
    assert.is(replies.length, 2, "the original's reply and the copy's handle (dropped unanswered)");
    assert.ok(replies[0].answer && replies[0].answer.results.length === 1 && replies[0].answer.data.length > 0, "the original request got the data");
    assert.is(replies[1].answer, null, "the copy got no answer");
    // The consumer goes on from where the answer ended; a late copy of request 1 changes nothing.
    assert.is(request(2, 200), undefined);
    assert.equal(request(1, 0), { results: [], data: new Uint8Array(0) }, "an older request arriving late is answered empty at once");
    assert.is(replies.length, 3, "request 2 stays parked");
    await leader.log.append(encodeBatch([{ value: enc.encode("next") }]), { leaderEpoch: 0 });
    leader.highWatermark = leader.log.logEndOffset;
    assert.equal(server.sessions.get("c")!.entries.get("unit-dup/0")!.fetchOffset, 200, "still at request 2's offset");
    // The consumer stops: only its own instance's goodbye ends the session, answering request 2.
    server.closeSession({ session: "c", instance: "another" });
    assert.ok(server.sessions.has("c"), "another instance's goodbye changes nothing");
    server.closeSession({ session: "c", instance: "i" });
    assert.not.ok(server.sessions.has("c"), "session gone");
    assert.equal(replies[2].answer, { results: [], data: new Uint8Array(0) }, "its parked request answered empty");
  } finally {
    server.close();
    await leader.close();
  }
});

test("a fetch server takes a local fetch's answer once: delivered twice (a duplicate fault), the session's answer holds the data once (unit)", async () => {
  const leader = await leaderOf("unit-twice", 100);
  const h = fetchServerOver(leader, 2);
  const { server, replies } = h;
  try {
    assert.is(consumerRequest(h, "unit-twice", 1, 0), undefined, "parked until its local fetch answers");
    await waitFor(async () => (await h.fetched, replies[0].answer !== null), 5_000, "the parked request answered");
    await h.fetched;
    await new Promise((resolve) => setImmediate(resolve));
    assert.is(replies.length, 1);
    const records = [...iterateBatches(replies[0].answer!.data)].reduce((n, b) => n + b.header.recordCount, 0);
    assert.is(records, 100, "every record once");
    assert.is(server.sessions.get("c")!.bufferedBytes, 0, "nothing counted twice");
  } finally {
    server.close();
    await leader.close();
  }
});

test.run();
