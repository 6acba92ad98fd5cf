// A batch frame: several envelopes (envelope.ts) for one destination in one NATS message.
// Per message, nats.js's inbound parser costs a receiver more CPU than decoding the envelope
// does; tells to one actor issued together travel as one frame (runtime/transport.ts).
//
// Layout (all integers big-endian):
//   u8   BATCH_FRAME_MARKER
//   u32  number of envelopes (1..MAX_BATCH_ENVELOPES)
//   then for each: u32 byte length, the envelope's bytes
//
// A plain envelope starts with its version byte (ENVELOPE_VERSION = 1), so the first byte
// tells a frame from an envelope. Frames are never nested, and never carry a request (asks
// go one per NATS message, with their reply subject).

import { ENVELOPE_VERSION } from "./envelope.js";
import { ErrorCode, SkeinError } from "./errors.js";

/** First byte of a frame: far from any envelope version this format is likely to reach. */
export const BATCH_FRAME_MARKER = 0xb7;
/** Bytes a frame adds once, and per envelope. */
export const BATCH_FRAME_HEADER_BYTES = 5;
export const BATCH_ENTRY_HEADER_BYTES = 4;
/**
 * At most this many envelopes per frame: a receiver delivers a frame's envelopes in one
 * synchronous run, so it is bounded like a socket read full of small messages would be.
 */
export const MAX_BATCH_ENVELOPES = 1024;

// A marker equal to the version byte would make every frame look like an envelope.
if ((BATCH_FRAME_MARKER as number) === ENVELOPE_VERSION) throw new Error("batch frame marker collides with the envelope version");

export function isBatchFrame(data: Uint8Array): boolean {
  return data.length > 0 && data[0] === BATCH_FRAME_MARKER;
}

/** One frame of `envelopes`, in their order (the caller bounds its bytes by the connection's max_payload). */
export function encodeBatchFrame(envelopes: readonly Uint8Array[]): Uint8Array {
  const count = envelopes.length;
  if (count === 0 || count > MAX_BATCH_ENVELOPES) throw new SkeinError(ErrorCode.INVALID_REQUEST, `a batch frame holds 1 to ${MAX_BATCH_ENVELOPES} envelopes, not ${count}`);
  let bytes = 0;
  for (let i = 0; i < count; i++) bytes += envelopes[i].length;
  const out = new Uint8Array(batchFrameBytes(count, bytes));
  out[0] = BATCH_FRAME_MARKER;
  writeU32(out, 1, count);
  let p = BATCH_FRAME_HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    const e = envelopes[i];
    writeU32(out, p, e.length);
    out.set(e, p + BATCH_ENTRY_HEADER_BYTES);
    p += BATCH_ENTRY_HEADER_BYTES + e.length;
  }
  return out;
}

/** Size of a frame of `count` envelopes holding `bytes` bytes together. */
export function batchFrameBytes(count: number, bytes: number): number {
  return BATCH_FRAME_HEADER_BYTES + count * BATCH_ENTRY_HEADER_BYTES + bytes;
}

/**
 * The envelopes of a frame, as views into `frame` (no copy), in the order they were added.
 * Every length is checked before anything is returned: a frame that does not add up is
 * CORRUPT_MESSAGE as a whole, so a receiver never acts on part of one.
 */
export function splitBatchFrame(frame: Uint8Array): Uint8Array[] {
  const end = frame.length;
  if (end < BATCH_FRAME_HEADER_BYTES || frame[0] !== BATCH_FRAME_MARKER) throw corrupt("not a batch frame");
  const count = readU32(frame, 1);
  if (count === 0 || count > MAX_BATCH_ENVELOPES) throw corrupt(`batch frame claims ${count} envelopes (1 to ${MAX_BATCH_ENVELOPES})`);
  const out = new Array<Uint8Array>(count);
  let p = BATCH_FRAME_HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    if (p + BATCH_ENTRY_HEADER_BYTES > end) throw corrupt(`batch frame truncated at envelope ${i} of ${count}`);
    const len = readU32(frame, p);
    p += BATCH_ENTRY_HEADER_BYTES;
    if (p + len > end) throw corrupt(`batch frame envelope ${i} of ${count} claims ${len} bytes, ${end - p} left`);
    out[i] = frame.subarray(p, p + len);
    p += len;
  }
  if (p !== end) throw corrupt(`${end - p} trailing bytes after batch frame`);
  return out;
}

function writeU32(out: Uint8Array, p: number, v: number): void {
  out[p] = v >>> 24;
  out[p + 1] = (v >>> 16) & 0xff;
  out[p + 2] = (v >>> 8) & 0xff;
  out[p + 3] = v & 0xff;
}

function readU32(buf: Uint8Array, p: number): number {
  return ((buf[p] << 24) >>> 0) + ((buf[p + 1] << 16) | (buf[p + 2] << 8) | buf[p + 3]);
}

function corrupt(message: string): SkeinError {
  return new SkeinError(ErrorCode.CORRUPT_MESSAGE, message);
}
