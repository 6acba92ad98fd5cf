// A process's supervisor (main thread): starts W worker threads, places actors on them by
// hash of address, and restarts a worker that exits, with bounded exponential backoff,
// re-creating the actors it hosted. comlink carries the control calls; comlink has no
// timeouts and leaks pending calls when a worker dies, so every call here races a timeout
// and the worker's exit.

import { placementOf } from "../protocol/placement.js";
import { Worker } from "node:worker_threads";
import { wrap, releaseProxy, transfer, type Endpoint, type Remote } from "comlink";
import { MessageChannel, type MessagePort } from "node:worker_threads";
import "./comlink-errors.js";
import { ErrorCode, SkeinError, isSkeinError } from "../protocol/errors.js";
import { parseAddress } from "../protocol/address.js";
import { workerBundlePath } from "./paths.js";
import type { WorkerControl } from "./worker-entry.js";
import type { ActorInfo, NatsOptions, RuntimeEvent, SpawnSpec, WorkerStats } from "./types.js";
import type { FaultCounts, InstalledFault } from "../protocol/node-agent.js";

export interface SupervisorOptions {
  node: string;
  cluster: string;
  /** Worker threads. */
  workers: number;
  nats: NatsOptions;
  /** Upper bound of every control call (spawn, stop, stats…), ms. Default 15000. */
  controlTimeoutMs?: number;
  /** First restart delay, ms; doubles per consecutive failure. Default 50. */
  restartInitialMs?: number;
  /** Restart delay cap, ms. Default 5000. */
  restartMaxMs?: number;
  /** A worker that ran this long resets its backoff, ms. Default 30000. */
  restartResetAfterMs?: number;
  /** Workers take transport fault rules (setFaults). Default false. */
  allowFaults?: boolean;
  onEvent(event: RuntimeEvent): void;
}

interface WorkerSlot {
  index: number;
  worker: Worker | null;
  remote: Remote<WorkerControl> | null;
  /** Rejects when the current worker exits. */
  lost: Promise<never>;
  markLost: (e: Error) => void;
  /** Resolves when the current worker is running. */
  ready: Promise<void>;
  markReady: () => void;
  specs: Map<string, SpawnSpec>;
  failures: number;
  startedAt: number;
  /** When the last running worker of this slot exited (worker.restarted reports the time since). */
  lostAt: number;
  state: "starting" | "running" | "restarting" | "stopped";
}

export class Supervisor {
  private readonly slots: WorkerSlot[] = [];
  private shuttingDown = false;
  private readonly controlTimeoutMs: number;
  /** Transport fault rules every worker holds, re-applied to a restarted one. */
  private faultRules: InstalledFault[] = [];

  constructor(private readonly options: SupervisorOptions) {
    if (!Number.isInteger(options.workers) || options.workers < 1 || options.workers > 256) {
      throw new SkeinError(ErrorCode.INVALID_REQUEST, `workers must be an integer from 1 to 256, got ${options.workers}`, { field: "workers" });
    }
    this.controlTimeoutMs = options.controlTimeoutMs ?? 15_000;
  }

  get workerCount(): number {
    return this.slots.length;
  }

  async start(): Promise<void> {
    for (let i = 0; i < this.options.workers; i++) this.slots.push(this.newSlot(i));
    await Promise.all(this.slots.map((s) => this.startWorker(s)));
  }

  /** Worker index an address is placed on. */
  placement(address: string): number {
    return placementOf(address, this.slots.length);
  }

  async spawn(spec: SpawnSpec): Promise<ActorInfo> {
    const node = parseAddress(spec.address).node;
    if (node !== this.options.node) {
      throw new SkeinError(ErrorCode.INVALID_REQUEST, `address ${spec.address} is not on node ${this.options.node}`, { address: spec.address, field: "address" });
    }
    const slot = this.slots[this.placement(spec.address)];
    await this.withTimeout(slot.ready, `worker ${slot.index} to be ready`);
    let info: ActorInfo;
    try {
      info = await this.call(slot, (r) => r.spawn(spec), `spawn ${spec.address}`);
    } catch (e) {
      // A spawn that timed out may still be starting in the worker (an init that does not
      // end): take it back, or it would come alive unsupervised and refuse a retried spawn.
      if (isSkeinError(e, ErrorCode.TIMEOUT)) await this.call(slot, (r) => r.stop(spec.address), `stop ${spec.address} after its spawn timed out`).catch(() => undefined);
      throw e;
    }
    slot.specs.set(spec.address, spec);
    return info;
  }

  async stop(address: string): Promise<boolean> {
    const slot = this.slots[this.placement(address)];
    slot.specs.delete(address);
    if (slot.state !== "running") return false;
    return this.call(slot, (r) => r.stop(address), `stop ${address}`);
  }

  async list(): Promise<ActorInfo[]> {
    const running = this.slots.filter((s) => s.state === "running");
    const lists = await Promise.all(running.map((s) => this.call(s, (r) => r.list(), "list").catch(() => [] as ActorInfo[])));
    return lists.flat();
  }

  /** Stats of running workers; for the others their state and the exits since they last ran long enough to reset the backoff. */
  async stats(): Promise<Array<WorkerStats | { worker: number; state: string; consecutiveExits: number }>> {
    return Promise.all(
      this.slots.map((s) =>
        s.state === "running"
          ? this.call(s, (r) => r.stats(), "stats").catch(() => ({ worker: s.index, state: "unreachable", consecutiveExits: s.failures }))
          : { worker: s.index, state: s.state, consecutiveExits: s.failures },
      ),
    );
  }

  /**
   * A MessagePort straight into the mailbox of a local actor, for actor traffic from this
   * process's main thread (client facades) without a NATS hop. The port closes when the
   * actor's worker exits.
   */
  async openPort(address: string): Promise<MessagePort> {
    const slot = this.slots[this.placement(address)];
    await this.withTimeout(slot.ready, `worker ${slot.index} to be ready`);
    const { port1, port2 } = new MessageChannel();
    await this.call(slot, (r) => r.attachPort(address, transfer(port2, [port2 as unknown as Transferable]) as unknown as globalThis.MessagePort), `attach port to ${address}`);
    const lost = () => port1.close();
    slot.lost.catch(lost);
    return port1;
  }

  /** Hands the transport fault rules to every running worker; a worker (re)started later gets them at start. */
  async setFaults(rules: InstalledFault[]): Promise<void> {
    this.faultRules = rules;
    const running = this.slots.filter((s) => s.state === "running");
    await Promise.all(running.map((s) => this.call(s, (r) => r.setFaults(rules), "set faults").catch(() => undefined)));
  }

  /** Every running worker's fault counters. */
  async faultCounts(): Promise<FaultCounts[]> {
    const running = this.slots.filter((s) => s.state === "running");
    const lists = await Promise.all(running.map((s) => this.call(s, (r) => r.faultCounts(), "fault counts").catch(() => [] as FaultCounts[])));
    return lists.flat();
  }

  /** Terminates a worker as a crash would; it is restarted like any crashed worker. */
  async killWorker(index: number): Promise<string[]> {
    const slot = this.slots[index];
    if (!slot) throw new SkeinError(ErrorCode.INVALID_REQUEST, `no worker ${index} (this node has ${this.slots.length})`, { field: "worker" });
    if (!slot.worker) throw new SkeinError(ErrorCode.INVALID_REQUEST, `worker ${index} is not running (${slot.state})`, { field: "worker" });
    const actors = [...slot.specs.keys()];
    await slot.worker.terminate();
    return actors;
  }

  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    await Promise.all(
      this.slots.map(async (s) => {
        if (s.state === "running") await this.call(s, (r) => r.shutdown(), "shutdown").catch(() => undefined);
        s.state = "stopped";
        const remote = s.remote;
        s.remote = null;
        if (remote) remote[releaseProxy]();
        const worker = s.worker;
        s.worker = null;
        await worker?.terminate();
      }),
    );
  }

  private newSlot(index: number): WorkerSlot {
    const slot = { index, worker: null, remote: null, specs: new Map(), failures: 0, startedAt: 0, lostAt: 0, state: "starting" } as unknown as WorkerSlot;
    this.resetPromises(slot);
    return slot;
  }

  private resetPromises(slot: WorkerSlot): void {
    slot.lost = new Promise<never>((_, reject) => (slot.markLost = reject));
    slot.lost.catch(() => undefined);
    slot.ready = new Promise<void>((resolve) => (slot.markReady = resolve));
  }

  private async startWorker(slot: WorkerSlot): Promise<void> {
    const worker = new Worker(workerBundlePath(), { name: `skein-${this.options.node}-w${slot.index}` });
    slot.worker = worker;
    slot.remote = wrap<WorkerControl>(workerEndpoint(worker));
    slot.startedAt = Date.now();
    worker.on("error", (e) => console.error(`skein: worker ${slot.index} of ${this.options.node} failed:`, e));
    worker.once("exit", (code) => this.onExit(slot, worker, code));
    try {
      await this.initWorker(slot);
    } catch (e) {
      // A worker whose start failed (NATS unreachable, a timeout) would otherwise sit idle and
      // never exit, and only an exit schedules the next attempt: end it, so its exit does.
      if (slot.worker === worker) await worker.terminate();
      throw e;
    }
    slot.state = "running";
    slot.markReady();
  }

  private async initWorker(slot: WorkerSlot): Promise<void> {
    const faults = this.options.allowFaults ? this.faultRules : null;
    await this.call(
      slot,
      (r) => r.start({ node: this.options.node, cluster: this.options.cluster, worker: slot.index, nats: this.options.nats, faults }),
      "start",
    );
    // Rules that changed while it started missed it (setFaults reaches running workers only).
    for (let given = faults; given !== null && given !== this.faultRules; ) {
      given = this.faultRules;
      const rules = given;
      await this.call(slot, (r) => r.setFaults(rules), "set faults");
    }
  }

  private onExit(slot: WorkerSlot, worker: Worker, code: number): void {
    if (slot.worker !== worker) return;
    // A worker that never finished starting (a failed restart attempt) hosted nothing new:
    // its actors were reported lost when the worker before it exited.
    const wasRunning = slot.state === "running";
    slot.worker = null;
    const remote = slot.remote;
    slot.remote = null;
    if (remote) remote[releaseProxy]();
    slot.markLost(new SkeinError(ErrorCode.WORKER_LOST, `worker ${slot.index} of ${this.options.node} exited (code ${code})`, { broker: this.options.node }));
    if (this.shuttingDown) return;
    const exitedAt = Date.now();
    if (wasRunning) slot.lostAt = exitedAt;
    const actors = [...slot.specs.keys()];
    if (wasRunning) this.options.onEvent({ type: "worker.exited", node: this.options.node, worker: slot.index, code, actors, at: exitedAt });
    if (exitedAt - slot.startedAt > (this.options.restartResetAfterMs ?? 30_000)) slot.failures = 0;
    const delay = Math.min(this.options.restartMaxMs ?? 5_000, (this.options.restartInitialMs ?? 50) * 2 ** slot.failures);
    slot.failures++;
    slot.state = "restarting";
    this.resetPromises(slot);
    setTimeout(() => void this.restart(slot), delay).unref();
  }

  private async restart(slot: WorkerSlot): Promise<void> {
    if (this.shuttingDown) return;
    try {
      await this.startWorker(slot);
    } catch (e) {
      // startWorker ended the half-started worker; its exit schedules the next attempt.
      console.error(`skein: restarting worker ${slot.index} of ${this.options.node} failed (attempt ${slot.failures}, retrying with backoff):`, (e as Error).message);
      return;
    }
    const respawned: string[] = [];
    for (const spec of slot.specs.values()) {
      try {
        await this.call(slot, (r) => r.spawn(spec), `respawn ${spec.address}`);
        respawned.push(spec.address);
      } catch (e) {
        // Its owner may have re-created it first (a client facade recovering): that is fine.
        if (/already runs/.test((e as Error).message)) respawned.push(spec.address);
        else console.error(`skein: could not re-create ${spec.address}:`, (e as Error).message);
      }
    }
    this.options.onEvent({ type: "worker.restarted", node: this.options.node, worker: slot.index, actors: respawned, afterMs: Date.now() - slot.lostAt, at: Date.now() });
  }

  private call<T>(slot: WorkerSlot, fn: (remote: Remote<WorkerControl>) => Promise<T> | T, what: string): Promise<T> {
    const remote = slot.remote;
    if (!remote) {
      return Promise.reject(new SkeinError(ErrorCode.WORKER_LOST, `worker ${slot.index} of ${this.options.node} is not running (${what})`, { broker: this.options.node }));
    }
    return this.withTimeout(Promise.race([Promise.resolve(fn(remote)) as Promise<T>, slot.lost]), what);
  }

  private withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
    let timer: ReturnType<typeof setTimeout>;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new SkeinError(ErrorCode.TIMEOUT, `control call "${what}" on ${this.options.node} timed out after ${this.controlTimeoutMs} ms`, { broker: this.options.node })),
        this.controlTimeoutMs,
      );
    });
    return Promise.race([p, timeout]).finally(() => clearTimeout(timer)) as Promise<T>;
  }
}


/** comlink endpoint over a Node Worker (an EventEmitter, not an EventTarget). */
function workerEndpoint(worker: Worker): Endpoint {
  const wrapped = new WeakMap<object, (data: unknown) => void>();
  return {
    postMessage: (message: unknown, transfer?: Transferable[]) => worker.postMessage(message, transfer as never),
    addEventListener: (_type: string, listener: EventListenerOrEventListenerObject) => {
      const fn = (data: unknown) => {
        const event = { data } as MessageEvent;
        if (typeof listener === "function") listener(event);
        else listener.handleEvent(event);
      };
      wrapped.set(listener, fn);
      worker.on("message", fn);
    },
    removeEventListener: (_type: string, listener: EventListenerOrEventListenerObject) => {
      const fn = wrapped.get(listener);
      if (fn) worker.off("message", fn);
      wrapped.delete(listener);
    },
  };
}
