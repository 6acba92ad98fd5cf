// How a client facade hands a send() call's records to its producer actor: one region of a
// shared ring per call (FrameRing; or, when it does not fit, one transferred buffer), never one
// postMessage per record.
//
// Frame layout per record (fixed-width fields big-endian):
//   i32 partition (-1 = choose)   f64 timestamp ms (-1 = now)
//   i32 key length (-1 = null; the partitioner reads the key inside the tail)
//   i32 tail length, then the tail: the record exactly as Kafka's RecordBatch v2 stores it
//       after offsetDelta — varint key length, key, varint value length, value, varint header
//       count, per header: varint key length, key (UTF-8), varint value length (-1 = null), value.
// The facade encodes each record once; the producer actor copies a tail into its batch in one
// piece behind the three fields that depend on the batch (length, timestampDelta, offsetDelta).

import { Buffer } from "node:buffer";
import { ErrorCode, SkeinError } from "../../protocol/errors.js";
import type { RecordHeader } from "../../protocol/record-batch.js";
import { sizeOfVarint, writeVarint } from "../../protocol/varint.js";

export type Bytes = Uint8Array | string | null | undefined;

export interface OutgoingMessage {
  key?: Bytes;
  value: Bytes;
  headers?: Record<string, Bytes> | RecordHeader[];
  partition?: number;
  timestamp?: number | string;
}

const utf8 = new TextEncoder();

function toBytes(v: Bytes, field: string): Uint8Array | null {
  if (v === null || v === undefined) return null;
  if (typeof v === "string") return utf8.encode(v);
  if (v instanceof Uint8Array) return v;
  throw new SkeinError(ErrorCode.INVALID_REQUEST, `${field} must be a string, Uint8Array, Buffer or null, got ${typeof v}`, { field });
}

function headerList(h: OutgoingMessage["headers"], index: number): Array<[Uint8Array, Uint8Array | null]> {
  if (!h) return [];
  if (Array.isArray(h)) return h.map((x) => [utf8.encode(x.key), x.value]);
  if (typeof h !== "object") throw new SkeinError(ErrorCode.INVALID_REQUEST, `messages[${index}].headers must be an object`, { field: `messages.${index}.headers` });
  return Object.entries(h).map(([k, v]) => [utf8.encode(k), toBytes(v, `messages.${index}.headers.${k}`)]);
}

/**
 * Encodes a send() call's messages into one transferable buffer (its own ArrayBuffer, exactly
 * sized).
 */
export function encodeFrames(messages: OutgoingMessage[]): { buffer: Uint8Array; bytes: number } {
  const buffer = ownCopy(encodeFramesScratch(messages));
  return { buffer, bytes: buffer.length };
}

/** `frames` in an ArrayBuffer of its own (transferable). */
export function ownCopy(frames: Uint8Array): Uint8Array {
  const buffer = Buffer.allocUnsafeSlow(frames.length);
  buffer.set(frames);
  return buffer;
}

/**
 * Encodes a send() call's messages in one pass into a scratch buffer kept between calls, and
 * returns them there: valid until the next call, to be copied into a FrameRing or an own
 * buffer at once. (A sizing pass before the writing one measured every string and header
 * twice, and cost more than the copy.)
 */
export function encodeFramesScratch(messages: OutgoingMessage[]): Uint8Array {
  let buf = scratch;
  let o = 0;
  try {
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i];
      if (m === null || typeof m !== "object") throw new SkeinError(ErrorCode.INVALID_REQUEST, `messages[${i}] must be an object`, { field: `messages.${i}` });
      const partition = m.partition ?? -1;
      if (!Number.isInteger(partition) || partition < -1) throw new SkeinError(ErrorCode.INVALID_REQUEST, `messages[${i}].partition must be a non-negative integer`, { field: `messages.${i}.partition` });
      const timestamp = m.timestamp === undefined ? -1 : Number(m.timestamp);
      if (m.timestamp !== undefined && !Number.isFinite(timestamp)) {
        throw new SkeinError(ErrorCode.INVALID_REQUEST, `messages[${i}].timestamp must be a number of ms`, { field: `messages.${i}.timestamp` });
      }
      const key = m.key;
      const value = m.value;
      const keyLength = byteLength(key, i, "key");
      const valueLength = byteLength(value, i, "value");
      const headers = m.headers ? headerList(m.headers, i) : NO_HEADERS;
      let headerBytes = 0;
      for (let h = 0; h < headers.length; h++) {
        const v = headers[h][1];
        headerBytes += MAX_VARINT_BYTES * 2 + headers[h][0].length + (v === null ? 0 : v.length);
      }
      const most = FRAME_FIXED_BYTES + MAX_VARINT_BYTES * 3 + Math.max(keyLength, 0) + Math.max(valueLength, 0) + headerBytes;
      if (o + most > buf.length) buf = grown(buf, o, o + most);
      o = writeI32(buf, o, partition);
      if (timestamp === -1) {
        // -1.0 as a big-endian double; most records say "now" and writeDoubleBE is slow.
        buf[o] = 0xbf;
        buf[o + 1] = 0xf0;
        buf[o + 2] = buf[o + 3] = buf[o + 4] = buf[o + 5] = buf[o + 6] = buf[o + 7] = 0;
        o += 8;
      } else o = buf.writeDoubleBE(timestamp, o);
      o = writeI32(buf, o, keyLength);
      const tailLengthAt = o;
      const tail = o + 4;
      o = writeField(buf, tail, key, keyLength);
      o = writeField(buf, o, value, valueLength);
      o = writeVarint(buf, o, headers.length);
      for (let h = 0; h < headers.length; h++) {
        const [k, v] = headers[h];
        o = writeVarint(buf, o, k.length);
        buf.set(k, o);
        o = writeRawField(buf, o + k.length, v);
      }
      writeI32(buf, tailLengthAt, o - tail);
    }
    return buf.subarray(0, o);
  } finally {
    // A large send's scratch is not kept: memory stays bounded between sends.
    scratch = buf.length > MAX_SCRATCH_BYTES ? Buffer.allocUnsafeSlow(SCRATCH_BYTES) : buf;
  }
}

/** partition, timestamp, key length, tail length. */
const FRAME_FIXED_BYTES = 4 + 8 + 4 + 4;
const MAX_VARINT_BYTES = 5;
const NO_HEADERS: Array<[Uint8Array, Uint8Array | null]> = [];
/** The scratch buffer's usual size, and the most it keeps after a larger send. */
const SCRATCH_BYTES = 256 * 1024;
const MAX_SCRATCH_BYTES = 4 * 1024 * 1024;
let scratch: Buffer<ArrayBuffer> = Buffer.allocUnsafeSlow(SCRATCH_BYTES);

/** A buffer of at least `need` bytes (doubling) holding `buf`'s first `used` bytes. */
function grown(buf: Buffer<ArrayBuffer>, used: number, need: number): Buffer<ArrayBuffer> {
  let size = buf.length * 2;
  while (size < need) size *= 2;
  const next = Buffer.allocUnsafeSlow(size);
  next.set(buf.subarray(0, used));
  return next;
}

function byteLength(v: Bytes, index: number, field: string): number {
  if (v === null || v === undefined) return -1;
  if (typeof v === "string") return Buffer.byteLength(v, "utf8");
  if (v instanceof Uint8Array) return v.length;
  throw new SkeinError(ErrorCode.INVALID_REQUEST, `messages.${index}.${field} must be a string, Uint8Array, Buffer or null, got ${typeof v}`, { field: `messages.${index}.${field}` });
}

function writeI32(buf: Uint8Array, o: number, v: number): number {
  buf[o] = v >>> 24;
  buf[o + 1] = v >>> 16;
  buf[o + 2] = v >>> 8;
  buf[o + 3] = v;
  return o + 4;
}

/** A key or value of `length` bytes as varint length + bytes (-1 = null). */
function writeField(buf: Buffer, o: number, v: Bytes, length: number): number {
  o = writeVarint(buf, o, length);
  if (length <= 0) return o;
  if (typeof v === "string") return o + buf.write(v, o, "utf8");
  buf.set(v as Uint8Array, o);
  return o + length;
}

function writeRawField(buf: Uint8Array, o: number, v: Uint8Array | null): number {
  if (v === null) return writeVarint(buf, o, -1);
  o = writeVarint(buf, o, v.length);
  buf.set(v, o);
  return o + v.length;
}

/**
 * Where a Producer facade puts each send()'s frames for its producer actor: a ring in a
 * SharedArrayBuffer, so a send() allocates no buffer on either thread (a transferred buffer
 * was an allocation on the application thread and, freed in the worker, external memory that
 * paced the worker's major garbage collections). The actor counts each Send it is done with
 * (releaseFrames: the ring's first 4 bytes, atomically); regions are reused oldest first once
 * counted. Sends are handled in the order they are posted, and a Send the actor never handles
 * (refused, or its worker died) is never counted, so the oldest `count` regions are all done
 * with. Regions are placed only right before their ask, with no await between, and PortRef
 * posts asks in call order, so regions are posted in placement order. A send that
 * does not fit (full ring, over a quarter of it, too many regions outstanding) gets a buffer
 * of its own, as before.
 */
export class FrameRing {
  private sab: SharedArrayBuffer | null = null;
  private counter: Int32Array | null = null;
  private bytes: Uint8Array | null = null;
  /** Logical positions: bytes placed so far, and the end of the oldest region not released. */
  private written = 0;
  private released = 0;
  /** Count of regions released (mirrors the shared counter, modulo 2^32). */
  private releasedCount = 0;
  /** Logical end of each region not released yet, oldest first. */
  private readonly ends: number[] = [];
  private head = 0;

  constructor(private readonly dataBytes = RING_DATA_BYTES) {}

  /** `frames` copied into the ring, or null when they do not fit (send them in their own buffer). */
  place(frames: Uint8Array): Uint8Array | null {
    const n = frames.length;
    if (n === 0 || n > this.dataBytes / 4) return null;
    if (!this.sab) {
      this.sab = new SharedArrayBuffer(RING_HEADER_BYTES + this.dataBytes);
      this.counter = new Int32Array(this.sab, 0, 1);
      this.bytes = new Uint8Array(this.sab, RING_HEADER_BYTES);
    }
    const count = Atomics.load(this.counter!, 0);
    while (((count - this.releasedCount) | 0) > 0 && this.head < this.ends.length) {
      this.released = this.ends[this.head++];
      this.releasedCount = (this.releasedCount + 1) | 0;
    }
    if (this.head === this.ends.length) {
      this.ends.length = 0;
      this.head = 0;
    } else if (this.head > 1024) {
      this.ends.splice(0, this.head);
      this.head = 0;
    }
    if (this.ends.length - this.head >= MAX_RING_REGIONS) return null;
    const at = this.written % this.dataBytes;
    const pad = at + n > this.dataBytes ? this.dataBytes - at : 0;
    if (this.written + pad + n - this.released > this.dataBytes) return null;
    const start = pad > 0 ? 0 : at;
    this.bytes!.set(frames, start);
    this.written += pad + n;
    this.ends.push(this.written);
    return new Uint8Array(this.sab, RING_HEADER_BYTES + start, n);
  }
}

/** The ring's count of released regions (an Int32, 8 bytes keep the data aligned). */
const RING_HEADER_BYTES = 8;
/** Ring size: the most a producer facade keeps for frames in flight to its actor. */
const RING_DATA_BYTES = 4 * 1024 * 1024;
/** Regions outstanding at most (tiny sends in a burst use their own buffers past it). */
const MAX_RING_REGIONS = 4096;

/**
 * The actor is done with a Send's frames (parsed and copied, or refused): a FrameRing may
 * reuse their region. Call exactly once per Send handled, after the last read of `frames`.
 */
export function releaseFrames(frames: Uint8Array): void {
  if (frames.buffer instanceof SharedArrayBuffer) Atomics.add(new Int32Array(frames.buffer, 0, 1), 0, 1);
}

function readI32(buf: Uint8Array, o: number): number {
  return (buf[o] << 24) | (buf[o + 1] << 16) | (buf[o + 2] << 8) | buf[o + 3];
}

/**
 * Walks frames in place: after next() returns true the fields describe the current record
 * (offsets into `buf`). No object per record. Throws CORRUPT_MESSAGE on a length that runs past
 * the buffer; the tail itself is checked by the leader (CRC, then record lengths on decode).
 */
export class FrameReader {
  partition = -1;
  /** ms; -1 = "now" (the producer stamps it). */
  timestamp = -1;
  /** Key bytes: offset and length (-1 = null key). */
  keyOffset = 0;
  keyLength = -1;
  /** The record's Kafka encoding from its key length on. */
  tailOffset = 0;
  tailLength = 0;
  private o = 0;
  private readonly view: DataView;

  constructor(readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  next(): boolean {
    const buf = this.buf;
    const o = this.o;
    if (o >= buf.length) return false;
    if (o + FRAME_FIXED_BYTES > buf.length) throw truncated(o);
    this.partition = readI32(buf, o);
    // Most records say "now" (-1.0: BF F0 00 … 00); a DataView read is slower than the check.
    this.timestamp = buf[o + 4] === 0xbf && buf[o + 5] === 0xf0 && readI32(buf, o + 8) === 0 && buf[o + 6] === 0 && buf[o + 7] === 0 ? -1 : this.view.getFloat64(o + 4);
    const keyLength = readI32(buf, o + 12);
    const tailLength = readI32(buf, o + 16);
    const tail = o + FRAME_FIXED_BYTES;
    if (tailLength < 1 || tail + tailLength > buf.length) throw truncated(o);
    this.keyLength = keyLength;
    if (keyLength >= 0) {
      this.keyOffset = tail + sizeOfVarint(keyLength);
      if (this.keyOffset + keyLength > tail + tailLength) throw truncated(o);
    } else if (keyLength !== -1) throw truncated(o);
    this.tailOffset = tail;
    this.tailLength = tailLength;
    this.o = tail + tailLength;
    return true;
  }
}

function truncated(at: number): SkeinError {
  return new SkeinError(ErrorCode.CORRUPT_MESSAGE, `truncated or invalid record frame at byte ${at}`);
}
