// Deno smoke: the same dist/ bundles run under Deno 2 — `skein doctor --json` starts its own
// nats-server, 2 node processes × 2 workers (under Deno too: Deno maps process.execPath to
// `deno run`), asks across workers and processes, kills a worker and waits for its restart.
// deno is a devDependency (the npm package ships the binary), so this runs wherever `npm ci`
// did; a deno from $SKEIN_DENO or PATH is used first. Without one it says so loudly, and
// under CI (CI=true) that is a failure, not a skip.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { execFile, spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { cliBundlePath } from "../runtime/paths.js";

function findDeno(): { path: string; version: string } | null {
  const modules = join(dirname(dirname(cliBundlePath())), "node_modules");
  // The platform package holds the binary even when npm held back deno's install script.
  const platform = existsSync(join(modules, "@deno")) ? readdirSync(join(modules, "@deno")).map((d) => join(modules, "@deno", d, "deno")) : [];
  const candidates = [process.env.SKEIN_DENO, "deno", join(modules, ".bin", "deno"), ...platform];
  for (const candidate of candidates) {
    if (!candidate || (candidate.includes("/") && !existsSync(candidate))) continue;
    const r = spawnSync(candidate, ["--version"], { encoding: "utf8" });
    if (r.status === 0) return { path: candidate, version: r.stdout.split("\n")[0].trim() };
  }
  return null;
}

const deno = findDeno();

if (!deno) {
  console.log("SKIPPED: Deno smoke test — no deno binary (run `npm ci`, which installs the deno devDependency, or set SKEIN_DENO)");
  if (process.env.CI) test("deno is installed in CI (devDependency)", () => assert.unreachable("no deno after npm ci"));
} else {
  test(`skein doctor passes under ${deno.version}, its node processes too`, async () => {
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
    const version = deno.version.split(" ")[1];
    assert.equal(r.runtimes, [`deno ${version}`, `deno ${version}`, `deno ${version}`], "the doctor and both node processes ran under Deno");
    console.log(`deno smoke: ${deno.version} (${deno.path}): doctor ok, ask p50 ${r.askCrossProcessP50Us} µs, worker restart ${r.workerRestartMs} ms`);
  });
}

test.run();
