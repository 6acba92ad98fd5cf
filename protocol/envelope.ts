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

export function encodeEnvelope(kind: EnvelopeKind, type: string, body: unknown): Uint8Array {
  const typeBytes = encoder.encode(type);
  const binaries: Array<[Uint8Array, Uint8Array]> = [];
  let jsonBody: unknown = body;
  if (body !== null && typeof body === "object" && !Array.isArray(body) && !(body instanceof Uint8Array)) {
    let copy: Record<string, unknown> | null = null;
    for (const key in body as Record<string, unknown>) {
      const v = (body as Record<string, unknown>)[key];
      if (v instanceof Uint8Array) {
        copy ??= { ...(body as Record<string, unknown>) };
        delete copy[key];
        binaries.push([encoder.encode(key), v]);
      }
    }
    if (copy) jsonBody = copy;
  }
  const json = encoder.encode(jsonBody === undefined ? "null" : JSON.stringify(jsonBody));
  let size = 2 + 2 + typeBytes.length + 4 + json.length + 1;
  for (const [name, bytes] of binaries) size += 2 + name.length + 4 + bytes.length;
  if (binaries.length > 255) throw new SkeinError(ErrorCode.INVALID_REQUEST, "more than 255 binary fields");
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let p = 0;
  out[p++] = ENVELOPE_VERSION;
  out[p++] = kind;
  view.setUint16(p, typeBytes.length);
  p += 2;
  out.set(typeBytes, p);
  p += typeBytes.length;
  view.setUint32(p, json.length);
  p += 4;
  out.set(json, p);
  p += json.length;
  out[p++] = binaries.length;
  for (const [name, bytes] of binaries) {
    view.setUint16(p, name.length);
    p += 2;
    out.set(name, p);
    p += name.length;
    view.setUint32(p, bytes.length);
    p += 4;
    out.set(bytes, p);
    p += bytes.length;
  }
  return out;
}

/** Decodes an envelope; never trusts lengths. Binary fields are views into `buf` (no copy). */
export function decodeEnvelope(buf: Uint8Array): Envelope {
  if (buf.length > MAX_ENVELOPE_BYTES) throw corrupt(`envelope of ${buf.length} bytes exceeds the limit`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let p = 0;
  const need = (n: number) => {
    if (p + n > buf.length) throw corrupt(`truncated envelope at byte ${p}`);
  };
  need(4);
  const version = buf[p++];
  if (version !== ENVELOPE_VERSION) throw corrupt(`unknown envelope version ${version}`);
  const kind = buf[p++];
  if (kind > 2) throw corrupt(`unknown envelope kind ${kind}`);
  const typeLen = view.getUint16(p);
  p += 2;
  need(typeLen);
  const type = decodeText(buf.subarray(p, p + typeLen));
  p += typeLen;
  need(4);
  const jsonLen = view.getUint32(p);
  p += 4;
  need(jsonLen);
  let body: unknown;
  try {
    body = JSON.parse(decodeText(buf.subarray(p, p + jsonLen)));
  } catch (e) {
    throw corrupt(`envelope body is not JSON: ${(e as Error).message}`);
  }
  p += jsonLen;
  need(1);
  const count = buf[p++];
  if (count > 0) {
    if (body === null || typeof body !== "object" || Array.isArray(body)) throw corrupt("binary fields on a non-object body");
    for (let i = 0; i < count; i++) {
      need(2);
      const nameLen = view.getUint16(p);
      p += 2;
      need(nameLen);
      const name = decodeText(buf.subarray(p, p + nameLen));
      p += nameLen;
      need(4);
      const len = view.getUint32(p);
      p += 4;
      need(len);
      (body as Record<string, unknown>)[name] = buf.subarray(p, p + len);
      p += len;
    }
  }
  if (p !== buf.length) throw corrupt(`${buf.length - p} trailing bytes after envelope`);
  return { kind: kind as EnvelopeKind, type, body };
}

function decodeText(bytes: Uint8Array): string {
  try {
    return decoder.decode(bytes);
  } catch {
    throw corrupt("invalid UTF-8 in envelope");
  }
}

function corrupt(message: string): SkeinError {
  return new SkeinError(ErrorCode.CORRUPT_MESSAGE, message);
}
