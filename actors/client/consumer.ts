// The consumer actor (runs in a worker thread of the application). Each assigned partition
// has one fetch outstanding at its leader; the consumer buffers what comes back (bounded by
// maxBufferedBytes: fetching pauses above it) and hands whole fetched chunks to the facade on
// Poll; the facade decodes records. Positions advance when data is handed out. Leader moves
// are followed by re-reading the partition state; OFFSET_OUT_OF_RANGE (retention removed the
// position) resets per autoOffsetReset.
//
// Fetch sessions (Kafka: one FetchRequest per broker for many partitions): the partitions led
// on one worker of one broker share one long poll to that worker's fetch server
// (ConsumerFetchMany, see actors/cluster/fetch-server.ts), one request in flight per session.
// A partition is listed when its fetch starts and answered once; it is listed again (with its
// new offset) for its next fetch, so a paused or over-budget partition simply is not listed
// while the others go on. Every thread wake-up and NATS message costs far more here than the
// bytes in it, so N partitions on one leader worker cost one request, not N. Without the
// leader broker's worker count (no live registration) a partition uses its own Fetch as before.

import { defineActor, type ActorContext, type ReplyHandle } from "../../runtime/actor.js";
import { ErrorCode, SkeinError, isSkeinError } from "../../protocol/errors.js";
import { fetchServerAddress, replicaAddress, type FetchError, type FetchManyResult, type FetchResult, type SessionPartition } from "../../protocol/cluster.js";
import { placementOf } from "../../protocol/placement.js";
import { ConsumerArgs, ConsumerMessages, type GroupEvent, type PollResult, type PolledChunk } from "../../protocol/client.js";
import { GroupMembership } from "../groups/membership.js";
import { iterateBatches } from "../../protocol/record-batch.js";
import { BrokerWorkerCounts, metadataFor } from "../cluster/shared.js";
import { asFetchError } from "../cluster/fetch-server.js";
import { transferWith } from "../../runtime/port-ref.js";
import { presizeLargeNatsMessages, takeExclusive } from "../../runtime/nats-parser.js";
import type { MetadataStore } from "../cluster/metadata.js";
import type { z } from "zod";
import { randomUUID } from "node:crypto";

type Ctx = ActorContext<ConsumerArgs>;

interface Assigned {
  key: string;
  topic: string;
  partition: number;
  /** Next offset to hand out; -1 until resolved from the reset policy. */
  position: number;
  /** Next offset to fetch (ahead of position by what is buffered). */
  fetchOffset: number;
  paused: boolean;
  fetching: boolean;
  leader: number;
  /** Bumped on seek/assign so results of older fetches are dropped. */
  generation: number;
  buffered: PolledChunk[];
  highWatermark: number;
  retryAt: number;
  /** Being given up in a cooperative rebalance: no more fetching or handing out. */
  revoking: boolean;
  /** The fetch session its outstanding fetch is listed in (null: none, or a Fetch of its own). */
  session: FetchSession | null;
}

/** One leader worker's partitions of this consumer, fetched together. */
interface FetchSession {
  /** `leader/leaderWorker/leaderWorkers`. */
  key: string;
  /** Fetch server address of the leader worker. */
  server: string;
  leader: number;
  /** Partitions listed at the server whose answer is outstanding, with the offset and generation they were listed at. */
  awaiting: Map<string, { a: Assigned; fetchOffset: number; generation: number }>;
  /** Sequence number of the newest request sent (unique in this consumer); its answer frees the session. */
  seq: number;
  /** Requests of this session not answered yet: the parked one and at most one superseding it (MAX_SESSION_REQUESTS). */
  unanswered: Set<number>;
  supersedeScheduled: boolean;
  /** The next request lists every awaiting partition (new session, or after a failed request). */
  full: boolean;
  /** Since the last request: partitions listed anew, and partitions that left while awaiting. */
  changed: Set<string>;
  removed: Set<string>;
}

const RETRY_MS = 100;
/** max_payload of a NATS server that does not say (its default), bytes. */
const DEFAULT_NATS_MAX_PAYLOAD = 1024 * 1024;
/** Partitions that join a session while its request is parked go out in a newer request this much later (one for a burst), ms. */
const SUPERSEDE_MS = 5;
/**
 * Requests of one session unanswered at once, at most: the parked one and one superseding it.
 * Further changes wait for an answer (the server answers a superseded request at once), so a
 * burst of changes under load cannot pile up requests 5 ms apart.
 */
const MAX_SESSION_REQUESTS = 2;

/** Whether the session's newest request is unanswered (its answer frees the session). */
const inFlight = (s: FetchSession) => s.unanswered.has(s.seq);
/** Room kept under the NATS server's max_payload for a fetch answer's envelope, bytes. */
const ANSWER_ENVELOPE_BYTES = 64 * 1024;
/** A parked poll whose deadline is this close when a Kick finds it still waiting gets a Kick of its own, ms. */
const POLL_DEADLINE_SLACK_MS = 100;

export class ConsumerState {
  readonly assigned = new Map<string, Assigned>();
  bufferedBytes = 0;
  /** Buffered chunks that are views of a fetch answer's own buffer (see SharedAnswers). */
  private readonly shared = new SharedAnswers();
  polls: Array<{ reply: ReplyHandle<PollResult>; maxBytes: number; deadline: number }> = [];
  kickScheduled = false;
  generation = 0;
  /** Next offset per partition the facade has finished processing (what commits). */
  readonly processed = new Map<string, number>();
  /** True while the facade holds no records (a poll is parked, or none has returned data yet). */
  facadeIdle = true;
  lastPollAt = Date.now();
  events: GroupEvent[] = [];
  membership: GroupMembership | null = null;
  readonly sessions = new Map<string, FetchSession>();
  /** Worker counts of leader brokers (from their live registrations): where a leader replica's fetch server is. */
  readonly workersOf: BrokerWorkerCounts;
  /** Numbers this consumer's session requests (one sequence for all its sessions); see instance. */
  private sessionSeq = 0;
  /** This consumer instance, for the servers to tell a copy of a served request from a new one. */
  private readonly instance = randomUUID();
  /** Bytes per session answer, and per partition: within maxBytes options and the NATS server's max_payload. */
  readonly answerMaxBytes: number;
  readonly partitionMaxBytes: number;

  constructor(
    readonly meta: MetadataStore,
    readonly args: ConsumerArgs,
    /** Names this consumer's fetch sessions at the servers. */
    readonly sessionName = `consumer/${randomUUID()}`,
    natsMaxPayload = DEFAULT_NATS_MAX_PAYLOAD,
  ) {
    this.workersOf = new BrokerWorkerCounts(meta);
    // Fetch answers spanning socket reads arrive in exact-size buffers this actor can keep.
    presizeLargeNatsMessages();
    const room = Math.max(1024, natsMaxPayload - ANSWER_ENVELOPE_BYTES);
    this.answerMaxBytes = Math.min(args.fetchMaxBytes, room);
    this.partitionMaxBytes = Math.min(args.maxBytesPerPartition, room);
  }

  assign(partitions: Array<{ topic: string; partition: number; offset?: number }>, ctx: Ctx): { assigned: number } {
    const keep = new Set(partitions.map((p) => `${p.topic}/${p.partition}`));
    for (const [key, a] of this.assigned) {
      if (keep.has(key)) continue;
      this.dropBuffered(a);
      this.leaveSession(a);
      this.assigned.delete(key);
    }
    for (const p of partitions) {
      const key = `${p.topic}/${p.partition}`;
      const existing = this.assigned.get(key);
      if (existing && p.offset === undefined) continue;
      if (existing) this.seekTo(existing, p.offset!);
      else {
        const offset = p.offset ?? -1;
        this.assigned.set(key, {
          key, topic: p.topic, partition: p.partition, position: offset, fetchOffset: offset, paused: false, fetching: false,
          leader: -1, generation: ++this.generation, buffered: [], highWatermark: -1, retryAt: 0, revoking: false, session: null,
        });
      }
    }
    this.kick(ctx);
    return { assigned: this.assigned.size };
  }

  private seekTo(a: Assigned, offset: number): void {
    this.dropBuffered(a);
    a.position = offset;
    a.fetchOffset = offset;
    a.generation = ++this.generation;
    a.fetching = false;
  }

  private get(topic: string, partition: number): Assigned {
    const a = this.assigned.get(`${topic}/${partition}`);
    if (!a) throw new SkeinError(ErrorCode.INVALID_REQUEST, `${topic}/${partition} is not assigned to this consumer`, { topic, partition });
    return a;
  }

  async seek(m: z.infer<typeof ConsumerMessages.Seek>, ctx: Ctx): Promise<{ offset: number }> {
    const a = this.get(m.topic, m.partition);
    const offset = m.offset >= 0 ? m.offset : await this.listOffset(a, m.offset, ctx);
    this.seekTo(a, offset);
    this.kick(ctx);
    return { offset };
  }

  async seekTimestamp(m: z.infer<typeof ConsumerMessages.SeekTimestamp>, ctx: Ctx): Promise<{ offset: number }> {
    const a = this.get(m.topic, m.partition);
    const offset = await this.listOffset(a, m.timestamp, ctx);
    this.seekTo(a, offset);
    this.kick(ctx);
    return { offset };
  }

  pause(partitions: Array<{ topic: string; partition: number }>, paused: boolean, ctx: Ctx): void {
    for (const p of partitions) this.get(p.topic, p.partition).paused = paused;
    if (!paused) this.kick(ctx);
  }

  positions(): Array<{ topic: string; partition: number; offset: number; highWatermark: number }> {
    return [...this.assigned.values()].map((a) => ({ topic: a.topic, partition: a.partition, offset: a.position, highWatermark: a.highWatermark }));
  }

  // Fetching --------------------------------------------------------------------------------------

  kick(ctx: Ctx): void {
    const now = Date.now();
    let retryLater = false;
    const touched = new Set<FetchSession>();
    for (const a of this.assigned.values()) {
      if (a.fetching || a.paused || a.revoking) continue;
      if (a.retryAt > now) {
        retryLater = true;
        continue;
      }
      if (this.bufferedBytes >= this.args.maxBufferedBytes) break;
      a.fetching = true;
      const s = this.sessionFor(a);
      if (s) {
        this.list(s, a);
        touched.add(s);
      } else void this.fetch(a, ctx);
    }
    for (const s of touched) this.wake(s, ctx);
    if (retryLater && !this.kickScheduled) {
      this.kickScheduled = true;
      ctx.schedule(RETRY_MS, "Kick", {});
    }
  }

  /**
   * Resolves what a partition needs before it can fetch: its position (reset policy), its
   * leader and the leader's worker count, then lets it join its session (LeaderKnown). Without
   * a worker count for the leader it fetches on its own.
   */
  private async fetch(a: Assigned, ctx: Ctx): Promise<void> {
    const generation = a.generation;
    const key = a.key;
    try {
      if (a.fetchOffset < 0) {
        const reset = this.args.autoOffsetReset;
        if (reset === "none") throw new SkeinError(ErrorCode.OFFSET_OUT_OF_RANGE, `${key} has no position and autoOffsetReset is "none"`, { topic: a.topic, partition: a.partition });
        const offset = await this.listOffset(a, reset === "earliest" ? -2 : -1, ctx);
        ctx.tell(ctx.self, "Fetched", { key, generation, fromOffset: -1, highWatermark: offset });
        return;
      }
      if (a.leader < 0) a.leader = await this.leaderOf(a);
      if ((await this.workersOf.of(a.leader)) !== null) {
        ctx.tell(ctx.self, "LeaderKnown", { key, generation });
        return;
      }
      const r = await ctx.ask<FetchResult>(
        replicaAddress(a.topic, a.partition, a.leader),
        "Fetch",
        { fromOffset: a.fetchOffset, maxBytes: this.partitionMaxBytes, maxWaitMs: this.args.maxWaitMs },
        { timeoutMs: this.args.maxWaitMs + 5_000 },
      );
      ctx.tell(ctx.self, "Fetched", { key, generation, fromOffset: a.fetchOffset, data: r.data, highWatermark: r.highWatermark });
    } catch (e) {
      const err = isSkeinError(e) ? e : new SkeinError(ErrorCode.UNKNOWN, String(e));
      const logStartOffset = typeof err.context.logStartOffset === "number" ? err.context.logStartOffset : undefined;
      ctx.tell(ctx.self, "Fetched", { key, generation, fromOffset: a.fetchOffset, error: { code: err.code, message: err.message, logStartOffset } });
    }
  }

  onLeaderKnown(m: z.infer<typeof ConsumerMessages.LeaderKnown>, ctx: Ctx): void {
    const a = this.assigned.get(m.key);
    if (a && a.generation === m.generation && a.fetching && a.session === null) a.fetching = false;
    this.kick(ctx);
  }

  private async leaderOf(a: Assigned): Promise<number> {
    const p = await this.meta.getPartition(a.topic, a.partition);
    if (!p) throw new SkeinError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `unknown partition ${a.key}`, { topic: a.topic, partition: a.partition });
    if (p.value.leader < 0) throw new SkeinError(ErrorCode.LEADER_NOT_AVAILABLE, `${a.key} has no leader`, { topic: a.topic, partition: a.partition });
    return p.value.leader;
  }

  private async listOffset(a: Assigned, timestamp: number, ctx: Ctx): Promise<number> {
    const leader = await this.leaderOf(a);
    const r = await ctx.ask<{ offset: number }>(replicaAddress(a.topic, a.partition, leader), "ListOffset", { timestamp }, { timeoutMs: 5_000 });
    return r.offset;
  }

  onFetched(m: z.infer<typeof ConsumerMessages.Fetched>, ctx: Ctx): void {
    const a = this.assigned.get(m.key);
    if (a && a.generation === m.generation) {
      this.applyFetched(a, m, m.data ? this.shared.answer(m.data) : null);
      this.answerPolls();
    }
    this.kick(ctx);
  }

  /**
   * A fetch of `a` (made at its current generation and fetch offset) ended: buffer its data or
   * handle its error. With `answer`, the data is a view of a fetch answer's own buffer (see
   * SharedAnswers) and is kept as it is; otherwise it is copied out (ownBuffer).
   */
  private applyFetched(a: Assigned, m: { fromOffset: number; data?: Uint8Array; highWatermark?: number; error?: FetchError }, answer: Answer | null): void {
    a.fetching = false;
    if (m.error) this.onFetchError(a, m.error);
    else if (m.fromOffset === -1) {
      a.position = a.fetchOffset = m.highWatermark!;
    } else {
      a.highWatermark = m.highWatermark ?? a.highWatermark;
      if (m.data!.length > 0) {
        const data = answer ? m.data! : ownBuffer(m.data!);
        let next = a.fetchOffset;
        for (const { header } of iterateBatches(data, { verifyCrc: false })) next = Math.max(next, header.lastOffset + 1);
        const chunk: PolledChunk = { topic: a.topic, partition: a.partition, fromOffset: a.fetchOffset, data, highWatermark: a.highWatermark };
        a.buffered.push(chunk);
        if (answer) this.shared.add(chunk, answer);
        this.bufferedBytes += data.length;
        a.fetchOffset = next;
      }
    }
  }

  private onFetchError(a: Assigned, error: { code: string; message: string; logStartOffset?: number }): void {
    a.retryAt = Date.now() + RETRY_MS;
    if (error.code === ErrorCode.OFFSET_OUT_OF_RANGE && a.fetchOffset >= 0 && this.args.autoOffsetReset !== "none") {
      console.warn(`skein consumer: ${a.key} offset ${a.fetchOffset} is out of range; resetting to ${this.args.autoOffsetReset}`);
      a.position = a.fetchOffset = -1;
      a.retryAt = 0;
      return;
    }
    if (error.code !== ErrorCode.TIMEOUT) a.leader = -1;
  }

  // Fetch sessions --------------------------------------------------------------------------------

  /** The session `a` fetches in, if its position, leader and the leader's worker count are known. */
  private sessionFor(a: Assigned): FetchSession | null {
    if (a.fetchOffset < 0 || a.leader < 0) return null;
    const workers = this.workersOf.known(a.leader);
    if (workers === undefined) return null;
    const leaderWorker = placementOf(replicaAddress(a.topic, a.partition, a.leader), workers);
    const key = `${a.leader}/${leaderWorker}/${workers}`;
    let s = this.sessions.get(key);
    if (!s) {
      let server: string;
      try {
        server = fetchServerAddress(a.leader, leaderWorker, workers);
      } catch {
        return null;
      }
      s = { key, server, leader: a.leader, awaiting: new Map(), seq: 0, unanswered: new Set(), supersedeScheduled: false, full: true, changed: new Set(), removed: new Set() };
      this.sessions.set(key, s);
    }
    return s;
  }

  /** Lists `a` in `s` for its next fetch, from its fetch offset. */
  private list(s: FetchSession, a: Assigned): void {
    if (a.session !== s) this.leaveSession(a);
    a.session = s;
    s.awaiting.set(a.key, { a, fetchOffset: a.fetchOffset, generation: a.generation });
    s.changed.add(a.key);
    s.removed.delete(a.key);
  }

  /** Takes `a` out of its session (unassigned, or its leader is being looked up again). */
  private leaveSession(a: Assigned): void {
    const s = a.session;
    a.session = null;
    if (!s || s.awaiting.get(a.key)?.a !== a) return;
    s.awaiting.delete(a.key);
    s.changed.delete(a.key);
    s.removed.add(a.key);
  }

  /**
   * Partitions were listed: send now when no request is in flight; otherwise the parked one would
   * hold them back for up to maxWaitMs, so a newer request goes out shortly (the server answers
   * the parked one at once, empty).
   */
  private wake(s: FetchSession, ctx: Ctx): void {
    if (!inFlight(s)) return this.send(s, ctx);
    if (s.supersedeScheduled || s.unanswered.size >= MAX_SESSION_REQUESTS) return;
    s.supersedeScheduled = true;
    ctx.schedule(SUPERSEDE_MS, "SessionRetry", { session: s.key });
  }

  retrySession(key: string, ctx: Ctx): void {
    const s = this.sessions.get(key);
    if (!s) return;
    s.supersedeScheduled = false;
    if (!inFlight(s) || ((s.changed.size > 0 || s.removed.size > 0) && s.unanswered.size < MAX_SESSION_REQUESTS)) this.send(s, ctx);
  }

  private send(s: FetchSession, ctx: Ctx): void {
    if (s.awaiting.size === 0 && s.removed.size === 0) {
      // Nothing to wait for (all paused, over budget or gone): no request. The server forgets an
      // idle session; a later one lists everything again.
      if (!inFlight(s)) this.sessions.delete(s.key);
      return;
    }
    const partitions: SessionPartition[] = [];
    const removed: Array<{ topic: string; partition: number }> = [];
    const add = (key: string) => {
      const w = s.awaiting.get(key);
      if (w) partitions.push({ topic: w.a.topic, partition: w.a.partition, fetchOffset: w.fetchOffset, leaderEpoch: -1 });
    };
    if (s.full) for (const key of s.awaiting.keys()) add(key);
    else {
      for (const key of s.changed) add(key);
      for (const key of s.removed) {
        const at = key.lastIndexOf("/");
        removed.push({ topic: key.slice(0, at), partition: Number(key.slice(at + 1)) });
      }
    }
    const seq = (s.seq = ++this.sessionSeq);
    const body = { session: this.sessionName, instance: this.instance, seq, maxWaitMs: this.args.maxWaitMs, maxBytes: this.answerMaxBytes, partitionMaxBytes: this.partitionMaxBytes, minBytes: this.args.minBytes, full: s.full, partitions, removed };
    s.full = false;
    s.changed.clear();
    s.removed.clear();
    s.unanswered.add(seq);
    ctx
      .ask<FetchManyResult>(s.server, "ConsumerFetchMany", body, { timeoutMs: this.args.maxWaitMs + 5_000 })
      .then(
        (r) => ctx.tell(ctx.self, "SessionFetched", { session: s.key, seq, results: r.results, data: r.data }),
        (e) => ctx.tell(ctx.self, "SessionFetched", { session: s.key, seq, error: asFetchError(e) }),
      );
  }

  onSessionFetched(m: z.infer<typeof ConsumerMessages.SessionFetched>, ctx: Ctx): void {
    const s = this.sessions.get(m.session);
    if (!s) return;
    const latest = m.seq === s.seq;
    s.unanswered.delete(m.seq);
    if (m.error) {
      if (latest) this.sessionFailed(s, m.error);
    } else {
      // Every partition's data is a view of m.data; polls are answered once all are buffered,
      // so that take() knows every chunk that shares the answer's buffer.
      const answer = m.data ? this.shared.answer(m.data) : null;
      for (const r of m.results) {
        const key = `${r.topic}/${r.partition}`;
        const w = s.awaiting.get(key);
        if (!w || w.fetchOffset !== r.fetchOffset) continue; // left, or listed again from elsewhere
        s.awaiting.delete(key);
        const a = w.a;
        a.session = null;
        // Not the current fetch of the partition (a seek since): dropped like an older Fetched.
        if (this.assigned.get(key) !== a || a.generation !== w.generation || a.fetchOffset !== r.fetchOffset) continue;
        const data = r.error || !m.data ? undefined : m.data.subarray(r.start, r.start + r.length);
        this.applyFetched(a, { fromOffset: r.fetchOffset, data: data ?? new Uint8Array(0), highWatermark: r.highWatermark, error: r.error }, answer);
      }
      this.answerPolls();
    }
    this.kick(ctx);
    if (!inFlight(s)) this.send(s, ctx);
    else if (s.changed.size > 0 || s.removed.size > 0) this.wake(s, ctx); // changes held back while two requests were unanswered
  }

  /**
   * The request failed as a whole. An unknown session (the server restarted, or dropped it while
   * idle) only needs the full list; otherwise each awaiting partition takes the error as its own
   * fetch would have (retry after a pause, its leader looked up again unless it was a timeout).
   */
  private sessionFailed(s: FetchSession, error: FetchError): void {
    s.full = true;
    if (error.code === ErrorCode.FETCH_SESSION_NOT_FOUND) return;
    if (error.code === ErrorCode.ACTOR_NOT_FOUND) this.workersOf.forget(s.leader);
    for (const { a } of s.awaiting.values()) {
      a.session = null;
      a.fetching = false;
      this.onFetchError(a, error);
    }
    s.awaiting.clear();
    s.changed.clear();
    s.removed.clear();
  }

  /** Ends this consumer's sessions at their servers (stopping): they need not idle out there. */
  closeSessions(ctx: Ctx): void {
    for (const s of this.sessions.values()) {
      try {
        ctx.tell(s.server, "ConsumerSessionClose", { session: this.sessionName, instance: this.instance });
      } catch {
        // The connection is closing: the server drops the session when it idles out.
      }
    }
    this.sessions.clear();
  }

  // Handing out data ------------------------------------------------------------------------------

  /**
   * Hands out buffered chunks. While a poll is parked (or before the first) the facade holds
   * no records: that is when a group member may give partitions up.
   */
  poll(m: z.infer<typeof ConsumerMessages.Poll>, ctx: Ctx): PollResult | undefined {
    this.lastPollAt = Date.now();
    for (const p of m.processed) this.processed.set(`${p.topic}/${p.partition}`, p.offset);
    this.facadeIdle = true;
    this.membership?.onFacadeIdle(ctx);
    const chunks = this.take(m.maxBytes, ctx);
    if (chunks.length > 0 || m.maxWaitMs === 0) return this.result(chunks);
    this.polls.push({ reply: ctx.deferReply<PollResult>(), maxBytes: m.maxBytes, deadline: Date.now() + m.maxWaitMs });
    ctx.schedule(m.maxWaitMs, "Kick", {});
    return undefined;
  }

  private result(chunks: PolledChunk[]): PollResult {
    if (chunks.length) this.facadeIdle = false;
    // Every chunk's data is in a buffer no other buffered chunk uses (see take()), removed from
    // this state for good: it moves to the facade instead of being copied.
    return transferWith({ chunks, events: this.events.splice(0) }, chunks.map((c) => c.data.buffer as ArrayBuffer));
  }

  private take(maxBytes: number, ctx?: Ctx): PolledChunk[] {
    const out: PolledChunk[] = [];
    let bytes = 0;
    for (const a of this.assigned.values()) {
      if (a.paused || a.revoking) continue;
      while (a.buffered.length && (out.length === 0 || bytes + a.buffered[0].data.length <= maxBytes)) {
        const c = a.buffered.shift()!;
        out.push(c);
        bytes += c.data.length;
        this.bufferedBytes -= c.data.length;
        for (const { header } of iterateBatches(c.data, { verifyCrc: false })) a.position = Math.max(a.position, header.lastOffset + 1);
      }
    }
    this.shared.handOut(out);
    if (out.length && ctx) this.kick(ctx);
    return out;
  }

  /** Drops the partition's buffered chunks (a seek, or the partition left the assignment). */
  private dropBuffered(a: Assigned): void {
    for (const c of a.buffered) {
      this.bufferedBytes -= c.data.length;
      this.shared.drop(c);
    }
    a.buffered = [];
  }

  answerPolls(): void {
    while (this.polls.length) {
      const chunks = this.take(this.polls[0].maxBytes);
      if (chunks.length === 0 && this.events.length === 0) return;
      this.polls.shift()!.reply.resolve(this.result(chunks));
    }
  }

  expirePolls(ctx: Ctx): void {
    const now = Date.now();
    this.polls = this.polls.filter((p) => {
      if (p.deadline > now) return true;
      p.reply.resolve(this.result([]));
      return false;
    });
    // A timer can fire before Date.now() reaches the deadline it was set for (Node runs timers
    // on the event loop's cached clock, which lags behind Date.now() by the work done earlier in
    // the same turn). Look again then, rather than leave the poll parked until data arrives.
    const soonest = this.polls.reduce((min, p) => Math.min(min, p.deadline), Infinity);
    if (soonest - now <= POLL_DEADLINE_SLACK_MS) ctx.schedule(soonest - now + 1, "Kick", {});
  }

  /** Removes partitions from the assignment (dropping their buffered data). */
  unassign(partitions: Array<{ topic: string; partition: number }>): void {
    for (const p of partitions) {
      const key = `${p.topic}/${p.partition}`;
      const a = this.assigned.get(key);
      if (!a) continue;
      this.dropBuffered(a);
      this.leaveSession(a);
      this.assigned.delete(key);
    }
  }

  /** Adds partitions at the given positions (-1: reset policy), keeping the others. */
  addAssigned(partitions: Array<{ topic: string; partition: number; offset: number }>, ctx: Ctx): void {
    for (const p of partitions) {
      const key = `${p.topic}/${p.partition}`;
      if (this.assigned.has(key)) continue;
      this.assigned.set(key, {
        key, topic: p.topic, partition: p.partition, position: p.offset, fetchOffset: p.offset, paused: false, fetching: false,
        leader: -1, generation: ++this.generation, buffered: [], highWatermark: -1, retryAt: 0, revoking: false, session: null,
      });
    }
    this.kick(ctx);
  }
}

export const ConsumerActor = defineActor({
  kind: "consumer",
  args: ConsumerArgs,
  messages: ConsumerMessages,
  async init(ctx) {
    const sessionName = `consumer/${ctx.node}/${randomUUID()}`;
    const state = new ConsumerState(await metadataFor(ctx.nats, ctx.cluster), ctx.args, sessionName, ctx.nats.info?.max_payload ?? DEFAULT_NATS_MAX_PAYLOAD);
    if (ctx.args.group) state.membership = new GroupMembership(state, ctx.args.group);
    return state;
  },
  started(s, ctx) {
    s.membership?.start(ctx);
  },
  stopped(s, ctx) {
    for (const p of s.polls.splice(0)) p.reply.resolve({ chunks: [], events: [] });
    s.closeSessions(ctx);
  },
  handlers: {
    Assign: (s, m, ctx) => s.assign(m.partitions, ctx),
    Seek: (s, m, ctx) => s.seek(m, ctx),
    SeekTimestamp: (s, m, ctx) => s.seekTimestamp(m, ctx),
    Pause: (s, m, ctx) => s.pause(m.partitions, true, ctx),
    Resume: (s, m, ctx) => s.pause(m.partitions, false, ctx),
    Poll: (s, m, ctx) => s.poll(m, ctx),
    Positions: (s) => s.positions(),
    Fetched: (s, m, ctx) => s.onFetched(m, ctx),
    Subscribe: (s, m, ctx) => requireGroup(s).subscribe(m.topics, ctx),
    Commit: (s, m, ctx) => requireGroup(s).commit(m.offsets ?? null, ctx),
    Leave: (s, _m, ctx) => requireGroup(s).leave(ctx),
    GroupStep: (s, m, ctx) => requireGroup(s).onStep(m, ctx),
    GroupTick: (s, _m, ctx) => requireGroup(s).tick(ctx),
    LeaderKnown: (s, m, ctx) => s.onLeaderKnown(m, ctx),
    SessionFetched: (s, m, ctx) => s.onSessionFetched(m, ctx),
    SessionRetry: (s, m, ctx) => s.retrySession(m.session, ctx),
    Kick: (s, _m, ctx) => {
      s.kickScheduled = false;
      s.expirePolls(ctx);
      s.kick(ctx);
    },
  },
});

/** A fetch answer in a buffer of its own: how many buffered chunks are still views of it. */
interface Answer {
  views: number;
}

/**
 * Fetch answers that arrived in buffers of their own (runtime/nats-parser.ts presizes every
 * NATS message spanning socket reads, i.e. every large one, and hands such a buffer over once).
 * Their partitions' data are buffered as views of that buffer, without a copy. A handout moves
 * the buffer to the facade only when it takes every chunk still viewing it; the chunks of a
 * handout that leaves one behind (a paused partition's, or one past the poll's maxBytes) are
 * copied out first, so a transfer never detaches a view the actor still holds.
 */
export class SharedAnswers {
  private readonly answerOf = new WeakMap<PolledChunk, Answer>();

  /** The answer whose buffer `data` is a view of, if this actor may keep that buffer (once per buffer). */
  answer(data: Uint8Array): Answer | null {
    return takeExclusive(data.buffer) ? { views: 0 } : null;
  }

  /** `chunk` is buffered, its data a view of `answer`'s buffer. */
  add(chunk: PolledChunk, answer: Answer): void {
    answer.views++;
    this.answerOf.set(chunk, answer);
  }

  /** A buffered chunk is dropped without being handed out. */
  drop(chunk: PolledChunk): void {
    const answer = this.answerOf.get(chunk);
    if (!answer) return;
    answer.views--;
    this.answerOf.delete(chunk);
  }

  /** The chunks a poll hands out, removed from the buffer: copies out those whose buffer stays in use. */
  handOut(out: PolledChunk[]): void {
    let taken: Map<Answer, number> | null = null;
    for (const c of out) {
      const answer = this.answerOf.get(c);
      if (answer) (taken ??= new Map()).set(answer, (taken.get(answer) ?? 0) + 1);
    }
    if (taken === null) return;
    for (const c of out) {
      const answer = this.answerOf.get(c);
      if (!answer) continue;
      this.answerOf.delete(c);
      if (taken.get(answer) !== answer.views) c.data = ownBuffer(c.data);
    }
    for (const [answer, n] of taken) answer.views -= n;
  }
}

/**
 * Fetched data that is a view into a buffer the NATS client still owns or shares (a message
 * that arrived within one socket read shares the read's buffer with others), or that shares
 * an answer's buffer with a chunk staying behind: copied once into a buffer of exactly its
 * size that only this actor holds, so what is buffered (bounded by maxBufferedBytes) is close
 * to the memory it takes, and a poll can move the buffer to the facade (transferWith) instead
 * of structured-cloning it (a copy on each thread).
 */
function ownBuffer(data: Uint8Array): Uint8Array<ArrayBuffer> {
  return data.slice();
}

function requireGroup(s: ConsumerState): GroupMembership {
  if (!s.membership) throw new SkeinError(ErrorCode.INVALID_REQUEST, "this consumer has no groupId");
  return s.membership;
}
