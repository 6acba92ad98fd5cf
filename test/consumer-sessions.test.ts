// Consumer fetch sessions against a real cluster: a consumer keeps one request in flight per
// leader worker (ConsumerFetchMany) for all its partitions led there, instead of one Fetch per
// partition. A tap on the NATS server sees every request and reply, so each test checks that
// the consumer fetched through sessions only (no Fetch of its own), besides what a user sees:
// every record once and in order per partition, one partition's error, leader move or pause
// leaving the others going, and buffering bounded by maxBufferedBytes.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { connect, type Msg, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { startLocalCluster, type LocalCluster } from "../bin/broker-cmd.js";
import { Skein, type Admin, type Consumer } from "../actors/client/skein.js";
import { decodeEnvelope, EnvelopeKind, type Envelope } from "../protocol/envelope.js";
import { isBatchFrame, splitBatchFrame } from "../protocol/envelope-batch.js";
import { nodeSubjectWildcard } from "../protocol/address.js";
import { tempDir, waitFor, surfaced } from "./helpers.js";

const CLUSTER = "csess";
const data = tempDir("skein-consumer-sessions-");
let cluster: LocalCluster;
let skein: Skein;
let tap: Tap;
let admin: Admin;

/**
 * Counts the consumers' fetch requests on the NATS server, and what their answers weigh. It
 * listens on the brokers' actor subjects one broker at a time: a subscription is a responder,
 * and one on a dead broker's subjects would turn NATS's "no responders" into timeouts.
 */
class Tap {
  /** Consumer Fetch requests (no replica id, not the coordinator's read to the log end). */
  fetches = 0;
  sessionRequests: Array<{ subject: string; partitions: number; full: boolean }> = [];
  /** Every "server session" a ConsumerFetchMany went to, and those a ConsumerSessionClose ended. */
  sessionsSeen = new Set<string>();
  sessionsClosed = new Set<string>();
  /** Bytes of ConsumerFetchMany answers. */
  answerBytes = 0;
  /** The largest ConsumerFetchMany answer, bytes. */
  maxAnswerBytes = 0;
  /** Most ConsumerFetchMany requests of one session outstanding at once. */
  maxOutstanding = 0;
  private readonly outstanding = new Map<string, string>();
  private readonly perServer = new Map<string, number>();
  private readonly brokers = new Map<number, Subscription>();

  constructor(readonly nc: NatsConnection) {
    nc.subscribe("_INBOX.>", {
      callback: (_e, m) => {
        const server = this.outstanding.get(m.subject);
        if (server === undefined) return;
        this.outstanding.delete(m.subject);
        this.perServer.set(server, this.perServer.get(server)! - 1);
        this.answerBytes += m.data.length;
        this.maxAnswerBytes = Math.max(this.maxAnswerBytes, m.data.length);
      },
    });
  }

  watch(broker: number): void {
    this.brokers.set(broker, this.nc.subscribe(nodeSubjectWildcard(CLUSTER, String(broker)), { callback: (_e, m) => this.onRequest(m) }));
  }

  unwatch(broker: number): void {
    this.brokers.get(broker)?.unsubscribe();
    this.brokers.delete(broker);
  }

  private onRequest(m: Msg): void {
    for (const bytes of isBatchFrame(m.data) ? splitBatchFrame(m.data) : [m.data]) {
      let env: Envelope;
      try {
        env = decodeEnvelope(bytes);
      } catch {
        continue; // not an actor message (events, heartbeats)
      }
      if (env.kind !== EnvelopeKind.MESSAGE) continue;
      const body = env.body as { replicaId?: number; upToLogEnd?: boolean; session?: string; partitions?: unknown[]; full?: boolean };
      if (env.type === "Fetch" && body.replicaId === undefined && !body.upToLogEnd) this.fetches++;
      if (env.type === "ConsumerFetchMany" && m.reply) {
        this.sessionRequests.push({ subject: m.subject, partitions: body.partitions!.length, full: body.full! });
        const session = `${m.subject} ${body.session}`;
        this.sessionsSeen.add(session);
        this.outstanding.set(m.reply, session);
        const n = (this.perServer.get(session) ?? 0) + 1;
        this.perServer.set(session, n);
        this.maxOutstanding = Math.max(this.maxOutstanding, n);
      }
      if (env.type === "ConsumerSessionClose") this.sessionsClosed.add(`${m.subject} ${body.session}`);
    }
  }

  reset(): void {
    this.fetches = 0;
    this.sessionRequests = [];
    this.answerBytes = 0;
    this.maxAnswerBytes = 0;
    this.maxOutstanding = Math.max(0, ...this.perServer.values());
  }

  /** What every test expects: the consumer fetched through sessions only, one request at a time per session (two while a newer one supersedes a parked one). */
  assertSessionsOnly(): void {
    assert.is(this.fetches, 0, "no per-partition Fetch from the consumer");
    assert.ok(this.sessionRequests.length > 0, "the consumer fetched through ConsumerFetchMany");
    assert.ok(this.maxOutstanding <= 2, `at most one request (two while superseding) in flight per session, saw ${this.maxOutstanding}`);
  }
}

test.before(surfaced(async () => {
  cluster = await startLocalCluster({ brokers: 2, workers: 1, cluster: CLUSTER, data: data.path });
  skein = new Skein({ clientId: "test", nats: cluster.natsUrl, cluster: CLUSTER });
  // An admin of its own Skein: clients of one Skein share a connection that the last disconnect closes.
  admin = new Skein({ clientId: "test-admin", nats: cluster.natsUrl, cluster: CLUSTER }).admin();
  await admin.connect();
  await waitFor(async () => (await admin.describeCluster()).controller !== null, 15_000, "controller");
  tap = new Tap(await connect({ servers: cluster.natsUrl }));
  for (const id of cluster.brokers.keys()) tap.watch(id);
  await tap.nc.flush();
}));

test.after(async () => {
  await tap?.nc.close();
  await admin?.disconnect();
  await cluster?.stop();
  data.remove();
});

/** Consumers of the running test, disconnected after it whether it passed or not. */
const consumers: Consumer[] = [];
function newConsumer(config: Parameters<Skein["consumer"]>[0]): Consumer {
  const c = skein.consumer(config);
  consumers.push(c);
  return c;
}

/** A new consumer (see newConsumer), connected and assigned `partitions` of `topic` from offset 0. */
async function assignedConsumer(topic: string, partitions: number[], config: Parameters<Skein["consumer"]>[0]): Promise<Consumer> {
  const consumer = newConsumer(config);
  await consumer.connect();
  await consumer.assign(partitions.map((partition) => ({ topic, partition, offset: 0 })));
  return consumer;
}

test.after.each(async () => {
  for (const c of consumers.splice(0)) await c.disconnect().catch(() => undefined);
});

async function createTopic(topic: string, numPartitions: number, replicationFactor: number, configs: Record<string, string> = {}): Promise<void> {
  await admin.createTopics({ topics: [{ topic, numPartitions, replicationFactor, configEntries: Object.entries(configs).map(([name, value]) => ({ name, value })) }] });
}

async function leaderOf(topic: string, partition: number): Promise<number> {
  return (await admin.describeTopics({ topics: [topic] }))[0].partitions[partition].leader;
}

/** Sends `count` records `<partition>:<i>` (i from `from`) to each partition, in sends of `perSend`. */
async function produce(topic: string, partitions: number[], count: number, from = 0, valueBytes = 0, perSend = 50): Promise<void> {
  const producer = skein.producer({ acks: "all", lingerMs: 0 });
  await producer.connect();
  for (const partition of partitions) {
    for (let i = from; i < from + count; i += perSend) {
      const n = Math.min(perSend, from + count - i);
      await producer.send({ topic, messages: Array.from({ length: n }, (_, j) => ({ partition, value: `${partition}:${i + j}:`.padEnd(valueBytes, "x") })) });
    }
  }
  await producer.disconnect();
}

/** Values read per partition, with the offsets they came at. */
type Read = Map<number, Array<{ offset: number; value: string }>>;

async function pollInto(consumer: Consumer, read: Read, maxWaitMs = 200): Promise<void> {
  for (const b of await consumer.poll(maxWaitMs)) {
    const list = read.get(b.batch.partition) ?? [];
    for (const m of b.batch.messages) list.push({ offset: Number(m.offset), value: m.value!.toString().replace(/x+$/, "") });
    read.set(b.batch.partition, list);
  }
}

/** Polls into `read` until each of `partitions` holds at least `count` records. */
async function readAtLeast(consumer: Consumer, read: Read, partitions: number[], count: number, timeoutMs: number, what: string): Promise<void> {
  await waitFor(async () => {
    await pollInto(consumer, read);
    return partitions.every((p) => (read.get(p)?.length ?? 0) >= count);
  }, timeoutMs, what);
}

/** Each partition holds exactly `<partition>:<i>` for i in [0, count) at offset i (plus `base`). */
function assertComplete(read: Read, partitions: number[], count: number, base = 0): void {
  for (const p of partitions) {
    const got = read.get(p) ?? [];
    assert.is(got.length, count, `partition ${p}: every record once`);
    got.forEach((r, i) => {
      if (r.offset !== base + i || r.value !== `${p}:${i}:`) assert.unreachable(`partition ${p} position ${i}: offset ${r.offset} value ${r.value}`);
    });
  }
}

test("many partitions on one leader worker are fetched through one request at a time, records complete and in order", async () => {
  const partitions = [0, 1, 2, 3, 4, 5, 6, 7];
  await createTopic("many", partitions.length, 1);
  await produce("many", partitions, 300);
  const leaders = new Set(await Promise.all(partitions.map((p) => leaderOf("many", p))));
  tap.reset();
  const consumer = await assignedConsumer("many", partitions, { maxWaitTimeInMs: 500 });
  const read: Read = new Map();
  await readAtLeast(consumer, read, partitions, 300, 20_000, "every partition read");
  assertComplete(read, partitions, 300);
  tap.assertSessionsOnly();
  assert.ok(tap.sessionRequests.some((r) => r.partitions >= 2), "a request carried several partitions");

  // Idle: one long poll per session each maxWaitMs, not one per partition (eight here).
  tap.reset();
  const idleMs = 2_000;
  await new Promise((r) => setTimeout(r, idleMs));
  const perSecond = (tap.sessionRequests.length + tap.fetches) / (idleMs / 1000);
  assert.ok(perSecond <= leaders.size * 3, `idle: ${perSecond} requests/s for ${leaders.size} sessions of maxWaitMs 500 (one per partition would be ${2 * partitions.length}/s)`);
  assert.is(tap.fetches, 0, "no per-partition Fetch while idle");

  // Disconnecting ends the consumer's sessions at their servers instead of leaving them to idle out.
  const seen = [...tap.sessionsSeen];
  await consumer.disconnect();
  await waitFor(() => seen.every((s) => tap.sessionsClosed.has(s)), 5_000, `a ConsumerSessionClose for each of ${seen.length} sessions`);
});

test("maxBytes (kafkajs) bounds each answer from a leader worker, and every record still arrives", async () => {
  const partitions = [0, 1, 2, 3];
  await createTopic("bounded", partitions.length, 1);
  // ~300 KB per partition in batches of 50 records of 1 KB: with the default maxBytes (4 MiB)
  // an answer would carry all of a leader worker's partitions at once.
  await produce("bounded", partitions, 300, 0, 1_000);
  tap.reset();
  const maxBytes = 64 * 1024;
  const consumer = await assignedConsumer("bounded", partitions, { maxWaitTimeInMs: 500, maxBytes, maxBytesPerPartition: maxBytes });
  const read: Read = new Map();
  await readAtLeast(consumer, read, partitions, 300, 20_000, "every partition read");
  assertComplete(read, partitions, 300);
  tap.assertSessionsOnly();
  // An answer may pass maxBytes by the one batch that crosses it (a batch is never split), plus its envelope.
  const oneBatch = 50 * 1_100;
  assert.ok(tap.maxAnswerBytes <= maxBytes + oneBatch + 4_096, `largest answer ${tap.maxAnswerBytes} bytes for maxBytes ${maxBytes}`);
});

test("minBytes (kafkajs): an answer gathers records until that many bytes are there; maxWaitTimeInMs answers short of it with what there is", async () => {
  await createTopic("gather", 1, 1);
  tap.reset();
  const minBytes = 40_000;
  const consumer = await assignedConsumer("gather", [0], { maxWaitTimeInMs: 30_000, minBytes });
  await waitFor(() => tap.sessionRequests.length > 0, 10_000, "the consumer's first request");
  // ~11 KB in ten sends of one ~1.1 KB record each: short of minBytes, so nothing comes yet.
  await produce("gather", [0], 10, 0, 1_000, 1);
  const read: Read = new Map();
  const until = Date.now() + 2_000;
  while (Date.now() < until) await pollInto(consumer, read);
  assert.is(read.get(0)?.length ?? 0, 0, "no answer before minBytes (maxWaitTimeInMs is 30 s)");
  // Another ~44 KB: the answer goes once 40 KB are gathered, in one piece.
  await produce("gather", [0], 40, 10, 1_000, 1);
  await readAtLeast(consumer, read, [0], 37, 15_000, "an answer of at least minBytes");
  assert.ok(tap.maxAnswerBytes >= minBytes, `the answer gathered ${tap.maxAnswerBytes} bytes`);
  const got = read.get(0)!;
  got.forEach((r, i) => assert.is(r.value, `0:${i}:`, `record ${i} in order`));
  tap.assertSessionsOnly();

  // A minBytes never reached: each maxWaitTimeInMs answers with what is there.
  await createTopic("trickle", 1, 1);
  const patient = await assignedConsumer("trickle", [0], { maxWaitTimeInMs: 1_000, minBytes: 1_000_000 });
  await produce("trickle", [0], 5);
  const trickle: Read = new Map();
  await readAtLeast(patient, trickle, [0], 5, 15_000, "records short of minBytes, at maxWaitTimeInMs");
  assertComplete(trickle, [0], 5);
});

test("one partition's OFFSET_OUT_OF_RANGE resets it per policy without stalling the others of its session", async () => {
  // Retention moves partition 0's log start past 0; partitions 1 and 2 keep everything.
  await createTopic("mixed", 3, 1, { "segment.bytes": "2048", "retention.bytes": "4096", "retention.check.interval.ms": "100" });
  await produce("mixed", [0], 200, 0, 100);
  await produce("mixed", [1, 2], 10);
  const low = await waitFor(async () => {
    const o = await admin.fetchTopicOffsets("mixed");
    return Number(o.find((x) => x.partition === 0)!.low);
  }, 10_000, "retention to advance partition 0's log start");
  tap.reset();
  const consumer = await assignedConsumer("mixed", [0, 1, 2], { maxWaitTimeInMs: 500 });
  const read: Read = new Map();
  await waitFor(async () => {
    await pollInto(consumer, read);
    return (read.get(1)?.length ?? 0) >= 10 && (read.get(2)?.length ?? 0) >= 10 && (read.get(0)?.length ?? 0) > 0;
  }, 15_000, "all three partitions read");
  // More for the healthy partitions after the reset: still flowing.
  await produce("mixed", [1, 2], 10, 10);
  await waitFor(async () => {
    await pollInto(consumer, read);
    return (read.get(1)?.length ?? 0) >= 20 && (read.get(2)?.length ?? 0) >= 20;
  }, 10_000, "partitions 1 and 2 still read after partition 0's reset");
  assertComplete(read, [1, 2], 20);
  assert.ok(read.get(0)![0].offset >= low, `partition 0 reset to the earliest (>= ${low}), got ${read.get(0)![0].offset}`);
  tap.assertSessionsOnly();
});

test("pausing one partition leaves the others of its session fetching; resume picks it up where it was", async () => {
  await createTopic("paused", 4, 1);
  const partitions = [0, 1, 2, 3];
  await produce("paused", partitions, 20);
  tap.reset();
  const consumer = await assignedConsumer("paused", partitions, { maxWaitTimeInMs: 500 });
  const read: Read = new Map();
  await readAtLeast(consumer, read, partitions, 20, 15_000, "the first records");
  await consumer.pause([{ topic: "paused", partitions: [0] }]);
  await produce("paused", partitions, 20, 20);
  await readAtLeast(consumer, read, [1, 2, 3], 40, 10_000, "the unpaused partitions' new records");
  await pollInto(consumer, read, 300);
  assert.is(read.get(0)!.length, 20, "the paused partition hands out nothing");
  await consumer.resume([{ topic: "paused", partitions: [0] }]);
  await waitFor(async () => {
    await pollInto(consumer, read);
    return (read.get(0)?.length ?? 0) >= 40;
  }, 10_000, "the resumed partition's records");
  assertComplete(read, partitions, 40);
  tap.assertSessionsOnly();
});

test("backpressure: what the sessions deliver while nobody polls stays within maxBufferedBytes plus one answer per partition", async () => {
  const partitions = [0, 1, 2, 3];
  await createTopic("heavy", partitions.length, 1);
  await produce("heavy", partitions, 2_000, 0, 200); // ~450 KB per partition
  tap.reset();
  const maxBufferedBytes = 64 * 1024;
  const maxBytesPerPartition = 16 * 1024;
  const consumer = await assignedConsumer("heavy", partitions, { maxWaitTimeInMs: 500, maxBufferedBytes, maxBytesPerPartition });
  // Nobody polls for a while: fetching stops once the buffer is over its bound.
  await new Promise((r) => setTimeout(r, 1_500));
  const delivered = tap.answerBytes;
  // A batch may exceed maxBytesPerPartition (a fetch returns at least one), and each answer has an envelope.
  const bound = maxBufferedBytes + partitions.length * (maxBytesPerPartition + 16 * 1024);
  assert.ok(delivered > maxBufferedBytes / 2, `something was fetched (${delivered} bytes)`);
  assert.ok(delivered <= bound, `${delivered} bytes delivered while nobody polled, bound ${bound}`);
  const read: Read = new Map();
  await readAtLeast(consumer, read, partitions, 2_000, 30_000, "everything once polled");
  assertComplete(read, partitions, 2_000);
  tap.assertSessionsOnly();
});

test("a leader move (broker killed) moves only its partitions to another session; the others keep going", async () => {
  await createTopic("moving", 4, 2);
  const partitions = [0, 1, 2, 3];
  await produce("moving", partitions, 20);
  const leaders = await Promise.all(partitions.map((p) => leaderOf("moving", p)));
  const victim = leaders[0];
  const moved = partitions.filter((p) => leaders[p] === victim);
  const stayed = partitions.filter((p) => leaders[p] !== victim);
  assert.ok(stayed.length > 0, `leaders ${leaders} all on broker ${victim}: nothing to compare with`);
  tap.reset();
  const consumer = await assignedConsumer("moving", partitions, { maxWaitTimeInMs: 500 });
  const read: Read = new Map();
  await readAtLeast(consumer, read, partitions, 20, 15_000, "the first records");
  tap.unwatch(victim);
  await tap.nc.flush();
  await cluster.brokers.get(victim)!.kill();
  try {
    // The others keep being read while the moved partitions wait for their new leader.
    await produce("moving", stayed, 20, 20);
    await waitFor(async () => {
      await pollInto(consumer, read);
      return stayed.every((p) => (read.get(p)?.length ?? 0) >= 40);
    }, 10_000, "the partitions whose leader stayed");
    await waitFor(async () => (await Promise.all(moved.map((p) => leaderOf("moving", p)))).every((l) => l >= 0 && l !== victim), 30_000, "new leaders");
    await produce("moving", moved, 20, 20);
    await waitFor(async () => {
      await pollInto(consumer, read);
      return moved.every((p) => (read.get(p)?.length ?? 0) >= 40);
    }, 15_000, "the moved partitions from their new leader");
    assertComplete(read, partitions, 40);
    tap.assertSessionsOnly();
  } finally {
    await cluster.startBroker(victim);
    tap.watch(victim);
  }
});

test.run();
