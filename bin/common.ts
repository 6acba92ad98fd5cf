// Options every command shares: where NATS is and which cluster namespace to use.
import { Option, type Command } from "commander";
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
  // Credentials come from the environment as well as flags, so that a parent (doctor, `up`)
  // hands them to its children without putting them on a command line every user can read
  // in `ps`; Option.env also keeps their values out of --help.
  const secret = (flags: string, help: string, env: string) => new Option(flags, help).env(env);
  return cmd
    .option("--nats <url>", natsHelp, process.env.SKEIN_NATS)
    .addOption(new Option("--cluster <name>", "cluster namespace").env("SKEIN_CLUSTER").default("default"))
    .addOption(secret("--token <token>", "NATS token", CONNECTION_ENV.token))
    .addOption(secret("--user <user>", "NATS user", CONNECTION_ENV.user))
    .addOption(secret("--pass <password>", "NATS password", CONNECTION_ENV.pass))
    .addOption(secret("--creds <file>", "NATS credentials file", CONNECTION_ENV.creds))
    .addOption(secret("--tls-ca <file>", "TLS CA certificate (PEM)", CONNECTION_ENV.tlsCa))
    .addOption(secret("--tls-cert <file>", "TLS client certificate (PEM)", CONNECTION_ENV.tlsCert))
    .addOption(secret("--tls-key <file>", "TLS client key (PEM)", CONNECTION_ENV.tlsKey));
}

/** Environment variable of every connection flag. */
export const CONNECTION_ENV = {
  nats: "SKEIN_NATS",
  token: "SKEIN_NATS_TOKEN",
  user: "SKEIN_NATS_USER",
  pass: "SKEIN_NATS_PASS",
  creds: "SKEIN_NATS_CREDS",
  tlsCa: "SKEIN_NATS_TLS_CA",
  tlsCert: "SKEIN_NATS_TLS_CERT",
  tlsKey: "SKEIN_NATS_TLS_KEY",
} as const;

/**
 * The environment a child Skein process (a node or broker started by the doctor or `up`)
 * needs to reach NATS as this one does: URL, credentials and TLS files. A variable this
 * process has but the flags do not (unset by the caller) is blanked, never inherited.
 */
export function connectionEnv(flags: ConnectionFlags, url: string): Record<string, string> {
  return {
    [CONNECTION_ENV.nats]: url,
    [CONNECTION_ENV.token]: flags.token ?? "",
    [CONNECTION_ENV.user]: flags.user ?? "",
    [CONNECTION_ENV.pass]: flags.pass ?? "",
    [CONNECTION_ENV.creds]: flags.creds ?? "",
    [CONNECTION_ENV.tlsCa]: flags.tlsCa ?? "",
    [CONNECTION_ENV.tlsCert]: flags.tlsCert ?? "",
    [CONNECTION_ENV.tlsKey]: flags.tlsKey ?? "",
  };
}

export function natsOptions(flags: ConnectionFlags, url: string): NatsOptions {
  const tls = flags.tlsCa || flags.tlsCert || flags.tlsKey ? { caFile: flags.tlsCa || undefined, certFile: flags.tlsCert || undefined, keyFile: flags.tlsKey || undefined } : undefined;
  return { servers: url.split(","), token: flags.token || undefined, user: flags.user || undefined, pass: flags.pass || undefined, credsFile: flags.creds || undefined, tls };
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
