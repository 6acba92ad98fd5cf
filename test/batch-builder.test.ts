// The producer's incremental RecordBatchBuilder and its frame reader must produce exactly the
// bytes encodeBatch produces for the same records (encodeBatch is the reference codec).
import * as fc from "fast-check";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { ErrorCode, SkeinError } from "../protocol/errors.js";
import { decodeRecords, encodeBatch, RecordBatchBuilder, type RecordInput, verifyBatch } from "../protocol/record-batch.js";
import { encodeFrames, FrameReader, type OutgoingMessage } from "../actors/client/frames.js";

const bytesOrNull = fc.option(fc.uint8Array({ maxLength: 300 }), { nil: null });
const record = fc.record({
  key: bytesOrNull,
  value: bytesOrNull,
  headers: fc.array(fc.record({ key: fc.string({ maxLength: 12 }), value: bytesOrNull }), { maxLength: 3 }),
  timestamp: fc.integer({ min: 1_600_000_000_000, max: 1_800_000_000_000 }),
});

test("builder output equals encodeBatch, byte for byte, and decodes back", () => {
  fc.assert(
    fc.property(fc.array(record, { minLength: 1, maxLength: 60 }), fc.integer({ min: 0, max: 5 }), (records, seq) => {
      const options = { producerId: 42, producerEpoch: 3, baseSequence: seq };
      const expected = encodeBatch(records as RecordInput[], options);
      const messages: OutgoingMessage[] = records.map((r) => ({ key: r.key, value: r.value, headers: r.headers, timestamp: r.timestamp }));
      const frames = encodeFrames(messages).buffer;
      const reader = new FrameReader(frames);
      const builder = new RecordBatchBuilder(128);
      while (reader.next()) builder.appendTail(reader.timestamp, frames, reader.tailOffset, reader.tailLength);
      const built = builder.finish(options);
      assert.equal(Buffer.from(built).equals(Buffer.from(expected)), true);
      verifyBatch(built);
      assert.is(decodeRecords(built).length, records.length);
    }),
    { numRuns: 200 },
  );
});

test("finishCopy: exact copies equal to encodeBatch, and a reused builder leaves earlier batches untouched", () => {
  fc.assert(
    fc.property(fc.array(fc.array(record, { minLength: 1, maxLength: 20 }), { minLength: 1, maxLength: 4 }), (batches) => {
      const builder = new RecordBatchBuilder(128);
      const built: Array<{ bytes: Uint8Array; expected: Uint8Array }> = [];
      batches.forEach((records, seq) => {
        const options = { producerId: 7, producerEpoch: 1, baseSequence: seq * 100 };
        const frames = encodeFrames(records.map((r) => ({ key: r.key, value: r.value, headers: r.headers, timestamp: r.timestamp }))).buffer;
        const reader = new FrameReader(frames);
        while (reader.next()) builder.appendTail(reader.timestamp, frames, reader.tailOffset, reader.tailLength);
        const bytes = builder.finishCopy(options);
        assert.is(bytes.byteLength, bytes.buffer.byteLength, "a copy in an ArrayBuffer of its own");
        assert.is(builder.count, 0);
        built.push({ bytes, expected: encodeBatch(records as RecordInput[], options) });
      });
      for (const { bytes, expected } of built) {
        assert.equal(Buffer.from(bytes).equals(Buffer.from(expected)), true);
        verifyBatch(bytes);
      }
    }),
    { numRuns: 100 },
  );
  assert.throws(() => new RecordBatchBuilder().finishCopy(), (e: SkeinError) => e.code === ErrorCode.INVALID_REQUEST);
});

test("string keys and values are framed as UTF-8; the key is found for the partitioner", () => {
  const frames = encodeFrames([{ key: "kä", value: "v€", partition: 2, timestamp: 1_700_000_000_000 }]).buffer;
  const reader = new FrameReader(frames);
  assert.ok(reader.next());
  assert.is(reader.partition, 2);
  assert.is(Buffer.from(frames.subarray(reader.keyOffset, reader.keyOffset + reader.keyLength)).toString(), "kä");
  const builder = new RecordBatchBuilder();
  builder.appendTail(reader.timestamp, frames, reader.tailOffset, reader.tailLength);
  const [r] = decodeRecords(builder.finish());
  assert.is(Buffer.from(r.value!).toString(), "v€");
  assert.is(r.timestamp, 1_700_000_000_000);
  assert.not.ok(reader.next());
});

test("a truncated frame is CORRUPT_MESSAGE, bad input is INVALID_REQUEST", () => {
  const frames = encodeFrames([{ value: "abc" }]).buffer;
  const reader = new FrameReader(frames.subarray(0, frames.length - 1));
  assert.throws(() => new FrameReader(encodeFrames([{ key: null, value: "x" }]).buffer.subarray(0, 10)).next(), (e: SkeinError) => e.code === ErrorCode.CORRUPT_MESSAGE);
  try {
    reader.next();
    assert.unreachable("truncated frame accepted");
  } catch (e) {
    assert.is((e as SkeinError).code, ErrorCode.CORRUPT_MESSAGE);
  }
  assert.throws(() => encodeFrames([{ value: 5 as unknown as string }]), (e: SkeinError) => e.code === ErrorCode.INVALID_REQUEST && e.context.field === "messages.0.value");
  assert.throws(() => new RecordBatchBuilder().finish(), (e: SkeinError) => e.code === ErrorCode.INVALID_REQUEST);
});

test("finishInPlace: the batch in the builder's own buffer equals encodeBatch; reset starts the next one there", () => {
  fc.assert(
    fc.property(fc.array(fc.array(record, { minLength: 1, maxLength: 20 }), { minLength: 2, maxLength: 4 }), (batches) => {
      const builder = new RecordBatchBuilder(64 * 1024);
      let buffer: ArrayBufferLike | null = null;
      batches.forEach((records, seq) => {
        const options = { producerId: 9, producerEpoch: 2, baseSequence: seq * 50 };
        const frames = encodeFrames(records.map((r) => ({ key: r.key, value: r.value, headers: r.headers, timestamp: r.timestamp }))).buffer;
        const reader = new FrameReader(frames);
        while (reader.next()) builder.appendTail(reader.timestamp, frames, reader.tailOffset, reader.tailLength);
        const bytes = builder.finishInPlace(options);
        assert.throws(() => builder.appendTail(0, frames, 0, 1), /append after finish/);
        assert.equal(Buffer.from(bytes).equals(Buffer.from(encodeBatch(records as RecordInput[], options))), true);
        verifyBatch(bytes);
        if (buffer) assert.is(bytes.buffer, buffer, "the same buffer, batch after batch");
        buffer = bytes.buffer;
        builder.reset();
        assert.is(builder.count, 0);
      });
    }),
    { numRuns: 100 },
  );
});

test("encodeFrames: each call's buffer is its own, also past the scratch buffer's size", () => {
  const first = encodeFrames([{ key: "a", value: "first" }]).buffer;
  const copy = Buffer.from(first);
  // 6 MiB: more than the scratch buffer holds (it grows for the call, then shrinks back).
  const big = Array.from({ length: 96 }, (_, i) => ({ value: new Uint8Array(64 * 1024).fill(i) }));
  const large = encodeFrames(big).buffer;
  const again = encodeFrames([{ key: "b", value: "second" }]).buffer;
  assert.equal(Buffer.from(first).equals(copy), true, "a later call leaves an earlier buffer alone");
  for (const b of [first, large, again]) assert.is(b.byteLength, b.buffer.byteLength, "transferable: an ArrayBuffer of its own");
  const reader = new FrameReader(large);
  let n = 0;
  while (reader.next()) {
    assert.is(reader.tailLength, 1 + 3 + 64 * 1024 + 1);
    assert.is(large[reader.tailOffset + 4], n++);
  }
  assert.is(n, 96);
  // A message refused halfway through leaves the next call unaffected.
  assert.throws(() => encodeFrames([{ value: "ok" }, { value: 5 as unknown as string }]), (e: SkeinError) => e.code === ErrorCode.INVALID_REQUEST && e.context.field === "messages.1.value");
  const r = new FrameReader(encodeFrames([{ value: "x", timestamp: 1_700_000_000_123 }, { value: "y" }]).buffer);
  assert.ok(r.next());
  assert.is(r.timestamp, 1_700_000_000_123);
  assert.ok(r.next());
  assert.is(r.timestamp, -1, "no timestamp: -1 (now)");
  assert.not.ok(r.next());
});

test.run();
