// Asks over NATS answered through Skein's own reply multiplexer: one wildcard inbox
// subscription per connection and a Map of the pending asks by reply subject.
//
// nats.js's own request() multiplexes too, but per request it builds a RequestOne, a timeout
// promise, a Promise.race and, when the request completes, a `RequestError("cancelled")` (an
// Error with a captured stack, whatever noAsyncTraces says) that nobody sees: together several
// µs of CPU per ask, more than the rest of an ask's own work. Here an ask costs one Map entry,
// one timer and the one promise its caller waits on.
//
// The failures are the ones nc.request() gave, mapped the way the transport always mapped
// them (see requestError): no responders (the server's 503 status reply) is ACTOR_NOT_FOUND, a
// timeout is TIMEOUT, a closed or draining connection, a refused publish and a permission
// violation are NOT_CONNECTED with nats.js's message. An ask in flight across a disconnect
// waits for its reply or its timeout, as before: nats.js subscribes the inbox again on
// reconnect.

import {
  ClosedConnectionError,
  createInbox,
  DrainingConnectionError,
  InvalidArgumentError,
  NoRespondersError,
  PermissionViolationError,
  RequestError,
  TimeoutError,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type Subscription,
} from "@nats-io/transport-node";
import { ErrorCode, SkeinError } from "../protocol/errors.js";

/** nats.js's default when a request gives no timeout (or 0); kept so a 0 behaves as it did. */
const DEFAULT_REQUEST_TIMEOUT_MS = 1_000;

/** Turns a reply into the ask's value; a plain function of the reply, so no closure per ask. */
export type Settle = (msg: Msg, address: string) => unknown;

interface PendingAsk {
  /** The subject asked, to find the ask a publish permission violation names. */
  readonly subject: string;
  readonly address: string;
  readonly type: string;
  readonly timeoutMs: number;
  /** What the caller gets for the reply (it may throw); null: the reply message itself. */
  readonly settle: Settle | null;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

export class ReplyMux {
  private sub: Subscription | null = null;
  /** `<inbox>.`: a reply subject is this plus a token. */
  private prefix = "";
  private next = 0;
  /**
   * Asks waiting for their reply, by reply subject. Bounded by the callers' asks in flight:
   * every entry leaves at its reply, its timeout or the connection's close.
   */
  private readonly pending = new Map<string, PendingAsk>();

  constructor(private readonly nc: NatsConnection) {
    void nc.closed().then(() => this.failAll(new RequestError("connection closed")));
  }

  /** Asks in flight (for tests and stats). */
  get size(): number {
    return this.pending.size;
  }

  /**
   * Publishes `data` to `subject` with a reply subject of this connection's inbox and resolves
   * with the reply: `settle(reply, address)` when given (a throw rejects), else the reply message.
   * Failures reject with a SkeinError naming `address` and `type`.
   */
  request(
    subject: string,
    data: Uint8Array,
    timeoutMs: number,
    headers: MsgHdrs | undefined,
    address: string,
    type: string,
    settle: Settle | null,
  ): Promise<unknown> {
    const ms = timeoutMs || DEFAULT_REQUEST_TIMEOUT_MS;
    let refused: Error | null = null;
    if (this.nc.isClosed()) refused = new ClosedConnectionError();
    else if (this.nc.isDraining()) refused = new DrainingConnectionError();
    else if (!(ms >= 1)) refused = InvalidArgumentError.format("timeout", "must be greater than 0");
    if (refused !== null) return Promise.reject(requestError(refused, address, type, timeoutMs));
    let reply: string;
    try {
      reply = this.inbox() + (this.next++).toString(36);
    } catch (e) {
      return Promise.reject(requestError(e, address, type, timeoutMs));
    }
    return new Promise((resolve, reject) => {
      const ask: PendingAsk = { subject, address, type, timeoutMs, settle, resolve, reject, timer: undefined };
      this.pending.set(reply, ask);
      try {
        this.nc.publish(subject, data, headers === undefined ? { reply } : { reply, headers });
      } catch (e) {
        this.pending.delete(reply);
        reject(requestError(e, address, type, timeoutMs));
        return;
      }
      ask.timer = setTimeout(() => {
        if (this.pending.get(reply) !== ask) return;
        this.pending.delete(reply);
        reject(requestError(new TimeoutError(), address, type, timeoutMs));
      }, ms);
    });
  }

  /** A publish to `subject` was refused by the server's permissions: fails the oldest ask to it, as nats.js did. */
  publishDenied(error: PermissionViolationError): void {
    for (const [reply, ask] of this.pending) {
      if (ask.subject !== error.subject) continue;
      this.finish(reply, ask);
      ask.reject(requestError(new RequestError(error.message, { cause: error }), ask.address, ask.type, ask.timeoutMs));
      return;
    }
  }

  /** The inbox prefix, subscribing first if there is no subscription (the first ask, or after a refused one). */
  private inbox(): string {
    if (this.sub !== null) return this.prefix;
    const prefix = `${createInbox()}.`;
    this.sub = this.nc.subscribe(`${prefix}*`, { callback: (err, msg) => (err ? this.subscriptionFailed(err) : this.receive(msg)) });
    this.prefix = prefix;
    return prefix;
  }

  private receive(msg: Msg): void {
    const reply = msg.subject;
    const ask = this.pending.get(reply);
    if (ask === undefined) return; // after its timeout, or a duplicate: nobody waits for it
    this.finish(reply, ask);
    const data = msg.data;
    if (data.length === 0 && msg.headers?.code === 503) {
      const cause = new NoRespondersError(ask.subject);
      ask.reject(requestError(new RequestError(cause.message, { cause }), ask.address, ask.type, ask.timeoutMs));
      return;
    }
    if (ask.settle === null) {
      ask.resolve(msg);
      return;
    }
    try {
      ask.resolve(ask.settle(msg, ask.address));
    } catch (e) {
      ask.reject(e);
    }
  }

  private finish(reply: string, ask: PendingAsk): void {
    this.pending.delete(reply);
    clearTimeout(ask.timer);
  }

  /** The server refused the inbox subscription (permissions): every ask fails; the next one subscribes again. */
  private subscriptionFailed(err: Error): void {
    this.sub = null;
    this.failAll(new RequestError(err.message, { cause: err }));
  }

  private failAll(error: Error): void {
    const asks = [...this.pending];
    this.pending.clear();
    for (const [, ask] of asks) {
      clearTimeout(ask.timer);
      ask.reject(requestError(error, ask.address, ask.type, ask.timeoutMs));
    }
  }
}

/** A failed ask as a SkeinError; `e` is what nats.js's request() rejected with for the same failure. */
export function requestError(e: unknown, address: string, type: string, timeoutMs: number): SkeinError {
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
