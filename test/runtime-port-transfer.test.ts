// Replies over a worker's MessagePort (runtime/port-ref.ts): buffers an actor marks with
// transferWith move to the main thread (detached in the worker, not copied); everything else
// in the reply is copied as before. The actor module is a bundle of its own, as applications
// ship theirs: the mark must be seen across bundles.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { SkeinNode } from "../runtime/node.js";
import { fixture, startNatsServer, surfaced, type NatsServerHandle } from "./helpers.js";

let server: NatsServerHandle;
let node: SkeinNode;

test.before(surfaced(async () => {
  server = await startNatsServer();
  node = await SkeinNode.start({ id: "n1", cluster: "transfer", nats: { servers: server.url }, workers: 1 });
}));

test.after(async () => {
  await node?.shutdown();
  await server?.stop();
});

test("a marked buffer arrives whole and leaves the worker; an unmarked one is copied and stays", async () => {
  const address = "transfer-holder/1@n1";
  await node.spawn({ kind: "transfer-holder", module: fixture("transfer-holder"), address });
  const ref = node.portRef(address);
  try {
    const sizes = [1, 100_000, 3 * 1024 * 1024];
    for (const bytes of sizes) {
      const r = await ref.ask<{ data: Uint8Array; shared: Uint8Array }>("Take", { bytes });
      assert.is(r.data.length, bytes);
      assert.ok(r.data.every((b, i) => b === (i & 255)), `all ${bytes} bytes arrived`);
      assert.equal([...r.shared], [7, 7, 7, 7, 7, 7, 7, 7]);
    }
    const kept = await ref.ask<{ moved: number[]; shared: number }>("Kept", {});
    assert.equal(kept.moved, [0, 0, 0], "every marked buffer moved (detached in the worker)");
    assert.is(kept.shared, 64, "the unmarked buffer stayed");
  } finally {
    await ref.close();
  }
});

test.run();
