// The follower side of replication fetch sessions. One fetcher runs on every worker of a
// broker and fetches for the follower replicas on that worker: one session per leader worker
// (the fetch server there, see fetch-server.ts), one FetchMany in flight per session, so
// thousands of follower partitions cost a handful of requests instead of one long poll each.
//
// A follower replica sends Follow when it starts following a leader epoch (after any
// truncation) and Unfollow when it stops. Data is handed to the replica with an in-thread ask
// (FollowerData), which appends it and answers its new log end offset, the session's next
// fetch offset for that partition. An error goes to the replica too, which takes the partition
// out and follows again once it knows more (a new leader, a restarted log).

import { randomUUID } from "node:crypto";
import { z } from "zod";
import { defineActor, type ActorContext } from "../../runtime/actor.js";
import { placementOf } from "../../protocol/placement.js";
import { ErrorCode } from "../../protocol/errors.js";
import { FetcherMessages, fetchServerAddress, replicaAddress, type FetchManyResult, type SessionPartition } from "../../protocol/cluster.js";
import { asFetchError } from "./fetch-server.js";
import { BrokerWorkerCounts, metadataFor } from "./shared.js";
import type { MetadataStore } from "./metadata.js";

export const FetcherArgs = z.object({
  broker: z.number().int().min(0),
  /** This fetcher's worker and the node's worker count (its session name). */
  worker: z.number().int().min(0),
  /** Long-poll wait of a session's FetchMany, ms: how often an idle session asks. */
  fetchWaitMs: z.number().int().min(1).max(60_000).default(10_000),
  /** Bytes per FetchMany answer (several partitions' batches). */
  fetchMaxBytes: z.number().int().min(1024).default(4 * 1024 * 1024),
});
type Args = z.infer<typeof FetcherArgs>;
type Ctx = ActorContext<Args>;

const RETRY_MS = 200;
/** A burst of Follows is sent as one newer FetchMany this long after the first, ms. */
const SUPERSEDE_MS = 20;
/** On top of the long poll before a FetchMany counts as lost (the server checks its deadlines every second). */
const MARGIN_MS = 3_000;

interface Followed extends SessionPartition {
  leader: number;
  replica: string;
}

interface Session {
  key: string;
  leader: number;
  leaderWorker: number;
  /** The leader broker's worker count when the session was made (its server's address depends on it). */
  leaderWorkers: number;
  partitions: Map<string, Followed>;
  /** Sequence number of the newest FetchMany sent; its answer frees the session. */
  seq: number;
  inFlight: boolean;
  retryScheduled: boolean;
  supersedeScheduled: boolean;
  /** The next FetchMany sends the whole list (new session, or after a failed request). */
  full: boolean;
  /** Since the last FetchMany: partitions added or moved on, and partitions that left. */
  changed: Set<string>;
  removed: Set<string>;
}

const partKey = (topic: string, partition: number) => `${topic}/${partition}`;

export class FetcherState {
  readonly sessions = new Map<string, Session>();
  /** Which session each followed partition is in. */
  readonly sessionOf = new Map<string, Session>();
  /** Worker counts of leader brokers (from their registrations), to find where a leader replica lives. */
  readonly workersOf: BrokerWorkerCounts;
  /**
   * This fetcher instance and its request numbers (one sequence for all its sessions): the
   * session name stays the same across a restart, the instance does not, so a server tells a
   * restarted fetcher from a copy of a request it already served.
   */
  private readonly instance = randomUUID();
  private requestSeq = 0;

  constructor(
    readonly args: Args,
    readonly meta: MetadataStore,
    readonly sessionName: string,
  ) {
    this.workersOf = new BrokerWorkerCounts(meta);
  }

  async follow(m: z.infer<typeof FetcherMessages.Follow>, ctx: Ctx): Promise<void> {
    const key = partKey(m.topic, m.partition);
    this.remove(key);
    const workers = await this.workersOf.of(m.leader);
    if (workers === null) {
      // Leader not registered (just died?): the replica retries when its fetch fails.
      void ctx.tell(m.replica, "FollowerData", { leaderEpoch: m.leaderEpoch, fromOffset: m.fetchOffset, error: { code: ErrorCode.LEADER_NOT_AVAILABLE, message: `broker ${m.leader} is not registered` } });
      return;
    }
    const leaderWorker = placementOf(replicaAddress(m.topic, m.partition, m.leader), workers);
    const sKey = `${m.leader}/${leaderWorker}/${workers}`;
    let s = this.sessions.get(sKey);
    if (!s) {
      s = { key: sKey, leader: m.leader, leaderWorker, leaderWorkers: workers, partitions: new Map(), seq: 0, inFlight: false, retryScheduled: false, supersedeScheduled: false, full: true, changed: new Set(), removed: new Set() };
      this.sessions.set(sKey, s);
    }
    s.partitions.set(key, { topic: m.topic, partition: m.partition, fetchOffset: m.fetchOffset, leaderEpoch: m.leaderEpoch, leader: m.leader, replica: m.replica });
    this.sessionOf.set(key, s);
    s.changed.add(key);
    s.removed.delete(key);
    this.wake(s, ctx);
  }

  /**
   * A partition joined the session: fetch for it soon. With no request in flight that is now;
   * otherwise a parked FetchMany would hold it back for up to the long-poll wait, so a newer
   * one goes out after SUPERSEDE_MS (the server answers the parked one at once, empty), once
   * for a whole burst of Follows (thousands arrive together when a topic is created).
   */
  private wake(s: Session, ctx: Ctx): void {
    if (!s.inFlight) return this.send(s, ctx);
    if (s.supersedeScheduled) return;
    s.supersedeScheduled = true;
    ctx.schedule(SUPERSEDE_MS, "Retry", { session: s.key });
  }

  unfollow(m: z.infer<typeof FetcherMessages.Unfollow>): void {
    this.remove(partKey(m.topic, m.partition));
  }

  private remove(key: string): void {
    const s = this.sessionOf.get(key);
    if (!s) return;
    s.partitions.delete(key);
    this.sessionOf.delete(key);
    s.changed.delete(key);
    s.removed.add(key);
  }

  private send(s: Session, ctx: Ctx): void {
    if (s.partitions.size === 0 && s.removed.size === 0) return; // idle: the server drops the session in time
    const seq = (s.seq = ++this.requestSeq);
    s.inFlight = true;
    const partitions: SessionPartition[] = [];
    const removed: Array<{ topic: string; partition: number }> = [];
    const add = (f: Followed) => partitions.push({ topic: f.topic, partition: f.partition, fetchOffset: f.fetchOffset, leaderEpoch: f.leaderEpoch });
    if (s.full) {
      for (const f of s.partitions.values()) add(f);
    } else {
      for (const key of s.changed) {
        const f = s.partitions.get(key);
        if (f) add(f);
      }
      for (const key of s.removed) {
        const at = key.lastIndexOf("/");
        removed.push({ topic: key.slice(0, at), partition: Number(key.slice(at + 1)) });
      }
    }
    const full = s.full;
    s.full = false;
    s.changed.clear();
    s.removed.clear();
    const body = { session: this.sessionName, instance: this.instance, seq, replicaId: this.args.broker, maxWaitMs: this.args.fetchWaitMs, maxBytes: this.args.fetchMaxBytes, full, partitions, removed };
    let server: string;
    try {
      server = fetchServerAddress(s.leader, s.leaderWorker, s.leaderWorkers);
    } catch (e) {
      void ctx.tell(ctx.self, "SessionAnswered", { session: s.key, seq, error: asFetchError(e) });
      return;
    }
    ctx
      .ask<FetchManyResult>(server, "FetchMany", body, { timeoutMs: this.args.fetchWaitMs + MARGIN_MS })
      .then(
        (r) => ctx.tell(ctx.self, "SessionAnswered", { session: s.key, seq, results: r.results, data: r.data }),
        (e) => ctx.tell(ctx.self, "SessionAnswered", { session: s.key, seq, error: asFetchError(e) }),
      );
  }

  async answered(m: z.infer<typeof FetcherMessages.SessionAnswered>, ctx: Ctx): Promise<void> {
    const s = this.sessions.get(m.session);
    if (!s) return;
    const latest = m.seq === s.seq;
    if (m.error) {
      if (!latest) return;
      s.inFlight = false;
      s.full = true; // the server may or may not have applied the failed request: resend everything
      // The leader broker may have restarted with another worker count, or be gone: the next
      // Follow for it reads its registration again (this session keeps its own count).
      if (m.error.code === ErrorCode.ACTOR_NOT_FOUND) this.workersOf.forget(s.leader);
      if (!s.retryScheduled) {
        s.retryScheduled = true;
        ctx.schedule(RETRY_MS, "Retry", { session: s.key });
      }
      return;
    }
    const deliveries: Array<Promise<void>> = [];
    for (const r of m.results) {
      const key = partKey(r.topic, r.partition);
      const f = s.partitions.get(key);
      if (!f || f.fetchOffset !== r.fetchOffset) continue; // unfollowed, or an older answer
      const data = r.error || !m.data ? undefined : m.data.subarray(r.start, r.start + r.length);
      const epoch = f.leaderEpoch;
      deliveries.push(
        ctx
          .ask<{ logEndOffset: number; follow: boolean }>(f.replica, "FollowerData", { leaderEpoch: epoch, fromOffset: r.fetchOffset, data, highWatermark: r.highWatermark, error: r.error }, { timeoutMs: 30_000 })
          .then(
            (a) => {
              const now = s.partitions.get(key);
              if (now !== f || f.leaderEpoch !== epoch) return; // followed again meanwhile
              if (a.follow) {
                f.fetchOffset = a.logEndOffset;
                s.changed.add(key); // the server fetches again from here (even if unchanged)
              } else this.remove(key);
            },
            () => {
              if (s.partitions.get(key) === f) this.remove(key); // replica gone: it follows again when it is back
            },
          ),
      );
    }
    await Promise.all(deliveries);
    if (latest) {
      s.inFlight = false;
      this.send(s, ctx);
    } else if (s.changed.size > 0) {
      // An older request's answer moved partitions on; the newer one, maybe parked, does not
      // know: tell the server soon rather than after the newer one's long poll.
      this.wake(s, ctx);
    }
  }

  /** After a failed request (retryScheduled), or to supersede a parked one (supersedeScheduled). */
  retry(session: string, ctx: Ctx): void {
    const s = this.sessions.get(session);
    if (!s) return;
    const supersede = s.supersedeScheduled && s.inFlight;
    s.retryScheduled = false;
    s.supersedeScheduled = false;
    if (!s.inFlight || supersede) this.send(s, ctx);
  }
}

async function guarded(what: string, work: () => unknown): Promise<void> {
  try {
    await work();
  } catch (e) {
    console.warn(`skein fetcher: ${what} failed: ${(e as Error)?.stack ?? e}`);
  }
}

export const FetcherActor = defineActor({
  kind: "fetcher",
  args: FetcherArgs,
  messages: FetcherMessages,
  mailboxCapacity: 100_000,
  async init(ctx) {
    const meta = await metadataFor(ctx.nats, ctx.cluster);
    return new FetcherState(ctx.args, meta, `${ctx.args.broker}/${ctx.args.worker}`);
  },
  // A restart would forget which replicas follow through this fetcher (they register once per
  // leader epoch), so a handler's unexpected failure is logged and the fetcher carries on.
  handlers: {
    Follow: (s, m, ctx) => guarded("Follow", () => s.follow(m, ctx)),
    Unfollow: (s, m) => guarded("Unfollow", () => s.unfollow(m)),
    SessionAnswered: (s, m, ctx) => guarded("SessionAnswered", () => s.answered(m, ctx)),
    Retry: (s, m, ctx) => guarded("Retry", () => s.retry(m.session, ctx)),
  },
});
