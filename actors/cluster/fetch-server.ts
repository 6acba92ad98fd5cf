// The leader side of replication fetch sessions (Kafka: a fetch request per follower broker
// covering all its partitions, and fetch sessions). One fetch server runs on every worker of
// a broker and serves the leader replicas on that worker; each follower worker keeps one
// session with it (see fetcher.ts). Without sessions every follower replica long-polled its
// leader on its own: at 10,000 replicas an idle cluster spent most of a core on those polls.
//
// For each session partition the server keeps one fetch outstanding at the local leader
// replica (an in-thread ask, long-polling there as a follower's fetch always did, so the
// replica's high watermark and ISR logic see the follower's offset exactly as before). A
// result with data or an error waits in the session until the follower's next FetchMany
// takes it; a FetchMany with nothing ready parks until something is or its wait ends. A
// partition's next local fetch is made once the follower reports a new fetch offset.
//
// Consumers use the same sessions (ConsumerFetchMany, one per consumer and leader worker; see
// actors/client/consumer.ts): the same parking, byte bounds and per-partition results, but
// the local fetches are a consumer's (no replica id: they read up to the HW and leave the
// replica's follower state alone) with the consumer's bytes per partition.

import { z } from "zod";
import { defineActor, type ActorContext, type ReplyHandle } from "../../runtime/actor.js";
import { ErrorCode, SkeinError, isSkeinError } from "../../protocol/errors.js";
import { offerEnvelopeHeadroom } from "../../protocol/envelope.js";
import { ConsumerSessionMessages, FetchServerMessages, replicaAddress, type FetchError, type FetchManyResult, type FetchResult } from "../../protocol/cluster.js";
import { iterateBatches } from "../../protocol/record-batch.js";

export const FetchServerArgs = z.object({
  broker: z.number().int().min(0),
  /** Bytes per partition per local fetch. */
  partitionMaxBytes: z.number().int().min(1024).default(1024 * 1024),
  /** A session's results waiting for its follower, at most this many bytes (then local fetches pause). */
  sessionBufferBytes: z.number().int().min(1024).default(16 * 1024 * 1024),
});
type Args = z.infer<typeof FetchServerArgs>;
type Ctx = ActorContext<Args>;

/**
 * How long a local fetch long-polls at the replica, ms. In-thread and answered at once by new
 * data, so it can be long: idle, each session partition costs one local ask per this period.
 */
const LOCAL_WAIT_MS = 120_000;
/** A session nobody fetched for this long is dropped, ms. */
const SESSION_IDLE_MS = 60_000;
const TICK_MS = 1_000;
const EMPTY = new Uint8Array(0);

interface Entry {
  topic: string;
  partition: number;
  fetchOffset: number;
  leaderEpoch: number;
  /** Bumped when the offset or epoch changes, by every local fetch and when its answer is taken: any other answer is ignored. */
  generation: number;
  outstanding: boolean;
  /** When the outstanding (or last) local fetch was made. */
  issuedAt: number;
  ready: { data?: Uint8Array; highWatermark?: number; error?: FetchError } | null;
}

interface Session {
  key: string;
  /** The client instance the session belongs to, and the newest request number it served. */
  instance: string;
  lastSeq: number;
  /** The follower's broker; undefined for a consumer's session. */
  replicaId: number | undefined;
  /** Bytes per partition per local fetch (the server's default for followers, the consumer's own otherwise). */
  partitionMaxBytes: number;
  entries: Map<string, Entry>;
  /** Entries with a result waiting for the follower. */
  ready: Set<Entry>;
  /** Entries that need a local fetch started (held back while the buffer is full). */
  waiting: Set<Entry>;
  parked: { reply: ReplyHandle<FetchManyResult>; deadline: number; maxBytes: number; minBytes: number; seq: number; cancelExpiry: (() => void) | null } | null;
  /** Numbers the parked requests, so a consumer's expiry timer answers only the one it was set for. */
  parkSeq: number;
  bufferedBytes: number;
  lastSeenAt: number;
}

/** What follower and consumer session requests have in common. */
type SessionRequest = Omit<z.infer<typeof FetchServerMessages.FetchMany>, "replicaId">;

const entryKey = (topic: string, partition: number) => `${topic}/${partition}`;

export class FetchServerState {
  readonly sessions = new Map<string, Session>();
  private earlyEmpty = 0;
  /** Entry generations, unique across sessions: a local fetch made for a replaced session never matches an entry of its successor. */
  private generations = 0;
  /** Sessions with a parked request and a result for it, answered at the end of the turn (answerSoon). */
  private readonly answerDue = new Set<Session>();
  private answerScheduled = false;

  constructor(readonly args: Args) {}

  fetchMany(m: z.infer<typeof FetchServerMessages.FetchMany>, ctx: Ctx): FetchManyResult | undefined {
    return this.serve(m, m.replicaId, this.args.partitionMaxBytes, 1, ctx);
  }

  consumerFetchMany(m: z.infer<typeof ConsumerSessionMessages.ConsumerFetchMany>, ctx: Ctx): FetchManyResult | undefined {
    return this.serve(m, undefined, m.partitionMaxBytes, m.minBytes, ctx);
  }

  private serve(m: SessionRequest, replicaId: number | undefined, partitionMaxBytes: number, minBytes: number, ctx: Ctx): FetchManyResult | undefined {
    let s = this.sessions.get(m.session);
    if (s && (s.replicaId !== replicaId || s.instance !== m.instance)) {
      // Another client under this name (a restarted fetcher keeps its name): its session ends.
      if (!m.full) {
        throw new SkeinError(ErrorCode.FETCH_SESSION_NOT_FOUND, `fetch session ${m.session} on broker ${this.args.broker} belongs to another client instance; send the full list`, { broker: String(this.args.broker) });
      }
      if (s.parked) this.unpark(s).resolve({ results: [], data: EMPTY });
      s = undefined;
    }
    if (!s) {
      if (!m.full) {
        throw new SkeinError(ErrorCode.FETCH_SESSION_NOT_FOUND, `no fetch session ${m.session} on broker ${this.args.broker}; send the full list`, { broker: String(this.args.broker) });
      }
      s = { key: m.session, instance: m.instance, lastSeq: 0, replicaId, partitionMaxBytes, entries: new Map(), ready: new Set(), waiting: new Set(), parked: null, parkSeq: 0, bufferedBytes: 0, lastSeenAt: 0 };
      this.sessions.set(m.session, s);
    }
    if (m.seq === s.lastSeq) {
      // A copy of the newest request (the transport delivered it twice): its answer goes to the
      // original, parked or sent, and the client takes one answer per request. No reply (the
      // handle is dropped unanswered), and above all the original is not superseded.
      ctx.deferReply();
      return undefined;
    }
    // An older request, late (or a copy of one): nothing parked can be it, as a newer request
    // answered that already. Answered empty without touching the session: its data is not taken.
    if (m.seq < s.lastSeq) return { results: [], data: EMPTY };
    s.lastSeq = m.seq;
    s.partitionMaxBytes = partitionMaxBytes;
    s.lastSeenAt = Date.now();
    if (s.parked) {
      // Superseded by this request (the follower added a partition): the old one goes back empty.
      this.unpark(s).resolve({ results: [], data: EMPTY });
    }
    const listed = m.full ? new Set<string>() : null;
    for (const p of m.partitions) {
      const key = entryKey(p.topic, p.partition);
      listed?.add(key);
      let e = s.entries.get(key);
      if (!e) {
        e = { topic: p.topic, partition: p.partition, fetchOffset: p.fetchOffset, leaderEpoch: p.leaderEpoch, generation: ++this.generations, outstanding: false, issuedAt: 0, ready: null };
        s.entries.set(key, e);
      } else if (e.fetchOffset !== p.fetchOffset || e.leaderEpoch !== p.leaderEpoch || e.ready?.data === undefined) {
        // Listed again: the follower moved on, followed anew (a restart, or it found itself out
        // of the ISR) or resynced. Its next local fetch starts now, so the leader sees it fetch
        // from here (and can take it back into the ISR); an older one still parked is dropped.
        this.clearReady(s, e);
        e.fetchOffset = p.fetchOffset;
        e.leaderEpoch = p.leaderEpoch;
        e.generation = ++this.generations;
        e.outstanding = false;
      }
      if (!e.outstanding && e.ready === null) s.waiting.add(e);
    }
    const drop = (key: string) => {
      const e = s!.entries.get(key);
      if (!e) return;
      this.clearReady(s!, e);
      s!.waiting.delete(e);
      s!.entries.delete(key);
    };
    if (listed) for (const key of [...s.entries.keys()]) if (!listed.has(key)) drop(key);
    for (const r of m.removed) drop(entryKey(r.topic, r.partition));
    this.fill(s, ctx);
    if (s.ready.size > 0 && (m.maxWaitMs === 0 || enough(s, minBytes))) return this.take(s, m.maxBytes);
    if (m.maxWaitMs === 0) return { results: [], data: EMPTY };
    // A consumer's wait is short (maxWaitMs, 500 ms by default) and it may rely on it: it gets a
    // timer of its own rather than the tick (a follower's ten-second wait is fine with the tick).
    const seq = ++s.parkSeq;
    const cancelExpiry = replicaId === undefined ? ctx.schedule(m.maxWaitMs, "ConsumerSessionExpire", { session: s.key, seq }) : null;
    s.parked = { reply: ctx.deferReply<FetchManyResult>(), deadline: Date.now() + m.maxWaitMs, maxBytes: m.maxBytes, minBytes, seq, cancelExpiry };
    for (const e of s.ready) this.extend(s, e, ctx);
    return undefined;
  }

  /**
   * While a parked request waits for its minBytes, a partition with data ready fetches on from
   * where that data ends (a local fetch that waits at the replica for more), so the answer
   * gathers up to minBytes (each partition up to partitionMaxBytes) rather than holding a
   * partition at its first piece. Started when the request parks and after each piece that
   * arrives; one that ends with an error or nothing is not repeated.
   */
  private extend(s: Session, e: Entry, ctx: Ctx): void {
    const data = e.ready?.data;
    if (!s.parked || !data || e.outstanding || data.length >= s.partitionMaxBytes || enough(s, s.parked.minBytes)) return;
    this.fetchLocal(s, e, ctx, nextOffsetAfter(data));
  }

  private unpark(s: Session): ReplyHandle<FetchManyResult> {
    const parked = s.parked!;
    s.parked = null;
    parked.cancelExpiry?.();
    return parked.reply;
  }

  /** A consumer session's parked request waited its maxWaitMs (its timer cancelled otherwise): answered with what is ready, if anything (short of its minBytes). */
  expire(m: z.infer<typeof ConsumerSessionMessages.ConsumerSessionExpire>): void {
    const s = this.sessions.get(m.session);
    if (!s?.parked || s.parked.seq !== m.seq) return;
    const maxBytes = s.parked.maxBytes;
    this.unpark(s).resolve(s.ready.size > 0 ? this.take(s, maxBytes) : { results: [], data: EMPTY });
  }

  /**
   * A consumer stopped: its session (only a consumer's, and only this instance's) ends now, its
   * parked request answered empty and its waiting results dropped. Local fetches still out end
   * by themselves and their answers are ignored.
   */
  closeSession(m: z.infer<typeof ConsumerSessionMessages.ConsumerSessionClose>): void {
    const s = this.sessions.get(m.session);
    if (!s || s.replicaId !== undefined || s.instance !== m.instance) return;
    if (s.parked) this.unpark(s).resolve({ results: [], data: EMPTY });
    for (const e of s.entries.values()) this.clearReady(s, e);
    this.sessions.delete(m.session);
  }

  /** Starts local fetches for the entries waiting for one (none outstanding, nothing ready), while the buffer allows. */
  private fill(s: Session, ctx: Ctx): void {
    for (const e of s.waiting) {
      if (s.bufferedBytes >= this.args.sessionBufferBytes) return;
      s.waiting.delete(e);
      if (!e.outstanding && e.ready === null) this.fetchLocal(s, e, ctx);
    }
  }

  /** A local fetch for `e`, from its fetch offset, or from `from` to extend the data it has ready (extend). */
  private fetchLocal(s: Session, e: Entry, ctx: Ctx, from = e.fetchOffset): void {
    e.outstanding = true;
    e.issuedAt = Date.now();
    const key = entryKey(e.topic, e.partition);
    // Each local fetch has a generation of its own, taken when its answer is (localFetched): an
    // answer delivered twice (a duplicate fault on this in-thread tell) is taken once.
    const generation = (e.generation = ++this.generations);
    const ready = e.ready?.data?.length ?? 0;
    const request = { fromOffset: from, maxBytes: s.partitionMaxBytes - ready, maxWaitMs: LOCAL_WAIT_MS, replicaId: s.replicaId, leaderEpoch: e.leaderEpoch };
    ctx
      .ask<FetchResult>(replicaAddress(e.topic, e.partition, this.args.broker), "Fetch", request, { timeoutMs: LOCAL_WAIT_MS + 5_000 })
      .then(
        (r) => ctx.tell(ctx.self, "LocalFetched", { session: s.key, key, generation, data: r.data, highWatermark: r.highWatermark }),
        (err) => ctx.tell(ctx.self, "LocalFetched", { session: s.key, key, generation, error: asFetchError(err) }),
      );
  }

  localFetched(m: z.infer<typeof FetchServerMessages.LocalFetched>, ctx: Ctx): void {
    const s = this.sessions.get(m.session);
    const e = s?.entries.get(m.key);
    if (!s || !e || e.generation !== m.generation) return; // left the session, moved on meanwhile, or a copy
    e.generation = ++this.generations;
    e.outstanding = false;
    const extending = e.ready?.data;
    if (extending) {
      // More for a partition that had data ready (extend): appended, or on an error or nothing
      // new, left as it was (its next fetch meets the error again).
      if (m.data && m.data.length > 0) {
        e.ready = { data: concat([extending, m.data], extending.length + m.data.length, 0), highWatermark: m.highWatermark };
        s.bufferedBytes += m.data.length;
      }
    } else if (m.error) {
      e.ready = { error: m.error };
      s.ready.add(e);
    } else if (m.data && m.data.length > 0) {
      e.ready = { data: m.data, highWatermark: m.highWatermark };
      s.ready.add(e);
      s.bufferedBytes += m.data.length;
    } else {
      // The long poll ended with nothing new: poll again while the session is alive. An empty
      // answer well before the wait ended means another fetch of this follower superseded it
      // (the replica keeps one per follower): no immediate retry, which could chase the other
      // one forever; the next FetchMany or tick starts it again.
      const early = Date.now() - e.issuedAt < LOCAL_WAIT_MS / 2;
      if (early) {
        s.waiting.add(e);
        this.earlyEmpty++;
        if (this.earlyEmpty % 1000 === 1) console.warn(`skein fetch server ${this.args.broker}: local fetch of ${m.key} for session ${s.key} answered early with nothing (${this.earlyEmpty} so far)`);
      } else if (Date.now() - s.lastSeenAt < SESSION_IDLE_MS) this.fetchLocal(s, e, ctx);
      return;
    }
    if (s.parked) {
      if (m.data && m.data.length > 0) this.extend(s, e, ctx);
      this.answerSoon(s);
    }
  }

  /**
   * Answers a parked request at the end of this event-loop turn rather than at its first result:
   * results that arrive in the same turn (a produce of several partitions, or a follower's fetch
   * moving several high watermarks) then go out in one answer, not one answer each and a new
   * request in between. A turn's end is microseconds away: no answer waits for a timer.
   */
  private answerSoon(s: Session): void {
    this.answerDue.add(s);
    if (this.answerScheduled) return;
    this.answerScheduled = true;
    setImmediate(() => this.answerDueSessions());
  }

  private answerDueSessions(): void {
    this.answerScheduled = false;
    for (const s of this.answerDue) {
      if (s.parked && s.ready.size > 0 && enough(s, s.parked.minBytes) && this.sessions.get(s.key) === s) {
        const maxBytes = s.parked.maxBytes;
        this.unpark(s).resolve(this.take(s, maxBytes));
      }
    }
    this.answerDue.clear();
  }

  /** Hands out waiting results, at least one and up to maxBytes of data in total. */
  private take(s: Session, maxBytes: number): FetchManyResult {
    const results: FetchManyResult["results"] = [];
    const pieces: Uint8Array[] = [];
    let bytes = 0;
    for (const e of s.ready) {
      const r = e.ready;
      if (r === null) continue;
      const length = r.data?.length ?? 0;
      if (bytes > 0 && bytes + length > maxBytes) continue;
      results.push({ topic: e.topic, partition: e.partition, fetchOffset: e.fetchOffset, start: bytes, length, highWatermark: r.highWatermark, error: r.error });
      if (r.data) pieces.push(r.data);
      bytes += length;
      this.clearReady(s, e);
      if (e.outstanding) {
        // An extension of what went out (extend): its answer would start past this
        // partition's fetch offset, so it is let go; the client lists the partition again.
        e.outstanding = false;
        e.generation = ++this.generations;
      }
      // Its next local fetch starts when the follower reports where it is now (next FetchMany);
      // an error stays out until the replica follows again.
    }
    return { results, data: pieces.length === 1 ? pieces[0] : concat(pieces, bytes, envelopeBytesFor(results)) };
  }

  private clearReady(s: Session, e: Entry): void {
    if (e.ready?.data) s.bufferedBytes -= e.ready.data.length;
    e.ready = null;
    s.ready.delete(e);
  }

  tick(ctx: Ctx): void {
    const now = Date.now();
    for (const [key, s] of this.sessions) {
      if (s.parked && s.parked.deadline <= now) this.unpark(s).resolve({ results: [], data: EMPTY });
      if (!s.parked && now - s.lastSeenAt > SESSION_IDLE_MS) this.sessions.delete(key);
      else if (s.bufferedBytes < this.args.sessionBufferBytes) this.fill(s, ctx);
    }
  }

  close(): void {
    const gone = new SkeinError(ErrorCode.NOT_LEADER_OR_FOLLOWER, `fetch server on broker ${this.args.broker} stopped`, { broker: String(this.args.broker) });
    for (const s of this.sessions.values()) if (s.parked) this.unpark(s).reject(gone);
    this.sessions.clear();
    this.answerDue.clear();
  }
}

/** Whether a parked request may be answered: minBytes of data ready, or an error to report. */
function enough(s: Session, minBytes: number): boolean {
  if (s.bufferedBytes >= minBytes) return true;
  for (const e of s.ready) if (e.ready?.error) return true;
  return false;
}

/** The offset after the last record of these batches (what a local fetch read). */
function nextOffsetAfter(data: Uint8Array): number {
  let next = -1;
  for (const { header } of iterateBatches(data, { verifyCrc: false })) next = Math.max(next, header.lastOffset + 1);
  return next;
}

/** Joins the pieces `headroom` bytes into a new buffer, leaving the bytes in front for the reply's envelope. */
function concat(pieces: Uint8Array[], bytes: number, headroom: number): Uint8Array {
  const out = new Uint8Array(new ArrayBuffer(headroom + bytes), headroom, bytes);
  let at = 0;
  for (const p of pieces) {
    out.set(p, at);
    at += p.length;
  }
  offerEnvelopeHeadroom(out);
  return out;
}

/**
 * Room for a FetchMany reply's envelope in front of its data: the JSON of the results plus the
 * envelope's own fields, estimated from above (too little only costs the copy it would save).
 */
function envelopeBytesFor(results: FetchManyResult["results"]): number {
  let bytes = 256;
  for (const r of results) bytes += 160 + r.topic.length + (r.error ? 2 * r.error.message.length + 64 : 0);
  return bytes;
}

export function asFetchError(e: unknown): FetchError {
  if (isSkeinError(e)) {
    const logStartOffset = Number(e.context?.logStartOffset ?? NaN);
    return { code: e.code, message: e.message, ...(Number.isInteger(logStartOffset) ? { logStartOffset } : {}) };
  }
  return { code: ErrorCode.UNKNOWN, message: String((e as Error)?.message ?? e) };
}

export const FetchServerActor = defineActor({
  kind: "fetch-server",
  args: FetchServerArgs,
  messages: { ...FetchServerMessages, ...ConsumerSessionMessages },
  mailboxCapacity: 100_000,
  init: (ctx) => new FetchServerState(ctx.args),
  started(_s, ctx) {
    ctx.schedule(TICK_MS, "Tick", {});
  },
  stopped: (s) => s.close(),
  handlers: {
    FetchMany: (s, m, ctx) => s.fetchMany(m, ctx),
    ConsumerFetchMany: (s, m, ctx) => s.consumerFetchMany(m, ctx),
    ConsumerSessionExpire: (s, m) => s.expire(m),
    ConsumerSessionClose: (s, m) => s.closeSession(m),
    LocalFetched: (s, m, ctx) => s.localFetched(m, ctx),
    Tick: (s, _m, ctx) => {
      s.tick(ctx);
      ctx.schedule(TICK_MS, "Tick", {});
    },
  },
});
