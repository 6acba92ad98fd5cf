// NATS goes away and comes back: nodes report it, keep their actors and answer again.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { ActorSystem } from "../runtime/system.js";
import { SkeinNode } from "../runtime/node.js";
import { addressToSubject } from "../protocol/address.js";
import { encodeEnvelope, EnvelopeKind } from "../protocol/envelope.js";
import { ErrorCode, isSkeinError } from "../protocol/errors.js";
import { startNatsServer, waitFor, type NatsServerHandle } from "./helpers.js";

let server: NatsServerHandle;
let node: SkeinNode;
let system: ActorSystem;
let lonely: NatsServerHandle;
let workerNode: SkeinNode;
let workerSystem: ActorSystem;
let buffering: NatsServerHandle;
let bufferSystem: ActorSystem;

test.after(async () => {
  await system?.close();
  await node?.shutdown();
  await server?.stop();
  await workerSystem?.close();
  await workerNode?.shutdown();
  await lonely?.stop();
  await bufferSystem?.close();
  await buffering?.stop();
});

test("actors answer again after nats-server restarts on the same port", async () => {
  server = await startNatsServer();
  const port = server.port;
  const nats = { servers: server.url, reconnectTimeWaitMs: 100 };
  node = await SkeinNode.start({ id: "rc", cluster: "rc", nats, workers: 1 });
  system = await ActorSystem.connect({ nats, cluster: "rc" });
  await system.spawn({ node: "rc", kind: "$ping", address: "p/1@rc" });
  assert.ok(await system.ask("p/1@rc", "Ping", {}));
  await server.stop();
  const down = await system.ask("p/1@rc", "Ping", {}, { timeoutMs: 500 }).catch((e) => e);
  assert.ok(down instanceof Error, "no answer while NATS is down");
  server = await startNatsServer({ port });
  const answer = await waitFor(() => system.ask<{ address: string }>("p/1@rc", "Ping", {}, { timeoutMs: 500 }).catch(() => null), 20_000, "an answer after NATS came back");
  assert.is(answer!.address, "p/1@rc");
});

test("a worker killed while NATS is down keeps retrying its start and comes back with its actors", async () => {
  lonely = await startNatsServer();
  const port = lonely.port;
  const nats = { servers: lonely.url, reconnectTimeWaitMs: 100 };
  // A short backoff cap keeps the test quick; the default (5 s) behaves the same, slower.
  workerNode = await SkeinNode.start({ id: "wk", cluster: "wk", nats, workers: 1, restartMaxMs: 400 });
  workerSystem = await ActorSystem.connect({ nats, cluster: "wk" });
  await workerSystem.spawn({ node: "wk", kind: "$ping", address: "p/1@wk" });
  assert.ok(await workerSystem.ask("p/1@wk", "Ping", {}));
  await lonely.stop();
  await workerNode.killWorker(0);
  // First exit, then at least two restart attempts that could not reach NATS.
  await waitFor(async () => {
    const [w] = (await workerNode.stats()) as Array<{ state?: string; consecutiveExits?: number }>;
    return w.state === "restarting" && (w.consecutiveExits ?? 0) >= 3;
  }, 20_000, "restart attempts that fail while NATS is down");
  lonely = await startNatsServer({ port });
  const answer = await waitFor(() => workerSystem.ask<{ address: string }>("p/1@wk", "Ping", {}, { timeoutMs: 500 }).catch(() => null), 20_000, "the actor answering after NATS came back");
  assert.is(answer!.address, "p/1@wk");
  const [w] = (await workerNode.stats()) as Array<{ natsConnected?: boolean; actors?: number }>;
  assert.is(w.natsConnected, true);
  assert.is(w.actors, 1);
});

test("while NATS is down tells are buffered up to the bound, the rest dropped and counted; loss and return are reported", async () => {
  buffering = await startNatsServer();
  const port = buffering.port;
  const boundBytes = 4_096;
  bufferSystem = await ActorSystem.connect({ nats: { servers: buffering.url, reconnectTimeWaitMs: 100, maxBufferedBytesWhileDisconnected: boundBytes }, cluster: "buf" });
  const sys = bufferSystem;
  const address = "sink/1@nobody";
  let received = 0;
  sys.nc.subscribe(addressToSubject("buf", address), { callback: () => void received++ });
  await sys.nc.flush();
  const changes: boolean[] = [];
  sys.onConnectionChange((c) => changes.push(c));
  const next = (want: boolean) =>
    new Promise<void>((resolve) => {
      const off = sys.onConnectionChange((c) => {
        if (c !== want) return;
        off();
        resolve();
      });
    });

  const lost = next(false);
  await buffering.stop();
  await lost;
  assert.is(sys.connected, false);
  const body = { payload: "x".repeat(200) };
  const size = encodeEnvelope(EnvelopeKind.MESSAGE, "Echo", body).length;
  const accepted = Math.floor(boundBytes / size);
  for (let i = 0; i < 100; i++) sys.tell(address, "Echo", body);
  assert.is(sys.droppedWhileDisconnected, 100 - accepted, `${size}-byte tells beyond ${boundBytes} bytes are dropped`);
  assert.is(sys.bufferedBytesWhileDisconnected, accepted * size);
  const refused = await sys.ask(address, "Echo", body, { timeoutMs: 5_000 }).catch((e) => e);
  assert.ok(isSkeinError(refused, ErrorCode.NOT_CONNECTED), "asks fail at once while disconnected");

  const back = next(true);
  buffering = await startNatsServer({ port });
  await back;
  assert.equal(changes, [false, true]);
  assert.is(sys.bufferedBytesWhileDisconnected, 0);
  // The buffered tells go out on reconnect; the dropped ones never do.
  sys.tell(address, "Echo", { payload: "after" });
  await waitFor(() => received >= accepted + 1, 10_000, "the buffered tells and one sent after the return");
  await sys.nc.flush();
  assert.is(received, accepted + 1);
  assert.is(sys.droppedWhileDisconnected, 100 - accepted, "nothing dropped once connected");
});

test.run();
