// Runs `skein chaos run` for the scenario suites and reads back what it wrote.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as assert from "uvu/assert";
import { cliBundlePath } from "../runtime/paths.js";
import { parseHistoryJsonl, type HistoryOp } from "../actors/chaos/history.js";
import { LIVENESS_FAILURES, SAFETY_ANOMALIES } from "../actors/chaos/checker.js";
import { tempDir } from "./helpers.js";

export interface ScenarioOutcome {
  code: number | null;
  verdict: Record<string, number | string>;
  history: HistoryOp[];
  output: string;
  ms: number;
}

/**
 * Sends per second per producer in the short form. The default (100) keeps a 2-core machine
 * busy enough that broker restarts take 3x longer when another suite runs alongside; 40 still
 * keeps several sends in flight on every partition whenever a fault hits.
 */
const SHORT_FORM_RATE = 40;

/** `skein chaos run --scenario NAME --duration S --seed N --rate 40 --json --out DIR`, in its own process. */
export async function runScenario(scenario: string, durationS: number, seed: number): Promise<ScenarioOutcome> {
  const out = tempDir(`skein-chaos-${scenario}-`);
  const started = Date.now();
  const args = ["chaos", "run", "--scenario", scenario, "--duration", String(durationS), "--seed", String(process.env.SKEIN_CHAOS_SEED ?? seed), "--rate", String(SHORT_FORM_RATE), "--json", "--out", out.path];
  const child = spawn(process.execPath, ["--enable-source-maps", cliBundlePath(), ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, SKEIN_NATS: "" } });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
  const ms = Date.now() - started;
  const last = output.trim().split("\n").filter((l) => l.startsWith("{")).pop();
  assert.ok(last, `no verdict line from skein ${args.join(" ")}:\n${output}`);
  const verdict = JSON.parse(last!) as Record<string, number | string>;
  const history = parseHistoryJsonl(readFileSync(join(out.path, "history.jsonl"), "utf8"));
  readFileSync(join(out.path, "timeline.svg"), "utf8");
  // A failed run keeps its history and broker logs for the post-mortem; a clean one leaves nothing.
  if (code === 0) out.remove();
  else output += `\nhistory, timeline and broker logs kept in ${out.path}\n`;
  return { code, verdict, history, output, ms };
}

/**
 * The CI budget for one scenario's short form: start, workload, faults, heal, quiet,
 * read back, check. The short form is sized to fit it (17-27 s measured with two scenario
 * suites side by side); the time is printed and flagged, not asserted: the team's rule is no
 * timed assertions in tests, and on a shared 2-core machine start-up alone can take 10-18 s.
 */
export const SCENARIO_BUDGET_MS = 30_000;

/**
 * Zero safety anomalies, a group that drained, exit code 0, a working workload and the faults
 * that were asked for; the run's time against the CI budget is reported.
 */
export function assertClean(r: ScenarioOutcome, faultKinds: string[]): void {
  const anomalies = [...SAFETY_ANOMALIES, ...LIVENESS_FAILURES].filter((k) => r.verdict[k] !== 0);
  assert.equal(anomalies, [], `safety anomalies ${JSON.stringify(r.verdict)}:\n${r.output}`);
  assert.is(r.code, 0, r.output);
  assert.ok(Number(r.verdict.acked) > 100, `only ${r.verdict.acked} acknowledged sends:\n${r.output}`);
  const injected = r.history.filter((op) => op.f === "fault" && op.type === "start").map((op) => (op as Extract<HistoryOp, { f: "fault" }>).kind);
  for (const kind of faultKinds) assert.ok(injected.includes(kind), `no ${kind} fault was injected (${injected.join(", ")}):\n${r.output}`);
  const replicaReads = r.history.filter((op) => op.f === "final-read" && op.replica !== undefined).length;
  assert.ok(replicaReads >= 3, `only ${replicaReads} replica logs read back`);
  const polled = r.history.filter((op) => op.f === "poll").length;
  assert.ok(polled > 0, "the group consumed nothing");
  assert.ok(r.history.some((op) => op.f === "group-end"), "no group-end: unseen and undrained were not judged");
  const recoveries = r.output.split("\n").filter((l) => /first ack after|no acknowledged send afterwards/.test(l)).map((l) => l.trim());
  const over = r.ms > SCENARIO_BUDGET_MS ? ` OVER BUDGET; phases:\n${phases(r.output)}` : "";
  console.log(`  measured: ${r.verdict.scenario} seed ${r.verdict.seed}: acked ${r.verdict.acked}, maxUnavailableMs ${r.verdict.maxUnavailableMs}, ${injected.length} faults, ${(r.ms / 1000).toFixed(1)} s (budget ${SCENARIO_BUDGET_MS / 1000} s)${over}`);
  for (const line of recoveries) console.log(`    ${line}`);
}

/** The runner's timestamped progress lines: where the time went. */
function phases(output: string): string {
  return output.split("\n").filter((l) => l.startsWith("chaos: [")).join("\n");
}
