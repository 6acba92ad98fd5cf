// Runs load clients (bench/fixtures/load-client.ts), one OS process each: starts them, waits
// until every one is connected, starts them together and aggregates their results.

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { LoadResult, LoadSpec } from "./fixtures/load-client.js";
import { mergeLatencies, type LatencyPercentiles } from "./latency.js";

const CLIENT = fileURLToPath(new URL("./fixtures/load-client.js", import.meta.url));

export interface LoadRun {
  records: number;
  errors: number;
  seconds: number;
  recordsPerSec: number;
  /** CPU time of the load clients per record, µs (servers not included). */
  clientCpuUsPerRecord: number;
  /** Context switches of the load clients' threads over the run (servers not included). */
  clientContextSwitches: number;
  /** Publish→ack latency of the producers (fixed-rate runs). */
  ackLatency: LatencyPercentiles | null;
  /** Produce→consume latency seen by the background consumers (runs with one). */
  endToEndLatency: LatencyPercentiles | null;
}

interface Client {
  child: ChildProcess;
  ready: Promise<void>;
  result: Promise<LoadResult>;
}

function startClient(spec: LoadSpec, env: NodeJS.ProcessEnv | undefined, onMeasuring?: () => void): Client {
  const child = spawn(process.execPath, ["--enable-source-maps", CLIENT, JSON.stringify(spec)], { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, ...env } });
  let out = "";
  let err = "";
  let markReady: () => void = () => undefined;
  const ready = new Promise<void>((r) => (markReady = r));
  const result = new Promise<LoadResult>((resolve, reject) => {
    child.stdout!.setEncoding("utf8");
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (c: string) => (err = (err + c).slice(-8192)));
    child.stdout!.on("data", (c: string) => {
      out += c;
      const lines = out.split("\n");
      out = lines.pop() ?? "";
      for (const line of lines) {
        if (line === "ready") markReady();
        else if (line === "measuring") onMeasuring?.();
        else if (line.startsWith("result ")) resolve(JSON.parse(line.slice(7)) as LoadResult);
        else if (line.startsWith("error ")) reject(new Error(`${spec.kind}: ${line.slice(6)}`));
      }
    });
    child.once("exit", (code) => reject(new Error(`${spec.kind} load client exited (${code}) without a result: ${err.trim().slice(-2000)}`)));
  });
  result.catch(() => markReady());
  return { child, ready, result };
}

/**
 * Runs the given load clients together: all connect (and warm up) first, then all start at once
 * (`onStart` is called just before: servers' CPU is counted from there; `onMeasuring` when a
 * consumer with warmupRecords has read them, to count from there instead). The clock
 * runs from the earliest first record to the latest last ack/receipt. `background` clients
 * (e.g. a subscriber counting what publishers send) start first and are waited for too.
 */
export async function runLoad(specs: LoadSpec[], options: { timeoutMs?: number; env?: NodeJS.ProcessEnv; background?: LoadSpec[]; onStart?: () => unknown; onMeasuring?: () => void } = {}): Promise<LoadRun> {
  const background = (options.background ?? []).map((s) => startClient(s, options.env, options.onMeasuring));
  const clients = specs.map((s) => startClient(s, options.env, options.onMeasuring));
  const all = [...background, ...clients];
  const timer = setTimeout(() => all.forEach((c) => c.child.kill("SIGKILL")), options.timeoutMs ?? 300_000);
  try {
    await Promise.all(all.map((c) => Promise.race([c.ready, c.result.then(() => undefined)])));
    await startProfiles();
    await options.onStart?.();
    for (const c of background) c.child.stdin!.write("go\n");
    for (const c of clients) c.child.stdin!.write("go\n");
    const fg = await Promise.all(clients.map((c) => c.result));
    const bg = await Promise.all(background.map((c) => c.result));
    return aggregate(fg, bg);
  } finally {
    clearTimeout(timer);
    // A client exits by itself after its result (a profile may still be being written).
    await Promise.all(all.map((c) => exitedWithin(c.child, 5_000)));
  }
}

/** Under `bench --profile`: processes start sampling now (see fixtures/cpu-profile.cjs). */
export async function startProfiles(): Promise<void> {
  const dir = process.env.SKEIN_CPU_PROF_DIR;
  if (!dir || existsSync(join(dir, "start"))) return;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "start"), "");
  await new Promise((r) => setTimeout(r, 250));
}

function exitedWithin(child: ChildProcess, ms: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), ms);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function aggregate(producers: LoadResult[], receivers: LoadResult[]): LoadRun {
  // With receivers (raw NATS) the count and end time are what the receivers saw.
  const measured = receivers.length > 0 ? receivers : producers;
  const startAt = Math.min(...producers.map((r) => r.startAt));
  const endAt = Math.max(...measured.map((r) => r.endAt));
  const records = measured.reduce((n, r) => n + r.records, 0);
  const errors = [...producers, ...receivers].reduce((n, r) => n + r.errors, 0);
  const seconds = Math.max((endAt - startAt) / 1000, 1e-6);
  const cpuUs = [...producers, ...receivers].reduce((n, r) => n + r.cpuUs, 0);
  return {
    records,
    errors,
    seconds,
    recordsPerSec: records / seconds,
    clientCpuUsPerRecord: records > 0 ? cpuUs / records : 0,
    clientContextSwitches: [...producers, ...receivers].reduce((n, r) => n + r.contextSwitches, 0),
    ackLatency: mergeLatencies(producers.map((r) => r.latency)),
    endToEndLatency: mergeLatencies(receivers.map((r) => r.latency)),
  };
}
