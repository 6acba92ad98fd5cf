// The controller's decisions without processes: leader election from the ISR (unclean
// election only with the per-topic opt-in), replica assignment spread and leader balance,
// and stepping down when the lease cannot be renewed. The metadata store is a fake in
// memory; the controller only sees it through the methods it calls.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { ControllerArgs, ControllerState, assignReplicas } from "../actors/cluster/controller.js";
import { LatestListing, type MetadataStore, type Versioned } from "../actors/cluster/metadata.js";
import type { ControllerLease, PartitionState, TopicRecord } from "../protocol/cluster.js";
import { ErrorCode, type SkeinError } from "../protocol/errors.js";

const TTL_MS = 3_000;

/** The slice of MetadataStore the controller uses, in memory, with a switch to make the lease CAS fail. */
class FakeMetadata {
  readonly liveTtlMs = TTL_MS;
  lease: Versioned<ControllerLease> | null = null;
  revision = 0;
  leaseWritesFail = false;
  partitionWrites: PartitionState[] = [];
  brokers: number[] = [1, 2, 3];
  /** While set, broker listings never finish (nats.js's key listing stalling on the live bucket). */
  listingStalls = false;
  listings = 0;
  private readonly stalled: Array<() => void> = [];

  async getLease() {
    return this.lease;
  }
  async createLease(lease: ControllerLease) {
    if (this.lease) return null;
    this.lease = { value: lease, revision: ++this.revision };
    return this.revision;
  }
  async updateLease(lease: ControllerLease, revision: number) {
    if (this.leaseWritesFail || !this.lease || this.lease.revision !== revision) return null;
    this.lease = { value: lease, revision: ++this.revision };
    return this.revision;
  }
  async listBrokers() {
    this.listings++;
    if (this.listingStalls) await new Promise<void>((resolve) => this.stalled.push(resolve));
    return this.brokers.map((broker) => ({ value: { broker, pid: 1, host: "h", workers: 1, startedAt: 0, heartbeatAt: 0 }, revision: 1 }));
  }
  /** Lets stalled listings finish (so the test leaves no pending promise behind). */
  releaseListings() {
    this.listingStalls = false;
    for (const r of this.stalled.splice(0)) r();
  }
  created: TopicRecord[] = [];
  async createTopic(record: TopicRecord) {
    this.created.push(record);
  }
  async createPartition(state: PartitionState) {
    this.partitionWrites.push(state);
    return ++this.revision;
  }
  async casPartition(state: PartitionState) {
    this.partitionWrites.push(state);
    return ++this.revision;
  }
  // Topic deletion: one topic record and its partition states, deleted by revision.
  topic: Versioned<TopicRecord> | null = null;
  parts = new Map<number, Versioned<PartitionState>>();
  /** Called after each partition read: a leader changing the ISR between read and delete. */
  onPartitionRead: (p: number) => void = () => undefined;
  async getTopicVersioned() {
    return this.topic;
  }
  async getPartition(_topic: string, p: number) {
    const v = this.parts.get(p) ?? null;
    this.onPartitionRead(p);
    return v;
  }
  async deletePartition(_topic: string, p: number, revision: number) {
    if (this.parts.get(p)?.revision !== revision) return false;
    this.parts.delete(p);
    return true;
  }
  async deleteTopicRecord(_name: string, revision: number) {
    if (this.topic?.revision !== revision) return false;
    this.topic = null;
    return true;
  }
}

function controller(meta: FakeMetadata, broker = 1): ControllerState {
  return new ControllerState(meta as unknown as MetadataStore, ControllerArgs.parse({ broker, preferredLeaderDelayMs: 60_000 }));
}

const partition = (over: Partial<PartitionState> = {}): PartitionState => ({
  topic: "t",
  topicId: "id-t",
  partition: 0,
  leader: 1,
  leaderEpoch: 4,
  isr: [1],
  replicas: [1, 2, 3],
  controllerEpoch: 1,
  ...over,
});

const topic = (configs: TopicRecord["configs"]): TopicRecord => ({ name: "t", id: "id-t", partitions: 1, replicationFactor: 3, configs, createdAt: 0 });

function withAlive(c: ControllerState, brokers: number[]): ControllerState {
  for (const b of brokers) c.alive.set(b, { since: Date.now() });
  c.epoch = 7;
  return c;
}

test("leader lost and no live ISR member: the partition goes offline (unclean election is off by default)", () => {
  const c = withAlive(controller(new FakeMetadata()), [2, 3]);
  c.topics.set("t", topic({}));
  const next = c.desiredState(partition(), true);
  assert.ok(next, "a change is due");
  assert.is(next!.leader, -1, "no out-of-ISR replica is elected");
  assert.equal(next!.isr, [1], "the ISR is kept, so the last in-sync replica leads when it returns");
  assert.is(next!.leaderEpoch, 5);
  assert.is(next!.controllerEpoch, 7);
  // Offline already: nothing more to write until an ISR member is back.
  assert.is(c.desiredState(next!, true), null);
});

test("unclean.leader.election.enable elects a live out-of-ISR replica and bumps the epoch", () => {
  const c = withAlive(controller(new FakeMetadata()), [2, 3]);
  c.topics.set("t", topic({ "unclean.leader.election.enable": true }));
  const next = c.desiredState(partition(), true);
  assert.is(next!.leader, 2, "the first live assigned replica");
  assert.equal(next!.isr, [2], "the ISR restarts from the unclean leader");
  assert.is(next!.leaderEpoch, 5);
  // The same for an offline partition (leader -1) once an out-of-ISR replica is alive.
  const fromOffline = c.desiredState(partition({ leader: -1, leaderEpoch: 5 }), true);
  assert.is(fromOffline!.leader, 2);
  assert.is(fromOffline!.leaderEpoch, 6);
});

test("a clean election picks the first live ISR member in replica order", () => {
  const c = withAlive(controller(new FakeMetadata()), [2, 3]);
  c.topics.set("t", topic({ "unclean.leader.election.enable": true }));
  const next = c.desiredState(partition({ replicas: [1, 3, 2], isr: [1, 2, 3] }), true);
  assert.is(next!.leader, 3, "replica order, not broker id order");
  assert.equal(next!.isr, [2, 3]);
  assert.is(next!.leaderEpoch, 5);
});

test("assignReplicas: replicas spread evenly, leaders balanced, no broker twice in a partition", () => {
  for (const [brokers, partitions, rf] of [
    [[1, 2, 3], 30, 3],
    [[1, 2, 3, 4, 5], 50, 3],
    [[1, 2, 3, 4], 12, 2],
    [[4, 9, 11, 20, 21, 30], 60, 3],
  ] as const) {
    for (let start = 0; start < brokers.length; start++) {
      const a = assignReplicas([...brokers], partitions, rf, start);
      assert.is(a.length, partitions);
      const leaders = new Map<number, number>();
      const replicas = new Map<number, number>();
      for (const r of a) {
        assert.is(r.length, rf);
        assert.is(new Set(r).size, rf, `duplicate broker in ${r}`);
        for (const b of r) assert.ok(brokers.includes(b as never), `unknown broker ${b}`);
        leaders.set(r[0], (leaders.get(r[0]) ?? 0) + 1);
        for (const b of r) replicas.set(b, (replicas.get(b) ?? 0) + 1);
      }
      const perBroker = partitions / brokers.length;
      for (const b of brokers) {
        assert.is(leaders.get(b), perBroker, `broker ${b} leads ${leaders.get(b)} of ${partitions} (start ${start})`);
        assert.is(replicas.get(b), perBroker * rf, `broker ${b} holds ${replicas.get(b)} replicas (start ${start})`);
      }
      // Followers are not always the same neighbours: with more than RF brokers, each
      // leader's followers vary across its partitions.
      if (brokers.length > rf) {
        const followerSets = new Set(a.filter((r) => r[0] === brokers[0]).map((r) => r.slice(1).join(",")));
        assert.ok(followerSets.size > 1, `broker ${brokers[0]} always has followers ${[...followerSets]}`);
      }
    }
  }
});

test("the controller steps down when renewing its lease fails, and writes nothing after", async () => {
  const meta = new FakeMetadata();
  const c = controller(meta);
  await c.tick();
  assert.ok(c.active, "took the free lease");
  assert.is(c.epoch, meta.lease!.revision);
  c.partitions.set("partition.t.0", { value: partition({ leader: 2, isr: [2], controllerEpoch: c.epoch }), revision: 1 });
  c.alive.set(1, { since: 0 });
  // Another controller took the lease (or the store refuses the CAS): the next renewal fails.
  meta.leaseWritesFail = true;
  c.lastRenewAt = Date.now() - TTL_MS; // renewal due
  meta.brokers = [1, 3]; // broker 2 (the leader) is gone: an active controller would elect
  await c.tick();
  assert.is(c.active, false, "stepped down");
  assert.is(c.status().epoch, -1);
  assert.equal(meta.partitionWrites, [], "a controller without a lease writes no partition state");
  const e = (await c.createTopic({ name: "x", partitions: 1, replicationFactor: 1, configs: {} }).catch((x) => x)) as SkeinError;
  assert.is(e.code, ErrorCode.NOT_CONTROLLER);
});

test("a controller whose lease expired while it was paused refuses to write before renewing", async () => {
  const meta = new FakeMetadata();
  const c = controller(meta);
  await c.tick();
  assert.ok(c.active);
  // Paused past the lease TTL; meanwhile another broker took the lease over.
  meta.lease = { value: { broker: 2, since: Date.now() }, revision: ++meta.revision };
  c.lastRenewAt = Date.now() - TTL_MS - 1;
  const e = (await c.createTopic({ name: "x", partitions: 1, replicationFactor: 1, configs: {} }).catch((x) => x)) as SkeinError;
  assert.is(e.code, ErrorCode.NOT_CONTROLLER);
  assert.equal(meta.partitionWrites, []);
});

test("a controller within its TTL whose lease was taken over finds out by CAS before writing", async () => {
  const meta = new FakeMetadata();
  const c = controller(meta);
  await c.tick();
  meta.lease = { value: { broker: 2, since: Date.now() }, revision: ++meta.revision };
  const e = (await c.createTopic({ name: "x", partitions: 1, replicationFactor: 1, configs: {} }).catch((x) => x)) as SkeinError;
  assert.is(e.code, ErrorCode.NOT_CONTROLLER);
  assert.is(c.active, false);
  assert.equal(meta.partitionWrites, []);
});

test("deleting a topic is compare-and-set: a state changed meanwhile is re-read, a re-created topic's state is kept", async () => {
  const meta = new FakeMetadata();
  const c = controller(meta);
  await c.tick();
  meta.topic = { value: { ...topic({}), partitions: 2 }, revision: 10 };
  meta.parts.set(0, { value: partition({ controllerEpoch: c.epoch }), revision: 11 });
  // Partition 1 already belongs to a re-creation of the topic (another id): not ours to delete.
  meta.parts.set(1, { value: partition({ partition: 1, topicId: "id-new" }), revision: 12 });
  let raced = false;
  meta.onPartitionRead = (p) => {
    if (p !== 0 || raced) return;
    raced = true; // the leader shrinks the ISR right after our read
    meta.parts.set(0, { value: partition({ isr: [1, 2] }), revision: 13 });
  };
  const r = await c.deleteTopic("t");
  assert.equal(r, { name: "t", partitions: 2 });
  assert.ok(raced);
  assert.is(meta.parts.has(0), false, "deleted after re-reading the changed state");
  assert.is(meta.parts.get(1)?.value.topicId, "id-new", "the re-created topic's state is kept");
  assert.is(meta.topic, null);
});

/** `p`, or "stuck" when it has not settled within `ms` (a liveness bound far above the expected 1 s). */
function within<T>(p: Promise<T>, ms: number): Promise<T | "stuck"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([p, new Promise<"stuck">((r) => (timer = setTimeout(() => r("stuck"), ms)))]).finally(() => clearTimeout(timer));
}

test("a stalled broker listing holds neither the lease nor CreateTopic: the last known brokers stand, one listing at a time", async () => {
  const meta = new FakeMetadata();
  const c = controller(meta);
  await c.tick();
  assert.ok(c.active);
  assert.equal(c.status().aliveBrokers, [1, 2, 3]);
  meta.listingStalls = true;
  try {
    // Renewal due: the tick must renew the lease although the listing never finishes (it did
    // not: the lease expired behind it and CreateTopic saw NOT_CONTROLLER for 15 s).
    c.lastRenewAt = Date.now() - TTL_MS / 2;
    const leaseBefore = meta.lease!.revision;
    assert.is.not(await within(c.tick(), 10_000), "stuck", "the tick waited for the stalled listing");
    assert.ok(c.active);
    assert.ok(meta.lease!.revision > leaseBefore, "lease renewed");
    assert.equal(c.status().aliveBrokers, [1, 2, 3], "a stalled listing is not 'every broker is gone'");
    const absurd = (await c.createTopic({ name: "fuzz", partitions: 2_147_483_647, replicationFactor: 1, configs: {} }).catch((x) => x)) as SkeinError;
    assert.is(absurd.code, ErrorCode.INVALID_PARTITIONS);
    const created = await within(c.createTopic({ name: "x", partitions: 2, replicationFactor: 3, configs: {} }), 10_000);
    assert.is.not(created, "stuck", "CreateTopic waited for the stalled listing");
    assert.is((created as { assignment: number[][] }).assignment.length, 2);
    assert.is(meta.listings, 2, "the stalled listing is shared, not started again by each caller");
    // A controller that never completed a listing does not guess "no brokers", and does not
    // answer a TIMEOUT clients would not retry: it waits for its first listing.
    const fresh = controller(meta, 2);
    fresh.active = true;
    fresh.lastRenewAt = Date.now();
    fresh.leaseRevision = meta.lease!.revision;
    meta.lease = { value: { broker: 2, since: Date.now() }, revision: meta.lease!.revision };
    const pending = fresh.createTopic({ name: "y", partitions: 1, replicationFactor: 1, configs: {} });
    assert.is(await within(pending.then(() => "answered"), 1_500), "stuck", "answered before any broker was known");
    meta.releaseListings();
    const late = (await within(pending, 10_000)) as { assignment: number[][] };
    assert.is(late.assignment.length, 1, "created once the first listing came in");
  } finally {
    meta.releaseListings();
  }
});

test("a listing stalled past abandonMs is given up: the next caller starts another, and the stalled one's late value does not overwrite a newer one", async () => {
  const pending: Array<(v: number[]) => void> = [];
  let calls = 0;
  const answers: Array<number[] | null> = [[2], null, [1, 2, 3]]; // null: stalls until released
  const listing = new LatestListing<number[]>(() => {
    const answer = answers[calls++];
    return answer ? Promise.resolve(answer) : new Promise<number[]>((resolve) => pending.push(resolve));
  }, 10, 100);
  // The listing's timers are unref'd (they never keep a broker alive); this test's process needs one that is.
  const keepAlive = setInterval(() => {}, 1_000);
  try {
    assert.equal(await listing.get(), { value: [2], fresh: true });
    assert.equal(await listing.get(), { value: [2], fresh: false }, "stalled: the last known value");
    assert.equal(await listing.get(), { value: [2], fresh: false }, "still the one stalled listing");
    assert.is(calls, 2, "shared while it is young");
    await new Promise((r) => setTimeout(r, 120));
    assert.equal(await listing.get(), { value: [1, 2, 3], fresh: true }, "given up: a new listing answered");
    assert.is(calls, 3);
    pending[0]([2]); // the stalled listing finishes at last
    await new Promise((r) => setImmediate(r));
    answers.push(null); // the next listing stalls too: the last known value is what is left
    assert.equal(await listing.get(), { value: [1, 2, 3], fresh: false }, "the late, older value was dropped");
  } finally {
    for (const release of pending) release([]);
    clearInterval(keepAlive);
  }
});

test.run();
