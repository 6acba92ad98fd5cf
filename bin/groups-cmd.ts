// `skein groups list|describe|delete|reset-offsets`.
import type { Command } from "commander";
import { ClusterClient } from "../actors/cluster/admin.js";
import { addConnectionFlags, intOption, natsOptions, requireNats, type ConnectionFlags } from "./common.js";

async function withClient<T>(flags: ConnectionFlags, fn: (c: ClusterClient) => Promise<T>): Promise<T> {
  const client = await ClusterClient.connect({ nats: natsOptions(flags, requireNats(flags)), cluster: flags.cluster, name: "skein:cli" });
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

export function registerGroupCommands(program: Command): void {
  const groups = program.command("groups").description("list, describe, delete consumer groups and reset their offsets");

  addConnectionFlags(groups.command("list").description("every consumer group").option("--json", "print JSON")).action(async (flags: ConnectionFlags & { json?: boolean }) => {
    const list = await withClient(flags, (c) => c.listGroups());
    if (flags.json) console.log(JSON.stringify(list));
    else for (const g of list) console.log(`${g.groupId}\tstate=${g.state}\tmembers=${g.members}`);
  });

  addConnectionFlags(groups.command("describe <group>").description("state, members and their partitions, committed offsets and lag").option("--json", "print one JSON line")).action(
    async (group: string, flags: ConnectionFlags & { json?: boolean }) => {
      const d = await withClient(flags, (c) => c.describeGroup(group));
      if (flags.json) {
        console.log(JSON.stringify(d));
        return;
      }
      console.log(`group ${d.groupId}  state=${d.state}  generation=${d.generation}  protocol=${d.protocol || "-"}  members=${d.members.length}`);
      for (const m of d.members) console.log(`  member ${m.memberId}${m.groupInstanceId ? ` (instance ${m.groupInstanceId})` : ""}\t${m.assignment.map((tp) => `${tp.topic}/${tp.partition}`).join(" ")}`);
      for (const o of d.offsets) console.log(`  ${o.topic}/${o.partition}\tcommitted=${o.offset}\thigh-watermark=${o.highWatermark}\tlag=${o.lag ?? "?"}`);
    },
  );

  addConnectionFlags(groups.command("delete <group>").description("delete an empty group and its committed offsets").option("--json", "print JSON")).action(
    async (group: string, flags: ConnectionFlags & { json?: boolean }) => {
      const r = await withClient(flags, (c) => c.deleteGroup(group));
      console.log(flags.json ? JSON.stringify(r) : `deleted group ${group}`);
    },
  );

  addConnectionFlags(
    groups
      .command("reset-offsets <group>")
      .description("set the committed offsets of an EMPTY group for one topic")
      .requiredOption("--topic <topic>", "topic whose partitions are reset")
      .option("--to-earliest", "to the log start")
      .option("--to-latest", "to the high watermark")
      .option("--to-timestamp <ms>", "to the first offset at or after this time (ms since epoch)", intOption("--to-timestamp", 0, Number.MAX_SAFE_INTEGER))
      .option("--to-offset <n>", "to this offset in every partition", intOption("--to-offset", 0, Number.MAX_SAFE_INTEGER))
      .option("--json", "print JSON"),
  ).action(async (group: string, flags: ConnectionFlags & { topic: string; toEarliest?: boolean; toLatest?: boolean; toTimestamp?: number; toOffset?: number; json?: boolean }) => {
    const chosen = [flags.toEarliest, flags.toLatest, flags.toTimestamp !== undefined, flags.toOffset !== undefined].filter(Boolean).length;
    if (chosen !== 1) {
      console.error("error: give exactly one of --to-earliest, --to-latest, --to-timestamp MS, --to-offset N");
      process.exit(2);
    }
    const to = flags.toEarliest ? { earliest: true as const } : flags.toLatest ? { latest: true as const } : flags.toTimestamp !== undefined ? { timestamp: flags.toTimestamp } : { offset: flags.toOffset! };
    const r = await withClient(flags, (c) => c.resetOffsets(group, flags.topic, to));
    if (flags.json) console.log(JSON.stringify(r));
    else for (const o of r) console.log(`${o.topic}/${o.partition}\t${o.offset}`);
  });
}
