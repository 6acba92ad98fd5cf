// The `skein` command line.
import { Command } from "commander";
import { registerNodeCommand } from "./node-cmd.js";
import { registerDoctorCommand } from "./doctor.js";
import { registerBrokerCommands } from "./broker-cmd.js";
import { registerTopicCommands } from "./topics-cmd.js";
import { registerClientCommands } from "./client-cmds.js";
import { registerGroupCommands } from "./groups-cmd.js";
import { registerChaosCommands } from "./chaos-cmd.js";
import { registerBenchCommand } from "./bench-cmd.js";

const program = new Command();
program
  .name("skein")
  .description("Skein: a Kafka-style distributed commit log built as an actor system on worker threads and NATS")
  .version("0.1.0")
  .showHelpAfterError();

registerNodeCommand(program);
registerDoctorCommand(program);
registerBrokerCommands(program);
registerTopicCommands(program);
registerClientCommands(program);
registerGroupCommands(program);
registerChaosCommands(program);
registerBenchCommand(program);

program.parseAsync(process.argv).catch((e) => {
  console.error(`error: ${(e as Error).message}`);
  process.exit(1);
});
