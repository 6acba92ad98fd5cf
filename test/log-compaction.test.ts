// Partition log compaction: exactly the latest record per key survives in cleaned segments,
// offsets never change, tombstones expire, appends go on while a pass runs.
import { test } from "uvu";
import * as assert from "uvu/assert";
import fc from "fast-check";
import { gzipSync } from "node:zlib";
import { computeBatchCrc, encodeBatch, type BatchHeader, type RecordInput } from "../protocol/record-batch.js";
import { batchesIn, openTestLog, readAllRecords, text, type LogFixture } from "./log-helpers.js";

const DAY_MS = 24 * 60 * 60 * 1000;

interface Written {
  key: string;
  value: string | null;
}

/** Appends keyed records stamped with the test clock; returns them in offset order. */
async function appendKeyed(f: LogFixture, history: Written[], records: Written[], epoch = 0): Promise<void> {
  const input: RecordInput[] = records.map((r) => ({ key: Buffer.from(r.key), value: r.value === null ? null : Buffer.from(r.value), timestamp: f.clock.now() }));
  const result = await f.log.append(encodeBatch(input), { leaderEpoch: epoch });
  assert.is(result.baseOffset, history.length);
  history.push(...records);
}

function latestOffsets(history: Written[]): Map<string, number> {
  const latest = new Map<string, number>();
  history.forEach((r, offset) => latest.set(r.key, offset));
  return latest;
}

/**
 * What compaction promises: offsets keep their records, each key's latest record is served,
 * cleaned (closed) segments hold nothing but latest records, the active segment is untouched.
 */
async function checkCompacted(f: LogFixture, history: Written[], options: { tombstonesGone?: boolean } = {}): Promise<void> {
  const served = await readAllRecords(f.log);
  const latest = latestOffsets(history);
  const activeBase = f.log.segmentBaseOffsets().pop()!;
  const servedOffsets = new Set(served.map((r) => r.offset));
  for (const r of served) {
    const original = history[r.offset];
    assert.is(text(r.key), original.key, `offset ${r.offset} key`);
    assert.is(text(r.value), original.value, `offset ${r.offset} value`);
    if (r.offset < activeBase) assert.is(r.offset, latest.get(original.key), `offset ${r.offset} in a cleaned segment is superseded`);
  }
  for (const [key, offset] of latest) {
    const tombstone = history[offset].value === null;
    if (!(tombstone && options.tombstonesGone)) assert.ok(servedOffsets.has(offset), `latest record of ${key} (offset ${offset}) is missing`);
  }
  for (let offset = activeBase; offset < history.length; offset++) assert.ok(servedOffsets.has(offset), `active segment lost ${offset}`);
  assert.equal(served.map((r) => r.offset), [...served.map((r) => r.offset)].sort((a, b) => a - b));
}

test("property: after compaction exactly the latest record per key is kept, at its original offset", async () => {
  // Half the keys are longer than 32 bytes: the offset map holds those by digest.
  const keys = fc.integer({ min: 0, max: 7 }).map((k) => (k < 4 ? `k${k}` : `long-key-${k}-`.padEnd(60, "x")));
  const record = fc.record({ key: keys, value: fc.option(fc.string({ maxLength: 24 }), { nil: null, freq: 6 }) });
  const op = fc.oneof(
    { weight: 5, arbitrary: fc.array(record, { minLength: 1, maxLength: 8 }).map((records) => ({ kind: "append" as const, records })) },
    { weight: 1, arbitrary: fc.constant({ kind: "compact" as const }) },
  );
  await fc.assert(
    fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 40 }), async (ops) => {
      const f = await openTestLog({ cleanupPolicy: "compact", segmentBytes: 500, indexIntervalBytes: 64, deleteRetentionMs: DAY_MS });
      try {
        const history: Written[] = [];
        for (const o of ops) {
          if (o.kind === "append") await appendKeyed(f, history, o.records);
          else assert.not.ok((await f.log.compact()).aborted);
        }
        const result = await f.log.compact();
        assert.not.ok(result.aborted);
        assert.is(result.tombstonesRemoved, 0, "tombstones younger than deleteRetentionMs stay");
        await checkCompacted(f, history);
        await f.reopen();
        assert.equal(f.logger.warnings, []);
        await checkCompacted(f, history);
        const records = await readAllRecords(f.log);
        for (const r of records) assert.is((await readAllRecords(f.log, { from: r.offset, maxBytes: 1 }))[0].offset, r.offset);
      } finally {
        await f.cleanup();
      }
    }),
    { numRuns: 40 },
  );
});

test("tombstones are kept until deleteRetentionMs, then go with every older record of their key", async () => {
  const f = await openTestLog({ cleanupPolicy: "compact", segmentBytes: 300, deleteRetentionMs: DAY_MS });
  try {
    const history: Written[] = [];
    await appendKeyed(f, history, [{ key: "a", value: "a1" }, { key: "b", value: "b1" }]);
    await appendKeyed(f, history, [{ key: "a", value: null }]);
    for (let i = 0; i < 20; i++) await appendKeyed(f, history, [{ key: `filler-${i % 3}`, value: `x${i}`.repeat(10) }]);
    const first = await f.log.compact();
    assert.ok(first.recordsRemoved > 0);
    assert.is(first.tombstonesRemoved, 0);
    await checkCompacted(f, history);
    assert.equal((await readAllRecords(f.log)).filter((r) => text(r.key) === "a").map((r) => [r.offset, text(r.value)]), [[2, null]]);
    f.clock.advance(DAY_MS + 1);
    const second = await f.log.compact();
    assert.is(second.tombstonesRemoved, 1);
    await checkCompacted(f, history, { tombstonesGone: true });
    const served = await readAllRecords(f.log);
    assert.equal(served.filter((r) => text(r.key) === "a"), []);
    assert.equal(served.filter((r) => text(r.key) === "b").map((r) => text(r.value)), ["b1"]);
  } finally {
    await f.cleanup();
  }
});

test("a read from an offset compaction removed returns the next batch; offsetForTime still works", async () => {
  const f = await openTestLog({ cleanupPolicy: "compact", segmentBytes: 300, indexIntervalBytes: 0 });
  try {
    const history: Written[] = [];
    for (let i = 0; i < 30; i++) await appendKeyed(f, history, [{ key: i % 10 === 0 ? `keep-${i}` : "dup", value: `v${i}` }]);
    await f.log.compact();
    await checkCompacted(f, history);
    const batches = batchesIn((await f.log.read(1, { maxBytes: 1 })).data);
    assert.is(batches[0].baseOffset, 10, "offsets 1..9 were superseded copies of 'dup'");
    assert.is(await f.log.offsetForTime(0), 0);
  } finally {
    await f.cleanup();
  }
});

/** The same records as one gzip batch (Kafka clients send these; the codec reads them). */
function gzipBatch(records: RecordInput[]): Uint8Array {
  const plain = Buffer.from(encodeBatch(records, { timestamp: 1_700_000_000_000 }));
  const body = gzipSync(plain.subarray(61));
  const out = Buffer.alloc(61 + body.length);
  plain.copy(out, 0, 0, 61);
  body.copy(out, 61);
  out.writeInt32BE(out.length - 12, 8);
  out.writeInt16BE(plain.readInt16BE(21) | 1, 21);
  out.writeUInt32BE(computeBatchCrc(out, 0, { sizeInBytes: out.length } as BatchHeader), 17);
  return out;
}

test("a gzip batch with some survivors is rewritten uncompressed with the same offsets", async () => {
  const f = await openTestLog({ cleanupPolicy: "compact", segmentBytes: 200 });
  try {
    const history: Written[] = [];
    const records = ["x", "y", "x", "z"].map((key, i) => ({ key, value: `${key}${i}` }));
    await f.log.append(gzipBatch(records.map((r) => ({ key: Buffer.from(r.key), value: Buffer.from(r.value) }))), { leaderEpoch: 0 });
    history.push(...records);
    for (let i = 0; i < 6; i++) await appendKeyed(f, history, [{ key: "z", value: `z-late-${i}`.repeat(5) }]);
    await f.log.compact();
    await checkCompacted(f, history);
    const served = await readAllRecords(f.log);
    assert.equal(served.slice(0, 2).map((r) => [r.offset, text(r.value)]), [[1, "y1"], [2, "x2"]]);
  } finally {
    await f.cleanup();
  }
});

test("appends go on while a compaction pass runs, and the pass stays correct", async () => {
  const f = await openTestLog({ cleanupPolicy: "compact", segmentBytes: 256 * 1024 });
  try {
    const history: Written[] = [];
    const value = (i: number) => `${i}:`.padEnd(1000, "v");
    for (let i = 0; i < 4000; i += 10) await appendKeyed(f, history, Array.from({ length: 10 }, (_, j) => ({ key: `k${(i + j) % 150}`, value: value(i + j) })));
    assert.ok(f.log.segmentCount > 10);
    let done = false;
    const pass = f.log.compact().finally(() => (done = true));
    let appendsDuringPass = 0;
    while (!done) {
      await appendKeyed(f, history, [{ key: `k${appendsDuringPass % 150}`, value: value(history.length) }]);
      appendsDuringPass++;
      await new Promise((resolve) => setImmediate(resolve));
    }
    const result = await pass;
    assert.not.ok(result.aborted);
    assert.ok(appendsDuringPass > 3, `only ${appendsDuringPass} appends ran during the pass`);
    assert.ok(result.bytesAfter < result.bytesBefore / 4, JSON.stringify(result));
    await checkCompactedLoosely(f, history);
    await f.log.compact();
    await checkCompacted(f, history);
  } finally {
    await f.cleanup();
  }
});

/** Like checkCompacted, for a pass that started before the last appends (they may leave superseded records behind). */
async function checkCompactedLoosely(f: LogFixture, history: Written[]): Promise<void> {
  const served = await readAllRecords(f.log);
  const latest = latestOffsets(history);
  for (const r of served) assert.is(text(r.value), history[r.offset].value, `offset ${r.offset}`);
  const servedOffsets = new Set(served.map((r) => r.offset));
  for (const [key, offset] of latest) assert.ok(servedOffsets.has(offset), `latest of ${key} missing`);
}

test("a truncation during a pass aborts it; nothing unsafe is swapped in", async () => {
  const f = await openTestLog({ cleanupPolicy: "compact", segmentBytes: 128 * 1024 });
  try {
    const history: Written[] = [];
    for (let i = 0; i < 3000; i += 10) await appendKeyed(f, history, Array.from({ length: 10 }, (_, j) => ({ key: `k${(i + j) % 50}`, value: `${i + j}`.padEnd(1000, "v") })));
    const pass = f.log.compact();
    await new Promise((resolve) => setImmediate(resolve));
    // Drop the newest records: the pass's offset map now names records that are gone.
    await f.log.truncateTo(2990);
    history.length = 2990;
    const result = await pass;
    assert.ok(result.aborted);
    await checkCompactedLoosely(f, history);
    const next = await f.log.compact();
    assert.not.ok(next.aborted);
    await checkCompacted(f, history);
  } finally {
    await f.cleanup();
  }
});

test("with a small offset map, each pass cleans the next dirty part and stays safe", async () => {
  const f = await openTestLog({ cleanupPolicy: "compact", segmentBytes: 400, compactionMaxKeys: 6 });
  try {
    const history: Written[] = [];
    for (let i = 0; i < 120; i++) await appendKeyed(f, history, [{ key: `k${i % 12}`, value: `v${i}` }]);
    const before = (await readAllRecords(f.log)).length;
    const removedPerPass: number[] = [];
    for (let pass = 0; pass < 40; pass++) {
      const result = await f.log.compact();
      assert.not.ok(result.aborted);
      await checkCompactedLoosely(f, history);
      removedPerPass.push(result.recordsRemoved);
    }
    assert.ok(removedPerPass.filter((n) => n > 0).length > 2, `progress spread over passes: ${removedPerPass}`);
    const after = (await readAllRecords(f.log)).length;
    assert.ok(after < before / 2, `${before} -> ${after} records`);
  } finally {
    await f.cleanup();
  }
});

test("compaction is a no-op for a delete-policy log", async () => {
  const f = await openTestLog({ segmentBytes: 300 });
  try {
    const history: Written[] = [];
    for (let i = 0; i < 20; i++) await appendKeyed(f, history, [{ key: "same", value: `v${i}` }]);
    const result = await f.log.compact();
    assert.is(result.recordsRemoved, 0);
    assert.is((await readAllRecords(f.log)).length, 20);
  } finally {
    await f.cleanup();
  }
});

test.run();
