// Chaos scenarios in their short form (skein chaos run, each in its own process with its own
// cluster): every one must finish with zero safety anomalies. Split over several suites so
// the test runner runs them two at a time.
import { test } from "uvu";
import { assertClean, runScenario } from "./chaos-helpers.js";

test("pause-broker: no safety anomalies", async () => {
  assertClean(await runScenario("pause-broker", 8, 4), ["pause-broker"]);
});

test("isolate-leader: no safety anomalies", async () => {
  assertClean(await runScenario("isolate-leader", 8, 6), ["isolate"]);
});

test.run();
