// Chaos scenarios in their short form (skein chaos run, each in its own process with its own
// cluster): every one must finish with zero safety anomalies. Split over several suites so
// the test runner runs them two at a time.
import { test } from "uvu";
import { assertClean, runScenario } from "./chaos-helpers.js";

test("kill-broker: no safety anomalies", async () => {
  assertClean(await runScenario("kill-broker", 8, 4), ["kill-broker"]);
});

test("rolling-restart: no safety anomalies", async () => {
  assertClean(await runScenario("rolling-restart", 8, 4), ["restart-broker"]);
});

test.run();
