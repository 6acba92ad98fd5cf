// Record batch codec: Kafka's RecordBatch v2 (magic 2), byte for byte, so the Kafka gateway can
// pass batches through untouched. All integers are big-endian; varint/varlong are zigzag.
//
//   RecordBatch =>
//     baseOffset            int64    offset of the first record
//     batchLength           int32    bytes after this field
//     partitionLeaderEpoch  int32    set by the leader on append; not covered by the CRC
//     magic                 int8     = 2
//     crc                   uint32   CRC32C of everything from attributes to the end
//     attributes            int16    bits 0-2 compression (0 none, 1 gzip), 3 timestampType
//                                    (1 = LogAppendTime), 4 transactional, 5 control,
//                                    6 hasDeleteHorizon
//     lastOffsetDelta       int32    offset of the last record - baseOffset
//     baseTimestamp         int64    timestamp of the first record (ms)
//     maxTimestamp          int64    largest timestamp in the batch (ms)
//     producerId            int64    -1 when not idempotent
//     producerEpoch         int16    -1 when not idempotent
//     baseSequence          int32    -1 when not idempotent
//     recordsCount          int32
//     records               [Record] (starting at byte 61)
//
//   Record =>
//     length                varint   bytes after this field
//     attributes            int8     unused, 0
//     timestampDelta        varlong  timestamp - baseTimestamp
//     offsetDelta           varint   offset - baseOffset
//     keyLength             varint   -1 = null key
//     key                   bytes
//     valueLength           varint   -1 = null value (a tombstone)
//     value                 bytes
//     headersCount          varint
//     Header =>
//       headerKeyLength     varint
//       headerKey           utf8
//       headerValueLength   varint   -1 = null
//       headerValue         bytes
//
// With gzip compression (read only) the records section is one gzip stream of the records.
// Offsets and timestamps are JS numbers: int64 fields outside the safe-integer range are
// rejected as CORRUPT_MESSAGE rather than silently rounded. Everything read from a buffer is
// untrusted: every length and count is checked against the batch bounds before it is used,
// and nothing is allocated from a count that the remaining bytes could not hold.

import { Buffer } from "node:buffer";
import { gunzipSync } from "node:zlib";
import { crc32c } from "./crc32c.js";
import { ErrorCode, SkeinError } from "./errors.js";
import { ByteReader, sizeOfVarint, sizeOfVarlong, writeVarint, writeVarlong } from "./varint.js";

export const MAGIC = 2;
/** Bytes before the first record. */
export const BATCH_HEADER_SIZE = 61;
/** baseOffset + batchLength: the bytes not counted by batchLength. */
export const LOG_OVERHEAD = 12;
/** Largest batch the encoder produces unless told otherwise (batchLength is an int32). */
export const MAX_BATCH_SIZE_BYTES = 0x7fffffff;
/** Smallest possible record: a one-byte varint or int8 for each of its 7 fields. */
export const MIN_RECORD_SIZE_BYTES = 7;
/** Default bound on the records of one compressed batch once decompressed (a zip bomb guard). */
export const MAX_DECOMPRESSED_BATCH_BYTES = 64 * 1024 * 1024;

const BASE_OFFSET_POS = 0;
const BATCH_LENGTH_POS = 8;
const PARTITION_LEADER_EPOCH_POS = 12;
const MAGIC_POS = 16;
const CRC_POS = 17;
const ATTRIBUTES_POS = 21;
const LAST_OFFSET_DELTA_POS = 23;
const BASE_TIMESTAMP_POS = 27;
const MAX_TIMESTAMP_POS = 35;
const PRODUCER_ID_POS = 43;
const PRODUCER_EPOCH_POS = 51;
const BASE_SEQUENCE_POS = 53;
const RECORDS_COUNT_POS = 57;
/** Smallest valid batchLength: the header after LOG_OVERHEAD, no records. */
const MIN_BATCH_LENGTH = BATCH_HEADER_SIZE - LOG_OVERHEAD;

/** Bits of the batch `attributes` field. */
export const BatchAttributes = {
  COMPRESSION_MASK: 0x07,
  TIMESTAMP_TYPE_LOG_APPEND: 0x08,
  TRANSACTIONAL: 0x10,
  CONTROL: 0x20,
  HAS_DELETE_HORIZON: 0x40,
} as const;

/** Kafka's compression codec ids (attributes bits 0-2). NONE is read and written; GZIP is read only. */
export const CompressionCodec = {
  NONE: 0,
  GZIP: 1,
  SNAPPY: 2,
  LZ4: 3,
  ZSTD: 4,
} as const;
export type CompressionCodec = (typeof CompressionCodec)[keyof typeof CompressionCodec];

export interface RecordHeader {
  key: string;
  value: Uint8Array | null;
}

export interface RecordInput {
  key?: Uint8Array | null;
  /** null = tombstone. */
  value: Uint8Array | null;
  headers?: RecordHeader[];
  /** Milliseconds since the epoch; defaults to EncodeOptions.timestamp. */
  timestamp?: number;
}

export interface BatchHeader {
  baseOffset: number;
  batchLength: number;
  partitionLeaderEpoch: number;
  magic: number;
  crc: number;
  attributes: number;
  lastOffsetDelta: number;
  baseTimestamp: number;
  maxTimestamp: number;
  producerId: number;
  producerEpoch: number;
  baseSequence: number;
  recordCount: number;
  /** total bytes of the batch on disk/wire = LOG_OVERHEAD + batchLength */
  sizeInBytes: number;
  /** baseOffset + lastOffsetDelta */
  lastOffset: number;
}

export interface DecodedRecord {
  offset: number;
  /** Milliseconds; the batch's maxTimestamp for every record when the batch uses LogAppendTime. */
  timestamp: number;
  /** A view into the decoded buffer, not a copy. */
  key: Uint8Array | null;
  /** A view into the decoded buffer, not a copy. */
  value: Uint8Array | null;
  headers: RecordHeader[];
}

export interface EncodeOptions {
  /** Default 0; the log assigns the real one with setBaseOffset. */
  baseOffset?: number;
  /** Default -1 (no epoch); the leader stamps it with setPartitionLeaderEpoch. */
  partitionLeaderEpoch?: number;
  /** Default -1 (not idempotent). */
  producerId?: number;
  /** Default -1. */
  producerEpoch?: number;
  /** Default -1. */
  baseSequence?: number;
  /** Milliseconds for records without their own timestamp; default Date.now(). */
  timestamp?: number;
  /** Batch attributes; compression bits must be 0 (no compression support yet). Default 0. */
  attributes?: number;
  /** Refuse to build a batch larger than this (MESSAGE_TOO_LARGE). Default MAX_BATCH_SIZE_BYTES. */
  maxBatchBytes?: number;
}

function maxRecordsIn(recordBytes: number): number {
  return Math.floor(recordBytes / MIN_RECORD_SIZE_BYTES);
}

function corrupt(message: string, context: Record<string, unknown> = {}): SkeinError {
  return new SkeinError(ErrorCode.CORRUPT_MESSAGE, message, context);
}

function invalid(message: string, field: string): SkeinError {
  return new SkeinError(ErrorCode.INVALID_REQUEST, message, { field });
}

// ---- fixed-width big-endian helpers (no DataView allocation per call) ----

function readInt16(buf: Uint8Array, pos: number): number {
  return ((buf[pos] << 24) | (buf[pos + 1] << 16)) >> 16;
}

function readInt32(buf: Uint8Array, pos: number): number {
  return (buf[pos] << 24) | (buf[pos + 1] << 16) | (buf[pos + 2] << 8) | buf[pos + 3];
}

function readUint32(buf: Uint8Array, pos: number): number {
  return readInt32(buf, pos) >>> 0;
}

/** An int64 as a number, or NaN if it is outside the safe-integer range. */
function readInt64(buf: Uint8Array, pos: number): number {
  const value = readInt32(buf, pos) * 0x100000000 + readUint32(buf, pos + 4);
  return Number.isSafeInteger(value) ? value : NaN;
}

function writeInt16(buf: Uint8Array, pos: number, value: number): void {
  buf[pos] = value >> 8;
  buf[pos + 1] = value;
}

function writeInt32(buf: Uint8Array, pos: number, value: number): void {
  buf[pos] = value >>> 24;
  buf[pos + 1] = value >>> 16;
  buf[pos + 2] = value >>> 8;
  buf[pos + 3] = value;
}

function writeInt64(buf: Uint8Array, pos: number, value: number): void {
  const hi = Math.floor(value / 0x100000000);
  writeInt32(buf, pos, hi);
  writeInt32(buf, pos + 4, value - hi * 0x100000000);
}

// ---- UTF-8 for header keys (manual, so size and bytes are computed by the same rules) ----

function utf8Length(s: string): number {
  let size = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) size += 1;
    else if (c < 0x800) size += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      size += 4;
      i++;
    } else size += 3; // BMP char, or a lone surrogate written as U+FFFD
  }
  return size;
}

function writeUtf8(buf: Uint8Array, pos: number, s: string): number {
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      buf[pos++] = c;
    } else if (c < 0x800) {
      buf[pos++] = 0xc0 | (c >> 6);
      buf[pos++] = 0x80 | (c & 0x3f);
    } else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      c = 0x10000 + ((c - 0xd800) << 10) + (s.charCodeAt(++i) - 0xdc00);
      buf[pos++] = 0xf0 | (c >> 18);
      buf[pos++] = 0x80 | ((c >> 12) & 0x3f);
      buf[pos++] = 0x80 | ((c >> 6) & 0x3f);
      buf[pos++] = 0x80 | (c & 0x3f);
    } else {
      if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
      buf[pos++] = 0xe0 | (c >> 12);
      buf[pos++] = 0x80 | ((c >> 6) & 0x3f);
      buf[pos++] = 0x80 | (c & 0x3f);
    }
  }
  return pos;
}

const utf8Decoder = new TextDecoder();

function readUtf8(buf: Uint8Array, start: number, end: number): string {
  if (end - start <= 32) {
    let s = "";
    for (let i = start; i < end; i++) {
      const c = buf[i];
      if (c >= 0x80) return utf8Decoder.decode(buf.subarray(start, end));
      s += String.fromCharCode(c);
    }
    return s;
  }
  return utf8Decoder.decode(buf.subarray(start, end));
}

// ---- encoding ----

function bytesSize(b: Uint8Array | null | undefined): number {
  return b == null ? sizeOfVarint(-1) : sizeOfVarint(b.length) + b.length;
}

function writeBytes(buf: Uint8Array, pos: number, b: Uint8Array | null | undefined): number {
  if (b == null) return writeVarint(buf, pos, -1);
  pos = writeVarint(buf, pos, b.length);
  buf.set(b, pos);
  return pos + b.length;
}

/** Size of a record's body (everything after its length varint). */
function recordBodySize(r: RecordInput, timestampDelta: number, offsetDelta: number): number {
  const tsSize = sizeOfVarlong(timestampDelta);
  if (tsSize < 0) throw invalid(`timestamp ${r.timestamp} is too far from the batch's base timestamp`, "timestamp");
  let size = 1 + tsSize + sizeOfVarint(offsetDelta) + bytesSize(r.key) + bytesSize(r.value);
  const headers = r.headers;
  const headerCount = headers === undefined ? 0 : headers.length;
  size += sizeOfVarint(headerCount);
  for (let i = 0; i < headerCount; i++) {
    const h = headers![i];
    const keySize = utf8Length(h.key);
    size += sizeOfVarint(keySize) + keySize + bytesSize(h.value);
  }
  return size;
}

function writeRecord(buf: Uint8Array, pos: number, r: RecordInput, bodySize: number, timestampDelta: number, offsetDelta: number): number {
  pos = writeVarint(buf, pos, bodySize);
  buf[pos++] = 0;
  pos = writeVarlong(buf, pos, timestampDelta);
  pos = writeVarint(buf, pos, offsetDelta);
  pos = writeBytes(buf, pos, r.key);
  pos = writeBytes(buf, pos, r.value);
  const headers = r.headers;
  const headerCount = headers === undefined ? 0 : headers.length;
  pos = writeVarint(buf, pos, headerCount);
  for (let i = 0; i < headerCount; i++) {
    const h = headers![i];
    pos = writeVarint(buf, pos, utf8Length(h.key));
    pos = writeUtf8(buf, pos, h.key);
    pos = writeBytes(buf, pos, h.value);
  }
  return pos;
}

/** Writes the fixed header except the CRC, which covers the records written after it. */
function writeBatchHeader(
  buf: Uint8Array,
  options: EncodeOptions,
  fields: { baseOffset: number; attributes: number; count: number; baseTimestamp: number; maxTimestamp: number },
): void {
  writeInt64(buf, BASE_OFFSET_POS, fields.baseOffset);
  writeInt32(buf, BATCH_LENGTH_POS, buf.length - LOG_OVERHEAD);
  writeInt32(buf, PARTITION_LEADER_EPOCH_POS, requireInt(options.partitionLeaderEpoch ?? -1, 32, "partitionLeaderEpoch"));
  buf[MAGIC_POS] = MAGIC;
  writeInt16(buf, ATTRIBUTES_POS, fields.attributes);
  writeInt32(buf, LAST_OFFSET_DELTA_POS, fields.count - 1);
  writeInt64(buf, BASE_TIMESTAMP_POS, fields.baseTimestamp);
  writeInt64(buf, MAX_TIMESTAMP_POS, fields.maxTimestamp);
  writeInt64(buf, PRODUCER_ID_POS, requireSafe(options.producerId ?? -1, "producerId"));
  writeInt16(buf, PRODUCER_EPOCH_POS, requireInt(options.producerEpoch ?? -1, 16, "producerEpoch"));
  writeInt32(buf, BASE_SEQUENCE_POS, requireInt(options.baseSequence ?? -1, 32, "baseSequence"));
  writeInt32(buf, RECORDS_COUNT_POS, fields.count);
}

function requireSafe(value: number, field: string): number {
  if (!Number.isSafeInteger(value)) throw invalid(`${field} must be a safe integer, got ${value}`, field);
  return value;
}

function requireInt(value: number, bits: 16 | 32, field: string): number {
  const limit = 2 ** (bits - 1);
  if (!Number.isInteger(value) || value < -limit || value >= limit) {
    throw invalid(`${field} must be an int${bits}, got ${value}`, field);
  }
  return value;
}

/**
 * Encodes records into one uncompressed batch. Sizes are computed first and the batch is
 * written into a single exactly-sized buffer; record i gets offsetDelta i.
 */
export function encodeBatch(records: RecordInput[], options: EncodeOptions = {}): Uint8Array {
  const count = records.length;
  if (count === 0) throw invalid("a batch needs at least one record", "records");
  const attributes = requireInt(options.attributes ?? 0, 16, "attributes");
  if ((attributes & BatchAttributes.COMPRESSION_MASK) !== CompressionCodec.NONE) {
    throw invalid("compressed batches are not supported by the encoder", "attributes");
  }
  const baseOffset = requireSafe(options.baseOffset ?? 0, "baseOffset");
  if (baseOffset < 0) throw invalid("baseOffset must not be negative", "baseOffset");
  requireSafe(baseOffset + count - 1, "lastOffset");
  const defaultTimestamp = requireSafe(options.timestamp ?? Date.now(), "timestamp");

  const timestamps = new Array<number>(count);
  for (let i = 0; i < count; i++) {
    const ts = records[i].timestamp;
    timestamps[i] = ts === undefined ? defaultTimestamp : requireSafe(ts, "timestamp");
  }
  const baseTimestamp = timestamps[0];
  let maxTimestamp = baseTimestamp;
  const bodySizes = new Array<number>(count);
  let size = BATCH_HEADER_SIZE;
  for (let i = 0; i < count; i++) {
    const ts = timestamps[i];
    if (ts > maxTimestamp) maxTimestamp = ts;
    const body = recordBodySize(records[i], ts - baseTimestamp, i);
    bodySizes[i] = body;
    size += sizeOfVarint(body) + body;
  }
  const maxBatchBytes = options.maxBatchBytes ?? MAX_BATCH_SIZE_BYTES;
  if (size > maxBatchBytes || size > MAX_BATCH_SIZE_BYTES) {
    throw new SkeinError(ErrorCode.MESSAGE_TOO_LARGE, `batch of ${size} bytes exceeds ${maxBatchBytes}`, {
      sizeInBytes: size,
      maxBatchBytes,
    });
  }

  const buf = new Uint8Array(size);
  writeBatchHeader(buf, options, { baseOffset, attributes, count, baseTimestamp, maxTimestamp });
  let pos = BATCH_HEADER_SIZE;
  for (let i = 0; i < count; i++) {
    pos = writeRecord(buf, pos, records[i], bodySizes[i], timestamps[i] - baseTimestamp, i);
  }
  if (pos !== size) throw new Error(`record batch encoder wrote ${pos} bytes, sized ${size}`);
  writeInt32(buf, CRC_POS, crc32c(buf.subarray(ATTRIBUTES_POS)));
  return buf;
}

/**
 * Builds one uncompressed batch record by record in a growing buffer, the way Kafka's
 * MemoryRecordsBuilder does: a producer never holds its records as objects, key, value and
 * header bytes are copied straight from the buffer they arrived in (offset + length, -1 for
 * null). Record i gets offsetDelta i; the first record's timestamp is the base timestamp.
 * `finish` writes the header and CRC and hands out the batch; the builder is spent then.
 */
export class RecordBatchBuilder {
  private buf: Uint8Array;
  private pos = BATCH_HEADER_SIZE;
  private finished = false;
  /** Records appended so far. */
  count = 0;
  private baseTimestamp = 0;
  private maxTimestamp = 0;

  /**
   * `capacityBytes`: the buffer to start with (a producer gives its batchBytes plus room for a
   * record, so a batch never grows); it doubles when a record does not fit.
   */
  constructor(capacityBytes = 16 * 1024) {
    this.buf = new Uint8Array(Math.max(capacityBytes, BATCH_HEADER_SIZE + 64));
  }

  /** Bytes the batch has so far (header included). */
  get sizeInBytes(): number {
    return this.pos;
  }

  /**
   * Appends one record given its `tail`: the record's encoding from the key length on (key,
   * value, headers exactly as a batch stores them), `tailLength` bytes at `tailOffset` in `src`.
   * `timestamp` in ms. Only length, timestampDelta and offsetDelta are written here.
   */
  appendTail(timestamp: number, src: Uint8Array, tailOffset: number, tailLength: number): void {
    if (this.finished) throw new Error("RecordBatchBuilder: append after finish");
    if (!Number.isSafeInteger(timestamp)) throw invalid(`timestamp must be a safe integer, got ${timestamp}`, "timestamp");
    if (this.count === 0) this.baseTimestamp = this.maxTimestamp = timestamp;
    else if (timestamp > this.maxTimestamp) this.maxTimestamp = timestamp;
    const timestampDelta = timestamp - this.baseTimestamp;
    // Deltas within an int32 (almost always: ms within a batch) take the varint path.
    const small = timestampDelta >= -0x40000000 && timestampDelta < 0x40000000;
    const tsSize = small ? sizeOfVarint(timestampDelta) : sizeOfVarlong(timestampDelta);
    if (tsSize < 0) throw invalid(`timestamp ${timestamp} is too far from the batch's base timestamp`, "timestamp");
    const offsetDelta = this.count;
    const body = 1 + tsSize + sizeOfVarint(offsetDelta) + tailLength;
    if (this.pos + 5 + body > this.buf.length) this.ensure(5 + body);
    const buf = this.buf;
    let pos = writeVarint(buf, this.pos, body);
    buf[pos++] = 0;
    pos = small ? writeVarint(buf, pos, timestampDelta) : writeVarlong(buf, pos, timestampDelta);
    pos = writeVarint(buf, pos, offsetDelta);
    buf.set(src.subarray(tailOffset, tailOffset + tailLength), pos);
    this.pos = pos + tailLength;
    this.count++;
  }

  private ensure(extra: number): void {
    if (this.pos + extra <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + extra) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.buf.subarray(0, this.pos));
    this.buf = grown;
  }

  /** Bytes of the buffer the batch is built in. */
  get capacityBytes(): number {
    return this.buf.length;
  }

  /** Writes the header (EncodeOptions as for encodeBatch; baseOffset 0 unless given) and the CRC. */
  finish(options: EncodeOptions = {}): Uint8Array {
    const attributes = this.checkFinish(options);
    // A batch sealed early (linger) should not pin a buffer sized for a full one until acked.
    const out = this.pos * 2 < this.buf.length ? this.buf.slice(0, this.pos) : this.buf.subarray(0, this.pos);
    this.buf = out;
    this.writeHeader(out, options, attributes);
    this.finished = true;
    return out;
  }

  /**
   * As finish, but hands out a copy of exactly the batch's bytes in an ArrayBuffer of its own
   * and starts over, empty, on the same buffer. A producer keeps a few builders this way
   * instead of allocating (and zeroing) a buffer sized for a full batch for every batch, which
   * was most of its worker's external memory churn and so of its major garbage collections.
   */
  finishCopy(options: EncodeOptions = {}): Uint8Array {
    const attributes = this.checkFinish(options);
    const out = new Uint8Array(Buffer.allocUnsafeSlow(this.pos).buffer, 0, this.pos);
    out.set(this.buf.subarray(BATCH_HEADER_SIZE, this.pos), BATCH_HEADER_SIZE);
    this.writeHeader(out, options, attributes);
    this.pos = BATCH_HEADER_SIZE;
    this.count = 0;
    return out;
  }

  /**
   * As finish, but the batch stays in this builder's buffer: the bytes returned are valid until
   * reset(), which empties the builder for the next batch on the same buffer. For a batch that
   * fills most of the buffer, where a copy would cost as much as the buffer it saves.
   */
  finishInPlace(options: EncodeOptions = {}): Uint8Array {
    const attributes = this.checkFinish(options);
    const out = this.buf.subarray(0, this.pos);
    this.writeHeader(out, options, attributes);
    this.finished = true;
    return out;
  }

  /** Empty again on the same buffer; bytes finishInPlace handed out are overwritten from here on. */
  reset(): void {
    this.pos = BATCH_HEADER_SIZE;
    this.count = 0;
    this.finished = false;
  }

  private checkFinish(options: EncodeOptions): number {
    if (this.count === 0) throw invalid("a batch needs at least one record", "records");
    if (this.finished) throw new Error("RecordBatchBuilder: finished twice");
    const attributes = requireInt(options.attributes ?? 0, 16, "attributes");
    if ((attributes & BatchAttributes.COMPRESSION_MASK) !== CompressionCodec.NONE) throw invalid("compressed batches are not supported by the encoder", "attributes");
    const maxBatchBytes = options.maxBatchBytes ?? MAX_BATCH_SIZE_BYTES;
    if (this.pos > maxBatchBytes || this.pos > MAX_BATCH_SIZE_BYTES) {
      throw new SkeinError(ErrorCode.MESSAGE_TOO_LARGE, `batch of ${this.pos} bytes exceeds ${maxBatchBytes}`, { sizeInBytes: this.pos, maxBatchBytes });
    }
    return attributes;
  }

  /** Header and CRC into `out`, which holds this batch's records from BATCH_HEADER_SIZE on. */
  private writeHeader(out: Uint8Array, options: EncodeOptions, attributes: number): void {
    const baseOffset = requireSafe(options.baseOffset ?? 0, "baseOffset");
    writeBatchHeader(out, options, { baseOffset, attributes, count: this.count, baseTimestamp: this.baseTimestamp, maxTimestamp: this.maxTimestamp });
    writeInt32(out, CRC_POS, crc32c(out.subarray(ATTRIBUTES_POS)));
  }
}

// ---- header, CRC, in-place updates ----

/** Size of the batch starting at pos, or -1 if fewer than LOG_OVERHEAD bytes are available (a torn tail). Does not validate. */
export function batchSizeAt(buf: Uint8Array, pos = 0): number {
  if (pos < 0 || buf.length - pos < LOG_OVERHEAD) return -1;
  return LOG_OVERHEAD + readInt32(buf, pos + BATCH_LENGTH_POS);
}

export interface ReadBatchHeaderOptions {
  /**
   * Accept a buffer that holds only the BATCH_HEADER_SIZE header bytes (e.g. a header read on
   * its own from a segment file). Default false: the whole batch must be inside `buf`.
   */
  headerOnly?: boolean;
}

function int64Field(buf: Uint8Array, pos: number, field: string, batchPos: number): number {
  const value = readInt64(buf, pos);
  if (Number.isNaN(value)) throw corrupt(`${field} is outside the safe-integer range`, { position: batchPos });
  return value;
}

/** Reads and validates the fixed header at pos (lengths, magic, counts; NOT the CRC). Throws SkeinError CORRUPT_MESSAGE. */
export function readBatchHeader(buf: Uint8Array, pos = 0, options: ReadBatchHeaderOptions = {}): BatchHeader {
  const available = buf.length - pos;
  if (!Number.isInteger(pos) || pos < 0 || available < BATCH_HEADER_SIZE) {
    throw corrupt(`batch header at ${pos} is truncated (${Math.max(available, 0)} bytes available)`, { position: pos, truncated: true });
  }
  const batchLength = readInt32(buf, pos + BATCH_LENGTH_POS);
  if (batchLength < MIN_BATCH_LENGTH) throw corrupt(`batchLength ${batchLength} is below the minimum ${MIN_BATCH_LENGTH}`, { position: pos });
  const sizeInBytes = LOG_OVERHEAD + batchLength;
  if (!options.headerOnly && sizeInBytes > available) {
    throw corrupt(`batch at ${pos} needs ${sizeInBytes} bytes, only ${available} available`, { position: pos, truncated: true });
  }
  const magic = buf[pos + MAGIC_POS];
  if (magic !== MAGIC) throw corrupt(`unsupported magic ${magic}`, { position: pos });
  const attributes = readInt16(buf, pos + ATTRIBUTES_POS);
  const codec = attributes & BatchAttributes.COMPRESSION_MASK;
  if (codec !== CompressionCodec.NONE && codec !== CompressionCodec.GZIP) {
    throw corrupt(`unsupported compression codec ${codec}`, { position: pos });
  }
  const baseOffset = int64Field(buf, pos + BASE_OFFSET_POS, "baseOffset", pos);
  if (baseOffset < 0) throw corrupt(`negative baseOffset ${baseOffset}`, { position: pos });
  const lastOffsetDelta = readInt32(buf, pos + LAST_OFFSET_DELTA_POS);
  const recordCount = readInt32(buf, pos + RECORDS_COUNT_POS);
  // A compressed batch's count is bounded after decompression, in decodeRecords.
  const maxRecords = codec === CompressionCodec.NONE ? maxRecordsIn(batchLength - MIN_BATCH_LENGTH) : 0x7fffffff;
  if (recordCount < 0 || recordCount > maxRecords) {
    throw corrupt(`recordsCount ${recordCount} cannot fit in a batch of ${sizeInBytes} bytes`, { position: pos });
  }
  // Compaction may remove records but keeps lastOffsetDelta, so it can exceed count - 1.
  if (lastOffsetDelta < 0 || lastOffsetDelta < recordCount - 1) {
    throw corrupt(`lastOffsetDelta ${lastOffsetDelta} is inconsistent with ${recordCount} records`, { position: pos });
  }
  const lastOffset = baseOffset + lastOffsetDelta;
  if (!Number.isSafeInteger(lastOffset)) throw corrupt("lastOffset is outside the safe-integer range", { position: pos });
  return {
    baseOffset,
    batchLength,
    partitionLeaderEpoch: readInt32(buf, pos + PARTITION_LEADER_EPOCH_POS),
    magic,
    crc: readUint32(buf, pos + CRC_POS),
    attributes,
    lastOffsetDelta,
    baseTimestamp: int64Field(buf, pos + BASE_TIMESTAMP_POS, "baseTimestamp", pos),
    maxTimestamp: int64Field(buf, pos + MAX_TIMESTAMP_POS, "maxTimestamp", pos),
    producerId: int64Field(buf, pos + PRODUCER_ID_POS, "producerId", pos),
    producerEpoch: readInt16(buf, pos + PRODUCER_EPOCH_POS),
    baseSequence: readInt32(buf, pos + BASE_SEQUENCE_POS),
    recordCount,
    sizeInBytes,
    lastOffset,
  };
}

/** CRC32C of the batch at pos as stored bytes would have it (attributes to end). */
export function computeBatchCrc(buf: Uint8Array, pos: number, header: BatchHeader): number {
  return crc32c(buf.subarray(pos + ATTRIBUTES_POS, pos + header.sizeInBytes));
}

/** Like readBatchHeader plus CRC32C check. */
export function verifyBatch(buf: Uint8Array, pos = 0): BatchHeader {
  const header = readBatchHeader(buf, pos);
  const actual = computeBatchCrc(buf, pos, header);
  if (actual !== header.crc) {
    throw corrupt(`batch at ${pos} fails its CRC (stored ${header.crc}, computed ${actual})`, {
      position: pos,
      baseOffset: header.baseOffset,
    });
  }
  return header;
}

/** Overwrite fields that the CRC does not cover, in place. */
export function setBaseOffset(buf: Uint8Array, pos: number, baseOffset: number): void {
  requireSafe(baseOffset, "baseOffset");
  if (baseOffset < 0) throw invalid("baseOffset must not be negative", "baseOffset");
  if (buf.length - pos < LOG_OVERHEAD) throw invalid(`no batch at ${pos}`, "pos");
  writeInt64(buf, pos + BASE_OFFSET_POS, baseOffset);
}

/**
 * Overwrites the batch's base sequence in place and its CRC with it (the CRC covers the
 * sequence): an idempotent producer renumbering the batches after one the leader refused.
 */
export function setBaseSequence(buf: Uint8Array, pos: number, baseSequence: number): void {
  requireInt(baseSequence, 32, "baseSequence");
  const header = readBatchHeader(buf, pos);
  writeInt32(buf, pos + BASE_SEQUENCE_POS, baseSequence);
  writeInt32(buf, pos + CRC_POS, crc32c(buf.subarray(pos + ATTRIBUTES_POS, pos + header.sizeInBytes)));
}

export function setPartitionLeaderEpoch(buf: Uint8Array, pos: number, epoch: number): void {
  requireInt(epoch, 32, "partitionLeaderEpoch");
  if (buf.length - pos < BATCH_HEADER_SIZE) throw invalid(`no batch at ${pos}`, "pos");
  writeInt32(buf, pos + PARTITION_LEADER_EPOCH_POS, epoch);
}

export function isTransactional(header: BatchHeader): boolean {
  return (header.attributes & BatchAttributes.TRANSACTIONAL) !== 0;
}

export function isControlBatch(header: BatchHeader): boolean {
  return (header.attributes & BatchAttributes.CONTROL) !== 0;
}

// ---- record decoding ----

export interface DecodeOptions {
  /** Bound on a compressed batch's records once decompressed. Default MAX_DECOMPRESSED_BATCH_BYTES. */
  maxDecompressedBytes?: number;
}

/**
 * Where the parts of one record lie in its records section, filled in by readRecordFields.
 * One object is refilled for every record of a batch, so walking records allocates nothing;
 * callers build whatever shape they need (DecodedRecord here, a client's message elsewhere).
 */
export class RecordFields {
  offset = 0;
  /** Milliseconds; the batch's maxTimestamp when the batch uses LogAppendTime. */
  timestamp = 0;
  offsetDelta = -1;
  keyStart = 0;
  /** -1 = null key. */
  keyLength = -1;
  valueStart = 0;
  /** -1 = null value (a tombstone). */
  valueLength = -1;
  /** Headers follow at the reader's position; each is read with readHeader. */
  headerCount = 0;
  /** End of this record in the records section; checked by endRecord. */
  end = 0;
}

/** A length-prefixed byte field: its length (-1 = null), checked against the record; the reader moves past it. */
function skipBytes(r: ByteReader, what: string): number {
  const length = r.readVarint();
  if (length === -1) return -1;
  if (length < -1 || length > r.end - r.pos) throw corrupt(`${what} length ${length} runs past the record`);
  r.pos += length;
  return length;
}

/** A length-prefixed byte field as a view, or null for length -1. */
function readBytes(r: ByteReader, what: string): Uint8Array | null {
  const length = skipBytes(r, what);
  return length === -1 ? null : r.buf.subarray(r.pos - length, r.pos);
}

/**
 * Reads one record at r.pos up to its headers (which the caller reads next, headerCount of
 * them, with readHeader, then calls endRecord). `recordsEnd` bounds the record's length,
 * `previousDelta` (-1 for the first record) its offsetDelta. Throws CORRUPT_MESSAGE.
 */
export function readRecordFields(r: ByteReader, recordsEnd: number, header: BatchHeader, previousDelta: number, f: RecordFields): void {
  r.end = recordsEnd;
  const length = r.readVarint();
  if (length < MIN_RECORD_SIZE_BYTES - 1 || length > recordsEnd - r.pos) throw corrupt(`record length ${length} is invalid`);
  const recordEnd = r.pos + length;
  r.end = recordEnd;
  r.readInt8();
  const timestampDelta = r.readVarlong();
  const offsetDelta = r.readVarint();
  if (offsetDelta <= previousDelta || offsetDelta > header.lastOffsetDelta) {
    throw corrupt(`offsetDelta ${offsetDelta} is out of order or past lastOffsetDelta ${header.lastOffsetDelta}`);
  }
  const logAppendTime = (header.attributes & BatchAttributes.TIMESTAMP_TYPE_LOG_APPEND) !== 0;
  const timestamp = logAppendTime ? header.maxTimestamp : header.baseTimestamp + timestampDelta;
  if (!Number.isSafeInteger(timestamp)) throw corrupt("timestamp is outside the safe-integer range");
  f.keyLength = skipBytes(r, "key");
  f.keyStart = r.pos - Math.max(f.keyLength, 0);
  f.valueLength = skipBytes(r, "value");
  f.valueStart = r.pos - Math.max(f.valueLength, 0);
  const count = r.readVarint();
  // Each header is at least two one-byte varints, so the remaining bytes bound the count.
  if (count < 0 || count > (r.end - r.pos) / 2) throw corrupt(`headersCount ${count} cannot fit in the record`);
  f.headerCount = count;
  f.offsetDelta = offsetDelta;
  f.offset = header.baseOffset + offsetDelta;
  f.timestamp = timestamp;
  f.end = recordEnd;
}

/** Reads one header of the record readRecordFields started; the value is a view, not a copy. */
export function readHeader(r: ByteReader): RecordHeader {
  const keyLength = r.readVarint();
  if (keyLength < 0 || keyLength > r.end - r.pos) throw corrupt(`header key length ${keyLength} is invalid`);
  const key = readUtf8(r.buf, r.pos, r.pos + keyLength);
  r.pos += keyLength;
  return { key, value: readBytes(r, "header value") };
}

/** Checks that the record's headers ended exactly where its length said it would. */
export function endRecord(r: ByteReader, f: RecordFields): void {
  if (r.pos !== f.end) throw corrupt(`record has ${f.end - r.pos} unread bytes`);
}

function readRecord(r: ByteReader, recordsEnd: number, header: BatchHeader, previousDelta: number, f: RecordFields): DecodedRecord {
  readRecordFields(r, recordsEnd, header, previousDelta, f);
  const src = r.buf;
  const key = f.keyLength === -1 ? null : src.subarray(f.keyStart, f.keyStart + f.keyLength);
  const value = f.valueLength === -1 ? null : src.subarray(f.valueStart, f.valueStart + f.valueLength);
  const headers = new Array<RecordHeader>(f.headerCount);
  for (let i = 0; i < headers.length; i++) headers[i] = readHeader(r);
  endRecord(r, f);
  return { offset: f.offset, timestamp: f.timestamp, key, value, headers };
}

function gunzipRecords(compressed: Uint8Array, maxBytes: number): Uint8Array {
  let out: Buffer;
  try {
    out = gunzipSync(compressed, { maxOutputLength: maxBytes });
  } catch (e) {
    const reason = e instanceof RangeError ? `decompresses past ${maxBytes} bytes` : `does not gunzip (${(e as Error).message})`;
    throw new SkeinError(ErrorCode.CORRUPT_MESSAGE, `compressed records ${reason}`, {}, { cause: e });
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

/**
 * Walks the records section of the batch at pos whose header was read (and validated) as
 * `header`: gunzips it if compressed, hands `read` a reader over it and the section's end,
 * then checks that `read` consumed it exactly. `read` reads header.recordCount records with
 * readRecordFields. Every failure is a CORRUPT_MESSAGE naming the batch. Does not check the CRC.
 */
export function readBatchRecords(buf: Uint8Array, pos: number, header: BatchHeader, options: DecodeOptions, read: (r: ByteReader, recordsEnd: number) => void): void {
  let src = buf;
  let start = pos + BATCH_HEADER_SIZE;
  let end = pos + header.sizeInBytes;
  try {
    if ((header.attributes & BatchAttributes.COMPRESSION_MASK) === CompressionCodec.GZIP) {
      src = gunzipRecords(buf.subarray(start, end), options.maxDecompressedBytes ?? MAX_DECOMPRESSED_BATCH_BYTES);
      start = 0;
      end = src.length;
      if (header.recordCount > maxRecordsIn(end)) throw corrupt(`recordsCount ${header.recordCount} cannot fit in ${end} bytes`);
    }
    const r = new ByteReader(src, start, end);
    read(r, end);
    if (r.pos !== end) throw corrupt(`${end - r.pos} bytes after the last record`);
  } catch (e) {
    if (!(e instanceof SkeinError)) throw e;
    throw new SkeinError(ErrorCode.CORRUPT_MESSAGE, `batch at ${pos} (baseOffset ${header.baseOffset}): ${e.message}`, { position: pos, baseOffset: header.baseOffset }, { cause: e.cause });
  }
}

/**
 * Decodes the records of one batch (validating every length against the batch bounds).
 * Does not check the CRC: call verifyBatch first on untrusted bytes. Keys and values are
 * views into `buf` (into the decompressed bytes for a gzip batch), not copies.
 */
export function decodeRecords(buf: Uint8Array, pos = 0, options: DecodeOptions = {}): DecodedRecord[] {
  const header = readBatchHeader(buf, pos);
  let records: DecodedRecord[] = [];
  readBatchRecords(buf, pos, header, options, (r, end) => {
    // Allocated only here: a compressed batch's count is bounded once it is decompressed.
    records = new Array<DecodedRecord>(header.recordCount);
    const f = new RecordFields();
    for (let i = 0; i < records.length; i++) records[i] = readRecord(r, end, header, f.offsetDelta, f);
  });
  return records;
}

// ---- walking concatenated batches ----

export interface IterateBatchesOptions {
  /** Check each batch's CRC32C. Default true. */
  verifyCrc?: boolean;
  /**
   * Stop quietly (instead of throwing) at a batch cut short by the end of the buffer, as a
   * fetch response or a crashed writer's segment may end. Default false.
   */
  allowTruncatedTail?: boolean;
}

/**
 * Walks a buffer of concatenated batches; verifies each (CRC); stops with CORRUPT_MESSAGE on
 * the first bad one. The error's context.position is the byte offset of the bad batch.
 */
export function* iterateBatches(
  buf: Uint8Array,
  options: IterateBatchesOptions = {},
): Generator<{ header: BatchHeader; pos: number }> {
  const verifyCrc = options.verifyCrc ?? true;
  let pos = 0;
  while (pos < buf.length) {
    if (options.allowTruncatedTail) {
      const size = batchSizeAt(buf, pos);
      if (size === -1 || (size > buf.length - pos && size >= BATCH_HEADER_SIZE)) return;
    }
    const header = verifyCrc ? verifyBatch(buf, pos) : readBatchHeader(buf, pos);
    yield { header, pos };
    pos += header.sizeInBytes;
  }
}
