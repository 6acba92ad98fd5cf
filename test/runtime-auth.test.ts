// A nats-server that wants a token: every Skein process connects with it (given by flag or
// environment), children get it through the environment, never on their command line, and
// without it the error says what is missing.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { ActorSystem } from "../runtime/system.js";
import { startSkeinProcess, type ChildHandle } from "../runtime/child-process.js";
import { cliBundlePath } from "../runtime/paths.js";
import { ErrorCode, isSkeinError } from "../protocol/errors.js";
import { startLocalCluster, type LocalCluster } from "../bin/broker-cmd.js";
import type { RuntimeEvent } from "../runtime/types.js";
import { startNatsServer, tempDir, type NatsServerHandle, surfaced } from "./helpers.js";

const TOKEN = `tok-${process.pid}-${Date.now().toString(36)}`;
let server: NatsServerHandle;
let system: ActorSystem | null = null;
const children: ChildHandle[] = [];
let cluster: LocalCluster | null = null;
const data = tempDir("skein-auth-");

test.before(surfaced(async () => {
  server = await startNatsServer({ auth: { token: TOKEN } });
}));

test.after(async () => {
  await system?.close();
  for (const c of children) await c.kill();
  await cluster?.stop();
  await server?.stop();
  data.remove();
});

/** A child's command line as the OS shows it to every user. */
function commandLine(pid: number): string {
  return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
}

/** Runs the CLI; calls `onLine` with each stderr line while it runs. */
function runCli(args: string[], env: NodeJS.ProcessEnv, onLine: (line: string) => void = () => undefined): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cliBundlePath(), ...args], { env: { ...process.env, SKEIN_NATS: "", SKEIN_NATS_TOKEN: "", ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let partial = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => {
      stderr += c;
      const lines = (partial + c).split("\n");
      partial = lines.pop() ?? "";
      lines.forEach(onLine);
    });
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

test("without the token a client is refused with an error that says what to give", async () => {
  const e = await ActorSystem.connect({ nats: { servers: server.url }, cluster: "auth" }).catch((x) => x);
  assert.ok(isSkeinError(e, ErrorCode.NOT_CONNECTED), String(e));
  assert.match(e.message, /refused no credentials: give --token/);
  const wrong = await ActorSystem.connect({ nats: { servers: server.url, token: "wrong" }, cluster: "auth" }).catch((x) => x);
  assert.match(wrong.message, /refused a token/);
  system = await ActorSystem.connect({ nats: { servers: server.url, token: TOKEN }, cluster: "auth" });
});

test("skein node connects with the token from the environment; without it, it exits saying why", async () => {
  const node = await startSkeinProcess(["node", "--id", "an", "--workers", "1", "--cluster", "auth"], { env: { SKEIN_NATS: server.url, SKEIN_NATS_TOKEN: TOKEN } });
  children.push(node);
  assert.not.match(commandLine(node.pid), TOKEN);
  await system!.spawn({ node: "an", kind: "$ping", address: "p/1@an" });
  assert.is((await system!.ask<{ pid: number }>("p/1@an", "Ping", {})).pid, node.pid);
  const refused = await startSkeinProcess(["node", "--id", "bn", "--workers", "1", "--cluster", "auth"], { env: { SKEIN_NATS: server.url, SKEIN_NATS_TOKEN: "" } }).catch((x) => x);
  assert.ok(refused instanceof Error, "a node without the token must not become ready");
  assert.match(refused.message, /refused no credentials: give --token/);
});

test("skein doctor --token passes, with the token on no child's command line, in the --cluster it was given", async () => {
  const seen: RuntimeEvent[] = [];
  system!.nc.subscribe("skein.doctor-auth.events.>", { callback: (_e, m) => void seen.push(JSON.parse(new TextDecoder().decode(m.data))) });
  await system!.nc.flush();
  const lines: string[] = [];
  const r = await runCli(["doctor", "--json", "--nats", server.url, "--token", TOKEN, "--cluster", "doctor-auth"], {}, (line) => {
    const pids = /started 2 processes .*\(pids (\d+), (\d+)/.exec(line);
    // Read while the doctor's nodes run (they live until its last check).
    if (pids) lines.push(commandLine(Number(pids[1])), commandLine(Number(pids[2])));
  });
  const result = JSON.parse(r.stdout.trim().split("\n").pop()!);
  assert.is(result.ok, true, r.stderr);
  assert.is(result.cluster, "doctor-auth");
  assert.is(lines.length, 2, "saw both node processes");
  for (const l of lines) {
    assert.match(l, /node --id doctor-p\d --workers 2 --cluster doctor-auth/);
    assert.not.match(l, TOKEN);
  }
  assert.ok(seen.some((e) => e.type === "node.started" && e.node === "doctor-p0"), "its nodes joined the given namespace");
});

test("skein doctor without the token fails saying what is missing", async () => {
  const r = await runCli(["doctor", "--json", "--nats", server.url], {});
  assert.is(r.code, 1);
  const result = JSON.parse(r.stdout.trim().split("\n").pop()!);
  assert.is(result.ok, false);
  assert.match(result.error, /refused no credentials: give --token/);
});

test("skein up hands the token to its brokers through the environment", async () => {
  cluster = await startLocalCluster({ nats: server.url, token: TOKEN, cluster: "auth-up", brokers: 1, workers: 1, data: data.path });
  const broker = cluster.brokers.get(1)!;
  assert.match(broker.readyLine, /broker 1 ready/, "a broker says ready only once it reached NATS");
  assert.not.match(commandLine(broker.pid), TOKEN);
});

test.run();
