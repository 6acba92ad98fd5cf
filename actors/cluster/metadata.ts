// Cluster metadata in JetStream KV (see protocol/cluster.ts for the keys). Every write and
// delete of a topic record or partition state is compare-and-set on the KV revision; the KV
// stream is the metadata log. The live bucket's broker keys are the exception: each is
// written only by its own broker (see heartbeat).

import type { NatsConnection } from "@nats-io/transport-node";
import { Kvm, type KV, type KvEntry } from "@nats-io/kv";
import { ErrorCode, SkeinError } from "../../protocol/errors.js";
import {
  BrokerRegistration,
  CONTROLLER_KEY,
  PRODUCER_ID_KEY,
  ControllerLease,
  PartitionState,
  TopicRecord,
  brokerKey,
  liveBucket,
  metaBucket,
  partitionKey,
  topicKey,
} from "../../protocol/cluster.js";
import type { z } from "zod";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface Versioned<T> {
  value: T;
  revision: number;
}

export interface MetadataOptions {
  /** Lifetime of controller leases and broker heartbeats in the live bucket, ms. Default 3000. */
  liveTtlMs?: number;
}

export class MetadataStore {
  private constructor(
    readonly meta: KV,
    readonly live: KV,
    readonly liveTtlMs: number,
    readonly cluster: string,
  ) {}

  static async open(nc: NatsConnection, cluster: string, options: MetadataOptions = {}): Promise<MetadataStore> {
    const kvm = new Kvm(nc);
    const liveTtlMs = options.liveTtlMs ?? 3_000;
    return whileJetStreamStarts(cluster, async () => {
      const meta = await openOrCreate(kvm, metaBucket(cluster), { history: 5 });
      const live = await openOrCreate(kvm, liveBucket(cluster), { history: 1, ttl: liveTtlMs });
      return new MetadataStore(meta, live, liveTtlMs, cluster);
    });
  }

  // Topics -----------------------------------------------------------------------------------

  async getTopic(name: string): Promise<TopicRecord | null> {
    return (await this.getTopicVersioned(name))?.value ?? null;
  }

  async getTopicVersioned(name: string): Promise<Versioned<TopicRecord> | null> {
    return getJson(this.meta, topicKey(name), TopicRecord);
  }

  async listTopics(): Promise<TopicRecord[]> {
    const out: TopicRecord[] = [];
    for (const key of await listKeys(this.meta, "topic.>")) {
      const t = await getJson(this.meta, key, TopicRecord);
      if (t) out.push(t.value);
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Fails with TOPIC_ALREADY_EXISTS when the key exists. */
  async createTopic(record: TopicRecord): Promise<void> {
    try {
      await this.meta.create(topicKey(record.name), encoder.encode(JSON.stringify(record)));
    } catch (e) {
      if (await this.getTopic(record.name)) {
        throw new SkeinError(ErrorCode.TOPIC_ALREADY_EXISTS, `topic ${record.name} already exists`, { topic: record.name });
      }
      throw e;
    }
  }

  /**
   * Deletes a topic record by compare-and-set on `revision`; false when it changed meanwhile
   * (deleted, or re-created by another controller: never delete a successor's record).
   */
  async deleteTopicRecord(name: string, revision: number): Promise<boolean> {
    return casDelete(this.meta, topicKey(name), revision);
  }

  /** Replaces a topic record by compare-and-set; false when it changed meanwhile. */
  async updateTopic(record: TopicRecord): Promise<boolean> {
    const e = await this.meta.get(topicKey(record.name));
    if (!e || e.operation !== "PUT") return false;
    try {
      await this.meta.update(topicKey(record.name), encoder.encode(JSON.stringify(record)), e.revision);
      return true;
    } catch (err) {
      if (isWrongRevision(err)) return false;
      throw err;
    }
  }

  /** Allocates the next producer id (CAS loop on a counter key). */
  async nextProducerId(): Promise<number> {
    for (let attempt = 0; attempt < 100; attempt++) {
      const e = await this.meta.get(PRODUCER_ID_KEY);
      const current = e && e.operation === "PUT" ? Number(decoder.decode(e.value)) : -1;
      const next = current + 1;
      try {
        if (e && e.operation === "PUT") await this.meta.update(PRODUCER_ID_KEY, encoder.encode(String(next)), e.revision);
        else await this.meta.create(PRODUCER_ID_KEY, encoder.encode(String(next)));
        return next;
      } catch (err) {
        if (!isWrongRevision(err)) throw err;
      }
    }
    throw new SkeinError(ErrorCode.TIMEOUT, "could not allocate a producer id: too much contention");
  }

  // Partition states -------------------------------------------------------------------------

  async getPartition(topic: string, partition: number): Promise<Versioned<PartitionState> | null> {
    return getJson(this.meta, partitionKey(topic, partition), PartitionState);
  }

  async listPartitions(topic?: string): Promise<Versioned<PartitionState>[]> {
    const filter = topic === undefined ? "partition.>" : `${partitionKey(topic, 0).replace(/\.0$/, "")}.*`;
    const out: Versioned<PartitionState>[] = [];
    for (const key of await listKeys(this.meta, filter)) {
      const p = await getJson(this.meta, key, PartitionState);
      if (p) out.push(p);
    }
    return out.sort((a, b) => a.value.topic.localeCompare(b.value.topic) || a.value.partition - b.value.partition);
  }

  async createPartition(state: PartitionState): Promise<number> {
    return this.meta.create(partitionKey(state.topic, state.partition), encoder.encode(JSON.stringify(state)));
  }

  /** Compare-and-set; returns the new revision, or null when someone else wrote first. */
  async casPartition(state: PartitionState, revision: number): Promise<number | null> {
    try {
      return await this.meta.update(partitionKey(state.topic, state.partition), encoder.encode(JSON.stringify(state)), revision);
    } catch (e) {
      if (isWrongRevision(e)) return null;
      throw e;
    }
  }

  /** Deletes a partition state by compare-and-set on `revision`; false when it changed meanwhile. */
  async deletePartition(topic: string, partition: number, revision: number): Promise<boolean> {
    return casDelete(this.meta, partitionKey(topic, partition), revision);
  }

  /** Calls `onChange` for every current partition state, then for every change (null = deleted). */
  async watchPartitions(onChange: (key: string, state: PartitionState | null, revision: number) => void): Promise<() => void> {
    const iter = await whileJetStreamStarts(this.cluster, () => this.meta.watch({ key: "partition.>" }));
    void (async () => {
      for await (const e of iter) {
        if (e.operation !== "PUT") {
          onChange(e.key, null, e.revision);
          continue;
        }
        const parsed = PartitionState.safeParse(parseJson(e.value));
        if (parsed.success) onChange(e.key, parsed.data, e.revision);
      }
    })();
    return () => iter.stop();
  }

  /** Calls `onChange` for every topic record, then for every change to one (deletions are not reported). */
  async watchTopics(onChange: (record: TopicRecord, revision: number) => void): Promise<() => void> {
    const iter = await whileJetStreamStarts(this.cluster, () => this.meta.watch({ key: "topic.>" }));
    void (async () => {
      for await (const e of iter) {
        if (e.operation !== "PUT") continue;
        const parsed = TopicRecord.safeParse(parseJson(e.value));
        if (parsed.success) onChange(parsed.data, e.revision);
      }
    })();
    return () => iter.stop();
  }

  // Liveness ---------------------------------------------------------------------------------

  /**
   * A plain put, not compare-and-set: `broker.<B>` is written only by broker B itself (its
   * heartbeat and its removal on shutdown), so there is no other writer to race with, and a
   * restarted broker must be able to overwrite what its previous process left before the TTL.
   */
  async heartbeat(reg: BrokerRegistration): Promise<void> {
    await this.live.put(brokerKey(reg.broker), encoder.encode(JSON.stringify(reg)));
  }

  /** Plain delete, for the same reason as heartbeat: only broker B touches `broker.<B>`. */
  async removeBroker(broker: number): Promise<void> {
    await this.live.delete(brokerKey(broker));
  }

  async getBroker(broker: number): Promise<Versioned<BrokerRegistration> | null> {
    return getJson(this.live, brokerKey(broker), BrokerRegistration);
  }

  async listBrokers(): Promise<Versioned<BrokerRegistration>[]> {
    const out: Versioned<BrokerRegistration>[] = [];
    for (const key of await listKeys(this.live, "broker.*")) {
      const b = await getJson(this.live, key, BrokerRegistration);
      if (b) out.push(b);
    }
    return out.sort((a, b) => a.value.broker - b.value.broker);
  }

  async getLease(): Promise<Versioned<ControllerLease> | null> {
    return getJson(this.live, CONTROLLER_KEY, ControllerLease);
  }

  /** Takes the controller lease if nobody holds it; returns the revision (the controller epoch) or null. */
  async createLease(lease: ControllerLease): Promise<number | null> {
    try {
      return await this.live.create(CONTROLLER_KEY, encoder.encode(JSON.stringify(lease)));
    } catch (e) {
      if (isWrongRevision(e)) return null;
      throw e;
    }
  }

  /** Renews (or takes over) the lease at `revision`; null when it moved. */
  async updateLease(lease: ControllerLease, revision: number): Promise<number | null> {
    try {
      return await this.live.update(CONTROLLER_KEY, encoder.encode(JSON.stringify(lease)), revision);
    } catch (e) {
      if (isWrongRevision(e)) return null;
      throw e;
    }
  }

  async releaseLease(revision: number): Promise<void> {
    await this.live.delete(CONTROLLER_KEY, { previousSeq: revision }).catch(() => undefined);
  }
}

/** How long opening the metadata buckets retries while JetStream does not answer, ms. */
const JETSTREAM_WAIT_MS = 10_000;
/** nats.js errors (by name) of a JetStream that does not answer yet, or a bucket stream not there yet. */
const JETSTREAM_NOT_READY = new Set(["JetStreamNotEnabled", "StreamNotFoundError"]);

/**
 * Runs a JetStream call, again for a while when JetStream does not answer yet. nats.js reports a
 * JetStream API request nobody answered as "jetstream is not enabled"; a busy server just started
 * (three brokers opening buckets at once on a loaded machine) did that in chaos loops, for opening
 * the buckets and once for a broker's first watch. A server without -js still fails clearly.
 */
export async function whileJetStreamStarts<T>(cluster: string, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + JETSTREAM_WAIT_MS;
  for (let delay = 100; ; delay = Math.min(delay * 2, 1_000)) {
    try {
      return await fn();
    } catch (e) {
      if (!JETSTREAM_NOT_READY.has((e as Error)?.name)) throw e;
      if (Date.now() + delay > deadline) {
        throw new SkeinError(ErrorCode.NOT_CONNECTED, `JetStream did not answer for ${JETSTREAM_WAIT_MS / 1000} s: is the NATS server running with JetStream (nats-server -js)? (${(e as Error).message})`, { cluster }, { cause: e });
      }
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

async function openOrCreate(kvm: Kvm, name: string, opts: { history: number; ttl?: number }): Promise<KV> {
  try {
    return await kvm.create(name, opts);
  } catch (e) {
    if ((e as Error)?.name === "JetStreamNotEnabled") throw e;
    // nats.js binds to an existing bucket without looking: look, so a missing stream fails here
    // (and is retried) rather than as "jetstream is not enabled" at the first put.
    const kv = await kvm.open(name);
    await kv.status();
    return kv;
  }
}

/**
 * A listing that may stall, read by callers that must not wait for it long. nats.js lists KV
 * keys through a consumer that stalled for up to 19 s on the TTL'd live bucket under load;
 * awaited in full, that held the controller's mailbox (its lease expired) and left gateway
 * Metadata requests unanswered. One listing runs at a time, shared by every caller, so stalled
 * consumers do not pile up. Once a listing has completed, a caller waits at most `waitMs` and
 * then gets the last completed one (`fresh: false`); before that it waits for the first.
 *
 * A listing still running after `abandonMs` is given up on and the next caller starts another
 * (the stalled one may still finish; a value older than the newest one completed is dropped):
 * a listing stalled for 16 s kept a controller's view of live brokers at the one broker it saw
 * first, refusing topics with replication factor 3 although all three were registered.
 */
export class LatestListing<T> {
  private inFlight: Promise<T> | null = null;
  private inFlightSince = 0;
  private last: { value: T; id: number } | null = null;
  private started = 0;

  constructor(
    private readonly list: () => Promise<T>,
    private readonly waitMs: number,
    private readonly abandonMs = Math.max(3_000, waitMs * 4),
  ) {}

  async get(): Promise<{ value: T; fresh: boolean }> {
    for (;;) {
      const listing = this.current();
      const last = this.last;
      // Nothing completed yet: wait for this listing, but not past the point of giving it up.
      const value = await within(listing, last ? this.waitMs : this.abandonMs);
      if (value !== STALLED) return { value, fresh: true };
      listing.catch(() => undefined); // settles later; its failure is the next caller's to see
      if (last) return { value: last.value, fresh: false };
    }
  }

  /** The listing in flight, or a new one (none in flight, or the one in flight given up on). */
  private current(): Promise<T> {
    if (this.inFlight && Date.now() - this.inFlightSince < this.abandonMs) return this.inFlight;
    const id = ++this.started;
    this.inFlightSince = Date.now();
    const started: Promise<T> = this.list().then((value) => {
      if (!this.last || this.last.id < id) this.last = { value, id };
      return value;
    });
    this.inFlight = started;
    const done = () => {
      if (this.inFlight === started) this.inFlight = null;
    };
    started.then(done, done);
    return started;
  }
}

const STALLED = Symbol("stalled");

/** The promise's value, or STALLED after `ms`. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | typeof STALLED> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stalled = new Promise<typeof STALLED>((resolve) => {
    timer = setTimeout(() => resolve(STALLED), ms);
    timer.unref();
  });
  return Promise.race([p, stalled]).finally(() => clearTimeout(timer));
}

/** How long one listing of a bucket's keys may take before it is abandoned and tried again, ms. */
const LIST_KEYS_TIMEOUT_MS = 5_000;
const LIST_KEYS_TRIES = 3;

async function listKeys(kv: KV, filter: string): Promise<string[]> {
  // nats.js lists keys with a consumer over the bucket's stream: a key written while the listing
  // runs can come twice (a chaos run's final read listed a partition twice), so keep each once.
  // A listing can also never end: on the live bucket, whose entries expire, the consumer can
  // count a message pending that has expired before it is delivered (nats-server 2.9, cf.
  // nats-server#3481); a `skein chaos kill-broker` hung 45 s there in CI. So each try is bounded.
  for (let attempt = 1; ; attempt++) {
    const keys = new Set<string>();
    const iter = await kv.keys(filter);
    let abandoned = false;
    const timer = setTimeout(() => {
      abandoned = true;
      iter.stop();
    }, LIST_KEYS_TIMEOUT_MS);
    try {
      for await (const k of iter) keys.add(k);
    } finally {
      clearTimeout(timer);
    }
    if (!abandoned) return [...keys];
    if (attempt === LIST_KEYS_TRIES) {
      throw new SkeinError(ErrorCode.TIMEOUT, `listing the keys ${filter} of a metadata bucket did not finish in ${LIST_KEYS_TRIES} tries of ${LIST_KEYS_TIMEOUT_MS / 1000} s`, { field: filter, retriable: true });
    }
  }
}

async function getJson<T>(kv: KV, key: string, schema: z.ZodType<T>): Promise<Versioned<T> | null> {
  const e: KvEntry | null = await kv.get(key);
  if (!e || e.operation !== "PUT") return null;
  const parsed = schema.safeParse(parseJson(e.value));
  if (!parsed.success) {
    throw new SkeinError(ErrorCode.CORRUPT_MESSAGE, `metadata key ${key} holds an invalid value: ${parsed.error.issues[0]?.message}`, { field: key });
  }
  return { value: parsed.data, revision: e.revision };
}

function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(decoder.decode(bytes));
  } catch {
    return undefined;
  }
}

async function casDelete(kv: KV, key: string, revision: number): Promise<boolean> {
  try {
    await kv.delete(key, { previousSeq: revision });
    return true;
  } catch (e) {
    if (isWrongRevision(e)) return false;
    throw e;
  }
}

function isWrongRevision(e: unknown): boolean {
  const msg = String((e as Error)?.message ?? e);
  return /wrong last sequence|key exists|10071/i.test(msg) || (e as { code?: number })?.code === 10071;
}
