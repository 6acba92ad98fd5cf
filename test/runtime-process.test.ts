// Two OS processes: a `skein node` child hosts actors; this process asks them, and a second
// child asks across processes. SIGTERM must stop a node cleanly, leaving nothing behind.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { execFileSync } from "node:child_process";
import { ActorSystem } from "../runtime/system.js";
import { startSkeinProcess, type ChildHandle } from "../runtime/child-process.js";
import { fixture, isAlive, startNatsServer, type NatsServerHandle, surfaced } from "./helpers.js";

let server: NatsServerHandle;
let system: ActorSystem;
const children: ChildHandle[] = [];

test.before(surfaced(async () => {
  server = await startNatsServer();
  system = await ActorSystem.connect({ nats: { servers: server.url }, cluster: "xp" });
}));

test.after(async () => {
  await system?.close();
  for (const c of children) await c.kill();
  await server?.stop();
});

test("actors in two processes ask each other; SIGTERM shuts a node down cleanly", async () => {
  for (const id of ["pa", "pb"]) {
    children.push(await startSkeinProcess(["node", "--id", id, "--workers", "2", "--nats", server.url, "--cluster", "xp"]));
  }
  const module = fixture("counter");
  await system.spawn({ node: "pa", kind: "counter", module, address: "counter/a@pa", args: { start: 1 } });
  await system.spawn({ node: "pb", kind: "counter", module, address: "counter/b@pb", args: { start: 2 } });
  const fromA = await system.ask<{ value: number; pid: number }>("counter/a@pa", "AskOther", { address: "counter/b@pb" });
  const fromB = await system.ask<{ value: number; pid: number }>("counter/b@pb", "AskOther", { address: "counter/a@pa" });
  assert.is(fromA.value, 2);
  assert.is(fromA.pid, children[1].pid);
  assert.is(fromB.value, 1);
  assert.is(fromB.pid, children[0].pid);

  const pid = children[0].pid;
  const code = await children[0].stop();
  assert.is(code, 0, `node exited with ${code}:\n${children[0].output()}`);
  assert.not.ok(isAlive(pid));
  const leftovers = execFileSync("ps", ["-eo", "pid,ppid"], { encoding: "utf8" })
    .split("\n")
    .filter((l) => l.trim().split(/\s+/)[1] === String(pid));
  assert.is(leftovers.length, 0, "no child process of the node survives it");
  const err = (await system.ask("counter/a@pa", "Get", {}, { timeoutMs: 2_000 }).catch((e) => e)) as { code: string };
  assert.is(err.code, "ACTOR_NOT_FOUND");
});

test.run();
