// Seeded fault schedules for the chaos scenarios: the same (scenario, seed, duration, cluster
// shape) always gives the same list of steps, so a failure replays from its seed. Targets are
// chosen here by index (a partition whose leader to hit, a broker id, a consumer); what they
// resolve to (which broker leads that partition then) is decided when the step runs.

import { seededRandom, type Random } from "../../runtime/faults.js";

export const SCENARIOS = ["kill-leader-worker", "kill-broker", "pause-broker", "isolate-leader", "kill-controller", "kill-consumer", "rolling-restart", "mixed"] as const;
export type Scenario = (typeof SCENARIOS)[number];

export type Step =
  /** Kill the worker hosting the leader replica of `partition`. */
  | { atMs: number; kind: "kill-leader-worker"; partition: number }
  /** SIGKILL `broker` (or the leader of `partition`), start it again after restartAfterMs. */
  | { atMs: number; kind: "kill-broker"; broker?: number; partition?: number; restartAfterMs: number }
  /** SIGSTOP the leader of `partition` for ms, then SIGCONT. */
  | { atMs: number; kind: "pause-broker"; partition: number; ms: number }
  /** Cut the leader of `partition` off from every other node for ms (its NATS connection stays up). */
  | { atMs: number; kind: "isolate"; partition: number; ms: number }
  /** Kill the active controller: its worker, or its whole broker (restarted after restartAfterMs). */
  | { atMs: number; kind: "kill-controller"; how: "worker" | "broker"; restartAfterMs: number }
  /** Kill the worker of group member `consumer`. */
  | { atMs: number; kind: "kill-consumer"; consumer: number }
  /** Graceful stop of `broker`, start again after restartAfterMs, wait until it is back in every ISR. */
  | { atMs: number; kind: "restart-broker"; broker: number; restartAfterMs: number }
  /** A transport rule between two brokers (or one broker and everything) for ms. */
  | { atMs: number; kind: "drop" | "delay" | "duplicate"; from: string; to: string; probability: number; delayMs: number; jitterMs: number; ms: number };

export interface ScheduleShape {
  /** Workload duration; every step starts in [warmupMs, durationMs - cooldownMs]. */
  durationMs: number;
  brokers: number;
  partitions: number;
  consumers: number;
}

/** No fault before this, ms: the workload gets going first. */
export const WARMUP_MS = 2_000;
/** No fault starts in the last this many ms of the workload. */
export const COOLDOWN_MS = 2_000;
/** What starting a broker process again and its replicas catching up typically take here, ms. */
const BROKER_RESTART_MS = 4_000;

export function isScenario(name: string): name is Scenario {
  return (SCENARIOS as readonly string[]).includes(name);
}

/**
 * Steps in start order; each runs after the previous one finished (see runner). A rolling
 * restart restarts every broker once per round, and runs at least one whole round however
 * short the workload (its last steps may then start after the workload's end).
 */
export function scheduleFor(scenario: Scenario, seed: number, shape: ScheduleShape): Step[] {
  const rng = seededRandom(seed ^ 0x5eed);
  if (scenario === "rolling-restart") return rollingRestart(rng, shape);
  const steps: Step[] = [];
  const end = shape.durationMs - COOLDOWN_MS;
  let at = WARMUP_MS + int(rng, 0, 1_000);
  let index = 0;
  while (at < end) {
    const step = makeStep(scenario, rng, shape, at, index++);
    steps.push(step);
    at += stepLengthMs(step) + int(rng, 1_500, 3_000);
  }
  return steps;
}

/**
 * As many rounds as fit the workload at the typical restart time (at least one). Within them
 * each restart is planned a short pause after the previous one was asked to start: the runner
 * runs a step only once the previous one is done (its broker back in every ISR), so in practice
 * the next broker goes down as soon as the previous one is back, as an operator would do it.
 */
function rollingRestart(rng: Random, shape: ScheduleShape): Step[] {
  const steps: Step[] = [];
  const perRound = shape.brokers * (BROKER_RESTART_MS + 1_000);
  const rounds = Math.max(1, Math.floor((shape.durationMs - WARMUP_MS - COOLDOWN_MS) / perRound));
  let at = WARMUP_MS + int(rng, 0, 1_000);
  for (let round = 0; round < rounds; round++) {
    for (let broker = 1; broker <= shape.brokers; broker++) {
      const step: Step = { atMs: at, kind: "restart-broker", broker, restartAfterMs: int(rng, 100, 400) };
      steps.push(step);
      at += step.restartAfterMs + int(rng, 300, 800);
    }
  }
  return steps;
}

function makeStep(scenario: Scenario, rng: Random, shape: ScheduleShape, atMs: number, index: number): Step {
  const partition = int(rng, 0, shape.partitions - 1);
  const broker = int(rng, 1, shape.brokers);
  switch (scenario) {
    case "kill-leader-worker":
      return { atMs, kind: "kill-leader-worker", partition };
    case "kill-broker":
      // Alternate: a broker by id, the leader of a partition (the interesting one).
      return index % 2 === 0 ? { atMs, kind: "kill-broker", partition, restartAfterMs: int(rng, 1_500, 3_000) } : { atMs, kind: "kill-broker", broker, restartAfterMs: int(rng, 1_500, 3_000) };
    case "pause-broker":
      // Sometimes shorter, sometimes longer than the session timeout (2 s in the runner's cluster).
      return { atMs, kind: "pause-broker", partition, ms: int(rng, 1_000, 4_000) };
    case "isolate-leader":
      return { atMs, kind: "isolate", partition, ms: int(rng, 2_000, 4_000) };
    case "kill-controller":
      return { atMs, kind: "kill-controller", how: rng.next() < 0.5 ? "worker" : "broker", restartAfterMs: int(rng, 1_500, 3_000) };
    case "kill-consumer":
      return { atMs, kind: "kill-consumer", consumer: int(rng, 0, shape.consumers - 1) };
    case "rolling-restart":
      throw new Error("rolling-restart is scheduled by rollingRestart()");
    case "mixed":
      return mixedStep(rng, shape, atMs, partition, broker);
  }
}

function mixedStep(rng: Random, shape: ScheduleShape, atMs: number, partition: number, broker: number): Step {
  const other = ((broker + int(rng, 0, shape.brokers - 2)) % shape.brokers) + 1;
  const ms = int(rng, 1_500, 3_500);
  const kinds = ["kill-leader-worker", "kill-broker", "pause-broker", "isolate", "kill-controller", "kill-consumer", "drop", "delay", "duplicate"] as const;
  const kind = kinds[int(rng, 0, kinds.length - 1)];
  switch (kind) {
    case "kill-leader-worker":
      return { atMs, kind, partition };
    case "kill-broker":
      return { atMs, kind, partition, restartAfterMs: int(rng, 1_500, 3_000) };
    case "pause-broker":
    case "isolate":
      return { atMs, kind, partition, ms };
    case "kill-controller":
      return { atMs, kind, how: rng.next() < 0.5 ? "worker" : "broker", restartAfterMs: int(rng, 1_500, 3_000) };
    case "kill-consumer":
      return { atMs, kind, consumer: int(rng, 0, shape.consumers - 1) };
    case "drop":
      return { atMs, kind, from: `*@${broker}`, to: `*@${other}`, probability: round2(0.2 + 0.6 * rng.next()), delayMs: 0, jitterMs: 0, ms };
    case "delay":
      return { atMs, kind, from: `*@${broker}`, to: "*", probability: 1, delayMs: int(rng, 20, 300), jitterMs: int(rng, 0, 200), ms };
    case "duplicate":
      return { atMs, kind, from: "*", to: `*@${broker}`, probability: round2(0.2 + 0.6 * rng.next()), delayMs: 0, jitterMs: 0, ms };
  }
}

/** How long a step takes, restarts included (estimated), ms; instant faults 0. */
export function stepLengthMs(step: Step): number {
  switch (step.kind) {
    case "kill-broker":
    case "restart-broker":
      return step.restartAfterMs + BROKER_RESTART_MS;
    case "kill-controller":
      return step.how === "broker" ? step.restartAfterMs + BROKER_RESTART_MS : 0;
    case "pause-broker":
    case "isolate":
    case "drop":
    case "delay":
    case "duplicate":
      return step.ms;
    default:
      return 0;
  }
}

/** One line per step, for logs and reports. */
export function describeStep(step: Step): string {
  const t = `t+${(step.atMs / 1000).toFixed(1)}s`;
  switch (step.kind) {
    case "kill-leader-worker":
      return `${t} kill the worker of the leader of partition ${step.partition}`;
    case "kill-broker":
      return `${t} SIGKILL ${step.broker !== undefined ? `broker ${step.broker}` : `the leader of partition ${step.partition}`}, restart after ${step.restartAfterMs} ms`;
    case "pause-broker":
      return `${t} SIGSTOP the leader of partition ${step.partition} for ${step.ms} ms`;
    case "isolate":
      return `${t} isolate the leader of partition ${step.partition} for ${step.ms} ms`;
    case "kill-controller":
      return `${t} kill the controller's ${step.how}${step.how === "broker" ? `, restart after ${step.restartAfterMs} ms` : ""}`;
    case "kill-consumer":
      return `${t} kill the worker of consumer c${step.consumer}`;
    case "restart-broker":
      return `${t} stop broker ${step.broker}, start it after ${step.restartAfterMs} ms, wait for its ISRs`;
    default:
      return `${t} ${step.kind} ${step.from} -> ${step.to}${step.kind === "delay" ? ` ${step.delayMs}+${step.jitterMs} ms` : ` p=${step.probability}`} for ${step.ms} ms`;
  }
}

function int(rng: Random, min: number, max: number): number {
  return min + Math.floor(rng.next() * (max - min + 1));
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
