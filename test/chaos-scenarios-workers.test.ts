// Chaos scenarios in their short form (skein chaos run, each in its own process with its own
// cluster): every one must finish with zero safety anomalies. Split over several suites so
// the test runner runs them two at a time.
import { test } from "uvu";
import { assertClean, runScenario } from "./chaos-helpers.js";

test("kill-leader-worker: no safety anomalies", async () => {
  assertClean(await runScenario("kill-leader-worker", 8, 1), ["kill-worker"]);
});

test("kill-controller: no safety anomalies", async () => {
  assertClean(await runScenario("kill-controller", 8, 7), ["kill-controller"]);
});

test.run();
