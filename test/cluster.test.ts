// A real 3-broker cluster (separate OS processes, a private nats-server): idempotent acks=all
// production while killing the leader's worker, SIGKILLing the leader's broker and killing the
// controller's worker and broker. Every acknowledged record must be readable at its offset
// exactly once (no duplicates: retries resend the same producer sequence), and all replicas'
// logs must be identical up to the high watermark.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { join } from "node:path";
import { startLocalCluster, type LocalCluster } from "../bin/broker-cmd.js";
import { ClusterClient } from "../actors/cluster/admin.js";
import { PartitionLog } from "../actors/log/log.js";
import { partitionDir } from "../actors/cluster/replica.js";
import { encodeBatch, iterateBatches, decodeRecords } from "../protocol/record-batch.js";
import { ErrorCode, isSkeinError, type SkeinError } from "../protocol/errors.js";
import { replicaAddress } from "../protocol/cluster.js";
import { tempDir, waitFor, surfaced } from "./helpers.js";

const TOPIC = "orders";
let cluster: LocalCluster;
let client: ClusterClient;
const data = tempDir("skein-cluster-");
const enc = new TextEncoder();
const dec = new TextDecoder();
/** value → offset, for every acknowledged record */
const acked = new Map<string, number>();
let producing = true;
let producer: Promise<void>;

/**
 * An idempotent writer, as the library's producer is: its own producer id, one request in
 * flight, and a failed request is retried with the same sequence until acknowledged, so
 * the leader (old or new) answers a retry of a batch it already has with the original offset.
 */
class IdempotentWriter {
  private sequence = 0;
  constructor(
    private readonly producerId: number,
    private readonly prefix: string,
  ) {}

  /** Writes the next record; resolves with ms from `since` to its ack, or null when `keepGoing` turned false first. */
  async write(options: { requestTimeoutMs: number; timeoutMs: number }, since: number, keepGoing: () => boolean, giveUpMs = Infinity): Promise<number | null> {
    const value = `${this.prefix}${this.sequence}`;
    const batch = encodeBatch([{ value: enc.encode(value) }], { producerId: this.producerId, producerEpoch: 0, baseSequence: this.sequence });
    for (;;) {
      try {
        const r = await client.produce(TOPIC, 0, batch, { acks: -1, ...options });
        acked.set(value, r.baseOffset);
        this.sequence++;
        return Date.now() - since;
      } catch (e) {
        if (!isSkeinError(e)) throw e;
        if (!keepGoing()) return null;
        if (Date.now() - since > giveUpMs) throw new Error(`no acks=all write succeeded within ${giveUpMs} ms: ${e.message}`);
        await new Promise((r) => setTimeout(r, 10)); // errors that come back at once must not spin
      }
    }
  }
}
let background: IdempotentWriter;
let probes: IdempotentWriter;

test.before(surfaced(async () => {
  cluster = await startLocalCluster({ brokers: 3, workers: 2, cluster: "ct", data: data.path });
  client = await ClusterClient.connect({ nats: { servers: cluster.natsUrl }, cluster: "ct" });
  await waitFor(async () => (await client.status()).controller?.epoch ?? -1 >= 0, 15_000, "an active controller");
  background = new IdempotentWriter((await client.initProducerId()).producerId, "v");
  probes = new IdempotentWriter((await client.initProducerId()).producerId, "probe");
}));

test.after(async () => {
  producing = false;
  await producer?.catch(() => undefined);
  await client?.close();
  await cluster?.stop();
  data.remove();
});

async function produceLoop(): Promise<void> {
  while (producing) await background.write({ timeoutMs: 20_000, requestTimeoutMs: 1_000 }, Date.now(), () => producing);
}

/**
 * Probes with short acks=all produces (300 ms per attempt, so a request stuck on a dead
 * leader does not hide the cluster's failover time) until one is acknowledged; returns ms
 * from `since` to that ack. The background producer keeps running meanwhile.
 */
async function nextAckAfter(since: number, timeoutMs = 20_000): Promise<number> {
  return (await probes.write({ timeoutMs: 300, requestTimeoutMs: 300 }, since, () => true, timeoutMs))!;
}

async function leaderOf(topic: string, partition = 0): Promise<number> {
  const states = await client.waitForLeaders(topic);
  return states.find((s) => s.partition === partition)!.leader;
}

test("topic validation gives typed errors", async () => {
  const expectCode = async (p: Promise<unknown>, code: string) => {
    const e = (await p.then(() => null, (x) => x)) as SkeinError | null;
    assert.ok(e && isSkeinError(e), `expected ${code}`);
    assert.is(e!.code, code, e!.message);
  };
  await expectCode(client.createTopic("bad name!", 1, 1), ErrorCode.INVALID_TOPIC);
  await expectCode(client.createTopic("t-rf", 1, 4), ErrorCode.INVALID_REPLICATION_FACTOR);
  await expectCode(client.createTopic("t-parts", 0, 1), ErrorCode.INVALID_PARTITIONS);
  await expectCode(client.createTopic("t-cfg", 1, 1, { "retention.ms": "soon" }), ErrorCode.INVALID_CONFIG);
  await client.createTopic(TOPIC, 1, 3, { "min.insync.replicas": "2" });
  await expectCode(client.createTopic(TOPIC, 1, 3), ErrorCode.TOPIC_ALREADY_EXISTS);
});

test("followers refuse client requests, naming the leader", async () => {
  const leader = await leaderOf(TOPIC);
  const follower = [1, 2, 3].find((b) => b !== leader)!;
  await waitFor(async () => (await client.describeReplica(TOPIC, 0, follower)).role === "follower", 10_000, "the follower replica to be up");
  const e = (await client.system
    .ask(replicaAddress(TOPIC, 0, follower), "Produce", { batches: encodeBatch([{ value: enc.encode("x") }]), acks: -1 })
    .catch((x) => x)) as SkeinError;
  assert.is(e.code, ErrorCode.NOT_LEADER_OR_FOLLOWER);
  assert.is(e.context.leader, leader);
  const f = (await client.system.ask(replicaAddress(TOPIC, 0, follower), "Fetch", { fromOffset: 0 }).catch((x) => x)) as SkeinError;
  assert.is(f.code, ErrorCode.NOT_LEADER_OR_FOLLOWER);
});

test("acks=all survives killing the leader's worker", async () => {
  producer = produceLoop();
  await nextAckAfter(Date.now());
  const leader = await leaderOf(TOPIC);
  const actors = await client.system.list(String(leader));
  const worker = actors.find((a) => a.address === replicaAddress(TOPIC, 0, leader))!.worker;
  const killedAt = Date.now();
  await client.system.killWorker(String(leader), worker);
  const ms = await nextAckAfter(killedAt);
  console.log(`  measured: leader worker killed -> first acks=all write acknowledged in ${ms} ms`);
  await waitFor(async () => (await client.describeTopic(TOPIC)).partitions[0].isr.length === 3, 20_000, "ISR back to 3");
});

test("acks=all survives SIGKILL of the leader's broker; min.insync is enforced meanwhile", async () => {
  await client.createTopic("strict", 1, 3, { "min.insync.replicas": "3" });
  await client.waitForLeaders("strict");
  await client.produce("strict", 0, encodeBatch([{ value: enc.encode("before") }]), { acks: -1 });
  const leader = await leaderOf(TOPIC);
  const killedAt = Date.now();
  await cluster.brokers.get(leader)!.kill();
  const ms = await nextAckAfter(killedAt);
  console.log(`  measured: leader broker SIGKILLed -> first acks=all write acknowledged in ${ms} ms`);
  const refused = await waitFor(async () => {
    const e = (await client.produce("strict", 0, encodeBatch([{ value: enc.encode("x") }]), { acks: -1, timeoutMs: 2_000 }).then(() => null, (x) => x)) as SkeinError | null;
    return e?.code === ErrorCode.NOT_ENOUGH_REPLICAS ? e : null;
  }, 20_000, "NOT_ENOUGH_REPLICAS while a broker is down");
  assert.ok(refused!.message.includes("min.insync.replicas=3"));
  await cluster.startBroker(leader);
  await waitFor(async () => (await client.describeTopic(TOPIC)).partitions[0].isr.length === 3, 30_000, "restarted broker back in the ISR");
  // Preferred-leader rebalancing: once back and in sync for a while, the first assigned
  // replica leads again.
  const preferred = (await client.describeTopic("strict")).partitions[0].replicas[0];
  await waitFor(async () => (await client.describeTopic("strict")).partitions[0].leader === preferred, 30_000, "the preferred replica leading again");
});

test("killing the controller's worker makes a controller with a higher epoch active", async () => {
  const before = (await client.status()).controller!;
  assert.ok(before.epoch >= 0);
  const actors = await client.system.list(String(before.broker));
  const worker = actors.find((a) => a.address === `controller@${before.broker}`)!.worker;
  const killedAt = Date.now();
  await client.system.killWorker(String(before.broker), worker);
  const after = await waitFor(async () => {
    const s = await client.status();
    return s.controller && s.controller.epoch > before.epoch ? s.controller : null;
  }, 20_000, "a controller with a higher epoch");
  const ms = Date.now() - killedAt;
  const ackMs = await nextAckAfter(killedAt);
  console.log(`  measured: controller worker killed -> broker ${after!.broker} active controller (epoch ${before.epoch} -> ${after!.epoch}) in ${ms} ms; first acks=all write ${ackMs} ms`);
  // The new controller acts: a topic created now gets leaders.
  await client.createTopic("after-controller-worker", 1, 3);
  await client.waitForLeaders("after-controller-worker");
});

test("killing the controller's broker elects another controller", async () => {
  const before = (await client.status()).controller!;
  const killedAt = Date.now();
  await cluster.brokers.get(before.broker)!.kill();
  const after = await waitFor(async () => {
    const s = await client.status();
    return s.controller && s.controller.broker !== before.broker && s.controller.epoch > before.epoch ? s.controller : null;
  }, 20_000, "a new controller");
  console.log(`  measured: controller broker SIGKILLed -> broker ${after!.broker} active controller (epoch ${after!.epoch}) in ${Date.now() - killedAt} ms`);
  await nextAckAfter(Date.now());
  await cluster.startBroker(before.broker);
  await waitFor(async () => (await client.describeTopic(TOPIC)).partitions[0].isr.length === 3, 30_000, "ISR back to 3");
});

test("every acknowledged record is at its offset exactly once; replicas are identical up to HW", async () => {
  producing = false;
  await producer;
  assert.ok(acked.size > 20, `only ${acked.size} records acknowledged`);
  const d = await client.describeTopic(TOPIC);
  const hw = d.partitions[0].highWatermark!;
  const byOffset = new Map<number, string>();
  for (let offset = 0; offset < hw; ) {
    const f = await client.fetch(TOPIC, 0, offset, { maxBytes: 1 << 20 });
    for (const { pos } of iterateBatches(f.data)) {
      for (const r of decodeRecords(f.data, pos)) {
        if (r.offset >= offset) byOffset.set(r.offset, dec.decode(r.value!));
      }
    }
    offset = Math.max(...byOffset.keys()) + 1;
  }
  for (const [value, offset] of acked) assert.is(byOffset.get(offset), value, `acked ${value} at ${offset}`);
  // Exactly once: every retry resent the same producer sequence, so no value is in the log twice.
  const seen = new Map<string, number[]>();
  for (const [offset, value] of byOffset) seen.set(value, [...(seen.get(value) ?? []), offset]);
  const duplicated = [...seen].filter(([, offsets]) => offsets.length > 1);
  assert.equal(duplicated, [], "values written more than once (value, offsets)");
  for (let o = 0; o < hw; o++) assert.ok(byOffset.has(o), `gap at offset ${o} below HW ${hw}`);

  await client.close();
  await cluster.stop();
  const logs: Uint8Array[] = [];
  for (const b of [1, 2, 3]) {
    const log = await PartitionLog.open(partitionDir(join(data.path, `broker-${b}`), TOPIC, 0), {}, { logger: { warn() {}, info() {} } });
    const chunks: Uint8Array[] = [];
    for (let o = 0; o < hw; ) {
      const r = await log.read(o, { maxBytes: 1 << 20, maxOffset: hw });
      if (r.data.length === 0) break;
      chunks.push(r.data);
      let last = o;
      for (const { header } of iterateBatches(r.data)) last = header.lastOffset;
      o = last + 1;
    }
    await log.close();
    logs.push(Buffer.concat(chunks));
  }
  assert.ok(logs[0].length > 0);
  assert.ok(Buffer.from(logs[0]).equals(Buffer.from(logs[1])), "broker 1 and 2 logs differ below HW");
  assert.ok(Buffer.from(logs[0]).equals(Buffer.from(logs[2])), "broker 1 and 3 logs differ below HW");
  console.log(`  ${acked.size} acknowledged records verified exactly once; HW ${hw}`);
});

test.run();
