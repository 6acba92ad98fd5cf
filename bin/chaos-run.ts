// `skein chaos run`: one scenario end to end. Starts a cluster (or uses --nats), runs the
// workload (actors/chaos/workload.ts) while a seeded schedule of faults (schedule.ts) is
// applied by the nemesis (nemesis.ts), heals, waits until the cluster is quiet, reads every
// partition back (and, for its own cluster, every replica's log from disk once stopped),
// checks the history (checker.ts) and writes history.jsonl + timeline.svg.

import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startLocalCluster, type LocalCluster } from "./broker-cmd.js";
import { natsOptions, type ConnectionFlags } from "./common.js";
import { ClusterClient } from "../actors/cluster/admin.js";
import { partitionDir } from "../actors/cluster/replica.js";
import { PartitionLog } from "../actors/log/log.js";
import { HistoryRecorder, type ReadRecord } from "../actors/chaos/history.js";
import { checkHistory, summarize, verdictJson, type CheckResult } from "../actors/chaos/checker.js";
import { renderTimeline } from "../actors/chaos/timeline.js";
import { Nemesis, type OwnedBrokers } from "../actors/chaos/nemesis.js";
import { Workload, finalRead } from "../actors/chaos/workload.js";
import { COOLDOWN_MS, describeStep, scheduleFor, type Scenario, type Step } from "../actors/chaos/schedule.js";
import { decodeRecords, iterateBatches } from "../protocol/record-batch.js";
import { ErrorCode, SkeinError, isSkeinError } from "../protocol/errors.js";

export interface ChaosRunOptions {
  scenario: Scenario;
  seed: number;
  /** Workload duration (faults happen inside it), seconds. */
  durationS: number;
  /** Output directory; default a new temp dir. */
  out?: string;
  json: boolean;
  /** Brokers of the runner's own cluster (ignored with --nats). */
  brokers: number;
  /** Worker threads per broker of the runner's own cluster. */
  workers: number;
  partitions: number;
  /** Sends per second per producer. */
  rate: number;
  /** Keep the runner's own cluster's data directory. */
  keepData: boolean;
}

/** Broker settings of the runner's own cluster: faults allowed, failure detection in ~2 s. */
const BROKER_ARGS = ["--allow-faults", "--session-timeout-ms", "2000", "--replica-lag-max-ms", "2000", "--offsets-partitions", "3"];
const GROUP_SESSION_TIMEOUT_MS = 3_000;

/** Runs a scenario; resolves with the exit code (0 clean, 1 safety anomalies). */
export async function runChaos(o: ChaosRunOptions, flags: ConnectionFlags): Promise<number> {
  const outDir = resolve(o.out ?? mkdtempSync(join(tmpdir(), `skein-chaos-${o.scenario}-`)));
  mkdirSync(outDir, { recursive: true });
  const started = Date.now();
  const log = (line: string) => process.stderr.write(`chaos: [${((Date.now() - started) / 1000).toFixed(1)} s] ${line}\n`);
  const run = new ScenarioRun(o, flags, log);
  let result: CheckResult;
  try {
    result = await run.execute();
  } finally {
    await run.cleanup();
  }
  const history = run.history;
  writeFileSync(join(outDir, "history.jsonl"), history.toJsonl());
  const title = `${o.scenario} seed ${o.seed}`;
  writeFileSync(join(outDir, "timeline.svg"), renderTimeline(history.ops, result, { title }));
  const verdict = verdictJson(result, { scenario: o.scenario, seed: o.seed });
  writeFileSync(join(outDir, "verdict.json"), verdict + "\n");
  console.log(`scenario ${o.scenario}, seed ${o.seed}, ${o.durationS} s: ${run.steps.length} faults`);
  for (const step of run.steps) console.log(`  ${describeStep(step)}`);
  console.log(summarize(result));
  console.log(`history, timeline and verdict in ${outDir} (history.jsonl, timeline.svg, verdict.json)`);
  if (o.json) console.log(verdict);
  return result.ok ? 0 : 1;
}

class ScenarioRun {
  readonly history = new HistoryRecorder();
  steps: Step[] = [];
  private local: LocalCluster | null = null;
  private dataDir: string | null = null;
  private client: ClusterClient | null = null;
  private nemesis: Nemesis | null = null;
  private workload: Workload | null = null;
  private brokerIds: number[] = [];
  /** Brokers the nemesis took down and has not started again. */
  private readonly down = new Set<number>();
  /** Paused brokers and their pids. */
  private readonly paused = new Map<number, number>();
  private readonly topic: string;
  private readonly group: string;

  constructor(
    private readonly o: ChaosRunOptions,
    private readonly flags: ConnectionFlags,
    private readonly log: (line: string) => void,
  ) {
    const suffix = flags.nats ? `-${o.seed}-${Date.now().toString(36)}` : "";
    this.topic = `chaos${suffix}`;
    this.group = `chaos-group${suffix}`;
  }

  async execute(): Promise<CheckResult> {
    const o = this.o;
    const url = await this.startCluster();
    const nats = natsOptions(this.flags, url);
    const client = (this.client = await ClusterClient.connect({ nats, cluster: this.flags.cluster, name: "skein:chaos" }));
    this.nemesis = new Nemesis(client, { owned: this.ownedBrokers() });
    client.system.events("*", (e) => {
      if (e.type === "actor.restarted") this.log(`actor ${e.address} restarted after: ${e.error}`);
      else if (e.type === "actor.stopped" && !/shutdown|stopped$/.test(e.reason)) this.log(`actor ${e.address} stopped: ${e.reason}`);
    });
    await waitUntil(async () => ((await client.status()).controller?.epoch ?? -1) >= 0, 30_000, "an active controller");
    this.brokerIds = [...(await this.nemesis.brokers()).keys()].sort((a, b) => a - b);
    if (o.scenario === "isolate-leader" || o.scenario === "mixed") await this.requireFaultsAllowed();
    const rf = Math.min(3, this.brokerIds.length);
    await client.createTopic(this.topic, o.partitions, rf, { "min.insync.replicas": String(Math.min(2, rf)) });
    await client.waitForLeaders(this.topic, 30_000);
    this.steps = scheduleFor(o.scenario, o.seed, { durationMs: o.durationS * 1000, brokers: this.brokerIds.length, partitions: o.partitions, consumers: 2 });
    this.log(`${o.scenario} seed ${o.seed}: ${this.steps.length} faults over ${o.durationS} s on ${this.brokerIds.length} brokers`);

    const workload = (this.workload = new Workload(
      { nats, cluster: this.flags.cluster, topic: this.topic, partitions: o.partitions, group: this.group, ratePerSecond: o.rate, sessionTimeoutMs: GROUP_SESSION_TIMEOUT_MS, history: this.history, log: this.log },
      client,
    ));
    await workload.start();
    await waitUntil(() => workload.acked > 0, 20_000, "a first acknowledged send");
    await this.runSchedule();
    await this.heal();
    await this.waitQuiet();
    this.log("quiet: every broker up, every partition led with its full ISR");
    await sleep(1_500); // acknowledged sends after the heal: every partition's recovery is measured
    await workload.stopProducers();
    this.log("producers stopped");
    await this.drainConsumers();
    this.log("the group read up to the high watermarks");
    await workload.stopConsumers();
    this.log("consumers stopped");
    const partitions = await finalRead(client, this.topic, this.history);
    this.log(`final read: ${partitions.map((p) => `p${p.partition} HW ${p.highWatermark} ISR [${p.isr}]`).join(", ")}`);
    if (this.local) await this.readReplicas(partitions);
    return checkHistory(this.history.ops);
  }

  private async startCluster(): Promise<string> {
    if (this.flags.nats) return this.flags.nats;
    this.dataDir = mkdtempSync(join(tmpdir(), "skein-chaos-data-"));
    this.log(`starting nats-server and ${this.o.brokers} brokers (${this.o.workers} workers each, faults allowed)`);
    this.local = await startLocalCluster({ ...this.flags, brokers: this.o.brokers, workers: this.o.workers, data: this.dataDir }, { extraBrokerArgs: BROKER_ARGS });
    return this.local.natsUrl;
  }

  /** Refuses to start a scenario whose transport faults the brokers would refuse. */
  private async requireFaultsAllowed(): Promise<void> {
    const refused: number[] = [];
    for (const b of this.brokerIds) {
      await this.client!.system.listFaults(String(b)).catch((e) => {
        if (isSkeinError(e, ErrorCode.FAULTS_NOT_ALLOWED)) refused.push(b);
        else throw e;
      });
    }
    if (refused.length > 0) {
      throw new SkeinError(ErrorCode.FAULTS_NOT_ALLOWED, `scenario ${this.o.scenario} injects transport faults, but broker${refused.length > 1 ? "s" : ""} ${refused.join(", ")} refuse them: start brokers with --allow-faults (skein up --allow-faults)`, { brokers: refused });
    }
  }

  private ownedBrokers(): OwnedBrokers | undefined {
    const local = this.local;
    if (!local) return undefined;
    const running = (b: number) => {
      const h = local.brokers.get(b);
      return h && h.child.exitCode === null && h.child.signalCode === null ? h : undefined;
    };
    return {
      kill: async (b) => running(b)?.kill(),
      stop: async (b) => {
        await running(b)?.stop();
      },
      start: async (b) => {
        await local.startBroker(b);
      },
      pid: (b) => running(b)?.pid,
    };
  }

  // The nemesis ----------------------------------------------------------------------------------

  private async runSchedule(): Promise<void> {
    const t0 = Date.now();
    const endAt = t0 + this.o.durationS * 1000;
    for (const step of this.steps) {
      const wait = t0 + step.atMs - Date.now();
      if (wait > 0) await sleep(wait);
      // A rolling restart is a procedure: it completes even when it runs past the workload's end.
      if (Date.now() > endAt - COOLDOWN_MS / 2 && step.kind !== "restart-broker") {
        this.log(`skipped (the schedule ran late): ${describeStep(step)}`);
        continue;
      }
      this.log(describeStep(step));
      try {
        await this.runStep(step);
      } catch (e) {
        this.log(`step failed (${isSkeinError(e) ? e.code : "error"}): ${(e as Error).message}`);
      }
    }
    const rest = endAt - Date.now();
    if (rest > 0) await sleep(rest);
  }

  private fault(type: "start" | "end", kind: string, target: string, detail?: string): void {
    this.history.record({ process: "nemesis", f: "fault", type, kind, target, ...(detail ? { detail } : {}) });
  }

  private async runStep(step: Step): Promise<void> {
    const n = this.nemesis!;
    const topic = this.topic;
    switch (step.kind) {
      case "kill-leader-worker": {
        const broker = await n.leaderOf(topic, step.partition);
        const worker = await n.workerOf(broker, `replica/${topic}/${step.partition}@${broker}`);
        this.fault("start", "kill-worker", `b${broker}/w${worker}`, `leader of ${topic}/${step.partition}`);
        await n.killWorker(broker, worker, `leader of ${topic}/${step.partition}`);
        this.fault("end", "kill-worker", `b${broker}/w${worker}`);
        return;
      }
      case "kill-broker": {
        const broker = step.broker ?? (await n.leaderOf(topic, step.partition!));
        return this.killAndRestart(broker, step.restartAfterMs, "kill-broker");
      }
      case "pause-broker": {
        const broker = await n.leaderOf(topic, step.partition);
        this.fault("start", "pause-broker", `b${broker}`, `leader of ${topic}/${step.partition}, ${step.ms} ms`);
        this.paused.set(broker, await n.pauseBroker(broker));
        await sleep(step.ms);
        this.resume(broker);
        return;
      }
      case "isolate": {
        const broker = await n.leaderOf(topic, step.partition);
        this.fault("start", "isolate", `b${broker}`, `leader of ${topic}/${step.partition}, ${step.ms} ms`);
        await n.injectTransportFault({ kind: "isolate", node: String(broker), ms: step.ms, seed: this.o.seed });
        await sleep(step.ms);
        this.fault("end", "isolate", `b${broker}`);
        return;
      }
      case "kill-controller": {
        if (step.how === "broker") return this.killAndRestart(await n.controller(), step.restartAfterMs, "kill-controller");
        const broker = await n.controller();
        const worker = await n.workerOf(broker, `controller@${broker}`);
        this.fault("start", "kill-controller", `b${broker}/w${worker}`, "the controller's worker");
        await n.killWorker(broker, worker, "controller");
        this.fault("end", "kill-controller", `b${broker}/w${worker}`);
        return;
      }
      case "kill-consumer": {
        const name = `c${step.consumer}`;
        this.fault("start", "kill-consumer", name);
        await this.workload!.killConsumer(step.consumer);
        this.fault("end", "kill-consumer", name);
        return;
      }
      case "restart-broker": {
        this.fault("start", "restart-broker", `b${step.broker}`, `graceful stop, start after ${step.restartAfterMs} ms`);
        this.down.add(step.broker);
        const t = Date.now();
        await n.stopBroker(step.broker);
        const stoppedMs = Date.now() - t;
        await sleep(step.restartAfterMs);
        await n.restartBroker(step.broker);
        this.down.delete(step.broker);
        const startedMs = Date.now() - t;
        await this.waitFullIsr(20_000);
        this.log(`broker ${step.broker}: stopped in ${stoppedMs} ms, registered again at ${startedMs} ms, back in every ISR at ${Date.now() - t} ms`);
        this.fault("end", "restart-broker", `b${step.broker}`);
        return;
      }
      default: {
        const detail = step.kind === "delay" ? `${step.delayMs}+${step.jitterMs} ms` : `p=${step.probability}`;
        this.fault("start", step.kind, `${step.from} -> ${step.to}`, `${detail}, ${step.ms} ms`);
        await n.injectTransportFault({ kind: step.kind, from: step.from, to: step.to, probability: step.probability, delayMs: step.delayMs, jitterMs: step.jitterMs, ms: step.ms, seed: this.o.seed });
        await sleep(step.ms);
        this.fault("end", step.kind, `${step.from} -> ${step.to}`);
      }
    }
  }

  private async killAndRestart(broker: number, restartAfterMs: number, kind: string): Promise<void> {
    const n = this.nemesis!;
    this.fault("start", kind, `b${broker}`, `SIGKILL, restart after ${restartAfterMs} ms`);
    this.down.add(broker);
    await n.killBroker(broker);
    await sleep(restartAfterMs);
    await n.restartBroker(broker);
    this.down.delete(broker);
    this.fault("end", kind, `b${broker}`);
  }

  private resume(broker: number): void {
    const pid = this.paused.get(broker);
    if (pid === undefined) return;
    this.paused.delete(broker);
    this.nemesis!.resumeBroker(broker, pid);
    this.fault("end", "pause-broker", `b${broker}`);
  }

  /** Lifts every fault still in force: transport rules, paused and stopped brokers. */
  private async heal(): Promise<void> {
    const n = this.nemesis!;
    for (const broker of [...this.paused.keys()]) this.resume(broker);
    for (const broker of [...this.down]) {
      await n.restartBroker(broker).catch((e) => this.log(`restarting broker ${broker} failed: ${(e as Error).message}`));
      this.down.delete(broker);
    }
    const cleared = await n.clearTransportFaults().catch(() => []);
    this.history.record({ process: "nemesis", f: "heal", type: "ok", detail: cleared.length ? `cleared ${cleared.join(", ")}` : "nothing in force" });
    this.log("healed");
  }

  // Quiet and read-back -----------------------------------------------------------------------------

  private async waitQuiet(): Promise<void> {
    const n = this.nemesis!;
    await waitUntil(async () => {
      const live = await n.brokers();
      return this.brokerIds.every((b) => live.has(b));
    }, 30_000, "every broker registered").catch((e) => this.log((e as Error).message));
    await this.client!.waitForLeaders(this.topic, 30_000);
    await this.waitFullIsr(30_000).catch((e) => this.log((e as Error).message));
  }

  private async waitFullIsr(timeoutMs: number): Promise<void> {
    await waitUntil(async () => {
      const states = await this.client!.meta.listPartitions(this.topic);
      return states.every((s) => s.value.leader >= 0 && s.value.isr.length === s.value.replicas.length);
    }, timeoutMs, `every partition of ${this.topic} with its full ISR`);
  }

  /** Lets the group read up to every partition's high watermark (bounded). */
  private async drainConsumers(): Promise<void> {
    const d = await this.client!.describeTopic(this.topic);
    await waitUntil(() => d.partitions.every((p) => this.workload!.polledUpTo(p.partition) >= (p.highWatermark ?? 0) - 1), 10_000, "the group to read up to the high watermarks").catch((e) =>
      this.log((e as Error).message),
    );
  }

  /** Every replica's log from disk (the cluster is stopped first), as final reads with `replica`. */
  private async readReplicas(partitions: Array<{ partition: number; highWatermark: number; isr: number[]; replicas: number[] }>): Promise<void> {
    await this.client?.close();
    this.client = null;
    await this.local!.stop();
    const decoder = new TextDecoder();
    const quiet = { warn() {}, info() {} };
    for (const p of partitions) {
      for (const broker of p.replicas) {
        const dir = partitionDir(join(this.dataDir!, `broker-${broker}`), this.topic, p.partition);
        if (!existsSync(dir)) continue;
        const log = await PartitionLog.open(dir, {}, { logger: quiet });
        const upTo = p.isr.includes(broker) ? p.highWatermark : Math.min(p.highWatermark, log.logEndOffset);
        const records: ReadRecord[] = [];
        for (let offset = log.logStartOffset; offset < upTo; ) {
          const r = await log.read(offset, { maxBytes: 1 << 20, maxOffset: upTo });
          let next = offset;
          for (const { pos } of iterateBatches(r.data)) {
            for (const rec of decodeRecords(r.data, pos)) {
              if (rec.offset < offset || rec.offset >= upTo) continue;
              records.push({ offset: rec.offset, value: rec.value ? decoder.decode(rec.value) : "" });
              next = rec.offset + 1;
            }
          }
          if (next === offset) break;
          offset = next;
        }
        this.history.record({ process: "checker", f: "final-read", type: "ok", topic: this.topic, partition: p.partition, replica: `b${broker}`, highWatermark: upTo, logStartOffset: log.logStartOffset, records });
        await log.close();
      }
    }
  }

  async cleanup(): Promise<void> {
    for (const broker of [...this.paused.keys()]) this.resume(broker);
    await this.workload?.stopProducers().catch(() => undefined);
    await this.workload?.stopConsumers().catch(() => undefined);
    await this.client?.close().catch(() => undefined);
    await this.local?.stop().catch(() => undefined);
    if (this.dataDir && !this.o.keepData) rmSync(this.dataDir, { recursive: true, force: true });
    else if (this.dataDir) this.log(`data kept in ${this.dataDir}`);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await Promise.resolve().then(check).catch(() => false))) {
    if (Date.now() > deadline) throw new SkeinError(ErrorCode.TIMEOUT, `timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}
