// Runs every built uvu suite (dist/test/**/*.test.js) in its own Node process, so a suite's
// nats-servers, workers and timers can never leak into another, and sums uvu's per-file
// totals into the closing line CI reads: "N passed, N failed".
//   node scripts/run-tests.mjs [substring…]   run only suites whose path contains one of them
import { spawn } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const testDir = join(root, "dist", "test");
const concurrency = Number(process.env.SKEIN_TEST_CONCURRENCY ?? 2);
const fileTimeoutMs = Number(process.env.SKEIN_TEST_TIMEOUT_MS ?? 240_000);
const filters = process.argv.slice(2);

function suites(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...suites(p));
    else if (name.endsWith(".test.js")) out.push(p);
  }
  return out.sort();
}

const ANSI = /\x1b\[[0-9;]*m/g;

function runOne(file) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, ["--enable-source-maps", file], {
      cwd: root,
      env: { ...process.env, FORCE_COLOR: "0", NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    const timer = setTimeout(() => {
      output += `\n[runner] suite timed out after ${fileTimeoutMs} ms; killed\n`;
      try { process.kill(-child.pid, "SIGKILL"); } catch {}
    }, fileTimeoutMs);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      // Kill anything the suite left in its process group (it should have left nothing).
      try { process.kill(-child.pid, "SIGKILL"); } catch {}
      const text = output.replace(ANSI, "");
      const total = Number(/Total:\s+(\d+)/.exec(text)?.[1] ?? NaN);
      const passed = Number(/Passed:\s+(\d+)/.exec(text)?.[1] ?? NaN);
      const skipped = Number(/Skipped:\s+(\d+)/.exec(text)?.[1] ?? 0);
      let p = 0, f = 0;
      if (Number.isFinite(total) && Number.isFinite(passed)) {
        p = passed;
        f = total - passed - skipped;
        if (f === 0 && code !== 0) f = 1; // crashed after its tests reported
      } else {
        f = 1; // crashed before uvu could report
      }
      resolve({ file, passed: p, failed: f, code, signal, text, ms: Date.now() - started });
    });
  });
}

const all = suites(testDir).filter(
  (f) => filters.length === 0 || filters.some((s) => f.includes(s)),
);
if (all.length === 0) {
  console.log("no test suites found (did the build run?)");
  console.log("0 passed, 1 failed");
  process.exit(1);
}

// Suites that measure the machine run last, alone: `skein bench --quick` keeps both cores busy
// for two minutes, and next to another suite's clusters each slowed the other past its timeouts.
const ALONE = ["bench-quick.test.js"];
const alone = all.filter((f) => ALONE.some((n) => f.endsWith(n)));
const shared = all.filter((f) => !alone.includes(f));

const results = [];
async function runAll(files, width) {
  let next = 0;
  async function worker() {
    while (next < files.length) await report(files[next++]);
  }
  await Promise.all(Array.from({ length: Math.min(width, files.length) }, worker));
}

async function report(file) {
  const r = await runOne(file);
  results.push(r);
  const name = relative(testDir, file);
  const status = r.failed ? "FAIL" : "ok  ";
  console.log(`${status} ${name}  (${r.passed} passed, ${r.failed} failed, ${(r.ms / 1000).toFixed(1)} s)`);
  if (r.failed || process.env.SKEIN_TEST_VERBOSE === "1") {
    console.log(r.text.split("\n").map((l) => "     | " + l).join("\n"));
  }
}
await runAll(shared, concurrency);
await runAll(alone, 1);

const passed = results.reduce((a, r) => a + r.passed, 0);
const failed = results.reduce((a, r) => a + r.failed, 0);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
