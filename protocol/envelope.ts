// Binary envelope for actor messages on NATS and between threads.
//
// Layout (all integers big-endian):
//   u8   version (=1)
//   u8   kind     0 = message, 1 = reply ok, 2 = reply error
//   u16  type length, then the message type name (UTF-8)
//   u32  JSON length, then the JSON body with every top-level Uint8Array field removed
//   u8   number of binary fields, then for each:
//        u16 name length, name (UTF-8), u32 byte length, bytes
//
// Binary fields (record batches) are carried as they are: never base64, never JSON. Only
// top-level fields are looked at, so the cost does not grow with the number of records.
//
// The last binary field ends the envelope, so when the bytes in front of it in its buffer are
// free (see offerEnvelopeHeadroom) the envelope is written around it instead of copying it.

import { ErrorCode, SkeinError } from "./errors.js";

export const ENVELOPE_VERSION = 1;
export const EnvelopeKind = { MESSAGE: 0, REPLY_OK: 1, REPLY_ERROR: 2 } as const;
export type EnvelopeKind = (typeof EnvelopeKind)[keyof typeof EnvelopeKind];

/** Hard cap on one envelope: NATS's default max_payload is 1 MiB, servers may raise it. */
export const MAX_ENVELOPE_BYTES = 64 * 1024 * 1024;

export interface Envelope {
  kind: EnvelopeKind;
  type: string;
  body: unknown;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Strings up to this many chars are encoded and decoded by a JS loop when they are ASCII:
 * type names, field names and small JSON bodies are, and a TextEncoder/TextDecoder call
 * costs more than the loop for them (it crosses into C++). Longer or non-ASCII text goes
 * through TextEncoder/TextDecoder.
 */
const SHORT_TEXT_CHARS = 256;

/**
 * Envelopes up to MAX_SLAB_ENVELOPE_BYTES are cut from a shared 64 KiB slab: a small
 * ArrayBuffer of its own costs ~1.5 µs in V8 (backing store plus external-memory
 * accounting), a view on a slab ~0.07 µs. Slab memory is never reused, so no two live
 * envelopes overlap; like a Node Buffer pool, a view's `.buffer` is shared (copy a binary
 * field before transferring its buffer to another thread).
 */
const SLAB_BYTES = 64 * 1024;
const MAX_SLAB_ENVELOPE_BYTES = 4 * 1024;
let slab = new Uint8Array(0);
let slabUsed = 0;

/** Text ready to be written: an ASCII string (one byte per char) or its UTF-8 bytes. */
type Text = string | Uint8Array;

export function encodeEnvelope(kind: EnvelopeKind, type: string, body: unknown): Uint8Array {
  const typeText = toText(type);
  const split = splitBinaryFields(body);
  const names = split?.names;
  const binaries = split?.values;
  // JSON.stringify gives undefined for undefined, functions and symbols: they travel as null.
  const json = toText(split ? split.json : (JSON.stringify(body) ?? "null"));
  const count = binaries ? binaries.length : 0;
  if (count > 255) throw new SkeinError(ErrorCode.INVALID_REQUEST, "more than 255 binary fields");
  let size = 2 + 2 + typeText.length + 4 + json.length + 1;
  for (let i = 0; i < count; i++) size += 2 + names![i].length + 4 + binaries![i].length;
  const last = count > 0 ? binaries![count - 1] : null;
  const out = (last !== null && claimHeadroom(last, size - last.length)) || allocate(size);
  let p = 0;
  out[p++] = ENVELOPE_VERSION;
  out[p++] = kind;
  p = writeU16(out, p, typeText.length);
  p = writeText(out, p, typeText);
  p = writeU32(out, p, json.length);
  p = writeText(out, p, json);
  out[p++] = count;
  for (let i = 0; i < count; i++) {
    p = writeU16(out, p, names![i].length);
    p = writeText(out, p, names![i]);
    p = writeU32(out, p, binaries![i].length);
    if (out.buffer !== binaries![i].buffer || out.byteOffset + p !== binaries![i].byteOffset) out.set(binaries![i], p);
    p += binaries![i].length;
  }
  return out;
}

/**
 * Free bytes in front of a binary field, by buffer: the field starts at the stored byte offset
 * and everything in its ArrayBuffer before that is unused. Weak: an entry goes with its buffer.
 * One table per thread, kept on globalThis: the runtime and the actors are separate bundles
 * (dist/worker.js, dist/actors.js), each with its own copy of this module.
 */
const HEADROOM_TABLE = Symbol.for("skein.envelope.headroom");
const headroomOf: WeakMap<ArrayBuffer, number> = ((globalThis as Record<symbol, unknown>)[HEADROOM_TABLE] ??= new WeakMap()) as WeakMap<ArrayBuffer, number>;

/**
 * Declares that the bytes of `data`'s ArrayBuffer in front of `data` belong to nobody, so the
 * envelope that carries `data` as its last binary field may be written there, once, instead of
 * into a new buffer with a copy of `data` (a fetch reply's megabyte of batches, read from the
 * log behind such headroom). The caller must not use those bytes afterwards, and, as with any
 * envelope, must not change `data`'s bytes while the envelope is alive.
 */
export function offerEnvelopeHeadroom(data: Uint8Array): void {
  if (data.byteOffset > 0) headroomOf.set(data.buffer as ArrayBuffer, data.byteOffset);
}

/** The `header` bytes in front of `data` plus `data` as one view, if that headroom was offered and is still free. */
function claimHeadroom(data: Uint8Array, header: number): Uint8Array | null {
  const buffer = data.buffer as ArrayBuffer;
  if (headroomOf.get(buffer) !== data.byteOffset || header > data.byteOffset) return null;
  headroomOf.delete(buffer); // once: a second envelope of the same data copies it
  return new Uint8Array(buffer, data.byteOffset - header, header + data.length);
}

/** Decodes an envelope; never trusts lengths. Binary fields are views into `buf` (no copy). */
export function decodeEnvelope(buf: Uint8Array): Envelope {
  if (buf.length > MAX_ENVELOPE_BYTES) throw corrupt(`envelope of ${buf.length} bytes exceeds the limit`);
  const end = buf.length;
  let p = 0;
  need(p, 4, end);
  const version = buf[p++];
  if (version !== ENVELOPE_VERSION) throw corrupt(`unknown envelope version ${version}`);
  const kind = buf[p++];
  if (kind > 2) throw corrupt(`unknown envelope kind ${kind}`);
  const typeLen = readU16(buf, p);
  p += 2;
  need(p, typeLen, end);
  const type = decodeName(buf, p, p + typeLen);
  p += typeLen;
  need(p, 4, end);
  const jsonLen = readU32(buf, p);
  p += 4;
  need(p, jsonLen, end);
  const body = decodeJson(buf, p, p + jsonLen);
  p += jsonLen;
  need(p, 1, end);
  const count = buf[p++];
  if (count > 0) {
    if (body === null || typeof body !== "object" || Array.isArray(body)) throw corrupt("binary fields on a non-object body");
    for (let i = 0; i < count; i++) {
      need(p, 2, end);
      const nameLen = readU16(buf, p);
      p += 2;
      need(p, nameLen, end);
      const name = decodeName(buf, p, p + nameLen);
      p += nameLen;
      need(p, 4, end);
      const len = readU32(buf, p);
      p += 4;
      need(p, len, end);
      // A plain Uint8Array view, also when `buf` is a Node Buffer: the same type on every
      // path (NATS or same-thread), and cheaper to make than Buffer#subarray.
      (body as Record<string, unknown>)[name] = new Uint8Array(buf.buffer, buf.byteOffset + p, len);
      p += len;
    }
  }
  if (p !== end) throw corrupt(`${end - p} trailing bytes after envelope`);
  return { kind: kind as EnvelopeKind, type, body };
}

/**
 * What decodeEnvelope(encodeEnvelope(kind, type, body)) gives, for delivery within one thread,
 * without copying the binary fields: the rest of the body takes the JSON round trip (so it
 * has exactly the value it would have over NATS), each top-level binary field is handed over
 * as a plain Uint8Array view of the sender's bytes. Like a transferred buffer, the sender must
 * not change those bytes afterwards (record batches never are). A fetch reply or a follower's
 * fetched data is megabytes; copying it twice per same-thread hop was a large share of a
 * broker's allocations (and so of its garbage collection).
 */
export function localEnvelope(kind: EnvelopeKind, type: string, body: unknown): Envelope {
  // A type name that is not short ASCII may not come back the same (UTF-8 of a lone
  // surrogate, a u16 length overflow): it takes the real round trip.
  if (toText(type) !== type) return decodeEnvelope(encodeEnvelope(kind, type, body));
  const split = splitBinaryFields(body);
  if (!split) {
    // The round trip of a body without binary fields is JSON.parse of its JSON (JSON.stringify
    // escapes lone surrogates, so its UTF-8 decodes back to the same text); only a body that
    // may be near the envelope size limit takes the real round trip, to fail as it would.
    const json = JSON.stringify(body) ?? "null";
    if (json.length > MAX_LOCAL_JSON_CHARS) return decodeEnvelope(encodeEnvelope(kind, type, body));
    return { kind, type, body: JSON.parse(json) };
  }
  if (split.values.length > 255) throw new SkeinError(ErrorCode.INVALID_REQUEST, "more than 255 binary fields");
  const rest = JSON.parse(split.json) as Record<string, unknown>;
  for (let i = 0; i < split.values.length; i++) {
    const name = split.names[i];
    const v = split.values[i];
    rest[typeof name === "string" ? name : decoder.decode(name)] = v.constructor === Uint8Array ? v : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  }
  return { kind, type, body: rest };
}

/** JSON up to this many chars fits an envelope whatever its UTF-8 (at most 3 bytes a char), header included. */
const MAX_LOCAL_JSON_CHARS = Math.floor(MAX_ENVELOPE_BYTES / 4);

function allocate(size: number): Uint8Array {
  if (size > MAX_SLAB_ENVELOPE_BYTES) return new Uint8Array(size);
  if (slabUsed + size > slab.length) {
    slab = new Uint8Array(SLAB_BYTES);
    slabUsed = 0;
  }
  const out = new Uint8Array(slab.buffer, slabUsed, size);
  slabUsed += (size + 7) & ~7;
  return out;
}

function need(p: number, n: number, end: number): void {
  if (p + n > end) throw corrupt(`truncated envelope at byte ${p}`);
}

function decodeJson(buf: Uint8Array, start: number, end: number): unknown {
  // The two most common bodies: `{}` (a message whose fields are all binary, or none) and
  // `null` (a reply without a value).
  if (end - start === 2 && buf[start] === 0x7b && buf[start + 1] === 0x7d) return {};
  if (end - start === 4 && buf[start] === 0x6e && buf[start + 1] === 0x75 && buf[start + 2] === 0x6c && buf[start + 3] === 0x6c) return null;
  const text = decodeText(buf, start, end);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw corrupt(`envelope body is not JSON: ${(e as Error).message}`);
  }
}

interface BinaryFields {
  names: Text[];
  values: Uint8Array[];
  /** JSON of the other own fields. */
  json: string;
}

/** Splits an object body into its top-level binary fields and the JSON of the rest; null when it has none. */
function splitBinaryFields(body: unknown): BinaryFields | null {
  if (body === null || typeof body !== "object" || Array.isArray(body) || body instanceof Uint8Array) return null;
  const fields = body as Record<string, unknown>;
  let any = false;
  for (const key in fields) {
    if (fields[key] instanceof Uint8Array) {
      any = true;
      break;
    }
  }
  if (!any) return null;
  const split: BinaryFields = { names: [], values: [], json: "{}" };
  let rest: Record<string, unknown> | null = null;
  for (const key in fields) {
    const v = fields[key];
    if (v instanceof Uint8Array) {
      split.names.push(toText(key));
      split.values.push(v);
    } else if (Object.prototype.hasOwnProperty.call(fields, key)) {
      (rest ??= {})[key] = v;
    }
  }
  if (rest) split.json = JSON.stringify(rest);
  return split;
}

function toText(s: string): Text {
  if (s.length <= SHORT_TEXT_CHARS) {
    let ascii = true;
    for (let i = 0; i < s.length; i++) {
      if (s.charCodeAt(i) > 0x7f) {
        ascii = false;
        break;
      }
    }
    if (ascii) return s;
  }
  return encoder.encode(s);
}

function writeText(out: Uint8Array, p: number, text: Text): number {
  if (typeof text === "string") {
    for (let i = 0; i < text.length; i++) out[p + i] = text.charCodeAt(i);
  } else {
    out.set(text, p);
  }
  return p + text.length;
}

function writeU16(out: Uint8Array, p: number, v: number): number {
  out[p] = v >>> 8;
  out[p + 1] = v & 0xff;
  return p + 2;
}

function writeU32(out: Uint8Array, p: number, v: number): number {
  out[p] = v >>> 24;
  out[p + 1] = (v >>> 16) & 0xff;
  out[p + 2] = (v >>> 8) & 0xff;
  out[p + 3] = v & 0xff;
  return p + 4;
}

function readU16(buf: Uint8Array, p: number): number {
  return (buf[p] << 8) | buf[p + 1];
}

function readU32(buf: Uint8Array, p: number): number {
  return ((buf[p] << 24) >>> 0) + ((buf[p + 1] << 16) | (buf[p + 2] << 8) | buf[p + 3]);
}

/**
 * Type and field names repeat on every message: a decoded short ASCII name is kept in a
 * small table (slot by length and edge bytes) and handed out again when the bytes match,
 * which costs a compare instead of building a string.
 */
const NAME_TABLE_SLOTS = 256;
const MAX_INTERNED_NAME_CHARS = 32;
const nameTable: string[] = new Array<string>(NAME_TABLE_SLOTS).fill("");

function decodeName(buf: Uint8Array, start: number, end: number): string {
  const len = end - start;
  if (len === 0 || len > MAX_INTERNED_NAME_CHARS) return decodeText(buf, start, end);
  const slot = (len * 31 + buf[start] * 7 + buf[end - 1]) & (NAME_TABLE_SLOTS - 1);
  const known = nameTable[slot];
  if (known.length === len) {
    let i = 0;
    while (i < len && known.charCodeAt(i) === buf[start + i]) i++;
    if (i === len) return known;
  }
  const name = decodeText(buf, start, end);
  if (name.length === len) nameTable[slot] = name; // ASCII only: one char per byte
  return name;
}

/** UTF-8 → string; invalid UTF-8 is CORRUPT_MESSAGE. */
function decodeText(buf: Uint8Array, start: number, end: number): string {
  if (end - start <= SHORT_TEXT_CHARS) {
    let s = "";
    for (let i = start; i < end; i++) {
      const b = buf[i];
      if (b > 0x7f) return decodeUtf8(buf.subarray(start, end));
      s += String.fromCharCode(b);
    }
    return s;
  }
  return decodeUtf8(buf.subarray(start, end));
}

function decodeUtf8(bytes: Uint8Array): string {
  try {
    return decoder.decode(bytes);
  } catch {
    throw corrupt("invalid UTF-8 in envelope");
  }
}

function corrupt(message: string): SkeinError {
  return new SkeinError(ErrorCode.CORRUPT_MESSAGE, message);
}
