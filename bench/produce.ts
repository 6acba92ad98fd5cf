// Producer throughput (max-rate mode) through the public API, side by side with raw core NATS,
// JetStream R1 and JetStream R3 in the same run, with the same record size and count:
//   Skein: 3 brokers (1 worker each), 100 B and 1 KB records, RF 1/3, acks 1/all, 1 and 4
//          producers (one OS process each), 6 partitions, plus a partition sweep 1…100;
//   peers: each record one message, published asynchronously with the same bounded window.
// Throughput counts acknowledged records from the first send to the last ack (raw NATS: to
// the last record the subscriber received). Every workload runs `repetitions` times with the
// peers interleaved, so drift in machine load hits all of them; the table shows the median and
// the spread, and CPU per record (clients + brokers + nats-servers), which moves far less
// than records/s on a shared machine.

import { availableParallelism } from "node:os";
import type { LoadSpec } from "./fixtures/load-client.js";
import { cpuMsOf, startJetStreamR1, startJetStreamR3, startRawNats, startSkeinCluster, type JetStreamPeer, type SkeinBenchCluster } from "./fixtures/servers.js";
import { runLoad, type LoadRun } from "./load.js";
import { median } from "./stats.js";
import type { BenchOptions, SuiteResult, Target } from "./report.js";
import type { NatsServerHandle } from "../runtime/nats-server.js";

export interface Workload {
  name: string;
  recordBytes: number;
  replicationFactor: number;
  acks: "all" | 1;
  producers: number;
  partitions: number;
}

export type Peer = "raw NATS" | "JetStream R1" | "JetStream R3";
const PEERS: Peer[] = ["raw NATS", "JetStream R1", "JetStream R3"];

interface Sizes {
  records: Record<number, number>;
  repetitions: number;
  workloads: Workload[];
  /**
   * Peer runs: (record size, producers) pairs and how many of the repetitions run them (JetStream
   * takes ~20x as long as Skein for the same count, so only the main comparison repeats).
   */
  peerShapes: Array<{ recordBytes: number; producers: number; repetitions: number }>;
}

const w = (recordBytes: number, replicationFactor: number, acks: "all" | 1, producers: number, partitions = 6): Workload => ({
  name: `${recordBytes >= 1024 ? `${recordBytes / 1024}KB` : `${recordBytes}B`} RF${replicationFactor} acks=${acks} ${producers}prod ${partitions}p`,
  recordBytes,
  replicationFactor,
  acks,
  producers,
  partitions,
});

const FULL: Sizes = {
  records: { 100: 500_000, 1024: 60_000 },
  repetitions: 3,
  workloads: [
    w(100, 1, 1, 1),
    w(100, 3, "all", 1),
    w(100, 1, 1, 4),
    w(100, 3, "all", 4),
    w(1024, 1, 1, 1),
    w(1024, 3, "all", 1),
    w(100, 3, "all", 1, 1),
    w(100, 3, "all", 1, 100),
  ],
  peerShapes: [
    { recordBytes: 100, producers: 1, repetitions: 2 },
    { recordBytes: 1024, producers: 1, repetitions: 1 },
  ],
};

const QUICK: Sizes = {
  records: { 100: 20_000, 1024: 5_000 },
  repetitions: 1,
  workloads: [w(100, 1, 1, 1), w(100, 3, "all", 2, 3)],
  peerShapes: [{ recordBytes: 100, producers: 1, repetitions: 1 }],
};

/** Records handed over per send() call (Skein) and records unacknowledged at most. */
const RECORDS_PER_SEND = 1_000;
const WINDOW_RECORDS = 20_000;
/**
 * Every producer process (Skein and peers alike) first sends half its count, unmeasured (at
 * most 1.5 s), as OpenMessaging Benchmark warms up before it measures: a 200,000-record run
 * takes well under a second here, so a cold client's JIT compilation was part of its number.
 */
const warmupOf = (records: number) => Math.ceil(records / 2);
/**
 * JetStream's async publish window: each publish is a request with its own timer, and the
 * nats.js client gets slower with many thousands outstanding (measured here: ~21k msgs/s at
 * 1,024-4,096, ~9k at 20,000), so the peer gets the window it does best with.
 */
export const JETSTREAM_WINDOW = 1_024;

export interface ProduceEnv {
  skein: SkeinBenchCluster;
  raw: NatsServerHandle;
  js1: JetStreamPeer;
  js3: JetStreamPeer;
  serverPids(): number[];
}

/** Starts the Skein cluster and every peer (all idle between runs); the consume suite uses it too. */
export async function startProduceEnv(options: BenchOptions, cleanup: Array<() => Promise<unknown>>): Promise<ProduceEnv> {
  const skein = await startSkeinCluster();
  cleanup.push(() => skein.stop());
  const raw = await startRawNats();
  cleanup.push(() => raw.stop());
  const js1 = await startJetStreamR1();
  cleanup.push(() => js1.stop());
  const js3 = await startJetStreamR3();
  cleanup.push(() => js3.stop());
  options.log(`skein cluster on ${skein.natsUrl}; raw NATS ${raw.url}; JetStream R1 ${js1.url}; JetStream R3 ${js3.url}`);
  return {
    skein,
    raw,
    js1,
    js3,
    serverPids: () => [skein.natsPid, ...skein.brokerPids().values(), raw.pid, ...js1.pids, ...js3.pids],
  };
}

export interface Measured extends LoadRun {
  /** CPU of clients + servers per record, µs. */
  cpuUsPerRecord: number;
}

let topicCounter = 0;

export async function runSkeinProduce(env: ProduceEnv, wl: Workload, count: number, extra: Partial<Extract<LoadSpec, { kind: "skein-produce" }>> = {}): Promise<Measured> {
  const topic = `bench-produce-${++topicCounter}`;
  await env.skein.createTopic(topic, wl.partitions, wl.replicationFactor);
  const per = Math.ceil(count / wl.producers);
  const specs: LoadSpec[] = Array.from({ length: wl.producers }, () => ({
    kind: "skein-produce",
    nats: env.skein.natsUrl,
    cluster: env.skein.cluster,
    topic,
    acks: wl.acks,
    count: per,
    recordBytes: wl.recordBytes,
    recordsPerSend: RECORDS_PER_SEND,
    window: WINDOW_RECORDS,
    warmupRecords: warmupOf(per),
    ...extra,
  }));
  try {
    return await measured(env, (onStart) => runLoad(specs, { onStart }));
  } finally {
    await env.skein.client.deleteTopic(topic).catch(() => undefined);
  }
}

export async function runPeerProduce(env: ProduceEnv, peer: Peer, recordBytes: number, producers: number, count: number, ratePerSec?: number): Promise<Measured> {
  const per = Math.ceil(count / producers);
  const subject = `bench.peer.${process.pid}.${++topicCounter}`;
  const common = { count: per, recordBytes, window: WINDOW_RECORDS, ratePerSec, warmupRecords: ratePerSec === undefined ? warmupOf(per) : undefined };
  if (peer === "raw NATS") {
    const specs: LoadSpec[] = Array.from({ length: producers }, () => ({ kind: "nats-pub", nats: env.raw.url, subject, ...common }));
    const sub: LoadSpec = { kind: "nats-sub", nats: env.raw.url, subject, count: per * producers, idleTimeoutMs: 3_000, latency: ratePerSec !== undefined };
    return measured(env, (onStart) => runLoad(specs, { background: [sub], onStart }));
  }
  const js = peer === "JetStream R1" ? env.js1 : env.js3;
  const stream = await js.createStream(subject);
  try {
    const specs: LoadSpec[] = Array.from({ length: producers }, () => ({ kind: "js-pub", nats: js.url, subject, ...common, window: JETSTREAM_WINDOW }));
    return await measured(env, (onStart) => runLoad(specs, { onStart }));
  } finally {
    await js.deleteStream(stream).catch(() => undefined);
  }
}

async function measured(env: ProduceEnv, run: (onStart: () => void) => Promise<LoadRun>): Promise<Measured> {
  const pids = env.serverPids();
  let before = cpuMsOf(pids);
  const r = await run(() => (before = cpuMsOf(pids)));
  const serverCpuUs = (cpuMsOf(pids) - before) * 1000;
  return { ...r, cpuUsPerRecord: r.clientCpuUsPerRecord + (r.records > 0 ? serverCpuUs / r.records : 0) };
}

export async function runProduceBench(options: BenchOptions): Promise<SuiteResult> {
  const sizes = options.quick ? QUICK : FULL;
  const workloads = sizes.workloads.filter((x) => !options.filter || x.name.includes(options.filter));
  const shapes = sizes.peerShapes.filter((s) => !options.filter || PEERS.some((p) => peerKey(p, s.recordBytes, s.producers).includes(options.filter!)));
  const cleanup: Array<() => Promise<unknown>> = [];
  const skeinRuns = new Map<string, Measured[]>();
  const peerRuns = new Map<string, Measured[]>();
  try {
    const env = await startProduceEnv(options, cleanup);
    const peerRunCount = shapes.reduce((n, s) => n + s.repetitions * PEERS.filter((p) => !options.filter || peerKey(p, s.recordBytes, s.producers).includes(options.filter)).length, 0);
    const steps = sizes.repetitions * workloads.length + peerRunCount;
    const progress = options.progress("produce", steps);
    for (let rep = 0; rep < sizes.repetitions; rep++) {
      for (const shape of shapes) {
        for (const peer of PEERS) {
          const key = peerKey(peer, shape.recordBytes, shape.producers);
          if (rep >= shape.repetitions || (options.filter && !key.includes(options.filter))) continue;
          const r = await runPeerProduce(env, peer, shape.recordBytes, shape.producers, sizes.records[shape.recordBytes]);
          push(peerRuns, key, r);
          progress.tick(`${key}: ${fmt(r.recordsPerSec)} rec/s`);
        }
        for (const wl of workloads.filter((x) => x.recordBytes === shape.recordBytes && x.producers === shape.producers)) {
          const r = await runSkeinProduce(env, wl, sizes.records[wl.recordBytes]);
          push(skeinRuns, wl.name, r);
          progress.tick(`${wl.name}: ${fmt(r.recordsPerSec)} rec/s`);
        }
      }
      for (const wl of workloads.filter((x) => !shapes.some((s) => s.recordBytes === x.recordBytes && s.producers === x.producers))) {
        const r = await runSkeinProduce(env, wl, sizes.records[wl.recordBytes]);
        push(skeinRuns, wl.name, r);
        progress.tick(`${wl.name}: ${fmt(r.recordsPerSec)} rec/s`);
      }
    }
    progress.stop();
  } finally {
    for (const step of cleanup.reverse()) await step().catch((e) => options.log(`cleanup: ${(e as Error).message}`));
  }
  return report(workloads, shapes, skeinRuns, peerRuns, sizes);
}

const peerKey = (peer: Peer, recordBytes: number, producers: number) => `${peer} ${recordBytes >= 1024 ? `${recordBytes / 1024}KB` : `${recordBytes}B`} ${producers}prod`;

function push<T>(m: Map<string, T[]>, k: string, v: T): void {
  m.set(k, [...(m.get(k) ?? []), v]);
}

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");

export function spread(values: number[]): string {
  if (values.length < 2) return "-";
  const m = median(values);
  return `±${Math.round(((Math.max(...values) - Math.min(...values)) / 2 / m) * 100)}%`;
}

function report(workloads: Workload[], shapes: Sizes["peerShapes"], skein: Map<string, Measured[]>, peers: Map<string, Measured[]>, sizes: Sizes): SuiteResult {
  const rate = (runs: Measured[] | undefined) => (runs?.length ? median(runs.map((r) => r.recordsPerSec)) : NaN);
  const cpu = (runs: Measured[] | undefined) => (runs?.length ? median(runs.map((r) => r.cpuUsPerRecord)) : NaN);
  const rows: SuiteResult["rows"] = [];
  for (const shape of shapes) {
    for (const peer of PEERS) {
      const runs = peers.get(peerKey(peer, shape.recordBytes, shape.producers));
      if (runs) rows.push(row(peerKey(peer, shape.recordBytes, shape.producers), runs, rate, cpu, NaN));
    }
  }
  for (const wl of workloads) {
    // Peers run with one producer; a 4-producer workload is compared with those too.
    const js3 = rate(peers.get(peerKey("JetStream R3", wl.recordBytes, 1)));
    rows.push(row(`Skein ${wl.name}`, skein.get(wl.name), rate, cpu, js3));
  }
  const targets: Target[] = [];
  const rf3 = workloads.find((x) => x.recordBytes === 100 && x.replicationFactor === 3 && x.acks === "all" && x.producers === 1 && x.partitions === 6);
  const rf1 = workloads.find((x) => x.recordBytes === 100 && x.replicationFactor === 1 && x.acks === 1 && x.producers === 1 && x.partitions === 6);
  const best = (pred: (x: Workload) => boolean) => Math.max(...workloads.filter(pred).map((x) => rate(skein.get(x.name))).filter(Number.isFinite));
  const rf3Best = best((x) => x.recordBytes === 100 && x.replicationFactor === 3 && x.acks === "all");
  const rf1Best = best((x) => x.recordBytes === 100 && x.replicationFactor === 1 && x.acks === 1);
  const js3 = rate(peers.get(peerKey("JetStream R3", 100, 1)));
  if (rf3 && Number.isFinite(rf3Best)) {
    targets.push({ name: "produce 100 B RF=3 acks=all", rule: ">= 500,000 records/s (best producer count)", measured: Math.round(rf3Best), bound: 500_000, unit: "records/s", pass: rf3Best >= 500_000 });
    if (Number.isFinite(js3)) {
      const ratio = rate(skein.get(rf3.name)) / js3;
      targets.push({ name: "produce 100 B RF=3 acks=all vs JetStream R3", rule: ">= 20 x JetStream R3, 1 producer each, same run", measured: Math.round(ratio * 10) / 10, bound: 20, unit: "x", pass: ratio >= 20 });
    }
  }
  if (rf1 && Number.isFinite(rf1Best)) {
    targets.push({ name: "produce 100 B RF=1 acks=1", rule: ">= 1,000,000 records/s (best producer count)", measured: Math.round(rf1Best), bound: 1_000_000, unit: "records/s", pass: rf1Best >= 1_000_000 });
  }
  return {
    suite: "produce",
    title: `Produce throughput vs raw NATS and JetStream (medians of ${sizes.repetitions} run(s) for Skein, ${sizes.peerShapes.map((s) => s.repetitions).join("/")} for the peer shapes; 3 brokers, 1 worker each)`,
    columns: ["workload", "records/s", "spread", "MB/s", "CPU µs/rec", "cores/CPU rec/s", "vs JS R3", "errors"],
    rows,
    targets,
    parameters: {
      records: sizes.records,
      repetitions: sizes.repetitions,
      recordsPerSend: RECORDS_PER_SEND,
      windowRecords: WINDOW_RECORDS,
      warmupRecords: "half of each producer's count, at most 1.5 s, unmeasured",
      workloads,
      runs: { skein: Object.fromEntries(skein), peers: Object.fromEntries(peers) },
    },
    notes: [
      "Each producer is its own OS process; brokers, nats-servers and producers share the machine's cores.",
      "Every producer (Skein and peers) warms up first: half its count at max rate (at most 1.5 s), not measured; CPU is counted from the start of the measured run.",
      "spread: half the max-min range over the median; CPU µs/rec: producers + brokers + nats-servers, per record.",
      "cores/CPU rec/s: the machine's cores divided by CPU per record, the rate the same work would reach with the machine to itself and perfect overlap: an upper bound that other load on the machine does not move much.",
      "raw NATS: core publish with a flush per 1,000 records, counted at a subscriber; JetStream: async publish, acked.",
      "vs JS R3: against JetStream R3 with one producer and the same record size (also for the 4-producer rows).",
    ],
    charts: [
      {
        kind: "bars",
        file: "produce-throughput",
        title: "Produce throughput, records/s (median)",
        unit: "records/s",
        bars: rows.map((r) => ({ label: String(r.workload), value: Number(r["records/s"]) || 0, group: String(r.workload).startsWith("Skein") ? "Skein" : "peer" })),
      },
    ],
  };
}

function row(name: string, runs: Measured[] | undefined, rate: (r: Measured[] | undefined) => number, cpu: (r: Measured[] | undefined) => number, js3: number): SuiteResult["rows"][number] {
  const r = rate(runs);
  const bytes = runs?.[0] ? r * (Number(/(\d+)(B|KB)/.exec(name)?.[1] ?? 0) * (/KB/.test(name) ? 1024 : 1)) : NaN;
  return {
    workload: name,
    "records/s": Number.isFinite(r) ? Math.round(r) : null,
    spread: runs ? spread(runs.map((x) => x.recordsPerSec)) : null,
    "MB/s": Number.isFinite(bytes) ? Math.round(bytes / 1e5) / 10 : null,
    "CPU µs/rec": runs ? Math.round(cpu(runs) * 100) / 100 : null,
    "cores/CPU rec/s": runs ? Math.round((availableParallelism() * 1e6) / cpu(runs)) : null,
    "vs JS R3": Number.isFinite(js3) && Number.isFinite(r) ? `${(r / js3).toFixed(1)}x` : null,
    errors: runs ? runs.reduce((n, x) => n + x.errors, 0) : null,
  };
}
