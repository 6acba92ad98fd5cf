// How a client facade hands a send() call's records to its producer actor: one buffer per
// call (transferred, not copied), never one postMessage per record.
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

/** Encodes a send() call's messages into one transferable buffer (its own ArrayBuffer, exactly sized). */
export function encodeFrames(messages: OutgoingMessage[]): { buffer: Uint8Array; bytes: number } {
  // Two passes over the messages and no object per record: sizes (validating), then bytes.
  let size = 0;
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i];
    if (m === null || typeof m !== "object") throw new SkeinError(ErrorCode.INVALID_REQUEST, `messages[${i}] must be an object`, { field: `messages.${i}` });
    const partition = m.partition ?? -1;
    if (!Number.isInteger(partition) || partition < -1) throw new SkeinError(ErrorCode.INVALID_REQUEST, `messages[${i}].partition must be a non-negative integer`, { field: `messages.${i}.partition` });
    if (m.timestamp !== undefined && !Number.isFinite(Number(m.timestamp))) {
      throw new SkeinError(ErrorCode.INVALID_REQUEST, `messages[${i}].timestamp must be a number of ms`, { field: `messages.${i}.timestamp` });
    }
    size += FRAME_FIXED_BYTES + fieldSize(byteLength(m.key, i, "key")) + fieldSize(byteLength(m.value, i, "value"));
    const headers = m.headers ? headerList(m.headers, i) : NO_HEADERS;
    size += sizeOfVarint(headers.length);
    for (const [k, v] of headers) size += sizeOfVarint(k.length) + k.length + (v === null ? 1 : sizeOfVarint(v.length) + v.length);
  }
  const buffer = Buffer.allocUnsafeSlow(size);
  let o = 0;
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i];
    o = writeI32(buffer, o, m.partition ?? -1);
    o = buffer.writeDoubleBE(m.timestamp === undefined ? -1 : Number(m.timestamp), o);
    const keyLength = byteLength(m.key, i, "key");
    writeI32(buffer, o, keyLength);
    const tailLengthAt = o + 4;
    const tail = o + 8;
    o = writeField(buffer, tail, m.key, keyLength);
    o = writeField(buffer, o, m.value, byteLength(m.value, i, "value"));
    const headers = m.headers ? headerList(m.headers, i) : NO_HEADERS;
    o = writeVarint(buffer, o, headers.length);
    for (const [k, v] of headers) {
      o = writeVarint(buffer, o, k.length);
      buffer.set(k, o);
      o = writeRawField(buffer, o + k.length, v);
    }
    writeI32(buffer, tailLengthAt, o - tail);
  }
  if (o !== size) throw new Error(`encodeFrames wrote ${o} bytes, sized ${size}`);
  return { buffer, bytes: size };
}

/** partition, timestamp, key length, tail length. */
const FRAME_FIXED_BYTES = 4 + 8 + 4 + 4;
const NO_HEADERS: Array<[Uint8Array, Uint8Array | null]> = [];

function byteLength(v: Bytes, index: number, field: string): number {
  if (v === null || v === undefined) return -1;
  if (typeof v === "string") return Buffer.byteLength(v, "utf8");
  if (v instanceof Uint8Array) return v.length;
  throw new SkeinError(ErrorCode.INVALID_REQUEST, `messages.${index}.${field} must be a string, Uint8Array, Buffer or null, got ${typeof v}`, { field: `messages.${index}.${field}` });
}

/** Tail bytes of a key or value field of `length` bytes (-1 = null). */
function fieldSize(length: number): number {
  return length < 0 ? 1 : sizeOfVarint(length) + length;
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
