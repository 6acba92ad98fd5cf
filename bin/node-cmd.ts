// `skein node`: a process that joins the cluster namespace and hosts actors on worker threads.
import { availableParallelism } from "node:os";
import type { Command } from "commander";
import { SkeinNode } from "../runtime/node.js";
import { addConnectionFlags, intOption, natsOptions, onShutdownSignal, requireNats, type ConnectionFlags } from "./common.js";

export function registerNodeCommand(program: Command): void {
  addConnectionFlags(
    program
      .command("node")
      .description("start a process that hosts actors on worker threads (spawn them with the runtime API)")
      .requiredOption("--id <id>", "node id, unique in the cluster ([A-Za-z0-9._-])")
      .option("--workers <n>", "worker threads", intOption("--workers", 1, 256), availableParallelism())
      .option("--allow-faults", "accept transport fault injection (skein chaos drop|delay|duplicate|isolate)"),
  ).action(async (flags: ConnectionFlags & { id: string; workers: number; allowFaults?: boolean }) => {
    const url = requireNats(flags);
    const node = await SkeinNode.start({ id: flags.id, cluster: flags.cluster, workers: flags.workers, nats: natsOptions(flags, url), allowFaults: flags.allowFaults ?? false });
    onShutdownSignal(() => node.shutdown());
    console.log(`node ${node.id} ready: cluster=${flags.cluster} workers=${node.workerCount} nats=${url} pid=${process.pid}`);
  });
}
