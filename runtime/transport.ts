// The NATS side of an actor host: mailbox subscriptions, tell (publish) and ask (request with
// a mandatory timeout; replies come back through reply-mux.ts). Core NATS is at-most-once;
// nothing here retries on its own.
//
// Tells are coalesced: consecutive tells to one actor within one synchronous turn travel as
// one NATS message (a batch frame, protocol/envelope-batch.ts), sent at the end of the turn,
// or earlier when the frame is full or a message to another subject (or an ask) comes next.
// A NATS message costs a receiver more CPU in nats.js's parser than Skein's own per-message
// work, so framed tells cost well under half the CPU (bench actors). A run is sent before anything
// else this transport sends (a tell elsewhere, an ask, a reply), so what it puts on the wire
// is in exactly the order of the calls, across destinations too, as without coalescing.
// (Lifecycle events, published on the connection directly, may go ahead of the tells of the
// turn they were emitted in; NATS never ordered messages to different subscriptions anyway.)

import { PermissionViolationError, type NatsConnection, type Subscription, type Msg } from "@nats-io/transport-node";
import { addressToSubject } from "../protocol/address.js";
import { decodeEnvelope, encodeEnvelope, EnvelopeKind, type Envelope } from "../protocol/envelope.js";
import { BATCH_FRAME_MARKER, batchFrameBytes, encodeBatchFrame, MAX_BATCH_ENVELOPES, splitBatchFrame } from "../protocol/envelope-batch.js";
import { ErrorCode, SkeinError, type WireError } from "../protocol/errors.js";
import { ReplyMux } from "./reply-mux.js";
import { askThroughFaults, receiveThroughFaults, tellThroughFaults, type FaultInjector } from "./faults.js";

export type InboundHandler = (envelope: Envelope, reply: ReplyFn | null) => void;
export type ReplyFn = (kind: EnvelopeKind, type: string, body: unknown) => void;
export type InvalidHandler = (error: SkeinError, reply: ReplyFn | null) => void;

/** Judges whether a message from → to passes, is dropped, delayed or duplicated; installed only when faults are allowed (faults.ts). */
export type DeliveryFilter = FaultInjector;

/** Addresses whose subject is remembered; escaping an address costs more than a publish. */
const SUBJECT_CACHE_ENTRIES = 10_000;
/**
 * Largest batch frame, bytes (also bounded by the server's max_payload). Past a few tens of
 * KiB a bigger frame saves nothing measurable, and it delays the first envelope of the frame.
 */
const MAX_FRAME_BYTES = 64 * 1024;

export class NatsTransport {
  private buffered = 0;
  /**
   * Tells made while NATS is disconnected, sent in order once it is back. nats.js itself
   * cannot hold them: it empties its outbound buffer at every reconnect attempt.
   */
  private held: Array<() => void> = [];
  private connected = true;
  private readonly subjects = new Map<string, string>();
  private readonly connectionListeners = new Set<(connected: boolean) => void>();
  /** Tells dropped because NATS was disconnected and the bound was reached, or the connection was closing. */
  droppedWhileDisconnected = 0;
  filter: DeliveryFilter | null = null;
  /**
   * The run of tells being coalesced: envelopes for `runSubject`, in call order, sent at the
   * end of the turn (flushRun). Empty between turns.
   */
  private run: Uint8Array[] = [];
  private runBytes = 0;
  private runSubject = "";
  private flushQueued = false;
  private readonly flushTask = () => {
    this.flushQueued = false;
    this.flushRun();
  };
  /** Frame bound: MAX_FRAME_BYTES, or the server's max_payload if that is smaller. */
  private frameLimit: number;
  /** Where asks wait for their replies. */
  private readonly replies: ReplyMux;

  /** `coalesceTells` (default true): send tells as batch frames (see the top of this file). */
  constructor(
    readonly nc: NatsConnection,
    readonly cluster: string,
    private readonly maxBufferedBytes: number,
    readonly coalesceTells = true,
  ) {
    this.frameLimit = frameLimitOf(nc);
    this.replies = new ReplyMux(nc);
    void this.watchStatus();
  }

  private async watchStatus(): Promise<void> {
    for await (const s of this.nc.status()) {
      if (s.type === "error" && s.error instanceof PermissionViolationError && s.error.operation === "publish") this.replies.publishDenied(s.error);
      if (s.type === "disconnect" && this.connected) {
        this.connected = false;
        this.connectionListeners.forEach((l) => l(false));
      }
      if (s.type === "reconnect" && !this.connected) {
        this.connected = true;
        this.buffered = 0;
        this.frameLimit = frameLimitOf(this.nc); // perhaps another server
        const held = this.held;
        this.held = [];
        held.forEach((send) => send());
        this.connectionListeners.forEach((l) => l(true));
      }
    }
    // Closed for good: what was held will never be sent.
    this.droppedWhileDisconnected += this.held.length;
    this.held = [];
  }

  get isConnected(): boolean {
    return this.connected && !this.nc.isClosed();
  }

  /**
   * Resolves once the server has every subscription made before it (a PING/PONG round trip:
   * a connection's commands are processed in order). Without it, a subscriber that announces
   * itself some other way (a worker's spawn reply on the main thread's connection, a process's
   * ready line) can be asked before its SUB reached the server: "no responders". Disconnected,
   * it does not wait: nats.js subscribes again on reconnect.
   */
  async registered(): Promise<void> {
    if (!this.isConnected) return;
    await this.nc.flush().catch(() => undefined);
  }

  /** Bytes of tells accepted since NATS was lost (nats.js sends them on reconnect); 0 while connected. */
  get bufferedBytesWhileDisconnected(): number {
    return this.connected ? 0 : this.buffered;
  }

  /** Calls `listener(false)` when NATS is lost and `listener(true)` when it is back. Returns the way to stop. */
  onConnectionChange(listener: (connected: boolean) => void): () => void {
    this.connectionListeners.add(listener);
    return () => this.connectionListeners.delete(listener);
  }

  subscribe(address: string, onMessage: InboundHandler, onInvalid: InvalidHandler): Subscription {
    const subject = addressToSubject(this.cluster, address);
    return this.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return;
        const data = msg.data;
        // Checked first: a frame never carries a reply subject, and reading msg.reply costs a
        // decode per message in nats.js.
        if (data.length > 0 && data[0] === BATCH_FRAME_MARKER) {
          this.deliverFrame(address, msg, data, onMessage, onInvalid);
          return;
        }
        if (this.filter !== null) {
          // Each delivery (a duplicate is two, a delay comes later) gets its own copy: a handler
          // may keep or move a message's buffer as its own (runtime/nats-parser.ts takeExclusive).
          receiveThroughFaults(this.filter, address, msg, (respond) => deliver(data.slice(), respond ? this.replyVia((d) => respond(d, undefined)) : null, onMessage, onInvalid));
          return;
        }
        deliver(data, msg.reply ? this.replyVia((d) => msg.respond(d)) : null, onMessage, onInvalid);
      },
    });
  }

  /**
   * Delivers a frame's envelopes in order, each as if it had come alone: an invalid one is
   * reported and the rest still delivered; faults judge each one. A frame whose lengths do
   * not add up is reported once and nothing of it is delivered.
   */
  private deliverFrame(address: string, msg: Msg, frame: Uint8Array, onMessage: InboundHandler, onInvalid: InvalidHandler): void {
    let envelopes: Uint8Array[];
    try {
      envelopes = splitBatchFrame(frame);
    } catch (e) {
      onInvalid(e as SkeinError, null);
      return;
    }
    const filter = this.filter;
    for (let i = 0; i < envelopes.length; i++) {
      const data = envelopes[i];
      if (filter !== null) receiveThroughFaults(filter, address, msg, () => deliver(data.slice(), null, onMessage, onInvalid));
      else deliver(data, null, onMessage, onInvalid);
    }
  }

  /** `from` (the sending actor, null for a main thread) only matters to fault injection. */
  tell(address: string, type: string, body: unknown, from: string | null = null): void {
    // A tell after close (a reply landing during shutdown) is dropped like any lost message.
    if (this.nc.isClosed() || this.nc.isDraining()) {
      this.droppedWhileDisconnected++;
      return;
    }
    const data = encodeEnvelope(EnvelopeKind.MESSAGE, type, body);
    if (!this.connected) {
      this.flushRun();
      this.hold(data.length, () => this.publish(address, data, from));
      return;
    }
    // Faults judge each message, so with a filter every tell goes alone.
    if (this.filter !== null || !this.coalesceTells) {
      this.flushRun();
      this.publish(address, data, from);
      return;
    }
    this.coalesce(this.subjectOf(address), data);
  }

  /** Holds a tell until NATS is back, within the byte bound; beyond it the tell is dropped and counted. */
  private hold(bytes: number, send: () => void): void {
    if (this.buffered + bytes > this.maxBufferedBytes) {
      this.droppedWhileDisconnected++;
      return;
    }
    this.buffered += bytes;
    this.held.push(send);
  }

  private coalesce(subject: string, data: Uint8Array): void {
    if (batchFrameBytes(1, data.length) > this.frameLimit) {
      // Too big to share a frame: alone and at once, as without coalescing (an envelope over
      // max_payload still fails in the caller).
      this.flushRun();
      this.nc.publish(subject, data);
      return;
    }
    const n = this.run.length;
    if (n > 0 && (subject !== this.runSubject || n >= MAX_BATCH_ENVELOPES || batchFrameBytes(n + 1, this.runBytes + data.length) > this.frameLimit)) {
      this.flushRun();
    }
    if (this.run.length === 0) this.runSubject = subject;
    this.run.push(data);
    this.runBytes += data.length;
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(this.flushTask);
    }
  }

  /**
   * Sends the run: one tell as a plain envelope, more as a frame. Disconnected meanwhile, its
   * tells are held one by one like any tell made while disconnected; what the connection no
   * longer takes (closed, or past the end of a drain) is counted as dropped. Nothing to send
   * when the run is empty: everything that sends calls this first, to keep call order.
   */
  private flushRun(): void {
    if (this.run.length === 0) return;
    const run = this.run;
    const subject = this.runSubject;
    this.run = [];
    this.runBytes = 0;
    if (!this.connected) {
      for (const data of run) this.hold(data.length, () => this.nc.publish(subject, data));
      return;
    }
    if (this.nc.isClosed()) {
      this.droppedWhileDisconnected += run.length;
      return;
    }
    try {
      this.nc.publish(subject, run.length === 1 ? run[0] : encodeBatchFrame(run));
    } catch {
      this.droppedWhileDisconnected += run.length;
    }
  }

  /** Callers checked the connection: tell() just before, the held replay on 'reconnect'. */
  private publish(address: string, data: Uint8Array, from: string | null): void {
    if (this.filter !== null) {
      tellThroughFaults(this.filter, from, address, (h) => !this.nc.isClosed() && this.nc.publish(this.subjectOf(address), data, { headers: h }));
      return;
    }
    this.nc.publish(this.subjectOf(address), data);
  }

  /**
   * A reply function for a request: `send` (the request's respond, or a fault-judged one from
   * faults.ts) at most once. Tells the handler made before it answered go first, as the rest
   * of what this transport sends keeps call order.
   */
  private replyVia(send: (data: Uint8Array) => void): ReplyFn {
    let sent = false;
    return (kind, type, body) => {
      if (sent) return;
      sent = true;
      this.flushRun();
      send(encodeEnvelope(kind, type, body));
    };
  }

  private subjectOf(address: string): string {
    let subject = this.subjects.get(address);
    if (subject === undefined) {
      subject = addressToSubject(this.cluster, address);
      if (this.subjects.size >= SUBJECT_CACHE_ENTRIES) this.subjects.clear();
      this.subjects.set(address, subject);
    }
    return subject;
  }

  ask(address: string, type: string, body: unknown, timeoutMs: number, from: string | null = null): Promise<unknown> {
    try {
      if (!this.connected) {
        throw new SkeinError(ErrorCode.NOT_CONNECTED, `NATS is disconnected; cannot ask ${address}`, { address });
      }
      const subject = this.subjectOf(address);
      const data = encodeEnvelope(EnvelopeKind.MESSAGE, type, body);
      // Tells made before the ask reach the wire before it, as they would uncoalesced.
      this.flushRun();
      if (this.filter === null) return this.replies.request(subject, data, timeoutMs, undefined, address, type, unpackReplyMsg);
      return askThroughFaults(this.filter, from, address, type, timeoutMs, (ms, h) => this.replies.request(subject, data, ms, h, address, type, null) as Promise<Msg>).then(
        (msg) => unpackReply(msg.data, address),
      );
    } catch (e) {
      return Promise.reject(e);
    }
  }
}

function deliver(data: Uint8Array, reply: ReplyFn | null, onMessage: InboundHandler, onInvalid: InvalidHandler): void {
  let envelope: Envelope;
  try {
    envelope = decodeEnvelope(data);
  } catch (e) {
    onInvalid(e as SkeinError, reply);
    return;
  }
  onMessage(envelope, reply);
}

function frameLimitOf(nc: NatsConnection): number {
  const maxPayload = nc.info?.max_payload;
  return maxPayload !== undefined && maxPayload > 0 ? Math.min(MAX_FRAME_BYTES, maxPayload) : MAX_FRAME_BYTES;
}

function unpackReplyMsg(msg: Msg, address: string): unknown {
  return unpackReply(msg.data, address);
}

export function unpackReply(data: Uint8Array, address: string): unknown {
  const env = decodeEnvelope(data);
  if (env.kind === EnvelopeKind.REPLY_ERROR) {
    const err = SkeinError.fromWire(env.body as WireError);
    if (err.context.address === undefined) err.context.address = address;
    throw err;
  }
  return env.body;
}

