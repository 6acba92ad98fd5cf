import { gzipSync } from "node:zlib";
import { crc32c } from "@node-rs/crc32";
import * as fc from "fast-check";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { ErrorCode, SkeinError } from "../protocol/errors.js";
import { seededRandom } from "./helpers.js";
import { BATCH_HEADER_SIZE, BatchAttributes, type BatchHeader, batchSizeAt, CompressionCodec, type DecodedRecord, decodeRecords, encodeBatch, isControlBatch, isTransactional, iterateBatches, LOG_OVERHEAD, MAGIC, readBatchHeader, type RecordInput, setBaseOffset, setPartitionLeaderEpoch, verifyBatch, setBaseSequence } from "../protocol/record-batch.js";

const utf8 = new TextEncoder();
const bytes = (s: string) => utf8.encode(s);

/** Runs fn and returns the CORRUPT_MESSAGE error it must throw. */
function expectCorrupt(fn: () => unknown, why = ""): SkeinError {
  try {
    fn();
  } catch (e) {
    assert.instance(e, SkeinError, `expected a SkeinError ${why}: ${e}`);
    assert.is((e as SkeinError).code, ErrorCode.CORRUPT_MESSAGE, why);
    return e as SkeinError;
  }
  assert.unreachable(`expected CORRUPT_MESSAGE ${why}`);
  throw new Error("unreachable");
}

function expectCode(fn: () => unknown, code: ErrorCode): SkeinError {
  try {
    fn();
  } catch (e) {
    assert.instance(e, SkeinError);
    assert.is((e as SkeinError).code, code, (e as Error).message);
    return e as SkeinError;
  }
  assert.unreachable(`expected ${code}`);
  throw new Error("unreachable");
}

/** What decodeRecords must return for records encoded with these inputs. */
function expected(records: RecordInput[], baseOffset: number, defaultTimestamp: number): DecodedRecord[] {
  return records.map((r, i) => ({
    offset: baseOffset + i,
    timestamp: r.timestamp ?? defaultTimestamp,
    key: r.key ?? null,
    value: r.value,
    headers: (r.headers ?? []).map((h) => ({ key: h.key, value: h.value })),
  }));
}

function writeInt32(buf: Uint8Array, pos: number, v: number): void {
  new DataView(buf.buffer, buf.byteOffset, buf.byteLength).setInt32(pos, v);
}

function writeInt16(buf: Uint8Array, pos: number, v: number): void {
  new DataView(buf.buffer, buf.byteOffset, buf.byteLength).setInt16(pos, v);
}

function fixCrc(buf: Uint8Array, pos = 0): void {
  const size = LOG_OVERHEAD + new DataView(buf.buffer, buf.byteOffset).getInt32(pos + 8);
  new DataView(buf.buffer, buf.byteOffset, buf.byteLength).setUint32(pos + 17, crc32c(buf.subarray(pos + 21, pos + size)));
}

/** Re-packs an uncompressed batch as a gzip batch, the way a Kafka producer would send it. */
function gzipBatch(batch: Uint8Array, recordsSection = batch.subarray(BATCH_HEADER_SIZE)): Uint8Array {
  const compressed = gzipSync(recordsSection);
  const out = new Uint8Array(BATCH_HEADER_SIZE + compressed.length);
  out.set(batch.subarray(0, BATCH_HEADER_SIZE));
  out.set(compressed, BATCH_HEADER_SIZE);
  writeInt32(out, 8, out.length - LOG_OVERHEAD);
  writeInt16(out, 21, (readBatchHeader(batch).attributes & ~7) | CompressionCodec.GZIP);
  fixCrc(out);
  return out;
}

const mixedRecords: RecordInput[] = [
  { key: bytes("user-1"), value: bytes("hello"), timestamp: 1_700_000_000_000 },
  { key: null, value: null, timestamp: 1_700_000_000_005 },
  { value: new Uint8Array(0), timestamp: 1_699_999_999_000 },
  { key: new Uint8Array([0, 255, 128, 1]), value: new Uint8Array(300).map((_, i) => i & 0xff) },
  {
    key: new Uint8Array(0),
    value: bytes("with headers"),
    headers: [
      { key: "trace-id", value: bytes("abc") },
      { key: "tombstone-reason", value: null },
      { key: "", value: new Uint8Array(0) },
      { key: "ключ-🙂", value: new Uint8Array([7]) },
    ],
  },
];

test("round trip: keys, values, nulls, empty, binary, headers, timestamps", () => {
  const buf = encodeBatch(mixedRecords, { baseOffset: 42, timestamp: 1_700_000_000_100 });
  assert.equal(decodeRecords(buf), expected(mixedRecords, 42, 1_700_000_000_100));
  const header = verifyBatch(buf);
  assert.is(header.baseTimestamp, 1_700_000_000_000, "base timestamp is the first record's");
  assert.is(header.maxTimestamp, 1_700_000_000_100);
});

test("header fields: options, counts, sizes, lastOffset", () => {
  const buf = encodeBatch(mixedRecords, {
    baseOffset: 2 ** 40,
    partitionLeaderEpoch: 7,
    producerId: 123456789012,
    producerEpoch: 3,
    baseSequence: 99,
    attributes: BatchAttributes.TRANSACTIONAL,
    timestamp: 5,
  });
  const header = verifyBatch(buf);
  const expectedHeader: Omit<BatchHeader, "crc"> = {
    baseOffset: 2 ** 40,
    batchLength: buf.length - LOG_OVERHEAD,
    partitionLeaderEpoch: 7,
    magic: MAGIC,
    attributes: BatchAttributes.TRANSACTIONAL,
    lastOffsetDelta: 4,
    baseTimestamp: 1_700_000_000_000,
    maxTimestamp: 1_700_000_000_005,
    producerId: 123456789012,
    producerEpoch: 3,
    baseSequence: 99,
    recordCount: 5,
    sizeInBytes: buf.length,
    lastOffset: 2 ** 40 + 4,
  };
  const { crc, ...rest } = header;
  assert.equal(rest, expectedHeader);
  assert.is(crc, crc32c(buf.subarray(21)));
  assert.is(batchSizeAt(buf), buf.length);
  assert.ok(isTransactional(header));
  assert.not.ok(isControlBatch(header));
  assert.equal(readBatchHeader(buf), header);
});

test("defaults: no producer, no epoch, Date.now() for records without a timestamp", () => {
  const before = Date.now();
  const buf = encodeBatch([{ value: bytes("x") }]);
  const after = Date.now();
  const header = verifyBatch(buf);
  assert.is(header.baseOffset, 0);
  assert.is(header.partitionLeaderEpoch, -1);
  assert.is(header.producerId, -1);
  assert.is(header.producerEpoch, -1);
  assert.is(header.baseSequence, -1);
  assert.ok(header.baseTimestamp >= before && header.baseTimestamp <= after);
  assert.is(decodeRecords(buf)[0].timestamp, header.baseTimestamp);
});

test("setBaseOffset and setPartitionLeaderEpoch rewrite in place and keep the CRC valid", () => {
  const buf = encodeBatch(mixedRecords, { timestamp: 1 });
  const crcBefore = verifyBatch(buf).crc;
  setBaseOffset(buf, 0, 9_007_199_254_000_000);
  setPartitionLeaderEpoch(buf, 0, 12);
  const header = verifyBatch(buf);
  assert.is(header.crc, crcBefore);
  assert.is(header.baseOffset, 9_007_199_254_000_000);
  assert.is(header.lastOffset, 9_007_199_254_000_004);
  assert.is(header.partitionLeaderEpoch, 12);
  assert.equal(decodeRecords(buf).map((r) => r.offset), [0, 1, 2, 3, 4].map((i) => 9_007_199_254_000_000 + i));
  expectCode(() => setBaseOffset(buf, 0, 2 ** 53), ErrorCode.INVALID_REQUEST);
  expectCode(() => setBaseOffset(buf, 0, -1), ErrorCode.INVALID_REQUEST);
});

test("a batch inside a larger buffer, at a non-zero position and byteOffset", () => {
  const a = encodeBatch([{ value: bytes("a") }], { baseOffset: 0, timestamp: 1 });
  const b = encodeBatch(mixedRecords, { baseOffset: 1, timestamp: 2 });
  const backing = new Uint8Array(7 + a.length + b.length + 5);
  backing.set(a, 7);
  backing.set(b, 7 + a.length);
  const view = backing.subarray(7, 7 + a.length + b.length);
  const header = verifyBatch(view, a.length);
  assert.is(header.baseOffset, 1);
  assert.equal(decodeRecords(view, a.length), expected(mixedRecords, 1, 2));
  setBaseOffset(view, a.length, 500);
  assert.is(verifyBatch(view, a.length).baseOffset, 500);
  assert.equal(verifyBatch(view, 0).baseOffset, 0, "neighbouring batch untouched");
});

test("CRC32C is the Castagnoli polynomial (check value of '123456789')", () => {
  assert.is(crc32c(bytes("123456789")), 0xe3069283);
});

test("CRC detects every single flipped bit from attributes to the end", () => {
  const buf = encodeBatch(mixedRecords.slice(0, 3), { timestamp: 1 });
  for (let byte = 21; byte < buf.length; byte++) {
    for (let bit = 0; bit < 8; bit++) {
      buf[byte] ^= 1 << bit;
      expectCorrupt(() => verifyBatch(buf), `bit ${bit} of byte ${byte}`);
      expectCorrupt(() => [...iterateBatches(buf)], `iterate, bit ${bit} of byte ${byte}`);
      buf[byte] ^= 1 << bit;
    }
  }
  verifyBatch(buf);
});

// A real batch written by Kafka 2.x (gzip, LogAppendTime), from kafkajs's test fixtures
// (src/protocol/recordBatch/fixtures/v0_recordbatch.json): interop with bytes we did not write.
const KAFKA_GZIP_BATCH = new Uint8Array([
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 113, 0, 0, 0, 0, 2, 228, 195, 36, 165, 0, 9, 0, 0, 0, 0, 0, 0, 1, 115, 237, 245, 255,
  167, 0, 0, 1, 115, 237, 245, 255, 201, 255, 255, 255, 255, 255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 31, 139,
  8, 0, 0, 0, 0, 0, 0, 19, 11, 99, 96, 96, 224, 202, 78, 173, 212, 53, 112, 40, 75, 204, 41, 77, 213, 53, 208, 53, 50,
  48, 50, 208, 53, 176, 208, 53, 52, 9, 49, 52, 183, 50, 52, 182, 50, 176, 208, 51, 179, 48, 138, 98, 0, 0, 181, 227,
  241, 167, 44, 0, 0, 0,
]);

test("interop: verifies and decodes a batch written by Kafka", () => {
  const header = verifyBatch(KAFKA_GZIP_BATCH);
  assert.is(header.sizeInBytes, KAFKA_GZIP_BATCH.length);
  assert.is(header.attributes, CompressionCodec.GZIP | BatchAttributes.TIMESTAMP_TYPE_LOG_APPEND);
  assert.is(header.baseTimestamp, 1597425188775);
  assert.is(header.maxTimestamp, 1597425188809);
  assert.is(header.producerId, -1);
  assert.is(header.recordCount, 1);
  assert.equal(decodeRecords(KAFKA_GZIP_BATCH), [
    {
      offset: 0,
      timestamp: 1597425188809, // LogAppendTime: the broker's maxTimestamp wins
      key: bytes("key-0"),
      value: bytes("value-0-2020-08-14T17:13:08.682Z"),
      headers: [],
    },
  ]);
});

test("interop: our record bytes equal Kafka's for the same record", () => {
  const ours = encodeBatch([{ key: bytes("key-0"), value: bytes("value-0-2020-08-14T17:13:08.682Z") }], {
    timestamp: 1597425188775,
  });
  const kafkaRecords = Buffer.from("560000000a6b65792d304076616c75652d302d323032302d30382d31345431373a31333a30382e3638325a00", "hex");
  assert.equal(Buffer.from(ours.subarray(BATCH_HEADER_SIZE)), kafkaRecords);
  assert.equal(ours.subarray(27, 35), KAFKA_GZIP_BATCH.subarray(27, 35), "baseTimestamp int64 bytes");
  assert.equal(ours.subarray(16, 17), KAFKA_GZIP_BATCH.subarray(16, 17), "magic");
});

test("gzip batches decode, and decompression is bounded", () => {
  const plain = encodeBatch(mixedRecords, { baseOffset: 10, timestamp: 3 });
  const gz = gzipBatch(plain);
  assert.equal(decodeRecords(gz), expected(mixedRecords, 10, 3));
  const bomb = gzipBatch(plain, new Uint8Array(1 << 20));
  expectCorrupt(() => decodeRecords(bomb, 0, { maxDecompressedBytes: 1 << 16 }), "decompression bomb");
  const garbage = gzipBatch(plain);
  garbage[BATCH_HEADER_SIZE + 12] ^= 0xff;
  expectCorrupt(() => decodeRecords(garbage), "bad gzip stream");
  const hugeCount = gzipBatch(plain);
  writeInt32(hugeCount, 57, 0x7fffffff);
  writeInt32(hugeCount, 23, 0x7fffffff);
  fixCrc(hugeCount);
  verifyBatch(hugeCount);
  expectCorrupt(() => decodeRecords(hugeCount), "count larger than the decompressed bytes allow");
  const snappy = encodeBatch([{ value: bytes("v") }]);
  writeInt16(snappy, 21, CompressionCodec.SNAPPY);
  fixCrc(snappy);
  assert.match(expectCorrupt(() => verifyBatch(snappy)).message, /unsupported compression/);
});

test("LogAppendTime batches report maxTimestamp for every record", () => {
  const buf = encodeBatch(mixedRecords.slice(0, 2), { attributes: BatchAttributes.TIMESTAMP_TYPE_LOG_APPEND });
  assert.equal(decodeRecords(buf).map((r) => r.timestamp), [1_700_000_000_005, 1_700_000_000_005]);
});

test("iterateBatches walks concatenated batches and stops at the first bad one", () => {
  const batches = [0, 3, 4].map((base, i) =>
    encodeBatch(mixedRecords.slice(0, i + 1), { baseOffset: base, timestamp: base }),
  );
  const total = batches.reduce((n, b) => n + b.length, 0);
  const all = new Uint8Array(total);
  let at = 0;
  for (const b of batches) {
    all.set(b, at);
    at += b.length;
  }
  const seen = [...iterateBatches(all)];
  assert.equal(seen.map((s) => s.pos), [0, batches[0].length, batches[0].length + batches[1].length]);
  assert.equal(seen.map((s) => s.header.baseOffset), [0, 3, 4]);

  const bad = all.slice();
  bad[batches[0].length + 30] ^= 1;
  const walked: number[] = [];
  const err = expectCorrupt(() => {
    for (const { header } of iterateBatches(bad)) walked.push(header.baseOffset);
  });
  assert.equal(walked, [0], "batches before the bad one are yielded");
  assert.is(err.context.position, batches[0].length);
  assert.equal([...iterateBatches(bad, { verifyCrc: false })].length, 3, "no CRC check when told");

  for (const cut of [total - 1, total - batches[2].length + 5, total - batches[2].length + 30]) {
    const torn = all.subarray(0, cut);
    const e = expectCorrupt(() => [...iterateBatches(torn)]);
    assert.is(e.context.position, batches[0].length + batches[1].length);
    assert.is(e.context.truncated, true);
    assert.is([...iterateBatches(torn, { allowTruncatedTail: true })].length, 2);
  }
  assert.is([...iterateBatches(new Uint8Array(0))].length, 0);
});

test("batchSizeAt: -1 for a torn tail, raw size otherwise", () => {
  const buf = encodeBatch([{ value: bytes("v") }]);
  assert.is(batchSizeAt(buf), buf.length);
  assert.is(batchSizeAt(buf.subarray(0, LOG_OVERHEAD)), buf.length);
  assert.is(batchSizeAt(buf.subarray(0, LOG_OVERHEAD - 1)), -1);
  assert.is(batchSizeAt(buf, buf.length), -1);
});

test("readBatchHeader: header-only reads, and what a header must satisfy", () => {
  const buf = encodeBatch(mixedRecords, { baseOffset: 5, timestamp: 1 });
  expectCorrupt(() => readBatchHeader(buf.subarray(0, BATCH_HEADER_SIZE)));
  assert.is(readBatchHeader(buf.subarray(0, BATCH_HEADER_SIZE), 0, { headerOnly: true }).lastOffset, 9);
  expectCorrupt(() => readBatchHeader(buf.subarray(0, BATCH_HEADER_SIZE - 1), 0, { headerOnly: true }));

  const mutate = (why: string, edit: (b: Uint8Array, dv: DataView) => void) => {
    const b = buf.slice();
    edit(b, new DataView(b.buffer));
    expectCorrupt(() => readBatchHeader(b), why);
    expectCorrupt(() => decodeRecords(b), why);
  };
  mutate("magic 1", (b) => (b[16] = 1));
  mutate("batchLength below the header", (_, dv) => dv.setInt32(8, 48));
  mutate("negative batchLength", (_, dv) => dv.setInt32(8, -1));
  mutate("batchLength past the buffer", (_, dv) => dv.setInt32(8, buf.length));
  mutate("negative baseOffset", (_, dv) => dv.setBigInt64(0, -1n));
  mutate("baseOffset beyond 2^53", (_, dv) => dv.setBigInt64(0, 2n ** 53n));
  mutate("timestamp beyond 2^53", (_, dv) => dv.setBigInt64(27, -(2n ** 60n)));
  mutate("producerId beyond 2^53", (_, dv) => dv.setBigInt64(43, 2n ** 62n));
  mutate("lastOffset beyond 2^53", (_, dv) => dv.setBigInt64(0, 2n ** 53n - 2n));
  mutate("negative recordsCount", (_, dv) => dv.setInt32(57, -1));
  mutate("lastOffsetDelta below recordsCount - 1", (_, dv) => dv.setInt32(23, 3));
  mutate("unknown compression codec", (_, dv) => dv.setInt16(21, 7));
});

test("a huge recordsCount fails fast instead of allocating", () => {
  const buf = encodeBatch([{ value: bytes("v") }]);
  const dv = new DataView(buf.buffer);
  for (const count of [0x7fffffff, 2, 1 << 20]) {
    dv.setInt32(57, count);
    dv.setInt32(23, count);
    fixCrc(buf);
    const started = performance.now();
    expectCorrupt(() => decodeRecords(buf), `count ${count}`);
    expectCorrupt(() => verifyBatch(buf), `count ${count}`);
    assert.ok(performance.now() - started < 50);
  }
});

test("record-level corruption with a valid CRC is still caught", () => {
  const base = encodeBatch([{ key: bytes("k"), value: bytes("value"), headers: [{ key: "h", value: bytes("v") }] }], {
    timestamp: 1,
  });
  // Record bytes start at 61: length, attributes, tsDelta, offsetDelta, keyLen, 'k', valueLen, ...
  const cases: Array<[string, number, number]> = [
    ["record length too long", 61, 0x7e],
    ["record length too short", 61, 0x02],
    ["offsetDelta past lastOffsetDelta", 64, 0x02],
    ["negative key length", 65, 0x03],
    ["key length past the record", 65, 0x40],
    ["value length past the record", 67, 0x7e],
    ["headers count too large", 73, 0x7e],
    ["header key length negative", 74, 0x01],
  ];
  for (const [why, at, value] of cases) {
    const b = base.slice();
    b[at] = value;
    fixCrc(b);
    verifyBatch(b);
    expectCorrupt(() => decodeRecords(b), why);
  }
  const trailing = new Uint8Array(base.length + 1);
  trailing.set(base);
  writeInt32(trailing, 8, trailing.length - LOG_OVERHEAD);
  fixCrc(trailing);
  expectCorrupt(() => decodeRecords(trailing), "bytes after the last record");
});

test("encoder rejects what it cannot represent", () => {
  expectCode(() => encodeBatch([]), ErrorCode.INVALID_REQUEST);
  expectCode(() => encodeBatch([{ value: null, timestamp: 2 ** 53 }]), ErrorCode.INVALID_REQUEST);
  expectCode(() => encodeBatch([{ value: null }], { baseOffset: -1 }), ErrorCode.INVALID_REQUEST);
  expectCode(() => encodeBatch([{ value: null }], { attributes: CompressionCodec.GZIP }), ErrorCode.INVALID_REQUEST);
  expectCode(() => encodeBatch([{ value: null }], { producerEpoch: 40000 }), ErrorCode.INVALID_REQUEST);
  expectCode(
    () => encodeBatch([{ value: null, timestamp: 0 }, { value: null, timestamp: 2 ** 52 + 1 }]),
    ErrorCode.INVALID_REQUEST,
  );
  const err = expectCode(() => encodeBatch([{ value: new Uint8Array(1000) }], { maxBatchBytes: 1000 }), ErrorCode.MESSAGE_TOO_LARGE);
  assert.ok((err.context.sizeInBytes as number) > 1000);
});

test("varint edges: multi-byte lengths, large and negative timestamp deltas", () => {
  const records: RecordInput[] = [
    { value: new Uint8Array(1 << 20).fill(9), key: new Uint8Array(200).fill(1), timestamp: 2 ** 51 },
    { value: bytes("earlier"), timestamp: 2 ** 51 - 2 ** 40 },
    { value: bytes("much later"), timestamp: 2 ** 52 + 2 ** 51 - 1 },
    { value: bytes("negative"), timestamp: -1 },
  ];
  const buf = encodeBatch(records, { baseOffset: 2 ** 50 });
  verifyBatch(buf);
  assert.equal(decodeRecords(buf), expected(records, 2 ** 50, 0));
});

const headerArb = fc.record({
  key: fc.string({ unit: "binary", maxLength: 12 }),
  value: fc.option(fc.uint8Array({ maxLength: 20 }), { nil: null }),
});
const recordArb: fc.Arbitrary<RecordInput> = fc.record(
  {
    key: fc.option(fc.uint8Array({ maxLength: 40 }), { nil: null }),
    value: fc.option(fc.uint8Array({ maxLength: 300 }), { nil: null }),
    headers: fc.array(headerArb, { maxLength: 4 }),
    timestamp: fc.integer({ min: 0, max: 2 ** 45 }),
  },
  { requiredKeys: ["value"] },
);

test("property: random record lists round-trip exactly", () => {
  fc.assert(
    fc.property(
      fc.array(recordArb, { minLength: 1, maxLength: 30 }),
      fc.integer({ min: 0, max: 2 ** 52 }),
      fc.integer({ min: 0, max: 2 ** 45 }),
      fc.integer({ min: 0, max: 64 }),
      (records, baseOffset, timestamp, pad) => {
        const batch = encodeBatch(records, { baseOffset, timestamp });
        const padded = new Uint8Array(pad + batch.length);
        padded.set(batch, pad);
        const header = verifyBatch(padded, pad);
        assert.is(header.recordCount, records.length);
        assert.is(header.lastOffset, baseOffset + records.length - 1);
        assert.is(header.sizeInBytes, batch.length);
        const times = records.map((r) => r.timestamp ?? timestamp);
        assert.is(header.maxTimestamp, Math.max(...times));
        assert.equal(decodeRecords(padded, pad), expected(records, baseOffset, timestamp));
      },
    ),
    { numRuns: 300 },
  );
});

// ---- fuzz: every input either decodes or fails with CORRUPT_MESSAGE, never anything else ----

/** Feeds buf to every reader; returns how many calls succeeded. */
function probe(buf: Uint8Array, label: string): number {
  let ok = 0;
  const attempt = (fn: () => void) => {
    try {
      fn();
      ok++;
    } catch (e) {
      if (!(e instanceof SkeinError) || e.code !== ErrorCode.CORRUPT_MESSAGE) {
        throw new Error(`${label}: threw ${e instanceof Error ? e.stack : String(e)}`);
      }
    }
  };
  attempt(() => verifyBatch(buf));
  attempt(() => {
    const header = readBatchHeader(buf);
    const records = decodeRecords(buf);
    if (records.length !== header.recordCount) throw new Error(`${label}: ${records.length} records, header says ${header.recordCount}`);
    for (const r of records) {
      if (r.offset < header.baseOffset || r.offset > header.lastOffset) throw new Error(`${label}: offset ${r.offset} outside batch`);
    }
  });
  attempt(() => {
    for (const { header, pos } of iterateBatches(buf, { verifyCrc: false })) {
      if (pos + header.sizeInBytes > buf.length) throw new Error(`${label}: batch runs past the buffer`);
    }
  });
  return ok;
}

test("fuzz: random and mutated buffers only ever fail with CORRUPT_MESSAGE", () => {
  const seed = Number(process.env.SKEIN_FUZZ_SEED ?? 0x5eed);
  const random = seededRandom(seed);
  const int = (n: number) => Math.floor(random() * n);
  const randomBytes = (n: number) => {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = int(256);
    return b;
  };
  const randomRecords = (): RecordInput[] =>
    Array.from({ length: 1 + int(6) }, () => ({
      key: int(3) === 0 ? null : randomBytes(int(12)),
      value: int(5) === 0 ? null : randomBytes(int(60)),
      headers: Array.from({ length: int(3) }, () => ({ key: "h" + int(100), value: int(2) ? randomBytes(int(5)) : null })),
      timestamp: 1_700_000_000_000 + int(100_000) - 50_000,
    }));
  const valid = Array.from({ length: 64 }, (_, i) => {
    const plain = encodeBatch(randomRecords(), { baseOffset: int(1_000_000), timestamp: 1_700_000_000_000 });
    return i % 8 === 0 ? gzipBatch(plain) : plain;
  });

  // Capturing stack traces is most of the cost of a thrown error, and the fuzz classifies
  // errors by class and code only.
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  const started = performance.now();
  let buffers = 0;
  let decoded = 0;
  const run = (buf: Uint8Array, label: string) => {
    decoded += probe(buf, `seed ${seed}, ${label}`);
    buffers++;
  };

  try {
    for (const batch of valid.slice(0, 6)) {
      for (let cut = 0; cut <= batch.length; cut++) run(batch.subarray(0, cut), `truncated at ${cut}`);
    }
    while (buffers < 150_000) {
      const batch = valid[int(valid.length)];
      const b = batch.slice();
      const kind = int(7);
      if (kind === 0) {
        run(randomBytes(int(200)), "random bytes");
        continue;
      }
      if (kind === 6) {
        const second = valid[int(valid.length)];
        const joined = new Uint8Array(b.length + second.length);
        joined.set(b);
        joined.set(second, b.length);
        joined[int(joined.length)] = int(256);
        run(joined, "two batches, one byte changed");
        continue;
      }
      if (kind === 1) {
        for (let n = 1 + int(4); n > 0; n--) b[int(b.length)] = int(256);
      } else if (kind === 2) {
        writeInt32(b, 8, int(3) === 0 ? int(b.length + 20) - 10 : (random() * 2 ** 32) | 0);
      } else if (kind === 3) {
        writeInt32(b, 57, int(2) ? (random() * 2 ** 32) | 0 : int(40));
        writeInt32(b, 23, int(2) ? (random() * 2 ** 32) | 0 : int(40));
      } else if (kind === 4) {
        // Overwrite a record-level byte with a varint-ish value (huge, negative, continuation).
        const at = BATCH_HEADER_SIZE + int(b.length - BATCH_HEADER_SIZE);
        b[at] = [0x7e, 0x7f, 0x01, 0x80, 0xff, 0x00, int(256)][int(7)];
      } else {
        const headerOnly = b.subarray(0, BATCH_HEADER_SIZE + int(b.length - BATCH_HEADER_SIZE + 1));
        run(headerOnly, "cut batch");
        continue;
      }
      // Half the mutants get a fresh CRC so the record-level checks, not the CRC, must catch them.
      if (int(2) && b.length >= BATCH_HEADER_SIZE && batchSizeAt(b) <= b.length && batchSizeAt(b) >= 21) fixCrc(b);
      run(b, `mutation kind ${kind}`);
    }
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(`fuzz: ${buffers} buffers (${decoded} successful calls) in ${seconds.toFixed(2)} s, seed ${seed}`);
  assert.ok(buffers >= 150_000);
  assert.ok(decoded > 0, "some mutants must still decode, or the fuzz only tests the first check");
});

test("setBaseSequence renumbers a batch in place and its CRC with it", () => {
  const batch = encodeBatch([{ value: new Uint8Array([1]) }, { value: new Uint8Array([2]) }], { producerId: 5, producerEpoch: 0, baseSequence: 10 });
  setBaseSequence(batch, 0, 7);
  const header = verifyBatch(batch, 0);
  assert.is(header.baseSequence, 7);
  assert.is(header.producerId, 5);
  batch[batch.length - 1] ^= 1;
  assert.throws(() => verifyBatch(batch, 0), /CRC/);
});

test.run();
