// Kafka's variable-length integers: zigzag-encoded, 7 bits per byte, least significant group
// first, high bit set on every byte but the last. `varint` holds an int32 (at most 5 bytes);
// `varlong` holds an int64 (at most 10 bytes), but JS numbers are exact only to 2^53, so the
// zigzag form of a varlong is limited to Number.MAX_SAFE_INTEGER on both sides. Readers are
// bounded by an explicit `end`; bytes that run past it or overflow are CORRUPT_MESSAGE.

import { ErrorCode, SkeinError } from "./errors.js";

function corrupt(message: string): SkeinError {
  return new SkeinError(ErrorCode.CORRUPT_MESSAGE, message);
}

/** Zigzag form of an int32, as an unsigned 32-bit number. */
function zigzag32(value: number): number {
  return ((value << 1) ^ (value >> 31)) >>> 0;
}

/** Zigzag form of a safe integer, or -1 if it would not fit in a safe integer. */
function zigzag64(value: number): number {
  const z = value >= 0 ? value * 2 : -value * 2 - 1;
  return z <= Number.MAX_SAFE_INTEGER ? z : -1;
}

function sizeOfUnsigned(u: number): number {
  if (u < 0x80) return 1;
  if (u < 0x4000) return 2;
  if (u < 0x200000) return 3;
  if (u < 0x10000000) return 4;
  let size = 5;
  for (let rest = Math.floor(u / 0x800000000); rest > 0; rest = Math.floor(rest / 0x80)) size++;
  return size;
}

export function sizeOfVarint(value: number): number {
  return sizeOfUnsigned(zigzag32(value));
}

/** Encoded size of a varlong, or -1 if `value` is out of the supported (safe) range. */
export function sizeOfVarlong(value: number): number {
  const z = zigzag64(value);
  return z < 0 ? -1 : sizeOfUnsigned(z);
}

function writeUnsigned(buf: Uint8Array, pos: number, u: number): number {
  while (u >= 0x80000000) {
    buf[pos++] = (u % 0x80) | 0x80;
    u = Math.floor(u / 0x80);
  }
  while (u >= 0x80) {
    buf[pos++] = (u & 0x7f) | 0x80;
    u >>>= 7;
  }
  buf[pos++] = u;
  return pos;
}

/** Writes an int32 varint at pos and returns the position after it. */
export function writeVarint(buf: Uint8Array, pos: number, value: number): number {
  return writeUnsigned(buf, pos, zigzag32(value));
}

/** Writes a varlong at pos and returns the position after it; `value` must pass sizeOfVarlong. */
export function writeVarlong(buf: Uint8Array, pos: number, value: number): number {
  return writeUnsigned(buf, pos, zigzag64(value));
}

/**
 * A bounded cursor over untrusted bytes. One object per decode keeps reads allocation-free
 * and lets every read check the same `end`.
 */
export class ByteReader {
  constructor(
    readonly buf: Uint8Array,
    public pos: number,
    public end: number,
  ) {}

  readInt8(): number {
    if (this.pos >= this.end) throw corrupt("int8 runs past the end");
    return (this.buf[this.pos++] << 24) >> 24;
  }

  readVarint(): number {
    const buf = this.buf;
    let u = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      if (this.pos >= this.end) throw corrupt("varint runs past the end");
      const b = buf[this.pos++];
      u |= (b & 0x7f) << shift;
      if (b < 0x80) return (u >>> 1) ^ -(u & 1);
    }
    throw corrupt("varint longer than 5 bytes");
  }

  readVarlong(): number {
    const buf = this.buf;
    let u = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw corrupt("varlong runs past the end");
      const b = buf[this.pos++];
      u += (b & 0x7f) * scale;
      if (u > Number.MAX_SAFE_INTEGER) throw corrupt("varlong beyond 2^53");
      if (b < 0x80) return u % 2 === 0 ? u / 2 : -(u + 1) / 2;
      scale *= 0x80;
    }
    throw corrupt("varlong longer than 10 bytes");
  }
}
