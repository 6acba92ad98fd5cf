// `skein produce` and `skein consume`: console producer and consumer over the library API.
import { createInterface } from "node:readline";
import type { Command } from "commander";
import cliProgress from "cli-progress";
import { Skein, type Consumer } from "../actors/client/skein.js";
import type { OutgoingMessage } from "../actors/client/frames.js";
import { addConnectionFlags, intOption, natsOptions, requireNats, type ConnectionFlags } from "./common.js";

interface ProduceFlags extends ConnectionFlags {
  key?: string;
  parseKey?: boolean;
  acks: string;
  count?: number;
  size: number;
  partition?: number;
  batch: number;
  inFlight: number;
  json?: boolean;
}

export function registerClientCommands(program: Command): void {
  addConnectionFlags(
    program
      .command("produce <topic>")
      .description("send lines from stdin as records (or generate load with --count/--size)")
      .option("--key <key>", "key for every record")
      .option("--parse-key", "lines are key<TAB>value")
      .option("--acks <acks>", "all, 1 or 0", "all")
      .option("--partition <p>", "send to this partition", intOption("--partition", 0, 1_000_000))
      .option("--count <n>", "generate N records instead of reading stdin", intOption("--count", 1, 2 ** 31))
      .option("--size <bytes>", "generated record size", intOption("--size", 0, 10 * 1024 * 1024), 100)
      .option("--batch <n>", "records per send() call", intOption("--batch", 1, 1_000_000), 1000)
      .option("--in-flight <n>", "send() calls in flight", intOption("--in-flight", 1, 1024), 8)
      .option("--json", "print a final JSON summary line"),
  ).action(async (topic: string, flags: ProduceFlags) => {
    const acks = flags.acks === "all" ? "all" : flags.acks === "1" ? 1 : flags.acks === "0" ? 0 : null;
    if (acks === null) {
      console.error(`error: --acks must be all, 1 or 0, got "${flags.acks}"`);
      process.exit(2);
    }
    const skein = new Skein({ clientId: "skein-produce", nats: natsOptions(flags, requireNats(flags)), cluster: flags.cluster });
    const producer = skein.producer({ acks });
    await producer.connect();
    const stats = { acked: 0, failed: 0, errors: new Map<string, number>() };
    const started = Date.now();
    const inFlight = new Set<Promise<void>>();
    const submit = async (messages: OutgoingMessage[]) => {
      while (inFlight.size >= flags.inFlight) await Promise.race(inFlight);
      const p = producer.send({ topic, messages }).then(
        () => void (stats.acked += messages.length),
        (e) => {
          stats.failed += messages.length;
          const code = (e as { code?: string }).code ?? String(e);
          stats.errors.set(code, (stats.errors.get(code) ?? 0) + 1);
          if (stats.errors.get(code) === 1) console.error(`skein produce: ${(e as Error).message}`);
        },
      );
      const tracked = p.finally(() => inFlight.delete(tracked));
      inFlight.add(tracked);
    };
    if (flags.count !== undefined) await generate(flags, submit, stats);
    else await readStdin(flags, submit);
    await Promise.all(inFlight);
    await producer.disconnect();
    const seconds = (Date.now() - started) / 1000;
    const summary = { acked: stats.acked, failed: stats.failed, seconds: Number(seconds.toFixed(3)), recordsPerSec: Math.round(stats.acked / Math.max(seconds, 0.001)) };
    if (flags.json) console.log(JSON.stringify(summary));
    else console.error(`produced ${summary.acked} records (${summary.failed} failed) in ${summary.seconds} s: ${summary.recordsPerSec} records/s`);
    process.stdout.write("", () => process.exit(stats.failed ? 1 : 0));
  });

  addConnectionFlags(
    program
      .command("consume <topic>")
      .description("print records of a topic")
      .option("--group <group>", "consumer group (coordinated, with committed offsets)")
      .option("--from-beginning", "start at the earliest offset (default: only new records)")
      .option("--partition <p>", "read only this partition", intOption("--partition", 0, 1_000_000))
      .option("--offset <o>", "with --partition: start at this offset", intOption("--offset", 0, Number.MAX_SAFE_INTEGER))
      .option("--max <n>", "stop after N records", intOption("--max", 1, Number.MAX_SAFE_INTEGER))
      .option("--timeout-ms <ms>", "stop after this long without a new record", intOption("--timeout-ms", 1, 2 ** 31))
      .option("--json", "one JSON line per record"),
  ).action(async (topic: string, flags: ConnectionFlags & { group?: string; fromBeginning?: boolean; partition?: number; offset?: number; max?: number; timeoutMs?: number; json?: boolean }) => {
    const skein = new Skein({ clientId: "skein-consume", nats: natsOptions(flags, requireNats(flags)), cluster: flags.cluster });
    const consumer: Consumer = skein.consumer(flags.group ? { groupId: flags.group } : {});
    await consumer.connect();
    if (flags.partition !== undefined) await consumer.assign([{ topic, partition: flags.partition, offset: flags.offset ?? (flags.fromBeginning ? 0 : undefined) }]);
    else await consumer.subscribe({ topics: [topic], fromBeginning: flags.fromBeginning ?? false });
    let count = 0;
    let lastRecordAt = Date.now();
    let stopping = false;
    const stop = async (code: number) => {
      if (stopping) return;
      stopping = true;
      await consumer.disconnect().catch(() => undefined);
      // Exit only once stdout is flushed: a pipe reader must get every record printed.
      process.stdout.write("", () => process.exit(code));
    };
    process.on("SIGINT", () => void stop(0));
    process.on("SIGTERM", () => void stop(0));
    while (!stopping) {
      const batches = await consumer.poll(250);
      for (const b of batches) {
        for (const m of b.batch.messages) {
          if (flags.max !== undefined && count >= flags.max) break;
          count++;
          lastRecordAt = Date.now();
          if (flags.json) {
            console.log(JSON.stringify({ topic: b.batch.topic, partition: b.batch.partition, offset: Number(m.offset), key: m.key?.toString() ?? null, value: m.value?.toString() ?? null, timestamp: Number(m.timestamp) }));
          } else console.log(m.value?.toString() ?? "");
        }
      }
      if (flags.max !== undefined && count >= flags.max) break;
      if (flags.timeoutMs !== undefined && Date.now() - lastRecordAt >= flags.timeoutMs) break;
    }
    await stop(0);
  });
}

async function generate(flags: ProduceFlags, submit: (m: OutgoingMessage[]) => Promise<void>, stats: { acked: number }): Promise<void> {
  const total = flags.count!;
  const value = new Uint8Array(flags.size).fill(120);
  const bar = total >= 100_000 && process.stderr.isTTY ? new cliProgress.SingleBar({ format: "producing [{bar}] {percentage}% {value}/{total} acked | {rate} rec/s" }, cliProgress.Presets.shades_classic) : null;
  const started = Date.now();
  bar?.start(total, 0, { rate: 0 });
  let lastReport = Date.now();
  for (let sent = 0; sent < total; ) {
    const n = Math.min(flags.batch, total - sent);
    const messages: OutgoingMessage[] = new Array(n);
    for (let i = 0; i < n; i++) messages[i] = { key: flags.key ?? null, value, partition: flags.partition };
    await submit(messages);
    sent += n;
    if (Date.now() - lastReport > 1000) {
      lastReport = Date.now();
      const rate = Math.round(stats.acked / ((Date.now() - started) / 1000));
      if (bar) bar.update(stats.acked, { rate });
      else if (total >= 100_000 && !flags.json) console.error(`produced ${stats.acked}/${total} (${rate} records/s)`);
    }
  }
  bar?.update(total);
  bar?.stop();
}

async function readStdin(flags: ProduceFlags, submit: (m: OutgoingMessage[]) => Promise<void>): Promise<void> {
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
  let pending: OutgoingMessage[] = [];
  for await (const line of rl) {
    if (flags.parseKey) {
      const tab = line.indexOf("\t");
      pending.push(tab < 0 ? { key: null, value: line, partition: flags.partition } : { key: line.slice(0, tab), value: line.slice(tab + 1), partition: flags.partition });
    } else pending.push({ key: flags.key ?? null, value: line, partition: flags.partition });
    if (pending.length >= flags.batch) {
      await submit(pending);
      pending = [];
    }
  }
  if (pending.length) await submit(pending);
}
