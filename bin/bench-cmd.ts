// `skein bench [SUITE…] [--quick] [--json FILE] [--out DIR] [--filter TEXT] [--profile DIR]`:
// the benchmark dispatcher (bench/main.ts, what `npm run bench` runs after its build) from the
// CLI. It runs the built dist/bench/main.js next to this CLI bundle in a child process, with
// every argument passed through, so `skein bench --help` prints the dispatcher's own usage.

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Command } from "commander";
import { cliBundlePath } from "../runtime/paths.js";

export function registerBenchCommand(program: Command): void {
  program
    .command("bench")
    .description("benchmark Skein next to raw NATS and JetStream: produce, consume, e2e-latency, partitions-scale, failover, actors, log (`skein bench --help` for suites and options; the same as `npm run bench --`)")
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument("[args...]", "suites and options, passed to the benchmark dispatcher")
    .action((args: string[]) => runBench(args));
}

function runBench(args: string[]): void {
  const main = join(dirname(cliBundlePath()), "bench", "main.js");
  if (!existsSync(main)) {
    console.error(`skein bench: ${main} is missing; run "npm run build" first`);
    process.exit(2);
  }
  const child = spawn(process.execPath, ["--enable-source-maps", main, ...args], { stdio: "inherit" });
  // Ctrl-C reaches the child from the terminal too; a SIGTERM to this process is passed on, so
  // the dispatcher stops the servers it started.
  process.on("SIGTERM", () => child.kill("SIGTERM"));
  process.on("SIGINT", () => undefined);
  child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}
