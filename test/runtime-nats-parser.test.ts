// Presized multi-read messages in nats.js's parser (runtime/nats-parser.ts): against the
// installed nats.js, messages split across reads at every kind of boundary come out with the
// same bytes as before, each large one in a buffer of exactly its size that takeExclusive
// hands over once (and never a buffer shared with other messages); and a real nats-server
// round trip of large messages (several per read, split anywhere) is unchanged.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { connect, Parser, type NatsConnection } from "@nats-io/transport-node";
import { presizeLargeNatsMessages, takeExclusive } from "../runtime/nats-parser.js";
import { connectNats } from "../runtime/nats-connect.js";
import { seededRandom, startNatsServer, type NatsServerHandle } from "./helpers.js";

const te = new TextEncoder();

function payload(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

/** The protocol bytes of MSG/HMSG lines carrying these payloads (odd ones with headers). */
function wire(payloads: Uint8Array[]): Uint8Array {
  const parts: Uint8Array[] = [];
  payloads.forEach((p, i) => {
    if (i % 2 === 0) {
      parts.push(te.encode(`MSG s.${i} 1 ${p.length}\r\n`), p, te.encode("\r\n"));
    } else {
      const hdr = te.encode("NATS/1.0\r\nk: v\r\n\r\n");
      parts.push(te.encode(`HMSG s.${i} 1 _INBOX.r ${hdr.length} ${hdr.length + p.length}\r\n`), hdr, p, te.encode("\r\n"));
    }
  });
  return Buffer.concat(parts);
}

/** Feeds `bytes` to a fresh parser in reads of the given sizes (cycled); returns what it dispatched. */
function parseInReads(bytes: Uint8Array, readSizes: number[]): Uint8Array[] {
  const got: Uint8Array[] = [];
  const dispatcher = { push: (e: { data?: Uint8Array }) => void (e.data && got.push(e.data)) };
  const parser = new Parser(dispatcher as unknown as ConstructorParameters<typeof Parser>[0]);
  for (let pos = 0, k = 0; pos < bytes.length; k++) {
    const n = readSizes[k % readSizes.length];
    parser.parse(bytes.slice(pos, pos + n));
    pos += n;
  }
  return got;
}

const sizes = [0, 1, 100, 65_535, 65_536, 200_000, 1_000_003];
const payloads = sizes.map((s, i) => payload(s, i));
const bytes = wire(payloads);

test("split across reads anywhere: the same messages, bytes equal, before and after presizing", () => {
  const random = seededRandom(7);
  const splits = [[65_536], [1], [7, 65_536, 3], [1_000_000], Array.from({ length: 50 }, () => 1 + Math.floor(random() * 150_000))];
  const before = splits.map((s) => parseInReads(bytes, s));
  presizeLargeNatsMessages();
  presizeLargeNatsMessages(); // idempotent: a second call does not wrap the parser twice
  splits.forEach((s, k) => {
    const after = parseInReads(bytes, s);
    assert.is(after.length, payloads.length, `reads ${s.slice(0, 3)}…`);
    after.forEach((data, i) => {
      assert.ok(Buffer.from(data).equals(Buffer.from(before[k][i])), `message ${i} (${sizes[i]} B), reads ${s.slice(0, 3)}…`);
    });
  });
});

test("a message over one read arrives in a buffer of exactly its size (nats.js alone doubles it)", () => {
  presizeLargeNatsMessages();
  const big = payload(1_000_003, 1);
  const [data] = parseInReads(wire([big]), [65_536]);
  assert.ok(Buffer.from(data).equals(Buffer.from(big)));
  assert.is(data.buffer.byteLength, big.length, "presized: the message's buffer holds just the message");
  assert.ok(takeExclusive(data.buffer), "its buffer may be taken over");
  assert.not.ok(takeExclusive(data.buffer), "once");
});

test("takeExclusive refuses buffers it did not presize: messages within one read share it", () => {
  presizeLargeNatsMessages();
  const small = [payload(1_000, 1), payload(2_000, 2), payload(30_000, 3)];
  const got = parseInReads(wire(small), [65_536]);
  assert.is(got.length, 3);
  assert.is(got[0].buffer, got[1].buffer, "one read's buffer holds all three");
  for (const data of got) assert.not.ok(takeExclusive(data.buffer));
  // Any message that continues in a later read gets its own exact buffer, however small.
  const [split] = parseInReads(wire([payload(40_000, 4)]), [20_000, 65_536]);
  assert.ok(Buffer.from(split).equals(Buffer.from(payload(40_000, 4))));
  assert.is(split.buffer.byteLength, 40_000);
  assert.ok(takeExclusive(split.buffer));
});

let server: NatsServerHandle;
let nc: NatsConnection;

test("through a nats-server: large requests and replies (several in flight) come back byte for byte", async () => {
  server = await startNatsServer(); // max_payload 8 MiB
  presizeLargeNatsMessages();
  nc = await connectNats({ servers: server.url }, "parser-test");
  const echo = await connect({ servers: server.url });
  echo.subscribe("echo", { callback: (_e, m) => void m.respond(m.data) });
  await echo.flush();
  try {
    const sent = [3 * 1024 * 1024 + 5, 70_000, 1, 4 * 1024 * 1024].map((s, i) => payload(s, i + 3));
    const replies = await Promise.all(sent.map((p) => nc.request("echo", p, { timeout: 20_000 })));
    replies.forEach((r, i) => assert.ok(Buffer.from(r.data).equals(Buffer.from(sent[i])), `reply ${i} of ${sent[i].length} B`));
  } finally {
    await echo.close();
  }
});

test.after(async () => {
  await nc?.close();
  await server?.stop();
});

test.run();
