// Entry of every worker thread. Written against the Web Worker model (postMessage plus a
// message listener: exactly what comlink speaks), so the same bundle runs in Node's
// worker_threads (through parentPort, a MessagePort with addEventListener) and in Deno's
// Web Workers (through the worker's global scope).

import { expose, type Endpoint } from "comlink";
import "./comlink-errors.js";
import { parentPort } from "node:worker_threads";
import { eventSubject } from "../protocol/address.js";
import { ActorHost } from "./host.js";
import { connectNats } from "./nats-connect.js";
import { NatsTransport } from "./transport.js";
import { FaultInjector } from "./faults.js";
import type { FaultCounts, InstalledFault } from "../protocol/node-agent.js";
import type { NatsConnection } from "@nats-io/transport-node";
import type { ActorInfo, NatsOptions, RuntimeEvent, SpawnSpec, WorkerStats } from "./types.js";
import { transferListOf, type PortReply, type PortRequest } from "./port-ref.js";
import { toSkeinError } from "../protocol/errors.js";

export interface WorkerInit {
  node: string;
  cluster: string;
  worker: number;
  nats: NatsOptions;
  /** Transport fault rules in force; null when the node does not allow fault injection. */
  faults: InstalledFault[] | null;
}

/** Control surface of a worker, called by its process's supervisor through comlink. */
export interface WorkerControl {
  start(init: WorkerInit): Promise<void>;
  spawn(spec: SpawnSpec): Promise<ActorInfo>;
  stop(address: string): Promise<boolean>;
  list(): ActorInfo[];
  stats(): WorkerStats;
  shutdown(): Promise<void>;
  /** Connects a MessagePort from the main thread to a local actor (see runtime/port-ref.ts). */
  attachPort(address: string, port: MessagePort): void;
  /** Replaces the transport fault rules (only on a node that allows faults). */
  setFaults(rules: InstalledFault[]): void;
  /** What each rule did in this worker. */
  faultCounts(): FaultCounts[];
}

let nc: NatsConnection | null = null;
let host: ActorHost | null = null;
let transport: NatsTransport | null = null;
let workerIndex = -1;
let faults: FaultInjector | null = null;
const encoder = new TextEncoder();
/** Longest an escalating worker waits for its last NATS sends before it ends, ms. */
const ESCALATE_FLUSH_MS = 1_000;

function requireHost(): ActorHost {
  if (!host) throw new Error("worker not started");
  return host;
}

const control: WorkerControl = {
  async start(init) {
    workerIndex = init.worker;
    nc = await connectNats(init.nats, `skein:${init.node}:w${init.worker}`);
    transport = new NatsTransport(nc, init.cluster, init.nats.maxBufferedBytesWhileDisconnected ?? 8 * 1024 * 1024, init.nats.coalesceTells ?? true);
    if (init.faults !== null) {
      faults = new FaultInjector(init.node, `w${init.worker}`);
      faults.setRules(init.faults);
      transport.filter = faults;
    }
    const subject = eventSubject(init.cluster, init.node);
    host = new ActorHost({
      node: init.node,
      worker: init.worker,
      transport,
      onEvent: (event: RuntimeEvent) => nc?.publish(subject, encoder.encode(JSON.stringify(event))),
      escalate: (address, error) => {
        console.error(`skein: ${address} escalated a failure; ending worker ${init.worker} (its supervisor restarts it with all its actors):`, error);
        // The failed ask's answer and the actor.stopped event leave first; a dead connection
        // must not keep the worker alive, hence the bound.
        const flushed = nc && !nc.isClosed() ? nc.flush() : Promise.resolve();
        void Promise.race([flushed, new Promise((r) => setTimeout(r, ESCALATE_FLUSH_MS))]).catch(() => undefined).finally(() => endThisWorker(70));
      },
    });
  },
  spawn: (spec) => requireHost().spawn(spec),
  stop: (address) => requireHost().stop(address),
  list: () => requireHost().list(),
  stats() {
    const h = requireHost();
    const actors = h.list();
    const mem = process.memoryUsage();
    return {
      worker: workerIndex,
      actors: actors.length,
      processed: actors.reduce((a, x) => a + x.processed, 0),
      restarts: actors.reduce((a, x) => a + x.restarts, 0),
      heapUsedBytes: mem.heapUsed,
      rssBytes: mem.rss,
      natsConnected: transport?.isConnected ?? false,
      droppedWhileDisconnected: transport?.droppedWhileDisconnected ?? 0,
    };
  },
  attachPort(address, port) {
    const h = requireHost();
    port.addEventListener("message", (event: MessageEvent) => {
      const { id, type, body, timeoutMs } = event.data as PortRequest;
      h.deliverDirect(address, type, body, timeoutMs).then(
        // Buffers the actor marked as its own move to the main thread instead of being copied twice (serialize, deserialize).
        (reply) => port.postMessage({ id, ok: true, body: reply } satisfies PortReply, transferListOf(reply)),
        (e) => port.postMessage({ id, ok: false, error: toSkeinError(e, { address }).toWire() } satisfies PortReply),
      );
    });
    port.start();
  },
  setFaults(rules) {
    faults?.setRules(rules);
  },
  faultCounts: () => faults?.counts() ?? [],
  async shutdown() {
    await host?.stopAll("worker shutdown");
    if (nc && !nc.isClosed()) await nc.drain();
  },
};

function endThisWorker(code: number): void {
  const scope = globalThis as unknown as { close?: () => void };
  if (parentPort) process.exit(code);
  else scope.close?.();
}

const endpoint = (parentPort ?? globalThis) as unknown as Endpoint;
expose(control, endpoint);
