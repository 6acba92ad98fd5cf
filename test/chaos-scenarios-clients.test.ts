// Chaos scenarios in their short form (skein chaos run, each in its own process with its own
// cluster): every one must finish with zero safety anomalies. Split over several suites so
// the test runner runs them two at a time.
import { test } from "uvu";
import { assertClean, runScenario } from "./chaos-helpers.js";

test("kill-consumer: no safety anomalies", async () => {
  assertClean(await runScenario("kill-consumer", 8, 7), ["kill-consumer"]);
});

test("mixed: no safety anomalies", async () => {
  assertClean(await runScenario("mixed", 8, 8), []);
});

test.run();
