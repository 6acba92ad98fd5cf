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
