// Options every command shares: where NATS is and which cluster namespace to use.
import type { Command } from "commander";
import type { NatsOptions } from "../runtime/types.js";

export interface ConnectionFlags {
  nats?: string;
  cluster: string;
  token?: string;
  user?: string;
  pass?: string;
  creds?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
}

export function addConnectionFlags(cmd: Command, natsHelp = "NATS server URL(s), comma-separated (env SKEIN_NATS)"): Command {
  return cmd
    .option("--nats <url>", natsHelp, process.env.SKEIN_NATS)
    .option("--cluster <name>", "cluster namespace (env SKEIN_CLUSTER)", process.env.SKEIN_CLUSTER ?? "default")
    .option("--token <token>", "NATS token (env SKEIN_NATS_TOKEN)", process.env.SKEIN_NATS_TOKEN)
    .option("--user <user>", "NATS user")
    .option("--pass <password>", "NATS password")
    .option("--creds <file>", "NATS credentials file")
    .option("--tls-ca <file>", "TLS CA certificate (PEM)")
    .option("--tls-cert <file>", "TLS client certificate (PEM)")
    .option("--tls-key <file>", "TLS client key (PEM)");
}

export function natsOptions(flags: ConnectionFlags, url: string): NatsOptions {
  const tls = flags.tlsCa || flags.tlsCert || flags.tlsKey ? { caFile: flags.tlsCa, certFile: flags.tlsCert, keyFile: flags.tlsKey } : undefined;
  return { servers: url.split(","), token: flags.token, user: flags.user, pass: flags.pass, credsFile: flags.creds, tls };
}

export function requireNats(flags: ConnectionFlags): string {
  if (!flags.nats) {
    console.error("error: --nats URL is required (or set SKEIN_NATS), e.g. --nats nats://127.0.0.1:4222");
    process.exit(2);
  }
  return flags.nats;
}

export function intOption(name: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) {
      console.error(`error: ${name} must be an integer from ${min} to ${max}, got "${value}"`);
      process.exit(2);
    }
    return n;
  };
}

/** Runs `stop` once on SIGINT/SIGTERM, then exits with `code`. */
export function onShutdownSignal(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.error(`skein: ${signal} received, shutting down`);
    const force = setTimeout(() => {
      console.error("skein: shutdown took over 15 s; exiting");
      process.exit(1);
    }, 15_000);
    force.unref();
    stop().then(
      () => process.exit(0),
      (e) => {
        console.error("skein: shutdown failed:", e);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => handler("SIGINT"));
  process.on("SIGTERM", () => handler("SIGTERM"));
}
