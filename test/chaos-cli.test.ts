// `skein chaos …` fault commands as a user runs them, against a cluster of two brokers started
// with --allow-faults and, for a while, a third without it.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { execFile } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { cliBundlePath } from "../runtime/paths.js";
import { startSkeinProcess, type ChildHandle } from "../runtime/child-process.js";
import { startLocalCluster, type LocalCluster } from "../bin/broker-cmd.js";
import { ClusterClient } from "../actors/cluster/admin.js";
import { isAlive, tempDir, waitFor } from "./helpers.js";

const CLUSTER = "cc";
const data = tempDir("skein-chaos-cli-");
let cluster: LocalCluster;
let client: ClusterClient;
let plain: ChildHandle | null = null;
/** Broker processes the CLI restarted (detached) and their log files: this suite ends and removes them. */
const restartedPids: number[] = [];
const restartedLogs: string[] = [];

function skein(args: string[], timeoutMs = 30_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cliBundlePath(), ...args, "--nats", cluster.natsUrl, "--cluster", CLUSTER], { timeout: timeoutMs }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

async function faults(): Promise<Array<{ broker: number; rules?: Array<{ id: string; kind: string }>; error?: string }>> {
  const r = await skein(["chaos", "faults", "--json"]);
  assert.is(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

test.before(async () => {
  cluster = await startLocalCluster({ brokers: 2, workers: 2, cluster: CLUSTER, data: data.path }, { extraBrokerArgs: ["--allow-faults", "--session-timeout-ms", "2000"] });
  client = await ClusterClient.connect({ nats: { servers: cluster.natsUrl }, cluster: CLUSTER });
  await waitFor(async () => ((await client.status()).controller?.epoch ?? -1) >= 0, 20_000, "an active controller");
  await client.createTopic("t", 1, 2);
  await client.waitForLeaders("t");
});

test.after(async () => {
  await client?.close();
  await plain?.stop();
  for (const pid of restartedPids) {
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      // already gone
    }
  }
  await waitFor(() => restartedPids.every((pid) => !isAlive(pid)), 15_000, "restarted brokers to exit").catch(() => restartedPids.forEach((pid) => isAlive(pid) && process.kill(pid, "SIGKILL")));
  await cluster?.stop();
  data.remove();
  for (const log of restartedLogs) rmSync(log, { force: true });
});

test("a broker without --allow-faults refuses transport faults, by name; nothing stays installed elsewhere", async () => {
  plain = await startSkeinProcess(["broker", "--id", "3", "--data", join(data.path, "plain"), "--workers", "1", "--nats", cluster.natsUrl, "--cluster", CLUSTER]);
  await waitFor(async () => (await client.meta.listBrokers()).length === 3, 10_000, "broker 3 registered");
  const r = await skein(["chaos", "isolate", "--broker", "1", "--ms", "5000"]);
  assert.is(r.code, 1, r.stdout);
  assert.match(r.stderr, /broker 3 refused: start brokers with --allow-faults/);
  const listed = await faults();
  assert.equal(listed.find((b) => b.broker === 1)?.rules, []);
  assert.equal(listed.find((b) => b.broker === 2)?.rules, []);
  assert.match(listed.find((b) => b.broker === 3)?.error ?? "", /was not started with fault injection allowed/);
  await plain.stop();
  plain = null;
  await waitFor(async () => (await client.meta.listBrokers()).length === 2, 10_000, "broker 3 gone");
});

test("drop, delay, duplicate and isolate go to every broker; heal removes them; --for-ms expires them", async () => {
  for (const args of [
    ["chaos", "delay", "--from", "*@1", "--to", "*@2", "--ms", "20", "--jitter-ms", "10"],
    ["chaos", "drop", "--from", "replica/*@2", "--to", "*@1", "--probability", "0.1"],
    ["chaos", "duplicate", "--from", "*", "--to", "replica/t/*@1", "--probability", "0.5"],
    ["chaos", "isolate", "--broker", "2", "--ms", "20000"],
  ]) {
    const r = await skein(args);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, /until \d{4}-\d\d-\d\dT/);
  }
  for (const b of await faults()) assert.equal(b.rules!.map((r) => r.kind).sort(), ["delay", "drop", "duplicate", "isolate"], `broker ${b.broker}`);
  const healed = await skein(["chaos", "heal"]);
  assert.is(healed.code, 0, healed.stderr);
  assert.match(healed.stdout, /cleared/);
  for (const b of await faults()) assert.equal(b.rules, []);
  const short = await skein(["chaos", "drop", "--from", "*@1", "--to", "*@2", "--for-ms", "300"]);
  assert.is(short.code, 0, short.stderr);
  await waitFor(async () => (await faults()).every((b) => b.rules!.length === 0), 10_000, "the rule to expire");
  const bad = await skein(["chaos", "drop", "--from", "*", "--to", "*", "--probability", "2"]);
  assert.is(bad.code, 2);
});

test("kill-worker --leader-of kills the worker hosting the leader; the partition gets a leader again", async () => {
  const r = await skein(["chaos", "kill-worker", "--leader-of", "t/0"]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /killed worker \d of broker \d \(hosting replica\/t\/0@\d\)/);
  await client.waitForLeaders("t", 20_000);
  const none = await skein(["chaos", "kill-worker", "--broker", "1"]);
  assert.is(none.code, 2);
});

test("pause-broker stops the process for --ms, then lets it run", async () => {
  const pid = cluster.brokers.get(2)!.pid;
  const state = () => readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1][0];
  const paused = skein(["chaos", "pause-broker", "--broker", "2", "--ms", "800"]);
  await waitFor(() => state() === "T", 5_000, "broker 2 stopped");
  const r = await paused;
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /resumed broker 2/);
  assert.ok(state() !== "T", `state ${state()}`);
});

test("kill-broker --restart-after-ms SIGKILLs a broker it did not start and starts it again from its command line", async () => {
  const before = (await client.meta.listBrokers()).find((b) => b.value.broker === 2)!.value;
  const r = await skein(["chaos", "kill-broker", "--broker", "2", "--restart-after-ms", "200"], 45_000);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /killed broker 2 \(SIGKILL\)/);
  const log = /broker 2 restarted; its output goes to (\S+)/.exec(r.stdout);
  assert.ok(log, r.stdout);
  restartedLogs.push(log![1]);
  assert.not.ok(isAlive(before.pid));
  const after = (await client.meta.listBrokers()).find((b) => b.value.broker === 2)!.value;
  restartedPids.push(after.pid);
  assert.ok(after.pid !== before.pid && after.startedAt > before.startedAt);
  await client.waitForLeaders("t", 20_000);
});

test.run();
