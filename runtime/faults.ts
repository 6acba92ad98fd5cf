// Transport fault injection: drop, delay or duplicate actor messages between address
// patterns, and isolate a node (every actor message crossing its boundary is dropped while its
// NATS connection, KV and events stay up: the zombie-leader case). Only a node started with
// `allowFaults` installs the hook (NatsTransport.filter); everywhere else it is null and costs
// one comparison per message.
//
// Where a message is judged, so that each one is judged exactly once:
//   * a tell or an ask request: by the sender when its node allows faults (host.ts for the
//     same-thread fast path, transport.ts otherwise). The sender stamps the message with a
//     `Skein-From: <address>` NATS header; a stamped message is never judged again.
//   * an unstamped message (its sender is outside fault injection, e.g. an application's
//     client) is judged by the receiver, with an unknown sender: only a `from` pattern of `*`
//     (or an isolate rule) matches it.
//   * a reply: by the replier when its node allows faults (it knows the asker from the
//     request's stamp, else the asker is unknown), and it stamps the reply; else by the asker.
// So a rule must be installed on every node that allows faults (ActorSystem.injectFault per
// node, `skein chaos …` on every live broker). Messages to and from node agents (`$node@…`)
// are never affected: healing must always get through.
//
// Randomness and time sit behind the Random and Clock interfaces (FoundationDB style): a rule
// draws from its own generator seeded by (rule seed, thread), so a thread sees the same
// sequence of draws for the same seed.

import { headers, type Msg, type MsgHdrs } from "@nats-io/transport-node";
import { ErrorCode, SkeinError } from "../protocol/errors.js";
import type { FaultCounts, FaultSpec, InstalledFault } from "../protocol/node-agent.js";
import type { RuntimeEvent } from "./types.js";
import type { ReplyFn } from "./transport.js";

/** Uniform draws in [0, 1). */
export interface Random {
  next(): number;
}

/** Milliseconds since the epoch. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** mulberry32: a small, fast 32-bit generator; the same seed gives the same sequence. */
export function seededRandom(seed: number): Random {
  let a = seed >>> 0;
  return {
    next() {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    },
  };
}

/** FNV-1a of a string: mixes a thread's name into a rule's seed. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Header carrying the sender's address: the message was judged by its sender. */
export const FROM_HEADER = "Skein-From";

/** What happens to one message. */
export interface Verdict {
  drop: boolean;
  /** Extra latency, ms (0: none). */
  delayMs: number;
  /** Deliver it twice. */
  duplicate: boolean;
}

/** (sender, receiver) pairs whose delayed-message order is tracked per thread; beyond it the table restarts. */
const MAX_ORDERED_PAIRS = 10_000;

const PASS: Verdict = Object.freeze({ drop: false, delayMs: 0, duplicate: false });
const DROP: Verdict = Object.freeze({ drop: true, delayMs: 0, duplicate: false });

/** Glob on `path@node` compiled to a predicate; null is a sender outside fault injection. */
export function addressMatcher(pattern: string): (address: string | null) => boolean {
  const at = pattern.lastIndexOf("@");
  const pathGlob = at >= 0 ? pattern.slice(0, at) : pattern;
  const nodeGlob = at >= 0 ? pattern.slice(at + 1) : "*";
  if (pathGlob === "*" && nodeGlob === "*") return () => true;
  const re = new RegExp(`^${globToRegex(pathGlob)}@${globToRegex(nodeGlob)}$`);
  return (address) => {
    if (address === null) return false;
    return re.test(address.includes("@") ? address : `${address}@`);
  };
}

function globToRegex(glob: string): string {
  let out = "";
  for (const ch of glob) {
    if (ch === "*") out += "[^@]*";
    else if (ch === "?") out += "[^@]";
    else out += ch.replace(/[.+^${}()|[\]\\/]/g, "\\$&");
  }
  return out;
}

function nodeOf(address: string | null): string | null {
  if (address === null) return null;
  const at = address.lastIndexOf("@");
  return at >= 0 ? address.slice(at + 1) : null;
}

function isNodeAgent(address: string | null): boolean {
  return address !== null && address.startsWith("$node@");
}

interface CompiledRule {
  fault: InstalledFault;
  matches(from: string | null, to: string | null): boolean;
  random: Random;
  counts: FaultCounts;
}

/**
 * The rules of one thread (a worker or a node's main thread) and the judge of its messages.
 * This is the transport's DeliveryFilter.
 */
export class FaultInjector {
  private rules: CompiledRule[] = [];
  /**
   * Per (sender, receiver): when the last delayed message is due. A delay never reorders the
   * messages of one sender to one receiver (NATS keeps a publisher's order, and the runtime's
   * fencing relies on nothing else); jitter only spreads them out.
   */
  private readonly dueAt = new Map<string, number>();
  /** Address standing for this node's main thread as a sender (host calls with from = null). */
  readonly mainAddress: string;

  constructor(
    readonly node: string,
    /** Names this thread in seeds, e.g. "w0" or "main". */
    private readonly thread: string,
    readonly clock: Clock = systemClock,
  ) {
    this.mainAddress = `$main@${node}`;
  }

  /** Replaces the rule set; counters of rules that stay are kept. */
  setRules(faults: readonly InstalledFault[]): void {
    const previous = new Map(this.rules.map((r) => [r.fault.id, r]));
    this.rules = faults.map((fault) => {
      const kept = previous.get(fault.id);
      if (kept && kept.fault.installedAt === fault.installedAt) return { ...kept, fault };
      return {
        fault,
        matches: compileMatch(fault),
        random: seededRandom(fault.seed ^ hashString(`${this.node}/${this.thread}`)),
        counts: { id: fault.id, dropped: 0, delayed: 0, duplicated: 0 },
      };
    });
  }

  counts(): FaultCounts[] {
    return this.rules.map((r) => ({ ...r.counts }));
  }

  /** Judges one message; null is an address outside fault injection (unknown sender, or the asker of an unstamped request). */
  judge(from: string | null, to: string | null): Verdict {
    if (this.rules.length === 0 || isNodeAgent(from) || isNodeAgent(to)) return PASS;
    const now = this.clock.now();
    let delayMs = 0;
    let duplicate = false;
    for (const r of this.rules) {
      const f = r.fault;
      if (now >= f.expiresAt || !r.matches(from, to)) continue;
      if (f.probability < 1 && r.random.next() >= f.probability) continue;
      if (f.kind === "drop" || f.kind === "isolate") {
        r.counts.dropped++;
        return DROP;
      }
      if (f.kind === "delay") {
        delayMs += f.delayMs + (f.jitterMs > 0 ? Math.floor(r.random.next() * (f.jitterMs + 1)) : 0);
        r.counts.delayed++;
      } else {
        duplicate = true;
        r.counts.duplicated++;
      }
    }
    delayMs = this.inOrder(from, to, now, delayMs);
    return delayMs === 0 && !duplicate ? PASS : { drop: false, delayMs, duplicate };
  }

  /** The delay that keeps this message behind every earlier delayed one of the same pair. */
  private inOrder(from: string | null, to: string | null, now: number, delayMs: number): number {
    if (delayMs === 0 && this.dueAt.size === 0) return 0;
    const key = `${from ?? "?"}\u0000${to ?? "?"}`;
    const previous = this.dueAt.get(key);
    if (delayMs === 0 && (previous === undefined || previous <= now)) {
      if (previous !== undefined) this.dueAt.delete(key);
      return 0;
    }
    const due = Math.max(now + delayMs, previous ?? 0);
    if (this.dueAt.size >= MAX_ORDERED_PAIRS) this.dueAt.clear();
    this.dueAt.set(key, due);
    return due - now;
  }
}

function compileMatch(f: FaultSpec): (from: string | null, to: string | null) => boolean {
  if (f.kind === "isolate") {
    const node = f.node!;
    return (from, to) => (nodeOf(from) === node) !== (nodeOf(to) === node);
  }
  const fromMatch = addressMatcher(f.from);
  const toMatch = addressMatcher(f.to);
  return (from, to) => fromMatch(from) && toMatch(to);
}

/** Runs `send` as the verdict says: not at all, later, once or twice. */
export function perform(v: Verdict, send: () => void): void {
  if (v.drop) return;
  const run = v.duplicate
    ? () => {
        send();
        send();
      }
    : send;
  if (v.delayMs > 0) setTimeout(run, v.delayMs).unref?.();
  else run();
}

function stamp(from: string): MsgHdrs {
  const h = headers();
  h.set(FROM_HEADER, from);
  return h;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

function timeoutError(to: string, type: string, timeoutMs: number): SkeinError {
  return new SkeinError(ErrorCode.TIMEOUT, `ask ${type} to ${to} timed out after ${timeoutMs} ms`, { address: to, type, timeoutMs });
}

/** Sender side of a tell over NATS: publishes (stamped) as the verdict says. */
export function tellThroughFaults(filter: FaultInjector, from: string | null, to: string, publish: (h: MsgHdrs) => void): void {
  const sender = from ?? filter.mainAddress;
  const h = stamp(sender);
  perform(filter.judge(sender, to), () => publish(h));
}

/**
 * Sender side of an ask over NATS. A dropped request (or reply) surfaces as the TIMEOUT the
 * asker would see on a real network; a delay eats into the ask's timeout.
 */
export async function askThroughFaults(
  filter: FaultInjector,
  from: string | null,
  to: string,
  type: string,
  timeoutMs: number,
  request: (timeoutMs: number, h: MsgHdrs) => Promise<Msg>,
): Promise<Msg> {
  const started = filter.clock.now();
  const sender = from ?? filter.mainAddress;
  const v = filter.judge(sender, to);
  if (v.drop || v.delayMs >= timeoutMs) {
    await sleep(timeoutMs);
    throw timeoutError(to, type, timeoutMs);
  }
  if (v.delayMs > 0) await sleep(v.delayMs);
  const h = stamp(sender);
  const remaining = () => timeoutMs - (filter.clock.now() - started);
  if (v.duplicate) request(Math.max(1, remaining()), h).catch(() => undefined);
  const msg = await request(Math.max(1, remaining()), h);
  if (msg.headers?.has(FROM_HEADER)) return msg; // the replier judged its reply
  const rv = filter.judge(to, sender);
  if (rv.drop || rv.delayMs >= remaining()) {
    await sleep(remaining());
    throw timeoutError(to, type, timeoutMs);
  }
  if (rv.delayMs > 0) await sleep(rv.delayMs);
  return msg;
}

/** A reply function as the transport builds one for a request. */
export type RespondFn = (data: Uint8Array, h: MsgHdrs | undefined) => void;

/**
 * Receiver side over NATS: judges an unstamped message (its sender is outside fault
 * injection), and wraps the reply so the replier judges it. `deliver` hands the message to
 * the actor with the given respond function (null for a tell).
 */
export function receiveThroughFaults(filter: FaultInjector, to: string, msg: Msg, deliver: (respond: RespondFn | null) => void): void {
  const asker = msg.headers?.get(FROM_HEADER) || null;
  const respond: RespondFn | null = msg.reply
    ? (data) => {
        const h = stamp(to);
        perform(filter.judge(to, asker), () => msg.respond(data, { headers: h }));
      }
    : null;
  if (asker !== null) {
    deliver(respond); // judged by its sender
    return;
  }
  perform(filter.judge(null, to), () => deliver(respond));
}

/** Node-side bookkeeping of fault rules: install, expire, clear, count, and the events. */
export class NodeFaults {
  private rules: InstalledFault[] = [];
  private readonly timers = new Map<string, ReturnType<typeof setTimeout>>();

  constructor(
    private readonly node: string,
    /** The main thread's own injector. */
    private readonly injector: FaultInjector,
    /** Hands the full rule set to every worker (and to restarted ones later). */
    private readonly push: (rules: InstalledFault[]) => Promise<void>,
    /** Counters of every worker. */
    private readonly workerCounts: () => Promise<FaultCounts[]>,
    private readonly emit: (event: RuntimeEvent) => void,
    private readonly clock: Clock = systemClock,
  ) {}

  /** Installs (or replaces, by id) a rule for `spec.ms` from now. */
  async inject(spec: FaultSpec): Promise<InstalledFault> {
    const now = this.clock.now();
    const fault: InstalledFault = { ...spec, installedAt: now, expiresAt: now + spec.ms };
    this.cancelTimer(fault.id);
    this.rules = [...this.rules.filter((r) => r.id !== fault.id), fault];
    await this.apply();
    const timer = setTimeout(() => void this.remove([fault.id], "expired"), spec.ms);
    timer.unref?.();
    this.timers.set(fault.id, timer);
    this.emit({ type: "fault.injected", node: this.node, id: fault.id, kind: fault.kind, rule: fault, at: now });
    return fault;
  }

  /** Removes the given rules (every rule without ids); returns the ids removed. */
  clear(ids?: string[]): Promise<string[]> {
    return this.remove(ids ?? this.rules.map((r) => r.id), "cleared");
  }

  async list(): Promise<{ rules: InstalledFault[]; counts: FaultCounts[] }> {
    return { rules: [...this.rules], counts: await this.counts() };
  }

  /** Every thread's counters summed per rule. */
  async counts(): Promise<FaultCounts[]> {
    const all = [...this.injector.counts(), ...(await this.workerCounts().catch(() => []))];
    const byId = new Map<string, FaultCounts>();
    for (const c of all) {
      const sum = byId.get(c.id) ?? { id: c.id, dropped: 0, delayed: 0, duplicated: 0 };
      sum.dropped += c.dropped;
      sum.delayed += c.delayed;
      sum.duplicated += c.duplicated;
      byId.set(c.id, sum);
    }
    return [...byId.values()];
  }

  /** Clears every timer (node shutdown). */
  close(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  private async remove(ids: string[], reason: "expired" | "cleared"): Promise<string[]> {
    const gone = this.rules.filter((r) => ids.includes(r.id));
    if (gone.length === 0) return [];
    const counts = await this.counts();
    for (const r of gone) this.cancelTimer(r.id);
    this.rules = this.rules.filter((r) => !ids.includes(r.id));
    await this.apply();
    const at = this.clock.now();
    for (const r of gone) {
      const c = counts.find((x) => x.id === r.id) ?? { id: r.id, dropped: 0, delayed: 0, duplicated: 0 };
      this.emit({ type: "fault.healed", node: this.node, id: r.id, kind: r.kind, reason, counts: c, at });
    }
    return gone.map((r) => r.id);
  }

  private async apply(): Promise<void> {
    this.injector.setRules(this.rules);
    await this.push(this.rules);
  }

  private cancelTimer(id: string): void {
    const t = this.timers.get(id);
    if (t) clearTimeout(t);
    this.timers.delete(id);
  }
}

/** The refusal of a node that does not allow fault injection. */
export function faultsNotAllowed(node: string): SkeinError {
  return new SkeinError(
    ErrorCode.FAULTS_NOT_ALLOWED,
    `node ${node} was not started with fault injection allowed (skein broker --allow-faults, skein up --allow-faults, SkeinNode.start({ allowFaults: true }))`,
    { node },
  );
}

/**
 * The same-thread fast path (host.ts): judges the message from → to, and the reply (if any)
 * to → from. `deliver` puts the message in the mailbox with the reply function it is given.
 */
export function localThroughFaults(filter: FaultInjector, from: string | null, to: string, deliver: (reply: ReplyFn | null) => void, reply: ReplyFn | null): void {
  const sender = from ?? filter.mainAddress;
  const judged: ReplyFn | null = reply && ((kind, type, body) => perform(filter.judge(to, sender), () => reply(kind, type, body)));
  perform(filter.judge(sender, to), () => deliver(judged));
}
