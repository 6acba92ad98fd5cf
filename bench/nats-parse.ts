// nats.js's protocol parser on a message that spans socket reads (a 4 MiB fetch reply in
// 64 KiB reads), as nats.js does it and then with runtime/nats-parser.ts's presizing, in one
// process: CPU µs per message, best and median of the rounds.
//   node scripts/build.mjs && node dist/bench/nats-parse.js [rounds, default 7]
import { Parser } from "@nats-io/transport-node";
import { presizeLargeNatsMessages } from "../runtime/nats-parser.js";

const MESSAGE_BYTES = 4 * 1024 * 1024;
const READ_BYTES = 64 * 1024;
const MESSAGES_PER_ROUND = 40;
const rounds = Number(process.argv[2] ?? 7);

const te = new TextEncoder();
const hdr = te.encode("NATS/1.0\r\n\r\n");
const line = te.encode(`HMSG _INBOX.reply.1 1 ${hdr.length} ${hdr.length + MESSAGE_BYTES}\r\n`);
const wire = new Uint8Array(line.length + hdr.length + MESSAGE_BYTES + 2);
wire.set(line);
wire.set(hdr, line.length);
wire.set([13, 10], wire.length - 2);
const reads: Uint8Array[] = [];
for (let pos = 0; pos < wire.length; pos += READ_BYTES) reads.push(wire.slice(pos, pos + READ_BYTES));

let received = 0;
const dispatcher = { push: (e: { data?: Uint8Array }) => void (received += e.data?.length ?? 0) };

function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

function measure(name: string): void {
  const parser = new Parser(dispatcher as unknown as ConstructorParameters<typeof Parser>[0]);
  const perMessage: number[] = [];
  for (let r = 0; r <= rounds; r++) {
    const started = cpuUs();
    for (let m = 0; m < MESSAGES_PER_ROUND; m++) for (const read of reads) parser.parse(read);
    if (r > 0) perMessage.push((cpuUs() - started) / MESSAGES_PER_ROUND); // round 0 warms up
  }
  perMessage.sort((a, b) => a - b);
  console.log(`${name.padEnd(22)} CPU µs per 4 MiB message: best ${perMessage[0].toFixed(0)}, median ${perMessage[perMessage.length >> 1].toFixed(0)}`);
}

measure("nats.js");
presizeLargeNatsMessages();
measure("presized (runtime)");
if (received === 0) console.log("unreachable");
