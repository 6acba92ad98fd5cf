// Latency at fixed rates (OpenMessaging-Benchmark style), HdrHistogram in µs:
//   publish→ack   at the producer, from the time each record was *meant* to be sent;
//   end-to-end    at a consumer that was already waiting, from that same intended time
//                 (every value carries it), so a stall delays the records scheduled behind
//                 it too: corrected for coordinated omission.
// Skein: 3 brokers, a fresh topic of 6 partitions, RF 3, acks=all, lingerMs 0 (a latency
// setting; the default 5 ms trades latency for batching). Peers at the same rates: raw NATS
// (publish→subscribe; no ack) and JetStream R3 (async publish→ack, ordered consumer). A
// system that cannot keep up with a rate shows it as latency that grows over the run.

import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { contextSwitchesOf, cpuMsOf, startJetStreamR3, startRawNats, startSkeinCluster } from "./fixtures/servers.js";
import type { LoadSpec } from "./fixtures/load-client.js";
import { runLoad, type LoadRun } from "./load.js";
import { JETSTREAM_WINDOW } from "./produce.js";
import type { BenchOptions, Chart, SuiteResult, Target } from "./report.js";

interface Sizes {
  rates: number[];
  seconds: number;
  recordBytes: number;
}

// 1,000/s shows the cost of a produce cycle at light load (each record its own cycle with lingerMs 0).
const FULL: Sizes = { rates: [1_000, 10_000, 50_000], seconds: 6, recordBytes: 100 };
const QUICK: Sizes = { rates: [2_000], seconds: 1, recordBytes: 100 };

const SYSTEMS = ["Skein RF3 acks=all", "raw NATS", "JetStream R3"] as const;
type System = (typeof SYSTEMS)[number];
const PARTITIONS = 6;
/** Unacknowledged records at most; large enough never to be what limits a fixed rate. */
const WINDOW_RECORDS = 50_000;

export async function runE2eLatencyBench(options: BenchOptions): Promise<SuiteResult> {
  const sizes = options.quick ? QUICK : FULL;
  const cleanup: Array<() => Promise<unknown>> = [];
  const results = new Map<string, Busy>();
  const wanted = (key: string) => !options.filter || key.includes(options.filter);
  let topics = 0;
  try {
    const skein = await startSkeinCluster();
    cleanup.push(() => skein.stop());
    const raw = await startRawNats();
    cleanup.push(() => raw.stop());
    const js3 = await startJetStreamR3();
    cleanup.push(() => js3.stop());
    const keys = sizes.rates.flatMap((rate) => SYSTEMS.map((s) => key(s, rate))).filter(wanted);
    const progress = options.progress("e2e-latency", keys.length);
    for (const rate of sizes.rates) {
      const count = rate * sizes.seconds;
      const common = { count, recordBytes: sizes.recordBytes, ratePerSec: rate };
      const consume = { count, idleTimeoutMs: 10_000, latency: true };
      for (const system of SYSTEMS) {
        const k = key(system, rate);
        if (!wanted(k)) continue;
        let r: Busy;
        if (system === "Skein RF3 acks=all") {
          const topic = `bench-latency-${++topics}`;
          await skein.createTopic(topic, PARTITIONS, 3);
          const producer: LoadSpec = { kind: "skein-produce", nats: skein.natsUrl, cluster: skein.cluster, topic, acks: "all", recordsPerSend: 1_000, lingerMs: 0, window: WINDOW_RECORDS, ...common };
          r = await busy([skein.natsPid, ...skein.brokerPids().values()], () => runLoad([producer], { background: [{ kind: "skein-consume", nats: skein.natsUrl, cluster: skein.cluster, topic, ...consume }] }));
          await skein.client.deleteTopic(topic).catch(() => undefined);
        } else if (system === "raw NATS") {
          const subject = `bench.latency.${rate}`;
          r = await busy([raw.pid], () => runLoad([{ kind: "nats-pub", nats: raw.url, subject, window: 1_000, ...common }], { background: [{ kind: "nats-sub", nats: raw.url, subject, ...consume }] }));
        } else {
          const subject = `bench.latency.js.${rate}`;
          const stream = await js3.createStream(subject);
          try {
            r = await busy(js3.pids, () => runLoad([{ kind: "js-pub", nats: js3.url, subject, window: JETSTREAM_WINDOW, ...common }], { background: [{ kind: "js-consume", nats: js3.url, stream, ...consume }] }));
          } finally {
            await js3.deleteStream(stream).catch(() => undefined);
          }
        }
        results.set(k, r);
        progress.tick(`${k}: e2e p99 ${ms(r.endToEndLatency?.p99Us)} ms, ack p99 ${ms(r.ackLatency?.p99Us)} ms`);
      }
    }
    progress.stop();
  } finally {
    for (const step of cleanup.reverse()) await step().catch((e) => options.log(`cleanup: ${(e as Error).message}`));
  }
  return report(results, sizes);
}

/** A run, and how busy the machine was meanwhile: latency at a fixed rate is mostly queueing for a core. */
interface Busy extends LoadRun {
  /** CPU of the system under test (its servers and load clients) over the run, in cores. */
  systemCores: number;
  /** Share of all the machine's cores busy over the run, whoever used them (/proc/stat). */
  machineBusy: number;
  /** Context switches of the system under test's threads (servers and load clients) over the run. */
  contextSwitches: number;
  /** CPU time of the system under test over the run, ms. */
  systemCpuMs: number;
}

async function busy(serverPids: number[], run: () => Promise<LoadRun>): Promise<Busy> {
  const machine = machineTicks();
  const servers = cpuMsOf(serverPids);
  const switches = contextSwitchesOf(serverPids);
  const r = await run();
  const serverMs = cpuMsOf(serverPids) - servers;
  const serverSwitches = contextSwitchesOf(serverPids) - switches;
  const after = machineTicks();
  const clientMs = (r.clientCpuUsPerRecord * r.records) / 1000;
  const total = after.total - machine.total;
  return {
    ...r,
    systemCores: (serverMs + clientMs) / 1000 / r.seconds,
    machineBusy: total > 0 ? (after.busy - machine.busy) / total : NaN,
    contextSwitches: serverSwitches + r.clientContextSwitches,
    systemCpuMs: serverMs + clientMs,
  };
}

/** Busy and total jiffies of all CPUs so far (the first line of /proc/stat; iowait counts as idle). */
function machineTicks(): { busy: number; total: number } {
  try {
    const fields = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
    return { busy: total - fields[3]! - fields[4]!, total };
  } catch {
    return { busy: NaN, total: NaN };
  }
}

const key = (system: System, rate: number) => `${system} @ ${rate.toLocaleString("en-US")}/s`;
const ms = (us: number | undefined) => (us === undefined ? "-" : (us / 1000).toFixed(2));

function report(results: Map<string, Busy>, sizes: Sizes): SuiteResult {
  const rows: SuiteResult["rows"] = [];
  const curves: Chart[] = [];
  for (const rate of sizes.rates) {
    const series: Array<{ label: string; points: Array<[number, number]> }> = [];
    for (const system of SYSTEMS) {
      const k = key(system, rate);
      const r = results.get(k);
      if (!r) continue;
      const e2e = r.endToEndLatency;
      const ack = r.ackLatency;
      rows.push({
        "system @ rate": k,
        "achieved/s": Math.round(r.recordsPerSec),
        delivered: r.records,
        "e2e p50 ms": msNum(e2e?.p50Us),
        "e2e p99 ms": msNum(e2e?.p99Us),
        "e2e p99.9 ms": msNum(e2e?.p999Us),
        "e2e max ms": msNum(e2e?.maxUs),
        "ack p50 ms": msNum(ack?.p50Us),
        "ack p99 ms": msNum(ack?.p99Us),
        "ack max ms": msNum(ack?.maxUs),
        "CPU cores": Math.round(r.systemCores * 100) / 100,
        "machine busy": Number.isFinite(r.machineBusy) ? `${Math.round(r.machineBusy * 100)}%` : null,
        "switches/rec": r.records > 0 ? Math.round((r.contextSwitches / r.records) * 100) / 100 : null,
        "CPU µs/switch": r.contextSwitches > 0 ? Math.round((r.systemCpuMs * 1000) / r.contextSwitches) : null,
      });
      if (e2e) series.push({ label: `${system} end-to-end`, points: e2e.curve });
      if (ack) series.push({ label: `${system} publish→ack`, points: ack.curve });
    }
    if (series.length) curves.push({ kind: "percentiles", file: `latency-${rate}`, title: `Latency percentiles at ${rate.toLocaleString("en-US")} records/s (${sizes.recordBytes} B)`, series });
  }
  const targets: Target[] = [];
  const at50k = results.get(key("Skein RF3 acks=all", 50_000))?.endToEndLatency;
  if (at50k) {
    targets.push({ name: "end-to-end p99 at 50,000 records/s, RF=3 acks=all", rule: "<= 5 ms (corrected for coordinated omission)", measured: at50k.p99Us / 1000, bound: 5, unit: "ms", pass: at50k.p99Us <= 5_000 });
  }
  return {
    suite: "e2e-latency",
    title: `Latency at fixed rates (${sizes.recordBytes} B records, ${sizes.seconds} s per rate; HdrHistogram, coordinated omission corrected)`,
    columns: ["system @ rate", "achieved/s", "delivered", "e2e p50 ms", "e2e p99 ms", "e2e p99.9 ms", "e2e max ms", "ack p50 ms", "ack p99 ms", "ack max ms", "CPU cores", "machine busy", "switches/rec", "CPU µs/switch"],
    rows,
    targets,
    parameters: { ...sizes, partitions: PARTITIONS, lingerMs: 0, latencies: Object.fromEntries([...results].map(([k, r]) => [k, { ack: r.ackLatency, endToEnd: r.endToEndLatency }])) },
    notes: [
      "Latency counts from each record's scheduled send time, so a stall also delays what was scheduled behind it (no coordinated omission).",
      "raw NATS has no acknowledgement: its 'ack' is a flush round trip per chunk; its end-to-end is publish→subscribe.",
      "Skein runs with lingerMs 0 here; end-to-end includes the consumer's long-poll wake-up on the high watermark.",
      `CPU cores: CPU time of the system under test (its servers, producer and consumer processes) per second of the run; machine busy: all ${availableParallelism()} cores, whoever used them. Near 100% every hop waits for a core, and that wait is most of the latency.`,
      "switches/rec: context switches of every thread of the system under test (servers from /proc, load clients from getrusage) per record delivered; each is a thread put to sleep and woken again, or preempted. CPU µs/switch: the system's CPU time divided by them, what each wake-up costs all told on this machine.",
    ],
    charts: curves,
  };
}

function msNum(us: number | undefined): number | null {
  return us === undefined ? null : Math.round(us / 10) / 100;
}
