// Shared test helpers: a private nats-server per suite, temp dirs, waiting on conditions.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:net";
import { startNatsServer, type NatsServerHandle } from "../runtime/nats-server.js";

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
