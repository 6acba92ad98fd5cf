// Messages of a node's control agent (`$node@<node>`): spawn, stop and inspect actors on that
// node from any process, and kill a worker to model a failure.

import { z } from "zod";

export const NodeAgentMessages = {
  Spawn: z.object({
    kind: z.string().min(1),
    module: z.string().min(1).optional(),
    address: z.string().min(1),
    args: z.unknown().optional(),
  }),
  Stop: z.object({ address: z.string().min(1) }),
  List: z.object({}),
  Stats: z.object({}),
  KillWorker: z.object({ worker: z.number().int().min(0) }),
} as const;

export type SpawnRequest = z.infer<typeof NodeAgentMessages.Spawn>;

/**
 * A transport fault rule (runtime/faults.ts): drop, delay or duplicate the actor messages
 * from → to, or isolate a node (drop every actor message crossing its boundary). Patterns
 * are globs on `path@node`: `*` matches any run of characters except `@`, `?` one of them;
 * a pattern without `@` matches any node. The rule is judged on every thread of every node
 * it is installed on; install it on every node of the cluster (see the file's header).
 */
export const FaultSpec = z
  .object({
    /** Names the rule on every node it is installed on: events, clearing. */
    id: z.string().min(1).max(128),
    kind: z.enum(["drop", "delay", "duplicate", "isolate"]),
    /** Sender address pattern. Ignored by isolate. Default "*" (any sender, also one outside fault injection). */
    from: z.string().min(1).max(1024).default("*"),
    /** Receiver address pattern. Ignored by isolate. Default "*". */
    to: z.string().min(1).max(1024).default("*"),
    /** isolate: the node cut off from every other one. */
    node: z.string().min(1).max(64).optional(),
    /** Chance that a matching message is affected, 0-1. Default 1. */
    probability: z.number().min(0).max(1).default(1),
    /** delay: added latency, ms. */
    delayMs: z.number().int().min(0).max(600_000).default(0),
    /** delay: a uniformly drawn extra 0..jitterMs, ms. Default 0. */
    jitterMs: z.number().int().min(0).max(600_000).default(0),
    /** How long the rule stays in force, ms (at most 1 h): it heals by itself after that. */
    ms: z.number().int().min(1).max(3_600_000),
    /** Seed of the rule's random draws (probability, jitter). Default 1. */
    seed: z.number().int().default(1),
  })
  .superRefine((f, ctx) => {
    if (f.kind === "isolate" && f.node === undefined) ctx.addIssue({ code: "custom", path: ["node"], message: "isolate needs the node to cut off" });
    if (f.kind === "delay" && f.delayMs === 0 && f.jitterMs === 0) ctx.addIssue({ code: "custom", path: ["delayMs"], message: "delay needs delayMs or jitterMs" });
  });
export type FaultSpec = z.infer<typeof FaultSpec>;
export type FaultSpecInput = z.input<typeof FaultSpec>;

/** A rule as installed on a node: the spec plus when it expires there. */
export interface InstalledFault extends FaultSpec {
  /** Milliseconds since the epoch. */
  installedAt: number;
  /** Milliseconds since the epoch; the rule stops applying then. */
  expiresAt: number;
}

/** Messages a rule affected on one node (every thread summed). */
export interface FaultCounts {
  id: string;
  dropped: number;
  delayed: number;
  duplicated: number;
}

/** Fault-injection messages of the node agent; refused with FAULTS_NOT_ALLOWED unless the node allows faults. */
export const NodeFaultMessages = {
  InjectFault: FaultSpec,
  /** Removes the given rules, or every rule. */
  ClearFaults: z.object({ ids: z.array(z.string().min(1)).optional() }),
  ListFaults: z.object({}),
} as const;
