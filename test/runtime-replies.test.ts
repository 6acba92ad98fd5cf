// The transport's reply multiplexer (runtime/reply-mux.ts) over a private nats-server: replies
// find their asks among many in flight, and every failure maps to the SkeinError nc.request()
// gave before: no responders, timeouts (a late reply is ignored), a refused publish, a closed
// or draining connection, an ask in flight across a nats-server restart.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { connect, headers, PermissionViolationError, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { ReplyMux } from "../runtime/reply-mux.js";
import { ErrorCode, SkeinError } from "../protocol/errors.js";
import { seededRandom, startNatsServer, surfaced, waitFor, type NatsServerHandle } from "./helpers.js";

let server: NatsServerHandle;
const conns: NatsConnection[] = [];
const encoder = new TextEncoder();
const decoder = new TextDecoder();

test.before(surfaced(async () => {
  server = await startNatsServer();
}));

test.after(async () => {
  for (const nc of conns) if (!nc.isClosed()) await nc.close();
  await server?.stop();
});

async function open(url = server.url): Promise<NatsConnection> {
  const nc = await connect({ servers: url, reconnectTimeWait: 100, maxReconnectAttempts: -1 });
  conns.push(nc);
  return nc;
}

async function failure(p: Promise<unknown>): Promise<SkeinError> {
  const e = await p.then(
    (v) => {
      throw new Error(`expected a failure, got ${JSON.stringify(v)}`);
    },
    (e: unknown) => e,
  );
  assert.instance(e, SkeinError);
  return e as SkeinError;
}

const text = (msg: Msg): string => decoder.decode(msg.data);

test("many concurrent asks each get their own reply, answered out of order", async () => {
  const nc = await open();
  const replier = await open();
  const random = seededRandom(7);
  const held: Msg[] = [];
  const count = 500;
  // Holds every request, then answers them in a shuffled order.
  replier.subscribe("svc.echo", {
    callback: (_err, msg) => {
      held.push(msg);
      if (held.length < count) return;
      for (let i = held.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [held[i], held[j]] = [held[j], held[i]];
      }
      for (const m of held) m.respond(encoder.encode(`re:${decoder.decode(m.data)}`));
    },
  });
  await replier.flush();
  const mux = new ReplyMux(nc);
  const asks: Promise<unknown>[] = [];
  for (let i = 0; i < count; i++) asks.push(mux.request("svc.echo", encoder.encode(String(i)), 10_000, undefined, "echo/1@n", "Echo", (m) => text(m)));
  assert.is(mux.size, count);
  const replies = await Promise.all(asks);
  for (let i = 0; i < count; i++) assert.is(replies[i], `re:${i}`);
  assert.is(mux.size, 0, "answered asks leave the table");
});

test("no responders is ACTOR_NOT_FOUND naming the address, at once", async () => {
  const nc = await open();
  const mux = new ReplyMux(nc);
  const started = Date.now();
  const e = await failure(mux.request("svc.nobody", encoder.encode("x"), 5_000, undefined, "nobody/1@n", "Get", null));
  assert.is(e.code, ErrorCode.ACTOR_NOT_FOUND);
  assert.is(e.message, "no actor at nobody/1@n");
  assert.equal(e.context, { address: "nobody/1@n", type: "Get" });
  assert.ok((e.cause as { isNoResponders(): boolean }).isNoResponders(), "the cause is nats.js's no-responders error");
  assert.ok(Date.now() - started < 2_000, "not by waiting for the timeout");
  assert.is(mux.size, 0);
});

test("a timeout is TIMEOUT with the old message; the reply that comes later is ignored", async () => {
  const nc = await open();
  const replier = await open();
  const late: Msg[] = [];
  replier.subscribe("svc.slow", { callback: (_err, msg) => void late.push(msg) });
  replier.subscribe("svc.fast", { callback: (_err, msg) => void msg.respond(encoder.encode("fast")) });
  await replier.flush();
  const mux = new ReplyMux(nc);
  const started = Date.now();
  const e = await failure(mux.request("svc.slow", encoder.encode("x"), 150, undefined, "slow/1@n", "Get", (m) => text(m)));
  const waited = Date.now() - started;
  assert.is(e.code, ErrorCode.TIMEOUT);
  assert.is(e.message, "ask Get to slow/1@n timed out after 150 ms");
  assert.equal(e.context, { address: "slow/1@n", type: "Get", timeoutMs: 150 });
  assert.is((e.cause as Error).name, "TimeoutError");
  assert.ok(waited >= 140 && waited < 2_000, `timed out after ${waited} ms`);
  assert.is(mux.size, 0, "a timed-out ask leaves the table");
  // The late reply reaches the inbox and finds nobody; the next ask is answered by its own reply.
  assert.is(late.length, 1);
  late[0].respond(encoder.encode("late"));
  assert.is(await mux.request("svc.fast", encoder.encode("y"), 5_000, undefined, "fast/1@n", "Get", (m) => text(m)), "fast");
  assert.is(mux.size, 0);
});

test("headers go out with the ask, and without a settle function the reply message itself comes back", async () => {
  const nc = await open();
  const replier = await open();
  replier.subscribe("svc.hdr", {
    callback: (_err, msg) => {
      const h = headers();
      h.set("Echo", msg.headers?.get("Skein-From") ?? "(none)");
      msg.respond(encoder.encode("ok"), { headers: h });
    },
  });
  await replier.flush();
  const mux = new ReplyMux(nc);
  const h = headers();
  h.set("Skein-From", "asker/1@n");
  const reply = (await mux.request("svc.hdr", encoder.encode("x"), 5_000, h, "hdr/1@n", "Get", null)) as Msg;
  assert.is(text(reply), "ok");
  assert.is(reply.headers?.get("Echo"), "asker/1@n");
});

test("a settle function that throws rejects the ask with what it threw", async () => {
  const nc = await open();
  const replier = await open();
  replier.subscribe("svc.bad", { callback: (_err, msg) => void msg.respond(encoder.encode("junk")) });
  await replier.flush();
  const mux = new ReplyMux(nc);
  const thrown = new SkeinError(ErrorCode.CORRUPT_MESSAGE, "bad reply");
  const e = await failure(
    mux.request("svc.bad", encoder.encode("x"), 5_000, undefined, "bad/1@n", "Get", () => {
      throw thrown;
    }),
  );
  assert.is(e, thrown);
  assert.is(mux.size, 0);
});

test("a publish refused by permissions fails the oldest ask to that subject as NOT_CONNECTED", async () => {
  const nc = await open();
  const replier = await open();
  replier.subscribe("svc.denied", { callback: () => undefined });
  await replier.flush();
  const mux = new ReplyMux(nc);
  const first = mux.request("svc.denied", encoder.encode("1"), 5_000, undefined, "d/1@n", "Get", null);
  const second = mux.request("svc.denied", encoder.encode("2"), 300, undefined, "d/1@n", "Get", null);
  mux.publishDenied(new PermissionViolationError("Permissions Violation for Publish to \"svc.denied\"", "publish", "svc.denied"));
  const e = await failure(first);
  assert.is(e.code, ErrorCode.NOT_CONNECTED);
  assert.is(e.message, 'ask Get to d/1@n failed: Permissions Violation for Publish to "svc.denied"');
  assert.is((await failure(second)).code, ErrorCode.TIMEOUT, "only the oldest one");
});

test("closing the connection fails the asks in flight as NOT_CONNECTED; later asks fail at once", async () => {
  const nc = await open();
  const replier = await open();
  replier.subscribe("svc.hang", { callback: () => undefined });
  await replier.flush();
  const mux = new ReplyMux(nc);
  const pending = [1, 2, 3].map((i) => mux.request("svc.hang", encoder.encode(String(i)), 30_000, undefined, "h/1@n", "Get", null));
  await nc.flush();
  await nc.close();
  for (const p of pending) {
    const e = await failure(p);
    assert.is(e.code, ErrorCode.NOT_CONNECTED);
    assert.is(e.message, "ask Get to h/1@n failed: connection closed");
  }
  assert.is(mux.size, 0);
  const after = await failure(mux.request("svc.hang", encoder.encode("x"), 30_000, undefined, "h/1@n", "Get", null));
  assert.is(after.code, ErrorCode.NOT_CONNECTED);
  assert.is(after.message, "ask Get to h/1@n failed: closed connection");
});

test("a draining connection refuses new asks as NOT_CONNECTED", async () => {
  const nc = await open();
  const mux = new ReplyMux(nc);
  const draining = nc.drain();
  const e = await failure(mux.request("svc.any", encoder.encode("x"), 5_000, undefined, "a/1@n", "Get", null));
  assert.is(e.code, ErrorCode.NOT_CONNECTED);
  assert.is(e.message, "ask Get to a/1@n failed: connection draining");
  await draining;
});

test("an ask in flight when nats-server goes away times out; after the restart the inbox answers again", async () => {
  const own = await startNatsServer();
  try {
    const nc = await open(own.url);
    const mux = new ReplyMux(nc);
    const serve = (c: NatsConnection) => c.subscribe("svc.up", { callback: (_err, msg) => void msg.respond(encoder.encode("up")) });
    const replier = await open(own.url);
    serve(replier);
    replier.subscribe("svc.hang", { callback: () => undefined });
    await replier.flush();
    assert.is(await mux.request("svc.up", encoder.encode("x"), 5_000, undefined, "u/1@n", "Get", (m) => text(m)), "up");
    const hung = mux.request("svc.hang", encoder.encode("x"), 400, undefined, "u/1@n", "Get", null);
    await own.stop();
    const e = await failure(hung);
    assert.is(e.code, ErrorCode.TIMEOUT);
    assert.is(mux.size, 0);
    const back = await startNatsServer({ port: own.port });
    try {
      const answer = await waitFor(() => mux.request("svc.up", encoder.encode("x"), 300, undefined, "u/1@n", "Get", (m) => text(m)).catch(() => null), 20_000, "an answer after the restart");
      assert.is(answer, "up", "the inbox subscription came back with the connection");
      await nc.close();
      await replier.close();
    } finally {
      await back.stop();
    }
  } finally {
    await own.stop();
  }
});

test.run();
