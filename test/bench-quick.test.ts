// `skein bench --quick` (the same as `npm run bench -- --quick`) as CI runs it: every default
// suite at small sizes, each starting and stopping its own servers. It checks that results are well-formed, not that they are fast
// (speed belongs to the full bench on a quiet machine, bench/RESULTS.md).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { cliBundlePath } from "../runtime/paths.js";
import { tempDir } from "./helpers.js";

const SUITES = ["produce", "consume", "e2e-latency", "partitions-scale", "failover", "actors", "log"];

test("skein bench --quick runs every default suite and writes well-formed results and charts", async () => {
  const dir = tempDir("skein-bench-quick-");
  try {
    const json = join(dir.path, "run.json");
    const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(process.execPath, [cliBundlePath(), "bench", "--quick", "--json", json], { timeout: 220_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr }),
      ),
    );
    // The cause first: CI logs keep the head and tail of a failure, not its middle.
    const causes = `${r.stdout}\n${r.stderr}`.split("\n").filter((l) => /FAILED|failed|not well-formed|Error|^  \S+: /.test(l)).slice(0, 40).join("\n");
    assert.is(r.code, 0, `skein bench --quick exited ${r.code}:\n${causes}\n--- stdout tail ---\n${r.stdout.slice(-3000)}\n--- stderr tail ---\n${r.stderr.slice(-3000)}`);
    assert.match(r.stdout, new RegExp(`quick check: ${SUITES.length} suite\\(s\\) well-formed`));
    const run = JSON.parse(readFileSync(json, "utf8")) as { machine: { cores: number; gitCommit: string }; suites: Array<{ suite: string; rows: Array<Record<string, unknown>> }> };
    assert.ok(run.machine.cores > 0);
    assert.equal(run.suites.map((s) => s.suite).sort(), [...SUITES].sort());
    for (const s of run.suites) assert.ok(s.rows.length > 0, `${s.suite} has no rows`);
    // The latency rows carry the wake-up accounting that explains them.
    const latency = run.suites.find((s) => s.suite === "e2e-latency")!;
    for (const row of latency.rows) {
      assert.ok(Number(row["delivered"]) > 0, JSON.stringify(row));
      assert.ok(Number(row["switches/rec"]) > 0, JSON.stringify(row));
      assert.ok(Number(row["CPU µs/switch"]) > 0, JSON.stringify(row));
    }
    for (const chart of ["charts.html", "produce-throughput.svg", "consume-throughput.svg"]) assert.ok(existsSync(join(dir.path, chart)), `${chart} missing`);
  } finally {
    dir.remove();
  }
});

test.run();
