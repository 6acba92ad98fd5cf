// Actors every worker can host without loading a module: the diagnostic actors used by
// `skein doctor`, the runtime tests and the actor benchmark.

import { z } from "zod";
import { defineActor, type ActorDefinition } from "./actor.js";

/** Answers pings with where it runs; can be told to crash (to exercise supervision). */
export const PingActor = defineActor({
  kind: "$ping",
  messages: {
    Ping: z.object({}).passthrough(),
    Echo: z.object({ payload: z.unknown().optional(), data: z.instanceof(Uint8Array).optional() }),
    Crash: z.object({ reason: z.string().default("crash requested") }),
    Count: z.object({}),
    Tick: z.object({}).passthrough(),
    Relay: z.object({ address: z.string(), timeoutMs: z.number().int().positive().max(60_000).default(5_000) }),
  },
  init: () => ({ ticks: 0, startedAt: Date.now() }),
  handlers: {
    Ping: (_s, _m, ctx) => ({ address: ctx.self, node: ctx.node, worker: ctx.worker, pid: process.pid }),
    Echo: (_s, m) => m,
    Crash: (_s, m) => {
      throw new Error(m.reason);
    },
    Count: (s) => ({ ticks: s.ticks, startedAt: s.startedAt }),
    Tick: (s) => {
      s.ticks++;
    },
    // Asks another actor's Ping from inside this one: exercises actor-to-actor asks. The reply
    // is parked, not awaited, so the mailbox keeps moving (and relaying to itself works).
    Relay: (_s, m, ctx) => {
      const reply = ctx.deferReply();
      ctx.ask(m.address, "Ping", {}, { timeoutMs: m.timeoutMs }).then(reply.resolve, reply.reject);
    },
  },
});

export const BUILTIN_ACTORS: Record<string, ActorDefinition> = {
  [PingActor.kind]: PingActor as ActorDefinition,
};
