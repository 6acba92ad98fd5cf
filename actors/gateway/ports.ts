// Whether TCP ports can be listened on: `skein up` checks its default gateway ports before it
// starts brokers on them, tests look for free ones. A check is only a hint (another process
// may take the port in between); binding is what decides.

import { createServer } from "node:net";

/** True when `port` on `host` can be listened on right now. */
export function isPortFree(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** The first of `ports` that is taken, or null when all are free. */
export async function firstBusyPort(ports: number[], host = "127.0.0.1"): Promise<number | null> {
  for (const port of ports) if (!(await isPortFree(port, host))) return port;
  return null;
}

/**
 * The first of `count` consecutive free ports at a random place in 20000-59999 (tests and
 * benchmarks start brokers' gateways on base, base + 1, …).
 */
export async function freePortRange(count: number, host = "127.0.0.1"): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 40_000);
    let free = true;
    for (let i = 0; i < count && free; i++) free = await isPortFree(base + i, host);
    if (free) return base;
  }
  throw new Error(`no ${count} consecutive free ports found`);
}
