// The demo `skein up --demo` (and `npm start`) runs on the fresh cluster: a topic, an
// idempotent acks=all producer and a consumer, printing throughput every second.
import { Skein } from "../actors/client/skein.js";
import type { NatsOptions } from "../runtime/types.js";

export interface DemoOptions {
  /** How to reach NATS: the cluster's URL with the same credentials and TLS as its brokers. */
  nats: NatsOptions;
  cluster: string;
  brokers: number;
  seconds: number;
  recordBytes?: number;
}

export async function runDemo(o: DemoOptions): Promise<{ produced: number; consumed: number; seconds: number }> {
  const skein = new Skein({ clientId: "demo", nats: o.nats, cluster: o.cluster });
  const admin = skein.admin();
  await admin.connect();
  const rf = Math.min(3, o.brokers);
  await admin.createTopics({ topics: [{ topic: "demo", numPartitions: 3, replicationFactor: rf }] });
  console.log(`demo: topic "demo" with 3 partitions, replication factor ${rf}; producing 100-byte records with acks=all for ${o.seconds} s`);
  const producer = skein.producer({ acks: "all", lingerMs: 5 });
  const consumer = skein.consumer();
  await producer.connect();
  await consumer.connect();
  await consumer.subscribe({ topics: ["demo"], fromBeginning: true });
  let produced = 0;
  let consumed = 0;
  let lastOffsetSeen = "";
  await consumer.run({
    eachBatch: async ({ batch }) => {
      consumed += batch.messages.length;
      lastOffsetSeen = `${batch.partition}:${batch.messages[batch.messages.length - 1]?.offset}`;
    },
  });
  const value = new Uint8Array(o.recordBytes ?? 100).fill(100);
  const started = Date.now();
  const deadline = started + o.seconds * 1000;
  let lastProduced = 0;
  let lastConsumed = 0;
  const ticker = setInterval(() => {
    console.log(`demo: ${produced - lastProduced} records/s produced, ${consumed - lastConsumed} records/s consumed (total ${produced} / ${consumed}, last ${lastOffsetSeen})`);
    lastProduced = produced;
    lastConsumed = consumed;
  }, 1000);
  const loops = Array.from({ length: 4 }, async () => {
    while (Date.now() < deadline) {
      const messages = Array.from({ length: 500 }, (_, i) => ({ key: null, value, headers: { n: String(i) } }));
      await producer.send({ topic: "demo", messages });
      produced += messages.length;
    }
  });
  await Promise.all(loops);
  const until = Date.now() + 10_000;
  while (consumed < produced && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  clearInterval(ticker);
  const seconds = (Date.now() - started) / 1000;
  console.log(`demo: done — ${produced} records produced and acknowledged by all replicas, ${consumed} consumed, in ${seconds.toFixed(1)} s`);
  await consumer.disconnect();
  await producer.disconnect();
  await admin.disconnect();
  return { produced, consumed, seconds };
}
