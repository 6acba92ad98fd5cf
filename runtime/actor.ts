// Declaring actors: a kind name, the zod schema of every message it accepts, its state and
// one handler per message type. An actor processes one message at a time; a handler that
// has to wait for something else (a long poll, a replication ack) takes `ctx.deferReply()`,
// parks the handle in its state and returns, so the mailbox keeps moving.

import type { z } from "zod";
import type { NatsConnection } from "@nats-io/transport-node";
import type { SupervisionOptions } from "./types.js";

export interface ReplyHandle<T = unknown> {
  resolve(value: T): void;
  reject(error: unknown): void;
  /** True once resolved, rejected or abandoned by the asker (tell). */
  readonly settled: boolean;
}

export interface AskOptions {
  /** Mandatory upper bound on the wait, ms. Default 5000. */
  timeoutMs?: number;
}

export interface ActorContext<A = unknown> {
  /** This actor's address. */
  readonly self: string;
  /** Hosting node id. */
  readonly node: string;
  /** Index of the hosting worker thread (-1 on a main thread). */
  readonly worker: number;
  readonly args: A;
  /** Cluster namespace of this actor's node. */
  readonly cluster: string;
  /** The hosting thread's NATS connection, for actors that use JetStream or KV directly. */
  readonly nats: NatsConnection;
  tell(address: string, type: string, body: unknown): void;
  ask<T = unknown>(address: string, type: string, body: unknown, options?: AskOptions): Promise<T>;
  /** Take over the reply of the message being handled; the handler's return value is ignored. */
  deferReply<T = unknown>(): ReplyHandle<T>;
  /** Deliver `type`/`body` to this actor after `ms` (a normal mailbox message). Returns a cancel function. */
  schedule(ms: number, type: string, body: unknown): () => void;
  /** Stop this actor after the current message. */
  stop(): void;
}

type Schemas = Record<string, z.ZodType>;

export interface ActorDefinition<S = any, A = any, M extends Schemas = Schemas> {
  /** Kind name, unique within its module, e.g. "counter". */
  kind: string;
  /** Message type name → zod schema of its body. */
  messages: M;
  /** Schema of the spawn arguments. */
  args?: z.ZodType<A>;
  supervision?: Partial<SupervisionOptions>;
  /** Messages waiting before MAILBOX_FULL. Default 10000. */
  mailboxCapacity?: number;
  /** Builds the state; runs at start and again at every restart. */
  init(ctx: ActorContext<A>): S | Promise<S>;
  handlers: { [K in keyof M]: (state: S, message: z.infer<M[K]>, ctx: ActorContext<A>) => unknown };
  /**
   * After init, before the first message, with the actor already subscribed (the server has its
   * subscription): state read here misses no message, since anything sent meanwhile waits in the
   * mailbox until this is done. The spawn completes after it.
   */
  started?(state: S, ctx: ActorContext<A>): void | Promise<void>;
  /** On stop (not on crash): release files, timers, parked replies. */
  stopped?(state: S, ctx: ActorContext<A>): void | Promise<void>;
}

/** Identity function that gives TypeScript the message types of an actor. */
export function defineActor<S, A, M extends Schemas>(definition: ActorDefinition<S, A, M>): ActorDefinition<S, A, M> {
  return definition;
}

/** Reply type of message K of actor definition D. */
export type ReplyOf<D, K extends string> = D extends ActorDefinition<any, any, any>
  ? K extends keyof D["handlers"]
    ? Awaited<ReturnType<D["handlers"][K]>>
    : never
  : never;

/** Body type of message K of actor definition D. */
export type MessageOf<D, K extends string> = D extends ActorDefinition<any, any, infer M>
  ? K extends keyof M
    ? z.infer<M[K]>
    : never
  : never;
