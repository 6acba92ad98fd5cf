// Decodes fetched chunks into kafkajs-shaped messages on the application's thread: the
// consumer's hot path (about 8,000 messages per MiB of 100-byte records). One pass per batch
// straight into the message objects, no intermediate record objects, and per message only
// what the API hands out: the message, its key and value Buffers (views into the chunk, not
// copies), its offset string and, when it has headers, its headers object. Timestamp strings
// are shared by consecutive messages of the same millisecond, header key strings by records
// with the same keys, and offset strings are joined from cached digits. Offsets and timestamps
// stay eager own properties (not lazy prototype getters) so `{ ...message }`, JSON.stringify
// and Object.keys see the same message as before.
//
// Uncompressed batches are read inline (readPlainBatch), with the codec's checks but no reader
// object or call per field; whatever that loop does not accept goes to the codec's own record
// reader (protocol/record-batch.ts), which decodes it or names what is wrong.
//
// The CRC of every batch is checked here. The consumer actor in the worker thread reads only
// batch headers (verifyCrc: false) and the leader that served the bytes runs in another
// process, so this is the only check between the wire and the application.

import type { KafkaMessage } from "./skein.js";
import type { ByteReader } from "../../protocol/varint.js";
import {
  batchSizeAt, readBatchRecords, readHeader, readRecordFields, endRecord, RecordFields, verifyBatch, BatchAttributes, CompressionCodec, BATCH_HEADER_SIZE, MIN_RECORD_SIZE_BYTES, type BatchHeader,
} from "../../protocol/record-batch.js";

/**
 * The headers of every message that has none. kafkajs hands out a fresh `{}`; sharing one
 * saves an allocation per message, and freezing it keeps one message's mutation from leaking
 * into every other message. The cost: writing into it throws a TypeError (strict mode) instead
 * of succeeding, so code that adds headers to a received message must copy them first
 * (`{ ...message.headers, retry: "1" }`, the usual way to forward a message).
 */
export const NO_HEADERS: Readonly<Record<string, Buffer | null>> = Object.freeze({});

/**
 * The Buffer class of keys, values and header values: Node's own FastBuffer (what Buffer.from
 * makes) is this very shape, a Uint8Array subclass over Buffer.prototype that names Buffer as
 * its constructor, but it is not exported, and Buffer.from checks its arguments on every call:
 * measured 48 ns a view with Buffer.from, 28 ns with this. A view of this class passes
 * Buffer.isBuffer and instanceof Buffer and has every Buffer method; util.inspect and the
 * methods that make a new array of the same kind (subarray, map) see Buffer, as with FastBuffer.
 */
class MessageBuffer extends Uint8Array {}
Object.setPrototypeOf(MessageBuffer.prototype, Buffer.prototype);
Object.defineProperty(MessageBuffer.prototype, "constructor", { value: Buffer, writable: true, configurable: true });

/** A Buffer over `length` bytes of `buffer` from `byteOffset` (a view, not a copy). */
function bufferView(buffer: ArrayBufferLike, byteOffset: number, length: number): Buffer {
  return new MessageBuffer(buffer as ArrayBuffer, byteOffset, length) as unknown as Buffer;
}

/**
 * The most bytes of a fetched chunk decoded for one eachBatch call (a single larger batch
 * stays whole). A chunk is up to maxBytesPerPartition (megabytes: ~40,000 100-byte records);
 * decoded whole, its messages all outlive several young-generation collections and get
 * copied and promoted, which cost more than the decoding itself. Slices this size die young:
 * measured ~3x less CPU per record for 256 KiB slices of a 4 MiB chunk than for the chunk.
 */
export const EACH_BATCH_MAX_BYTES = 256 * 1024;

/**
 * Splits `data` (concatenated batches) at batch boundaries into views of at most `maxBytes`
 * each, in order, covering every byte. Reads only the length fields: a bad length stops the
 * splitting (the rest becomes one view), and decodeChunkMessages then rejects that view.
 */
export function splitChunk(data: Uint8Array, maxBytes: number): Uint8Array[] {
  if (data.length <= maxBytes) return [data];
  const out: Uint8Array[] = [];
  let start = 0;
  let pos = 0;
  while (pos < data.length) {
    const size = batchSizeAt(data, pos);
    if (size < BATCH_HEADER_SIZE || size > data.length - pos) break;
    if (pos > start && pos + size - start > maxBytes) {
      out.push(data.subarray(start, pos));
      start = pos;
    }
    pos += size;
  }
  if (pos > start && pos < data.length) out.push(data.subarray(start, pos));
  out.push(data.subarray(pos < data.length ? pos : start));
  return out;
}

/**
 * Decodes every batch of `data` (concatenated batches as fetched), verifying each one's CRC
 * first, and returns the messages at or after `fromOffset`. Throws SkeinError CORRUPT_MESSAGE
 * on the first bad batch (nothing is returned from a chunk with a bad batch in it).
 */
export function decodeChunkMessages(data: Uint8Array, fromOffset: number): KafkaMessage[] {
  const messages: KafkaMessage[] = [];
  const decoder = new ChunkDecoder(fromOffset, messages);
  let pos = 0;
  while (pos < data.length) {
    const header = verifyBatch(data, pos);
    if (!decoder.readPlainBatch(data, pos, header)) {
      decoder.header = header;
      readBatchRecords(data, pos, header, {}, decoder.read);
    }
    pos += header.sizeInBytes;
  }
  return messages;
}

/** Thrown inside readPlainBatch at anything unusual in the bytes; never leaves this module. */
const UNUSUAL = new Error("record bytes need the careful decoder");

/** Where the varint that varintAt or varlongAt read last ended. */
let varintEnd = 0;

/**
 * ByteReader.readVarint's int32 varint at `pos`, bounded by `end`, without a reader object: the
 * position after it goes to a module variable instead of a field, and the loop inlines.
 */
function varintAt(buf: Uint8Array, pos: number, end: number): number {
  let u = 0;
  for (let shift = 0; shift < 35; shift += 7) {
    if (pos >= end) throw UNUSUAL;
    const b = buf[pos++];
    u |= (b & 0x7f) << shift;
    if (b < 0x80) {
      varintEnd = pos;
      return (u >>> 1) ^ -(u & 1);
    }
  }
  throw UNUSUAL;
}

/** ByteReader.readVarlong's varlong at `pos`, bounded by `end` (the timestamp delta). */
function varlongAt(buf: Uint8Array, pos: number, end: number): number {
  let u = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= end) throw UNUSUAL;
    const b = buf[pos++];
    u += (b & 0x7f) * scale;
    if (u > Number.MAX_SAFE_INTEGER) throw UNUSUAL;
    if (b < 0x80) {
      varintEnd = pos;
      return u % 2 === 0 ? u / 2 : -(u + 1) / 2;
    }
    scale *= 0x80;
  }
  throw UNUSUAL;
}

/**
 * Offsets as decimal strings, made from two cached strings (the thousands, then three digits):
 * String(offset) converts through the runtime for every offset that misses V8's small
 * number-string cache, which sequential offsets always do (measured 69 ns vs 10 ns here).
 */
const THREE_DIGITS = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, "0"));

/** Header keys remembered by position in a record (the first this many headers of each). */
const HEADER_KEYS_CACHED = 8;

class ChunkDecoder {
  header: BatchHeader | null = null;
  private readonly fields = new RecordFields();
  /** The last timestamp turned into a string: a batch's records mostly share a millisecond. */
  private timestamp = NaN;
  private timestampString = "";
  /** floor(offset / 1000) of the last offset turned into a string, and its digits. */
  private thousands = -1;
  private thousandsString = "";
  /** By position in the record: the last ASCII key seen there (see headerKey). */
  private readonly headerKeys: string[] = [];

  constructor(
    private readonly fromOffset: number,
    private readonly out: KafkaMessage[],
  ) {}

  private offsetString(offset: number): string {
    const thousands = Math.floor(offset / 1000);
    if (thousands === 0) return String(offset);
    if (thousands !== this.thousands) {
      this.thousands = thousands;
      this.thousandsString = String(thousands);
    }
    return this.thousandsString + THREE_DIGITS[offset - thousands * 1000];
  }

  private timestampStringOf(timestamp: number): string {
    if (timestamp !== this.timestamp) {
      this.timestamp = timestamp;
      this.timestampString = String(timestamp);
    }
    return this.timestampString;
  }

  /**
   * Decodes an uncompressed batch with every check readRecordFields, readHeader and
   * readBatchRecords make, the common case inline: the consumer's hot loop. At anything those
   * would reject or this does not handle (a compressed batch, a header key that is not ASCII),
   * it takes back what it added and returns false, and the caller decodes the batch with them
   * instead, which gives the exact CORRUPT_MESSAGE or the messages.
   */
  readPlainBatch(buf: Uint8Array, batchPos: number, header: BatchHeader): boolean {
    if ((header.attributes & BatchAttributes.COMPRESSION_MASK) !== CompressionCodec.NONE) return false;
    const before = this.out.length;
    try {
      this.readPlainRecords(buf, batchPos + BATCH_HEADER_SIZE, batchPos + header.sizeInBytes, header);
      return true;
    } catch (e) {
      if (e !== UNUSUAL) throw e;
      this.out.length = before;
      return false;
    }
  }

  private readPlainRecords(buf: Uint8Array, start: number, end: number, header: BatchHeader): void {
    const out = this.out;
    const fromOffset = this.fromOffset;
    const arrayBuffer = buf.buffer;
    const base = buf.byteOffset;
    const count = header.recordCount;
    const lastOffsetDelta = header.lastOffsetDelta;
    const logAppendTime = (header.attributes & BatchAttributes.TIMESTAMP_TYPE_LOG_APPEND) !== 0;
    let pos = start;
    let previousDelta = -1;
    for (let i = 0; i < count; i++) {
      const length = varintAt(buf, pos, end);
      pos = varintEnd;
      if (length < MIN_RECORD_SIZE_BYTES - 1 || length > end - pos) throw UNUSUAL;
      const recordEnd = pos + length;
      pos++; // attributes
      const timestampDelta = varlongAt(buf, pos, recordEnd);
      const offsetDelta = varintAt(buf, varintEnd, recordEnd);
      if (offsetDelta <= previousDelta || offsetDelta > lastOffsetDelta) throw UNUSUAL;
      previousDelta = offsetDelta;
      const timestamp = logAppendTime ? header.maxTimestamp : header.baseTimestamp + timestampDelta;
      if (!Number.isSafeInteger(timestamp)) throw UNUSUAL;
      const keyLength = varintAt(buf, varintEnd, recordEnd);
      pos = varintEnd;
      if (keyLength < -1 || keyLength > recordEnd - pos) throw UNUSUAL;
      const keyStart = pos;
      if (keyLength > 0) pos += keyLength;
      const valueLength = varintAt(buf, pos, recordEnd);
      pos = varintEnd;
      if (valueLength < -1 || valueLength > recordEnd - pos) throw UNUSUAL;
      const valueStart = pos;
      if (valueLength > 0) pos += valueLength;
      const headerCount = varintAt(buf, pos, recordEnd);
      pos = varintEnd;
      if (headerCount < 0 || headerCount > (recordEnd - pos) / 2) throw UNUSUAL;
      let headers = NO_HEADERS as Record<string, Buffer | null>;
      if (headerCount > 0) {
        headers = {};
        pos = this.readPlainHeaders(buf, pos, recordEnd, headerCount, headers);
      }
      if (pos !== recordEnd) throw UNUSUAL;
      const offset = header.baseOffset + offsetDelta;
      if (offset < fromOffset) continue;
      out.push({
        key: keyLength === -1 ? null : bufferView(arrayBuffer, base + keyStart, keyLength),
        value: valueLength === -1 ? null : bufferView(arrayBuffer, base + valueStart, valueLength),
        headers,
        offset: this.offsetString(offset),
        timestamp: this.timestampStringOf(timestamp),
      });
    }
    if (pos !== end) throw UNUSUAL;
  }

  /** readHeader for `count` headers from `pos`, into `headers`; returns the position after them. */
  private readPlainHeaders(buf: Uint8Array, pos: number, recordEnd: number, count: number, headers: Record<string, Buffer | null>): number {
    for (let h = 0; h < count; h++) {
      const keyLength = varintAt(buf, pos, recordEnd);
      pos = varintEnd;
      if (keyLength < 0 || keyLength > recordEnd - pos) throw UNUSUAL;
      const key = this.headerKey(buf, pos, keyLength, h);
      pos += keyLength;
      const valueLength = varintAt(buf, pos, recordEnd);
      pos = varintEnd;
      if (valueLength < -1 || valueLength > recordEnd - pos) throw UNUSUAL;
      if (valueLength === -1) {
        headers[key] = null;
      } else {
        headers[key] = bufferView(buf.buffer, buf.byteOffset + pos, valueLength);
        pos += valueLength;
      }
    }
    return pos;
  }

  /**
   * The ASCII header key at `pos`, as the index-th header of a record: the same string as the
   * previous record's index-th key when the bytes match (records of a batch mostly carry the
   * same header names), so a record's headers cost no strings. Other keys go to readHeader.
   */
  private headerKey(buf: Uint8Array, pos: number, length: number, index: number): string {
    const cached = index < HEADER_KEYS_CACHED ? this.headerKeys[index] : undefined;
    if (cached !== undefined && cached.length === length) {
      let i = 0;
      while (i < length && cached.charCodeAt(i) === buf[pos + i]) i++;
      if (i === length) return cached;
    }
    let key = "";
    for (let i = pos; i < pos + length; i++) {
      const c = buf[i];
      if (c >= 0x80) throw UNUSUAL;
      key += String.fromCharCode(c);
    }
    if (index < HEADER_KEYS_CACHED) this.headerKeys[index] = key;
    return key;
  }

  /** The careful decoder, for what readPlainBatch leaves to it (called by readBatchRecords). */
  readonly read = (r: ByteReader, recordsEnd: number): void => {
    const header = this.header!;
    const f = this.fields;
    const out = this.out;
    const arrayBuffer = r.buf.buffer;
    const base = r.buf.byteOffset;
    f.offsetDelta = -1;
    for (let i = 0; i < header.recordCount; i++) {
      readRecordFields(r, recordsEnd, header, f.offsetDelta, f);
      let headers = NO_HEADERS as Record<string, Buffer | null>;
      if (f.headerCount > 0) {
        headers = {};
        for (let h = 0; h < f.headerCount; h++) {
          const { key, value } = readHeader(r);
          headers[key] = value ? bufferView(value.buffer, value.byteOffset, value.byteLength) : null;
        }
      }
      endRecord(r, f);
      if (f.offset < this.fromOffset) continue;
      out.push({
        key: f.keyLength === -1 ? null : bufferView(arrayBuffer, base + f.keyStart, f.keyLength),
        value: f.valueLength === -1 ? null : bufferView(arrayBuffer, base + f.valueStart, f.valueLength),
        headers,
        offset: this.offsetString(f.offset),
        timestamp: this.timestampStringOf(f.timestamp),
      });
    }
  };
}
