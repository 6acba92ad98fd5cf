// Regression (found by `skein chaos run --scenario rolling-restart --seed 1`): a consumer Poll
// with nothing to hand out parks until its maxWaitMs. The Kick timer that expires it can fire
// before Date.now() reaches the deadline (Node runs timers on the event loop's cached clock),
// and the poll then stayed parked until data arrived or the facade's ask timed out (10 s).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { ConsumerActor, ConsumerState } from "../actors/client/consumer.js";
import { ConsumerArgs, type PollResult } from "../protocol/client.js";
import type { MetadataStore } from "../actors/cluster/metadata.js";
import type { ActorContext } from "../runtime/actor.js";
import { fakeConsumerContext } from "./helpers.js";

interface Scheduled {
  ms: number;
  type: string;
}

function fakeContext(scheduled: Scheduled[], replies: PollResult[]): ActorContext<ConsumerArgs> {
  return fakeConsumerContext({
    deferReply: <T>() => ({ resolve: (v: T) => replies.push(v as PollResult), reject() {}, settled: false }),
    schedule(ms, type) {
      scheduled.push({ ms, type });
      return () => undefined;
    },
  });
}

test("a Kick that fires before the parked poll's deadline schedules another; the poll is answered at its deadline", () => {
  const realNow = Date.now;
  let now = 1_000_000;
  Date.now = () => now;
  try {
    const scheduled: Scheduled[] = [];
    const replies: PollResult[] = [];
    const ctx = fakeContext(scheduled, replies);
    const state = new ConsumerState({} as MetadataStore, ConsumerArgs.parse({}));
    assert.is(state.poll({ maxWaitMs: 200, maxBytes: 1 << 20, processed: [] }, ctx), undefined, "nothing buffered: the poll parks");
    assert.equal(scheduled.pop(), { ms: 200, type: "Kick" });

    now += 197; // the timer fired 3 ms "early" by Date.now()
    ConsumerActor.handlers.Kick(state, {}, ctx);
    assert.is(replies.length, 0, "not yet due");
    const again = scheduled.pop();
    assert.ok(again && again.type === "Kick" && again.ms > 0 && again.ms <= 4, `a Kick for the rest of the wait, got ${JSON.stringify(again)}`);

    now += again!.ms;
    ConsumerActor.handlers.Kick(state, {}, ctx);
    assert.is(replies.length, 1, "answered (empty) at its deadline");
    assert.equal(replies[0].chunks, []);
    assert.is(scheduled.filter((s) => s.type === "Kick").length, 0, "no poll left to look at again");
  } finally {
    Date.now = realNow;
  }
});

test("a parked poll with a distant deadline is not rescheduled by every Kick", () => {
  const realNow = Date.now;
  let now = 2_000_000;
  Date.now = () => now;
  try {
    const scheduled: Scheduled[] = [];
    const ctx = fakeContext(scheduled, []);
    const state = new ConsumerState({} as MetadataStore, ConsumerArgs.parse({}));
    state.poll({ maxWaitMs: 30_000, maxBytes: 1 << 20, processed: [] }, ctx);
    scheduled.length = 0;
    now += 100;
    ConsumerActor.handlers.Kick(state, {}, ctx);
    assert.equal(scheduled, []);
  } finally {
    Date.now = realNow;
  }
});

test.run();
