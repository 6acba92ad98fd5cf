// `skein doctor`: the first thing a new user runs. Checks NATS and JetStream, starts 2
// processes × 2 workers, spawns actors on every worker, asks each of them from here and from
// every other actor, kills a worker, waits for its restart and asks again.

import type { Command } from "commander";
import { jetstreamManager } from "@nats-io/jetstream";
import { ActorSystem } from "../runtime/system.js";
import { startNatsServer, type NatsServerHandle } from "../runtime/nats-server.js";
import { startSkeinProcess, type ChildHandle } from "../runtime/child-process.js";
import { placementOf } from "../protocol/placement.js";
import type { RuntimeEvent } from "../runtime/types.js";
import { runtimeName } from "../runtime/node.js";
import { addConnectionFlags, connectionEnv, natsOptions, type ConnectionFlags } from "./common.js";

interface DoctorResult {
  ok: boolean;
  processes: number;
  workers: number;
  actors: number;
  asksOk: number;
  asksFailed: number;
  askCrossProcessP50Us: number;
  askCrossProcessP99Us: number;
  workerRestartMs: number;
  jetstream: boolean;
  natsUrl: string;
  /** Cluster namespace the doctor's nodes joined. */
  cluster: string;
  /** Runtime of this process and of each node process, e.g. "node v20.19.0" or "deno 2.9.6". */
  runtimes: string[];
  error?: string;
}

const PROCESSES = 2;
const WORKERS = 2;
const ACTORS_PER_WORKER = 2;

export function registerDoctorCommand(program: Command): void {
  addConnectionFlags(
    program
      .command("doctor")
      .description("check NATS, start 2 processes x 2 workers, ask actors across them, kill a worker and check it comes back")
      .option("--json", "print one final JSON line with the results"),
    "NATS URL; without it the doctor starts its own nats-server",
  ).action(async (flags: ConnectionFlags & { json?: boolean }, cmd: Command) => {
    // Without --cluster (or SKEIN_CLUSTER) the doctor keeps to a namespace of its own, so it
    // cannot disturb a cluster sharing the NATS server.
    const cluster = cmd.getOptionValueSource("cluster") === "default" ? `doctor-${process.pid}-${Date.now().toString(36)}` : flags.cluster;
    const result = await runDoctor({ ...flags, cluster }, (line) => {
      if (!flags.json) console.log(line);
      else console.error(line);
    });
    if (flags.json) console.log(JSON.stringify(result));
    process.exit(result.ok ? 0 : 1);
  });
}

/** Runs every check in namespace `flags.cluster`. */
export async function runDoctor(flags: ConnectionFlags, say: (line: string) => void): Promise<DoctorResult> {
  const cluster = flags.cluster;
  const result: DoctorResult = {
    ok: false, processes: 0, workers: 0, actors: 0, asksOk: 0, asksFailed: 0,
    askCrossProcessP50Us: 0, askCrossProcessP99Us: 0, workerRestartMs: 0, jetstream: false, natsUrl: "", cluster, runtimes: [runtimeName()],
  };
  let server: NatsServerHandle | null = null;
  const children: ChildHandle[] = [];
  let system: ActorSystem | null = null;
  try {
    let url = flags.nats;
    if (!url) {
      say("• no --nats given: starting a private nats-server");
      server = await startNatsServer();
      url = server.url;
    }
    result.natsUrl = url;
    system = await ActorSystem.connect({ nats: natsOptions(flags, url), cluster, name: "skein:doctor" });
    say(`✓ NATS reachable at ${url}`);
    const jsm = await jetstreamManager(system.nc);
    const account = await jsm.getAccountInfo();
    result.jetstream = true;
    say(`✓ JetStream enabled (storage used ${account.storage} bytes)`);

    const nodeIds = Array.from({ length: PROCESSES }, (_, i) => `doctor-p${i}`);
    const events: RuntimeEvent[] = [];
    const eventWaiters: Array<() => void> = [];
    system.events("*", (e) => {
      events.push(e);
      eventWaiters.splice(0).forEach((w) => w());
    });
    // URL and credentials travel in the environment: a command line is readable by every user.
    const env = connectionEnv(flags, url);
    for (const id of nodeIds) {
      children.push(await startSkeinProcess(["node", "--id", id, "--workers", String(WORKERS), "--cluster", cluster], { env }));
    }
    result.processes = children.length;
    result.workers = PROCESSES * WORKERS;
    for (const id of nodeIds) result.runtimes.push(((await system.stats(id)) as { runtime: string }).runtime);
    say(`✓ started ${PROCESSES} processes x ${WORKERS} workers in cluster namespace ${cluster} (pids ${children.map((c) => c.pid).join(", ")}; runtimes ${result.runtimes.join(", ")})`);

    const addresses: string[] = [];
    for (const node of nodeIds) {
      const perWorker = new Array(WORKERS).fill(0);
      for (let i = 0; addresses.filter((a) => a.endsWith(`@${node}`)).length < WORKERS * ACTORS_PER_WORKER; i++) {
        const address = `doctor/ping-${i}@${node}`;
        const w = placementOf(address, WORKERS);
        if (perWorker[w] >= ACTORS_PER_WORKER) continue;
        perWorker[w]++;
        await system.spawn({ node, kind: "$ping", address });
        addresses.push(address);
      }
    }
    result.actors = addresses.length;
    say(`✓ spawned ${addresses.length} actors, ${ACTORS_PER_WORKER} on every worker`);

    await pingAll(system, addresses, result);
    say(`✓ ${addresses.length} direct asks and ${addresses.length ** 2} actor-to-actor asks (cross-worker and cross-process) answered`);

    const samples: number[] = [];
    for (let i = 0; i < 400; i++) {
      const t = process.hrtime.bigint();
      await system.ask(addresses[i % addresses.length], "Ping", {}, { timeoutMs: 5_000 });
      samples.push(Number(process.hrtime.bigint() - t) / 1000);
    }
    samples.sort((a, b) => a - b);
    result.askCrossProcessP50Us = Math.round(samples[Math.floor(samples.length * 0.5)]);
    result.askCrossProcessP99Us = Math.round(samples[Math.floor(samples.length * 0.99)]);
    say(`✓ cross-process ask latency: p50 ${result.askCrossProcessP50Us} µs, p99 ${result.askCrossProcessP99Us} µs`);

    const victim = nodeIds[0];
    const killedAt = Date.now();
    const lost = await system.killWorker(victim, 0);
    say(`• killed worker 0 of ${victim} (it hosted ${lost.length} actors)`);
    const restarted = await waitForEvent(events, eventWaiters, (e) => e.type === "worker.restarted" && e.node === victim && e.worker === 0, 15_000);
    result.workerRestartMs = Date.now() - killedAt;
    say(`✓ worker restarted and its ${(restarted as { actors: string[] }).actors.length} actors re-created in ${result.workerRestartMs} ms`);
    await pingAll(system, addresses, result);
    say(`✓ all ${addresses.length} actors answer again after the restart`);
    result.ok = result.asksFailed === 0;
  } catch (e) {
    result.error = (e as Error).message;
    say(`✗ ${(e as Error).message}`);
  } finally {
    await system?.close().catch(() => undefined);
    const codes = await Promise.all(children.map((c) => c.stop()));
    if (codes.some((c) => c !== 0)) {
      result.ok = false;
      say(`✗ a node did not shut down cleanly (exit codes ${codes.join(", ")})`);
    } else if (children.length) say(`✓ ${children.length} processes shut down cleanly`);
    await server?.stop();
  }
  say(result.ok ? "doctor: all checks passed" : "doctor: FAILED");
  return result;
}

async function pingAll(system: ActorSystem, addresses: string[], result: DoctorResult): Promise<void> {
  for (const a of addresses) {
    await system.ask(a, "Ping", {}, { timeoutMs: 5_000 });
    result.asksOk++;
  }
  for (const from of addresses) {
    await Promise.all(
      addresses.map((to) =>
        system.ask(from, "Relay", { address: to }, { timeoutMs: 10_000 }).then(
          () => result.asksOk++,
          (e) => {
            result.asksFailed++;
            throw e;
          },
        ),
      ),
    );
  }
}

function waitForEvent(events: RuntimeEvent[], waiters: Array<() => void>, match: (e: RuntimeEvent) => boolean, timeoutMs: number): Promise<RuntimeEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no matching event within ${timeoutMs} ms`)), timeoutMs);
    const check = () => {
      const found = events.find(match);
      if (found) {
        clearTimeout(timer);
        resolve(found);
      } else waiters.push(check);
    };
    check();
  });
}
