// PortRef: the main thread's handle on an actor in one of its own workers, over a
// MessagePort instead of NATS. Client facades use it to hand whole batches of records to
// their producer/consumer actors with transferable buffers: one postMessage per batch, never
// one per record. Every ask has a timeout; pending asks fail with WORKER_LOST when the port
// closes (the worker died), and the next ask opens a fresh port to the re-created actor.

import type { MessagePort } from "node:worker_threads";
import { ErrorCode, SkeinError, type WireError } from "../protocol/errors.js";

export interface PortRequest {
  id: number;
  type: string;
  body: unknown;
  timeoutMs: number;
}

export type PortReply = { id: number; ok: true; body: unknown } | { id: number; ok: false; error: WireError };

/**
 * Where a reply keeps the buffers its actor hands over with it. A symbol key: structured
 * clone, JSON and the envelope codec all skip it, so the mark never leaves the worker. From
 * the registry (Symbol.for): actor modules are bundles of their own, each with its own copy
 * of this file, and the worker's bundle must see their marks.
 */
const TRANSFER = Symbol.for("skein.transfer");

/**
 * Marks `buffers` (each referenced by `reply`) to be moved, not copied, when the reply goes
 * back over a MessagePort: the worker loses them (they become detached, length 0 there). Only
 * for buffers the actor allocated itself and never reads again once it has replied: never a
 * view into something a NATS connection, a log or another reply still holds. A reply that
 * goes over NATS instead is encoded as usual and the mark is ignored.
 */
export function transferWith<T extends object>(reply: T, buffers: ArrayBuffer[]): T {
  (reply as { [TRANSFER]?: ArrayBuffer[] })[TRANSFER] = buffers;
  return reply;
}

/** The buffers transferWith marked on a reply, each once (postMessage refuses duplicates). */
export function transferListOf(reply: unknown): ArrayBuffer[] {
  const marked = typeof reply === "object" && reply !== null ? (reply as { [TRANSFER]?: ArrayBuffer[] })[TRANSFER] : undefined;
  return marked ? [...new Set(marked)] : [];
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: unknown): void;
  timer: ReturnType<typeof setTimeout>;
}

export class PortRef {
  private port: Promise<MessagePort> | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;

  constructor(
    readonly address: string,
    private readonly open: () => Promise<MessagePort>,
  ) {}

  /** Ask the actor; `transfer` lists buffers handed over (they become unusable here). */
  async ask<T = unknown>(type: string, body: unknown, options: { timeoutMs?: number; transfer?: ArrayBuffer[] } = {}): Promise<T> {
    if (this.closed) throw new SkeinError(ErrorCode.NOT_CONNECTED, `port to ${this.address} is closed`, { address: this.address });
    const port = await this.connect();
    const timeoutMs = options.timeoutMs ?? 30_000;
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new SkeinError(ErrorCode.TIMEOUT, `ask ${type} to ${this.address} timed out after ${timeoutMs} ms`, { address: this.address, type, timeoutMs }));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      port.postMessage({ id, type, body, timeoutMs } satisfies PortRequest, options.transfer ?? []);
    });
  }

  private connect(): Promise<MessagePort> {
    if (!this.port) {
      const opening = this.open().then((port) => {
        port.on("message", (reply: PortReply) => this.onReply(reply));
        port.on("close", () => this.onClose(opening));
        return port;
      });
      opening.catch(() => {
        if (this.port === opening) this.port = null;
      });
      this.port = opening;
    }
    return this.port;
  }

  private onReply(reply: PortReply): void {
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.pending.delete(reply.id);
    clearTimeout(p.timer);
    if (reply.ok) p.resolve(reply.body);
    else p.reject(SkeinError.fromWire(reply.error));
  }

  private onClose(which: Promise<MessagePort>): void {
    if (this.port === which) this.port = null;
    const lost = new SkeinError(ErrorCode.WORKER_LOST, `the worker hosting ${this.address} exited`, { address: this.address });
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(lost);
      this.pending.delete(id);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const port = await this.port?.catch(() => null);
    port?.close();
  }
}
