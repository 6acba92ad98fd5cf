// Coalesced tells (runtime/transport.ts, protocol/envelope-batch.ts) over a private
// nats-server: order across frames and destinations, tells before an ask, frames with bad
// content, the fault-filter path, drain. A tap subscription on its own connection sees the
// NATS messages themselves.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { connect, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { ActorSystem } from "../runtime/system.js";
import { SkeinNode } from "../runtime/node.js";
import { NatsTransport } from "../runtime/transport.js";
import { FaultInjector, FROM_HEADER } from "../runtime/faults.js";
import { addressToSubject, nodeSubjectWildcard } from "../protocol/address.js";
import { encodeEnvelope, EnvelopeKind, type Envelope } from "../protocol/envelope.js";
import { BATCH_FRAME_MARKER, encodeBatchFrame, isBatchFrame, splitBatchFrame } from "../protocol/envelope-batch.js";
import { ErrorCode, type SkeinError } from "../protocol/errors.js";
import { placementOf } from "../protocol/placement.js";
import { fixture, startNatsServer, waitFor, type NatsServerHandle, surfaced } from "./helpers.js";

const CLUSTER = "co";
const FRAME_LIMIT = 64 * 1024;
let server: NatsServerHandle;
let node: SkeinNode;
let system: ActorSystem;
/** Connections of the transport-level tests: a sender, a receiver, a tap. */
let ncSend: NatsConnection;
let ncRecv: NatsConnection;
let ncTap: NatsConnection;
const conns: NatsConnection[] = [];
const counterModule = fixture("counter");

test.before(surfaced(async () => {
  server = await startNatsServer();
  node = await SkeinNode.start({ id: "c1", cluster: CLUSTER, nats: { servers: server.url }, workers: 2 });
  system = await ActorSystem.connect({ nats: { servers: server.url }, cluster: CLUSTER });
  ncSend = await open();
  ncRecv = await open();
  ncTap = await open();
}));

test.after(async () => {
  await system?.close();
  await node?.shutdown();
  for (const nc of conns) if (!nc.isClosed()) await nc.close();
  await server?.stop();
});

async function open(): Promise<NatsConnection> {
  const nc = await connect({ servers: server.url });
  conns.push(nc);
  return nc;
}

/** Records every NATS message on `subject` (a wildcard too), as it is on the wire. */
async function tap(subject: string): Promise<{ msgs: Array<{ subject: string; data: Uint8Array; from: string | null }>; stop(): void }> {
  const msgs: Array<{ subject: string; data: Uint8Array; from: string | null }> = [];
  const sub = ncTap.subscribe(subject, { callback: (_e, m: Msg) => void msgs.push({ subject: m.subject, data: m.data.slice(), from: m.headers?.get(FROM_HEADER) || null }) });
  await ncTap.flush();
  return { msgs, stop: () => sub.unsubscribe() };
}

/** A receiving transport on `address`, recording what it delivers and what it rejects. */
async function receiver(address: string, transport = new NatsTransport(ncRecv, CLUSTER, 1024 * 1024)) {
  const got: Envelope[] = [];
  const invalid: SkeinError[] = [];
  const asked: number[] = [];
  const sub = transport.subscribe(
    address,
    (env, reply) => {
      if (reply) {
        asked.push(got.length);
        reply(EnvelopeKind.REPLY_OK, "reply", got.length);
      } else {
        got.push(env);
      }
    },
    (error) => invalid.push(error),
  );
  await ncRecv.flush();
  return { got, invalid, asked, transport, stop: () => sub.unsubscribe() };
}

function onWorker(prefix: string, worker: number): string {
  for (let i = 0; ; i++) if (placementOf(`${prefix}-${i}@c1`, 2) === worker) return `${prefix}-${i}@c1`;
}

test("thousands of tells in one turn cross frame bounds (bytes and count) and arrive in order at an actor in another worker", async () => {
  const address = onWorker("counter/many", 1);
  await system.spawn({ node: "c1", kind: "counter", module: counterModule, address });
  const wire = await tap(addressToSubject(CLUSTER, address));
  const pad = "x".repeat(200);
  // 3000 × ~240 B ≈ 700 KiB: past the byte bound; then 3000 tiny ones: past the count bound.
  for (let i = 0; i < 3000; i++) system.tell(address, "Add", { n: i, pad });
  for (let i = 3000; i < 6000; i++) system.tell(address, "Add", { n: i });
  const log = await waitFor(async () => {
    const l = await system.ask<number[]>(address, "Log", {});
    return l.length === 6000 ? l : null;
  });
  assert.equal(log, Array.from({ length: 6000 }, (_, i) => i));
  await waitFor(() => wire.msgs.length >= 2, 5_000, "the tap");
  wire.stop();
  const frames = wire.msgs.filter((m) => isBatchFrame(m.data));
  assert.ok(frames.length >= 11 + 3, `${frames.length} frames: the byte bound (≥ 11 frames) and the count bound (≥ 3) each cut the run`);
  assert.ok(wire.msgs.length < 6000 / 100, `${wire.msgs.length} NATS messages for 6000 tells`);
  for (const m of wire.msgs) assert.ok(m.data.length <= FRAME_LIMIT, `a ${m.data.length}-byte message is past the frame bound`);
  const told = wire.msgs.reduce((n, m) => n + (isBatchFrame(m.data) ? splitBatchFrame(m.data).length : 1), 0);
  assert.is(told, 6000 + 1, "every tell once on the wire (+ the Log ask)");
});

test("tells to different actors keep the sender's order on the wire: a run ends when the destination changes", async () => {
  const sender = new NatsTransport(ncSend, CLUSTER, 1024 * 1024);
  const wire = await tap(nodeSubjectWildcard(CLUSTER, "x"));
  const [a, b] = ["order/a@x", "order/b@x"];
  for (const to of [a, a, b, a, a, a]) sender.tell(to, "T", {});
  await ncSend.flush();
  await waitFor(() => wire.msgs.length === 3, 5_000, "3 NATS messages");
  wire.stop();
  assert.equal(
    wire.msgs.map((m) => [m.subject, isBatchFrame(m.data) ? splitBatchFrame(m.data).length : 1]),
    [
      [addressToSubject(CLUSTER, a), 2],
      [addressToSubject(CLUSTER, b), 1],
      [addressToSubject(CLUSTER, a), 3],
    ],
  );
  assert.is(wire.msgs[1].data[0], 1, "a run of one goes as a plain envelope");
});

test("tells made before an ask reach the actor before the ask", async () => {
  const address = "order/ask@x";
  const r = await receiver(address);
  const sender = new NatsTransport(ncSend, CLUSTER, 1024 * 1024);
  for (let i = 0; i < 500; i++) sender.tell(address, "T", { i });
  const seen = await sender.ask(address, "Q", {}, 5_000);
  assert.is(seen, 500, "the ask saw all 500 tells before it");
  r.stop();
});

test("tells a handler makes before it answers an ask reach the wire before the answer", async () => {
  const replier = new NatsTransport(ncRecv, CLUSTER, 1024 * 1024);
  const other = "reply/other@x";
  const sub = replier.subscribe(
    "reply/r@x",
    (_env, reply) => {
      for (let i = 0; i < 3; i++) replier.tell(other, "T", { i });
      reply?.(EnvelopeKind.REPLY_OK, "reply", "answered");
    },
    () => undefined,
  );
  await ncRecv.flush();
  const wire = await tap(">");
  const asker = new NatsTransport(ncSend, CLUSTER, 1024 * 1024);
  assert.is(await asker.ask("reply/r@x", "Q", {}, 5_000), "answered");
  const otherSubject = addressToSubject(CLUSTER, other);
  const seen = () => wire.msgs.filter((m) => m.subject === otherSubject || m.subject.startsWith("_INBOX.")).map((m) => (m.subject === otherSubject ? "tells" : "answer"));
  await waitFor(() => seen().length === 2, 5_000, "the tells and the answer");
  assert.equal(seen(), ["tells", "answer"]);
  wire.stop();
  sub.unsubscribe();
});

test("a frame with invalid envelopes: each is reported, the others delivered in order, the actor keeps running", async () => {
  const address = onWorker("counter/mixed", 0);
  await system.spawn({ node: "c1", kind: "counter", module: counterModule, address });
  const r = await receiver("mixed/t@x");
  const garbage = Uint8Array.of(1, 0, 0, 200, 1, 2);
  const frame = encodeBatchFrame([
    encodeEnvelope(EnvelopeKind.MESSAGE, "Add", { n: 1 }),
    garbage,
    encodeEnvelope(EnvelopeKind.MESSAGE, "Add", { n: "seven" }),
    encodeEnvelope(EnvelopeKind.MESSAGE, "Nope", {}),
    encodeEnvelope(EnvelopeKind.MESSAGE, "Add", { n: 2 }),
  ]);
  ncSend.publish(addressToSubject(CLUSTER, address), frame);
  ncSend.publish(addressToSubject(CLUSTER, "mixed/t@x"), frame);
  assert.equal(await waitFor(async () => {
    const l = await system.ask<number[]>(address, "Log", {});
    return l.length === 2 ? l : null;
  }), [1, 2]);
  assert.is(await system.ask(address, "Add", { n: 3 }), 6, "alive, and the invalid ones changed nothing");
  await waitFor(() => r.got.length === 4, 5_000, "4 valid envelopes at the transport");
  assert.equal(r.got.map((e) => e.type), ["Add", "Add", "Nope", "Add"]);
  assert.is(r.invalid.length, 1);
  assert.is(r.invalid[0].code, ErrorCode.CORRUPT_MESSAGE);
  r.stop();
});

test("a corrupt frame is reported once, nothing of it is delivered, and the receiver goes on", async () => {
  const address = onWorker("counter/corrupt", 1);
  await system.spawn({ node: "c1", kind: "counter", module: counterModule, address });
  const r = await receiver("corrupt/t@x");
  const frame = encodeBatchFrame([encodeEnvelope(EnvelopeKind.MESSAGE, "Add", { n: 10 }), encodeEnvelope(EnvelopeKind.MESSAGE, "Add", { n: 20 })]);
  new DataView(frame.buffer).setUint32(1, 3); // claims 3 envelopes, holds 2
  for (const to of [address, "corrupt/t@x"]) {
    const subject = addressToSubject(CLUSTER, to);
    ncSend.publish(subject, frame);
    ncSend.publish(subject, Uint8Array.of(BATCH_FRAME_MARKER, 0, 0));
    ncSend.publish(subject, encodeEnvelope(EnvelopeKind.MESSAGE, "Add", { n: 1 }));
  }
  assert.equal(await waitFor(async () => {
    const l = await system.ask<number[]>(address, "Log", {});
    return l.length > 0 ? l : null;
  }), [1], "only the plain envelope after the corrupt frames");
  await waitFor(() => r.got.length === 1, 5_000, "the envelope after the corrupt frames");
  assert.equal(r.invalid.map((e) => e.code), [ErrorCode.CORRUPT_MESSAGE, ErrorCode.CORRUPT_MESSAGE], "one report per corrupt frame");
  r.stop();
});

test("coalesceTells off: one NATS message, a plain envelope, per tell", async () => {
  const address = "plain/t@x";
  const r = await receiver(address);
  const wire = await tap(addressToSubject(CLUSTER, address));
  const sender = new NatsTransport(ncSend, CLUSTER, 1024 * 1024, false);
  for (let i = 0; i < 50; i++) sender.tell(address, "T", { i });
  await waitFor(() => r.got.length === 50 && wire.msgs.length === 50, 5_000, "50 tells");
  assert.ok(wire.msgs.every((m) => m.data[0] === 1), "no frames");
  assert.equal(r.got.map((e) => (e.body as { i: number }).i), Array.from({ length: 50 }, (_, i) => i));
  wire.stop();
  r.stop();
});

test("with a fault filter each tell goes alone, and a receiver's filter judges each envelope of a frame", async () => {
  const address = "faults/t@x";
  const judged = new FaultInjector("x", "recv");
  const now = Date.now();
  judged.setRules([{ id: "half", kind: "drop", from: "*", to: "*", probability: 0.5, delayMs: 0, jitterMs: 0, ms: 60_000, seed: 7, installedAt: now, expiresAt: now + 60_000 }]);
  const recvTransport = new NatsTransport(ncRecv, CLUSTER, 1024 * 1024);
  recvTransport.filter = judged;
  const r = await receiver(address, recvTransport);
  const wire = await tap(addressToSubject(CLUSTER, address));

  // The receiver's filter on one frame of 200 tells: drops some, not all, not none.
  const sender = new NatsTransport(ncSend, CLUSTER, 1024 * 1024);
  for (let i = 0; i < 200; i++) sender.tell(address, "T", { i });
  await waitFor(() => wire.msgs.length === 1, 5_000, "the frame");
  await waitFor(() => judged.counts()[0].dropped + r.got.length === 200, 5_000, "every envelope judged");
  const dropped = judged.counts()[0].dropped;
  assert.ok(dropped > 20 && dropped < 180, `${dropped} of 200 dropped: judged one by one`);
  const order = r.got.map((e) => (e.body as { i: number }).i);
  assert.equal(order, [...order].sort((x, y) => x - y), "the ones delivered keep their order");

  // A sender with a filter: each tell its own NATS message, stamped with its sender.
  recvTransport.filter = null;
  const before = r.got.length;
  const faulty = new NatsTransport(ncSend, CLUSTER, 1024 * 1024);
  faulty.filter = new FaultInjector("x", "send");
  for (let i = 0; i < 30; i++) faulty.tell(address, "T", { i }, "sender/a@x");
  await waitFor(() => r.got.length === before + 30, 5_000, "30 tells");
  await waitFor(() => wire.msgs.length === 31, 5_000, "30 NATS messages");
  assert.ok(wire.msgs.slice(1).every((m) => m.data[0] === 1 && m.from === "sender/a@x"));
  wire.stop();
  r.stop();
});

test("tells made just before a drain are sent; tells after it are counted as dropped", async () => {
  const address = "drain/t@x";
  const r = await receiver(address);
  const nc = await open();
  const sender = new NatsTransport(nc, CLUSTER, 1024 * 1024);
  for (let i = 0; i < 300; i++) sender.tell(address, "T", { i });
  const drained = nc.drain();
  sender.tell(address, "T", { i: 300 });
  await drained;
  await waitFor(() => r.got.length === 300, 5_000, "300 tells");
  assert.is(sender.droppedWhileDisconnected, 1);
  sender.tell(address, "T", { i: 301 });
  assert.is(sender.droppedWhileDisconnected, 2);
  r.stop();
});

test("frames stay within a small max_payload; an envelope too big for a frame goes alone, in order; one past max_payload fails the tell", async () => {
  const small = await startNatsServer({ maxPayloadBytes: 4096 });
  const nc = await connect({ servers: small.url });
  const ncIn = await connect({ servers: small.url });
  try {
    const address = "small/t@x";
    const got: number[] = [];
    new NatsTransport(ncIn, CLUSTER, 1024 * 1024).subscribe(address, (env) => void got.push((env.body as { i: number }).i), () => undefined);
    const sizes: number[] = [];
    ncIn.subscribe(addressToSubject(CLUSTER, address), { callback: (_e, m) => void sizes.push(m.data.length) });
    await ncIn.flush();
    const sender = new NatsTransport(nc, CLUSTER, 1024 * 1024);
    const pad = "x".repeat(1000);
    for (let i = 0; i < 10; i++) sender.tell(address, "T", { i, pad });
    // An envelope within max_payload, but with no room left for a frame's header.
    let big = { i: 10, pad: "" };
    while (encodeEnvelope(EnvelopeKind.MESSAGE, "T", big).length < 4094) big = { i: 10, pad: big.pad + "y" };
    sender.tell(address, "T", big);
    for (let i = 11; i < 20; i++) sender.tell(address, "T", { i, pad });
    assert.throws(() => sender.tell(address, "T", { i: 99, pad: "z".repeat(5000) }), /max_payload/);
    await waitFor(() => got.length === 20, 5_000, "20 tells");
    assert.equal(got, Array.from({ length: 20 }, (_, i) => i));
    assert.ok(sizes.every((n) => n <= 4096), `sizes ${sizes}`);
    assert.ok(sizes.includes(4094), "the big envelope went alone, unframed");
    assert.ok(sizes.length < 20, `${sizes.length} NATS messages for 20 tells`);
  } finally {
    await nc.close();
    await ncIn.close();
    await small.stop();
  }
});

test.run();
