// How a client facade hands a send() call's records to its producer actor: one buffer per
// call (transferred, not copied), never one postMessage per record.
//
// Frame layout per record (big-endian):
//   i32 partition (-1 = choose)   f64 timestamp ms (-1 = now)
//   i32 key length (-1 = null)    key bytes
//   i32 value length (-1 = null)  value bytes
//   u16 header count, then per header: u16 key length, key (UTF-8), i32 value length (-1 = null), value

import { ErrorCode, SkeinError } from "../../protocol/errors.js";
import type { RecordHeader, RecordInput } from "../../protocol/record-batch.js";

export type Bytes = Uint8Array | string | null | undefined;

export interface OutgoingMessage {
  key?: Bytes;
  value: Bytes;
  headers?: Record<string, Bytes> | RecordHeader[];
  partition?: number;
  timestamp?: number | string;
}

export interface FramedRecord {
  partition: number;
  record: RecordInput;
}

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

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

/** Encodes a send() call's messages into one transferable buffer. */
export function encodeFrames(messages: OutgoingMessage[]): { buffer: Uint8Array; bytes: number } {
  const prepared = messages.map((m, i) => {
    if (m === null || typeof m !== "object") throw new SkeinError(ErrorCode.INVALID_REQUEST, `messages[${i}] must be an object`, { field: `messages.${i}` });
    const partition = m.partition ?? -1;
    if (!Number.isInteger(partition) || partition < -1) throw new SkeinError(ErrorCode.INVALID_REQUEST, `messages[${i}].partition must be a non-negative integer`, { field: `messages.${i}.partition` });
    const ts = m.timestamp === undefined ? -1 : Number(m.timestamp);
    if (!Number.isFinite(ts)) throw new SkeinError(ErrorCode.INVALID_REQUEST, `messages[${i}].timestamp must be a number of ms`, { field: `messages.${i}.timestamp` });
    return { partition, ts, key: toBytes(m.key, `messages.${i}.key`), value: toBytes(m.value, `messages.${i}.value`), headers: headerList(m.headers, i) };
  });
  let size = 0;
  for (const p of prepared) {
    size += 4 + 8 + 4 + (p.key?.length ?? 0) + 4 + (p.value?.length ?? 0) + 2;
    for (const [k, v] of p.headers) size += 2 + k.length + 4 + (v?.length ?? 0);
  }
  const buffer = new Uint8Array(size);
  const view = new DataView(buffer.buffer);
  let o = 0;
  const bytes = (b: Uint8Array | null) => {
    view.setInt32(o, b ? b.length : -1);
    o += 4;
    if (b) {
      buffer.set(b, o);
      o += b.length;
    }
  };
  for (const p of prepared) {
    view.setInt32(o, p.partition);
    view.setFloat64(o + 4, p.ts);
    o += 12;
    bytes(p.key);
    bytes(p.value);
    view.setUint16(o, p.headers.length);
    o += 2;
    for (const [k, v] of p.headers) {
      view.setUint16(o, k.length);
      buffer.set(k, o + 2);
      o += 2 + k.length;
      bytes(v);
    }
  }
  return { buffer, bytes: size };
}

/** Decodes frames (views into `buf`, no copies); throws CORRUPT_MESSAGE on bad lengths. */
export function decodeFrames(buf: Uint8Array, now = Date.now()): FramedRecord[] {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: FramedRecord[] = [];
  let o = 0;
  const need = (n: number) => {
    if (n < 0 || o + n > buf.length) throw new SkeinError(ErrorCode.CORRUPT_MESSAGE, `truncated record frame at byte ${o}`);
  };
  const bytes = (): Uint8Array | null => {
    need(4);
    const len = view.getInt32(o);
    o += 4;
    if (len === -1) return null;
    need(len);
    const b = buf.subarray(o, o + len);
    o += len;
    return b;
  };
  while (o < buf.length) {
    need(12);
    const partition = view.getInt32(o);
    const ts = view.getFloat64(o + 4);
    o += 12;
    const key = bytes();
    const value = bytes();
    need(2);
    const count = view.getUint16(o);
    o += 2;
    const headers: RecordHeader[] = [];
    for (let i = 0; i < count; i++) {
      need(2);
      const klen = view.getUint16(o);
      o += 2;
      need(klen);
      const k = utf8Decoder.decode(buf.subarray(o, o + klen));
      o += klen;
      headers.push({ key: k, value: bytes() });
    }
    out.push({ partition, record: { key, value, headers, timestamp: ts < 0 ? now : ts } });
  }
  return out;
}
