// `skein doctor --json` end to end, exactly as a new user runs it (it starts its own nats-server).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { execFile } from "node:child_process";
import { cliBundlePath } from "../runtime/paths.js";

test("skein doctor passes and reports processes, workers, actors, latency and restart time", async () => {
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, [cliBundlePath(), "doctor", "--json"], { timeout: 90_000 }, (err, out, errOut) =>
      err ? reject(new Error(`doctor failed: ${err.message}\n${out}\n${errOut}`)) : resolve(out),
    );
  });
  const last = stdout.trim().split("\n").pop()!;
  const r = JSON.parse(last);
  assert.is(r.ok, true);
  assert.is(r.processes, 2);
  assert.is(r.workers, 4);
  assert.is(r.actors, 8);
  assert.is(r.asksFailed, 0);
  assert.ok(r.askCrossProcessP50Us > 0);
  assert.ok(r.workerRestartMs > 0);
  assert.match(r.cluster, /^doctor-\d+-/, "without --cluster the doctor keeps to a namespace of its own");
  assert.equal(r.runtimes, [`node ${process.version}`, `node ${process.version}`, `node ${process.version}`]);
});

test.run();
