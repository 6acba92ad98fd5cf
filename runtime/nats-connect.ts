// Opens a NATS connection from plain NatsOptions (which cross thread boundaries as data).

import { readFileSync } from "node:fs";
import { connect, credsAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import { ErrorCode, SkeinError } from "../protocol/errors.js";
import type { NatsOptions } from "./types.js";

export async function connectNats(options: NatsOptions, name: string): Promise<NatsConnection> {
  const servers = Array.isArray(options.servers) ? options.servers : options.servers.split(",");
  const tls = options.tls && (options.tls.caFile || options.tls.certFile || options.tls.keyFile) ? options.tls : undefined;
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers,
      name,
      token: options.token,
      user: options.user,
      pass: options.pass,
      authenticator: options.credsFile ? credsAuthenticator(readFileSync(options.credsFile)) : undefined,
      tls: tls ? { caFile: tls.caFile, certFile: tls.certFile, keyFile: tls.keyFile } : undefined,
      maxReconnectAttempts: options.maxReconnectAttempts ?? -1,
      reconnectTimeWait: options.reconnectTimeWaitMs ?? 250,
      waitOnFirstConnect: false,
      timeout: 5_000,
      // nats.js otherwise captures a stack (an Error) for every request, for async traces:
      // 2-4% of a broker worker's CPU; Skein's own errors name the actor address instead.
      noAsyncTraces: true,
    });
  } catch (e) {
    throw new SkeinError(ErrorCode.NOT_CONNECTED, `cannot connect to NATS at ${servers.join(",")}: ${(e as Error).message}. ${connectHint(e, options)}`, {}, { cause: e });
  }
  void reportConnectionChanges(nc, name);
  guardDisconnectRejections();
  return nc;
}

/** What to do about a failed first connect: the server refused us, or is not there. */
function connectHint(e: unknown, options: NatsOptions): string {
  if ((e as Error)?.name === "AuthorizationError") {
    const given = options.credsFile ? "a creds file" : options.token ? "a token" : options.user ? "a user and password" : "no credentials";
    return (
      `The server wants credentials and refused ${given}: give --token, --user/--pass or --creds ` +
      `(or SKEIN_NATS_TOKEN, SKEIN_NATS_USER/SKEIN_NATS_PASS, SKEIN_NATS_CREDS).`
    );
  }
  return "Is nats-server running? (Debian: apt-get install nats-server; start it with: nats-server -js)";
}

let guarded = false;

/**
 * nats.js rejects the pending PINGs of a connection when it drops (with a `RequestError:
 * connection disconnected`), and on a restart of nats-server one such rejection was seen
 * reaching no handler, which crashed the whole process (a broker would lose every partition
 * it hosts). That one rejection is logged instead; any other unhandled rejection still ends
 * the thread, as Node does by default.
 */
function guardDisconnectRejections(): void {
  if (guarded) return;
  guarded = true;
  process.on("unhandledRejection", (reason) => {
    if (reason instanceof Error && reason.name === "RequestError" && reason.message === "connection disconnected") {
      console.warn("skein: a NATS request was cut off by a disconnect before anyone waited for it; carrying on");
      return;
    }
    throw reason;
  });
}

/** A lost or regained NATS connection is reported once per change, with the connection's name. */
async function reportConnectionChanges(nc: NatsConnection, name: string): Promise<void> {
  let down = false;
  for await (const s of nc.status()) {
    if (s.type === "disconnect" && !down) {
      down = true;
      console.warn(`skein: ${name} lost its NATS connection; reconnecting (sends are buffered up to a bound)`);
    } else if (s.type === "reconnect" && down) {
      down = false;
      console.warn(`skein: ${name} reconnected to NATS`);
    }
  }
}
