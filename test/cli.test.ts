// The CLI as a user runs it: `skein up --demo` (what `npm start` runs), topics, produce and
// consume as separate processes against one cluster.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { execFile, spawn } from "node:child_process";
import { cliBundlePath } from "../runtime/paths.js";
import { startSkeinProcess, type ChildHandle } from "../runtime/child-process.js";
import { startNatsServer } from "../runtime/nats-server.js";
import { tempDir } from "./helpers.js";

function skein(args: string[], input?: string, timeoutMs = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [cliBundlePath(), ...args], { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr }),
    );
    if (input !== undefined) child.stdin!.end(input);
  });
}

test("skein up --demo produces and consumes every record, then stops cleanly", async () => {
  const r = await skein(["up", "--demo", "--demo-seconds", "2", "--exit-after-demo", "--cluster", "qs"], undefined, 90_000);
  assert.is(r.code, 0, r.stdout + r.stderr);
  const done = /demo: done — (\d+) records produced and acknowledged by all replicas, (\d+) consumed/.exec(r.stdout);
  assert.ok(done, r.stdout);
  assert.ok(Number(done![1]) > 0);
  assert.is(done![2], done![1]);
});

let up: ChildHandle;
let nats = "";

test("topics, produce and consume against `skein up`", async () => {
  up = await startSkeinProcess(["up", "--brokers", "2", "--cluster", "cli"], { ready: /cluster ready/ });
  nats = /nats=(\S+)/.exec(up.readyLine)![1];
  const common = ["--nats", nats, "--cluster", "cli"];
  const created = await skein(["topics", "create", "lines", "--partitions", "2", "--replication-factor", "2", "--config", "retention.ms=60000", ...common]);
  assert.is(created.code, 0, created.stderr);
  const dup = await skein(["topics", "create", "lines", "--partitions", "2", "--replication-factor", "2", ...common]);
  assert.is(dup.code, 1);
  assert.match(dup.stderr, /already exists/);
  const bad = await skein(["topics", "create", "x", "--partitions", "1", "--replication-factor", "5", ...common]);
  assert.is(bad.code, 1);
  assert.match(bad.stderr, /replication factor 5/);

  const produced = await skein(["produce", "lines", "--parse-key", "--json", ...common], "a\tone\nb\ttwo\nc\tthree\n");
  assert.is(produced.code, 0, produced.stderr);
  assert.is(JSON.parse(produced.stdout.trim()).acked, 3);
  const load = await skein(["produce", "lines", "--count", "5000", "--size", "50", "--json", ...common]);
  assert.is(JSON.parse(load.stdout.trim()).acked, 5000);

  const consumed = await skein(["consume", "lines", "--from-beginning", "--max", "5003", "--json", ...common]);
  assert.is(consumed.code, 0, consumed.stderr);
  const records = consumed.stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert.is(records.length, 5003);
  const keyed = records.filter((r) => r.key !== null);
  assert.equal(keyed.map((r) => `${r.key}=${r.value}`).sort(), ["a=one", "b=two", "c=three"]);
  for (const r of records) assert.ok(typeof r.offset === "number" && typeof r.partition === "number" && typeof r.timestamp === "number");

  const grouped = await skein(["consume", "lines", "--group", "readers", "--from-beginning", "--max", "5003", "--json", ...common]);
  assert.is(grouped.code, 0, grouped.stderr);
  assert.is(grouped.stdout.trim().split("\n").length, 5003);
  const g = JSON.parse((await skein(["groups", "describe", "readers", "--json", ...common])).stdout);
  assert.is(g.state, "Empty", "the console consumer left the group on exit");
  assert.is(g.offsets.reduce((n: number, o: { offset: number }) => n + o.offset, 0), 5003, "it committed what it printed");
  assert.ok(g.offsets.every((o: { lag: number }) => o.lag === 0));
  assert.ok(JSON.parse((await skein(["groups", "list", "--json", ...common])).stdout).some((x: { groupId: string }) => x.groupId === "readers"));
  const reset = JSON.parse((await skein(["groups", "reset-offsets", "readers", "--topic", "lines", "--to-earliest", "--json", ...common])).stdout);
  assert.ok(reset.every((o: { offset: number }) => o.offset === 0));
  const again = await skein(["consume", "lines", "--group", "readers", "--max", "5003", "--json", ...common]);
  assert.is(again.stdout.trim().split("\n").length, 5003, "after a reset to earliest the group reads everything again");
  assert.is((await skein(["groups", "delete", "readers", ...common])).code, 0);

  const described = await skein(["topics", "describe", "lines", "--json", ...common]);
  assert.is(described.stdout.trim().split("\n").length, 1, "describe --json prints one line");
  const d = JSON.parse(described.stdout);
  assert.equal(Object.keys(d).sort(), ["configs", "partitions", "topic"]);
  assert.is(d.topic, "lines");
  assert.is(d.partitions.length, 2);
  for (const p of d.partitions) {
    assert.equal(Object.keys(p).sort(), ["highWatermark", "isr", "leader", "leaderEpoch", "logEndOffset", "logStartOffset", "partition", "replicas"]);
    for (const k of ["partition", "leader", "leaderEpoch", "highWatermark", "logStartOffset", "logEndOffset"]) assert.type(p[k], "number", `${k} is a number`);
    assert.is(p.replicas.length, 2);
    assert.ok(p.replicas.includes(p.leader) && p.isr.includes(p.leader), "the leader is an assigned, in-sync replica");
    assert.ok(p.logStartOffset <= p.highWatermark && p.highWatermark <= p.logEndOffset);
  }
  assert.equal(d.partitions.map((p: { partition: number }) => p.partition), [0, 1]);
  assert.is(d.partitions.reduce((n: number, p: { highWatermark: number }) => n + p.highWatermark, 0), 5003);
  assert.is(d.configs["retention.ms"], 60000);
  const status = JSON.parse((await skein(["cluster", "status", "--json", ...common])).stdout);
  assert.equal(Object.keys(status).sort(), ["brokers", "cluster", "controller"]);
  assert.is(status.cluster, "cli");
  assert.equal(Object.keys(status.controller).sort(), ["broker", "epoch"]);
  assert.is(status.brokers.length, 2);
  assert.ok(status.brokers.some((b: { broker: number }) => b.broker === status.controller.broker), "the controller is a live broker");
  for (const b of status.brokers) for (const k of ["broker", "pid", "host", "workers", "startedAt", "heartbeatAt"]) assert.ok(k in b, `broker entry has ${k}`);
  assert.ok(status.controller.epoch > 0);
  assert.is((await skein(["topics", "delete", "lines", ...common])).code, 0);
  const left = JSON.parse((await skein(["topics", "list", "--json", ...common])).stdout).map((t: { topic: string }) => t.topic);
  assert.equal(left, ["__consumer_offsets"], "only the internal offsets topic remains");
  assert.is(await up.stop(), 0, "skein up exits 0 on SIGTERM");
});

test("every command has --help and missing --nats is a clear error", async () => {
  for (const cmd of [["up"], ["broker"], ["node"], ["doctor"], ["produce"], ["consume"], ["topics", "create"], ["cluster", "status"], ["groups", "describe"], ["groups", "reset-offsets"]]) {
    const r = await skein([...cmd, "--help"]);
    assert.is(r.code, 0, cmd.join(" "));
    assert.match(r.stdout, /Usage:/);
  }
  const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const c = spawn(process.execPath, [cliBundlePath(), "topics", "list"], { env: { ...process.env, SKEIN_NATS: "" } });
    let stderr = "";
    c.stderr.on("data", (d) => (stderr += d));
    c.on("close", (code) => resolve({ code, stderr }));
  });
  assert.is(r.code, 2);
  assert.match(r.stderr, /--nats URL is required/);
});

test("skein bench hands its arguments to the benchmark dispatcher: --help prints its usage, a bad option exits 2", async () => {
  const help = await skein(["bench", "--help"]);
  assert.is(help.code, 0, help.stderr);
  assert.match(help.stdout, /skein bench \[suite…\]/);
  assert.match(help.stdout, /e2e-latency/);
  const bad = await skein(["bench", "--bogus"]);
  assert.is(bad.code, 2);
  assert.match(bad.stderr, /unknown option --bogus/);
});

test("a broker on a NATS server without JetStream exits with an error that says so", async () => {
  const server = await startNatsServer({ jetstream: false });
  const data = tempDir("skein-cli-nojs-");
  try {
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const c = spawn(process.execPath, [cliBundlePath(), "broker", "--id", "1", "--data", data.path, "--nats", server.url], { env: { ...process.env, SKEIN_NATS: "" } });
      let stderr = "";
      c.stderr.on("data", (d) => (stderr += d));
      c.on("close", (code) => resolve({ code, stderr }));
    });
    assert.is.not(r.code, 0);
    assert.match(r.stderr, /JetStream did not answer.*nats-server -js/);
  } finally {
    await server.stop();
    data.remove();
  }
});

test.after(async () => {
  await up?.kill();
});

test.run();
