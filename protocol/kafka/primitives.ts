// Kafka wire primitives (https://kafka.apache.org/protocol#protocol_types), big-endian:
//
//   INT8 INT16 INT32 INT64      fixed-size signed integers
//   BOOLEAN                     INT8, 0 = false
//   STRING                      INT16 length N, then N bytes of UTF-8
//   NULLABLE_STRING             as STRING; length -1 = null
//   BYTES / NULLABLE_BYTES      INT32 length N (-1 = null), then N bytes
//   RECORDS                     NULLABLE_BYTES holding record batches
//   ARRAY                       INT32 count N (-1 = null), then N elements
//
// Only the non-flexible encodings: every API version Skein speaks predates KIP-482's compact
// and tagged fields. Everything read is untrusted: each length and count is checked against
// the bytes that remain before it is used, so a hostile frame can neither read out of bounds
// nor make us allocate more than it is long. INT64 becomes a JS number and is refused when it
// is outside the safe-integer range (offsets, timestamps and producer ids never are).

import { ErrorCode, SkeinError } from "../errors.js";

const utf8 = new TextDecoder("utf-8", { fatal: true });
const utf8Encoder = new TextEncoder();
const TWO_TO_32 = 2 ** 32;

/** A decode failure: the frame does not follow the grammar. Maps to Kafka's INVALID_REQUEST. */
export function malformed(message: string, field = ""): SkeinError {
  return new SkeinError(ErrorCode.INVALID_REQUEST, `malformed Kafka message: ${message}`, { field });
}

export class KafkaReader {
  private readonly view: DataView;
  pos: number;

  constructor(
    readonly buf: Uint8Array,
    pos = 0,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.pos = pos;
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  private need(n: number, what: string): void {
    if (n > this.buf.length - this.pos) throw malformed(`${what} needs ${n} bytes at ${this.pos}, ${this.remaining} left`);
  }

  int8(): number {
    this.need(1, "INT8");
    return this.view.getInt8(this.pos++);
  }

  int16(): number {
    this.need(2, "INT16");
    const v = this.view.getInt16(this.pos);
    this.pos += 2;
    return v;
  }

  int32(): number {
    this.need(4, "INT32");
    const v = this.view.getInt32(this.pos);
    this.pos += 4;
    return v;
  }

  int64(): number {
    this.need(8, "INT64");
    const hi = this.view.getInt32(this.pos);
    const lo = this.view.getUint32(this.pos + 4);
    const v = hi * TWO_TO_32 + lo;
    if (!Number.isSafeInteger(v)) throw malformed(`INT64 at ${this.pos} is outside the safe-integer range`);
    this.pos += 8;
    return v;
  }

  bool(): boolean {
    return this.int8() !== 0;
  }

  nullableString(): string | null {
    const n = this.int16();
    if (n === -1) return null;
    if (n < 0) throw malformed(`string length ${n}`);
    this.need(n, "STRING");
    const start = this.pos;
    this.pos += n;
    try {
      return utf8.decode(this.buf.subarray(start, this.pos));
    } catch {
      throw malformed(`string at ${start} is not UTF-8`);
    }
  }

  string(): string {
    const s = this.nullableString();
    if (s === null) throw malformed(`null where a STRING is required at ${this.pos - 2}`);
    return s;
  }

  /** A view on the frame (no copy): valid as long as the frame is. */
  nullableBytes(): Uint8Array | null {
    const n = this.int32();
    if (n === -1) return null;
    if (n < 0) throw malformed(`bytes length ${n}`);
    this.need(n, "BYTES");
    const start = this.pos;
    this.pos += n;
    return this.buf.subarray(start, this.pos);
  }

  /** Element count of an ARRAY, -1 for null; never more than the bytes left could hold. */
  arrayLength(minElementBytes: number): number {
    const n = this.int32();
    if (n === -1) return -1;
    if (n < 0 || n * Math.max(minElementBytes, 1) > this.remaining) throw malformed(`array of ${n} elements with ${this.remaining} bytes left`);
    return n;
  }
}

/**
 * Builds a message as a list of chunks: small fields are packed into scratch buffers, large
 * byte fields (record batches) are referenced, never copied, so a fetch response costs no
 * copy of the data it carries.
 */
export class KafkaWriter {
  /** Byte fields at least this long are referenced rather than copied. */
  static readonly REFERENCE_BYTES = 1024;
  private static readonly SCRATCH_BYTES = 8 * 1024;
  private readonly chunks: Uint8Array[] = [];
  private scratch = new Uint8Array(0);
  private view = new DataView(this.scratch.buffer);
  private start = 0;
  private pos = 0;
  private flushed = 0;

  get length(): number {
    return this.flushed + (this.pos - this.start);
  }

  private ensure(n: number): void {
    if (this.scratch.length - this.pos >= n) return;
    this.flush();
    this.scratch = new Uint8Array(Math.max(n, KafkaWriter.SCRATCH_BYTES));
    this.view = new DataView(this.scratch.buffer);
    this.start = this.pos = 0;
  }

  private flush(): void {
    if (this.pos === this.start) return;
    this.chunks.push(this.scratch.subarray(this.start, this.pos));
    this.flushed += this.pos - this.start;
    this.start = this.pos;
  }

  int8(v: number): this {
    this.ensure(1);
    this.view.setInt8(this.pos++, v);
    return this;
  }

  int16(v: number): this {
    this.ensure(2);
    this.view.setInt16(this.pos, v);
    this.pos += 2;
    return this;
  }

  int32(v: number): this {
    this.ensure(4);
    this.view.setInt32(this.pos, v);
    this.pos += 4;
    return this;
  }

  int64(v: number): this {
    if (!Number.isSafeInteger(v)) throw new RangeError(`INT64 value ${v} is not a safe integer`);
    this.ensure(8);
    const hi = Math.floor(v / TWO_TO_32);
    this.view.setInt32(this.pos, hi);
    this.view.setUint32(this.pos + 4, v - hi * TWO_TO_32);
    this.pos += 8;
    return this;
  }

  bool(v: boolean): this {
    return this.int8(v ? 1 : 0);
  }

  nullableString(v: string | null): this {
    if (v === null) return this.int16(-1);
    const bytes = utf8Encoder.encode(v);
    if (bytes.length > 0x7fff) throw new RangeError(`string of ${bytes.length} bytes does not fit a Kafka STRING`);
    return this.int16(bytes.length).raw(bytes);
  }

  nullableBytes(v: Uint8Array | null): this {
    if (v === null) return this.int32(-1);
    return this.int32(v.length).raw(v);
  }

  raw(bytes: Uint8Array): this {
    if (bytes.length >= KafkaWriter.REFERENCE_BYTES) {
      this.flush();
      this.chunks.push(bytes);
      this.flushed += bytes.length;
      return this;
    }
    this.ensure(bytes.length);
    this.scratch.set(bytes, this.pos);
    this.pos += bytes.length;
    return this;
  }

  /** The message so far; the writer must not be used afterwards. */
  toChunks(): Uint8Array[] {
    this.flush();
    return this.chunks;
  }

  toBytes(): Uint8Array {
    const chunks = this.toChunks();
    if (chunks.length === 1) return chunks[0];
    const out = new Uint8Array(this.flushed);
    let p = 0;
    for (const c of chunks) {
      out.set(c, p);
      p += c.length;
    }
    return out;
  }
}
