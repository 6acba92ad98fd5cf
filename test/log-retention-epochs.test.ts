// Partition log: retention by time and size, truncation, the leader epoch cache.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { encodeBatch } from "../protocol/record-batch.js";
import { segmentBaseName } from "../actors/log/mod.js";
import { batchesIn, makeBatch, openTestLog, readAllRecords, rejection, text } from "./log-helpers.js";

const DAY_MS = 24 * 60 * 60 * 1000;

/** Appends `batches` batches of 5 records, each batch `valueBytes` per record, with record timestamps = the clock. */
async function fill(f: Awaited<ReturnType<typeof openTestLog>>, batches: number, options: { stepMs?: number; epoch?: number } = {}): Promise<void> {
  for (let i = 0; i < batches; i++) {
    await f.log.append(makeBatch(5, { valueBytes: 40, timestamp: f.clock.now() }), { leaderEpoch: options.epoch ?? 0 });
    f.clock.advance(options.stepMs ?? 0);
  }
}

test("time retention deletes closed segments whose newest record is too old, never the active one", async () => {
  const f = await openTestLog({ segmentBytes: 1000, retentionMs: 7 * DAY_MS });
  try {
    await fill(f, 20, { stepMs: 60_000 });
    const segments = f.log.segmentBaseOffsets();
    assert.ok(segments.length >= 4);
    assert.equal(await f.log.runRetention(), { deletedSegments: 0, deletedBytes: 0, logStartOffset: 0 }, "nothing is old yet at first");
    f.clock.advance(8 * DAY_MS);
    const everything = await f.log.runRetention();
    // All closed segments are now older than 7 days; the active one stays whatever its age.
    assert.is(everything.deletedSegments, segments.length - 1);
    assert.equal(f.log.segmentBaseOffsets(), [segments[segments.length - 1]]);
    assert.is(f.log.logStartOffset, segments[segments.length - 1]);
    assert.is(everything.logStartOffset, f.log.logStartOffset);
    assert.ok(!existsSync(join(f.dir, `${segmentBaseName(0)}.log`)));
    await rejection(f.log.read(0, { maxBytes: 100 }), "OFFSET_OUT_OF_RANGE");
    const records = await readAllRecords(f.log);
    assert.is(records[0].offset, f.log.logStartOffset);
    assert.is(records[records.length - 1].offset, 99);
  } finally {
    await f.cleanup();
  }
});

test("time retention stops at the first segment that is young enough", async () => {
  const f = await openTestLog({ segmentBytes: 1000, retentionMs: 10 * DAY_MS });
  try {
    const t0 = f.clock.now();
    await fill(f, 20, { stepMs: DAY_MS }); // batch i (offsets 5i..5i+4) is stamped t0 + i days
    const before = f.log.segmentBaseOffsets();
    const result = await f.log.runRetention();
    assert.ok(result.deletedSegments > 0 && result.deletedSegments < before.length - 1, JSON.stringify(result));
    const horizon = f.clock.now() - 10 * DAY_MS;
    const start = f.log.logStartOffset;
    assert.ok(t0 + (start / 5 - 1) * DAY_MS < horizon, "the newest deleted record was past retention");
    const firstSegment = (await readAllRecords(f.log)).filter((r) => r.offset < f.log.segmentBaseOffsets()[1]);
    assert.ok(Math.max(...firstSegment.map((r) => r.timestamp)) >= horizon, "the oldest kept segment has a record within retention");
  } finally {
    await f.cleanup();
  }
});

test("size retention deletes the oldest segments while the log is over retentionBytes; log start survives reopen", async () => {
  const f = await openTestLog({ segmentBytes: 1000, retentionBytes: 2500, retentionMs: -1 });
  try {
    await fill(f, 30);
    const total = f.log.sizeInBytes;
    const result = await f.log.runRetention();
    assert.ok(result.deletedSegments > 0);
    assert.is(f.log.sizeInBytes, total - result.deletedBytes);
    assert.ok(f.log.sizeInBytes <= 2500 + 1000, `size ${f.log.sizeInBytes}: at most one segment over the limit remains`);
    assert.ok(f.log.sizeInBytes > 2500 - 1000, "no more than needed was deleted");
    const start = f.log.logStartOffset;
    assert.is(start, f.log.segmentBaseOffsets()[0]);
    assert.ok(start > 0);
    assert.ok(readFileSync(join(f.dir, "log-start-offset"), "utf8").includes(String(start)));
    await f.reopen();
    assert.is(f.log.logStartOffset, start);
    assert.is(f.log.logEndOffset, 150);
    assert.is((await readAllRecords(f.log))[0].offset, start);
    assert.is((await f.log.runRetention()).deletedSegments, 0, "retention is stable once under the limit");
  } finally {
    await f.cleanup();
  }
});

test("retention never deletes the active segment, even when it alone breaks the limits", async () => {
  const f = await openTestLog({ retentionBytes: 10, retentionMs: 1 });
  try {
    await fill(f, 3);
    f.clock.advance(DAY_MS);
    assert.is((await f.log.runRetention()).deletedSegments, 0);
    assert.is(f.log.logEndOffset, 15);
    assert.is((await readAllRecords(f.log)).length, 15);
  } finally {
    await f.cleanup();
  }
});

test("a compacted log is not subject to retention", async () => {
  const f = await openTestLog({ segmentBytes: 1000, retentionBytes: 10, retentionMs: 1, cleanupPolicy: "compact" });
  try {
    await fill(f, 10);
    f.clock.advance(DAY_MS);
    assert.is((await f.log.runRetention()).deletedSegments, 0);
  } finally {
    await f.cleanup();
  }
});

test("truncateTo cuts at batch boundaries, inside segments and across them, and appends continue from there", async () => {
  const f = await openTestLog({ segmentBytes: 1000, indexIntervalBytes: 100 });
  try {
    await fill(f, 20); // batches of 5: offsets 0..99
    const segments = f.log.segmentBaseOffsets();
    assert.ok(segments.length > 3);
    await f.log.truncateTo(100);
    assert.is(f.log.logEndOffset, 100, "at the log end: no-op");
    await f.log.truncateTo(87); // inside batch 85..89
    assert.is(f.log.logEndOffset, 85);
    await f.log.truncateTo(segments[2]); // exactly a segment boundary
    assert.is(f.log.logEndOffset, segments[2]);
    assert.equal(f.log.segmentBaseOffsets(), [...segments.slice(0, 2), segments[2]]);
    await f.log.truncateTo(segments[1] + 5); // inside an older, closed segment
    assert.is(f.log.logEndOffset, segments[1] + 5);
    assert.equal(f.log.segmentBaseOffsets(), segments.slice(0, 2));
    const records = await readAllRecords(f.log);
    assert.equal(records.map((r) => r.offset), Array.from({ length: segments[1] + 5 }, (_, i) => i));
    const next = await f.log.append(makeBatch(2), { leaderEpoch: 0 });
    assert.is(next.baseOffset, segments[1] + 5);
    await f.reopen();
    assert.is(f.log.logEndOffset, segments[1] + 7);
    assert.equal((await readAllRecords(f.log)).map((r) => r.offset), Array.from({ length: segments[1] + 7 }, (_, i) => i));
    await f.log.truncateTo(0);
    assert.is(f.log.logEndOffset, 0);
    assert.is(f.log.sizeInBytes, 0);
    assert.is((await f.log.read(0, { maxBytes: 100 })).data.length, 0);
  } finally {
    await f.cleanup();
  }
});

test("truncateFullyAndStartAt empties the log and restarts it at an offset", async () => {
  const f = await openTestLog({ segmentBytes: 1000 });
  try {
    await fill(f, 10, { epoch: 2 });
    await f.log.truncateFullyAndStartAt(500);
    assert.is(f.log.logStartOffset, 500);
    assert.is(f.log.logEndOffset, 500);
    assert.equal(f.log.epochEntries(), []);
    await f.log.appendAsFollower(encodeBatch([{ value: null }], { baseOffset: 500, partitionLeaderEpoch: 3 }));
    await f.reopen();
    assert.is(f.log.logStartOffset, 500);
    assert.is(f.log.logEndOffset, 501);
    assert.equal(f.log.segmentBaseOffsets(), [500]);
    assert.equal(f.log.epochEntries(), [{ epoch: 3, startOffset: 500 }]);
  } finally {
    await f.cleanup();
  }
});

test("endOffsetForEpoch answers OffsetsForLeaderEpoch like Kafka", async () => {
  const f = await openTestLog();
  try {
    assert.equal(f.log.endOffsetForEpoch(0), { epoch: -1, endOffset: -1 }, "no epochs yet");
    await f.log.append(makeBatch(3), { leaderEpoch: 2 }); // 0..2
    await f.log.append(makeBatch(2), { leaderEpoch: 2 }); // 3..4
    await f.log.assignEpochStartOffset(4, 5);
    await f.log.append(makeBatch(4), { leaderEpoch: 4 }); // 5..8
    await f.log.append(makeBatch(1), { leaderEpoch: 7 }); // 9
    assert.is(f.log.latestEpoch, 7);
    assert.equal(f.log.epochEntries(), [{ epoch: 2, startOffset: 0 }, { epoch: 4, startOffset: 5 }, { epoch: 7, startOffset: 9 }]);
    assert.equal(f.log.endOffsetForEpoch(7), { epoch: 7, endOffset: 10 }, "latest epoch: the log end");
    assert.equal(f.log.endOffsetForEpoch(4), { epoch: 4, endOffset: 9 });
    assert.equal(f.log.endOffsetForEpoch(2), { epoch: 2, endOffset: 5 });
    assert.equal(f.log.endOffsetForEpoch(3), { epoch: 2, endOffset: 5 }, "unknown middle epoch: the epoch below it");
    assert.equal(f.log.endOffsetForEpoch(5), { epoch: 4, endOffset: 9 });
    assert.equal(f.log.endOffsetForEpoch(1), { epoch: -1, endOffset: -1 }, "below the earliest epoch");
    assert.equal(f.log.endOffsetForEpoch(8), { epoch: -1, endOffset: -1 }, "above the latest epoch");
    await f.reopen();
    assert.equal(f.log.epochEntries(), [{ epoch: 2, startOffset: 0 }, { epoch: 4, startOffset: 5 }, { epoch: 7, startOffset: 9 }], "checkpoint survives reopen");
    await f.log.truncateTo(9);
    assert.equal(f.log.epochEntries(), [{ epoch: 2, startOffset: 0 }, { epoch: 4, startOffset: 5 }], "truncation drops later epochs");
    assert.equal(f.log.endOffsetForEpoch(4), { epoch: 4, endOffset: 9 });
    await f.log.truncateTo(6);
    assert.is(f.log.logEndOffset, 5, "batch 5..8 holds offset 6 and goes whole");
    assert.equal(f.log.epochEntries(), [{ epoch: 2, startOffset: 0 }], "epoch 4 has no record left");
    assert.equal(f.log.endOffsetForEpoch(2), { epoch: 2, endOffset: 5 });
    await rejection(f.log.assignEpochStartOffset(9, 100), "INVALID_REQUEST");
  } finally {
    await f.cleanup();
  }
});

test("the epoch cache follows the log start forward and is rebuilt from the log when its checkpoint is lost", async () => {
  const f = await openTestLog({ segmentBytes: 600, retentionBytes: 0, retentionMs: -1 });
  try {
    for (let epoch = 1; epoch <= 6; epoch++) await fill(f, 2, { epoch });
    const entries = f.log.epochEntries();
    assert.is(entries.length, 6);
    await f.log.runRetention();
    const start = f.log.logStartOffset;
    const kept = f.log.epochEntries();
    assert.is(kept[0].startOffset, start);
    assert.ok(kept.every((e, i) => i === 0 || e.startOffset > start));
    assert.is(kept[kept.length - 1].epoch, 6);
    await f.log.close();
    const { writeFileSync } = await import("node:fs");
    writeFileSync(join(f.dir, "leader-epoch-checkpoint"), "garbage\n");
    await f.reopen();
    assert.ok(f.logger.warnings.some((w) => w.includes("leader-epoch-checkpoint")), f.logger.warnings.join("\n"));
    assert.equal(f.log.epochEntries().map((e) => e.epoch), kept.map((e) => e.epoch));
    assert.equal(f.log.epochEntries().slice(1), kept.slice(1));
  } finally {
    await f.cleanup();
  }
});

test("an epoch assigned with no records is dropped on reopen (Kafka semantics), a recorded one is not", async () => {
  const f = await openTestLog();
  try {
    await f.log.append(makeBatch(2), { leaderEpoch: 1 });
    await f.log.assignEpochStartOffset(2, 2);
    assert.is(f.log.latestEpoch, 2);
    await f.reopen();
    assert.is(f.log.latestEpoch, 1);
    assert.equal(batchesIn((await f.log.read(0, { maxBytes: 1000 })).data).length, 1);
  } finally {
    await f.cleanup();
  }
});

async function waitFor(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

test("background tasks apply retention, compaction and flushMs on their own", async () => {
  const retained = await openTestLog({ segmentBytes: 1000, retentionMs: DAY_MS, retentionCheckIntervalMs: 10 });
  const compacted = await openTestLog({ cleanupPolicy: "compact", segmentBytes: 300, compactionCheckIntervalMs: 10 });
  const flushed = await openTestLog({ flushMs: 10 });
  try {
    await fill(retained, 10);
    retained.log.startBackgroundTasks();
    retained.clock.advance(2 * DAY_MS);
    await waitFor(() => retained.log.segmentCount === 1, "retention");
    assert.ok(retained.log.logStartOffset > 0);

    for (let i = 0; i < 20; i++) await compacted.log.append(encodeBatch([{ key: Buffer.from("same"), value: Buffer.from(`v${i}`.repeat(20)) }]), { leaderEpoch: 0 });
    compacted.log.startBackgroundTasks();
    await waitFor(async () => (await readAllRecords(compacted.log)).length < 10, "background compaction");
    assert.is(text((await readAllRecords(compacted.log)).pop()!.value), "v19".repeat(20));

    const checkpoint = () => readFileSync(join(flushed.dir, "recovery-point-offset"), "utf8");
    await flushed.log.append(makeBatch(3), { leaderEpoch: 0 });
    flushed.log.startBackgroundTasks();
    flushed.clock.advance(11);
    await waitFor(() => existsSync(join(flushed.dir, "recovery-point-offset")) && checkpoint().trim().endsWith("\n3"), "flushMs");
  } finally {
    await retained.cleanup();
    await compacted.cleanup();
    await flushed.cleanup();
  }
});

test("flush() and flushMessages fsync appends; flush() records the recovery point", async () => {
  const f = await openTestLog({ flushMessages: 1, segmentBytes: 1000 });
  try {
    await fill(f, 12);
    assert.ok(f.log.segmentCount > 1);
    await f.log.flush();
    assert.is(readFileSync(join(f.dir, "recovery-point-offset"), "utf8"), "0\n1\n60\n");
    await f.log.truncateTo(10);
    assert.is(readFileSync(join(f.dir, "recovery-point-offset"), "utf8"), "0\n1\n10\n", "truncation lowers it at once");
  } finally {
    await f.cleanup();
  }
});

test.run();
