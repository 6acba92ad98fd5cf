// NATS goes away and comes back: nodes report it, keep their actors and answer again.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { ActorSystem } from "../runtime/system.js";
import { SkeinNode } from "../runtime/node.js";
import { startNatsServer, waitFor, type NatsServerHandle } from "./helpers.js";

let server: NatsServerHandle;
let node: SkeinNode;
let system: ActorSystem;

test.after(async () => {
  await system?.close();
  await node?.shutdown();
  await server?.stop();
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

test.run();
