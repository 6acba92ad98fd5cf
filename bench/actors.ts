// Actor messaging next to raw NATS, in one run, against one nats-server:
//   tell throughput (messages/s counted at the receiver, 100-byte payload) and
//   ask latency (p50/p99 of sequential asks, 100-byte request, tiny reply)
// for same-worker, cross-worker and cross-process paths, and the raw nats.js baselines:
// publish→subscribe and request→reply, both within one process (two connections) and
// across processes (a peer process, the way a Skein node is one).
//
// Everything Skein-side runs in a `skein node` child process with 2 workers; the drivers
// of the same-/cross-worker cases are actors in that node, so no client hop is measured.
// Tells are paced the same way on every path: a chunk of messages, then a yield (a flush
// round trip from a client, an event-loop turn inside a worker).
//
// Skein coalesces consecutive tells to one actor in one turn into one NATS message (a batch
// frame, runtime/transport.ts); the cross-process path is measured both with that (the
// default) and without it (coalesceTells: false, one NATS message per tell). Raw NATS stays
// one NATS message per payload: that is the transport the targets compare against.

import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { ActorSystem } from "../runtime/system.js";
import { startNatsServer, type NatsServerHandle } from "../runtime/nats-server.js";
import { startSkeinProcess, type ChildHandle } from "../runtime/child-process.js";
import { placementOf } from "../protocol/placement.js";
import type { BenchOptions, SuiteResult, Target } from "./report.js";
import { startProfiles } from "./load.js";
import { stopProfiles } from "./fixtures/servers.js";
import { median, summarize, type LatencySummary } from "./stats.js";

const PAYLOAD_BYTES = 100;
const WORKERS = 2;
const NODE = "bench-n1";
/** Receiver stops being waited for after this long without progress (a message was lost). */
const STALL_MS = 2_000;
const CROSS_PROCESS = "actor cross process";
const CROSS_PROCESS_UNCOALESCED = "actor cross process, uncoalesced";

interface Sizes {
  tellCount: number;
  tellChunk: number;
  askCount: number;
  repetitions: number;
}
// Tell counts keep the server-side backlog of a slow receiver below nats-server's 64 MiB
// max_pending (200k × ~190 B ≈ 38 MB), so a slow consumer is measured, not disconnected.
const FULL: Sizes = { tellCount: 200_000, tellChunk: 1_000, askCount: 10_000, repetitions: 5 };
const QUICK: Sizes = { tellCount: 30_000, tellChunk: 1_000, askCount: 1_500, repetitions: 1 };

interface ReceiverStats {
  count: number;
  firstAt: number;
  lastAt: number;
  /** CPU time of the receiving process so far, µs. */
  cpuUs: number;
}

interface TellResult {
  msgsPerSec: number;
  delivered: number;
  sent: number;
  /**
   * CPU time the sending and receiving processes spent per delivered message, µs
   * (nats-server not included). Unlike msgs/s it hardly moves with the machine's load.
   */
  cpuUsPerMsg: number;
}

/** One path under test: how to run a tell blast and an ask sequence on it. */
interface Path {
  name: string;
  tell(count: number): Promise<TellResult>;
  ask(count: number): Promise<LatencySummary>;
}

const nowMs = () => performance.timeOrigin + performance.now();
const payload = new Uint8Array(PAYLOAD_BYTES).fill(7);

export async function runActorsBench(options: BenchOptions): Promise<SuiteResult> {
  const sizes = options.quick ? QUICK : FULL;
  const cleanup: Array<() => Promise<unknown>> = [];
  try {
    const server = await startNatsServer();
    cleanup.push(() => server.stop());
    options.log(`nats-server at ${server.url}`);
    const paths = await setUp(server, sizes, cleanup, options);
    const tells = new Map<string, TellResult[]>();
    const asks = new Map<string, LatencySummary[]>();
    for (const p of paths) {
      await p.tell(Math.ceil(sizes.tellCount / 10)); // warm-up: JIT, subscriptions, buffers
      await p.ask(Math.ceil(sizes.askCount / 10));
    }
    await startProfiles(); // under --profile: the node, its workers and the raw peer sample from here (this process is not profiled)
    for (let rep = 0; rep < sizes.repetitions; rep++) {
      // Every other repetition runs the paths in reverse, so a drift in machine load does not
      // always favour the same path.
      const order = rep % 2 ? [...paths].reverse() : paths;
      for (const p of order) {
        const t = await p.tell(sizes.tellCount);
        push(tells, p.name, t);
        options.log(`rep ${rep + 1}/${sizes.repetitions} ${p.name}: tell ${Math.round(t.msgsPerSec).toLocaleString("en-US")} msgs/s (${t.delivered}/${t.sent} delivered)`);
      }
      for (const p of order) {
        const a = await p.ask(sizes.askCount);
        push(asks, p.name, a);
        options.log(`rep ${rep + 1}/${sizes.repetitions} ${p.name}: ask p50 ${a.p50Us} µs p99 ${a.p99Us} µs`);
      }
    }
    return report(paths.map((p) => p.name), tells, asks, sizes);
  } finally {
    for (const step of cleanup.reverse()) await step().catch((e) => options.log(`cleanup: ${(e as Error).message}`));
  }
}

async function setUp(server: NatsServerHandle, sizes: Sizes, cleanup: Array<() => Promise<unknown>>, options: BenchOptions): Promise<Path[]> {
  const cluster = `bench-${process.pid}`;
  const node = await startSkeinProcess(["node", "--id", NODE, "--workers", String(WORKERS), "--nats", server.url, "--cluster", cluster]);
  cleanup.push(() => node.stop());
  const rawPrefix = `bench.raw.${process.pid}`;
  const peer = await startRawPeer(server.url, rawPrefix);
  cleanup.push(() => stopChild(peer));
  cleanup.push(() => stopProfiles([node.pid, peer.pid!])); // runs first: the profiles are written before the processes stop
  const system = await ActorSystem.connect({ nats: { servers: server.url }, cluster, name: "skein:bench:client" });
  cleanup.push(() => system.close());
  const uncoalesced = await ActorSystem.connect({ nats: { servers: server.url, coalesceTells: false }, cluster, name: "skein:bench:client-uncoalesced" });
  cleanup.push(() => uncoalesced.close());
  const pub = await connect({ servers: server.url, name: "skein:bench:raw-pub" });
  cleanup.push(() => pub.close());
  const sub = await connect({ servers: server.url, name: "skein:bench:raw-sub" });
  cleanup.push(() => sub.close());
  options.log(`node ${NODE} (pid ${node.pid}, ${WORKERS} workers) and raw peer (pid ${peer.pid}) ready`);

  const module = fileURLToPath(new URL("./fixtures/sink.js", import.meta.url));
  const sinkW0 = addressOn("bench/sink-a", 0);
  const sinkW1 = addressOn("bench/sink-b", 1);
  const driverW0 = addressOn("bench/driver", 0);
  await system.spawn({ node: NODE, kind: "bench-sink", module, address: sinkW0 });
  await system.spawn({ node: NODE, kind: "bench-sink", module, address: sinkW1 });
  await system.spawn({ node: NODE, kind: "bench-driver", module, address: driverW0 });

  return [
    rawSameProcess(pub, sub, sizes),
    rawCrossProcess(pub, rawPrefix, sizes),
    actorFromDriver("actor same worker", system, driverW0, sinkW0, sizes),
    actorFromDriver("actor cross worker", system, driverW0, sinkW1, sizes),
    actorFromClient(CROSS_PROCESS, system, sinkW1, sizes),
    actorFromClient(CROSS_PROCESS_UNCOALESCED, uncoalesced, sinkW1, sizes),
  ];
}

function rawSameProcess(pub: NatsConnection, sub: NatsConnection, sizes: Sizes): Path {
  const subject = `bench.local.${process.pid}`;
  let stats = { count: 0, firstAt: 0, lastAt: 0 };
  sub.subscribe(`${subject}.sink`, {
    callback: () => {
      const now = nowMs();
      if (stats.count === 0) stats.firstAt = now;
      stats.count++;
      stats.lastAt = now;
    },
  });
  const reply = new Uint8Array(16);
  sub.subscribe(`${subject}.req`, { callback: (_e, m) => void m.respond(reply) });
  return {
    name: "raw NATS, 1 process, 2 conns",
    tell: async (count) => {
      await sub.flush();
      stats = { count: 0, firstAt: 0, lastAt: 0 };
      const cpu = cpuMeter();
      const startAt = nowMs();
      await paced(count, sizes.tellChunk, () => pub.publish(`${subject}.sink`, payload), () => pub.flush());
      const end = await waitForCount(async () => ({ ...stats, cpuUs: 0 }), count);
      return rate(end, startAt, count, cpu());
    },
    ask: (count) => sampleLatency(count, () => pub.request(`${subject}.req`, payload, { timeout: 5_000 })),
  };
}

function rawCrossProcess(pub: NatsConnection, prefix: string, sizes: Sizes): Path {
  const decoder = new TextDecoder();
  return {
    name: "raw NATS, cross process",
    tell: async (count) => {
      const read = async (what: string): Promise<ReceiverStats> => JSON.parse(decoder.decode((await pub.request(`${prefix}.${what}`, undefined, { timeout: 5_000 })).data));
      const before = await read("reset");
      const cpu = cpuMeter();
      const startAt = nowMs();
      await paced(count, sizes.tellChunk, () => pub.publish(`${prefix}.sink`, payload), () => pub.flush());
      const end = await waitForCount(() => read("stats"), count);
      return rate(end, startAt, count, cpu() + end.cpuUs - before.cpuUs);
    },
    ask: (count) => sampleLatency(count, () => pub.request(`${prefix}.req`, payload, { timeout: 5_000 })),
  };
}

/** Tell and ask driven by a bench-driver actor inside the node (same- or cross-worker). */
function actorFromDriver(name: string, system: ActorSystem, driver: string, sink: string, sizes: Sizes): Path {
  return {
    name,
    tell: async (count) => {
      const before = await system.ask<ReceiverStats>(sink, "Reset", {});
      const blast = await system.ask<{ startAt: number }>(
        driver,
        "Blast",
        { to: sink, count, chunk: sizes.tellChunk, payloadBytes: PAYLOAD_BYTES },
        { timeoutMs: 120_000 },
      );
      const end = await waitForCount(() => system.ask<ReceiverStats>(sink, "Stats", {}), count);
      return rate(end, blast.startAt, count, end.cpuUs - before.cpuUs);
    },
    ask: (count) => system.ask<LatencySummary>(driver, "AskLoop", { to: sink, count, payloadBytes: PAYLOAD_BYTES }, { timeoutMs: 120_000 }),
  };
}

/** Tell and ask from this process (an ActorSystem client) to an actor in the node process. */
function actorFromClient(name: string, system: ActorSystem, sink: string, sizes: Sizes): Path {
  const body = { payload };
  return {
    name,
    tell: async (count) => {
      const before = await system.ask<ReceiverStats>(sink, "Reset", {});
      const cpu = cpuMeter();
      const startAt = nowMs();
      await paced(count, sizes.tellChunk, () => system.tell(sink, "Data", body), () => system.nc.flush());
      const end = await waitForCount(() => system.ask<ReceiverStats>(sink, "Stats", {}), count);
      return rate(end, startAt, count, cpu() + end.cpuUs - before.cpuUs);
    },
    ask: (count) => sampleLatency(count, () => system.ask(sink, "Req", body, { timeoutMs: 5_000 })),
  };
}

async function paced(count: number, chunk: number, send: () => void, pause: () => Promise<void>): Promise<void> {
  for (let sent = 0; sent < count; ) {
    const end = Math.min(count, sent + chunk);
    for (; sent < end; sent++) send();
    await pause();
  }
}

async function sampleLatency(count: number, once: () => Promise<unknown>): Promise<LatencySummary> {
  const samplesUs = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    await once();
    samplesUs[i] = (performance.now() - t) * 1000;
  }
  return summarize(samplesUs);
}

/** Polls the receiver until it has `expected` messages or stops making progress. */
async function waitForCount(read: () => Promise<ReceiverStats>, expected: number): Promise<ReceiverStats> {
  let last = await read();
  let progressAt = Date.now();
  while (last.count < expected && Date.now() - progressAt < STALL_MS) {
    await new Promise((r) => setTimeout(r, 5));
    const next = await read();
    if (next.count > last.count) progressAt = Date.now();
    last = next;
  }
  return last;
}

function rate(stats: ReceiverStats, startAt: number, sent: number, cpuUs: number): TellResult {
  const seconds = (stats.lastAt - startAt) / 1000;
  return {
    msgsPerSec: stats.count > 0 && seconds > 0 ? stats.count / seconds : 0,
    delivered: stats.count,
    sent,
    cpuUsPerMsg: stats.count > 0 ? cpuUs / stats.count : 0,
  };
}

/** Starts counting this process's CPU time; the returned function reads the µs spent since. */
function cpuMeter(): () => number {
  const start = process.cpuUsage();
  return () => {
    const d = process.cpuUsage(start);
    return d.user + d.system;
  };
}

function report(names: string[], tells: Map<string, TellResult[]>, asks: Map<string, LatencySummary[]>, sizes: Sizes): SuiteResult {
  const tellOf = (n: string) => median(tells.get(n)!.map((t) => t.msgsPerSec));
  const askOf = (n: string, k: "p50Us" | "p99Us") => median(asks.get(n)!.map((a) => a[k]));
  const lostOf = (n: string) => tells.get(n)!.reduce((a, t) => a + (t.sent - t.delivered), 0);
  const cpuOf = (n: string) => median(tells.get(n)!.map((t) => t.cpuUsPerMsg));
  const rawCpu = cpuOf("raw NATS, cross process");
  const rawTell = tellOf("raw NATS, cross process");
  const rawP50 = askOf("raw NATS, cross process", "p50Us");
  const rows = names.map((n) => ({
    path: n,
    "tell msgs/s": Math.round(tellOf(n)),
    "tell vs raw": `${Math.round((tellOf(n) / rawTell) * 100)}%`,
    lost: lostOf(n),
    "CPU µs/msg": Math.round(cpuOf(n) * 100) / 100,
    "CPU vs raw": `${(cpuOf(n) / rawCpu).toFixed(2)}x`,
    "ask p50 µs": askOf(n, "p50Us"),
    "ask p99 µs": askOf(n, "p99Us"),
    "p50 vs raw": `${(askOf(n, "p50Us") / rawP50).toFixed(2)}x`,
  }));
  const xpTell = tellOf(CROSS_PROCESS);
  const xpP50 = askOf(CROSS_PROCESS, "p50Us");
  const targets: Target[] = [
    { name: "cross-process ask p50", rule: "<= 1.3 x raw NATS request p50 (cross process)", measured: xpP50, bound: 1.3 * rawP50, unit: "µs", pass: xpP50 <= 1.3 * rawP50 },
    { name: "cross-process tell", rule: ">= 80% of raw NATS publish→subscribe (cross process)", measured: Math.round(xpTell), bound: Math.round(0.8 * rawTell), unit: "msgs/s", pass: xpTell >= 0.8 * rawTell },
  ];
  return {
    suite: "actors",
    title: `Actor messaging vs raw NATS (${PAYLOAD_BYTES}-byte payload; medians of ${sizes.repetitions} repetition(s))`,
    columns: ["path", "tell msgs/s", "tell vs raw", "lost", "CPU µs/msg", "CPU vs raw", "ask p50 µs", "ask p99 µs", "p50 vs raw"],
    rows,
    targets,
    parameters: { payloadBytes: PAYLOAD_BYTES, workers: WORKERS, ...sizes, raw: { tells: Object.fromEntries(tells), asks: Object.fromEntries(asks) } },
    notes: [
      "'vs raw' compares with raw NATS across processes: a publisher/requester here, a subscriber/responder in a peer process.",
      "tell msgs/s = messages delivered / (last arrival at the receiver - first send).",
      "CPU µs/msg = CPU time of the sending and receiving processes (all threads; not nats-server) per delivered tell; same/cross worker: the node process only.",
      "Skein sends consecutive tells to one actor in one event-loop turn as one NATS message (coalesceTells, default on; also inside the node: same/cross worker); 'uncoalesced' is one NATS message per tell. Raw NATS is one NATS message per payload.",
    ],
  };
}

function push<T>(map: Map<string, T[]>, key: string, value: T): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function addressOn(prefix: string, worker: number): string {
  for (let i = 0; ; i++) {
    const address = `${prefix}-${i}@${NODE}`;
    if (placementOf(address, WORKERS) === worker) return address;
  }
}

interface PeerHandle {
  child: ChildProcess;
  pid: number;
}

function startRawPeer(url: string, prefix: string): Promise<PeerHandle> {
  const script = fileURLToPath(new URL("./fixtures/raw-peer.js", import.meta.url));
  const child = spawn(process.execPath, [script, url, prefix], { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`raw peer not ready after 10 s: ${out}`));
    }, 10_000);
    child.stdout!.setEncoding("utf8");
    child.stdout!.on("data", (c: string) => {
      out += c;
      if (out.includes("raw peer ready")) {
        clearTimeout(timer);
        resolve({ child, pid: child.pid! });
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`raw peer exited (${code}) before it was ready: ${out}`));
    });
  });
}

function stopChild(peer: PeerHandle): Promise<void> {
  if (peer.child.exitCode !== null || peer.child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const killer = setTimeout(() => peer.child.kill("SIGKILL"), 3_000);
    peer.child.once("exit", () => {
      clearTimeout(killer);
      resolve();
    });
    peer.child.kill("SIGTERM");
  });
}
