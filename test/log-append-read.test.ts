// Partition log: leader and follower appends, reads at every boundary, offsets by time.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { encodeBatch, readBatchHeader } from "../protocol/record-batch.js";
import { PartitionLog } from "../actors/log/mod.js";
import { batchesIn, concat, makeBatch, openTestLog, readAllRecords, rejection, text } from "./log-helpers.js";

test("offsets start at 0 and stay contiguous across segment rolls", async () => {
  const f = await openTestLog({ segmentBytes: 1024, indexIntervalBytes: 128 });
  try {
    for (let i = 0; i < 50; i++) {
      const result = await f.log.append(makeBatch(3, { first: i * 3, valueBytes: 50 }), { leaderEpoch: 0 });
      assert.is(result.baseOffset, i * 3);
      assert.is(result.lastOffset, i * 3 + 2);
    }
    assert.is(f.log.logEndOffset, 150);
    assert.ok(f.log.segmentCount > 5, `expected several segments, got ${f.log.segmentCount}`);
    const records = await readAllRecords(f.log);
    assert.equal(records.map((r) => r.offset), Array.from({ length: 150 }, (_, i) => i));
    records.forEach((r, i) => assert.ok(text(r.value)!.startsWith(`value-${i}value`), `record ${i}: ${text(r.value)}`));
    const logs = readdirSync(f.dir).filter((n) => n.endsWith(".log")).sort();
    assert.equal(logs.map((n) => Number(n.slice(0, 20))), f.log.segmentBaseOffsets());
    assert.ok(logs.every((n) => /^\d{20}\.log$/.test(n)));
    for (const n of logs.slice(0, -1)) assert.ok(statSync(join(f.dir, n)).size <= 1024, `${n} exceeds segmentBytes`);
  } finally {
    await f.cleanup();
  }
});

test("a read of every offset starts with the batch that holds it; out of range on both sides", async () => {
  const f = await openTestLog({ segmentBytes: 700, indexIntervalBytes: 100 });
  try {
    for (let i = 0; i < 30; i++) await f.log.append(makeBatch(1 + (i % 4), { valueBytes: 20 }), { leaderEpoch: 0 });
    const end = f.log.logEndOffset;
    for (let offset = 0; offset < end; offset++) {
      const { data, logStartOffset, logEndOffset } = await f.log.read(offset, { maxBytes: 1 });
      const batches = batchesIn(data);
      assert.is(batches.length, 1, `offset ${offset}`);
      assert.ok(batches[0].baseOffset <= offset && offset <= batches[0].lastOffset, `offset ${offset} not in ${batches[0].baseOffset}..${batches[0].lastOffset}`);
      assert.is(logStartOffset, 0);
      assert.is(logEndOffset, end);
    }
    const atEnd = await f.log.read(end, { maxBytes: 1024 });
    assert.is(atEnd.data.length, 0);
    const past = await rejection(f.log.read(end + 1, { maxBytes: 1024 }), "OFFSET_OUT_OF_RANGE");
    assert.is(past.context.logEndOffset, end);
    assert.is(past.context.topic, "topic");
    assert.is(past.context.partition, 0);
    await rejection(f.log.read(-1, { maxBytes: 1024 }), "OFFSET_OUT_OF_RANGE");
  } finally {
    await f.cleanup();
  }
});

test("maxBytes returns whole batches only, but always at least one", async () => {
  const f = await openTestLog();
  try {
    const sizes: number[] = [];
    for (let i = 0; i < 4; i++) {
      const batch = makeBatch(3, { valueBytes: 100 });
      sizes.push(batch.length);
      await f.log.append(batch, { leaderEpoch: 0 });
    }
    assert.is(batchesIn((await f.log.read(0, { maxBytes: 10 })).data).length, 1);
    assert.is(batchesIn((await f.log.read(0, { maxBytes: sizes[0] + sizes[1] - 1 })).data).length, 1);
    const two = (await f.log.read(0, { maxBytes: sizes[0] + sizes[1] })).data;
    assert.is(two.length, sizes[0] + sizes[1]);
    assert.equal(batchesIn(two).map((b) => b.baseOffset), [0, 3]);
    const fromMiddle = await f.log.read(4, { maxBytes: 1 << 20 });
    assert.equal(batchesIn(fromMiddle.data).map((b) => b.baseOffset), [3, 6, 9]);
  } finally {
    await f.cleanup();
  }
});

test("headroomBytes: the same batches, that many bytes into their own buffer (also a batch larger than maxBytes)", async () => {
  const f = await openTestLog({ indexIntervalBytes: 100 });
  try {
    for (let i = 0; i < 6; i++) await f.log.append(makeBatch(2 + i, { valueBytes: 60 }), { leaderEpoch: 0 });
    for (const [offset, maxBytes] of [[0, 1 << 20], [5, 1 << 20], [0, 1], [9, 10]]) {
      const plain = (await f.log.read(offset, { maxBytes })).data;
      const spaced = (await f.log.read(offset, { maxBytes, headroomBytes: 700 })).data;
      assert.ok(plain.length > 0);
      assert.is(spaced.byteOffset, 700, `offset ${offset} maxBytes ${maxBytes}`);
      assert.equal([...spaced], [...plain]);
    }
    for (const bad of [-1, 1.5, 64 * 1024 + 1]) {
      await rejection(f.log.read(0, { maxBytes: 100, headroomBytes: bad }), "INVALID_REQUEST");
    }
  } finally {
    await f.cleanup();
  }
});

test("maxOffset (the high watermark) stops before batches that start at or after it", async () => {
  const f = await openTestLog();
  try {
    for (let i = 0; i < 3; i++) await f.log.append(makeBatch(3), { leaderEpoch: 0 });
    const starts = async (from: number, maxOffset: number) => batchesIn((await f.log.read(from, { maxBytes: 1 << 20, maxOffset })).data).map((b) => b.baseOffset);
    assert.equal(await starts(0, 6), [0, 3]);
    assert.equal(await starts(0, 7), [0, 3, 6]);
    assert.equal(await starts(0, 0), []);
    assert.equal(await starts(3, 3), []);
    assert.equal(await starts(4, 6), [3]);
  } finally {
    await f.cleanup();
  }
});

test("one append of several concatenated batches: offsets assigned from the log end, epoch stamped", async () => {
  const f = await openTestLog();
  try {
    await f.log.append(makeBatch(2), { leaderEpoch: 4 });
    const input = concat(encodeBatch([{ value: Buffer.from("a") }], { baseOffset: 1000 }), encodeBatch([{ value: Buffer.from("b") }, { value: Buffer.from("c") }], { baseOffset: 7 }));
    const result = await f.log.append(input, { leaderEpoch: 4 });
    assert.is(result.baseOffset, 2);
    assert.is(result.lastOffset, 4);
    assert.is(result.logAppendTime, f.clock.now());
    const { data } = await f.log.read(2, { maxBytes: 1 << 20 });
    const headers = batchesIn(data);
    assert.equal(headers.map((h) => [h.baseOffset, h.lastOffset]), [[2, 2], [3, 4]]);
    assert.equal([...Array(2)].map((_, i) => readBatchHeader(data, i === 0 ? 0 : headers[0].sizeInBytes).partitionLeaderEpoch), [4, 4]);
    assert.equal((await readAllRecords(f.log, { from: 2 })).map((r) => text(r.value)), ["a", "b", "c"]);
    assert.equal(f.log.epochEntries(), [{ epoch: 4, startOffset: 0 }]);
  } finally {
    await f.cleanup();
  }
});

test("a batch larger than maxMessageBytes is MESSAGE_TOO_LARGE and nothing is appended", async () => {
  const f = await openTestLog({ maxMessageBytes: 1000 });
  try {
    await f.log.append(makeBatch(1), { leaderEpoch: 0 });
    const size = f.log.sizeInBytes;
    const big = makeBatch(1, { valueBytes: 2000 });
    const e = await rejection(f.log.append(concat(makeBatch(1), big), { leaderEpoch: 0 }), "MESSAGE_TOO_LARGE");
    assert.is(e.context.sizeInBytes, big.length);
    assert.is(f.log.logEndOffset, 1);
    assert.is(f.log.sizeInBytes, size);
  } finally {
    await f.cleanup();
  }
});

test("a corrupt or torn input batch is CORRUPT_MESSAGE and nothing is appended", async () => {
  const f = await openTestLog();
  try {
    const flipped = makeBatch(3, { valueBytes: 30 });
    flipped[flipped.length - 5] ^= 0x40;
    await rejection(f.log.append(concat(makeBatch(2), flipped), { leaderEpoch: 0 }), "CORRUPT_MESSAGE");
    const torn = makeBatch(2);
    await rejection(f.log.append(concat(makeBatch(1), torn.subarray(0, torn.length - 1)), { leaderEpoch: 0 }), "CORRUPT_MESSAGE");
    await rejection(f.log.append(new Uint8Array(0), { leaderEpoch: 0 }), "CORRUPT_MESSAGE");
    await rejection(f.log.appendAsFollower(flipped), "CORRUPT_MESSAGE");
    assert.is(f.log.logEndOffset, 0);
    assert.is(f.log.sizeInBytes, 0);
    assert.equal(f.log.epochEntries(), []);
  } finally {
    await f.cleanup();
  }
});

test("a leader append with an epoch below the latest is FENCED_LEADER_EPOCH", async () => {
  const f = await openTestLog();
  try {
    await f.log.append(makeBatch(1), { leaderEpoch: 5 });
    await rejection(f.log.append(makeBatch(1), { leaderEpoch: 4 }), "FENCED_LEADER_EPOCH");
    await rejection(f.log.append(makeBatch(1), { leaderEpoch: -1 }), "INVALID_REQUEST");
    assert.is(f.log.logEndOffset, 1);
    await f.log.append(makeBatch(1), { leaderEpoch: 6 });
    assert.equal(f.log.epochEntries(), [{ epoch: 5, startOffset: 0 }, { epoch: 6, startOffset: 1 }]);
  } finally {
    await f.cleanup();
  }
});

test("follower appends keep the leader's offsets and epochs and must start at the log end", async () => {
  const f = await openTestLog();
  try {
    const r = await f.log.appendAsFollower(encodeBatch([{ value: Buffer.from("x") }, { value: Buffer.from("y") }], { baseOffset: 0, partitionLeaderEpoch: 3 }));
    assert.equal([r.baseOffset, r.lastOffset], [0, 1]);
    const gap = await rejection(f.log.appendAsFollower(encodeBatch([{ value: null }], { baseOffset: 5, partitionLeaderEpoch: 3 })), "OFFSET_OUT_OF_RANGE");
    assert.is(gap.context.expectedOffset, 2);
    await rejection(f.log.appendAsFollower(encodeBatch([{ value: null }], { baseOffset: 1, partitionLeaderEpoch: 3 })), "OFFSET_OUT_OF_RANGE");
    await f.log.appendAsFollower(concat(encodeBatch([{ value: null }], { baseOffset: 2, partitionLeaderEpoch: 3 }), encodeBatch([{ value: null }], { baseOffset: 3, partitionLeaderEpoch: 7 })));
    assert.is(f.log.logEndOffset, 4);
    assert.is(f.log.latestEpoch, 7);
    assert.equal(f.log.epochEntries(), [{ epoch: 3, startOffset: 0 }, { epoch: 7, startOffset: 3 }]);
    await rejection(f.log.appendAsFollower(encodeBatch([{ value: null }], { baseOffset: 4, partitionLeaderEpoch: 5 })), "FENCED_LEADER_EPOCH");
    assert.is(f.log.logEndOffset, 4);
  } finally {
    await f.cleanup();
  }
});

test("a follower may overwrite an epoch that never got a record (a deposed leader that wrote nothing)", async () => {
  const f = await openTestLog();
  try {
    await f.log.appendAsFollower(encodeBatch([{ value: null }], { baseOffset: 0, partitionLeaderEpoch: 3 }));
    await f.log.assignEpochStartOffset(5, 1); // became leader in epoch 5, appended nothing, lost leadership
    await f.log.appendAsFollower(encodeBatch([{ value: null }], { baseOffset: 1, partitionLeaderEpoch: 4 }));
    assert.equal(f.log.epochEntries(), [{ epoch: 3, startOffset: 0 }, { epoch: 4, startOffset: 1 }]);
    await f.reopen();
    assert.is(f.log.logEndOffset, 2, "recovery agrees with the rewritten epoch cache");
  } finally {
    await f.cleanup();
  }
});

test("a compacted log's follower accepts offset gaps forward, never backward", async () => {
  const f = await openTestLog({ cleanupPolicy: "compact" });
  try {
    await f.log.appendAsFollower(encodeBatch([{ key: Buffer.from("k"), value: null }], { baseOffset: 0, partitionLeaderEpoch: 1 }));
    await f.log.appendAsFollower(encodeBatch([{ key: Buffer.from("k"), value: null }], { baseOffset: 10, partitionLeaderEpoch: 1 }));
    assert.is(f.log.logEndOffset, 11);
    await rejection(f.log.appendAsFollower(encodeBatch([{ key: Buffer.from("k"), value: null }], { baseOffset: 10, partitionLeaderEpoch: 1 })), "OFFSET_OUT_OF_RANGE");
    assert.equal(batchesIn((await f.log.read(3, { maxBytes: 1 << 20 })).data).map((b) => b.baseOffset), [10]);
  } finally {
    await f.cleanup();
  }
});

test("offsetForTime finds the first record at or after a timestamp, across segments", async () => {
  const f = await openTestLog({ segmentBytes: 400, indexIntervalBytes: 0 });
  try {
    // Batch i holds records at 1000*i, 1000*i + 10, 1000*i + 20 (offsets 3i..3i+2).
    for (let i = 1; i <= 12; i++) {
      const t = 1000 * i;
      await f.log.append(encodeBatch([{ value: Buffer.from("a"), timestamp: t }, { value: Buffer.from("b"), timestamp: t + 10 }, { value: Buffer.from("c"), timestamp: t + 20 }]), { leaderEpoch: 0 });
    }
    assert.ok(f.log.segmentCount > 2);
    assert.is(await f.log.offsetForTime(0), 0);
    assert.is(await f.log.offsetForTime(1000), 0);
    assert.is(await f.log.offsetForTime(1005), 1);
    assert.is(await f.log.offsetForTime(1020), 2);
    assert.is(await f.log.offsetForTime(1021), 3);
    for (let i = 1; i <= 12; i++) assert.is(await f.log.offsetForTime(1000 * i + 15), 3 * (i - 1) + 2, `ts ${1000 * i + 15}`);
    assert.is(await f.log.offsetForTime(12_021), null);
    await f.reopen();
    assert.is(await f.log.offsetForTime(7010), 19);
  } finally {
    await f.cleanup();
  }
});

test("segmentMs rolls the active segment once its first append is old enough", async () => {
  const f = await openTestLog({ segmentMs: 60_000 });
  try {
    // Producer timestamps far in the past must not roll every append.
    await f.log.append(makeBatch(1, { timestamp: 1 }), { leaderEpoch: 0 });
    await f.log.append(makeBatch(1, { timestamp: 1 }), { leaderEpoch: 0 });
    assert.is(f.log.segmentCount, 1);
    f.clock.advance(60_001);
    await f.log.append(makeBatch(1), { leaderEpoch: 0 });
    assert.equal(f.log.segmentBaseOffsets(), [0, 2]);
    await f.log.append(makeBatch(1), { leaderEpoch: 0 });
    assert.is(f.log.segmentCount, 2);
  } finally {
    await f.cleanup();
  }
});

test("bad configuration is INVALID_CONFIG; a closed log refuses calls", async () => {
  await rejection(PartitionLog.open("/nonexistent-never-created", { segmentBytes: 3 }), "INVALID_CONFIG");
  await rejection(PartitionLog.open("/nonexistent-never-created", { cleanupPolicy: "shred" as "delete" }), "INVALID_CONFIG");
  const f = await openTestLog();
  try {
    await f.log.close();
    await rejection(f.log.read(0, { maxBytes: 10 }), "KAFKA_STORAGE_ERROR");
    await rejection(f.log.append(makeBatch(1), { leaderEpoch: 0 }), "KAFKA_STORAGE_ERROR");
    await f.log.close();
  } finally {
    await f.cleanup();
  }
});

test.run();
