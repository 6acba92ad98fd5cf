// `skein chaos run`: one scenario end to end. Starts a cluster (or uses --nats), runs the
// workload (actors/chaos/workload.ts) while a seeded schedule of faults (schedule.ts) is
// applied by the nemesis (nemesis.ts), heals, waits until the cluster is quiet, reads every
// partition back (and, for its own cluster, every replica's log from disk once stopped),
// checks the history (checker.ts) and writes history.jsonl + timeline.svg.

import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { startLocalCluster, type LocalCluster } from "./broker-cmd.js";
import { natsOptions, type ConnectionFlags } from "./common.js";
import { startNatsServer, type NatsServerHandle } from "../runtime/nats-server.js";
import { ClusterClient } from "../actors/cluster/admin.js";
import { partitionDir } from "../actors/cluster/replica.js";
import { PartitionLog } from "../actors/log/log.js";
import { HistoryRecorder, parseHistoryJsonl, type ReadRecord } from "../actors/chaos/history.js";
import { checkHistory, summarize, verdictJson, type CheckResult } from "../actors/chaos/checker.js";
import { renderTimeline } from "../actors/chaos/timeline.js";
import { Nemesis, waitUntil as waitUntilBounded, type OwnedBrokers } from "../actors/chaos/nemesis.js";
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
  /** Test hook: plant a synthetic anomaly in the history before checking. */
  plantAnomaly?: "lost";
}

/** Broker settings of the runner's own cluster: faults allowed, failure detection in ~2 s. */
const BROKER_ARGS = ["--allow-faults", "--session-timeout-ms", "2000", "--replica-lag-max-ms", "2000", "--offsets-partitions", "3"];
const GROUP_SESSION_TIMEOUT_MS = 3_000;
/** Longest wait after the heal for an acknowledged send on every partition, ms. */
const RECOVERY_WAIT_MS = 15_000;
/** Longest wait for the group to read up to the high watermarks once producers stopped, ms. */
const DRAIN_TIMEOUT_MS = 15_000;
/** Longest wait after the heal for every replica to be back in its ISR, ms (the rest of the run needs only leaders). */
const QUIET_ISR_WAIT_MS = 4_000;
/**
 * Longest wait for a settled, stable view for the final read, ms: with producers stopped every
 * high watermark reaches its leader's log end once the followers have fetched, and a read
 * before that would miss acknowledged records a new leader has not yet marked committed.
 */
const COMMITTED_WAIT_MS = 10_000;

/** Runs a scenario; resolves with the exit code (0 clean, 1 safety anomalies). */
export async function runChaos(o: ChaosRunOptions, flags: ConnectionFlags): Promise<number> {
  const outDir = resolve(o.out ?? mkdtempSync(join(tmpdir(), `skein-chaos-${o.scenario}-`)));
  mkdirSync(outDir, { recursive: true });
  const started = Date.now();
  const log = (line: string) => process.stderr.write(`chaos: [${((Date.now() - started) / 1000).toFixed(1)} s] ${line}\n`);
  const run = new ScenarioRun(o, flags, log, outDir);
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
  console.log(`history, timeline and verdict in ${outDir} (history.jsonl, timeline.svg, verdict.json${flags.nats ? "" : ", broker-N.log"})`);
  if (o.json) console.log(verdict);
  return result.ok ? 0 : 1;
}

/**
 * `skein chaos check`: judges a saved history again; prints the summary (and the verdict line
 * with --json); returns the exit code (0 clean, 1 anomalies). Scenario and seed come from
 * verdict.json next to the history when there is one.
 */
export function checkSavedHistory(file: string, o: { json: boolean; compactedTopics: string[] }): number {
  const history = parseHistoryJsonl(readFileSync(file, "utf8"));
  const result = checkHistory(history, { compactedTopics: o.compactedTopics });
  const verdictFile = join(dirname(resolve(file)), "verdict.json");
  const saved = existsSync(verdictFile) ? (JSON.parse(readFileSync(verdictFile, "utf8")) as { scenario?: string; seed?: number }) : {};
  console.log(`${file}: ${history.length} operations${saved.scenario ? ` (scenario ${saved.scenario}, seed ${saved.seed})` : ""}`);
  console.log(summarize(result));
  if (o.json) console.log(verdictJson(result, { scenario: saved.scenario ?? null, seed: saved.seed ?? null }));
  return result.ok ? 0 : 1;
}

class ScenarioRun {
  readonly history = new HistoryRecorder();
  steps: Step[] = [];
  private local: LocalCluster | null = null;
  private natsServer: NatsServerHandle | null = null;
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
    /** Where the runner's own brokers' output goes (broker-ID.log): warnings such as truncations explain an anomaly. */
    private readonly outDir: string,
  ) {
    const suffix = flags.nats ? `-${o.seed}-${Date.now().toString(36)}` : "";
    this.topic = `chaos${suffix}`;
    this.group = `chaos-group${suffix}`;
  }

  async execute(): Promise<CheckResult> {
    const o = this.o;
    const url = await this.startNats();
    const nats = natsOptions(this.flags, url);
    const workload = (this.workload = new Workload({ nats, cluster: this.flags.cluster, topic: this.topic, partitions: o.partitions, group: this.group, ratePerSecond: o.rate, sessionTimeoutMs: GROUP_SESSION_TIMEOUT_MS, history: this.history, log: this.log }));
    // The workload's client nodes boot while the brokers do: start-up is most of a short run.
    await Promise.all([this.startBrokers(url), workload.prepare()]);
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
    // The controller counts live brokers from its own heartbeat listing, which can trail the
    // registrations read above by a moment after start-up: refused for that reason, try again.
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        await client.createTopic(this.topic, o.partitions, rf, { "min.insync.replicas": String(Math.min(2, rf)) });
        break;
      } catch (e) {
        if (!isSkeinError(e, ErrorCode.INVALID_REPLICATION_FACTOR) || Date.now() > deadline) throw e;
        await sleep(200);
      }
    }
    await client.waitForLeaders(this.topic, 30_000);
    this.steps = scheduleFor(o.scenario, o.seed, { durationMs: o.durationS * 1000, brokers: this.brokerIds.length, partitions: o.partitions, consumers: 2 });
    this.log(`${o.scenario} seed ${o.seed}: ${this.steps.length} faults over ${o.durationS} s on ${this.brokerIds.length} brokers`);

    await workload.start(client);
    await waitUntil(() => workload.acked > 0, 20_000, "a first acknowledged send");
    await this.runSchedule();
    const healed = await this.heal();
    await this.waitQuiet();
    this.log("quiet: every broker up, every partition led");
    // Every partition's recovery is measured by a send invoked after the heal and acknowledged.
    await waitUntil(() => workload.ackedOnEveryPartitionSince(healed), RECOVERY_WAIT_MS, "an acknowledged send on every partition after the heal").catch((e) => this.log((e as Error).message));
    await workload.stopProducers();
    this.log("producers stopped");
    if (await this.drainConsumers()) this.log("the group read up to the high watermarks");
    await workload.stopConsumers();
    this.history.record({ process: "checker", f: "group-end", type: "ok", group: this.group, topics: [this.topic] });
    this.log("consumers stopped");
    const partitions = await finalRead(client, this.topic, this.history, { timeoutMs: COMMITTED_WAIT_MS, log: this.log });
    this.log(`final read: ${partitions.map((p) => `p${p.partition} leader ${p.leader} HW ${p.highWatermark} ISR [${p.isr}]`).join(", ")}`);
    if (this.local) await this.readReplicas(partitions);
    if (o.plantAnomaly === "lost") this.plantLost();
    const result = checkHistory(this.history.ops);
    this.log("checked");
    return result;
  }

  /** The given --nats URL, or the runner's own nats-server. */
  private async startNats(): Promise<string> {
    if (this.flags.nats) return this.flags.nats;
    this.log(`starting nats-server and ${this.o.brokers} brokers (${this.o.workers} workers each, faults allowed)`);
    this.natsServer = await startNatsServer();
    return this.natsServer.url;
  }

  /** The runner's own brokers (none with --nats). */
  private async startBrokers(url: string): Promise<void> {
    if (!this.natsServer) return;
    this.dataDir = mkdtempSync(join(tmpdir(), "skein-chaos-data-"));
    this.local = await startLocalCluster({ ...this.flags, nats: url, brokers: this.o.brokers, workers: this.o.workers, data: this.dataDir }, { extraBrokerArgs: BROKER_ARGS, logDir: this.outDir });
    this.log("brokers ready");
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

  /** Lifts every fault still in force: transport rules, paused and stopped brokers. Returns the heal's history index. */
  private async heal(): Promise<number> {
    const n = this.nemesis!;
    for (const broker of [...this.paused.keys()]) this.resume(broker);
    for (const broker of [...this.down]) {
      await n.restartBroker(broker).catch((e) => this.log(`restarting broker ${broker} failed: ${(e as Error).message}`));
      this.down.delete(broker);
    }
    const cleared = await n.clearTransportFaults().catch(() => []);
    const op = this.history.record({ process: "nemesis", f: "heal", type: "ok", detail: cleared.length ? `cleared ${cleared.join(", ")}` : "nothing in force" });
    this.log("healed");
    return op.index;
  }

  // Quiet and read-back -----------------------------------------------------------------------------

  private async waitQuiet(): Promise<void> {
    const n = this.nemesis!;
    await waitUntil(async () => {
      const live = await n.brokers();
      return this.brokerIds.every((b) => live.has(b));
    }, 30_000, "every broker registered").catch((e) => this.log((e as Error).message));
    await this.client!.waitForLeaders(this.topic, 30_000);
    await this.waitFullIsr(QUIET_ISR_WAIT_MS).catch(async (e) => {
      const short = (await this.client!.meta.listPartitions(this.topic)).filter((s) => s.value.isr.length < s.value.replicas.length);
      this.log(`${(e as Error).message}; going on (replicas outside the ISR are checked up to their log end): ${short.map((s) => `p${s.value.partition} ISR [${s.value.isr}] of [${s.value.replicas}]`).join(", ")}`);
    });
  }

  private async waitFullIsr(timeoutMs: number): Promise<void> {
    await waitUntil(async () => {
      const states = await this.client!.meta.listPartitions(this.topic);
      return states.every((s) => s.value.leader >= 0 && s.value.isr.length === s.value.replicas.length);
    }, timeoutMs, `every partition of ${this.topic} with its full ISR`);
  }

  /**
   * Lets the group read up to every partition's high watermark (bounded). A group that stays
   * behind fails the run: the checker reports it as undrained (and its acknowledged records as
   * unseen) from the `group-end` recorded next. The targets are described again on every check
   * and count only when settled (each leader's HW at its log end): a leader that just took over
   * (a preferred-leader move after the heal) reports an HW below its predecessor's for a moment,
   * and draining to that stopped the group short of records it had yet to read.
   */
  private async drainConsumers(): Promise<boolean> {
    let targets: Array<{ partition: number; highWatermark: number | null }> = [];
    const behind = () => targets.filter((p) => p.highWatermark === null || this.workload!.polledUpTo(p.partition) < p.highWatermark - 1);
    try {
      await waitUntil(async () => {
        const d = await this.client!.describeTopic(this.topic);
        targets = d.partitions.map((p) => ({ partition: p.partition, highWatermark: p.highWatermark === p.logEndOffset ? p.highWatermark : null }));
        return behind().length === 0;
      }, DRAIN_TIMEOUT_MS, "the group to read up to the high watermarks");
      return true;
    } catch (e) {
      this.log(`${(e as Error).message}; behind: ${behind().map((p) => `p${p.partition} polled up to ${this.workload!.polledUpTo(p.partition)}, HW ${p.highWatermark ?? "not settled"}`).join(", ")}`);
      return false;
    }
  }

  /**
   * Every replica's log from disk, as final reads with `replica`. The brokers are SIGKILLed
   * first: what a crash leaves on disk is what must hold every acknowledged record (and it is
   * quicker than a graceful stop).
   */
  private async readReplicas(partitions: Array<{ partition: number; highWatermark: number; isr: number[]; replicas: number[] }>): Promise<void> {
    await this.client?.close();
    this.client = null;
    await Promise.all([...this.local!.brokers.values()].map((b) => b.kill()));
    this.log("brokers killed; reading every replica's log");
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

  /** An acknowledged send at offset 0 of partition 0 whose value nothing wrote: lost (and unseen by the group). */
  private plantLost(): void {
    const send = { process: "planted", f: "send", topic: this.topic, partition: 0, value: "planted-never-written" } as const;
    this.history.record({ ...send, type: "invoke" });
    this.history.record({ ...send, type: "ok", offset: 0 });
    this.log("planted a synthetic lost write (--plant-anomaly lost)");
  }

  async cleanup(): Promise<void> {
    for (const broker of [...this.paused.keys()]) this.resume(broker);
    await this.workload?.stopProducers().catch(() => undefined);
    await this.workload?.stopConsumers().catch(() => undefined);
    await this.client?.close().catch(() => undefined);
    await this.local?.stop().catch(() => undefined);
    await this.natsServer?.stop().catch(() => undefined);
    if (this.dataDir && !this.o.keepData) rmSync(this.dataDir, { recursive: true, force: true });
    else if (this.dataDir) this.log(`data kept in ${this.dataDir}`);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  return waitUntilBounded(check, timeoutMs, what, 100);
}
