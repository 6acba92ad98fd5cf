// Starting Skein processes (nodes, brokers) as OS child processes and waiting until they say
// they are ready: used by `skein up`, `skein doctor`, tests and benchmarks.

import { spawn, type ChildProcess } from "node:child_process";
import { appendFileSync } from "node:fs";
import { cliBundlePath } from "./paths.js";

export interface ChildHandle {
  child: ChildProcess;
  pid: number;
  /** The line that matched the ready pattern. */
  readyLine: string;
  /** Everything the child printed so far (bounded to the last 64 KiB). */
  output(): string;
  /** SIGTERM and wait for exit; SIGKILL after `graceMs`. Resolves with the exit code. */
  stop(graceMs?: number): Promise<number | null>;
  /** SIGKILL: a crash. */
  kill(): Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface StartChildOptions {
  /** Regex a stdout line must match to count as ready. Default /\bready\b/. */
  ready?: RegExp;
  readyTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Echo the child's output with this prefix (for `skein up`). */
  echoPrefix?: string;
  /** Append everything the child prints to this file (a restarted child appends to the same file). */
  logFile?: string;
}

/** Runs `node dist/skein.js <args…>` and waits for its ready line. */
export function startSkeinProcess(args: string[], options: StartChildOptions = {}): Promise<ChildHandle> {
  const child = spawn(process.execPath, ["--enable-source-maps", cliBundlePath(), ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...options.env },
  });
  let out = "";
  const append = (chunk: string) => {
    if (options.logFile) appendFileSync(options.logFile, chunk);
    out += chunk;
    if (out.length > 64 * 1024) out = out.slice(-64 * 1024);
  };
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const pattern = options.ready ?? /\bready\b/;
  return new Promise((resolve, reject) => {
    let buffered = "";
    let isReady = false;
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`skein ${args.join(" ")} not ready after ${options.readyTimeoutMs ?? 30_000} ms:\n${out}`));
    }, options.readyTimeoutMs ?? 30_000);
    child.stdout!.setEncoding("utf8");
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (c: string) => {
      append(c);
      if (options.echoPrefix) process.stderr.write(prefixLines(c, options.echoPrefix));
    });
    child.stdout!.on("data", (c: string) => {
      append(c);
      if (options.echoPrefix) process.stdout.write(prefixLines(c, options.echoPrefix));
      if (isReady) return;
      buffered += c;
      const lines = buffered.split("\n");
      buffered = lines.pop() ?? "";
      const line = lines.find((l) => pattern.test(l));
      if (line === undefined) return;
      isReady = true;
      clearTimeout(timer);
      resolve(handle(line));
    });
    void exited.then(({ code, signal }) => {
      if (isReady) return;
      clearTimeout(timer);
      reject(new Error(`skein ${args.join(" ")} exited (${code ?? signal}) before it was ready:\n${out}`));
    });
  });

  function handle(readyLine: string): ChildHandle {
    return {
      child,
      pid: child.pid!,
      readyLine,
      output: () => out,
      exited,
      async stop(graceMs = 10_000) {
        if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
        // process.kill, not child.kill: Deno's node:child_process records the signal sent by
        // child.kill as the exit cause, so a node that handles SIGTERM and exits 0 would be
        // reported as killed by SIGTERM (Deno 2.9). Node reports the real status either way.
        try {
          process.kill(child.pid!, "SIGTERM");
        } catch {
          // Already gone (ESRCH); its exit event is on the way.
        }
        const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
        const { code } = await exited;
        clearTimeout(timer);
        return code;
      },
      async kill() {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill("SIGKILL");
        await exited;
      },
    };
  }
}

function prefixLines(chunk: string, prefix: string): string {
  return chunk
    .split("\n")
    .map((l, i, all) => (i === all.length - 1 && l === "" ? "" : `${prefix}${l}`))
    .join("\n");
}
