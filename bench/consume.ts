// Consumer throughput through the public API (consumer.run with eachBatch, every record
// decoded into a kafkajs-shaped message), side by side with the same record count and size:
//   raw NATS     a subscriber counting a publisher's blast (the transport's limit, no storage);
//   JetStream    an ordered consumer reading a stream filled beforehand, R1 and R3.
// Skein reads a topic filled beforehand (6 partitions, RF 3) from its beginning, after a
// warm-up (see warmupOf). Each
// consumer is its own OS process; the clock runs from its first record to its last.

import { availableParallelism } from "node:os";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import type { LoadSpec } from "./fixtures/load-client.js";
import { cpuMsOf, JETSTREAM_API_TIMEOUT_MS, type JetStreamPeer } from "./fixtures/servers.js";
import { runLoad, type LoadRun } from "./load.js";
import { spread, startProduceEnv } from "./produce.js";
import { median } from "./stats.js";
import type { BenchOptions, SuiteResult, Target } from "./report.js";

interface Sizes {
  records: Record<number, number>;
  recordSizes: number[];
  repetitions: number;
}

// 1,000,000 100 B records: at 1.5M/s a run lasts ~0.7 s (300,000 lasted 0.2 s, too short to
// time steadily).
const FULL: Sizes = { records: { 100: 1_000_000, 1024: 60_000 }, recordSizes: [100, 1024], repetitions: 3 };
const QUICK: Sizes = { records: { 100: 20_000 }, recordSizes: [100], repetitions: 1 };

const PARTITIONS = 6;
/**
 * Each consumer first reads this many records, not measured, from in front of the measured
 * ones (Skein's topic and JetStream's streams hold both), as OpenMessaging Benchmark warms up:
 * a 300,000-record run takes a quarter of a second, and a cold client's JIT compilation was
 * part of its number.
 */
const warmupOf = (records: number) => Math.min(Math.ceil(records / 2), MAX_WARMUP_RECORDS);
/** Enough to compile the hot paths; more only lengthens the peers' runs. */
const MAX_WARMUP_RECORDS = 200_000;
const SYSTEMS = ["Skein", "raw NATS", "JetStream R1", "JetStream R3"] as const;
type System = (typeof SYSTEMS)[number];

interface Measured extends LoadRun {
  cpuUsPerRecord: number;
}

const label = (system: System, bytes: number) => `${system} ${bytes >= 1024 ? `${bytes / 1024}KB` : `${bytes}B`}`;

export async function runConsumeBench(options: BenchOptions): Promise<SuiteResult> {
  const sizes = options.quick ? QUICK : FULL;
  const cleanup: Array<() => Promise<unknown>> = [];
  const runs = new Map<string, Measured[]>();
  const wanted = (key: string) => !options.filter || key.includes(options.filter);
  try {
    const { skein, raw, js1, js3, serverPids: pids } = await startProduceEnv(options, cleanup);
    const measure = async (run: (from: { onStart: () => void; onMeasuring: () => void }) => Promise<LoadRun>): Promise<Measured> => {
      let before = cpuMsOf(pids());
      const reset = () => void (before = cpuMsOf(pids()));
      const r = await run({ onStart: reset, onMeasuring: reset });
      const serverUs = (cpuMsOf(pids()) - before) * 1000;
      return { ...r, cpuUsPerRecord: r.clientCpuUsPerRecord + (r.records ? serverUs / r.records : 0) };
    };
    const keys = sizes.recordSizes.flatMap((b) => SYSTEMS.map((s) => label(s, b))).filter(wanted);
    const progress = options.progress("consume", keys.length * sizes.repetitions);
    // Topics and streams are filled once per record size; every repetition reads them again.
    for (const bytes of sizes.recordSizes) {
      const count = sizes.records[bytes];
      const warmup = warmupOf(count);
      const fill = (topic: string, n: number) => runLoad([{ kind: "skein-produce", nats: skein.natsUrl, cluster: skein.cluster, topic, acks: 1, count: n, recordBytes: bytes, recordsPerSend: 1_000, window: 20_000 }]);
      const streams = new Map<System, string>();
      for (const [system, js] of [["JetStream R1", js1], ["JetStream R3", js3]] as Array<[System, JetStreamPeer]>) {
        if (wanted(label(system, bytes))) streams.set(system, await fillStream(js, `bench.consume.${bytes}`, warmup + count, bytes));
      }
      for (let rep = 0; rep < sizes.repetitions; rep++) {
        for (const system of SYSTEMS) {
          const key = label(system, bytes);
          if (!wanted(key)) continue;
          const common = { count, idleTimeoutMs: 5_000 };
          let r: Measured;
          if (system === "Skein") {
            // A topic per run: the consumer reads the warm-up records and pauses before the
            // measured ones are written (see the skein-consume load client).
            const topic = `bench-consume-${bytes}-${rep}`;
            await skein.createTopic(topic, PARTITIONS, 3);
            try {
              await fill(topic, warmup);
              r = await measure((from) =>
                runLoad([{ kind: "skein-consume", nats: skein.natsUrl, cluster: skein.cluster, topic, ...common, warmupRecords: warmup }], {
                  onStart: async () => {
                    await fill(topic, count);
                    from.onStart();
                  },
                }),
              );
            } finally {
              await skein.client.deleteTopic(topic).catch(() => undefined);
            }
          } else if (system === "raw NATS") {
            // Nothing stored to read twice: the publisher warms up (on a subject nobody counts).
            const subject = `bench.consume.raw.${bytes}.${rep}`;
            const pub: LoadSpec = { kind: "nats-pub", nats: raw.url, subject, count, recordBytes: bytes, window: 20_000, warmupRecords: warmup };
            r = await measure((from) => runLoad([pub], { background: [{ kind: "nats-sub", nats: raw.url, subject, ...common }], ...from }));
          } else {
            const js = system === "JetStream R1" ? js1 : js3;
            r = await measure((from) => runLoad([{ kind: "js-consume", nats: js.url, stream: streams.get(system)!, ...common, warmupRecords: warmup }], from));
          }
          runs.set(key, [...(runs.get(key) ?? []), r]);
          progress.tick(`${key}: ${Math.round(r.recordsPerSec).toLocaleString("en-US")} rec/s (${r.records}/${count})`);
        }
      }
    }
    progress.stop();
  } finally {
    for (const step of cleanup.reverse()) await step().catch((e) => options.log(`cleanup: ${(e as Error).message}`));
  }
  return report(runs, sizes);
}

/** A stream holding `count` records: published with core NATS (fast, unacked), then counted. */
async function fillStream(js: JetStreamPeer, subject: string, count: number, bytes: number): Promise<string> {
  const stream = await js.createStream(subject);
  await runLoad([{ kind: "nats-pub", nats: js.url, subject, count, recordBytes: bytes, window: 5_000 }]);
  const nc = await connect({ servers: js.url, name: "skein:bench:fill" });
  try {
    const jsm = await jetstreamManager(nc, { timeout: JETSTREAM_API_TIMEOUT_MS });
    const deadline = Date.now() + 60_000;
    for (;;) {
      const info = await jsm.streams.info(stream);
      if (info.state.messages >= count) return stream;
      if (Date.now() > deadline) throw new Error(`stream ${stream} holds ${info.state.messages} of ${count} records after 60 s (core publishes were dropped)`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await nc.close();
  }
}

function report(runs: Map<string, Measured[]>, sizes: Sizes): SuiteResult {
  const rate = (k: string) => median((runs.get(k) ?? []).map((r) => r.recordsPerSec));
  const rows: SuiteResult["rows"] = [];
  for (const bytes of sizes.recordSizes) {
    for (const system of SYSTEMS) {
      const key = label(system, bytes);
      const rs = runs.get(key);
      if (!rs) continue;
      const js3 = rate(label("JetStream R3", bytes));
      rows.push({
        consumer: key,
        "records/s": Math.round(rate(key)),
        spread: spread(rs.map((r) => r.recordsPerSec)),
        "MB/s": Math.round((rate(key) * bytes) / 1e5) / 10,
        "CPU µs/rec": Math.round(median(rs.map((r) => r.cpuUsPerRecord)) * 100) / 100,
        "cores/CPU rec/s": Math.round((availableParallelism() * 1e6) / median(rs.map((r) => r.cpuUsPerRecord))),
        "vs JS R3": Number.isFinite(js3) && js3 > 0 ? `${(rate(key) / js3).toFixed(1)}x` : null,
        "records read": Math.min(...rs.map((r) => r.records)),
      });
    }
  }
  const targets: Target[] = [];
  const skein100 = runs.get(label("Skein", 100));
  if (skein100) {
    const r = rate(label("Skein", 100));
    targets.push({ name: "consume 100 B", rule: ">= 1,500,000 records/s, one consumer, kafkajs-shaped eachBatch", measured: Math.round(r), bound: 1_500_000, unit: "records/s", pass: r >= 1_500_000 });
  }
  return {
    suite: "consume",
    title: `Consume throughput vs raw NATS and JetStream (medians of ${sizes.repetitions} run(s); topic of ${PARTITIONS} partitions, RF 3)`,
    columns: ["consumer", "records/s", "spread", "MB/s", "CPU µs/rec", "cores/CPU rec/s", "vs JS R3", "records read"],
    rows,
    targets,
    parameters: { records: sizes.records, warmupRecords: "half of records (at most 200,000), read first, not measured", repetitions: sizes.repetitions, partitions: PARTITIONS, runs: Object.fromEntries(runs) },
    notes: [
      "Skein: consumer.run({ eachBatch }) over a topic filled beforehand, from offset 0; every record is decoded into a message with Buffer key/value.",
      "Warm-up, not measured: Skein's consumer reads half as many records again (at most 200,000), pauses, and only then are the measured records written (so none is prefetched during the warm-up); JetStream consumers read as many in front of the measured ones (their ordered consumer buffers 4,096 messages ahead); raw NATS: the publisher warms up. Clock and CPU count from the start of the measured records.",
      "raw NATS: records/s a subscriber receives from a publisher's blast (no storage); JetStream: ordered consumer over a stream filled beforehand.",
    ],
    charts: [
      {
        kind: "bars",
        file: "consume-throughput",
        title: "Consume throughput, records/s (median)",
        unit: "records/s",
        bars: rows.map((r) => ({ label: String(r.consumer), value: Number(r["records/s"]) || 0, group: String(r.consumer).startsWith("Skein") ? "Skein" : "peer" })),
      },
    ],
  };
}
