// Starts a private nats-server (JetStream on, random port, temp store dir) for tests, the
// doctor and `skein up`, and stops it again. The port is chosen by nats-server itself
// (-p -1) and read from its log, so two runs never race for a port.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ErrorCode, SkeinError } from "../protocol/errors.js";

export interface NatsServerHandle {
  url: string;
  port: number;
  pid: number;
  storeDir: string;
  /** SIGTERM, then SIGKILL after 3 s; removes the store dir unless it was given. */
  stop(): Promise<void>;
}

export interface NatsServerOptions {
  /** nats-server binary. Default: "nats-server" from PATH (Debian installs /usr/sbin/nats-server). */
  binary?: string;
  /** JetStream store dir. Default: a new temp dir, removed on stop. */
  storeDir?: string;
  /** Port; default -1 (nats-server picks a free one). */
  port?: number;
  /** Max payload bytes. Default 8 MiB (record batches up to that travel in one message). */
  maxPayloadBytes?: number;
  /** How long to wait for "Server is ready", ms. Default 15000. */
  readyTimeoutMs?: number;
  /** Clients must authenticate: with this token, or with this user and password. Default: no authentication. */
  auth?: { token: string } | { user: string; pass: string };
  /**
   * Run the server in a process group of its own, so a Ctrl-C in the terminal (SIGINT to the
   * whole foreground group) does not stop it before the brokers that use it have shut down
   * cleanly; the owner stops it last. Default false.
   */
  ownProcessGroup?: boolean;
  /** JetStream on (-js). Default true; off only to test what Skein says without it. */
  jetstream?: boolean;
}

export const NATS_INSTALL_HINT =
  "nats-server was not found on PATH. Install it (Debian/Ubuntu: `apt-get update && apt-get install -y nats-server`) " +
  "or point Skein at a running server with --nats nats://HOST:4222.";

export function findNatsServer(binary = "nats-server"): string | null {
  for (const candidate of [binary, "/usr/sbin/nats-server", "/usr/local/bin/nats-server"]) {
    const r = spawnSync(candidate, ["--version"], { encoding: "utf8" });
    if (r.status === 0) return candidate;
  }
  return null;
}

export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServerHandle> {
  const binary = findNatsServer(options.binary);
  if (!binary) throw new SkeinError(ErrorCode.NOT_CONNECTED, NATS_INSTALL_HINT);
  const ownStore = options.storeDir === undefined;
  const storeDir = options.storeDir ?? mkdtempSync(join(tmpdir(), "skein-nats-"));
  const configPath = join(storeDir, "nats.conf");
  writeFileSync(configPath, `max_payload: ${options.maxPayloadBytes ?? 8 * 1024 * 1024}\n${authConfig(options.auth)}`, { mode: 0o600 });
  const child = spawn(binary, ["-a", "127.0.0.1", "-p", String(options.port ?? -1), ...(options.jetstream === false ? [] : ["-js"]), "-sd", storeDir, "-c", configPath], {
    stdio: ["ignore", "ignore", "pipe"],
    detached: options.ownProcessGroup ?? false,
  });
  const port = await waitForReady(child, options.readyTimeoutMs ?? 15_000).catch((e) => {
    child.kill("SIGKILL");
    if (ownStore) rmSync(storeDir, { recursive: true, force: true });
    throw e;
  });
  let stopped: Promise<void> | null = null;
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    pid: child.pid!,
    storeDir,
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        let killer: ReturnType<typeof setTimeout> | undefined;
        const done = () => {
          clearTimeout(killer);
          if (ownStore) rmSync(storeDir, { recursive: true, force: true });
          resolve();
        };
        if (child.exitCode !== null || child.signalCode !== null) return done();
        child.once("exit", done);
        killer = setTimeout(() => child.kill("SIGKILL"), 3_000);
        child.kill("SIGTERM");
      });
      return stopped;
    },
  };
}

/** The config's authorization block; JSON strings are valid quoted strings in NATS config. */
function authConfig(auth: NatsServerOptions["auth"]): string {
  if (!auth) return "";
  if ("token" in auth) return `authorization { token: ${JSON.stringify(auth.token)} }\n`;
  return `authorization { user: ${JSON.stringify(auth.user)}, password: ${JSON.stringify(auth.pass)} }\n`;
}

function waitForReady(child: ChildProcess, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let log = "";
    let port = 0;
    const timer = setTimeout(() => reject(new Error(`nats-server not ready after ${timeoutMs} ms:\n${log}`)), timeoutMs);
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (chunk: string) => {
      if (log.length < 64 * 1024) log += chunk;
      const m = /Listening for client connections on [^\s]*:(\d+)/.exec(log);
      if (m) port = Number(m[1]);
      if (port && log.includes("Server is ready")) {
        clearTimeout(timer);
        child.stderr!.removeAllListeners("data");
        child.stderr!.resume();
        resolve(port);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`nats-server exited with code ${code} before it was ready:\n${log}`));
    });
  });
}
