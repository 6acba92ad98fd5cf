// Log compaction (cleanupPolicy=compact): keep the latest record per key.
//
// One pass:
// 1. Build an offset map key -> offset of its latest record over the dirty part of the log
//    (from where the previous complete pass stopped to the log end at the start of this one,
//    the active segment included, so "latest" means latest in the whole log). Records before
//    the dirty part were deduplicated by earlier passes. The map is bounded by
//    compactionMaxKeys (a long key is held as its SHA-256); when it fills up, the pass covers
//    the part it describes completely and the next pass goes on from there.
// 2. Rewrite each closed segment up to where the map ends, oldest first, into `<base>.log.cleaned` (+
//    indexes): a record survives unless a later record has the same key, or it is a tombstone
//    (null value) older than deleteRetentionMs. Offsets never change: a batch keeps its header
//    (baseOffset, lastOffsetDelta, timestamps, producer fields, leader epoch) and only loses
//    records, so a record keeps its offsetDelta. A batch left empty is dropped.
// 3. Swap the cleaned files in synchronously (one event-loop turn, so no append or read sees a
//    half-swapped segment): unlink the old indexes, rename the cleaned log over the old one
//    (atomic), rename the cleaned indexes. A crash in between leaves either segment file with
//    missing indexes, which recovery rebuilds; leftover `.cleaned` files are deleted on open.
//
// Records are only ever dropped on evidence inside the map, so a pass that covers a prefix,
// or that stops early, is still safe. A tombstone can only be dropped together with every
// older record of its key (all lie in earlier segments of the same pass), so segments are
// cleaned in order and the pass stops at the first one it cannot finish. The pass yields to
// the event loop every chunk and aborts if the log is truncated or closed meanwhile.

import { createHash } from "node:crypto";
import { gunzipSync } from "node:zlib";
import { ByteReader } from "../../protocol/varint.js";
import {
  BATCH_HEADER_SIZE,
  BatchAttributes,
  CompressionCodec,
  LOG_OVERHEAD,
  MAX_DECOMPRESSED_BATCH_BYTES,
  computeBatchCrc,
  decodeRecords,
  type BatchHeader,
  type DecodedRecord,
} from "../../protocol/record-batch.js";
import { CLEANED_SUFFIX, segmentPaths, unlinkIfExists, fsyncDir } from "./files.js";
import { LogSegment, SCAN_CHUNK_BYTES, type SegmentSettings } from "./segment.js";
import type { CompactionResult, LogLogger } from "./types.js";

// Byte positions in a v2 batch header (protocol/record-batch.ts documents the layout).
const BATCH_LENGTH_POS = 8;
const CRC_POS = 17;
const ATTRIBUTES_POS = 21;
const RECORDS_COUNT_POS = 57;
/** Work between two yields to the event loop (~1 ms of decoding), so appends and reads are not held up. */
const YIELD_EVERY_BYTES = 256 * 1024;

/** What the compactor needs from the log it cleans. */
export interface CompactionHost {
  readonly dir: string;
  readonly settings: SegmentSettings;
  readonly logger: LogLogger;
  /** The live segment list, oldest first; the last one is active. */
  segments(): readonly LogSegment[];
  /** Changes whenever the log is truncated; a pass that sees it change aborts. */
  generation(): number;
  isClosing(): boolean;
  /** Replaces a closed segment by its cleaned copy, or removes it (null) when nothing survived. */
  replaceSegment(old: LogSegment, cleaned: LogSegment | null): void;
}

export interface CompactionSettings {
  compactionMaxKeys: number;
  /** Where the previous complete pass stopped: records before it are already deduplicated. */
  firstDirtyOffset: number;
  deleteRetentionMs: number;
  nowMs: number;
}

export interface CompactionOutcome extends CompactionResult {
  /** The next pass's first dirty offset: the end of the last segment this pass cleaned. */
  cleanedThroughOffset: number;
}

/** Counts work across the whole pass and yields to the event loop every YIELD_EVERY_BYTES. */
class Pacer {
  private sinceYield = 0;

  constructor(private readonly stale: () => boolean) {}

  /** After `bytes` of work: yields if due; true if the pass must stop. */
  async step(bytes: number): Promise<boolean> {
    this.sinceYield += bytes;
    if (this.sinceYield < YIELD_EVERY_BYTES) return false;
    this.sinceYield = 0;
    await new Promise<void>((resolve) => setImmediate(resolve));
    return this.stale();
  }
}

/** Keys up to this long are map keys as they are; longer ones by digest, so a map entry has a bounded size. */
const MAX_PLAIN_KEY_BYTES = 32;

function keyString(key: Uint8Array): string {
  const bytes = Buffer.from(key.buffer, key.byteOffset, key.length);
  if (bytes.length <= MAX_PLAIN_KEY_BYTES) return "\u0000" + bytes.toString("latin1");
  return "\u0001" + createHash("sha256").update(bytes).digest().toString("latin1");
}

export async function compactLog(host: CompactionHost, settings: CompactionSettings): Promise<CompactionOutcome> {
  const result: CompactionOutcome = {
    segmentsCleaned: 0,
    segmentsRemoved: 0,
    bytesBefore: 0,
    bytesAfter: 0,
    recordsRemoved: 0,
    tombstonesRemoved: 0,
    aborted: false,
    cleanedThroughOffset: settings.firstDirtyOffset,
  };
  const generation = host.generation();
  const stale = () => host.isClosing() || host.generation() !== generation;
  const snapshot = host.segments().map((segment) => ({ segment, size: segment.size, version: segment.version }));
  if (snapshot.length < 2) return result;
  const map = new Map<string, number>();
  const pacer = new Pacer(stale);
  const mapEnd = await buildOffsetMap(snapshot, settings.firstDirtyOffset, map, settings.compactionMaxKeys, pacer);
  if (mapEnd === null) return { ...result, aborted: true };
  const closed = snapshot.slice(0, -1);
  const stuck = closed.find(({ segment }) => segment.nextOffset > settings.firstDirtyOffset);
  if (stuck !== undefined && stuck.segment.nextOffset > mapEnd) {
    host.logger.warn(`compaction: ${stuck.segment.paths.log} holds more distinct keys than compactionMaxKeys (${settings.compactionMaxKeys}); it cannot be cleaned`);
  }
  for (const { segment, version } of closed) {
    if (segment.nextOffset > mapEnd) break;
    const cleaned = await cleanSegment(host, segment, version, map, settings, pacer, result);
    if (!cleaned) {
      result.aborted = true;
      break;
    }
    result.cleanedThroughOffset = Math.max(result.cleanedThroughOffset, segment.nextOffset);
  }
  return result;
}

/**
 * Fills `map` from the first dirty offset on, the active segment included; returns the offset
 * below which it is complete, or null if the pass went stale. Records before the first dirty
 * offset were deduplicated by earlier passes, so the map only needs what came after.
 */
async function buildOffsetMap(
  snapshot: { segment: LogSegment; size: number; version: number }[],
  firstDirtyOffset: number,
  map: Map<string, number>,
  maxKeys: number,
  pacer: Pacer,
): Promise<number | null> {
  let mapEnd = firstDirtyOffset;
  for (const { segment, size, version } of snapshot) {
    if (segment.nextOffset <= firstDirtyOffset) continue;
    const start = segment.baseOffset >= firstDirtyOffset ? 0 : segment.locate(firstDirtyOffset)?.position;
    if (start === undefined) continue;
    const scanner = segment.scanner(start, { verifyCrc: false, headersOnly: false, chunkBytes: SCAN_CHUNK_BYTES });
    for (let b = scanner.next(); b !== null && b.position < size; b = scanner.next()) {
      if (map.size + b.header.recordCount > maxKeys) return mapEnd;
      for (const r of decodeRecords(b.buf, b.bufPos)) {
        if (r.key !== null) map.set(keyString(r.key), r.offset);
      }
      mapEnd = b.header.lastOffset + 1;
      if ((await pacer.step(b.header.sizeInBytes)) || segment.deleted || segment.version !== version) return null;
    }
    if (scanner.error !== null) return mapEnd;
  }
  return mapEnd;
}

/** Cleans one segment and swaps the result in; false if it had to stop (the pass stops too). */
async function cleanSegment(
  host: CompactionHost,
  segment: LogSegment,
  version: number,
  map: Map<string, number>,
  settings: CompactionSettings,
  pacer: Pacer,
  result: CompactionOutcome,
): Promise<boolean> {
  const stale = () => segment.deleted || segment.version !== version;
  const out = LogSegment.create(host.dir, segment.baseOffset, host.settings, CLEANED_SUFFIX);
  const discard = () => out.deleteFiles();
  const tombstoneHorizon = settings.nowMs - settings.deleteRetentionMs;
  const pending: { data: Buffer; header: BatchHeader }[] = [];
  let pendingBytes = 0;
  let removed = 0;
  let tombstones = 0;
  const writePending = () => {
    if (pending.length === 0) return;
    out.append(Buffer.concat(pending.map((p) => p.data), pendingBytes), pending.map((p) => p.header));
    pending.length = 0;
    pendingBytes = 0;
  };
  try {
    const scanner = segment.scanner(0, { verifyCrc: true, headersOnly: false, chunkBytes: SCAN_CHUNK_BYTES });
    for (let b = scanner.next(); b !== null; b = scanner.next()) {
      const records = decodeRecords(b.buf, b.bufPos);
      const keep = records.map((r) => {
        const latest = r.key === null ? undefined : map.get(keyString(r.key));
        if (latest !== undefined && latest > r.offset) return false;
        if (r.value === null && r.key !== null && r.timestamp < tombstoneHorizon) {
          tombstones++;
          return false;
        }
        return true;
      });
      const kept = keep.filter(Boolean).length;
      removed += records.length - kept;
      if (kept > 0) {
        const data = kept === records.length ? Buffer.from(b.buf.subarray(b.bufPos, b.bufPos + b.header.sizeInBytes)) : filterBatch(b.buf, b.bufPos, b.header, records, keep);
        pending.push({ data, header: { ...b.header, sizeInBytes: data.length } });
        pendingBytes += data.length;
      }
      if (pendingBytes >= YIELD_EVERY_BYTES) writePending();
      if ((await pacer.step(b.header.sizeInBytes)) || stale()) return abandon(discard);
    }
    if (scanner.error !== null) {
      host.logger.warn(`compaction of ${segment.paths.log} stopped: ${scanner.error.message}`);
      return abandon(discard);
    }
    writePending();
  } catch (e) {
    discard();
    throw e;
  }
  if (removed === 0) {
    discard();
    return true;
  }
  out.syncAll();
  if ((await pacer.step(YIELD_EVERY_BYTES)) || stale()) return abandon(discard);
  result.bytesBefore += segment.size;
  result.bytesAfter += out.size;
  result.recordsRemoved += removed;
  result.tombstonesRemoved += tombstones;
  if (out.size === 0) {
    discard();
    host.replaceSegment(segment, null);
    result.segmentsRemoved++;
  } else {
    swapFiles(host.dir, segment, out);
    host.replaceSegment(segment, out);
    result.segmentsCleaned++;
  }
  return true;
}

function abandon(discard: () => void): false {
  discard();
  return false;
}

/** Puts the cleaned files under the segment's names (see the header comment for the order). */
function swapFiles(dir: string, old: LogSegment, cleaned: LogSegment): void {
  const target = segmentPaths(dir, old.baseOffset);
  unlinkIfExists(target.index);
  unlinkIfExists(target.timeIndex);
  cleaned.renameTo(target);
  fsyncDir(dir);
}

/**
 * A copy of the batch at `pos` holding only the records marked in `keep`: same header fields
 * except batchLength, recordsCount, CRC and (for a gzip batch, whose survivors are written
 * uncompressed) the compression bits. Records are copied byte for byte, so each keeps its
 * offsetDelta, hence its offset.
 */
function filterBatch(buf: Buffer, pos: number, header: BatchHeader, records: DecodedRecord[], keep: boolean[]): Buffer {
  const compressed = (header.attributes & BatchAttributes.COMPRESSION_MASK) !== CompressionCodec.NONE;
  const body = buf.subarray(pos + BATCH_HEADER_SIZE, pos + header.sizeInBytes);
  const src = compressed ? gunzipSync(body, { maxOutputLength: MAX_DECOMPRESSED_BATCH_BYTES }) : body;
  const reader = new ByteReader(src, 0, src.length);
  const ranges: [number, number][] = [];
  let size = BATCH_HEADER_SIZE;
  for (let i = 0; i < records.length; i++) {
    const start = reader.pos;
    const length = reader.readVarint();
    reader.pos += length;
    if (keep[i]) {
      ranges.push([start, reader.pos]);
      size += reader.pos - start;
    }
  }
  const out = Buffer.allocUnsafe(size);
  buf.copy(out, 0, pos, pos + BATCH_HEADER_SIZE);
  let at = BATCH_HEADER_SIZE;
  for (const [start, end] of ranges) at += src.copy(out, at, start, end);
  out.writeInt32BE(size - LOG_OVERHEAD, BATCH_LENGTH_POS);
  out.writeInt16BE(header.attributes & ~BatchAttributes.COMPRESSION_MASK, ATTRIBUTES_POS);
  out.writeInt32BE(ranges.length, RECORDS_COUNT_POS);
  out.writeUInt32BE(computeBatchCrc(out, 0, { ...header, sizeInBytes: size }), CRC_POS);
  return out;
}
