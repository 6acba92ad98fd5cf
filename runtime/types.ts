// Contracts of the actor runtime. Implementation lives in the other runtime/ files.

import type { FaultCounts, InstalledFault } from "../protocol/node-agent.js";

/** How to reach NATS. Plain data: it is copied into every worker thread. */
export interface NatsOptions {
  /** One URL or several, e.g. "nats://127.0.0.1:4222". */
  servers: string | string[];
  /** Token authentication. */
  token?: string;
  /** User/password authentication. */
  user?: string;
  pass?: string;
  /** Path of a NATS .creds file (JWT + nkey seed). */
  credsFile?: string;
  /** TLS: PEM file paths. Setting any of them turns TLS on. */
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
  /** Reconnect attempts per server before giving up; -1 = forever. Default -1. */
  maxReconnectAttempts?: number;
  /** Wait between reconnect attempts, ms. Default 250. */
  reconnectTimeWaitMs?: number;
  /**
   * Bytes of tells held while NATS is disconnected and sent, in order, once it is back; beyond
   * it tells are dropped and counted (core NATS is at-most-once anyway: a held tell can still
   * be lost if its receiver has not resubscribed yet). Asks are not held: they fail at once
   * with NOT_CONNECTED. Default 8 MiB.
   */
  maxBufferedBytesWhileDisconnected?: number;
  /**
   * Send consecutive tells to one actor within one event-loop turn as one NATS message (a
   * batch frame); order is kept exactly. Off: one NATS message per tell. Default true.
   */
  coalesceTells?: boolean;
}

/** What to run: an actor definition exported by a module, at an address. */
export interface SpawnSpec {
  /** The `kind` of an ActorDefinition exported by `module`. */
  kind: string;
  /** Absolute path or file: URL of the ES module exporting the definition. Omit for runtime built-ins. */
  module?: string;
  /** Where the actor lives, e.g. "counter/1@n1". The node part must be the hosting node. */
  address: string;
  /** Passed to the actor's `init`; validated by its `args` schema when it has one. Plain data. */
  args?: unknown;
}

export const SupervisionStrategy = { RESTART: "restart", STOP: "stop", ESCALATE: "escalate" } as const;
export type SupervisionStrategy = (typeof SupervisionStrategy)[keyof typeof SupervisionStrategy];

export interface SupervisionOptions {
  /** What to do when a handler throws something that is not a SkeinError. Default "restart". */
  strategy: SupervisionStrategy;
  /** Restarts allowed within `withinMs` before the actor is stopped (or escalated). Default 10. */
  maxRestarts: number;
  /** Window for `maxRestarts`, ms. Default 10000. */
  withinMs: number;
}

export const DEFAULT_SUPERVISION: SupervisionOptions = { strategy: "restart", maxRestarts: 10, withinMs: 10_000 };
/** Messages waiting in one mailbox before new ones are refused with MAILBOX_FULL. */
export const DEFAULT_MAILBOX_CAPACITY = 10_000;
/** Default `ask` timeout, ms. Every ask has one. */
export const DEFAULT_ASK_TIMEOUT_MS = 5_000;

export interface ActorInfo {
  address: string;
  kind: string;
  worker: number;
  mailboxDepth: number;
  processed: number;
  restarts: number;
}

export interface WorkerStats {
  worker: number;
  actors: number;
  processed: number;
  restarts: number;
  heapUsedBytes: number;
  rssBytes: number;
  natsConnected: boolean;
  droppedWhileDisconnected: number;
}

/** Lifecycle events published on `skein.<cluster>.events.<node>` (JSON). */
export type RuntimeEvent =
  | { type: "actor.started"; node: string; worker: number; address: string; kind: string; at: number }
  | { type: "actor.stopped"; node: string; worker: number; address: string; reason: string; at: number }
  | { type: "actor.restarted"; node: string; worker: number; address: string; error: string; at: number }
  | { type: "worker.exited"; node: string; worker: number; code: number | null; actors: string[]; at: number }
  | { type: "worker.restarted"; node: string; worker: number; actors: string[]; afterMs: number; at: number }
  | { type: "node.started"; node: string; workers: number; at: number }
  | { type: "node.stopped"; node: string; at: number }
  /**
   * A fault began: a transport rule installed on `node` (with `rule`), or a process fault
   * (kill-worker, kill-broker, pause-broker, …) announced by whoever injected it.
   */
  | { type: "fault.injected"; node: string; id: string; kind: string; rule?: InstalledFault; detail?: string; at: number }
  /** A fault ended: a rule expired or was cleared (with what it did on this node), or a process fault ended. */
  | { type: "fault.healed"; node: string; id: string; kind: string; reason: "expired" | "cleared" | "ended"; counts?: FaultCounts; at: number };
