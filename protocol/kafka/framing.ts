// Size-prefixed frames on a byte stream:
//
//   RequestOrResponse => Size Message
//     Size => INT32   length of Message in bytes
//
// FrameDecoder turns socket chunks into whole messages. A partial frame waits for more bytes;
// memory held is what the peer actually sent (nothing is allocated from the size prefix), and
// a prefix below the smallest possible request or above `maxFrameBytes` is refused as soon
// as it is read, without waiting for the body.

import { ErrorCode, SkeinError } from "../errors.js";

export const SIZE_PREFIX_BYTES = 4;

export class FrameDecoder {
  private readonly chunks: Uint8Array[] = [];
  private buffered = 0;
  /** Body size of the frame being received, -1 while its size prefix is incomplete. */
  private expected = -1;

  constructor(
    /** Largest frame accepted, bytes (the size prefix's value). */
    readonly maxFrameBytes: number,
    /** Smallest frame accepted, bytes. */
    readonly minFrameBytes = 0,
  ) {}

  /** Bytes received and not yet returned as frames. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** True while a frame has started but not completed. */
  get partial(): boolean {
    return this.buffered > 0 || this.expected >= 0;
  }

  /** Buffers a chunk; frames are taken out with `next`. */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** The next whole frame, or null until more bytes arrive. Throws INVALID_REQUEST on a bad size. */
  next(): Uint8Array | null {
    if (this.expected < 0) {
      if (this.buffered < SIZE_PREFIX_BYTES) return null;
      const prefix = this.take(SIZE_PREFIX_BYTES);
      const size = new DataView(prefix.buffer, prefix.byteOffset, SIZE_PREFIX_BYTES).getInt32(0);
      if (size < this.minFrameBytes || size > this.maxFrameBytes) {
        throw new SkeinError(ErrorCode.INVALID_REQUEST, `frame size ${size} is outside [${this.minFrameBytes}, ${this.maxFrameBytes}]`, { field: "size" });
      }
      this.expected = size;
    }
    if (this.buffered < this.expected) return null;
    const frame = this.take(this.expected);
    this.expected = -1;
    return frame;
  }

  /** The next n buffered bytes: a view when they lie in one chunk, else one copy. */
  private take(n: number): Uint8Array {
    this.buffered -= n;
    const first = this.chunks[0];
    if (first !== undefined && first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0];
      const k = Math.min(c.length, n - filled);
      out.set(c.subarray(0, k), filled);
      filled += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }
}
