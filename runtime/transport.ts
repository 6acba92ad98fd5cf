// The NATS side of an actor host: mailbox subscriptions, tell (publish) and ask (request with
// a mandatory timeout). Core NATS is at-most-once; nothing here retries on its own.

import type { NatsConnection, Subscription, Msg, MsgHdrs } from "@nats-io/transport-node";
import { addressToSubject } from "../protocol/address.js";
import { decodeEnvelope, encodeEnvelope, EnvelopeKind, type Envelope } from "../protocol/envelope.js";
import { ErrorCode, SkeinError, type WireError } from "../protocol/errors.js";
import { askThroughFaults, receiveThroughFaults, tellThroughFaults, type FaultInjector, type RespondFn } from "./faults.js";

export type InboundHandler = (envelope: Envelope, reply: ReplyFn | null) => void;
export type ReplyFn = (kind: EnvelopeKind, type: string, body: unknown) => void;

/** Judges whether a message from → to passes, is dropped, delayed or duplicated; installed only when faults are allowed (faults.ts). */
export type DeliveryFilter = FaultInjector;

/** Addresses whose subject is remembered; escaping an address costs more than a publish. */
const SUBJECT_CACHE_ENTRIES = 10_000;

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

  constructor(
    readonly nc: NatsConnection,
    readonly cluster: string,
    private readonly maxBufferedBytes: number,
  ) {
    void this.watchStatus();
  }

  private async watchStatus(): Promise<void> {
    for await (const s of this.nc.status()) {
      if (s.type === "disconnect" && this.connected) {
        this.connected = false;
        this.connectionListeners.forEach((l) => l(false));
      }
      if (s.type === "reconnect" && !this.connected) {
        this.connected = true;
        this.buffered = 0;
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

  /** Bytes of tells accepted since NATS was lost (nats.js sends them on reconnect); 0 while connected. */
  get bufferedBytesWhileDisconnected(): number {
    return this.connected ? 0 : this.buffered;
  }

  /** Calls `listener(false)` when NATS is lost and `listener(true)` when it is back. Returns the way to stop. */
  onConnectionChange(listener: (connected: boolean) => void): () => void {
    this.connectionListeners.add(listener);
    return () => this.connectionListeners.delete(listener);
  }

  subscribe(address: string, onMessage: InboundHandler, onInvalid: (error: SkeinError, reply: ReplyFn | null) => void): Subscription {
    const subject = addressToSubject(this.cluster, address);
    return this.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return;
        if (this.filter !== null) {
          receiveThroughFaults(this.filter, address, msg, (respond) => deliver(msg, respond ? replyVia(respond) : null, onMessage, onInvalid));
          return;
        }
        deliver(msg, msg.reply ? replyFor(msg) : null, onMessage, onInvalid);
      },
    });
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
      if (this.buffered + data.length > this.maxBufferedBytes) {
        this.droppedWhileDisconnected++;
        return;
      }
      this.buffered += data.length;
      this.held.push(() => this.publish(address, data, from));
      return;
    }
    this.publish(address, data, from);
  }

  /** Callers checked the connection: tell() just before, the held replay on 'reconnect'. */
  private publish(address: string, data: Uint8Array, from: string | null): void {
    if (this.filter !== null) {
      tellThroughFaults(this.filter, from, address, (h) => !this.nc.isClosed() && this.nc.publish(this.subjectOf(address), data, { headers: h }));
      return;
    }
    this.nc.publish(this.subjectOf(address), data);
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

  async ask(address: string, type: string, body: unknown, timeoutMs: number, from: string | null = null): Promise<unknown> {
    if (!this.connected) {
      throw new SkeinError(ErrorCode.NOT_CONNECTED, `NATS is disconnected; cannot ask ${address}`, { address });
    }
    const subject = this.subjectOf(address);
    const data = encodeEnvelope(EnvelopeKind.MESSAGE, type, body);
    const msg = this.filter === null
      ? await this.request(subject, data, timeoutMs, undefined, address, type)
      : await askThroughFaults(this.filter, from, address, type, timeoutMs, (ms, h) => this.request(subject, data, ms, h, address, type));
    return unpackReply(msg.data, address);
  }

  private async request(subject: string, data: Uint8Array, timeoutMs: number, headers: MsgHdrs | undefined, address: string, type: string): Promise<Msg> {
    try {
      return await this.nc.request(subject, data, headers ? { timeout: timeoutMs, headers } : { timeout: timeoutMs });
    } catch (e) {
      throw requestError(e, address, type, timeoutMs);
    }
  }
}

function deliver(msg: Msg, reply: ReplyFn | null, onMessage: InboundHandler, onInvalid: (error: SkeinError, reply: ReplyFn | null) => void): void {
  let envelope: Envelope;
  try {
    envelope = decodeEnvelope(msg.data);
  } catch (e) {
    onInvalid(e as SkeinError, reply);
    return;
  }
  onMessage(envelope, reply);
}

/** A reply function over a fault-judged respond (faults.ts); answers at most once. */
function replyVia(respond: RespondFn): ReplyFn {
  let sent = false;
  return (kind, type, body) => {
    if (sent) return;
    sent = true;
    respond(encodeEnvelope(kind, type, body), undefined);
  };
}

function replyFor(msg: Msg): ReplyFn {
  let sent = false;
  return (kind, type, body) => {
    if (sent) return;
    sent = true;
    msg.respond(encodeEnvelope(kind, type, body));
  };
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

function requestError(e: unknown, address: string, type: string, timeoutMs: number): SkeinError {
  const err = e as Error & { isNoResponders?: () => boolean; cause?: unknown };
  const noResponders =
    (typeof err?.isNoResponders === "function" && err.isNoResponders()) ||
    (err?.cause as Error | undefined)?.name === "NoRespondersError" ||
    err?.name === "NoRespondersError";
  if (noResponders) {
    return new SkeinError(ErrorCode.ACTOR_NOT_FOUND, `no actor at ${address}`, { address, type }, { cause: e });
  }
  const timedOut = err?.name === "TimeoutError" || (err?.cause as Error | undefined)?.name === "TimeoutError";
  if (timedOut) {
    return new SkeinError(ErrorCode.TIMEOUT, `ask ${type} to ${address} timed out after ${timeoutMs} ms`, { address, type, timeoutMs }, { cause: e });
  }
  return new SkeinError(ErrorCode.NOT_CONNECTED, `ask ${type} to ${address} failed: ${err?.message}`, { address, type }, { cause: e });
}
