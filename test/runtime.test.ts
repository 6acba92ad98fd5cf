// The actor runtime in one process: a node with 2 worker threads and a client system, over a
// private nats-server.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { ActorSystem } from "../runtime/system.js";
import { SkeinNode } from "../runtime/node.js";
import { placementOf } from "../runtime/supervisor.js";
import { ErrorCode, isSkeinError, SkeinError } from "../protocol/errors.js";
import type { RuntimeEvent } from "../runtime/types.js";
import { fixture, startNatsServer, waitFor, type NatsServerHandle } from "./helpers.js";
import type { Counter } from "./fixtures/counter.js";

let server: NatsServerHandle;
let node: SkeinNode;
let system: ActorSystem;
const events: RuntimeEvent[] = [];
const counterModule = fixture("counter");

test.before(async () => {
  server = await startNatsServer();
  node = await SkeinNode.start({ id: "n1", cluster: "rt", nats: { servers: server.url }, workers: 2 });
  system = await ActorSystem.connect({ nats: { servers: server.url }, cluster: "rt" });
  system.events("*", (e) => events.push(e));
});

test.after(async () => {
  await system?.close();
  await node?.shutdown();
  await server?.stop();
});

async function expectError(p: Promise<unknown>, code: string): Promise<SkeinError> {
  try {
    await p;
  } catch (e) {
    assert.ok(isSkeinError(e), `expected SkeinError, got ${e}`);
    assert.is((e as SkeinError).code, code, (e as Error).message);
    return e as SkeinError;
  }
  throw new Error(`expected ${code}, but it succeeded`);
}

test("messages are processed one at a time, in the order they were sent", async () => {
  await system.spawn({ node: "n1", kind: "counter", module: counterModule, address: "counter/order@n1" });
  for (let i = 0; i < 2000; i++) system.tell("counter/order@n1", "Add", { n: i });
  const ref = system.ref({} as typeof Counter, "counter/order@n1");
  const log = await waitFor(async () => {
    const l = (await ref.ask("Log", {})) as number[];
    return l.length === 2000 ? l : null;
  });
  assert.equal(log, Array.from({ length: 2000 }, (_, i) => i));
});

test("ask to a missing actor fails fast with ACTOR_NOT_FOUND naming the address", async () => {
  const started = Date.now();
  const e = await expectError(system.ask("counter/nobody@n1", "Get", {}, { timeoutMs: 5_000 }), ErrorCode.ACTOR_NOT_FOUND);
  assert.ok(Date.now() - started < 2_000, "no-responders must not wait for the timeout");
  assert.is(e.context.address, "counter/nobody@n1");
  assert.ok(e.retriable);
});

test("ask times out with TIMEOUT when the actor parks the reply, and the mailbox keeps moving", async () => {
  await system.spawn({ node: "n1", kind: "counter", module: counterModule, address: "counter/hang@n1", args: { start: 5 } });
  const hung = system.ask("counter/hang@n1", "Hang", {}, { timeoutMs: 300 });
  const value = await system.ask<{ value: number }>("counter/hang@n1", "Get", {});
  assert.is(value.value, 5, "a parked reply must not block the next message");
  const e = await expectError(hung, ErrorCode.TIMEOUT);
  assert.is(e.context.address, "counter/hang@n1");
});

test("invalid messages get INVALID_REQUEST naming the field; the actor keeps running", async () => {
  await system.spawn({ node: "n1", kind: "counter", module: counterModule, address: "counter/strict@n1" });
  const e = await expectError(system.ask("counter/strict@n1", "Add", { n: "seven" }), ErrorCode.INVALID_REQUEST);
  assert.is(e.context.field, "n");
  const unknownType = await expectError(system.ask("counter/strict@n1", "Explode", {}), ErrorCode.INVALID_REQUEST);
  assert.is(unknownType.context.field, "type");
  assert.is(await system.ask("counter/strict@n1", "Add", { n: 7 }), 7);
});

test("a handler that throws is answered with ACTOR_FAILED and the actor restarts with fresh state", async () => {
  await system.spawn({ node: "n1", kind: "counter", module: counterModule, address: "counter/crashy@n1", args: { start: 100 } });
  assert.is(await system.ask("counter/crashy@n1", "Add", { n: 1 }), 101);
  await expectError(system.ask("counter/crashy@n1", "Fail", {}), ErrorCode.ACTOR_FAILED);
  const after = await system.ask<{ value: number }>("counter/crashy@n1", "Get", {});
  assert.is(after.value, 100, "state rebuilt by init after restart");
  await waitFor(() => events.some((e) => e.type === "actor.restarted" && e.address === "counter/crashy@n1"), 5_000, "actor.restarted event");
  const info = (await system.list("n1")).find((a) => a.address === "counter/crashy@n1");
  assert.is(info?.restarts, 1);
});

test("supervision: strategy stop, and a restart budget that runs out", async () => {
  await system.spawn({ node: "n1", kind: "fragile", module: counterModule, address: "fragile/1@n1" });
  await expectError(system.ask("fragile/1@n1", "Fail", {}), ErrorCode.ACTOR_FAILED);
  await waitFor(() => events.some((e) => e.type === "actor.stopped" && e.address === "fragile/1@n1"), 5_000, "actor.stopped");
  await expectError(system.ask("fragile/1@n1", "Get", {}, { timeoutMs: 1_000 }), ErrorCode.ACTOR_NOT_FOUND);

  await system.spawn({ node: "n1", kind: "budgeted", module: counterModule, address: "budgeted/1@n1" });
  for (let i = 0; i < 2; i++) {
    await expectError(system.ask("budgeted/1@n1", "Fail", {}), ErrorCode.ACTOR_FAILED);
    assert.is(await system.ask("budgeted/1@n1", "Get", {}), "alive", `restart ${i + 1} within budget`);
  }
  await expectError(system.ask("budgeted/1@n1", "Fail", {}), ErrorCode.ACTOR_FAILED);
  const stopped = await waitFor(() => events.find((e) => e.type === "actor.stopped" && e.address === "budgeted/1@n1"), 5_000, "budget exhausted");
  assert.match((stopped as { reason: string }).reason, /restart budget exhausted/);
});

test("actors ask each other across workers", async () => {
  const a = findAddress("counter/x", 0);
  const b = findAddress("counter/y", 1);
  await system.spawn({ node: "n1", kind: "counter", module: counterModule, address: a });
  await system.spawn({ node: "n1", kind: "counter", module: counterModule, address: b, args: { start: 42 } });
  const r = await system.ask<{ value: number; worker: number }>(a, "AskOther", { address: b });
  assert.is(r.value, 42);
  assert.is(r.worker, 1);
  const self = await system.ask<{ value: number; worker: number }>(a, "AskOther", { address: a, timeoutMs: 300 }).catch((e) => e);
  assert.ok(isSkeinError(self, ErrorCode.TIMEOUT), "an actor awaiting an ask to itself deadlocks until the timeout; the timeout must fire");
});

test("a killed worker is restarted and its actors are reachable again", async () => {
  const address = findAddress("counter/survivor", 0);
  await system.spawn({ node: "n1", kind: "counter", module: counterModule, address, args: { start: 9 } });
  const before = await system.ask<{ pid: number; worker: number }>(address, "Get", {});
  assert.is(before.worker, 0);
  const lost = await system.killWorker("n1", 0);
  assert.ok(lost.includes(address));
  const exited = await waitFor(() => events.find((e) => e.type === "worker.exited" && e.worker === 0), 5_000, "worker.exited");
  assert.ok((exited as { actors: string[] }).actors.includes(address), "the exit event lists the lost actors");
  await waitFor(() => events.find((e) => e.type === "worker.restarted" && e.worker === 0), 10_000, "worker.restarted");
  const after = await system.ask<{ value: number; worker: number }>(address, "Get", {});
  assert.is(after.value, 9);
  assert.is(after.worker, 0);
});

test("spawn validates its input", async () => {
  await expectError(system.spawn({ node: "n1", kind: "nope", module: counterModule, address: "x/1@n1" }), ErrorCode.INVALID_REQUEST);
  await expectError(system.spawn({ node: "n1", kind: "counter", module: counterModule, address: "x/1@elsewhere" }), ErrorCode.INVALID_REQUEST);
  await expectError(system.spawn({ node: "n1", kind: "counter", module: counterModule, address: "x/2@n1", args: { start: "z" } }), ErrorCode.INVALID_REQUEST);
  await system.spawn({ node: "n1", kind: "counter", module: counterModule, address: "x/3@n1" });
  await expectError(system.spawn({ node: "n1", kind: "counter", module: counterModule, address: "x/3@n1" }), ErrorCode.INVALID_REQUEST);
});

function findAddress(prefix: string, worker: number): string {
  for (let i = 0; ; i++) if (placementOf(`${prefix}-${i}@n1`, 2) === worker) return `${prefix}-${i}@n1`;
}

test.run();
