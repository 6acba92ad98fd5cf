// The actor runtime in one process: a node with 2 worker threads and a client system, over a
// private nats-server.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { ActorSystem } from "../runtime/system.js";
import { SkeinNode } from "../runtime/node.js";
import { placementOf } from "../protocol/placement.js";
import { ErrorCode, isSkeinError, SkeinError } from "../protocol/errors.js";
import { ActorHost } from "../runtime/host.js";
import { NatsTransport } from "../runtime/transport.js";
import { Escalating } from "./fixtures/counter.js";
import { defineActor } from "../runtime/actor.js";
import { z } from "zod";
import type { RuntimeEvent } from "../runtime/types.js";
import { fixture, startNatsServer, waitFor, type NatsServerHandle, surfaced } from "./helpers.js";
import type { Counter } from "./fixtures/counter.js";

let server: NatsServerHandle;
let node: SkeinNode;
let system: ActorSystem;
/** A node with a short control-call timeout. */
let quick: SkeinNode;
const events: RuntimeEvent[] = [];
const counterModule = fixture("counter");

test.before(surfaced(async () => {
  server = await startNatsServer();
  node = await SkeinNode.start({ id: "n1", cluster: "rt", nats: { servers: server.url }, workers: 2 });
  quick = await SkeinNode.start({ id: "n2", cluster: "rt", nats: { servers: server.url }, workers: 1, controlTimeoutMs: 800 });
  system = await ActorSystem.connect({ nats: { servers: server.url }, cluster: "rt" });
  system.events("*", (e) => events.push(e));
}));

test.after(async () => {
  await system?.close();
  await quick?.shutdown();
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

test("a spawn whose init never finishes fails with TIMEOUT and is taken back", async () => {
  const started = Date.now();
  const e = await expectError(system.spawn({ node: "n2", kind: "stuck", module: counterModule, address: "stuck/1@n2" }), ErrorCode.TIMEOUT);
  assert.match(e.message, /control call "spawn stuck\/1@n2" on n2 timed out after 800 ms/);
  assert.ok(Date.now() - started < 10_000, "the control timeout, not the ask's 20 s, ended it");
  // Taken back: the address is free for another spawn, and the stuck actor never answers.
  await system.spawn({ node: "n2", kind: "counter", module: counterModule, address: "stuck/1@n2", args: { start: 3 } });
  assert.is((await system.ask<{ value: number }>("stuck/1@n2", "Get", {})).value, 3);
});

test("killing a worker fails its pending control calls with WORKER_LOST", async () => {
  const mark = events.length;
  const address = findAddress("stuck/dies", 0);
  const spawning = node.spawn({ kind: "stuck", module: counterModule, address });
  const started = Date.now();
  await node.killWorker(0);
  const e = await expectError(spawning, ErrorCode.WORKER_LOST);
  assert.match(e.message, /worker 0 of n1 exited/);
  assert.ok(Date.now() - started < 10_000, "failed by the exit, not by the 15 s control timeout");
  await waitFor(() => events.slice(mark).find((x) => x.type === "worker.restarted" && x.node === "n1" && x.worker === 0), 10_000, "worker.restarted");
  assert.not.ok((await system.list("n1")).some((a) => a.address === address), "a spawn that failed is not re-created");
});

test("supervision: escalate ends the worker, which comes back with all its actors", async () => {
  const mark = events.length;
  const escalating = findAddress("escalating/a", 1);
  const sibling = findAddress("counter/sibling", 1);
  await system.spawn({ node: "n1", kind: "escalating", module: counterModule, address: escalating });
  await system.spawn({ node: "n1", kind: "counter", module: counterModule, address: sibling, args: { start: 5 } });
  assert.is(await system.ask(sibling, "Add", { n: 1 }), 6);
  const before = await system.ask<{ bornAt: number }>(escalating, "Get", {});
  await expectError(system.ask(escalating, "Fail", {}), ErrorCode.ACTOR_FAILED);
  const since = () => events.slice(mark);
  const stopped = await waitFor(() => since().find((x) => x.type === "actor.stopped" && x.address === escalating), 5_000, "actor.stopped");
  assert.match((stopped as { reason: string }).reason, /^escalated: escalating broke/);
  const exited = await waitFor(() => since().find((x) => x.type === "worker.exited" && x.node === "n1" && x.worker === 1), 5_000, "worker.exited");
  assert.is((exited as { code: number }).code, 70);
  const restarted = await waitFor(() => since().find((x) => x.type === "worker.restarted" && x.node === "n1" && x.worker === 1), 10_000, "worker.restarted");
  assert.ok((restarted as { actors: string[] }).actors.includes(escalating));
  assert.ok((restarted as { actors: string[] }).actors.includes(sibling));
  const after = await system.ask<{ bornAt: number; worker: number }>(escalating, "Get", {});
  assert.is(after.worker, 1);
  assert.ok(after.bornAt >= before.bornAt, "re-created");
  assert.is((await system.ask<{ value: number }>(sibling, "Get", {})).value, 5, "the sibling was re-created from its spawn args");
});

test("supervision: escalate on a main thread stops the actor and hands the failure to the host", async () => {
  const escalated: Array<{ address: string; error: string; stillHosted: boolean }> = [];
  const mainEvents: RuntimeEvent[] = [];
  const host: ActorHost = new ActorHost({
    node: "main-test",
    worker: -1,
    transport: new NatsTransport(system.nc, "rt", 1024 * 1024),
    onEvent: (e) => mainEvents.push(e),
    escalate: (address, error) => escalated.push({ address, error: (error as Error).message, stillHosted: host.has(address) }),
  });
  await host.spawnDefinition(Escalating, "escalating/main@main-test", undefined);
  await expectError(host.ask(null, "escalating/main@main-test", "Fail", {}), ErrorCode.ACTOR_FAILED);
  await waitFor(() => escalated.length === 1, 5_000, "escalation");
  assert.equal(escalated[0], { address: "escalating/main@main-test", error: "escalating broke", stillHosted: false });
  assert.ok(mainEvents.some((e) => e.type === "actor.stopped" && /^escalated/.test(e.reason)));
  await expectError(system.ask("escalating/main@main-test", "Get", {}, { timeoutMs: 1_000 }), ErrorCode.ACTOR_NOT_FOUND);
});

test("deferred replies: answered once, through unbound resolve/reject; a tell's is settled from the start", async () => {
  const seen: Array<{ settledAtFirst: boolean; settledAfter: boolean }> = [];
  const Deferring = defineActor({
    kind: "deferring",
    messages: { Later: z.object({ value: z.number(), fail: z.boolean() }) },
    init: () => ({}),
    handlers: {
      Later: (_s, m, ctx) => {
        const reply = ctx.deferReply<number>();
        const settledAtFirst = reply.settled;
        // Passed on unbound, as handlers do with `.then(reply.resolve, reply.reject)`.
        const answer = m.fail ? reply.reject : reply.resolve;
        setTimeout(() => {
          answer(m.fail ? new SkeinError(ErrorCode.INVALID_REQUEST, "refused later") : m.value);
          reply.resolve(-1); // too late: the first answer stands
          reply.reject(new Error("also too late"));
          seen.push({ settledAtFirst, settledAfter: reply.settled });
        }, 5);
      },
    },
  });
  const host = new ActorHost({ node: "defer-test", worker: -1, transport: new NatsTransport(system.nc, "rt", 1024 * 1024), onEvent: () => {}, escalate: () => {} });
  await host.spawnDefinition(Deferring, "deferring/1@defer-test", undefined);
  assert.is(await host.ask(null, "deferring/1@defer-test", "Later", { value: 42, fail: false }), 42);
  const refused = await expectError(host.ask(null, "deferring/1@defer-test", "Later", { value: 0, fail: true }), ErrorCode.INVALID_REQUEST);
  assert.is(refused.message, "refused later");
  assert.is(refused.context.address, "deferring/1@defer-test");
  host.tell(null, "deferring/1@defer-test", "Later", { value: 7, fail: false });
  await waitFor(() => seen.length === 3, 5_000, "the tell's handler");
  assert.equal(seen, [
    { settledAtFirst: false, settledAfter: true },
    { settledAtFirst: false, settledAfter: true },
    { settledAtFirst: true, settledAfter: true },
  ]);
  await host.stopAll("done");
});

test("an actor is subscribed before its started hook runs: a message sent meanwhile waits in its mailbox, not lost", async () => {
  let inStarted!: () => void;
  const startedRuns = new Promise<void>((r) => (inStarted = r));
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const Gated = defineActor({
    kind: "gated",
    messages: { Ready: z.object({}) },
    init: () => ({ started: false }),
    async started(state) {
      inStarted();
      await gate; // e.g. a replica reading its partition state
      state.started = true;
    },
    handlers: { Ready: (state) => state.started },
  });
  const host = new ActorHost({ node: "gate-test", worker: -1, transport: new NatsTransport(system.nc, "rt", 1024 * 1024), onEvent: () => {}, escalate: () => {} });
  const spawned = host.spawnDefinition(Gated, "gated/1@gate-test", undefined);
  await startedRuns;
  // Before, the subscription came after started: this ask found no responder.
  const answer = system.ask<boolean>("gated/1@gate-test", "Ready", {}, { timeoutMs: 5_000 });
  await new Promise((r) => setTimeout(r, 50));
  open();
  await spawned;
  assert.is(await answer, true, "handled once started was done");
  await host.stopAll("done");
});

test("started/stopped hooks and the actor.started event", async () => {
  const mark = events.length;
  const address = findAddress("hooked/h", 1);
  const hooks: Array<{ hook: string; handled: number }> = [];
  const sub = system.nc.subscribe(`hooks.${address.replace(/[^A-Za-z0-9_-]/g, "_")}`, {
    callback: (_err, msg) => {
      hooks.push(JSON.parse(new TextDecoder().decode(msg.data)));
    },
  });
  await system.nc.flush();
  try {
    const info = await system.spawn({ node: "n1", kind: "hooked", module: counterModule, address });
    const started = await waitFor(() => events.slice(mark).find((e) => e.type === "actor.started" && e.address === address), 5_000, "actor.started");
    assert.equal({ ...started, at: 0 }, { type: "actor.started", node: "n1", worker: 1, address, kind: "hooked", at: 0 });
    assert.is(info.worker, 1);
    const first = await system.ask<{ startedRan: boolean; handled: number }>(address, "Get", {});
    assert.equal(first, { startedRan: true, handled: 1 }, "started ran before the first message");
    await waitFor(() => hooks.length === 1, 5_000, "the started hook");
    await expectError(system.ask(address, "Fail", {}), ErrorCode.ACTOR_FAILED);
    await waitFor(() => hooks.length === 2, 5_000, "started again after the restart");
    assert.equal(await system.ask(address, "Get", {}), { startedRan: true, handled: 1 }, "fresh state, started hook ran again");
    assert.ok(await system.stop("n1", address));
    await waitFor(() => hooks.length === 3, 5_000, "the stopped hook");
    assert.equal(hooks, [
      { hook: "started", handled: 0 },
      { hook: "started", handled: 0 },
      { hook: "stopped", handled: 1 },
    ], "no stopped hook on a crash; one on stop, with the state it had");
  } finally {
    sub.unsubscribe();
  }
});

function findAddress(prefix: string, worker: number): string {
  for (let i = 0; ; i++) if (placementOf(`${prefix}-${i}@n1`, 2) === worker) return `${prefix}-${i}@n1`;
}

test.run();
