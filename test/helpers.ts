// Shared test helpers: a private nats-server per suite, temp dirs, waiting on conditions.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:net";
import { startNatsServer, type NatsServerHandle } from "../runtime/nats-server.js";
import { ConsumerArgs } from "../protocol/client.js";
import type { ActorContext } from "../runtime/actor.js";

export { startNatsServer, type NatsServerHandle };

export function tempDir(prefix = "skein-test-"): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(check: () => T | Promise<T>, timeoutMs = 10_000, what = "condition"): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      lastError = e;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ""}`);
}

export function fixture(name: string): string {
  return new URL(`./fixtures/${name}.js`, import.meta.url).pathname;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Opens a raw socket, writes `bytes`, and resolves when the server has closed it (or after `ms`). */
export function hostile(port: number, bytes: Uint8Array, ms = 3_000): Promise<"closed" | "open"> {
  return new Promise((resolve) => {
    const s = connect({ port, host: "127.0.0.1" }, () => s.write(bytes));
    const timer = setTimeout(() => {
      s.destroy();
      resolve("open");
    }, ms);
    s.on("error", () => undefined);
    s.on("close", () => {
      clearTimeout(timer);
      resolve("closed");
    });
    s.resume();
  });
}

/**
 * SIGSTOPs a process and waits until every one of its threads has stopped. kill() returns once
 * the signal is queued; on a loaded machine a broker's busy threads ran on for tens of ms (a
 * "paused" follower fetched a record after its SIGSTOP was sent). Needs Linux /proc.
 */
export async function stopProcess(pid: number, timeoutMs = 10_000): Promise<void> {
  process.kill(pid, "SIGSTOP");
  await waitFor(() => allThreadsStopped(pid), timeoutMs, `every thread of pid ${pid} to stop`);
}

function allThreadsStopped(pid: number): boolean {
  if (!existsSync("/proc/self/task")) throw new Error("this test needs Linux /proc to see when SIGSTOP has taken effect");
  // A thread's state is the field after the parenthesised name (which may contain spaces); "T" is stopped.
  return readdirSync(`/proc/${pid}/task`).every((tid) => {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
    return stat[stat.lastIndexOf(")") + 2] === "T";
  });
}

/**
 * Wraps a test.before hook so its error is printed: uvu's runner returns from a `finally`, which
 * swallows an exception thrown by a before hook (the suite shows every test failed, no reason).
 */
export function surfaced<T>(hook: (state: T) => Promise<void>): (state: T) => Promise<void> {
  return async (state) => {
    try {
      await hook(state);
    } catch (e) {
      console.error("test.before failed:", e);
      throw e;
    }
  };
}

/** mulberry32: small seeded pseudo-random numbers in [0, 1), so a failing case can be replayed from its printed seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * An actor context for driving a consumer actor's state directly (no cluster, no worker):
 * tells go nowhere, asks fail, schedules and deferred replies do nothing unless `overrides`
 * say otherwise.
 */
/**
 * The fields of an ActorContext that a unit test of one actor's state does not exercise (its
 * address, node, cluster, no NATS): spread them into a fake context and add the behaviour.
 */
export function actorContextBase<A>(args: A, self = "producer"): Pick<ActorContext<A>, "self" | "node" | "worker" | "args" | "cluster" | "nats"> {
  return { self, node: "n", worker: 0, args, cluster: "c", nats: null as never };
}

export function fakeConsumerContext(overrides: Partial<ActorContext<ConsumerArgs>> = {}): ActorContext<ConsumerArgs> {
  return {
    self: "consumer/1@test",
    node: "test",
    worker: 0,
    args: ConsumerArgs.parse({}),
    cluster: "test",
    nats: null as never,
    tell() {},
    ask: () => Promise.reject(new Error("no cluster in this test")),
    deferReply: () => ({ resolve() {}, reject() {}, settled: false }),
    schedule: () => () => undefined,
    stop() {},
    ...overrides,
  };
}
