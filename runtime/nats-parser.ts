// Exact-size buffers for large NATS messages, which the receiver may then keep as its own.
//
// nats.js (@nats-io/nats-core 3.x, Parser) gathers a message that spans several socket reads
// (anything over one read of ~64 KiB: a consumer's 4 MiB fetch answers) in a DenoBuffer that
// starts as a copy of the first read's bytes and doubles as the rest arrive: for a 4 MiB
// message, six or seven zero-filled allocations, ~8 MiB copied, and a message that ends up in a
// buffer up to twice its size, which the consumer then copied once more into a buffer of its
// own before handing it to the application thread. The parser knows the message's size from
// its MSG/HMSG line when it starts that buffer; presizing it makes every read's bytes copied
// once, into a buffer that holds this one message and nothing else. Such buffers are
// remembered here, so the consumer can take one over instead of copying (takeExclusive).
//
// Presizing alone was tried twice before and not kept: with the consumer's own copy still made,
// the exact-size buffer's fresh pages cost what the doubling saved. Together with that copy gone
// it is one allocation and one copy per message instead of eight and three.
//
// It relies on the Parser's public fields (state, ma.size, msgBuf) and DenoBuffer, both
// exported by @nats-io/transport-node; test/runtime-nats-parser.test.ts checks the bytes handed
// out and the presizing against the installed nats.js, so a release that changes them fails it.

import { DenoBuffer, Parser, State } from "@nats-io/transport-node";

/** Largest message presized: nats.js's own bound on a message's size (its parser's MAX_64MB). */
export const PRESIZE_MAX_BYTES = 64 * 1024 * 1024;

/** Buffers presized for one message each and not yet taken over (see takeExclusive). */
const exclusive = new WeakSet<ArrayBufferLike>();

let installed = false;

/** Presizes messages that span socket reads, in every nats.js connection of this thread (idempotent). */
export function presizeLargeNatsMessages(): void {
  if (installed) return;
  installed = true;
  const parse = Parser.prototype.parse;
  Parser.prototype.parse = function presizingParse(this: Parser, buf: Uint8Array): void {
    const before = this.msgBuf;
    parse.call(this, buf);
    const started = this.msgBuf;
    // A message started in this read and continues in the next: only its first bytes so far.
    if (started === undefined || started === before || this.state !== State.MSG_PAYLOAD) return;
    const size = this.ma.size;
    if (size <= started.length || size > PRESIZE_MAX_BYTES) return;
    const buffer = new ArrayBuffer(size);
    const exact = new DenoBuffer(buffer);
    exact.truncate(0);
    exact.write(started.bytes({ copy: false }));
    this.msgBuf = exact;
    exclusive.add(buffer);
  };
}

/**
 * True, once, when `buffer` was presized here for a single message: nothing in nats.js refers
 * to it any more once that message was dispatched, so the caller may keep it (or transfer it to
 * another thread) instead of copying out of it. False for anything else, e.g. a message that
 * arrived within one socket read, whose bytes share the read's buffer with other messages.
 */
export function takeExclusive(buffer: ArrayBufferLike): boolean {
  return exclusive.delete(buffer);
}
