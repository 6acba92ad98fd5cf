// Many partitions on one 3-broker cluster (1 worker per broker), grown in steps to 1,000,
// 5,000 and 10,000 partition replicas (topics of RF 3). At each step:
//   metadata propagation  from CreateTopic until every new partition's leader answers as
//                         leader of its current epoch (controller → KV → brokers → replicas);
//   idle CPU, RSS         brokers + nats-server over a quiet window, as % of one core;
//   produce spread        keyed records (each its own key: murmur2 spreads them over every
//                         partition of the step's topics), acks=all.

import { replicaAddress, type ReplicaDescription } from "../protocol/cluster.js";
import { ErrorCode, type SkeinError } from "../protocol/errors.js";
import { cpuMsOf, processRssBytes, startSkeinCluster, type SkeinBenchCluster } from "./fixtures/servers.js";
import { runLoad } from "./load.js";
import type { BenchOptions, SuiteResult, Target } from "./report.js";

interface Sizes {
  /** Total partition replicas after each step. */
  steps: number[];
  idleSeconds: number;
  produceRecords: number;
}

// The idle window spans at least two follower long-poll cycles (replicaFetchWaitMs, 10 s by
// default): idle followers re-ask once per cycle, all in step after a create, so a shorter
// window could fall between two waves and report too little.
const FULL: Sizes = { steps: [1_000, 5_000, 10_000], idleSeconds: 25, produceRecords: 10_000 };
const QUICK: Sizes = { steps: [90, 180], idleSeconds: 1, produceRecords: 3_000 };

const REPLICATION_FACTOR = 3;
/**
 * Partitions per topic: a step adds as many topics as it needs. The controller writes one KV
 * entry per partition, and a create must answer within the admin client's ask timeout.
 */
const MAX_PARTITIONS_PER_TOPIC = 100;
/** How long a step may take from its first create until every new partition serves, ms. */
const STEP_DEADLINE_MS = 180_000;
/** Producer processes of the produce phase; sends go round-robin over the step's topics. */
const PRODUCERS = 2;

interface StepResult {
  replicas: number;
  partitions: number;
  createSeconds: number;
  /** Partitions whose leader did not answer as leader by the step's deadline. */
  notServing: number;
  idleCpuPercentOfCore: number;
  rssBytes: number;
  produceRecordsPerSec: number;
  produceErrors: number;
}

export async function runPartitionsScaleBench(options: BenchOptions): Promise<SuiteResult> {
  const sizes = options.quick ? QUICK : FULL;
  const results: StepResult[] = [];
  let cluster: SkeinBenchCluster | null = null;
  try {
    cluster = await startSkeinCluster();
    const c = cluster;
    const pids = () => [c.natsPid, ...c.brokerPids().values()];
    const progress = options.progress("partitions-scale", sizes.steps.length * 3);
    let replicas = 0;
    let topicCount = 0;
    const allTopics: string[] = [];
    for (const target of sizes.steps) {
      const newPartitions = Math.ceil((target - replicas) / REPLICATION_FACTOR);
      const topics: Array<{ name: string; partitions: number }> = [];
      for (let left = newPartitions; left > 0; left -= MAX_PARTITIONS_PER_TOPIC) {
        topics.push({ name: `bench-scale-${++topicCount}`, partitions: Math.min(left, MAX_PARTITIONS_PER_TOPIC) });
      }
      const started = Date.now();
      // A step has STEP_DEADLINE_MS to serve; one that does not ends the growth with what it reached.
      const deadline = started + STEP_DEADLINE_MS;
      let notServing = 0;
      const created: typeof topics = [];
      for (const t of topics) {
        if (await createTopic(c, t.name, t.partitions, deadline)) created.push(t);
        else notServing += t.partitions;
      }
      for (const t of created) notServing += await waitForServingLeaders(c, t.name, t.partitions, deadline);
      const createSeconds = (Date.now() - started) / 1000;
      replicas += newPartitions * REPLICATION_FACTOR;
      progress.tick(`${replicas} replicas: leaders serving ${createSeconds.toFixed(1)} s after create${notServing ? ` (${notServing} partitions still without one)` : ""}`);

      await new Promise((r) => setTimeout(r, 2_000)); // let follower fetches and ticks settle
      const before = cpuMsOf(pids());
      const t0 = Date.now();
      await new Promise((r) => setTimeout(r, sizes.idleSeconds * 1000));
      const idleCpuPercentOfCore = ((cpuMsOf(pids()) - before) / (Date.now() - t0)) * 100;
      const rssBytes = pids().reduce((n, p) => n + processRssBytes(p), 0);
      progress.tick(`${replicas} replicas: idle ${idleCpuPercentOfCore.toFixed(1)}% of a core, RSS ${(rssBytes / 2 ** 20).toFixed(0)} MiB`);

      allTopics.push(...topics.map((t) => t.name));
      const names = allTopics;
      const run = await runLoad(
        Array.from({ length: PRODUCERS }, (_, i) => ({
          kind: "skein-produce" as const,
          nats: c.natsUrl,
          cluster: c.cluster,
          topic: names[i % names.length],
          alsoTopics: names.filter((_, j) => j !== i % names.length),
          acks: "all" as const,
          keyed: true,
          count: Math.ceil(sizes.produceRecords / PRODUCERS),
          recordBytes: 100,
          recordsPerSend: 1_000,
          window: 20_000,
        })),
        { timeoutMs: 600_000 },
      );
      progress.tick(`${replicas} replicas: produce over all partitions ${Math.round(run.recordsPerSec).toLocaleString("en-US")} rec/s`);
      results.push({ replicas, partitions: replicas / REPLICATION_FACTOR, createSeconds, notServing, idleCpuPercentOfCore, rssBytes, produceRecordsPerSec: run.recordsPerSec, produceErrors: run.errors });
      if (notServing > 0) break;
    }
    progress.stop();
  } finally {
    await cluster?.stop().catch((e) => options.log(`cleanup: ${(e as Error).message}`));
  }
  return report(results, sizes);
}

/**
 * Creates a topic, retrying retriable errors until `deadline` (a loaded cluster can lose its
 * controller lease for a moment); false when it could not. A retried create that finds the
 * topic is our own first attempt that was slow to answer.
 */
async function createTopic(c: SkeinBenchCluster, name: string, partitions: number, deadline: number): Promise<boolean> {
  for (;;) {
    try {
      await c.client.createTopic(name, partitions, REPLICATION_FACTOR);
      return true;
    } catch (e) {
      const err = e as SkeinError;
      if (err.code === ErrorCode.TOPIC_ALREADY_EXISTS) return true;
      if (!err.retriable) throw e;
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/**
 * Waits until every partition's leader answers Describe as leader of the epoch in the KV
 * (asked in parallel), or `deadline`; returns how many partitions still have no serving leader.
 */
async function waitForServingLeaders(c: SkeinBenchCluster, topic: string, partitions: number, deadline: number): Promise<number> {
  let pending = Array.from({ length: partitions }, (_, p) => p);
  while (pending.length > 0 && Date.now() < deadline) {
    const states = new Map((await c.client.meta.listPartitions(topic)).map((s) => [s.value.partition, s.value]));
    const stillPending: number[] = [];
    for (let i = 0; i < pending.length; i += 200) {
      const chunk = pending.slice(i, i + 200);
      const ok = await Promise.all(
        chunk.map(async (p) => {
          const s = states.get(p);
          if (!s || s.leader < 0) return false;
          const d = await c.client.system.ask<ReplicaDescription>(replicaAddress(topic, p, s.leader), "Describe", {}, { timeoutMs: 5_000 }).catch(() => null);
          return d !== null && d.role === "leader" && d.leaderEpoch === s.leaderEpoch;
        }),
      );
      chunk.forEach((p, j) => ok[j] || stillPending.push(p));
    }
    pending = stillPending;
    if (pending.length) await new Promise((r) => setTimeout(r, 250));
  }
  return pending.length;
}

function report(results: StepResult[], sizes: Sizes): SuiteResult {
  const rows = results.map((r) => ({
    "partition replicas": r.replicas,
    partitions: r.partitions,
    "create→serving s": Math.round(r.createSeconds * 10) / 10,
    "not serving": r.notServing,
    "idle CPU % of a core": Math.round(r.idleCpuPercentOfCore * 10) / 10,
    "RSS MiB": Math.round(r.rssBytes / 2 ** 20),
    "produce rec/s (keyed, all partitions)": Math.round(r.produceRecordsPerSec),
    errors: r.produceErrors,
  }));
  const targets: Target[] = [];
  const at10k = results.find((r) => r.replicas >= 10_000);
  if (at10k) {
    targets.push({ name: "10,000 partition replicas idle CPU", rule: "< 10% of one core (brokers + nats-server)", measured: Math.round(at10k.idleCpuPercentOfCore * 10) / 10, bound: 10, unit: "% of a core", pass: at10k.idleCpuPercentOfCore < 10 });
    targets.push({ name: "10,000 partition replicas RSS", rule: "< 2 GB (brokers + nats-server)", measured: Math.round(at10k.rssBytes / 2 ** 20), bound: 2_000_000_000 / 2 ** 20, unit: "MiB", pass: at10k.rssBytes < 2_000_000_000 });
  }
  return {
    suite: "partitions-scale",
    title: `Partition scale: 3 brokers × 1 worker, RF ${REPLICATION_FACTOR}, growing to ${sizes.steps.map((s) => s.toLocaleString("en-US")).join(" / ")} partition replicas`,
    columns: ["partition replicas", "partitions", "create→serving s", "not serving", "idle CPU % of a core", "RSS MiB", "produce rec/s (keyed, all partitions)", "errors"],
    rows,
    targets,
    parameters: { ...sizes, replicationFactor: REPLICATION_FACTOR, results },
    notes: [
      `create→serving: from the CreateTopic calls of a step until every new partition's leader answers Describe as leader (topics of up to ${MAX_PARTITIONS_PER_TOPIC} partitions).`,
      `idle: CPU of brokers + nats-server over ${sizes.idleSeconds} s with no client traffic, 2 s after the step; produce: ${sizes.produceRecords.toLocaleString("en-US")} keyed 100 B records, acks=all, ${PRODUCERS} producers sending round-robin over all topics so far.`,
    ],
    charts: [
      {
        kind: "bars",
        file: "partitions-idle-cpu",
        title: "Idle CPU (% of one core) by partition replicas",
        unit: "% of one core",
        bars: results.map((r) => ({ label: `${r.replicas.toLocaleString("en-US")} replicas`, value: Math.round(r.idleCpuPercentOfCore * 10) / 10, group: "Skein" })),
      },
    ],
  };
}
