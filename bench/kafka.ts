// The Kafka gateway next to Skein's own clients, in the same run on the same 3-broker cluster:
//   produce: kafkajs 2.2.4 (unchanged, acks=all, keyed records, 100 per send, 8 sends in
//            flight) through the gateways vs Skein's producer (Skein.producer(), acks=all,
//            same records, same window); plus raw Kafka Produce requests carrying
//            Skein-encoded batches through the gateways (one request per leader per send, like
//            kafkajs) vs ClusterClient.produce with the same batches, which separates the
//            gateway's cost from the clients';
//   consume: the topic Skein's producer wrote, read whole by a kafkajs consumer through the
//            gateways vs Skein's consumer: each a group of one, eachBatch, fromBeginning;
//   read:    the same topic read with raw Kafka Fetch requests through the gateways (Skein's
//            wire client, one connection per leader) vs ClusterClient.fetch.
// Every workload runs `repetitions` times, kafkajs and native interleaved; the table shows
// medians. `npm run bench -- kafka`, or run this bundle.

process.env.KAFKAJS_NO_PARTITIONER_WARNING = "1";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { Kafka, logLevel, type Producer } from "kafkajs";
import { Skein } from "../actors/client/skein.js";
import { startLocalCluster, type LocalCluster } from "../bin/broker-cmd.js";
import { ClusterClient } from "../actors/cluster/admin.js";
import { freePortRange } from "../actors/gateway/ports.js";
import { KafkaWireClient } from "../actors/gateway/wire-client.js";
import { Fetch } from "../protocol/kafka/fetch.js";
import { Produce } from "../protocol/kafka/produce.js";
import { partitionForKey } from "../protocol/murmur2.js";
import { encodeBatch, iterateBatches } from "../protocol/record-batch.js";
import { median } from "./stats.js";
import { formatTable, formatTargets, type BenchOptions, type SuiteResult, type Target } from "./report.js";

const PARTITIONS = 6;
const REPLICATION_FACTOR = 3;
const RECORDS_PER_SEND = 100;
const SENDS_IN_FLIGHT = 8;
const FETCH_MAX_BYTES = 1024 * 1024;

interface Sizes {
  records: Record<number, number>;
  repetitions: number;
}

const FULL: Sizes = { records: { 100: 200_000, 1024: 100_000 }, repetitions: 3 };
const QUICK: Sizes = { records: { 100: 10_000, 1024: 5_000 }, repetitions: 1 };

interface Rig {
  local: LocalCluster;
  client: ClusterClient;
  kafka: Kafka;
  skein: Skein;
  basePort: number;
  dataDir: string;
}

interface Run {
  recordsPerSec: number;
  mbPerSec: number;
}

type Path =
  | "kafkajs producer via gateway"
  | "Skein producer"
  | "Kafka Produce via gateway"
  | "ClusterClient.produce"
  | "kafkajs consumer via gateway"
  | "Skein consumer"
  | "Kafka Fetch via gateway"
  | "ClusterClient.fetch";
type Producing = "kafkajs" | "skein" | "wire" | "native";
const PRODUCE_PATH: Record<Producing, Path> = { kafkajs: "kafkajs producer via gateway", skein: "Skein producer", wire: "Kafka Produce via gateway", native: "ClusterClient.produce" };
type Reading = "kafkajs" | "skein" | "wire" | "native";
const READ_PATH: Record<Reading, Path> = { kafkajs: "kafkajs consumer via gateway", skein: "Skein consumer", wire: "Kafka Fetch via gateway", native: "ClusterClient.fetch" };
/** Each path and the native one it is compared with. */
const BASELINE: Record<Path, Path> = {
  "kafkajs producer via gateway": "Skein producer",
  "Skein producer": "Skein producer",
  "Kafka Produce via gateway": "ClusterClient.produce",
  "ClusterClient.produce": "ClusterClient.produce",
  "kafkajs consumer via gateway": "Skein consumer",
  "Skein consumer": "Skein consumer",
  "Kafka Fetch via gateway": "ClusterClient.fetch",
  "ClusterClient.fetch": "ClusterClient.fetch",
};
/** A consumer that gets no record for this long has stalled, ms. */
const CONSUMER_STALL_MS = 60_000;

export async function runKafkaBench(options: BenchOptions): Promise<SuiteResult> {
  const sizes = options.quick ? QUICK : FULL;
  const rig = await startRig();
  try {
    const results = new Map<string, Run[]>();
    const add = (key: string, r: Run) => (results.get(key) ?? results.set(key, []).get(key)!).push(r);
    const shapes = Object.entries(sizes.records).map(([bytes, count]) => ({ recordBytes: Number(bytes), count }));
    const progress = options.progress("kafka", shapes.length * sizes.repetitions * 8);
    let topicSeq = 0;
    for (let rep = 0; rep < sizes.repetitions; rep++) {
      for (const { recordBytes, count } of shapes) {
        const records = makeRecords(count, recordBytes);
        const topics: Record<Producing, string> = { kafkajs: `kafkajs-${topicSeq}`, skein: `skein-${topicSeq}`, wire: `wire-${topicSeq}`, native: `native-${topicSeq}` };
        topicSeq++;
        for (const t of Object.values(topics)) await rig.client.createTopic(t, PARTITIONS, REPLICATION_FACTOR);
        for (const t of Object.values(topics)) await rig.client.waitForLeaders(t);
        // Odd repetitions run native first, so drift in machine load favours neither path.
        const producing: Producing[] = rep % 2 ? ["native", "skein", "wire", "kafkajs"] : ["kafkajs", "wire", "skein", "native"];
        const produce = { kafkajs: produceKafkajs, skein: produceSkein, wire: produceWire, native: produceNative };
        for (const which of producing) {
          const r = await produce[which](rig, topics[which], records);
          add(`${label(recordBytes)}|${PRODUCE_PATH[which]}`, r);
          progress.tick(`${label(recordBytes)} produce ${which}`);
          options.log(`rep ${rep + 1} ${label(recordBytes)} produce ${which}: ${Math.round(r.recordsPerSec).toLocaleString("en-US")} records/s`);
        }
        const reading: Reading[] = rep % 2 ? ["native", "skein", "wire", "kafkajs"] : ["kafkajs", "wire", "skein", "native"];
        const read = { kafkajs: consumeKafkajs, skein: consumeSkein, wire: readViaGateway, native: readNative };
        for (const which of reading) {
          const r = await read[which](rig, topics.skein, count, recordBytes);
          add(`${label(recordBytes)}|${READ_PATH[which]}`, r);
          progress.tick(`${label(recordBytes)} read ${which}`);
          options.log(`rep ${rep + 1} ${label(recordBytes)} read ${which}: ${Math.round(r.recordsPerSec).toLocaleString("en-US")} records/s`);
        }
      }
    }
    progress.stop();
    return summarize(results, sizes);
  } finally {
    await stopRig(rig);
  }
}

const label = (bytes: number) => (bytes >= 1024 ? `${bytes / 1024}KB` : `${bytes}B`);

function makeRecords(count: number, bytes: number): { key: string; value: Buffer }[] {
  const value = Buffer.alloc(bytes, 0x61);
  return Array.from({ length: count }, (_, i) => ({ key: `key-${i % 10_000}`, value }));
}


async function startRig(): Promise<Rig> {
  const basePort = await freePortRange(3);
  const dataDir = mkdtempSync(join(tmpdir(), "skein-kafka-bench-"));
  const cluster = `kbench-${process.pid}`;
  const local = await startLocalCluster({ cluster, brokers: 3, workers: 1, data: dataDir, kafkaPort: basePort });
  const client = await ClusterClient.connect({ nats: { servers: local.natsUrl }, cluster, name: "skein:bench:kafka" });
  for (const deadline = Date.now() + 20_000; ; ) {
    const s = await client.status().catch(() => null);
    if (s?.controller && s.controller.epoch >= 0 && s.brokers.length >= 3) break;
    if (Date.now() > deadline) throw new Error("kafka bench: no controller after 20 s");
    await new Promise((r) => setTimeout(r, 100));
  }
  const kafka = new Kafka({ clientId: "skein-bench", brokers: [`127.0.0.1:${basePort}`], logLevel: logLevel.NOTHING });
  const skein = new Skein({ clientId: "skein-bench", nats: local.natsUrl, cluster });
  return { local, client, kafka, skein, basePort, dataDir };
}

async function stopRig(rig: Rig): Promise<void> {
  await rig.skein.releaseClient().catch(() => undefined);
  await rig.client.close();
  await rig.local.stop();
  rmSync(rig.dataDir, { recursive: true, force: true });
}

/** Runs `sends` with at most SENDS_IN_FLIGHT at once; returns elapsed ms. */
async function windowed(sends: number, send: (i: number) => Promise<unknown>): Promise<number> {
  const started = performance.now();
  let next = 0;
  const lane = async () => {
    while (next < sends) await send(next++);
  };
  await Promise.all(Array.from({ length: SENDS_IN_FLIGHT }, lane));
  return performance.now() - started;
}

function rate(records: number, bytes: number, ms: number): Run {
  return { recordsPerSec: (records * 1000) / ms, mbPerSec: (records * bytes * 1000) / ms / (1024 * 1024) };
}

async function produceKafkajs(rig: Rig, topic: string, records: { key: string; value: Buffer }[]): Promise<Run> {
  const producer: Producer = rig.kafka.producer();
  await producer.connect();
  try {
    await producer.send({ topic, acks: -1, messages: records.slice(0, RECORDS_PER_SEND) }); // metadata and connections
    const sends = Math.ceil(records.length / RECORDS_PER_SEND);
    const ms = await windowed(sends, (i) => producer.send({ topic, acks: -1, messages: records.slice(i * RECORDS_PER_SEND, (i + 1) * RECORDS_PER_SEND) }));
    return rate(records.length, records[0].value.length, ms);
  } finally {
    await producer.disconnect();
  }
}

async function produceSkein(rig: Rig, topic: string, records: { key: string; value: Buffer }[]): Promise<Run> {
  const producer = rig.skein.producer({ acks: "all" });
  await producer.connect();
  try {
    await producer.send({ topic, messages: records.slice(0, RECORDS_PER_SEND) }); // metadata
    const sends = Math.ceil(records.length / RECORDS_PER_SEND);
    const ms = await windowed(sends, (i) => producer.send({ topic, messages: records.slice(i * RECORDS_PER_SEND, (i + 1) * RECORDS_PER_SEND) }));
    return rate(records.length, records[0].value.length, ms);
  } finally {
    await producer.disconnect();
  }
}

/**
 * Counts eachBatch records until `count`; the rate runs from the first batch to the last
 * record, over the records after the first batch (group join and first fetch excluded).
 */
function batchCounter(count: number, bytes: number, what: string) {
  let read = 0;
  let firstBatch = 0;
  let firstAt = 0;
  let lastAt = performance.now();
  let resolve: (r: Run) => void = () => undefined;
  let reject: (e: Error) => void = () => undefined;
  const done = new Promise<Run>((res, rej) => ((resolve = res), (reject = rej)));
  const stall = setInterval(() => {
    if (performance.now() - lastAt > CONSUMER_STALL_MS) reject(new Error(`kafka bench: ${what} read ${read} of ${count} records, then nothing for ${CONSUMER_STALL_MS} ms`));
  }, 1_000);
  const onBatch = (records: number) => {
    lastAt = performance.now();
    if (read === 0) {
      firstAt = lastAt;
      firstBatch = records;
    }
    read += records;
    if (read >= count) resolve(rate(read - firstBatch, bytes, lastAt - firstAt));
  };
  return { onBatch, done: done.finally(() => clearInterval(stall)) };
}

/** What both consumers offer (Skein's consumer is shaped like kafkajs's). */
interface GroupReader {
  connect(): Promise<void>;
  subscribe(s: { topics: string[]; fromBeginning: boolean }): Promise<void>;
  run(r: { eachBatch: (p: { batch: { messages: unknown[] } }) => Promise<void> }): Promise<void>;
  disconnect(): Promise<void>;
}

async function consumeAsGroup(consumer: GroupReader, label: string, topic: string, count: number, bytes: number): Promise<Run> {
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    const counter = batchCounter(count, bytes, label);
    await consumer.run({ eachBatch: async ({ batch }) => counter.onBatch(batch.messages.length) });
    return await counter.done;
  } finally {
    await consumer.disconnect();
  }
}

const consumeKafkajs = (rig: Rig, topic: string, count: number, bytes: number): Promise<Run> =>
  consumeAsGroup(rig.kafka.consumer({ groupId: `kafkajs-reader-${topic}-${performance.now()}` }) as unknown as GroupReader, "kafkajs consumer", topic, count, bytes);

const consumeSkein = (rig: Rig, topic: string, count: number, bytes: number): Promise<Run> =>
  consumeAsGroup(rig.skein.consumer({ groupId: `skein-reader-${topic}-${performance.now()}` }) as unknown as GroupReader, "Skein consumer", topic, count, bytes);

const enc = new TextEncoder();

/** One batch per partition, records placed by murmur2 as kafkajs places them. */
function batchesByPartition(slice: { key: string; value: Buffer }[]): Map<number, Uint8Array> {
  const byPartition = new Map<number, { key: Uint8Array; value: Uint8Array }[]>();
  for (const r of slice) {
    const key = enc.encode(r.key);
    const p = partitionForKey(key, PARTITIONS);
    (byPartition.get(p) ?? byPartition.set(p, []).get(p)!).push({ key, value: r.value });
  }
  return new Map([...byPartition].map(([p, rs]) => [p, encodeBatch(rs)]));
}

async function produceWire(rig: Rig, topic: string, records: { key: string; value: Buffer }[]): Promise<Run> {
  const leaders = new Map((await rig.client.describeTopic(topic)).partitions.map((p) => [p.partition, p.leader]));
  const connections = new Map<number, KafkaWireClient>();
  for (const broker of new Set(leaders.values())) connections.set(broker, await KafkaWireClient.connect(rig.basePort + broker - 1));
  try {
    const sendOne = async (slice: { key: string; value: Buffer }[]) => {
      const perLeader = new Map<number, { index: number; records: Uint8Array }[]>();
      for (const [index, batch] of batchesByPartition(slice)) {
        const leader = leaders.get(index)!;
        (perLeader.get(leader) ?? perLeader.set(leader, []).get(leader)!).push({ index, records: batch });
      }
      await Promise.all(
        [...perLeader].map(async ([leader, partitions]) => {
          const r = await connections.get(leader)!.send(Produce, 7, { transactionalId: null, acks: -1, timeoutMs: 30_000, topics: [{ name: topic, partitions }] });
          const failed = r.responses[0].partitions.find((p) => p.errorCode !== 0);
          if (failed) throw new Error(`kafka bench: Produce to ${topic}/${failed.index} failed with Kafka error ${failed.errorCode}`);
        }),
      );
    };
    await sendOne(records.slice(0, RECORDS_PER_SEND));
    const sends = Math.ceil(records.length / RECORDS_PER_SEND);
    const ms = await windowed(sends, (i) => sendOne(records.slice(i * RECORDS_PER_SEND, (i + 1) * RECORDS_PER_SEND)));
    return rate(records.length, records[0].value.length, ms);
  } finally {
    for (const c of connections.values()) await c.close();
  }
}

async function produceNative(rig: Rig, topic: string, records: { key: string; value: Buffer }[]): Promise<Run> {
  const sendOne = (slice: { key: string; value: Buffer }[]) =>
    Promise.all([...batchesByPartition(slice)].map(([p, batch]) => rig.client.produce(topic, p, batch, { acks: -1 })));
  await sendOne(records.slice(0, RECORDS_PER_SEND));
  const sends = Math.ceil(records.length / RECORDS_PER_SEND);
  const ms = await windowed(sends, (i) => sendOne(records.slice(i * RECORDS_PER_SEND, (i + 1) * RECORDS_PER_SEND)));
  return rate(records.length, records[0].value.length, ms);
}

/** Reads every partition to its high watermark with Kafka Fetch v11 from its leader's gateway. */
async function readViaGateway(rig: Rig, topic: string, count: number, bytes: number): Promise<Run> {
  const d = await rig.client.describeTopic(topic);
  const started = performance.now();
  let read = 0;
  await Promise.all(
    d.partitions.map(async (p) => {
      const wire = await KafkaWireClient.connect(rig.basePort + p.leader - 1);
      try {
        for (let offset = 0; offset < p.highWatermark!; ) {
          const f = await wire.send(Fetch, 11, {
            replicaId: -1,
            maxWaitMs: 0,
            minBytes: 1,
            maxBytes: FETCH_MAX_BYTES,
            isolationLevel: 0,
            topics: [{ topic, partitions: [{ partition: p.partition, fetchOffset: offset, partitionMaxBytes: FETCH_MAX_BYTES }] }],
          });
          const data = f.responses[0].partitions[0].records!;
          for (const { header } of iterateBatches(data)) {
            read += header.lastOffset + 1 - Math.max(offset, header.baseOffset);
            offset = header.lastOffset + 1;
          }
        }
      } finally {
        await wire.close();
      }
    }),
  );
  if (read < count) throw new Error(`kafka bench: read ${read} of ${count} records through the gateway`);
  return rate(read, bytes, performance.now() - started);
}

async function readNative(rig: Rig, topic: string, count: number, bytes: number): Promise<Run> {
  const d = await rig.client.describeTopic(topic);
  const started = performance.now();
  let read = 0;
  await Promise.all(
    d.partitions.map(async (p) => {
      for (let offset = 0; offset < p.highWatermark!; ) {
        const f = await rig.client.fetch(topic, p.partition, offset, { maxBytes: FETCH_MAX_BYTES });
        for (const { header } of iterateBatches(f.data)) {
          read += header.lastOffset + 1 - Math.max(offset, header.baseOffset);
          offset = header.lastOffset + 1;
        }
      }
    }),
  );
  if (read < count) throw new Error(`kafka bench: read ${read} of ${count} records natively`);
  return rate(read, bytes, performance.now() - started);
}

function summarize(results: Map<string, Run[]>, sizes: Sizes): SuiteResult {
  const rows: SuiteResult["rows"] = [];
  const med = (key: string) => {
    const runs = results.get(key) ?? [];
    return { recordsPerSec: median(runs.map((r) => r.recordsPerSec)), mbPerSec: median(runs.map((r) => r.mbPerSec)) };
  };
  const targets: Target[] = [];
  for (const bytes of Object.keys(sizes.records).map(Number)) {
    const groups: Array<[string, Path[]]> = [
      ["produce acks=all", [PRODUCE_PATH.kafkajs, PRODUCE_PATH.skein, PRODUCE_PATH.wire, PRODUCE_PATH.native]],
      ["consume", [READ_PATH.kafkajs, READ_PATH.skein]],
      ["read (raw fetch)", [READ_PATH.wire, READ_PATH.native]],
    ];
    for (const [what, paths] of groups) {
      for (const path of paths) {
        const m = med(`${label(bytes)}|${path}`);
        const n = med(`${label(bytes)}|${BASELINE[path]}`);
        rows.push({
          workload: `${label(bytes)} ${what}`,
          path,
          "records/s": Math.round(m.recordsPerSec),
          "MB/s": Number(m.mbPerSec.toFixed(1)),
          "vs native": Number((m.recordsPerSec / n.recordsPerSec).toFixed(2)),
          "native is": BASELINE[path],
        });
      }
    }
    // The raw Kafka paths carry the same bytes as ClusterClient: their ratio is the gateway's
    // own cost (one more hop, one connection per broker serving requests in order).
    for (const path of [PRODUCE_PATH.wire, READ_PATH.wire]) {
      const ratio = med(`${label(bytes)}|${path}`).recordsPerSec / med(`${label(bytes)}|${BASELINE[path]}`).recordsPerSec;
      const name = `${label(bytes)} ${path === PRODUCE_PATH.wire ? "produce" : "read"} through the gateway`;
      targets.push({ name, rule: `${path} >= 0.5 x ${BASELINE[path]}`, measured: ratio, bound: 0.5, unit: "x", pass: ratio >= 0.5 });
    }
  }
  return {
    suite: "kafka",
    title: `Kafka gateway: kafkajs and raw Kafka requests vs Skein's clients (3 brokers, ${PARTITIONS} partitions, RF ${REPLICATION_FACTOR})`,
    columns: ["workload", "path", "records/s", "MB/s", "vs native", "native is"],
    rows,
    targets,
    parameters: { partitions: PARTITIONS, replicationFactor: REPLICATION_FACTOR, recordsPerSend: RECORDS_PER_SEND, sendsInFlight: SENDS_IN_FLIGHT, fetchMaxBytes: FETCH_MAX_BYTES, ...sizes },
    notes: [
      "kafkajs encodes and decodes record batches and computes CRC32C in JavaScript; Skein's clients use native/crc32c.c (SSE4.2) when the build could compile it, else @node-rs/crc32. The kafkajs/Skein ratios include that client cost, not only the gateway's.",
      "Consumers are groups of one (eachBatch, fromBeginning) reading the topic Skein's producer wrote; their rate runs from the first batch to the last record (group join excluded). All clients run in the bench process; the brokers are separate processes.",
    ],
  };
}

async function main(): Promise<void> {
  const quick = process.argv.includes("--quick");
  const result = await runKafkaBench({
    quick,
    log: (line) => console.error(line),
    progress: () => ({ tick: () => undefined, stop: () => undefined }),
  });
  console.log(`\n${result.title}\n\n${formatTable(result.columns, result.rows)}\n`);
  for (const n of result.notes ?? []) console.log(`note: ${n}`);
  console.log(`\n${formatTargets(result.targets)}`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    () => process.exit(0),
    (e) => {
      console.error("kafka bench failed:", e);
      process.exit(1);
    },
  );
}
