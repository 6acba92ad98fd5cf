// ActorSystem: the client face of the runtime for any process. Connects to NATS, asks and
// tells actors by address, spawns actors on named nodes, follows lifecycle events.

import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { eventSubject, nodeAgentAddress } from "../protocol/address.js";
import type { ActorDefinition, AskOptions, MessageOf, ReplyOf } from "./actor.js";
import { connectNats } from "./nats-connect.js";
import { NatsTransport } from "./transport.js";
import { DEFAULT_ASK_TIMEOUT_MS, type ActorInfo, type NatsOptions, type RuntimeEvent, type SpawnSpec } from "./types.js";
import type { FaultCounts, FaultSpecInput, InstalledFault } from "../protocol/node-agent.js";

export interface SystemOptions {
  nats: NatsOptions;
  /** Cluster namespace. Default "default". */
  cluster?: string;
  /** Name shown in NATS connection lists. */
  name?: string;
}

export class ActorSystem {
  private constructor(
    readonly nc: NatsConnection,
    readonly cluster: string,
    private readonly transport: NatsTransport,
  ) {}

  static async connect(options: SystemOptions): Promise<ActorSystem> {
    const cluster = options.cluster ?? "default";
    const nc = await connectNats(options.nats, options.name ?? "skein:client");
    return new ActorSystem(nc, cluster, new NatsTransport(nc, cluster, options.nats.maxBufferedBytesWhileDisconnected ?? 8 * 1024 * 1024, options.nats.coalesceTells ?? true));
  }

  tell(address: string, type: string, body: unknown): void {
    this.transport.tell(address, type, body);
  }

  ask<T = unknown>(address: string, type: string, body: unknown, options?: AskOptions): Promise<T> {
    return this.transport.ask(address, type, body, options?.timeoutMs ?? DEFAULT_ASK_TIMEOUT_MS) as Promise<T>;
  }

  /** A typed handle on an actor whose definition you can import. */
  ref<D extends ActorDefinition>(_definition: D, address: string): ActorRef<D> {
    return {
      address,
      tell: (type, body) => this.tell(address, type, body),
      ask: (type, body, options) => this.ask(address, type, body, options),
    };
  }

  /** Spawns an actor on the node named in `spec.address` (`…@node`). */
  spawn(spec: SpawnSpec & { node: string }, options?: AskOptions): Promise<ActorInfo> {
    const { node, ...rest } = spec;
    return this.ask(nodeAgentAddress(node), "Spawn", rest, { timeoutMs: options?.timeoutMs ?? 20_000 });
  }

  async stop(node: string, address: string): Promise<boolean> {
    const r = await this.ask<{ stopped: boolean }>(nodeAgentAddress(node), "Stop", { address });
    return r.stopped;
  }

  async list(node: string): Promise<ActorInfo[]> {
    const r = await this.ask<{ actors: ActorInfo[] }>(nodeAgentAddress(node), "List", {});
    return r.actors;
  }

  stats(node: string): Promise<unknown> {
    return this.ask(nodeAgentAddress(node), "Stats", {});
  }

  /** Terminates worker `worker` of `node` as a crash would. Returns the actors it hosted. */
  async killWorker(node: string, worker: number): Promise<string[]> {
    const r = await this.ask<{ actors: string[] }>(nodeAgentAddress(node), "KillWorker", { worker });
    return r.actors;
  }

  /**
   * Installs a transport fault rule on `node` (runtime/faults.ts). Rejects with
   * FAULTS_NOT_ALLOWED unless the node was started with fault injection allowed. Install the
   * same rule (same id) on every node that allows faults: each message is judged by one of them.
   */
  async injectFault(node: string, spec: FaultSpecInput): Promise<InstalledFault> {
    const r = await this.ask<{ rule: InstalledFault }>(nodeAgentAddress(node), "InjectFault", spec);
    return r.rule;
  }

  /** Removes fault rules from `node` (every rule without ids); returns the ids removed. */
  async clearFaults(node: string, ids?: string[]): Promise<string[]> {
    const r = await this.ask<{ cleared: string[] }>(nodeAgentAddress(node), "ClearFaults", ids ? { ids } : {});
    return r.cleared;
  }

  /** Fault rules in force on `node`, and what each did there so far. */
  listFaults(node: string): Promise<{ rules: InstalledFault[]; counts: FaultCounts[] }> {
    return this.ask(nodeAgentAddress(node), "ListFaults", {});
  }

  /** Calls `listener` for every lifecycle event of `node` (or every node with "*"). */
  events(node: string | "*", listener: (event: RuntimeEvent) => void): Subscription {
    const decoder = new TextDecoder();
    return this.nc.subscribe(eventSubject(this.cluster, node), {
      callback: (err, msg) => {
        if (err) return;
        try {
          listener(JSON.parse(decoder.decode(msg.data)) as RuntimeEvent);
        } catch {
          // A malformed event is ignored; events are informational and at-most-once.
        }
      },
    });
  }

  /** False from the moment NATS is lost until it is back (asks fail fast with NOT_CONNECTED meanwhile). */
  get connected(): boolean {
    return this.transport.isConnected;
  }

  /**
   * Tells dropped while NATS was disconnected, beyond `maxBufferedBytesWhileDisconnected`
   * (core NATS is at-most-once: nothing retries them).
   */
  get droppedWhileDisconnected(): number {
    return this.transport.droppedWhileDisconnected;
  }

  /** Bytes of tells waiting for NATS to come back; 0 while connected. */
  get bufferedBytesWhileDisconnected(): number {
    return this.transport.bufferedBytesWhileDisconnected;
  }

  /** Calls `listener(false)` when NATS is lost and `listener(true)` when it is back. Returns the way to stop. */
  onConnectionChange(listener: (connected: boolean) => void): () => void {
    return this.transport.onConnectionChange(listener);
  }

  /** Drains the connection; when NATS is already gone, just closes it. */
  async close(): Promise<void> {
    if (this.nc.isClosed()) return;
    await this.nc.drain().catch(() => this.nc.close());
  }
}

export interface ActorRef<D extends ActorDefinition> {
  address: string;
  tell<K extends keyof D["messages"] & string>(type: K, body: MessageOf<D, K>): void;
  ask<K extends keyof D["messages"] & string>(type: K, body: MessageOf<D, K>, options?: AskOptions): Promise<ReplyOf<D, K>>;
}
