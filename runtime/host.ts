// An actor host: the actors of one thread (a worker, or a process's main thread), their
// mailboxes and supervision. Each actor is an ActorCell that handles one message at a time.

import { pathToFileURL } from "node:url";
import type { Subscription } from "@nats-io/transport-node";
import { EnvelopeKind, localEnvelope, type Envelope } from "../protocol/envelope.js";
import { ErrorCode, SkeinError, toSkeinError, type WireError } from "../protocol/errors.js";
import { parseAddress } from "../protocol/address.js";
import type { ActorContext, ActorDefinition, AskOptions, ReplyHandle } from "./actor.js";
import type { NatsTransport, ReplyFn } from "./transport.js";
import { localThroughFaults } from "./faults.js";
import {
  DEFAULT_ASK_TIMEOUT_MS,
  DEFAULT_MAILBOX_CAPACITY,
  DEFAULT_SUPERVISION,
  type ActorInfo,
  type RuntimeEvent,
  type SpawnSpec,
  type SupervisionOptions,
} from "./types.js";
import { BUILTIN_ACTORS } from "./builtins.js";

interface Delivery {
  type: string;
  body: unknown;
  reply: ReplyFn | null;
  deferred: boolean;
}

export interface HostOptions {
  node: string;
  worker: number;
  transport: NatsTransport;
  onEvent(event: RuntimeEvent): void;
  /**
   * Called after an actor whose supervision strategy is "escalate" failed and was stopped: a
   * worker thread ends itself (its supervisor restarts it with all its actors); a process's
   * main thread logs.
   */
  escalate(address: string, error: unknown): void;
}

export class ActorHost {
  private readonly cells = new Map<string, ActorCell>();
  private readonly modules = new Map<string, Promise<Record<string, unknown>>>();

  constructor(readonly options: HostOptions) {}

  get node(): string {
    return this.options.node;
  }

  async spawn(spec: SpawnSpec): Promise<ActorInfo> {
    const def = await this.resolve(spec);
    return this.spawnDefinition(def, spec.address, spec.args);
  }

  async spawnDefinition(def: ActorDefinition, address: string, rawArgs: unknown): Promise<ActorInfo> {
    const a = parseAddress(address);
    if (a.node !== this.options.node) {
      throw new SkeinError(ErrorCode.INVALID_REQUEST, `address ${address} does not belong to node ${this.options.node}`, { address, field: "address" });
    }
    if (this.cells.has(address)) {
      throw new SkeinError(ErrorCode.INVALID_REQUEST, `an actor already runs at ${address}`, { address, field: "address" });
    }
    let args = rawArgs;
    if (def.args) {
      const parsed = def.args.safeParse(rawArgs);
      if (!parsed.success) throw invalidRequest(address, "args", parsed.error.issues);
      args = parsed.data;
    }
    const cell = new ActorCell(this, def, address, args);
    this.cells.set(address, cell);
    try {
      await cell.start();
    } catch (e) {
      if (this.cells.get(address) === cell) this.cells.delete(address);
      throw toSkeinError(e, { address });
    }
    return cell.info();
  }

  async stop(address: string, reason = "stopped"): Promise<boolean> {
    const cell = this.cells.get(address);
    if (!cell) return false;
    this.cells.delete(address);
    await cell.stop(reason);
    return true;
  }

  async stopAll(reason: string): Promise<void> {
    await Promise.all([...this.cells.keys()].map((a) => this.stop(a, reason)));
  }

  list(): ActorInfo[] {
    return [...this.cells.values()].map((c) => c.info());
  }

  has(address: string): boolean {
    return this.cells.has(address);
  }

  tell(from: string | null, address: string, type: string, body: unknown): void {
    const local = this.cells.get(address);
    if (local) {
      // Same-thread fast path: the value it would have over NATS, minus the network hop (and
      // minus copies of binary fields, see localEnvelope).
      const filter = this.options.transport.filter;
      if (filter !== null) return localThroughFaults(filter, from, address, (r) => local.deliverEnvelope(localEnvelope(EnvelopeKind.MESSAGE, type, body), r), null);
      local.deliverEnvelope(localEnvelope(EnvelopeKind.MESSAGE, type, body), null);
      return;
    }
    this.options.transport.tell(address, type, body, from);
  }

  ask<T>(from: string | null, address: string, type: string, body: unknown, options?: AskOptions): Promise<T> {
    const timeoutMs = options?.timeoutMs ?? DEFAULT_ASK_TIMEOUT_MS;
    const local = this.cells.get(address);
    if (!local) return this.options.transport.ask(address, type, body, timeoutMs, from) as Promise<T>;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new SkeinError(ErrorCode.TIMEOUT, `ask ${type} to ${address} timed out after ${timeoutMs} ms`, { address, type, timeoutMs }));
      }, timeoutMs);
      const reply: ReplyFn = (kind, replyType, replyBody) => {
        clearTimeout(timer);
        try {
          const env = localEnvelope(kind, replyType, replyBody);
          if (env.kind !== EnvelopeKind.REPLY_ERROR) return resolve(env.body as T);
          const err = SkeinError.fromWire(env.body as WireError);
          if (err.context.address === undefined) err.context.address = address;
          reject(err);
        } catch (e) {
          reject(e);
        }
      };
      const filter = this.options.transport.filter;
      if (filter !== null) return localThroughFaults(filter, from, address, (r) => local.deliverEnvelope(localEnvelope(EnvelopeKind.MESSAGE, type, body), r), reply);
      local.deliverEnvelope(localEnvelope(EnvelopeKind.MESSAGE, type, body), reply);
    });
  }

  /**
   * Delivers a message that already crossed a thread boundary as a structured clone (a
   * MessagePort from the application's main thread): no envelope round trip, the body is
   * already this thread's own copy. Resolves with the handler's reply, typed errors reject.
   */
  deliverDirect(address: string, type: string, body: unknown, timeoutMs: number): Promise<unknown> {
    const local = this.cells.get(address);
    if (!local) return Promise.reject(new SkeinError(ErrorCode.ACTOR_NOT_FOUND, `no actor at ${address} in this worker`, { address, type }));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new SkeinError(ErrorCode.TIMEOUT, `ask ${type} to ${address} timed out after ${timeoutMs} ms`, { address, type, timeoutMs })), timeoutMs);
      local.deliverEnvelope({ kind: EnvelopeKind.MESSAGE, type, body }, (kind, _replyType, replyBody) => {
        clearTimeout(timer);
        if (kind === EnvelopeKind.REPLY_ERROR) reject(SkeinError.fromWire(replyBody as WireError));
        else resolve(replyBody);
      });
    });
  }

  emit(event: RuntimeEvent): void {
    this.options.onEvent(event);
  }

  private async resolve(spec: SpawnSpec): Promise<ActorDefinition> {
    if (!spec.module) {
      const builtin = BUILTIN_ACTORS[spec.kind];
      if (!builtin) throw new SkeinError(ErrorCode.INVALID_REQUEST, `unknown built-in actor kind "${spec.kind}" (give a module)`, { field: "kind" });
      return builtin;
    }
    const url = spec.module.startsWith("file:") ? spec.module : pathToFileURL(spec.module).href;
    let loading = this.modules.get(url);
    if (!loading) {
      loading = import(url) as Promise<Record<string, unknown>>;
      this.modules.set(url, loading);
    }
    let mod: Record<string, unknown>;
    try {
      mod = await loading;
    } catch (e) {
      this.modules.delete(url);
      throw new SkeinError(ErrorCode.INVALID_REQUEST, `cannot load actor module ${spec.module}: ${(e as Error).message}`, { field: "module" }, { cause: e });
    }
    for (const value of Object.values(mod)) {
      const d = value as ActorDefinition | undefined;
      if (d && typeof d === "object" && d.kind === spec.kind && typeof d.handlers === "object") return d;
    }
    throw new SkeinError(ErrorCode.INVALID_REQUEST, `module ${spec.module} exports no actor of kind "${spec.kind}"`, { field: "kind" });
  }
}

/** One actor: its mailbox, its state, its supervision. */
class ActorCell {
  private queue: Delivery[] = [];
  private head = 0;
  private running = false;
  /** False until init and started are done: earlier local deliveries wait in the mailbox. */
  private ready = false;
  private stopped = false;
  private state: unknown;
  private current: Delivery | null = null;
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();
  private readonly restartTimes: number[] = [];
  private subscription: Subscription | null = null;
  private readonly supervision: SupervisionOptions;
  private readonly capacity: number;
  private readonly ctx: ActorContext;
  processed = 0;
  restarts = 0;

  constructor(
    private readonly host: ActorHost,
    private readonly def: ActorDefinition,
    readonly address: string,
    args: unknown,
  ) {
    this.supervision = { ...DEFAULT_SUPERVISION, ...def.supervision };
    this.capacity = def.mailboxCapacity ?? DEFAULT_MAILBOX_CAPACITY;
    this.ctx = this.makeContext(args);
  }

  /**
   * init, then the subscription, then `started`. Subscribed (and the server sure to have it)
   * before `started` runs, an actor that reads some state there misses no message sent after
   * that state changed: such messages wait in the mailbox until `started` is done. (A replica
   * that read its partition state first and subscribed after lost a Become sent in between,
   * and led a stale epoch.)
   */
  async start(): Promise<void> {
    this.state = await this.def.init(this.ctx);
    this.subscription = this.host.options.transport.subscribe(
      this.address,
      (env, reply) => this.deliverEnvelope(env, reply),
      (error, reply) => reply?.(EnvelopeKind.REPLY_ERROR, "error", { code: ErrorCode.INVALID_REQUEST, message: error.message, context: { address: this.address } }),
    );
    try {
      await this.host.options.transport.registered();
      if (this.def.started) await this.def.started(this.state, this.ctx);
    } catch (e) {
      this.subscription.unsubscribe();
      throw e;
    }
    // Stopped while init ran (its spawn timed out and was taken back): it must not come alive.
    if (this.stopped) throw new SkeinError(ErrorCode.ACTOR_NOT_FOUND, `${this.address} was stopped before it finished starting`, { address: this.address });
    this.ready = true;
    if (!this.running && this.head < this.queue.length) this.drain();
    this.host.emit({ type: "actor.started", node: this.host.node, worker: this.ctx.worker, address: this.address, kind: this.def.kind, at: Date.now() });
  }

  info(): ActorInfo {
    return {
      address: this.address,
      kind: this.def.kind,
      worker: this.ctx.worker,
      mailboxDepth: this.queue.length - this.head,
      processed: this.processed,
      restarts: this.restarts,
    };
  }

  deliverEnvelope(env: Envelope, reply: ReplyFn | null): void {
    if (this.stopped) {
      reply?.(EnvelopeKind.REPLY_ERROR, "error", { code: ErrorCode.ACTOR_NOT_FOUND, message: `actor ${this.address} has stopped`, context: { address: this.address } });
      return;
    }
    if (this.queue.length - this.head >= this.capacity) {
      reply?.(EnvelopeKind.REPLY_ERROR, "error", { code: ErrorCode.MAILBOX_FULL, message: `mailbox of ${this.address} is full (${this.capacity} messages)`, context: { address: this.address } });
      return;
    }
    this.queue.push({ type: env.type, body: env.body, reply, deferred: false });
    if (!this.running && this.ready) this.drain();
  }

  /**
   * Runs the mailbox until it is empty, one message at a time: synchronous handlers back to
   * back, and after a handler that left something to wait for, the drain resumes once it is
   * done.
   */
  private drain(): void {
    this.running = true;
    while (this.head < this.queue.length && !this.stopped) {
      const d = this.queue[this.head];
      this.queue[this.head++] = undefined as unknown as Delivery;
      if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      const pending = this.process(d);
      if (pending) {
        void pending.then(() => this.drain());
        return;
      }
    }
    this.running = false;
  }

  /**
   * Handles one message. Returns a promise only when something asynchronous is left (an async
   * handler, a restart), so a mailbox of synchronous handlers drains without a microtask turn
   * per message.
   */
  private process(d: Delivery): Promise<void> | undefined {
    const schema = this.def.messages[d.type];
    if (!schema) {
      d.reply?.(EnvelopeKind.REPLY_ERROR, "error", {
        code: ErrorCode.INVALID_REQUEST,
        message: `${this.def.kind} actor does not accept message type "${d.type}" (accepts: ${Object.keys(this.def.messages).join(", ")})`,
        context: { address: this.address, field: "type" },
      });
      return undefined;
    }
    const parsed = schema.safeParse(d.body);
    if (!parsed.success) {
      const err = invalidRequest(this.address, d.type, parsed.error.issues);
      d.reply?.(EnvelopeKind.REPLY_ERROR, "error", err.toWire());
      return undefined;
    }
    this.current = d;
    let restart: Promise<void> | undefined;
    try {
      const value = this.def.handlers[d.type](this.state, parsed.data, this.ctx);
      if (value instanceof Promise) return this.completeAsync(d, value);
      this.complete(d, value);
    } catch (e) {
      restart = this.fail(d, e);
    }
    if (restart) {
      return restart.finally(() => {
        this.current = null;
      });
    }
    this.current = null;
    return undefined;
  }

  private async completeAsync(d: Delivery, pending: Promise<unknown>): Promise<void> {
    try {
      this.complete(d, await pending);
    } catch (e) {
      await this.fail(d, e);
    } finally {
      this.current = null;
    }
  }

  private complete(d: Delivery, value: unknown): void {
    this.processed++;
    if (!d.deferred) d.reply?.(EnvelopeKind.REPLY_OK, "reply", value);
  }

  /** Answers for a handler that threw; returns the restart to wait for unless it was a SkeinError. */
  private fail(d: Delivery, e: unknown): Promise<void> | undefined {
    this.processed++;
    if (e instanceof SkeinError) {
      if (!d.deferred) d.reply?.(EnvelopeKind.REPLY_ERROR, "error", withAddress(e, this.address));
      return undefined;
    }
    if (!d.deferred) {
      d.reply?.(EnvelopeKind.REPLY_ERROR, "error", {
        code: ErrorCode.ACTOR_FAILED,
        message: `${this.address} failed handling ${d.type}: ${(e as Error)?.message ?? e}`,
        context: { address: this.address },
      });
    }
    return this.onFailure(e);
  }

  private async onFailure(error: unknown): Promise<void> {
    const now = Date.now();
    this.restartTimes.push(now);
    while (this.restartTimes.length && this.restartTimes[0] < now - this.supervision.withinMs) this.restartTimes.shift();
    const overBudget = this.restartTimes.length > this.supervision.maxRestarts;
    if (this.supervision.strategy === "escalate") {
      // Stopped first, so no message reaches the failed state; the host then decides (a worker
      // ends and is restarted with all its actors; a main thread has nobody above and logs).
      await this.host.stop(this.address, `escalated: ${(error as Error)?.message ?? error}`);
      this.host.options.escalate(this.address, error);
      return;
    }
    if (this.supervision.strategy === "stop" || overBudget) {
      const reason = overBudget ? `restart budget exhausted (${this.supervision.maxRestarts} in ${this.supervision.withinMs} ms)` : "failed";
      await this.host.stop(this.address, `${reason}: ${(error as Error)?.message ?? error}`);
      return;
    }
    this.restarts++;
    this.cancelTimers();
    try {
      this.state = await this.def.init(this.ctx);
      if (this.def.started) await this.def.started(this.state, this.ctx);
      this.host.emit({ type: "actor.restarted", node: this.host.node, worker: this.ctx.worker, address: this.address, error: String((error as Error)?.message ?? error), at: Date.now() });
    } catch (e) {
      await this.host.stop(this.address, `restart failed: ${(e as Error)?.message ?? e}`);
    }
  }

  async stop(reason: string): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.subscription?.unsubscribe();
    this.cancelTimers();
    for (let i = this.head; i < this.queue.length; i++) {
      this.queue[i]?.reply?.(EnvelopeKind.REPLY_ERROR, "error", { code: ErrorCode.ACTOR_NOT_FOUND, message: `actor ${this.address} stopped`, context: { address: this.address } });
    }
    this.queue = [];
    this.head = 0;
    // An actor whose init never finished has no state to release and was never announced.
    if (!this.ready) return;
    try {
      if (this.def.stopped) await this.def.stopped(this.state, this.ctx);
    } catch (e) {
      console.error(`skein: stopped hook of ${this.address} threw:`, e);
    }
    this.host.emit({ type: "actor.stopped", node: this.host.node, worker: this.ctx.worker, address: this.address, reason, at: Date.now() });
  }

  private cancelTimers(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  private makeContext(args: unknown): ActorContext {
    const cell = this;
    const host = this.host;
    return {
      self: this.address,
      node: host.node,
      worker: host.options.worker,
      args,
      cluster: host.options.transport.cluster,
      nats: host.options.transport.nc,
      tell: (address, type, body) => host.tell(cell.address, address, type, body),
      ask: (address, type, body, options) => host.ask(cell.address, address, type, body, options),
      deferReply<T>(): ReplyHandle<T> {
        const d = cell.current;
        if (!d) throw new Error("deferReply() may only be called while handling a message");
        d.deferred = true;
        return new DeferredReply<T>(d, cell.address);
      },
      schedule(ms, type, body) {
        const t = setTimeout(() => {
          cell.timers.delete(t);
          cell.deliverEnvelope({ kind: EnvelopeKind.MESSAGE, type, body }, null);
        }, ms);
        cell.timers.add(t);
        return () => {
          clearTimeout(t);
          cell.timers.delete(t);
        };
      },
      stop() {
        void host.stop(cell.address, "stopped by itself");
      },
    };
  }
}

/**
 * A deferred reply: answers its delivery at most once. A class, not an object literal: a
 * literal with a getter costs ~1 µs to build in V8 (it takes the slow path), this ~0.15 µs,
 * and replicas and producers defer a reply per request. resolve and reject are bound (arrow
 * fields): handlers pass them on as callbacks, e.g. `.then(reply.resolve, reply.reject)`.
 */
class DeferredReply<T> implements ReplyHandle<T> {
  private done: boolean;

  constructor(
    private readonly d: Delivery,
    private readonly address: string,
  ) {
    this.done = d.reply === null;
  }

  get settled(): boolean {
    return this.done;
  }

  readonly resolve = (value: T): void => {
    if (this.done) return;
    this.done = true;
    this.d.reply?.(EnvelopeKind.REPLY_OK, "reply", value);
  };

  readonly reject = (error: unknown): void => {
    if (this.done) return;
    this.done = true;
    this.d.reply?.(EnvelopeKind.REPLY_ERROR, "error", withAddress(toSkeinError(error), this.address));
  };
}

function withAddress(e: SkeinError, address: string) {
  const w = e.toWire();
  return { ...w, context: { address, ...w.context } };
}

function invalidRequest(address: string, what: string, issues: ReadonlyArray<{ path: PropertyKey[]; message: string }>): SkeinError {
  const first = issues[0];
  const field = first ? first.path.map(String).join(".") || "(root)" : "(root)";
  return new SkeinError(ErrorCode.INVALID_REQUEST, `invalid ${what} for ${address}: ${field}: ${first?.message ?? "invalid"}`, { address, field });
}
