// The gateway's live-broker view (Metadata answers) when the KV listing of live brokers stalls,
// as nats.js's key listing of the TTL'd live bucket did for up to 19 s under load: Metadata is
// answered from the last known brokers after a bounded wait, and stalled listings do not pile up.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { ClusterView, type LiveCluster } from "../actors/gateway/cluster-view.js";

function fakeMeta() {
  const meta = {
    listings: 0,
    stall: false,
    async listBrokers() {
      meta.listings++;
      if (meta.stall) return new Promise<never>(() => {});
      return [{ value: { broker: 1, pid: 1, host: "h", workers: 1, startedAt: 0, heartbeatAt: 0 } }];
    },
    async getLease() {
      return { value: { broker: 1 } };
    },
  };
  return meta;
}

// The constructor is private (open() also starts a KV watch this test does not need).
const view = (meta: ReturnType<typeof fakeMeta>) => new (ClusterView as unknown as new (m: unknown, l: unknown) => ClusterView)(meta, { warn() {}, info() {} });
const forgetCache = (v: ClusterView) => ((v as unknown as { live: unknown }).live = null);

// The view's timers never keep a process alive (unref), and a stalled listing is a promise that
// never settles: this handle keeps the test process running while the tests wait.
const keepAlive = setInterval(() => {}, 1_000);
test.after(() => clearInterval(keepAlive));

test("a stalled live-broker listing is answered with the last known brokers, one listing at a time", async () => {
  const meta = fakeMeta();
  const v = view(meta);
  const first: LiveCluster = await v.liveCluster();
  assert.equal(first.brokers.map((b) => b.broker), [1]);
  meta.stall = true;
  forgetCache(v);
  const started = Date.now();
  const second = await v.liveCluster();
  assert.equal(second, first, "the last known brokers");
  console.log(`  measured: answered from the last known brokers after ${Date.now() - started} ms`);
  forgetCache(v);
  await v.liveCluster();
  forgetCache(v);
  await v.liveCluster();
  assert.is(meta.listings, 2, "the stalled listing is shared, not repeated per call");
});

test("with nothing known yet, a caller waits for the listing", async () => {
  const meta = fakeMeta();
  const v = view(meta);
  meta.stall = true;
  const r = await Promise.race([v.liveCluster().then(() => "answered"), new Promise((res) => setTimeout(() => res("waiting"), 1_500))]);
  assert.is(r, "waiting", "no brokers were ever known: nothing to answer with");
});

test.run();
