// `skein broker` (one broker process) and `skein up` (a local cluster: nats-server + N brokers).
import { availableParallelism } from "node:os";
import { setFlagsFromString } from "node:v8";
import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { Broker } from "../actors/cluster/broker.js";
import { firstBusyPort } from "../actors/gateway/ports.js";
import { startNatsServer, type NatsServerHandle } from "../runtime/nats-server.js";
import { startSkeinProcess, type ChildHandle } from "../runtime/child-process.js";
import { runDemo } from "./demo.js";
import { addConnectionFlags, connectionEnv, intOption, natsOptions, onShutdownSignal, requireNats, type ConnectionFlags } from "./common.js";

/**
 * V8 heap growth for the broker's threads (flags are per process, so set before the workers
 * start). A broker's JS heap is small (~14 MB) while its ArrayBuffers churn several times the
 * produced bytes (nats.js assembling each request from socket chunks and packing each reply,
 * the log reads for follower fetches), and V8 counts external memory allocated since the last
 * mark-compact against the old generation's headroom, which on a small heap is only
 * max(8 MB, (factor - 1) x heap). A partition leader under RF3 acks=all load ran out of it
 * after nearly every young-generation GC and ran ~40 full mark-compacts per million records
 * (~30% of its CPU). A fixed growth factor of 4 (the top of V8's own dynamic range) leaves
 * room for that churn; incremental marking stays on, so pauses stay short.
 */
const BROKER_V8_FLAGS = "--heap-growing-percent=300";

export function registerBrokerCommands(program: Command): void {
  addConnectionFlags(
    program
      .command("broker")
      .description("start one broker process: replicas, logs and a controller candidate")
      .requiredOption("--id <n>", "broker id (integer, unique in the cluster)", intOption("--id", 0, 1_000_000))
      .requiredOption("--data <dir>", "directory for this broker's partition logs")
      .option("--workers <n>", "worker threads", intOption("--workers", 1, 256), Math.min(2, availableParallelism()))
      .option("--session-timeout-ms <ms>", "broker session timeout (heartbeat TTL)", intOption("--session-timeout-ms", 500, 600_000), 3_000)
      .option("--replica-lag-max-ms <ms>", "a follower behind for this long leaves the ISR", intOption("--replica-lag-max-ms", 100, 600_000), 5_000)
      .option("--offsets-partitions <n>", "partitions of __consumer_offsets when this broker's controller creates it", intOption("--offsets-partitions", 1, 1000), 50)
      .option("--kafka-port <port>", "port of this broker's Kafka protocol gateway (0 = no gateway)", intOption("--kafka-port", 0, 65_535), 0)
      .option("--kafka-host <host>", "interface the Kafka gateway listens on and advertises", "127.0.0.1")
      .option("--allow-faults", "accept transport fault injection (skein chaos drop|delay|duplicate|isolate)"),
  ).action(async (flags: ConnectionFlags & { id: number; data: string; workers: number; sessionTimeoutMs: number; replicaLagMaxMs: number; offsetsPartitions: number; kafkaPort: number; kafkaHost: string; allowFaults?: boolean }) => {
    const url = requireNats(flags);
    setFlagsFromString(BROKER_V8_FLAGS);
    const dataDir = resolve(flags.data);
    mkdirSync(dataDir, { recursive: true });
    const broker = await Broker.start({
      id: flags.id,
      cluster: flags.cluster,
      nats: natsOptions(flags, url),
      dataDir,
      workers: flags.workers,
      sessionTimeoutMs: flags.sessionTimeoutMs,
      replicaLagTimeMaxMs: flags.replicaLagMaxMs,
      offsetsTopicPartitions: flags.offsetsPartitions,
      kafka: flags.kafkaPort > 0 ? { port: flags.kafkaPort, host: flags.kafkaHost } : undefined,
      allowFaults: flags.allowFaults ?? false,
    });
    onShutdownSignal(() => broker.shutdown());
    const kafka = broker.kafkaPort ? ` kafka=${flags.kafkaHost}:${broker.kafkaPort}` : "";
    const faults = flags.allowFaults ? " faults=allowed" : "";
    console.log(`broker ${flags.id} ready: cluster=${flags.cluster} data=${dataDir} workers=${flags.workers} nats=${url}${kafka}${faults} pid=${process.pid}`);
  });

  addConnectionFlags(
    program
      .command("up")
      .description("start a local cluster: its own nats-server (unless --nats) and N broker processes; Ctrl-C stops it")
      .option("--brokers <n>", "number of brokers", intOption("--brokers", 1, 64), 3)
      .option("--data <dir>", "data directory (default: a new temp dir)")
      .option("--workers <n>", "worker threads per broker", intOption("--workers", 1, 256), 1)
      .option("--kafka-port <port>", "Kafka gateway port of broker 1; broker N listens on port + N - 1 (0 = no gateways)", intOption("--kafka-port", 0, 65_535), 19_092)
      .option("--demo", "run a demo on the new cluster: a topic, a producer and a consumer printing throughput")
      .option("--demo-seconds <s>", "how long the demo produces", intOption("--demo-seconds", 1, 86_400), 10)
      .option("--exit-after-demo", "stop the cluster when the demo is done (exit code 0 when every record came back)")
      .option("--allow-faults", "brokers accept transport fault injection (skein chaos drop|delay|duplicate|isolate)"),
    "NATS URL; without it `up` starts its own nats-server with JetStream",
  ).action(async (flags: ConnectionFlags & { brokers: number; data?: string; workers: number; kafkaPort: number; demo?: boolean; demoSeconds: number; exitAfterDemo?: boolean; allowFaults?: boolean }, cmd: Command) => {
    if (flags.kafkaPort > 0 && cmd.getOptionValueSource("kafkaPort") === "default") {
      // A second `skein up` on one machine still starts; only an explicit --kafka-port insists.
      const busy = await firstBusyPort(Array.from({ length: flags.brokers }, (_, i) => flags.kafkaPort + i));
      if (busy !== null) {
        console.error(`up: port ${busy} is in use: starting without Kafka gateways (choose free ports with --kafka-port)`);
        flags.kafkaPort = 0;
      }
    }
    // In a terminal, Ctrl-C signals the whole foreground group: the embedded nats-server gets a
    // group of its own, so the brokers shut down cleanly before stop() ends it. Without a
    // terminal (scripts, tests) it stays in ours, where a supervisor's group kill reaches it.
    const natsOwnProcessGroup = process.stdin.isTTY === true;
    const cluster = await startLocalCluster(flags, { echo: true, extraBrokerArgs: flags.allowFaults ? ["--allow-faults"] : [], natsOwnProcessGroup });
    onShutdownSignal(() => cluster.stop());
    const kafka = flags.kafkaPort > 0 ? ` kafka=${Array.from({ length: flags.brokers }, (_, i) => `127.0.0.1:${flags.kafkaPort + i}`).join(",")}` : "";
    console.log(`cluster ready: brokers=${flags.brokers} nats=${cluster.natsUrl} cluster=${flags.cluster} data=${cluster.dataDir}${kafka}`);
    console.log(`  in another shell: export SKEIN_NATS=${cluster.natsUrl}; skein topics list; skein consume demo --from-beginning`);
    if (!flags.demo) return;
    const r = await runDemo({ nats: natsOptions(flags, cluster.natsUrl), cluster: flags.cluster, brokers: flags.brokers, seconds: flags.demoSeconds });
    if (flags.exitAfterDemo) {
      await cluster.stop();
      process.exit(r.consumed >= r.produced && r.produced > 0 ? 0 : 1);
    }
    console.log("demo: the cluster keeps running; Ctrl-C stops it");
  });
}

export interface LocalCluster {
  natsUrl: string;
  dataDir: string;
  brokers: Map<number, ChildHandle>;
  stop(): Promise<void>;
  /** Starts broker `id` again (after a kill) with the same data dir. */
  startBroker(id: number): Promise<ChildHandle>;
}

export async function startLocalCluster(
  flags: ConnectionFlags & { brokers: number; data?: string; workers: number; /** Gateway port of broker 1 (broker N: + N - 1); 0 or absent = no gateways. */ kafkaPort?: number },
  options: {
    echo?: boolean;
    extraBrokerArgs?: string[];
    /** The embedded nats-server in a process group of its own (see NatsServerOptions.ownProcessGroup). */
    natsOwnProcessGroup?: boolean;
    /** Each broker's output appended to broker-ID.log in this directory. */
    logDir?: string;
  } = {},
): Promise<LocalCluster> {
  let server: NatsServerHandle | null = null;
  let url = flags.nats;
  if (!url) {
    server = await startNatsServer({ ownProcessGroup: options.natsOwnProcessGroup });
    url = server.url;
    if (options.echo) console.error(`up: nats-server with JetStream on ${url} (pid ${server.pid})`);
  }
  const dataDir = resolve(flags.data ?? mkdtempSync(join(tmpdir(), "skein-up-")));
  const brokers = new Map<number, ChildHandle>();
  const startBroker = async (id: number) => {
    const child = await startSkeinProcess(
      [
        ...["broker", "--id", String(id), "--data", join(dataDir, `broker-${id}`), "--workers", String(flags.workers), "--cluster", flags.cluster],
        ...(flags.kafkaPort ? ["--kafka-port", String(flags.kafkaPort + id - 1)] : []),
        ...(options.extraBrokerArgs ?? []),
      ],
      // URL and credentials travel in the environment: a command line is readable by every user.
      { echoPrefix: options.echo ? `[broker ${id}] ` : undefined, env: connectionEnv(flags, url!), logFile: options.logDir ? join(options.logDir, `broker-${id}.log`) : undefined },
    );
    brokers.set(id, child);
    return child;
  };
  const stop = async () => {
    await Promise.all([...brokers.values()].map((b) => b.stop()));
    await server?.stop();
  };
  try {
    await Promise.all(Array.from({ length: flags.brokers }, (_, i) => startBroker(i + 1)));
  } catch (e) {
    await stop();
    throw e;
  }
  return { natsUrl: url, dataDir, brokers, stop, startBroker };
}
