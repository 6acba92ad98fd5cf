// The gateway's connection layer on its own (a TCP server with a scripted dispatcher, no
// cluster): request order, backpressure instead of buffering, bad sizes answered up to the
// bad frame, slow partial frames, idle connections.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { createServer, connect, type Server, type Socket } from "node:net";
import { KafkaConnection, type Outcome } from "../actors/gateway/connection.js";
import { KafkaWriter } from "../protocol/kafka/primitives.js";
import { waitFor } from "./helpers.js";

/** Servers and sockets a test opened; closed after each test, also when it fails. */
const cleanups: (() => void)[] = [];
test.after.each(() => {
  for (const c of cleanups.splice(0)) c();
});

interface Harness {
  port: number;
  /** "start 3", "end 3": when the dispatcher began and finished each request. */
  events: string[];
  connections: KafkaConnection[];
  closeReasons: (string | null)[];
  server: Server;
}

/** A server whose dispatcher answers each request with its correlation id after `delayMs(frame)`. */
async function harness(
  limits: { maxRequestBytes?: number; maxInFlightRequests?: number; idleMs?: number },
  delayMs: (correlationId: number) => number = () => 0,
  onDispatch?: (frame: Uint8Array) => Outcome | null,
  pipelinable?: (correlationId: number) => boolean,
): Promise<Harness> {
  const h: Harness = { port: 0, events: [], connections: [], closeReasons: [], server: null as unknown as Server };
  const dispatch = async (frame: Uint8Array): Promise<Outcome> => {
    const special = onDispatch?.(frame);
    if (special) return special;
    const correlationId = Buffer.from(frame).readInt32BE(4);
    h.events.push(`start ${correlationId}`);
    await new Promise((r) => setTimeout(r, delayMs(correlationId)));
    h.events.push(`end ${correlationId}`);
    const body = new KafkaWriter().int32(8).int32(correlationId).int32(frame.length);
    return { kind: "response", chunks: body.toChunks() };
  };
  h.server = createServer((socket) => {
    h.connections.push(
      new KafkaConnection(
        socket,
        dispatch,
        { maxRequestBytes: 1 << 20, maxInFlightRequests: 8, idleMs: 60_000, ...limits },
        (reason) => h.closeReasons.push(reason),
        pipelinable && ((frame) => pipelinable(Buffer.from(frame).readInt32BE(4))),
      ),
    );
  });
  await new Promise<void>((r) => h.server.listen(0, "127.0.0.1", () => r()));
  cleanups.push(() => {
    h.server.close();
    for (const c of h.connections) c.socket.destroy();
  });
  h.port = (h.server.address() as { port: number }).port;
  return h;
}

function request(correlationId: number, bodyBytes = 0): Buffer {
  const b = Buffer.alloc(4 + 10 + bodyBytes);
  b.writeInt32BE(10 + bodyBytes, 0);
  b.writeInt16BE(18, 4);
  b.writeInt16BE(0, 6);
  b.writeInt32BE(correlationId, 8);
  b.writeInt16BE(-1, 12);
  return b;
}

/** Connects and collects the correlation ids of the responses. */
async function client(port: number): Promise<{ socket: Socket; ids: number[]; closed: Promise<void> }> {
  const socket = connect({ port, host: "127.0.0.1" });
  cleanups.push(() => socket.destroy());
  await new Promise<void>((r) => socket.once("connect", () => r()));
  const ids: number[] = [];
  let buf = Buffer.alloc(0);
  socket.on("data", (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 4 && buf.length >= 4 + buf.readInt32BE(0)) {
      ids.push(buf.readInt32BE(4));
      buf = buf.subarray(4 + buf.readInt32BE(0));
    }
  });
  socket.on("error", () => undefined);
  const closed = new Promise<void>((r) => socket.once("close", () => r()));
  return { socket, ids, closed };
}

test("pipelined requests are answered in request order, whatever each one costs", async () => {
  const h = await harness({}, (id) => (id % 3 === 0 ? 30 : 0));
  const c = await client(h.port);
  c.socket.write(Buffer.concat(Array.from({ length: 20 }, (_, i) => request(i))));
  await waitFor(() => c.ids.length === 20, 5_000, "20 responses");
  assert.equal(c.ids, Array.from({ length: 20 }, (_, i) => i));
});

test("pipelinable requests overlap yet are answered in order; any other request waits for all before it", async () => {
  // Ids below 100 may overlap (like Produce); 100 may not (like Metadata).
  const h = await harness({ maxInFlightRequests: 16 }, (id) => (id === 1 || id === 5 ? 100 : 0), undefined, (id) => id < 100);
  const c = await client(h.port);
  c.socket.write(Buffer.concat([...[1, 2, 3, 4, 5, 6].map((i) => request(i)), request(100), request(7)]));
  await waitFor(() => c.ids.length === 8, 5_000, "8 responses");
  assert.equal(c.ids, [1, 2, 3, 4, 5, 6, 100, 7]);
  const at = (e: string) => h.events.indexOf(e);
  assert.ok(at("start 2") < at("end 1"), "request 2 started while request 1 was still running");
  assert.ok(at("start 6") < at("end 1"));
  assert.ok(at("start 100") > at("end 5"), "the non-pipelinable request waited for every request before it");
  assert.ok(at("start 7") > at("end 100"), "and the request after it waited for it");
});

test("a client that sends faster than requests are served is paused, not buffered", async () => {
  const h = await harness({ maxInFlightRequests: 4 }, () => 20);
  const c = await client(h.port);
  const payload = Buffer.concat(Array.from({ length: 400 }, (_, i) => request(i, 1000)));
  c.socket.write(payload);
  let maxBuffered = 0;
  const sampler = setInterval(() => (maxBuffered = Math.max(maxBuffered, h.connections[0]?.bufferedBytes ?? 0)), 5);
  await waitFor(() => c.ids.length >= 30, 10_000, "30 responses");
  clearInterval(sampler);
  // 4 queued frames of ~1 KiB plus what the socket had read before it was paused.
  assert.ok(maxBuffered < 256 * 1024, `buffered up to ${maxBuffered} bytes of a ${payload.length}-byte burst`);
  assert.ok(maxBuffered < payload.length / 2);
});

test("running pipelined requests count toward maxRequestBytes: reading pauses instead of holding more", async () => {
  const maxRequestBytes = 256 * 1024;
  const frameBytes = 16 * 1024;
  // Every request may overlap (like Produce) and takes a while, so only the byte bound keeps
  // the running ones from reaching maxInFlightRequests (32 × 16 KiB = twice the byte bound).
  let runningBytes = 0;
  let maxRunningBytes = 0;
  const h = await harness({ maxRequestBytes, maxInFlightRequests: 32 }, () => 50, (frame) => {
    runningBytes += frame.length;
    maxRunningBytes = Math.max(maxRunningBytes, runningBytes);
    setTimeout(() => (runningBytes -= frame.length), 50);
    return null;
  }, () => true);
  const c = await client(h.port);
  const count = 100;
  c.socket.write(Buffer.concat(Array.from({ length: count }, (_, i) => request(i, frameBytes - 10))));
  await waitFor(() => c.ids.length === count, 20_000, `${count} responses`);
  assert.equal(c.ids, Array.from({ length: count }, (_, i) => i));
  // The bound plus one socket read (64 KiB), which is in memory before it can be refused.
  assert.ok(maxRunningBytes <= maxRequestBytes + 64 * 1024, `${maxRunningBytes} bytes of requests running at once, bound ${maxRequestBytes}`);
  assert.ok(maxRunningBytes >= maxRequestBytes / 2, `requests still overlap (${maxRunningBytes} bytes at once)`);
});

test("a bad size prefix: the frames before it are answered, then the connection closes", async () => {
  const h = await harness({ maxRequestBytes: 4096 });
  const c = await client(h.port);
  const tooBig = Buffer.alloc(4);
  tooBig.writeInt32BE(4097);
  c.socket.write(Buffer.concat([request(1), request(2), tooBig, request(3)]));
  await c.closed;
  assert.equal(c.ids, [1, 2]);
  await waitFor(() => h.closeReasons.length === 1, 2_000, "the close reported");
  assert.match(h.closeReasons[0]!, /frame size 4097/);
});

test("a dispatcher's close outcome ends the connection; later requests get nothing", async () => {
  const h = await harness({}, () => 0, (frame) => (Buffer.from(frame).readInt32BE(4) === 2 ? { kind: "close", reason: "unsupported" } : null));
  const c = await client(h.port);
  c.socket.write(Buffer.concat([request(1), request(2), request(3)]));
  await c.closed;
  assert.equal(c.ids, [1]);
});

test("a frame dribbled in byte by byte is answered; an idle connection is closed", async () => {
  const h = await harness({ idleMs: 300 });
  const c = await client(h.port);
  for (const byte of request(9)) {
    c.socket.write(Uint8Array.of(byte));
    await new Promise((r) => setTimeout(r, 2));
  }
  await waitFor(() => c.ids.length === 1, 2_000, "the answer");
  assert.equal(c.ids, [9]);
  await c.closed;
  await waitFor(() => h.closeReasons.length === 1, 2_000, "idle close reported");
  assert.match(h.closeReasons[0]!, /idle/);
});

test("a client that leaves mid-request does not disturb the server", async () => {
  const h = await harness({}, () => 50);
  const c = await client(h.port);
  c.socket.write(Buffer.concat([request(1), request(2).subarray(0, 7)]));
  await new Promise((r) => setTimeout(r, 10));
  c.socket.destroy();
  await waitFor(() => h.closeReasons.length === 1, 2_000, "close seen");
  assert.is(h.closeReasons[0], null, "closed by the client, not by the gateway");
  const d = await client(h.port);
  d.socket.write(request(5));
  await waitFor(() => d.ids.length === 1, 2_000, "the next client is served");
});

test.run();
