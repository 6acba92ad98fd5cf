// nats.js (@nats-io/nats-core 3.x, Parser) gathers a message that spans several socket reads
// (any message over one read of ~64 KiB: fetch replies, produce requests, follower fetches)
// in a DenoBuffer that starts as a copy of the first read and doubles as the rest arrive: for
// a 4 MiB fetch reply that is six zero-filled allocations, ~8 MiB of copying, and a message
// that ends up in a buffer twice its size. The parser knows the message's size (from the
// MSG/HMSG line) when it starts that buffer, so this gives the buffer the message's exact
// size at the start: every read is copied once, and nothing else moves. Measured here on a
// 4 MiB message in 64 KiB reads: 2.4–5.5 ms of CPU in nats.js, 0.8–1.3 ms with this (the
// consumer worker's largest cost in the consume benchmark's profiles).
//
// The bytes handed out are the same (test/runtime-nats-parser.test.ts checks them, and that the
// buffer is presized, against the installed nats.js). It relies on the Parser's public fields
// (state, ma.size, msgBuf); if a nats.js release changes them, that test fails.

import { DenoBuffer, Parser, State } from "@nats-io/transport-node";

/** Largest message presized: nats.js's own bound on a message's size (its parser's MAX_64MB). */
export const PRESIZE_MAX_BYTES = 64 * 1024 * 1024;

let installed = false;

/** Presizes multi-read messages in every nats.js connection of this thread (idempotent). */
export function presizeLargeNatsMessages(): void {
  if (installed) return;
  installed = true;
  const parse = Parser.prototype.parse;
  Parser.prototype.parse = function presizingParse(this: Parser, buf: Uint8Array): void {
    const before = this.msgBuf;
    parse.call(this, buf);
    const started = this.msgBuf;
    // A message started in this read and continued in the next: its first bytes only so far.
    if (started === undefined || started === before || this.state !== State.MSG_PAYLOAD) return;
    const size = this.ma.size;
    if (size <= started.length || size > PRESIZE_MAX_BYTES) return;
    const exact = new DenoBuffer(new ArrayBuffer(size));
    exact.truncate(0);
    exact.write(started.bytes({ copy: false }));
    this.msgBuf = exact;
  };
}
