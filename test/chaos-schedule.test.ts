// Seeded fault schedules: the same seed gives the same schedule, and every scenario's short
// form (as the scenario suites run it) has faults of its kind inside the workload.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { COOLDOWN_MS, SCENARIOS, WARMUP_MS, scheduleFor } from "../actors/chaos/schedule.js";

const shape = (durationMs: number) => ({ durationMs, brokers: 3, partitions: 3, consumers: 2 });

test("same seed, same schedule; another seed, another one", () => {
  for (const scenario of SCENARIOS) {
    assert.equal(scheduleFor(scenario, 42, shape(60_000)), scheduleFor(scenario, 42, shape(60_000)), scenario);
    assert.not.equal(scheduleFor(scenario, 42, shape(60_000)), scheduleFor(scenario, 43, shape(60_000)), scenario);
  }
});

test("every step starts inside the workload, after the warm-up and before the cool-down", () => {
  for (const scenario of SCENARIOS.filter((s) => s !== "rolling-restart")) {
    for (const seed of [1, 2, 3, 1234567]) {
      const steps = scheduleFor(scenario, seed, shape(12_000));
      assert.ok(steps.length >= 1, `${scenario} seed ${seed}: no fault in 12 s`);
      for (const s of steps) assert.ok(s.atMs >= WARMUP_MS && s.atMs < 12_000 - COOLDOWN_MS, `${scenario}: ${JSON.stringify(s)}`);
      for (let i = 1; i < steps.length; i++) assert.ok(steps[i].atMs > steps[i - 1].atMs);
    }
  }
});

test("a rolling restart restarts every broker in turn: one whole round in a short run, more in a long one", () => {
  const brokers = (ms: number) => scheduleFor("rolling-restart", 4, shape(ms)).map((s) => (s.kind === "restart-broker" ? s.broker : -1));
  assert.equal(brokers(8_000), [1, 2, 3]);
  assert.equal(brokers(60_000), [1, 2, 3, 1, 2, 3, 1, 2, 3]);
  const steps = scheduleFor("rolling-restart", 4, shape(8_000));
  assert.ok(steps[0].atMs >= WARMUP_MS);
});

test("targets stay inside the cluster", () => {
  for (const seed of [5, 6, 7, 8, 9, 10]) {
    for (const s of scheduleFor("mixed", seed, shape(120_000))) {
      if ("partition" in s && s.partition !== undefined) assert.ok(s.partition >= 0 && s.partition < 3);
      if ("broker" in s && s.broker !== undefined) assert.ok(s.broker >= 1 && s.broker <= 3);
      if ("consumer" in s) assert.ok(s.consumer >= 0 && s.consumer < 2);
      if (s.kind === "drop" || s.kind === "duplicate") assert.ok(s.probability > 0 && s.probability <= 1);
    }
  }
});

test.run();
