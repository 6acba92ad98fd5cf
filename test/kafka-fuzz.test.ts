// Handler-level fuzzing of the Kafka gateway: requests with valid headers whose bodies follow
// the grammar but carry what fast-check makes up (negative and huge counts, sizes, offsets and
// timeouts, the same entry thousands of times, unknown and invalid names, damaged record
// batches) go to a live broker. Every such request must be answered (a request that decodes
// is never a reason to close: a close here means a handler threw), except acks=0 Produce,
// which Kafka never answers, and long-poll Fetches, which may still be waiting. Afterwards the
// broker is alive and kafkajs, unchanged, still produces and consumes through the gateway.
// Also `skein up`'s ready line, which names every gateway.
process.env.KAFKAJS_NO_PARTITIONER_WARNING = "1";
import * as fc from "fast-check";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Kafka, logLevel } from "kafkajs";
import { startLocalCluster, type LocalCluster } from "../bin/broker-cmd.js";
import { ClusterClient } from "../actors/cluster/admin.js";
import { KafkaWireClient, type WireApi } from "../actors/gateway/wire-client.js";
import { freePortRange } from "../actors/gateway/ports.js";
import { startSkeinProcess } from "../runtime/child-process.js";
import { eventSubject } from "../protocol/address.js";
import { encodeBatch } from "../protocol/record-batch.js";
import { CreateTopics, Fetch, ListOffsets, Metadata, Produce } from "../protocol/kafka/mod.js";
import { isAlive, tempDir, waitFor, surfaced } from "./helpers.js";

const CLUSTER = "kfuzz";
const TOPIC = "fuzz";
const data = tempDir("skein-kafka-fuzz-");
let cluster: LocalCluster;
let client: ClusterClient;
let basePort = 0;

test.before(surfaced(async () => {
  basePort = await freePortRange(1);
  cluster = await startLocalCluster({ brokers: 1, workers: 1, cluster: CLUSTER, data: data.path, kafkaPort: basePort });
  client = await ClusterClient.connect({ nats: { servers: cluster.natsUrl }, cluster: CLUSTER });
  await waitFor(async () => ((await client.status()).controller?.epoch ?? -1) >= 0, 15_000, "an active controller");
  await client.createTopic(TOPIC, 2, 1);
  await client.waitForLeaders(TOPIC);
  for (const p of [0, 1]) await client.produce(TOPIC, p, encodeBatch([{ key: null, value: new Uint8Array(100) }, { key: null, value: null }]), { acks: -1 });
}));

test.after(async () => {
  await client?.close();
  await cluster?.stop();
  data.remove();
});

// Arbitraries ---------------------------------------------------------------------------------

const int32 = fc.oneof(fc.constantFrom(-1, 0, 1, -2, 2_147_483_647, -2_147_483_648), fc.integer({ min: -2_147_483_648, max: 2_147_483_647 }));
const int16 = fc.oneof(fc.constantFrom(-1, 0, 1, 32_767, -32_768), fc.integer({ min: -32_768, max: 32_767 }));
const int8 = fc.integer({ min: -128, max: 127 });
const int64 = fc.oneof(fc.constantFrom(-1, -2, 0, 1, 3, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER), fc.maxSafeInteger());
/** Short waits mostly, so the run stays quick; the extremes too (the gateway caps them). */
const waitMs = fc.oneof(fc.constantFrom(-1, 0, -2_147_483_648, 2_147_483_647), fc.integer({ min: 0, max: 300 }));
const topicName = fc.oneof(fc.constantFrom(TOPIC, TOPIC, "", "nope", "bad name!", "__consumer_offsets", "a".repeat(250), "..", "x".repeat(300)), fc.string({ maxLength: 20 }));
const partitionIndex = fc.oneof(fc.constantFrom(0, 1, 2, -1, 2_147_483_647), int32);

/** An array of random entries, or one entry repeated up to `maxRepeat` times. */
function entries<T>(of: fc.Arbitrary<T>, maxLength: number, maxRepeat: number): fc.Arbitrary<T[]> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.array(of, { maxLength }) },
    { weight: 1, arbitrary: fc.tuple(of, fc.integer({ min: 2, max: maxRepeat })).map(([e, n]) => Array.from({ length: n }, () => e)) },
  );
}

const validBatch = fc
  .record({ count: fc.integer({ min: 1, max: 5 }), size: fc.integer({ min: 0, max: 300 }), producerId: fc.constantFrom(-1, 0, 7, Number.MAX_SAFE_INTEGER), baseSequence: fc.constantFrom(-1, 0, 5, 2_147_483_647), producerEpoch: fc.constantFrom(-1, 0, 32_767) })
  .map(({ count, size, producerId, baseSequence, producerEpoch }) =>
    encodeBatch(Array.from({ length: count }, () => ({ key: null, value: new Uint8Array(size) })), { producerId, baseSequence, producerEpoch }),
  );

/** Valid, damaged (one byte changed, cut short, doubled) and random record sets, or null. */
const records = fc.oneof(
  fc.constant(null),
  validBatch,
  fc.tuple(validBatch, fc.nat(), fc.integer({ min: 0, max: 255 })).map(([b, at, v]) => {
    const c = b.slice();
    c[at % c.length] = v;
    return c;
  }),
  fc.tuple(validBatch, fc.nat()).map(([b, n]) => b.subarray(0, n % b.length)),
  fc.tuple(validBatch, validBatch).map(([a, b]) => Uint8Array.from([...a, ...b])),
  fc.uint8Array({ maxLength: 200 }),
);

const APIS = { Produce, Fetch, ListOffsets, Metadata, CreateTopics } as const;

interface Generated {
  /** A name, not the grammar object, so a counterexample prints short. */
  api: keyof typeof APIS;
  version: number;
  request: unknown;
  /** The protocol allows no answer (acks=0) or a long wait (Fetch with a wait). */
  mayNotAnswer: boolean;
}

const produce = fc
  .record({
    version: fc.integer({ min: 3, max: 7 }),
    transactionalId: fc.oneof(fc.constant(null), fc.constant(null), fc.string({ maxLength: 10 })),
    acks: fc.oneof(fc.constantFrom(-1, 0, 1), int16),
    timeoutMs: fc.oneof(fc.constantFrom(-1, 0, 1, 2_147_483_647), fc.integer({ min: 0, max: 5_000 })),
    topics: entries(fc.record({ name: topicName, partitions: entries(fc.record({ index: partitionIndex, records }), 20, 300) }), 4, 10),
  })
  .map(({ version, ...request }): Generated => ({ api: "Produce", version, request, mayNotAnswer: request.acks === 0 }));

const fetch = fc
  .record({
    version: fc.integer({ min: 4, max: 11 }),
    replicaId: fc.oneof(fc.constant(-1), int32),
    maxWaitMs: waitMs,
    minBytes: int32,
    maxBytes: int32,
    isolationLevel: int8,
    sessionId: fc.oneof(fc.constant(0), int32),
    sessionEpoch: fc.oneof(fc.constant(-1), int32),
    topics: entries(
      fc.record({
        topic: topicName,
        partitions: entries(fc.record({ partition: partitionIndex, currentLeaderEpoch: fc.oneof(fc.constant(-1), int32), fetchOffset: int64, logStartOffset: int64, partitionMaxBytes: int32 }), 20, 3_000),
      }),
      4,
      10,
    ),
    forgottenTopicsData: fc.array(fc.record({ topic: topicName, partitions: fc.array(int32, { maxLength: 5 }) }), { maxLength: 3 }),
    rackId: fc.string({ maxLength: 5 }),
  })
  .map(({ version, ...request }): Generated => ({ api: "Fetch", version, request, mayNotAnswer: request.maxWaitMs !== 0 }));

const listOffsets = fc
  .record({
    version: fc.integer({ min: 0, max: 3 }),
    replicaId: fc.oneof(fc.constant(-1), int32),
    isolationLevel: int8,
    topics: entries(fc.record({ name: topicName, partitions: entries(fc.record({ partitionIndex, timestamp: fc.oneof(fc.constantFrom(-1, -2, -3, 0, Date.now()), int64), maxNumOffsets: int32 }), 20, 3_000) }), 4, 10),
  })
  .map(({ version, ...request }): Generated => ({ api: "ListOffsets", version, request, mayNotAnswer: false }));

const metadata = fc
  .record({ version: fc.integer({ min: 0, max: 6 }), topics: fc.oneof(fc.constant(null), entries(topicName, 20, 3_000)), allowAutoTopicCreation: fc.boolean() })
  .map(({ version, ...request }): Generated => ({ api: "Metadata", version, request, mayNotAnswer: false }));

/** Topics that would really be created get 1 or 2 partitions: the fuzzer tests refusals, not a busy controller. */
const createTopics = fc
  .record({
    version: fc.integer({ min: 0, max: 3 }),
    topics: entries(
      fc.record({
        name: fc.oneof(topicName, fc.constantFrom("fz-a", "fz-b", "fz.c")),
        numPartitions: fc.constantFrom(-1, 0, 1, 2, -7, 10_001, 2_147_483_647, -2_147_483_648),
        replicationFactor: fc.constantFrom(-1, 0, 1, 2, 3, 32_767, -32_768),
        assignments: fc.oneof(fc.constant([]), fc.array(fc.record({ partitionIndex: int32, brokerIds: fc.array(int32, { maxLength: 3 }) }), { maxLength: 3 })),
        configs: fc.array(
          fc.record({
            name: fc.constantFrom("retention.ms", "cleanup.policy", "min.insync.replicas", "max.message.bytes", "segment.bytes", "nope", ""),
            value: fc.oneof(fc.constant(null), fc.constantFrom("-1", "0", "1", "compact", "99999999999999999999", "abc", "")),
          }),
          { maxLength: 4 },
        ),
      }),
      3,
      100,
    ),
    timeoutMs: fc.oneof(fc.constantFrom(-1, 0, 2_147_483_647), fc.integer({ min: 0, max: 5_000 })),
    validateOnly: fc.boolean(),
  })
  .map(({ version, ...request }): Generated => ({ api: "CreateTopics", version, request, mayNotAnswer: false }));

/**
 * How long a request that must be answered may take, ms: above the gateway's own longest
 * bound (CreateTopics: a controller ask retried for 15 s, then up to 30 s for leaders), so a
 * slow controller shows as REQUEST_TIMED_OUT answers, and only a request never answered fails.
 */
const ANSWER_WITHIN_MS = 60_000;
/** How long a request that may stay unanswered is watched for an unexpected close, ms. */
const WATCH_MS = 300;

async function sendOne(g: Generated): Promise<"answered" | "pending" | string> {
  const wire = await KafkaWireClient.connect(basePort);
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const answered = wire.send(APIS[g.api] as WireApi<unknown, unknown>, g.version, g.request).then(
      () => "answered" as const,
      (e: Error) => `closed: ${e.message}`,
    );
    const waited = new Promise<"pending">((resolve) => (timer = setTimeout(() => resolve("pending"), g.mayNotAnswer ? WATCH_MS : ANSWER_WITHIN_MS)));
    return await Promise.race([answered, waited]);
  } finally {
    clearTimeout(timer);
    wire.socket.destroy();
  }
}

test("fuzzed Produce, Fetch, ListOffsets, Metadata and CreateTopics bodies are all answered; the broker keeps serving kafkajs", async () => {
  try {
    await fuzzThenKafkajs();
  } catch (e) {
    // What the broker said and the last requests are the first things to read when this fails.
    throw new Error(`${(e as Error).message}\n--- last requests ---\n${history.slice(-15).join("\n")}\n--- broker 1 output (tail) ---\n${cluster.brokers.get(1)!.output().slice(-6_000)}`);
  }
});

/** Every fuzzed request sent, in order, shortened: printed when the run fails. */
const history: string[] = [];

async function fuzzThenKafkajs(): Promise<void> {
  const pid = cluster.brokers.get(1)!.pid;
  // Actors that throw or workers that die while fuzzing: client input got past the gateway's checks.
  const crashes: string[] = [];
  const events = client.system.nc.subscribe(eventSubject(CLUSTER, "*"), {
    callback: (_err, m) => {
      const e = m.json<{ type: string; address?: string; worker?: number; error?: string }>();
      if (e.type === "actor.restarted" || e.type === "worker.exited") crashes.push(`${e.type} ${e.address ?? `worker ${e.worker}`}${e.error ? `: ${e.error}` : ""}`);
    },
  });
  const seed = Number(process.env.SKEIN_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
  let answered = 0;
  let pending = 0;
  let slowest = { ms: 0, what: "" };
  await fc.assert(
    fc.asyncProperty(fc.oneof(produce, fetch, listOffsets, metadata, createTopics), async (g) => {
      const started = Date.now();
      const outcome = await sendOne(g);
      history.push(`${Date.now() - started} ms ${outcome} ${g.api} v${g.version} ${JSON.stringify(g.request).slice(0, 400)}`);
      if (outcome === "answered" && Date.now() - started > slowest.ms) slowest = { ms: Date.now() - started, what: `${g.api} v${g.version} ${JSON.stringify(g.request).slice(0, 1_000)}` };
      if (outcome === "answered") answered++;
      else if (outcome === "pending" && g.mayNotAnswer) pending++;
      else throw new Error(`${g.api} v${g.version}: ${outcome} after ${Date.now() - started} ms`);
      if (!isAlive(pid)) throw new Error(`broker died after ${g.api} v${g.version}`);
    }),
    // No shrinking: each step is a request to a live broker; the first failure is reported as found.
    { numRuns: 300, seed, endOnFailure: true },
  ).catch((e: Error) => {
    const cause = (e as Error & { cause?: Error }).cause?.message ?? "";
    throw new Error(`seed ${seed} (SKEIN_FUZZ_SEED replays it): ${answered} answered, ${pending} pending; crashes: ${crashes.join("; ") || "none"}; ${cause}\n${e.message.slice(0, 3_000)}`);
  });
  events.unsubscribe();
  console.log(`  crashes while fuzzing: ${crashes.length ? crashes.join("; ") : "none"}`);
  console.log(`  measured: seed ${seed}: ${answered} fuzzed requests answered (slowest ${slowest.what} in ${slowest.ms} ms), ${pending} acks=0 or long-poll left unanswered (allowed)`);
  assert.ok(answered >= 100, `only ${answered} requests ran`);
  assert.ok(isAlive(pid));

  const kafka = new Kafka({ clientId: "after-fuzz", brokers: [`127.0.0.1:${basePort}`], logLevel: logLevel.NOTHING, retry: { retries: 8, initialRetryTime: 100 } });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: "after-fuzz", numPartitions: 2, replicationFactor: 1 }] }).catch((e: Error & { errors?: Error[] }) => {
    throw new Error(`kafkajs createTopics after the fuzzing: ${(e.errors ?? [e]).map((x) => `${x.name}: ${x.message}`).join("; ")}`);
  });
  await admin.disconnect();
  const producer = kafka.producer({ idempotent: true });
  await producer.connect();
  const sent = Array.from({ length: 50 }, (_, i) => ({ key: `k${i}`, value: `v${i}` }));
  await producer.send({ topic: "after-fuzz", messages: sent });
  await producer.disconnect();
  const got = new Set<string>();
  const consumer = kafka.consumer({ groupId: "after-fuzz", sessionTimeout: 6_000, heartbeatInterval: 300, maxWaitTimeInMs: 200 });
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: ["after-fuzz"], fromBeginning: true });
    await consumer.run({ eachMessage: async ({ message }) => void got.add(message.value!.toString()) });
    await waitFor(() => got.size === sent.length, 30_000, "kafkajs reads back every record");
  } finally {
    await consumer.disconnect();
  }
}

test("`skein up` prints every gateway in its cluster ready line, and kafkajs reaches them", async () => {
  const port = await freePortRange(2);
  const dir = tempDir("skein-kafka-up-");
  const up = await startSkeinProcess(["up", "--brokers", "2", "--cluster", "kup", "--data", dir.path, "--kafka-port", String(port)], { ready: /cluster ready/ });
  try {
    assert.match(up.readyLine, new RegExp(` kafka=127\\.0\\.0\\.1:${port},127\\.0\\.0\\.1:${port + 1}(\\s|$)`));
    const kafka = new Kafka({ clientId: "up-line", brokers: [`127.0.0.1:${port + 1}`], logLevel: logLevel.NOTHING, retry: { retries: 8, initialRetryTime: 100 } });
    const admin = kafka.admin();
    await admin.connect();
    try {
      // Brokers register by heartbeat; right after start one may not be listed yet.
      const ports = await waitFor(async () => {
        const d = await admin.describeCluster();
        return d.brokers.length === 2 ? d.brokers.map((b) => b.port).sort() : null;
      }, 15_000, "both brokers in Metadata");
      assert.equal(ports, [port, port + 1]);
    } finally {
      await admin.disconnect();
    }
  } finally {
    assert.is(await up.stop(15_000), 0, up.output());
    dir.remove();
  }
});

test.run();
