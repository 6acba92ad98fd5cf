// The nemesis: every fault `skein chaos` can inject into a running cluster, found by what it
// hits (a broker, the leader of a partition, the controller, an actor address), and announced
// as runtime events (`fault.injected` / `fault.healed` on the target node's event subject) so
// every fault leaves a timestamped trace even when its target is frozen or dead.
//
// Process faults (SIGKILL, SIGSTOP/SIGCONT) need the broker's pid: BrokerRegistration in the
// live KV carries it, and its host must be this machine. A broker this process started (the
// scenario runner's own cluster) is killed and restarted through its handle; any other broker
// is restarted from the command line, working directory and environment it was started with
// (read from /proc before the kill, so Linux only).

import { spawn } from "node:child_process";
import { openSync, readFileSync, readlinkSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { ClusterClient } from "../cluster/admin.js";
import type { NatsOptions } from "../../runtime/types.js";
import { controllerAddress, replicaAddress, type BrokerRegistration } from "../../protocol/cluster.js";
import { eventSubject } from "../../protocol/address.js";
import { ErrorCode, SkeinError, isSkeinError } from "../../protocol/errors.js";
import type { FaultSpecInput, InstalledFault } from "../../protocol/node-agent.js";
import type { RuntimeEvent } from "../../runtime/types.js";

/** Broker processes this process owns (started them), so it can kill and restart them itself. */
export interface OwnedBrokers {
  kill(broker: number): Promise<void>;
  /** Graceful stop (SIGTERM, wait for exit). */
  stop(broker: number): Promise<void>;
  start(broker: number): Promise<void>;
  pid(broker: number): number | undefined;
}

/** How a broker process was started, to start it again after a kill. */
interface LaunchRecord {
  argv: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
}

export interface NemesisOptions {
  /** Brokers this process started; absent for a cluster started elsewhere. */
  owned?: OwnedBrokers;
  /** Upper bound for control asks (kill a worker, install a rule), ms. Default 10000. */
  controlTimeoutMs?: number;
}

export class Nemesis {
  private readonly launches = new Map<number, LaunchRecord>();
  /** How each broker this nemesis took down went down, for the event of its restart. */
  private readonly downKind = new Map<number, "kill-broker" | "stop-broker">();
  private readonly encoder = new TextEncoder();
  private nextId = 0;
  /** Set when connect() made the client: close() then closes it. */
  private ownsClient = false;

  constructor(
    readonly client: ClusterClient,
    private readonly options: NemesisOptions = {},
  ) {}

  /** A nemesis with its own connection to the cluster (library users); close() it when done. */
  static async connect(options: { nats: NatsOptions; cluster?: string } & NemesisOptions): Promise<Nemesis> {
    const { nats, cluster, ...rest } = options;
    const nemesis = new Nemesis(await ClusterClient.connect({ nats, cluster, name: "skein:nemesis" }), rest);
    nemesis.ownsClient = true;
    return nemesis;
  }

  /** Closes the connection connect() opened; a client passed to the constructor stays open. */
  async close(): Promise<void> {
    if (this.ownsClient) await this.client.close();
  }

  /** Live brokers (registered in the live KV), by id. */
  async brokers(): Promise<Map<number, BrokerRegistration>> {
    const list = await this.client.meta.listBrokers();
    return new Map(list.map((b) => [b.value.broker, b.value]));
  }

  async broker(id: number): Promise<BrokerRegistration> {
    const reg = (await this.brokers()).get(id);
    if (!reg) throw new SkeinError(ErrorCode.INVALID_REQUEST, `broker ${id} is not registered (not running, or its session expired)`, { broker: String(id) });
    return reg;
  }

  /** Broker currently leading topic/partition (per the KV). */
  async leaderOf(topic: string, partition: number): Promise<number> {
    const state = await this.client.meta.getPartition(topic, partition);
    if (!state) throw new SkeinError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `unknown partition ${topic}/${partition}`, { topic, partition });
    if (state.value.leader < 0) throw new SkeinError(ErrorCode.LEADER_NOT_AVAILABLE, `${topic}/${partition} has no leader`, { topic, partition });
    return state.value.leader;
  }

  /** Broker holding the controller lease. */
  async controller(): Promise<number> {
    const lease = await this.client.meta.getLease();
    if (!lease) throw new SkeinError(ErrorCode.NOT_CONTROLLER, "no active controller");
    return lease.value.broker;
  }

  /** Worker of `broker` hosting `address`, as that broker's node agent reports it. */
  async workerOf(broker: number, address: string): Promise<number> {
    const actors = await this.client.system.list(String(broker));
    const actor = actors.find((a) => a.address === address);
    if (!actor) throw new SkeinError(ErrorCode.ACTOR_NOT_FOUND, `no actor ${address} on broker ${broker}`, { address, broker: String(broker) });
    return actor.worker;
  }

  // Worker and process faults ---------------------------------------------------------------

  /** Terminates a worker thread of `broker` (its supervisor restarts it). Returns the actors it hosted. */
  async killWorker(broker: number, worker: number, why = `worker ${worker}`): Promise<string[]> {
    const actors = await this.client.system.killWorker(String(broker), worker);
    this.announce(broker, "fault.injected", "kill-worker", `${why}: worker ${worker} of broker ${broker} (${actors.length} actors)`);
    return actors;
  }

  /** Kills the worker hosting the leader replica of topic/partition. */
  async killLeaderWorker(topic: string, partition: number): Promise<{ broker: number; worker: number; actors: string[] }> {
    const broker = await this.leaderOf(topic, partition);
    const worker = await this.workerOf(broker, replicaAddress(topic, partition, broker));
    return { broker, worker, actors: await this.killWorker(broker, worker, `leader of ${topic}/${partition}`) };
  }

  /** Kills the worker hosting the active controller actor. */
  async killControllerWorker(): Promise<{ broker: number; worker: number }> {
    const broker = await this.controller();
    const worker = await this.workerOf(broker, controllerAddress(broker));
    await this.killWorker(broker, worker, "controller");
    return { broker, worker };
  }

  /** SIGKILL of a broker process. */
  async killBroker(broker: number): Promise<void> {
    const owned = this.options.owned;
    this.downKind.set(broker, "kill-broker");
    if (owned?.pid(broker) !== undefined) {
      this.announce(broker, "fault.injected", "kill-broker", `SIGKILL broker ${broker} (pid ${owned.pid(broker)})`);
      await owned.kill(broker);
      return;
    }
    const reg = await this.localBroker(broker);
    this.launches.set(broker, launchRecord(reg.pid));
    this.announce(broker, "fault.injected", "kill-broker", `SIGKILL broker ${broker} (pid ${reg.pid})`);
    process.kill(reg.pid, "SIGKILL");
    await waitUntil(() => !alive(reg.pid), 10_000, `broker ${broker} (pid ${reg.pid}) to exit`);
  }

  /** Graceful stop (SIGTERM) of a broker process, for rolling restarts. */
  async stopBroker(broker: number): Promise<void> {
    const owned = this.options.owned;
    this.downKind.set(broker, "stop-broker");
    this.announce(broker, "fault.injected", "stop-broker", `SIGTERM broker ${broker}`);
    if (owned?.pid(broker) !== undefined) return owned.stop(broker);
    const reg = await this.localBroker(broker);
    this.launches.set(broker, launchRecord(reg.pid));
    process.kill(reg.pid, "SIGTERM");
    await waitUntil(() => !alive(reg.pid), 20_000, `broker ${broker} (pid ${reg.pid}) to exit`);
  }

  /**
   * Starts a killed or stopped broker again and waits until it is registered. A broker this
   * process does not own restarts detached from the command it was started with, logging to
   * a file in the temp dir (returned).
   */
  async restartBroker(broker: number, timeoutMs = 30_000): Promise<string | null> {
    const owned = this.options.owned;
    const since = Date.now();
    let log: string | null = null;
    if (owned) {
      await owned.start(broker);
    } else {
      const launch = this.launches.get(broker);
      if (!launch) throw new SkeinError(ErrorCode.INVALID_REQUEST, `broker ${broker} was not stopped by this nemesis: its command line is unknown`, { broker: String(broker) });
      log = join(tmpdir(), `skein-broker-${broker}-${Date.now()}.log`);
      const fd = openSync(log, "a");
      const child = spawn(launch.argv[0], launch.argv.slice(1), { cwd: launch.cwd, env: launch.env, detached: true, stdio: ["ignore", fd, fd] });
      child.unref();
    }
    // The dead process's registration lingers until its session expires: wait for the new one.
    await waitUntil(async () => ((await this.brokers()).get(broker)?.startedAt ?? 0) >= since, timeoutMs, `broker ${broker} to register again`);
    this.announce(broker, "fault.healed", this.downKind.get(broker) ?? "kill-broker", `broker ${broker} restarted`);
    this.downKind.delete(broker);
    return log;
  }

  /** SIGSTOP: the broker freezes (a long GC pause, a stopped VM). */
  async pauseBroker(broker: number): Promise<number> {
    const pid = this.options.owned?.pid(broker) ?? (await this.localBroker(broker)).pid;
    this.announce(broker, "fault.injected", "pause-broker", `SIGSTOP broker ${broker} (pid ${pid})`);
    process.kill(pid, "SIGSTOP");
    return pid;
  }

  /** SIGCONT of a paused broker. */
  resumeBroker(broker: number, pid: number): void {
    try {
      process.kill(pid, "SIGCONT");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ESRCH") throw e;
    }
    this.announce(broker, "fault.healed", "pause-broker", `SIGCONT broker ${broker} (pid ${pid})`);
  }

  // Transport faults ------------------------------------------------------------------------

  /**
   * Installs a transport rule on every live broker (each message is judged by one of them,
   * see runtime/faults.ts). FAULTS_NOT_ALLOWED names every broker that refused; the rule is
   * then removed from the others.
   */
  async injectTransportFault(spec: Omit<FaultSpecInput, "id"> & { id?: string }): Promise<InstalledFault> {
    const id = spec.id ?? `${spec.kind}-${process.pid}-${Date.now().toString(36)}-${this.nextId++}`;
    const brokers = [...(await this.brokers()).keys()].sort((a, b) => a - b);
    if (brokers.length === 0) throw new SkeinError(ErrorCode.INVALID_REQUEST, "no live brokers to inject a fault into");
    const results = await Promise.allSettled(brokers.map((b) => this.client.system.injectFault(String(b), { ...spec, id })));
    const refused = brokers.filter((_, i) => results[i].status === "rejected");
    if (refused.length > 0) {
      await Promise.allSettled(brokers.map((b) => this.client.system.clearFaults(String(b), [id])));
      const first = (results.find((r) => r.status === "rejected") as PromiseRejectedResult).reason;
      if (isSkeinError(first, ErrorCode.FAULTS_NOT_ALLOWED)) {
        throw new SkeinError(
          ErrorCode.FAULTS_NOT_ALLOWED,
          `broker${refused.length > 1 ? "s" : ""} ${refused.join(", ")} refused: start brokers with --allow-faults (skein broker --allow-faults, skein up --allow-faults) to inject transport faults`,
          { brokers: refused },
        );
      }
      throw first;
    }
    return (results[0] as PromiseFulfilledResult<InstalledFault>).value;
  }

  /** Removes transport rules (all without ids) from every live broker; returns the ids removed. */
  async clearTransportFaults(ids?: string[]): Promise<string[]> {
    const brokers = [...(await this.brokers()).keys()];
    const results = await Promise.allSettled(brokers.map((b) => this.client.system.clearFaults(String(b), ids)));
    return [...new Set(results.flatMap((r) => (r.status === "fulfilled" ? r.value : [])))];
  }

  // Helpers -----------------------------------------------------------------------------------

  private async localBroker(broker: number): Promise<BrokerRegistration> {
    const reg = await this.broker(broker);
    if (reg.host !== hostname()) {
      throw new SkeinError(ErrorCode.INVALID_REQUEST, `broker ${broker} runs on ${reg.host}, not here (${hostname()}): signals need the same machine`, { broker: String(broker) });
    }
    return reg;
  }

  /** Publishes a fault event on the target broker's event subject. */
  announce(broker: number, type: "fault.injected" | "fault.healed", kind: string, detail: string): void {
    const node = String(broker);
    const at = Date.now();
    const event: RuntimeEvent =
      type === "fault.injected" ? { type, node, id: `${kind}-${broker}-${at}`, kind, detail, at } : { type, node, id: `${kind}-${broker}-${at}`, kind, reason: "ended", at };
    const nc = this.client.system.nc;
    if (!nc.isClosed()) nc.publish(eventSubject(this.client.cluster, node), this.encoder.encode(JSON.stringify(event)));
  }
}

function launchRecord(pid: number): LaunchRecord {
  if (process.platform !== "linux") {
    throw new SkeinError(ErrorCode.INVALID_REQUEST, "restarting a broker this process did not start reads /proc: Linux only");
  }
  const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter((a) => a.length > 0);
  const cwd = readlinkSync(`/proc/${pid}/cwd`);
  const env: NodeJS.ProcessEnv = {};
  for (const kv of readFileSync(`/proc/${pid}/environ`, "utf8").split("\0")) {
    const eq = kv.indexOf("=");
    if (eq > 0) env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return { argv, cwd, env };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Polls `check` until it holds, every `intervalMs`, for at most `timeoutMs`, then TIMEOUT. A
 * check still pending at the deadline counts as failed: a KV listing can stall for many seconds
 * (see LatestListing), and a chaos run waited on one well past its 30 s bound until the process
 * was killed.
 */
export async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string, intervalMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const timedOut = () => new SkeinError(ErrorCode.TIMEOUT, `timed out after ${timeoutMs} ms waiting for ${what}`);
  for (;;) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), Math.max(0, deadline - Date.now()))));
    const held = await Promise.race([Promise.resolve().then(check).catch(() => false), late]).finally(() => clearTimeout(timer));
    if (held === "late") throw timedOut();
    if (held) return;
    if (Date.now() > deadline) throw timedOut();
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
