// File-system helpers for the log: segment file names, full reads and writes on a descriptor,
// directory fsync and atomic checkpoint files. Everything here is synchronous on purpose: the
// log's hot path uses positional fd calls (see log.ts for the measurement behind that).

import fs from "node:fs";
import path from "node:path";
import { ErrorCode, SkeinError, type ErrorContext } from "../../protocol/errors.js";

export const LOG_SUFFIX = ".log";
export const INDEX_SUFFIX = ".index";
export const TIME_INDEX_SUFFIX = ".timeindex";
/** A compacted copy being written; deleted by recovery if a crash leaves one behind. */
export const CLEANED_SUFFIX = ".cleaned";
/** A checkpoint being written; renamed over the real file once complete. */
export const TMP_SUFFIX = ".tmp";

const BASE_OFFSET_DIGITS = 20;
const SEGMENT_NAME = /^(\d{20})\.(log|index|timeindex)$/;

/** `00000000000000001234` — Kafka's zero-padded base offset, so names sort by offset. */
export function segmentBaseName(baseOffset: number): string {
  return String(baseOffset).padStart(BASE_OFFSET_DIGITS, "0");
}

export interface SegmentPaths {
  log: string;
  index: string;
  timeIndex: string;
}

export function segmentPaths(dir: string, baseOffset: number, extraSuffix = ""): SegmentPaths {
  const base = path.join(dir, segmentBaseName(baseOffset));
  return {
    log: base + LOG_SUFFIX + extraSuffix,
    index: base + INDEX_SUFFIX + extraSuffix,
    timeIndex: base + TIME_INDEX_SUFFIX + extraSuffix,
  };
}

/** Base offset and kind of a segment file name, or null for any other name. */
export function parseSegmentFileName(name: string): { baseOffset: number; kind: "log" | "index" | "timeindex" } | null {
  const m = SEGMENT_NAME.exec(name);
  if (!m) return null;
  const baseOffset = Number(m[1]);
  if (!Number.isSafeInteger(baseOffset)) return null;
  return { baseOffset, kind: m[2] as "log" | "index" | "timeindex" };
}

export function storageError(message: string, context: ErrorContext, cause?: unknown): SkeinError {
  return new SkeinError(ErrorCode.KAFKA_STORAGE_ERROR, message, context, cause === undefined ? undefined : { cause });
}

/** Reads up to `length` bytes at `position`, looping over short reads; returns the bytes read (less only at end of file). */
export function readFully(fd: number, buf: Uint8Array, offset: number, length: number, position: number): number {
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, buf, offset + done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/** Writes all of `length` bytes at `position`, looping over short writes. */
export function writeFully(fd: number, buf: Uint8Array, offset: number, length: number, position: number): void {
  let done = 0;
  while (done < length) {
    done += fs.writeSync(fd, buf, offset + done, length - done, position + done);
  }
}

/** fsync a directory so renames and unlinks in it survive a power loss. */
export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, "r");
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export function unlinkIfExists(file: string): void {
  try {
    fs.unlinkSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
}

export function fileExists(file: string): boolean {
  try {
    fs.statSync(file);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw e;
  }
}

export function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // Already closed or the device is gone; the descriptor is released either way.
  }
}

/**
 * Kafka's checkpoint text format, written atomically (tmp file, fsync, rename, fsync dir):
 *
 *   <version>
 *   <entry count>
 *   <entry>          one line per entry, fields separated by one space
 */
export function writeCheckpoint(file: string, version: number, entries: readonly (readonly number[])[]): void {
  const text = [String(version), String(entries.length), ...entries.map((e) => e.join(" "))].join("\n") + "\n";
  const tmp = file + TMP_SUFFIX;
  const fd = fs.openSync(tmp, "w");
  try {
    const bytes = Buffer.from(text, "utf8");
    writeFully(fd, bytes, 0, bytes.length, 0);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  fsyncDir(path.dirname(file));
}

/**
 * Entries of a checkpoint file, each with `fieldsPerEntry` safe integers; null if the file does
 * not exist. A file that does not parse throws (the caller decides whether to rebuild).
 */
export function readCheckpoint(file: string, version: number, fieldsPerEntry: number): number[][] | null {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  const bad = (why: string) => new Error(`checkpoint ${file} is corrupt: ${why}`);
  if (Number(lines[0]) !== version) throw bad(`version ${JSON.stringify(lines[0])}, expected ${version}`);
  const count = Number(lines[1]);
  if (!Number.isInteger(count) || count < 0 || lines.length !== count + 2) throw bad(`entry count ${lines[1]} vs ${lines.length - 2} lines`);
  return lines.slice(2).map((line) => {
    const fields = line.split(" ").map(Number);
    if (fields.length !== fieldsPerEntry || !fields.every(Number.isSafeInteger)) throw bad(`entry ${JSON.stringify(line)}`);
    return fields;
  });
}
