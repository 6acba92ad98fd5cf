// A Skein node: one OS process hosting actors on W worker threads, with a control agent
// (`$node@<id>`) that lets any process spawn, stop and inspect actors here over NATS.

import { availableParallelism } from "node:os";
import type { NatsConnection } from "@nats-io/transport-node";
import { eventSubject, nodeAgentAddress } from "../protocol/address.js";
import { NodeAgentMessages, NodeFaultMessages, type FaultCounts, type FaultSpec, type InstalledFault } from "../protocol/node-agent.js";
import { defineActor } from "./actor.js";
import { ActorHost } from "./host.js";
import { connectNats } from "./nats-connect.js";
import { Supervisor } from "./supervisor.js";
import { PortRef } from "./port-ref.js";
import { NatsTransport } from "./transport.js";
import { FaultInjector, NodeFaults, faultsNotAllowed } from "./faults.js";
import type { NatsOptions, RuntimeEvent } from "./types.js";

export interface NodeOptions {
  /** Node id, unique in the cluster: [A-Za-z0-9._-], 1-64 chars. */
  id: string;
  /** Cluster namespace; subjects live under skein.<cluster>. Default "default". */
  cluster?: string;
  nats: NatsOptions;
  /** Worker threads. Default: number of cores. */
  workers?: number;
  /** Upper bound of control calls to workers, ms. Default 15000. */
  controlTimeoutMs?: number;
  /** First delay before restarting a worker that exited, ms; doubles per consecutive failure. Default 50. */
  restartInitialMs?: number;
  /** Cap of the worker restart delay, ms. Default 5000. */
  restartMaxMs?: number;
  /**
   * Accept transport fault rules (drop, delay, duplicate, isolate; runtime/faults.ts) through
   * the node agent. Default false: fault requests are refused with FAULTS_NOT_ALLOWED.
   */
  allowFaults?: boolean;
}

const NODE_ID = /^[A-Za-z0-9._-]{1,64}$/;

export class SkeinNode {
  private constructor(
    readonly id: string,
    readonly cluster: string,
    private readonly nc: NatsConnection,
    private readonly supervisor: Supervisor,
    private readonly host: ActorHost,
    private readonly faults: NodeFaults | null,
  ) {}

  static async start(options: NodeOptions): Promise<SkeinNode> {
    if (!NODE_ID.test(options.id)) throw new Error(`invalid node id "${options.id}": use 1-64 of [A-Za-z0-9._-]`);
    const cluster = options.cluster ?? "default";
    const nc = await connectNats(options.nats, `skein:${options.id}:main`);
    const encoder = new TextEncoder();
    const subject = eventSubject(cluster, options.id);
    const publish = (event: RuntimeEvent) => {
      if (!nc.isClosed()) nc.publish(subject, encoder.encode(JSON.stringify(event)));
    };
    const supervisor = new Supervisor({
      node: options.id,
      cluster,
      workers: options.workers ?? availableParallelism(),
      nats: options.nats,
      controlTimeoutMs: options.controlTimeoutMs,
      restartInitialMs: options.restartInitialMs,
      restartMaxMs: options.restartMaxMs,
      allowFaults: options.allowFaults ?? false,
      onEvent: publish,
    });
    const transport = new NatsTransport(nc, cluster, options.nats.maxBufferedBytesWhileDisconnected ?? 8 * 1024 * 1024, options.nats.coalesceTells ?? true);
    const host = new ActorHost({
      node: options.id,
      worker: -1,
      transport,
      onEvent: publish,
      // Nothing supervises a process's main thread: the escalating actor stays stopped.
      escalate: (address, error) => console.error(`skein: ${address} escalated a failure on the main thread of ${options.id}; it stays stopped:`, error),
    });
    let faults: NodeFaults | null = null;
    if (options.allowFaults) {
      const injector = new FaultInjector(options.id, "main");
      transport.filter = injector;
      faults = new NodeFaults(options.id, injector, (rules) => supervisor.setFaults(rules), () => supervisor.faultCounts(), publish);
    }
    const node = new SkeinNode(options.id, cluster, nc, supervisor, host, faults);
    try {
      await supervisor.start();
      await host.spawnDefinition(nodeAgent(node), nodeAgentAddress(options.id), undefined);
    } catch (e) {
      await supervisor.shutdown();
      await nc.close();
      throw e;
    }
    publish({ type: "node.started", node: options.id, workers: supervisor.workerCount, at: Date.now() });
    return node;
  }

  get workerCount(): number {
    return this.supervisor.workerCount;
  }

  get nats(): NatsConnection {
    return this.nc;
  }

  spawn = (spec: Parameters<Supervisor["spawn"]>[0]) => this.supervisor.spawn(spec);
  /** Tell any actor (here or elsewhere) from this node's main thread. */
  tell = (address: string, type: string, body: unknown) => this.host.tell(null, address, type, body);
  /** Ask any actor from this node's main thread. */
  ask = <T = unknown>(address: string, type: string, body: unknown, options?: { timeoutMs?: number }) => this.host.ask<T>(null, address, type, body, options);
  stop = (address: string) => this.supervisor.stop(address);
  list = () => this.supervisor.list();
  stats = () => this.supervisor.stats();
  killWorker = (index: number) => this.supervisor.killWorker(index);
  /** A direct channel to an actor of this node, for the main thread (see PortRef). */
  portRef = (address: string) => new PortRef(address, () => this.supervisor.openPort(address));

  get faultsAllowed(): boolean {
    return this.faults !== null;
  }

  /** Installs a transport fault rule on this node (every thread); FAULTS_NOT_ALLOWED unless started with allowFaults. */
  injectFault(spec: FaultSpec): Promise<InstalledFault> {
    return this.requireFaults().inject(spec);
  }

  /** Removes the given fault rules (all without ids); returns the ids removed. */
  async clearFaults(ids?: string[]): Promise<string[]> {
    return this.requireFaults().clear(ids);
  }

  /** Rules in force and what each did on this node so far. */
  listFaults(): Promise<{ rules: InstalledFault[]; counts: FaultCounts[] }> {
    return this.requireFaults().list();
  }

  private requireFaults(): NodeFaults {
    if (!this.faults) throw faultsNotAllowed(this.id);
    return this.faults;
  }

  /** Stops every actor, drains NATS and ends the workers. */
  async shutdown(): Promise<void> {
    this.faults?.close();
    await this.host.stopAll("node shutdown");
    await this.supervisor.shutdown();
    if (!this.nc.isClosed()) {
      this.nc.publish(eventSubject(this.cluster, this.id), new TextEncoder().encode(JSON.stringify({ type: "node.stopped", node: this.id, at: Date.now() })));
      await this.nc.drain();
    }
  }
}

function nodeAgent(node: SkeinNode) {
  return defineActor({
    kind: "$node",
    messages: { ...NodeAgentMessages, ...NodeFaultMessages },
    init: () => ({}),
    handlers: {
      Spawn: (_s, m) => node.spawn(m),
      Stop: async (_s, m) => ({ stopped: await node.stop(m.address) }),
      List: async () => ({ actors: await node.list() }),
      Stats: async () => ({ node: node.id, pid: process.pid, runtime: runtimeName(), workers: await node.stats(), memory: process.memoryUsage() }),
      KillWorker: async (_s, m) => ({ worker: m.worker, actors: await node.killWorker(m.worker) }),
      InjectFault: async (_s, m) => ({ rule: await node.injectFault(m) }),
      ClearFaults: async (_s, m) => ({ cleared: await node.clearFaults(m.ids) }),
      ListFaults: (_s, _m) => node.listFaults(),
    },
  });
}

/** "node v20.19.0", or "deno 2.9.6" under Deno (which sets process.versions.node too). */
export function runtimeName(): string {
  const deno = (process.versions as Record<string, string | undefined>).deno;
  return deno ? `deno ${deno}` : `node ${process.version}`;
}
