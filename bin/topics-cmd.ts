// `skein topics …` and `skein cluster status`.
import type { Command } from "commander";
import { ClusterClient } from "../actors/cluster/admin.js";
import { addConnectionFlags, intOption, natsOptions, requireNats, type ConnectionFlags } from "./common.js";

async function withClient<T>(flags: ConnectionFlags, fn: (c: ClusterClient) => Promise<T>): Promise<T> {
  const url = requireNats(flags);
  const client = await ClusterClient.connect({ nats: natsOptions(flags, url), cluster: flags.cluster, name: "skein:cli" });
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

function collectConfig(value: string, previous: Record<string, string>): Record<string, string> {
  const eq = value.indexOf("=");
  if (eq <= 0) {
    console.error(`error: --config takes key=value, got "${value}"`);
    process.exit(2);
  }
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

export function registerTopicCommands(program: Command): void {
  const topics = program.command("topics").description("create, list, describe and delete topics");

  addConnectionFlags(
    topics
      .command("create <name>")
      .description("create a topic")
      .requiredOption("--partitions <n>", "partition count", intOption("--partitions", 1, 10_000))
      .requiredOption("--replication-factor <n>", "replicas per partition", intOption("--replication-factor", 1, 64))
      .option("--config <key=value>", "topic config, repeatable (retention.ms, segment.bytes, cleanup.policy, min.insync.replicas, …)", collectConfig, {})
      .option("--json", "print the result as JSON"),
  ).action(async (name: string, flags: ConnectionFlags & { partitions: number; replicationFactor: number; config: Record<string, string>; json?: boolean }) => {
    const r = await withClient(flags, (c) => c.createTopic(name, flags.partitions, flags.replicationFactor, flags.config));
    if (flags.json) console.log(JSON.stringify(r));
    else console.log(`created topic ${r.name}: ${r.assignment.map((rs, p) => `p${p}=[${rs.join(",")}]`).join(" ")}`);
  });

  addConnectionFlags(topics.command("list").description("list topics").option("--json", "print JSON")).action(async (flags: ConnectionFlags & { json?: boolean }) => {
    const list = await withClient(flags, (c) => c.listTopics());
    if (flags.json) console.log(JSON.stringify(list.map((t) => ({ topic: t.name, partitions: t.partitions, replicationFactor: t.replicationFactor }))));
    else for (const t of list) console.log(`${t.name}\tpartitions=${t.partitions}\treplication-factor=${t.replicationFactor}`);
  });

  addConnectionFlags(topics.command("describe <name>").description("leader, replicas, ISR, epochs and offsets per partition").option("--json", "print one JSON line")).action(
    async (name: string, flags: ConnectionFlags & { json?: boolean }) => {
      const d = await withClient(flags, (c) => c.describeTopic(name));
      if (flags.json) {
        console.log(JSON.stringify({ topic: d.topic, partitions: d.partitions, configs: d.configs }));
        return;
      }
      console.log(`topic ${d.topic}  partitions=${d.partitions.length}  replication-factor=${d.replicationFactor}  configs=${JSON.stringify(d.configs)}`);
      for (const p of d.partitions) {
        console.log(
          `  p${p.partition}\tleader=${p.leader}\treplicas=[${p.replicas.join(",")}]\tisr=[${p.isr.join(",")}]\tepoch=${p.leaderEpoch}\thw=${p.highWatermark ?? "?"}\tstart=${p.logStartOffset ?? "?"}\tend=${p.logEndOffset ?? "?"}`,
        );
      }
    },
  );

  addConnectionFlags(
    topics
      .command("alter <name>")
      .description("change a topic's configs (the others keep theirs); its replicas apply them at once")
      .option("--config <key=value>", "config to set, repeatable (retention.ms, retention.bytes, segment.bytes, min.insync.replicas, max.message.bytes, …)", collectConfig, {})
      .option("--delete-config <key>", "config to return to its default, repeatable", (v: string, prev: string[]) => [...prev, v], [] as string[])
      .option("--json", "print one JSON line: the topic's configs after the change"),
  ).action(async (name: string, flags: ConnectionFlags & { config: Record<string, string>; deleteConfig: string[]; json?: boolean }) => {
    const changes: Record<string, string | null> = { ...flags.config };
    for (const k of flags.deleteConfig) changes[k] = null;
    if (Object.keys(changes).length === 0) {
      console.error("error: nothing to change: give --config key=value or --delete-config key");
      process.exit(2);
    }
    const r = await withClient(flags, (c) => c.alterTopicConfigs(name, changes));
    if (flags.json) console.log(JSON.stringify({ topic: r.name, configs: r.configs }));
    else console.log(`altered topic ${r.name}: configs=${JSON.stringify(r.configs)}`);
  });

  addConnectionFlags(topics.command("delete <name>").description("delete a topic and its data")).action(async (name: string, flags: ConnectionFlags) => {
    const r = await withClient(flags, (c) => c.deleteTopic(name));
    console.log(`deleted topic ${r.name} (${r.partitions} partitions)`);
  });

  const cluster = program.command("cluster").description("cluster information");
  addConnectionFlags(cluster.command("status").description("brokers, active controller and its epoch").option("--json", "print one JSON line")).action(
    async (flags: ConnectionFlags & { json?: boolean }) => {
      const s = await withClient(flags, (c) => c.status());
      if (flags.json) {
        console.log(JSON.stringify(s));
        return;
      }
      console.log(`cluster ${s.cluster}: ${s.brokers.length} broker(s); controller ${s.controller ? `broker ${s.controller.broker} (epoch ${s.controller.epoch})` : "none"}`);
      for (const b of s.brokers) console.log(`  broker ${b.broker}\tpid=${b.pid}\thost=${b.host}\tworkers=${b.workers}\tup ${Math.round((Date.now() - b.startedAt) / 1000)} s`);
    },
  );
}
