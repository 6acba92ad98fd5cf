// Transport fault injection (runtime/faults.ts) on real nodes over a private nats-server: two
// nodes that allow faults (2 workers each) and one that does not. Rules go to both fault nodes,
// as `skein chaos` does with every broker.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { ActorSystem } from "../runtime/system.js";
import { SkeinNode } from "../runtime/node.js";
import { placementOf } from "../protocol/placement.js";
import { FaultInjector, addressMatcher } from "../runtime/faults.js";
import { ErrorCode, isSkeinError, type SkeinError } from "../protocol/errors.js";
import type { FaultSpecInput, InstalledFault } from "../protocol/node-agent.js";
import type { RuntimeEvent } from "../runtime/types.js";
import { startNatsServer, waitFor, type NatsServerHandle, surfaced } from "./helpers.js";

let server: NatsServerHandle;
let f1: SkeinNode;
let f2: SkeinNode;
let plain: SkeinNode;
let system: ActorSystem;
const events: RuntimeEvent[] = [];
const FAULT_NODES = ["f1", "f2"];

/** An address `ping/<prefix>N@node` placed on `worker` (2 workers per node). */
function onWorker(prefix: string, node: string, worker: number, skip = 0): string {
  let found = 0;
  for (let i = 0; ; i++) {
    const address = `ping/${prefix}${i}@${node}`;
    if (placementOf(address, 2) === worker && found++ === skip) return address;
  }
}

const A0 = onWorker("a", "f1", 0);
const A0b = onWorker("a", "f1", 0, 1);
const A1 = onWorker("a", "f1", 1);
const B0 = onWorker("b", "f2", 0);
const B1 = onWorker("b", "f2", 1);
const T = "ping/ticks@f2";

test.before(surfaced(async () => {
  server = await startNatsServer();
  const nats = { servers: server.url };
  [f1, f2, plain] = await Promise.all([
    SkeinNode.start({ id: "f1", cluster: "cf", nats, workers: 2, allowFaults: true }),
    SkeinNode.start({ id: "f2", cluster: "cf", nats, workers: 2, allowFaults: true }),
    SkeinNode.start({ id: "plain", cluster: "cf", nats, workers: 1 }),
  ]);
  system = await ActorSystem.connect({ nats, cluster: "cf" });
  system.events("*", (e) => events.push(e));
  for (const address of [A0, A0b, A1, B0, B1, T, "ping/p@plain"]) {
    await system.spawn({ node: address.split("@")[1], kind: "$ping", address });
  }
}));

test.after(async () => {
  await system?.close();
  await Promise.all([f1?.shutdown(), f2?.shutdown(), plain?.shutdown()]);
  await server?.stop();
});

test.before.each(async () => {
  await healAll();
});

let nextId = 0;
async function inject(spec: Omit<FaultSpecInput, "id" | "ms"> & { ms?: number }): Promise<InstalledFault> {
  const full = { id: `t${nextId++}`, ms: 30_000, ...spec } as FaultSpecInput;
  const rules = await Promise.all(FAULT_NODES.map((n) => system.injectFault(n, full)));
  return rules[0];
}

async function healAll(): Promise<void> {
  await Promise.all(FAULT_NODES.map((n) => system.clearFaults(n)));
}

/**
 * `from` asks `to` for a Ping (through the Relay message, itself asked by `via`: the client
 * system by default); resolves with ms taken, or the error.
 */
async function relay(from: string, to: string, timeoutMs = 400, via: Pick<ActorSystem, "ask"> = system): Promise<{ ms: number; error?: SkeinError }> {
  const started = Date.now();
  try {
    await via.ask(from, "Relay", { address: to, timeoutMs }, { timeoutMs: timeoutMs + 3_000 });
    return { ms: Date.now() - started };
  } catch (e) {
    if (!isSkeinError(e)) throw e;
    return { ms: Date.now() - started, error: e };
  }
}

async function expectCode(p: Promise<unknown>, code: string): Promise<SkeinError> {
  try {
    await p;
  } catch (e) {
    assert.ok(isSkeinError(e), `expected a SkeinError, got ${e}`);
    assert.is((e as SkeinError).code, code, (e as Error).message);
    return e as SkeinError;
  }
  throw new Error(`expected ${code}, but it succeeded`);
}

async function processed(address: string): Promise<number> {
  const node = address.split("@")[1];
  return (await system.list(node)).find((a) => a.address === address)?.processed ?? -1;
}

async function ticks(address: string): Promise<number> {
  return ((await system.ask(address, "Count", {})) as { ticks: number }).ticks;
}

test("address patterns: `*` spans path segments but not the node; a pattern without @ means any node", () => {
  assert.ok(addressMatcher("replica/*@2")("replica/orders/0@2"));
  assert.not.ok(addressMatcher("replica/*@2")("replica/orders/0@3"));
  assert.not.ok(addressMatcher("replica/*@2")("controller@2"));
  assert.ok(addressMatcher("*@2")("group-coordinator/3@2"));
  assert.ok(addressMatcher("controller")("controller@7"));
  assert.ok(addressMatcher("replica/t.x/?@1")("replica/t.x/4@1"));
  assert.not.ok(addressMatcher("*@2")(null), "an unknown sender only matches *");
  assert.ok(addressMatcher("*")(null));
});

test("the same seed draws the same verdicts; probability is honoured", () => {
  const rule: InstalledFault = { id: "p", kind: "drop", from: "*", to: "*", probability: 0.3, delayMs: 0, jitterMs: 0, ms: 1_000, seed: 42, installedAt: 0, expiresAt: Number.MAX_SAFE_INTEGER };
  const draw = () => {
    const injector = new FaultInjector("n", "w0");
    injector.setRules([rule]);
    return Array.from({ length: 2_000 }, () => injector.judge("a@n", "b@m").drop);
  };
  const first = draw();
  assert.equal(draw(), first);
  const dropped = first.filter(Boolean).length;
  assert.ok(dropped > 480 && dropped < 720, `dropped ${dropped} of 2000 at p=0.3`);
  const other = new FaultInjector("n", "w0");
  other.setRules([{ ...rule, seed: 43 }]);
  assert.not.equal(Array.from({ length: 2_000 }, () => other.judge("a@n", "b@m").drop), first);
});

test("a delay with jitter never reorders one sender's messages to one receiver, also when only some are delayed", () => {
  let now = 1_000;
  const injector = new FaultInjector("n", "w0", { now: () => now });
  const rule = (id: string, probability: number): InstalledFault => ({ id, kind: "delay", from: "a@n", to: "*", probability, delayMs: 10, jitterMs: 200, ms: 60_000, seed: 7, installedAt: 0, expiresAt: 60_000 });
  for (const probability of [1, 0.5]) {
    injector.setRules([rule(`p${probability}`, probability)]);
    let lastDue = 0;
    for (let i = 0; i < 500; i++) {
      now += i % 3 === 0 ? 1 : 0;
      const due = now + injector.judge("a@n", "b@m").delayMs;
      assert.ok(due >= lastDue, `message ${i} due at ${due}, before the one sent earlier (${lastDue})`);
      lastDue = due;
    }
    now += 1_000;
  }
  injector.setRules([rule("spaced", 1)]);
  const spaced = new Set<number>();
  for (let i = 0; i < 50; i++, now += 500) spaced.add(injector.judge("a@n", "b@m").delayMs);
  assert.ok(spaced.size > 20, `messages far apart get their own jitter (${[...spaced]})`);
  injector.setRules([]);
  assert.is(injector.judge("a@n", "b@m").delayMs, 0);
});

test("a node started without allowFaults refuses fault injection with FAULTS_NOT_ALLOWED", async () => {
  const e = await expectCode(system.injectFault("plain", { id: "x", kind: "drop", ms: 1_000 }), ErrorCode.FAULTS_NOT_ALLOWED);
  assert.match(e.message, /--allow-faults/);
  await expectCode(system.listFaults("plain"), ErrorCode.FAULTS_NOT_ALLOWED);
  await expectCode(system.injectFault("f1", { id: "x", kind: "isolate", ms: 1_000 }), ErrorCode.INVALID_REQUEST);
  assert.is((await relay("ping/p@plain", B0)).error, undefined);
});

test("drop: asks from every worker of a node time out; other traffic passes; clearing heals", async () => {
  const rule = await inject({ kind: "drop", from: "*@f1", to: "ping/*@f2" });
  for (const from of [A0, A1]) {
    const r = await relay(from, B0);
    assert.is(r.error?.code, ErrorCode.TIMEOUT, `${from} → ${B0}: ${r.error?.message ?? "answered"}`);
  }
  // The other direction: tells pass; an ask from f2 would lose its reply (a message f1 → f2).
  const before = await ticks(A0);
  f2.tell(A0, "Tick", {});
  await waitFor(async () => (await ticks(A0)) === before + 1, 3_000, "f2 → f1 tell");
  assert.is((await relay(A0, A1)).error, undefined, "f1 → f1 is not affected");
  const counts = (await system.listFaults("f1")).counts.find((c) => c.id === rule.id)!;
  assert.ok(counts.dropped >= 2, JSON.stringify(counts));
  await healAll();
  assert.is((await relay(A1, B0)).error, undefined);
});

test("drop of the reply: the request is handled, the asker still times out", async () => {
  await inject({ kind: "drop", from: B1, to: "*@f1" });
  const before = await processed(B1);
  const r = await relay(A0, B1);
  assert.is(r.error?.code, ErrorCode.TIMEOUT);
  assert.ok((await processed(B1)) > before, "the Ping reached its actor");
  await healAll();
  assert.is((await relay(A0, B1)).error, undefined);
});

test("drop of a message from outside fault injection is judged by the receiver", async () => {
  await inject({ kind: "drop", from: "*", to: B0 });
  await expectCode(system.ask(B0, "Ping", {}, { timeoutMs: 300 }), ErrorCode.TIMEOUT);
  await expectCode(plain.ask(B0, "Ping", {}, { timeoutMs: 300 }), ErrorCode.TIMEOUT);
  await healAll();
  await system.ask(B0, "Ping", {}, { timeoutMs: 2_000 });
});

test("the same-thread fast path is judged too", async () => {
  await inject({ kind: "drop", from: A0, to: A0b });
  const r = await relay(A0, A0b, 300);
  assert.is(r.error?.code, ErrorCode.TIMEOUT);
  await healAll();
  assert.is((await relay(A0, A0b)).error, undefined);
});

test("delay: every message from → to is held back by delayMs (+ jitter)", async () => {
  const base = await relay(A0, B0, 3_000);
  assert.is(base.error, undefined);
  await inject({ kind: "delay", from: "*@f1", to: "*@f2", delayMs: 400, jitterMs: 100 });
  for (const from of [A0, A1]) {
    const r = await relay(from, B0, 3_000);
    assert.is(r.error, undefined);
    assert.ok(r.ms >= 400, `took ${r.ms} ms with a 400 ms delay`);
    assert.ok(r.ms < 2_000, `took ${r.ms} ms`);
  }
  const r = await relay(A0, B0, 300);
  assert.is(r.error?.code, ErrorCode.TIMEOUT, "a delay beyond the ask's timeout is a timeout");
  await healAll();
});

test("duplicate: every tell arrives twice, from a fault node's main thread and from outside", async () => {
  await inject({ kind: "duplicate", from: "*", to: T });
  const before = await ticks(T);
  for (let i = 0; i < 10; i++) f1.tell(T, "Tick", {});
  for (let i = 0; i < 10; i++) system.tell(T, "Tick", {});
  await waitFor(async () => (await ticks(T)) - before >= 40, 5_000, "40 ticks");
  await new Promise((r) => setTimeout(r, 200));
  assert.is((await ticks(T)) - before, 40);
  await healAll();
  f1.tell(T, "Tick", {});
  await waitFor(async () => (await ticks(T)) - before === 41, 5_000, "one more tick");
});

test("isolate: a node's actor traffic is cut both ways (and from outside); its own traffic and its node agent still work", async () => {
  await inject({ kind: "isolate", node: "f2" });
  assert.is((await relay(A0, B0)).error?.code, ErrorCode.TIMEOUT, "f1 → f2");
  assert.is((await relay(B0, A1, 400, f2)).error?.code, ErrorCode.TIMEOUT, "f2 → f1");
  await expectCode(system.ask(B1, "Ping", {}, { timeoutMs: 300 }), ErrorCode.TIMEOUT);
  assert.is((await relay(B0, B1, 400, f2)).error, undefined, "f2's workers (and its main thread) still talk to each other");
  assert.is((await relay(A0, A1)).error, undefined, "f1 is not affected");
  assert.ok((await system.listFaults("f2")).rules.length === 1, "the node agent answers");
  await healAll();
  assert.is((await relay(A0, B0)).error, undefined);
  assert.is((await relay(B0, A1)).error, undefined);
});

test("rules expire after their ms; injection and healing are events with timestamps", async () => {
  const started = Date.now();
  const rule = await inject({ kind: "drop", from: "*", to: B0, ms: 700 });
  assert.ok(rule.expiresAt - rule.installedAt === 700);
  await expectCode(system.ask(B0, "Ping", {}, { timeoutMs: 200 }), ErrorCode.TIMEOUT);
  const healed = (await waitFor(() => events.find((e): e is Extract<RuntimeEvent, { type: "fault.healed" }> => e.type === "fault.healed" && e.id === rule.id && e.node === "f2"), 5_000, "fault.healed"))!;
  assert.is(healed.reason, "expired");
  assert.ok(healed.at >= started + 700);
  assert.ok((healed.counts?.dropped ?? 0) >= 1, JSON.stringify(healed));
  const injected = events.find((e) => e.type === "fault.injected" && e.id === rule.id && e.node === "f2");
  assert.ok(injected && injected.at >= started && injected.at <= healed.at);
  await system.ask(B0, "Ping", {}, { timeoutMs: 2_000 });
  assert.is((await system.listFaults("f2")).rules.length, 0);
});

test("a restarted worker gets the rules in force again", async () => {
  await inject({ kind: "drop", from: A1, to: "*@f2" });
  const worker = placementOf(A1, 2);
  const restarted = events.length;
  await f1.killWorker(worker);
  await waitFor(() => events.slice(restarted).some((e) => e.type === "worker.restarted" && e.node === "f1" && e.worker === worker), 10_000, "worker restart");
  await waitFor(async () => (await system.ask(A1, "Ping", {}, { timeoutMs: 1_000 })) !== undefined, 10_000, "the ping actor back");
  assert.is((await relay(A1, B0)).error?.code, ErrorCode.TIMEOUT);
  await healAll();
  assert.is((await relay(A1, B0)).error, undefined);
});

test.run();
