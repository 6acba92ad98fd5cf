// Failover: how long writes stop when a partition leader goes away.
// A producer (the public API, idempotent, acks=all, one record per send, sends back to back)
// writes to a 1-partition RF 3 topic on 3 brokers (2 workers each). Then:
//   worker  the worker thread hosting the leader replica is killed (the supervisor restarts
//           it and reports the lost actors at once; the controller moves leadership);
//   broker  the leader's broker process gets SIGKILL (found dead after the session
//           timeout, 3 s) and is started again afterwards;
//   controller-worker  the worker thread hosting the active controller is killed (a standby
//           takes the lease over on the worker-lost event, or the restarted worker retakes it);
//   controller-broker  the active controller's broker gets SIGKILL (its lease expires after
//           the session timeout) and is started again afterwards.
// Measured: from the kill to the first acknowledgement of a record *sent after* the kill,
// the longest gap between two acknowledgements around it, and for the controller scenarios
// from the kill to a new active controller (cluster status shows a higher controller epoch).
// When the controller's broker also leads the partition, that row's first ack includes the
// partition's failover too (the outcome says so).

import { Skein } from "../actors/client/skein.js";
import { nodeAgentAddress } from "../protocol/address.js";
import { controllerAddress, replicaAddress } from "../protocol/cluster.js";
import { placementOf } from "../protocol/placement.js";
import { startSkeinCluster, type SkeinBenchCluster } from "./fixtures/servers.js";
import { median } from "./stats.js";
import type { BenchOptions, SuiteResult, Target } from "./report.js";

const WORKERS = 2;
const SESSION_TIMEOUT_MS = 3_000;
const SCENARIOS = ["worker", "broker", "controller-worker", "controller-broker"] as const;
type Scenario = (typeof SCENARIOS)[number];

interface Sizes {
  repetitions: number;
}
const FULL: Sizes = { repetitions: 3 };
const QUICK: Sizes = { repetitions: 1 };

interface Outcome {
  scenario: Scenario;
  leader: number;
  newLeader: number;
  /** Kill → first ack of a record sent after the kill, ms. */
  firstAckMs: number;
  /** Longest time without any ack around the kill, ms. */
  maxGapMs: number;
  errors: number;
  /** Controller scenarios: kill → a controller with a higher epoch is active, ms. */
  controllerMs?: number;
  /** Controller scenarios: the killed broker (or worker) also hosted the partition leader. */
  alsoLeader?: boolean;
}

const nowMs = () => performance.timeOrigin + performance.now();

export async function runFailoverBench(options: BenchOptions): Promise<SuiteResult> {
  const sizes = options.quick ? QUICK : FULL;
  const outcomes: Outcome[] = [];
  let cluster: SkeinBenchCluster | null = null;
  let stopProducer: () => Promise<void> = async () => undefined;
  try {
    cluster = await startSkeinCluster({ workers: WORKERS, sessionTimeoutMs: SESSION_TIMEOUT_MS });
    const c = cluster;
    const topic = "bench-failover";
    await c.createTopic(topic, 1, 3);
    const skein = new Skein({ clientId: "bench-failover", nats: c.natsUrl, cluster: c.cluster });
    const producer = skein.producer({ acks: "all", lingerMs: 0, requestTimeoutMs: 2_000, deliveryTimeoutMs: 60_000 });
    await producer.connect();
    const acks: Array<{ sentAt: number; ackedAt: number }> = [];
    let errors = 0;
    let running = true;
    const value = new Uint8Array(100).fill(7);
    const loop = (async () => {
      while (running) {
        const sentAt = nowMs();
        try {
          await producer.send({ topic, messages: [{ value }] });
          acks.push({ sentAt, ackedAt: nowMs() });
        } catch {
          errors++;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    })();
    stopProducer = async () => {
      running = false;
      await loop;
      await producer.disconnect();
    };
    const progress = options.progress("failover", sizes.repetitions * SCENARIOS.length);
    for (let rep = 0; rep < sizes.repetitions; rep++) {
      for (const scenario of SCENARIOS) {
        await waitForFullIsr(c, topic);
        await new Promise((r) => setTimeout(r, 1_000)); // steady writes before the kill
        const leader = (await c.client.meta.getPartition(topic, 0))!.value.leader;
        const controller = await activeController(c);
        const errorsBefore = errors;
        // The clock starts once the worker or process is gone (a record sent while the kill
        // was on its way may still be acknowledged by the old leader).
        let victim = leader;
        let alsoLeader: boolean | undefined;
        if (scenario === "worker") {
          const worker = placementOf(replicaAddress(topic, 0, leader), WORKERS);
          await c.client.system.ask(nodeAgentAddress(String(leader)), "KillWorker", { worker }, { timeoutMs: 10_000 });
        } else if (scenario === "broker") {
          await c.local.brokers.get(leader)!.kill();
        } else if (scenario === "controller-worker") {
          victim = controller.broker;
          const worker = placementOf(controllerAddress(victim), WORKERS);
          alsoLeader = victim === leader && placementOf(replicaAddress(topic, 0, leader), WORKERS) === worker;
          await c.client.system.ask(nodeAgentAddress(String(victim)), "KillWorker", { worker }, { timeoutMs: 10_000 });
        } else {
          victim = controller.broker;
          alsoLeader = victim === leader;
          await c.local.brokers.get(victim)!.kill();
        }
        const killedAt = nowMs();
        let controllerMs: number | undefined;
        if (scenario.startsWith("controller")) {
          await waitFor(async () => {
            const now = await c.client.status().catch(() => null);
            return now?.controller && now.controller.epoch > controller.epoch ? now.controller : undefined;
          }, 60_000);
          controllerMs = nowMs() - killedAt;
        }
        const first = await waitFor(() => acks.find((a) => a.sentAt >= killedAt), 60_000);
        const around = acks.filter((a) => a.ackedAt >= killedAt - 1_000 && a.ackedAt <= first.ackedAt + 1_000);
        let maxGapMs = 0;
        for (let i = 1; i < around.length; i++) maxGapMs = Math.max(maxGapMs, around[i].ackedAt - around[i - 1].ackedAt);
        const newLeader = (await c.client.meta.getPartition(topic, 0))!.value.leader;
        const outcome: Outcome = { scenario, leader, newLeader, firstAckMs: first.ackedAt - killedAt, maxGapMs, errors: errors - errorsBefore, controllerMs, alsoLeader };
        outcomes.push(outcome);
        const took = controllerMs === undefined ? "" : `new controller after ${controllerMs.toFixed(0)} ms, `;
        progress.tick(`${scenario} kill (leader ${leader} -> ${newLeader}): ${took}first ack after ${outcome.firstAckMs.toFixed(0)} ms`);
        if (scenario === "broker" || scenario === "controller-broker") await c.local.startBroker(victim);
      }
    }
    progress.stop();
  } finally {
    await stopProducer().catch(() => undefined);
    await cluster?.stop().catch((e) => options.log(`cleanup: ${(e as Error).message}`));
  }
  return report(outcomes, sizes);
}

async function activeController(c: SkeinBenchCluster): Promise<{ broker: number; epoch: number }> {
  return waitFor(async () => {
    const s = await c.client.status().catch(() => null);
    return s?.controller && s.controller.epoch >= 0 ? s.controller : undefined;
  }, 60_000);
}

async function waitForFullIsr(c: SkeinBenchCluster, topic: string): Promise<void> {
  await waitFor(async () => {
    const p = await c.client.meta.getPartition(topic, 0);
    return p && p.value.leader >= 0 && p.value.isr.length === 3 ? p : undefined;
  }, 60_000);
}

async function waitFor<T>(check: () => T | undefined | Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`failover bench: condition not met after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const KILLED: Record<Scenario, string> = {
  worker: "leader's worker thread",
  broker: "leader's broker process (SIGKILL)",
  "controller-worker": "controller's worker thread",
  "controller-broker": "controller's broker process (SIGKILL)",
};

function report(outcomes: Outcome[], sizes: Sizes): SuiteResult {
  const rows = SCENARIOS.map((scenario) => {
    const os = outcomes.filter((o) => o.scenario === scenario);
    const first = os.map((o) => o.firstAckMs);
    const controller = os.flatMap((o) => (o.controllerMs === undefined ? [] : [o.controllerMs]));
    return {
      "killed": KILLED[scenario],
      "new controller ms (median)": controller.length ? Math.round(median(controller)) : "-",
      "first ack ms (median)": Math.round(median(first)),
      "min ms": Math.round(Math.min(...first)),
      "max ms": Math.round(Math.max(...first)),
      "max gap between acks ms": Math.round(Math.max(...os.map((o) => o.maxGapMs))),
      "send errors": os.reduce((n, o) => n + o.errors, 0),
      "runs (controller also led)": scenario.startsWith("controller") ? `${os.length} (${os.filter((o) => o.alsoLeader).length})` : String(os.length),
    };
  });
  const targets: Target[] = [];
  const worker = outcomes.filter((o) => o.scenario === "worker").map((o) => o.firstAckMs);
  if (worker.length) targets.push({ name: "failover after a worker dies", rule: "first ack within about a second (README)", measured: Math.round(median(worker)), bound: 1_000, unit: "ms", pass: median(worker) <= 1_000 });
  const broker = outcomes.filter((o) => o.scenario === "broker").map((o) => o.firstAckMs);
  if (broker.length) targets.push({ name: "failover after a broker dies", rule: `within the session timeout (${SESSION_TIMEOUT_MS} ms) plus one second`, measured: Math.round(median(broker)), bound: SESSION_TIMEOUT_MS + 1_000, unit: "ms", pass: median(broker) <= SESSION_TIMEOUT_MS + 1_000 });
  const controllerWorker = outcomes.flatMap((o) => (o.scenario === "controller-worker" && o.controllerMs !== undefined ? [o.controllerMs] : []));
  if (controllerWorker.length) targets.push({ name: "controller takeover after its worker dies", rule: "new active controller within about a second (worker-lost event)", measured: Math.round(median(controllerWorker)), bound: 1_000, unit: "ms", pass: median(controllerWorker) <= 1_000 });
  const controllerBroker = outcomes.flatMap((o) => (o.scenario === "controller-broker" && o.controllerMs !== undefined ? [o.controllerMs] : []));
  if (controllerBroker.length) targets.push({ name: "controller takeover after its broker dies", rule: `new active controller within the lease TTL (${SESSION_TIMEOUT_MS} ms) plus one second`, measured: Math.round(median(controllerBroker)), bound: SESSION_TIMEOUT_MS + 1_000, unit: "ms", pass: median(controllerBroker) <= SESSION_TIMEOUT_MS + 1_000 });
  return {
    suite: "failover",
    title: `Failover: kill → new controller and first acknowledged write (1 partition, RF 3, acks=all, idempotent producer; ${sizes.repetitions} run(s) each)`,
    columns: ["killed", "new controller ms (median)", "first ack ms (median)", "min ms", "max ms", "max gap between acks ms", "send errors", "runs (controller also led)"],
    rows,
    targets,
    parameters: { ...sizes, workersPerBroker: WORKERS, sessionTimeoutMs: SESSION_TIMEOUT_MS, outcomes },
    notes: [
      "send errors: sends that failed outright (the producer retries retriable errors itself, so these should stay 0).",
      "new controller: kill → cluster status shows an active controller with a higher epoch (polled every ~10 ms). In the controller rows, runs where the killed broker or worker also hosted the partition leader are counted in brackets; their first ack includes that failover.",
    ],
    charts: [
      {
        kind: "bars",
        file: "failover",
        title: "Kill → first acknowledged write, ms (median)",
        unit: "ms",
        bars: rows.map((r) => ({ label: r.killed, value: r["first ack ms (median)"], group: "Skein" })),
      },
    ],
  };
}
