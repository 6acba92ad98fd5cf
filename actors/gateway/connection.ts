// One client connection. Frames come in, responses go out in request order. Like a Kafka
// broker (which mutes a channel while a request is in flight), a request starts only after
// the one before it has been answered, with one exception: consecutive requests the
// `pipelinable` predicate accepts (Produce) overlap. That keeps every guarantee a client can
// see: a pipelined request is dispatched, up to sending its actor messages, before the next
// one starts, so an idempotent producer's batches reach each partition leader in the order
// it sent them; responses are still written in request order; anything else (a Metadata, a
// Fetch after a Produce) waits until everything before it has been answered.
//
// Bounds: at most `maxInFlightRequests` requests are queued or running. Request bytes held
// (frames queued or running, whose response is not written yet, plus a partial frame) stay
// within `maxRequestBytes`: while any request is held and that sum reaches the bound, the
// socket is paused, so TCP pushes back on the client; with nothing held, a partial frame
// may grow to the bound (the decoder refuses larger size prefixes). So one connection holds
// at most maxRequestBytes of requests plus one socket read (a frame is a view of the reads it
// arrived in, so a small frame can keep up to one read alive). A response waits for the socket
// to drain before the next one is written. A bad size prefix answers what came before it and
// then closes; a request the dispatcher refuses closes at once. Nothing a client sends can
// throw out of this class: one bad client never affects another.

import type { Socket } from "node:net";
import { FrameDecoder } from "../../protocol/kafka/framing.js";
import { MIN_REQUEST_HEADER_BYTES } from "../../protocol/kafka/header.js";

export type Outcome =
  | { kind: "response"; chunks: Uint8Array[] }
  /** acks=0 produce: Kafka sends nothing back. */
  | { kind: "none" }
  /** Unanswerable (unknown API, unsupported version, malformed body): close like Kafka does. */
  | { kind: "close"; reason: string };

export interface ConnectionLimits {
  maxRequestBytes: number;
  maxInFlightRequests: number;
  idleMs: number;
}

/** After a graceful close, a peer that does not read its last responses is cut off after this long, ms. */
const CLOSE_GRACE_MS = 5_000;

export class KafkaConnection {
  private readonly decoder: FrameDecoder;
  private readonly queue: Uint8Array[] = [];
  /** Bytes of the frames queued or running whose response is not written yet. */
  private heldBytes = 0;
  private pumping = false;
  private paused = false;
  /** Requests dispatched whose response is not written yet. */
  private inFlight = 0;
  /** False while a request that must not overlap is in flight. */
  private overlapAllowed = true;
  /** Writes responses in request order: each dispatched request appends its write. */
  private responses: Promise<void> = Promise.resolve();
  /** Set when the byte stream can no longer be read: answer what came before, then close. */
  private endReason: string | null = null;
  private ended = false;

  constructor(
    readonly socket: Socket,
    private readonly dispatch: (frame: Uint8Array) => Promise<Outcome>,
    private readonly limits: ConnectionLimits,
    private readonly onClose: (reason: string | null) => void,
    /** Whether a request may start while the ones before it are still running. */
    private readonly pipelinable: (frame: Uint8Array) => boolean = () => false,
  ) {
    this.decoder = new FrameDecoder(limits.maxRequestBytes, MIN_REQUEST_HEADER_BYTES);
    socket.setNoDelay(true);
    socket.setTimeout(limits.idleMs);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("timeout", () => {
      if (!this.pumping && this.queue.length === 0 && this.inFlight === 0) this.close(`idle for ${limits.idleMs} ms`);
    });
    // Errors (resets, writes after the peer left) end the connection; 'close' follows.
    socket.on("error", () => socket.destroy());
    socket.once("close", () => {
      this.ended = true;
      this.queue.length = 0;
      this.heldBytes = 0;
      this.onClose(this.endReason);
    });
  }

  private onData(chunk: Uint8Array): void {
    if (this.endReason !== null) return;
    this.decoder.push(chunk);
    this.fill();
    void this.pump();
  }

  /** Moves whole frames from the decoder to the queue, up to the in-flight bound; pauses reading at a bound. */
  private fill(): void {
    while (this.endReason === null && !this.requestsFull()) {
      let frame: Uint8Array | null;
      try {
        frame = this.decoder.next();
      } catch (e) {
        this.endReason = (e as Error).message;
        break;
      }
      if (frame === null) break;
      this.queue.push(frame);
      this.heldBytes += frame.length;
    }
    const full = this.endReason !== null || this.requestsFull() || this.bytesFull();
    if (full && !this.paused) this.socket.pause();
    else if (!full && this.paused) this.socket.resume();
    this.paused = full;
  }

  /** maxInFlightRequests are queued or running. */
  private requestsFull(): boolean {
    return this.queue.length + this.inFlight >= this.limits.maxInFlightRequests;
  }

  /** With a request held, no more bytes are read once held and partial bytes reach maxRequestBytes. */
  private bytesFull(): boolean {
    return this.heldBytes > 0 && this.heldBytes + this.decoder.bufferedBytes >= this.limits.maxRequestBytes;
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      for (;;) {
        this.fill();
        const frame = this.queue[0];
        if (frame === undefined || this.ended) break;
        const overlap = this.pipelinable(frame);
        if (this.inFlight > 0 && !(overlap && this.overlapAllowed)) {
          await this.responses; // everything before this request is answered first
          continue;
        }
        this.queue.shift();
        this.start(frame, overlap);
        if (!overlap) await this.responses;
      }
      if (this.endReason !== null && this.queue.length === 0 && !this.ended) {
        await this.responses;
        this.close(this.endReason);
      }
    } finally {
      this.pumping = false;
    }
  }

  /** Dispatches a request (its actor messages go out now) and queues its response's write. */
  private start(frame: Uint8Array, overlap: boolean): void {
    this.inFlight++;
    if (!overlap) this.overlapAllowed = false;
    const outcome = this.dispatch(frame).catch((e: unknown): Outcome => ({ kind: "close", reason: `internal error: ${(e as Error).message}` }));
    this.responses = this.responses.then(async () => {
      const o = await outcome;
      if (!this.ended) {
        if (o.kind === "close") this.close(o.reason);
        else if (o.kind === "response") await this.write(o.chunks);
      }
      this.heldBytes -= frame.length;
      if (--this.inFlight === 0) this.overlapAllowed = true;
      if (this.ended) return;
      this.fill(); // room again: resume reading
      void this.pump();
    }).catch((e: unknown) => this.close(`internal error: ${(e as Error).message}`));
  }

  private async write(chunks: Uint8Array[]): Promise<void> {
    const s = this.socket;
    s.cork();
    for (const c of chunks) s.write(c);
    s.uncork();
    if (!s.writableNeedDrain) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        s.off("drain", done);
        s.off("close", done);
        resolve();
      };
      s.on("drain", done);
      s.on("close", done);
    });
  }

  /** Stops reading, flushes what was written, then closes (cut off after CLOSE_GRACE_MS). */
  close(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.endReason ??= reason;
    this.queue.length = 0;
    this.heldBytes = 0;
    this.socket.pause();
    this.socket.end();
    setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref();
  }

  /** Request bytes received and not yet answered (partial frame plus queued and running requests). */
  get bufferedBytes(): number {
    return this.decoder.bufferedBytes + this.heldBytes;
  }
}
