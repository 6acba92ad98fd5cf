// Failover: how long writes stop when a partition leader goes away.
// A producer (the public API, idempotent, acks=all, one record per send, sends back to back)
// writes to a 1-partition RF 3 topic on 3 brokers (2 workers each). Then:
//   worker  the worker thread hosting the leader replica is killed (the supervisor restarts
//           it and reports the lost actors at once; the controller moves leadership);
//   broker  the leader's broker process gets SIGKILL (found dead after the session
//           timeout, 3 s) and is started again afterwards.
// Measured: from the kill to the first acknowledgement of a record *sent after* the kill,
// and the longest gap between two acknowledgements around it.

import { Skein } from "../actors/client/skein.js";
import { nodeAgentAddress } from "../protocol/address.js";
import { replicaAddress } from "../protocol/cluster.js";
import { placementOf } from "../runtime/supervisor.js";
import { startSkeinCluster, type SkeinBenchCluster } from "./fixtures/servers.js";
import { median } from "./stats.js";
import type { BenchOptions, SuiteResult, Target } from "./report.js";

const WORKERS = 2;
const SESSION_TIMEOUT_MS = 3_000;
const SCENARIOS = ["worker", "broker"] as const;
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
        const errorsBefore = errors;
        // The clock starts once the worker or process is gone (a record sent while the kill
        // was on its way may still be acknowledged by the old leader).
        if (scenario === "worker") {
          const worker = placementOf(replicaAddress(topic, 0, leader), WORKERS);
          await c.client.system.ask(nodeAgentAddress(String(leader)), "KillWorker", { worker }, { timeoutMs: 10_000 });
        } else {
          await c.local.brokers.get(leader)!.kill();
        }
        const killedAt = nowMs();
        const first = await waitFor(() => acks.find((a) => a.sentAt >= killedAt), 60_000);
        const around = acks.filter((a) => a.ackedAt >= killedAt - 1_000 && a.ackedAt <= first.ackedAt + 1_000);
        let maxGapMs = 0;
        for (let i = 1; i < around.length; i++) maxGapMs = Math.max(maxGapMs, around[i].ackedAt - around[i - 1].ackedAt);
        const newLeader = (await c.client.meta.getPartition(topic, 0))!.value.leader;
        const outcome = { scenario, leader, newLeader, firstAckMs: first.ackedAt - killedAt, maxGapMs, errors: errors - errorsBefore };
        outcomes.push(outcome);
        progress.tick(`${scenario} kill (leader ${leader} -> ${newLeader}): first ack after ${outcome.firstAckMs.toFixed(0)} ms`);
        if (scenario === "broker") await c.local.startBroker(leader);
      }
    }
    progress.stop();
  } finally {
    await stopProducer().catch(() => undefined);
    await cluster?.stop().catch((e) => options.log(`cleanup: ${(e as Error).message}`));
  }
  return report(outcomes, sizes);
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

function report(outcomes: Outcome[], sizes: Sizes): SuiteResult {
  const rows = SCENARIOS.map((scenario) => {
    const os = outcomes.filter((o) => o.scenario === scenario);
    const first = os.map((o) => o.firstAckMs);
    return {
      "killed": scenario === "worker" ? "leader's worker thread" : "leader's broker process (SIGKILL)",
      "first ack ms (median)": Math.round(median(first)),
      "min ms": Math.round(Math.min(...first)),
      "max ms": Math.round(Math.max(...first)),
      "max gap between acks ms": Math.round(Math.max(...os.map((o) => o.maxGapMs))),
      "send errors": os.reduce((n, o) => n + o.errors, 0),
      runs: os.length,
    };
  });
  const targets: Target[] = [];
  const worker = outcomes.filter((o) => o.scenario === "worker").map((o) => o.firstAckMs);
  if (worker.length) targets.push({ name: "failover after a worker dies", rule: "first ack within about a second (README)", measured: Math.round(median(worker)), bound: 1_000, unit: "ms", pass: median(worker) <= 1_000 });
  const broker = outcomes.filter((o) => o.scenario === "broker").map((o) => o.firstAckMs);
  if (broker.length) targets.push({ name: "failover after a broker dies", rule: `within the session timeout (${SESSION_TIMEOUT_MS} ms) plus one second`, measured: Math.round(median(broker)), bound: SESSION_TIMEOUT_MS + 1_000, unit: "ms", pass: median(broker) <= SESSION_TIMEOUT_MS + 1_000 });
  return {
    suite: "failover",
    title: `Failover: kill → first acknowledged write (1 partition, RF 3, acks=all, idempotent producer; ${sizes.repetitions} run(s) each)`,
    columns: ["killed", "first ack ms (median)", "min ms", "max ms", "max gap between acks ms", "send errors", "runs"],
    rows,
    targets,
    parameters: { ...sizes, workersPerBroker: WORKERS, sessionTimeoutMs: SESSION_TIMEOUT_MS, outcomes },
    notes: ["send errors: sends that failed outright (the producer retries retriable errors itself, so these should stay 0)."],
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
