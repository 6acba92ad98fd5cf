// The consumer facade's one-pass decoder (actors/client/decode.ts) against the obvious
// two-step one it replaced: every batch CRC-checked and decoded with decodeRecords, then each
// record turned into a kafkajs-shaped message. Same messages, same CORRUPT_MESSAGE failures.

import { gzipSync } from "node:zlib";
import { inspect } from "node:util";
import * as fc from "fast-check";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { ErrorCode, SkeinError } from "../protocol/errors.js";
import { crc32c } from "../protocol/crc32c.js";
import { BATCH_HEADER_SIZE, CompressionCodec, decodeRecords, encodeBatch, iterateBatches, LOG_OVERHEAD, type RecordInput } from "../protocol/record-batch.js";
import { decodeChunkMessages, splitChunk } from "../actors/client/decode.js";
import type { KafkaMessage } from "../actors/client/skein.js";

function referenceDecode(data: Uint8Array, fromOffset: number): KafkaMessage[] {
  const messages: KafkaMessage[] = [];
  for (const { pos } of iterateBatches(data)) {
    for (const r of decodeRecords(data, pos)) {
      if (r.offset < fromOffset) continue;
      const headers: Record<string, Buffer | null> = {};
      for (const h of r.headers) headers[h.key] = h.value ? Buffer.from(h.value) : null;
      messages.push({ key: r.key ? Buffer.from(r.key) : null, value: r.value ? Buffer.from(r.value) : null, headers, offset: String(r.offset), timestamp: String(r.timestamp) });
    }
  }
  return messages;
}

/** Messages as plain data, so uvu compares bytes and strings rather than Buffer identities. */
function plain(messages: KafkaMessage[]) {
  return messages.map((m) => {
    assert.ok(m.key === null || Buffer.isBuffer(m.key), "key is a Buffer or null");
    assert.ok(m.value === null || Buffer.isBuffer(m.value), "value is a Buffer or null");
    assert.type(m.offset, "string");
    assert.type(m.timestamp, "string");
    assert.equal(Object.keys(m), ["key", "value", "headers", "offset", "timestamp"], "own enumerable fields, as before");
    const headers: Record<string, number[] | null> = {};
    for (const [k, v] of Object.entries(m.headers)) headers[k] = v === null ? null : [...v];
    return { key: m.key && [...m.key], value: m.value && [...m.value], headers, offset: m.offset, timestamp: m.timestamp };
  });
}

/** Returns the error fn throws, or null. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
    return null;
  } catch (e) {
    return e;
  }
}

function expectCorrupt(fn: () => unknown, why: string): SkeinError {
  const e = thrown(fn);
  assert.instance(e, SkeinError, `expected CORRUPT_MESSAGE (${why}), got ${e}`);
  assert.is((e as SkeinError).code, ErrorCode.CORRUPT_MESSAGE, why);
  return e as SkeinError;
}

function setCrc(buf: Uint8Array, pos: number): void {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const size = LOG_OVERHEAD + view.getInt32(pos + 8);
  view.setUint32(pos + 17, crc32c(buf.subarray(pos + 21, pos + size)));
}

/** Re-packs an uncompressed batch as a gzip batch, the way a Kafka producer would send it. */
function gzipBatch(batch: Uint8Array): Uint8Array {
  const compressed = gzipSync(batch.subarray(BATCH_HEADER_SIZE));
  const out = new Uint8Array(BATCH_HEADER_SIZE + compressed.length);
  out.set(batch.subarray(0, BATCH_HEADER_SIZE));
  out.set(compressed, BATCH_HEADER_SIZE);
  const view = new DataView(out.buffer);
  view.setInt32(8, out.length - LOG_OVERHEAD);
  view.setInt16(21, (view.getInt16(21) & ~7) | CompressionCodec.GZIP);
  setCrc(out, 0);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

const bytesOrNull = fc.option(fc.uint8Array({ maxLength: 40 }), { nil: null, freq: 3 });
// Header keys from a small alphabet: duplicates (the last one wins) are likely; no
// __proto__/constructor, which would re-prototype the headers object in either decoder.
const headerKey = fc.string({ unit: fc.constantFrom("a", "b", "é", "🙂", "-"), maxLength: 4 });
const record: fc.Arbitrary<RecordInput> = fc.record({
  key: bytesOrNull,
  value: bytesOrNull,
  headers: fc.array(fc.record({ key: headerKey, value: bytesOrNull }), { maxLength: 3 }),
  // Mostly shared milliseconds, as in a real batch: the decoder reuses the last string.
  timestamp: fc.oneof(fc.constant(1_700_000_000_000), fc.integer({ min: 0, max: 2_000_000_000_000 })),
});
const chunk = fc.array(fc.record({ records: fc.array(record, { minLength: 1, maxLength: 8 }), gzip: fc.boolean() }), { minLength: 1, maxLength: 4 });

function encodeChunk(batches: Array<{ records: RecordInput[]; gzip: boolean }>, firstOffset: number): Uint8Array {
  let offset = firstOffset;
  return concat(
    batches.map((b) => {
      const batch = encodeBatch(b.records, { baseOffset: offset });
      offset += b.records.length;
      return b.gzip ? gzipBatch(batch) : batch;
    }),
  );
}

test("same messages as decodeRecords + conversion: nulls, headers, gzip, fromOffset inside a batch", () => {
  fc.assert(
    fc.property(chunk, fc.nat(1_000_000), fc.nat(40), (batches, firstOffset, skip) => {
      const data = encodeChunk(batches, firstOffset);
      const fromOffset = firstOffset + skip;
      assert.equal(plain(decodeChunkMessages(data, fromOffset)), plain(referenceDecode(data, fromOffset)));
    }),
    { numRuns: 300 },
  );
});

test("a corrupt byte gives CORRUPT_MESSAGE (bad CRC), and with a fixed-up CRC the same outcome as the reference", () => {
  fc.assert(
    fc.property(chunk, fc.nat(), fc.integer({ min: 1, max: 255 }), (batches, at, flip) => {
      const data = encodeChunk(batches, 0);
      // Anywhere after the CRC field of some batch, so the CRC covers it.
      const starts = [...iterateBatches(data)].map((b) => ({ pos: b.pos, size: b.header.sizeInBytes }));
      const batch = starts[at % starts.length];
      const target = batch.pos + 21 + ((at >>> 8) % (batch.size - 21));
      data[target] ^= flip;
      expectCorrupt(() => decodeChunkMessages(data, 0), `byte ${target} flipped, CRC not fixed`);
      setCrc(data, batch.pos);
      const ours = thrown(() => decodeChunkMessages(data, 0));
      const theirs = thrown(() => referenceDecode(data, 0));
      if (theirs === null) {
        assert.is(ours, null, `reference decodes byte ${target} ^ ${flip}; ours threw ${ours}`);
        assert.equal(plain(decodeChunkMessages(data, 0)), plain(referenceDecode(data, 0)));
      } else {
        expectCorrupt(() => decodeChunkMessages(data, 0), `byte ${target} ^ ${flip}, CRC fixed`);
        assert.is((ours as SkeinError).message, (theirs as SkeinError).message);
      }
    }),
    { numRuns: 300 },
  );
});

test("a truncated chunk is CORRUPT_MESSAGE, not a partial result", () => {
  const data = encodeChunk([{ records: [{ value: new Uint8Array(10) }, { value: null }], gzip: false }, { records: [{ value: new Uint8Array(5) }], gzip: false }], 7);
  const e = expectCorrupt(() => decodeChunkMessages(data.subarray(0, data.length - 3), 0), "truncated");
  assert.ok(e.context.truncated, "says it was truncated");
});

test("messages without headers share one frozen empty headers object", () => {
  const data = encodeChunk([{ records: [{ value: new Uint8Array(1) }, { value: null, headers: [{ key: "k", value: null }] }, { value: null }], gzip: false }], 0);
  const [a, b, c] = decodeChunkMessages(data, 0);
  assert.equal(b.headers, { k: null });
  assert.is(a.headers, c.headers);
  assert.equal(a.headers, {});
  assert.ok(Object.isFrozen(a.headers));
  assert.throws(() => {
    a.headers.added = null;
  }, TypeError);
  assert.equal(c.headers, {});
});

test("keys, values and header values are Buffers in every way an application checks", () => {
  const data = encodeBatch([{ key: new Uint8Array([1, 2]), value: new TextEncoder().encode("hello"), headers: [{ key: "h", value: new Uint8Array([9]) }] }]);
  const [m] = decodeChunkMessages(data, 0);
  for (const b of [m.key!, m.value!, m.headers.h!]) {
    assert.ok(Buffer.isBuffer(b) && b instanceof Buffer && b instanceof Uint8Array);
    assert.is(b.constructor, Buffer);
    assert.ok(Buffer.isBuffer(b.subarray(0, 1)) && Buffer.isBuffer(b.slice(0, 1)), "views of it are Buffers too");
    assert.match(inspect(b), /^<Buffer /);
  }
  assert.is(m.value!.toString("utf8"), "hello");
  assert.is(m.value!.readUInt8(1), "e".charCodeAt(0));
  assert.ok(m.value!.equals(Buffer.from("hello")));
  assert.is(Buffer.concat([m.key!, m.headers.h!]).toString("hex"), "010209");
  assert.equal(JSON.parse(JSON.stringify(m.key)), { type: "Buffer", data: [1, 2] });
});

test("offset strings across thousands and digit-count boundaries, up to the largest safe offset", () => {
  const values = [{ value: new Uint8Array(1) }, { value: null }, { value: new Uint8Array(2) }, { value: new Uint8Array(0) }];
  for (const baseOffset of [0, 998, 1_998, 9_999, 999_998, 999_999_999_998, Number.MAX_SAFE_INTEGER - 3]) {
    const messages = decodeChunkMessages(encodeBatch(values, { baseOffset }), 0);
    assert.equal(
      messages.map((m) => m.offset),
      values.map((_, i) => String(baseOffset + i)),
    );
  }
});

test("a batch the inline decoder hands over halfway (a non-ASCII header key) gives each message once, in order", () => {
  const h = (key: string) => ({ value: new Uint8Array([1]), headers: [{ key, value: new Uint8Array([2]) }] });
  const data = encodeChunk([{ records: [h("a"), h("a"), h("é"), h("a")], gzip: false }, { records: [h("b")], gzip: false }], 10);
  const messages = decodeChunkMessages(data, 0);
  assert.equal(
    messages.map((m) => [m.offset, Object.keys(m.headers)]),
    [["10", ["a"]], ["11", ["a"]], ["12", ["é"]], ["13", ["a"]], ["14", ["b"]]],
  );
  assert.equal(plain(messages), plain(referenceDecode(data, 0)));
});

test("splitChunk: slices at batch boundaries, each within maxBytes unless one batch is bigger, together the same messages", () => {
  fc.assert(
    fc.property(chunk, fc.nat(1_000), fc.integer({ min: 1, max: 600 }), fc.nat(40), (batches, firstOffset, maxBytes, skip) => {
      const data = encodeChunk(batches, firstOffset);
      const slices = splitChunk(data, maxBytes);
      assert.equal([...concat(slices)], [...data], "the slices cover the chunk in order");
      for (const s of slices) {
        const sizes = [...iterateBatches(s)].map((b) => b.header.sizeInBytes);
        assert.ok(s.length <= maxBytes || sizes.length === 1, `a slice of ${s.length} bytes holds ${sizes.length} batches (max ${maxBytes})`);
      }
      const fromOffset = firstOffset + skip;
      assert.equal(plain(slices.flatMap((s) => decodeChunkMessages(s, fromOffset))), plain(decodeChunkMessages(data, fromOffset)));
    }),
    { numRuns: 300 },
  );
});

test("splitChunk: a bad batch length ends the splitting inside one slice, and decoding that slice fails", () => {
  const batch = () => ({ records: [{ value: new Uint8Array(50) }, { value: new Uint8Array(50) }], gzip: false });
  const data = encodeChunk([batch(), batch(), batch(), batch()], 0);
  const second = [...iterateBatches(data)][1].pos;
  new DataView(data.buffer, data.byteOffset).setInt32(second + 8, 1 << 30);
  const slices = splitChunk(data, 1);
  assert.is(slices.length, 2, "the first batch, then everything from the bad length on");
  assert.is(decodeChunkMessages(slices[0], 0).length, 2);
  expectCorrupt(() => decodeChunkMessages(slices[1], 0), "bad batch length");
});

test.run();
