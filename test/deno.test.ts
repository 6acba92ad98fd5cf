// Deno smoke: the same dist/ bundles run under Deno 2 — `skein doctor --json` starts its own
// nats-server, 2 node processes × 2 workers (under Deno too: Deno maps process.execPath to
// `deno run`), asks across workers and processes, kills a worker and waits for its restart.
// Runs only where a deno binary exists: $SKEIN_DENO, PATH, or node_modules/.bin (e.g. after
// `npm install --no-save deno`); otherwise it registers no test and says so.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { execFile, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { cliBundlePath } from "../runtime/paths.js";

function findDeno(): { path: string; version: string } | null {
  const root = dirname(dirname(cliBundlePath()));
  const candidates = [process.env.SKEIN_DENO, "deno", join(root, "node_modules", ".bin", "deno")];
  for (const candidate of candidates) {
    if (!candidate || (candidate.includes("/") && !existsSync(candidate))) continue;
    const r = spawnSync(candidate, ["--version"], { encoding: "utf8" });
    if (r.status === 0) return { path: candidate, version: r.stdout.split("\n")[0].trim() };
  }
  return null;
}

const deno = findDeno();

if (!deno) {
  console.log("deno not found: Deno smoke skipped (set SKEIN_DENO, put deno on PATH, or `npm install --no-save deno`)");
} else {
  test(`skein doctor passes under ${deno.version}`, async () => {
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(deno.path, ["run", "-A", cliBundlePath(), "doctor", "--json"], { timeout: 120_000 }, (err, out, errOut) =>
        err ? reject(new Error(`doctor under Deno failed: ${err.message}\n${out}\n${errOut}`)) : resolve(out),
      );
    });
    const r = JSON.parse(stdout.trim().split("\n").pop()!);
    assert.is(r.ok, true, JSON.stringify(r));
    assert.is(r.processes, 2);
    assert.is(r.workers, 4);
    assert.is(r.actors, 8);
    assert.is(r.asksFailed, 0);
    assert.ok(r.askCrossProcessP50Us > 0);
    assert.ok(r.workerRestartMs > 0);
  });
}

test.run();
