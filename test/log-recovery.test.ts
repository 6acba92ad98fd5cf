// Partition log recovery: a torn or damaged tail is cut and never served, everything written
// before the damage survives, indexes are rebuilt, a damaged flushed segment fails the open.
import { test } from "uvu";
import * as assert from "uvu/assert";
import fc from "fast-check";
import { existsSync, readFileSync, readdirSync, rmSync, truncateSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PartitionLog, segmentBaseName } from "../actors/log/mod.js";
import { makeBatch, openTestLog, readAllRecords, recordingLogger, rejection, testClock, text, type LogFixture } from "./log-helpers.js";

interface WrittenBatch {
  baseOffset: number;
  lastOffset: number;
  values: string[];
}

/** A log of several segments with varied batches and three leader epochs, closed cleanly. */
async function buildLog(): Promise<{ f: LogFixture; batches: WrittenBatch[]; snapshot: Map<string, Buffer> }> {
  const f = await openTestLog({ segmentBytes: 4000, indexIntervalBytes: 256 });
  const batches: WrittenBatch[] = [];
  for (let i = 0; i < 60; i++) {
    const count = 1 + (i % 5);
    const batch = makeBatch(count, { first: i * 10, valueBytes: 10 + ((i * 37) % 90) });
    const r = await f.log.append(batch, { leaderEpoch: i < 20 ? 0 : i < 50 ? 1 : 2 });
    const values = (await readAllRecords(f.log, { from: r.baseOffset })).map((rec) => text(rec.value)!);
    batches.push({ baseOffset: r.baseOffset, lastOffset: r.lastOffset, values });
  }
  await f.log.close();
  return { f, batches, snapshot: snapshotDir(f.dir) };
}

function snapshotDir(dir: string): Map<string, Buffer> {
  return new Map(readdirSync(dir).map((name) => [name, readFileSync(join(dir, name))]));
}

function restoreDir(dir: string, snapshot: Map<string, Buffer>): void {
  for (const name of readdirSync(dir)) if (!snapshot.has(name)) rmSync(join(dir, name));
  for (const [name, bytes] of snapshot) writeFileSync(join(dir, name), bytes);
}

function logFiles(snapshot: Map<string, Buffer>): string[] {
  return [...snapshot.keys()].filter((n) => n.endsWith(".log")).sort();
}

/** Start positions in the active segment file of the batches it holds. */
function activeLayout(batches: WrittenBatch[], snapshot: Map<string, Buffer>): { file: string; base: number; starts: { position: number; batch: WrittenBatch }[] } {
  const file = logFiles(snapshot).pop()!;
  const base = Number(file.slice(0, 20));
  const bytes = snapshot.get(file)!;
  const starts: { position: number; batch: WrittenBatch }[] = [];
  let position = 0;
  for (const batch of batches.filter((b) => b.baseOffset >= base)) {
    starts.push({ position, batch });
    position += 12 + bytes.readInt32BE(position + 8);
  }
  assert.is(position, bytes.length);
  return { file, base, starts };
}

/** Opens the damaged log, checks it serves exactly the batches before `firstLost`, then reopens to check idempotence. */
async function expectRecovered(f: LogFixture, batches: WrittenBatch[], firstLost: number, expectWarning: boolean): Promise<void> {
  const logger = recordingLogger();
  let log = await PartitionLog.open(f.dir, { segmentBytes: 4000, indexIntervalBytes: 256 }, { logger, clock: testClock() });
  try {
    assert.is(log.logEndOffset, firstLost);
    const served = await readAllRecords(log);
    const expected = batches.filter((b) => b.lastOffset < firstLost).flatMap((b) => b.values);
    assert.equal(served.map((r) => text(r.value)), expected);
    assert.equal(served.map((r) => r.offset), expected.map((_, i) => i));
    assert.is(logger.warnings.some((w) => w.includes("recovery: cut")), expectWarning, logger.warnings.join("\n"));
    await log.close();
    const again = recordingLogger();
    log = await PartitionLog.open(f.dir, { segmentBytes: 4000, indexIntervalBytes: 256 }, { logger: again, clock: testClock() });
    assert.is(log.logEndOffset, firstLost);
    assert.equal(again.warnings, [], "a second open finds nothing to repair");
    const next = await log.append(makeBatch(2), { leaderEpoch: 3 });
    assert.is(next.baseOffset, firstLost);
  } finally {
    await log.close();
  }
}

test("cutting the active segment at any byte loses only the batches not wholly written", async () => {
  const { f, batches, snapshot } = await buildLog();
  try {
    const { file, starts } = activeLayout(batches, snapshot);
    const size = snapshot.get(file)!.length;
    const check = async (cut: number) => {
      restoreDir(f.dir, snapshot);
      truncateSync(join(f.dir, file), cut);
      const lost = starts.find((_, i) => (starts[i + 1]?.position ?? size) > cut);
      const atBoundary = lost === undefined || lost.position === cut;
      await expectRecovered(f, batches, lost?.batch.baseOffset ?? batches[batches.length - 1].lastOffset + 1, !atBoundary);
    };
    for (const s of starts) for (const cut of [s.position - 1, s.position, s.position + 1, s.position + 11, s.position + 12, s.position + 61]) if (cut >= 0 && cut <= size) await check(cut);
    await check(size);
    await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: size }), check), { numRuns: 60 });
  } finally {
    await f.cleanup();
  }
});

test("a flipped byte in the unflushed tail cuts that batch and everything after it", async () => {
  const { f, batches, snapshot } = await buildLog();
  try {
    const { file, starts } = activeLayout(batches, snapshot);
    const bytes = snapshot.get(file)!;
    // As after a crash: only the last 6 batches were written after the last fsync.
    const unflushed = starts[Math.max(0, starts.length - 6)];
    snapshot.set("recovery-point-offset", Buffer.from(`0\n1\n${unflushed.batch.baseOffset}\n`));
    const check = async (position: number, mask: number) => {
      restoreDir(f.dir, snapshot);
      const damaged = Buffer.from(bytes);
      damaged[position] ^= mask;
      writeFileSync(join(f.dir, file), damaged);
      const hit = [...starts].reverse().find((s) => s.position <= position)!;
      await expectRecovered(f, batches, hit.batch.baseOffset, true);
    };
    // Every header field of the last batch, including the ones the CRC does not cover.
    const last = starts[starts.length - 1].position;
    for (let p = last; p < last + 61; p++) await check(p, 0x01);
    await fc.assert(fc.asyncProperty(fc.integer({ min: unflushed.position, max: bytes.length - 1 }), fc.integer({ min: 1, max: 255 }), check), { numRuns: 60 });
  } finally {
    await f.cleanup();
  }
});

test("deleted or garbled indexes are rebuilt byte for byte and reads stay correct", async () => {
  const { f, batches, snapshot } = await buildLog();
  try {
    const indexes = [...snapshot.keys()].filter((n) => n.endsWith("index"));
    assert.ok(indexes.length >= 6);
    const end = batches[batches.length - 1].lastOffset + 1;
    const all = batches.flatMap((b) => b.values);
    for (const damage of ["delete", "garbage", "zeros", "shifted"] as const) {
      restoreDir(f.dir, snapshot);
      for (const name of indexes) {
        const p = join(f.dir, name);
        const original = snapshot.get(name)!;
        if (damage === "delete") unlinkSync(p);
        else if (damage === "garbage") writeFileSync(p, Buffer.from(original.map((_, i) => (i * 7919 + 13) & 0xff)));
        else if (damage === "zeros") writeFileSync(p, Buffer.alloc(original.length));
        else writeFileSync(p, Buffer.concat([original.subarray(0, 8), original.subarray(16), Buffer.alloc(8, 1)]));
      }
      const log = await PartitionLog.open(f.dir, { segmentBytes: 4000, indexIntervalBytes: 256 }, { logger: recordingLogger(), clock: testClock() });
      try {
        assert.is(log.logEndOffset, end, damage);
        for (let offset = 0; offset < end; offset += 3) {
          const records = await readAllRecords(log, { from: offset, maxBytes: 1 });
          assert.is(text(records[0].value), all[offset], `${damage}: offset ${offset}`);
        }
        assert.is(await log.offsetForTime(0), 0);
      } finally {
        await log.close();
      }
      for (const name of indexes) assert.ok(readFileSync(join(f.dir, name)).equals(snapshot.get(name)!), `${damage}: ${name} rebuilt identically`);
    }
  } finally {
    await f.cleanup();
  }
});

test("reopening a cleanly closed log changes nothing on disk", async () => {
  const { f, batches, snapshot } = await buildLog();
  try {
    for (let i = 0; i < 3; i++) {
      const logger = recordingLogger();
      const log = await PartitionLog.open(f.dir, { segmentBytes: 4000, indexIntervalBytes: 256 }, { logger, clock: testClock() });
      assert.is(log.logEndOffset, batches[batches.length - 1].lastOffset + 1);
      assert.equal(log.epochEntries(), [{ epoch: 0, startOffset: 0 }, { epoch: 1, startOffset: batches[20].baseOffset }, { epoch: 2, startOffset: batches[50].baseOffset }]);
      await log.close();
      assert.equal(logger.warnings, []);
      const now = snapshotDir(f.dir);
      assert.equal([...now.keys()].sort(), [...snapshot.keys()].sort());
      for (const [name, bytes] of now) assert.ok(bytes.equals(snapshot.get(name)!), `${name} changed`);
    }
  } finally {
    await f.cleanup();
  }
});

test("damage inside a flushed closed segment fails the open with KAFKA_STORAGE_ERROR naming the file", async () => {
  const { f, snapshot } = await buildLog();
  try {
    const closed = logFiles(snapshot)[1];
    const bytes = snapshot.get(closed)!;
    // The last batch of a closed segment is always checked.
    restoreDir(f.dir, snapshot);
    const tail = Buffer.from(bytes);
    tail[tail.length - 3] ^= 0x10;
    writeFileSync(join(f.dir, closed), tail);
    const e1 = await rejection(PartitionLog.open(f.dir, {}, { logger: recordingLogger() }), "KAFKA_STORAGE_ERROR");
    assert.ok(e1.message.includes(closed), e1.message);
    assert.is(e1.context.file, join(f.dir, closed));
    // Without its index the whole segment is scanned, so damage in the middle is found too.
    restoreDir(f.dir, snapshot);
    const middle = Buffer.from(bytes);
    middle[Math.floor(middle.length / 2)] ^= 0x10;
    writeFileSync(join(f.dir, closed), middle);
    unlinkSync(join(f.dir, closed.replace(".log", ".index")));
    const e2 = await rejection(PartitionLog.open(f.dir, {}, { logger: recordingLogger() }), "KAFKA_STORAGE_ERROR");
    assert.ok(e2.message.includes(closed) && e2.message.includes("offline"), e2.message);
    assert.ok(typeof e2.context.position === "number" && typeof e2.context.offset === "number");
    // A torn closed segment is no better.
    restoreDir(f.dir, snapshot);
    truncateSync(join(f.dir, closed), bytes.length - 1);
    await rejection(PartitionLog.open(f.dir, {}, { logger: recordingLogger() }), "KAFKA_STORAGE_ERROR");
  } finally {
    await f.cleanup();
  }
});

test("after an unclean shutdown, a torn segment past the recovery point is cut and later segments dropped", async () => {
  const { f, batches, snapshot } = await buildLog();
  try {
    const files = logFiles(snapshot);
    const torn = files[1];
    restoreDir(f.dir, snapshot);
    writeFileSync(join(f.dir, "recovery-point-offset"), "0\n1\n0\n");
    truncateSync(join(f.dir, torn), snapshot.get(torn)!.length - 5);
    const logger = recordingLogger();
    const log = await PartitionLog.open(f.dir, { segmentBytes: 4000, indexIntervalBytes: 256 }, { logger, clock: testClock() });
    try {
      const nextBase = Number(files[2].slice(0, 20));
      const lostBatch = batches.filter((b) => b.lastOffset < nextBase).pop()!;
      assert.is(log.logEndOffset, lostBatch.baseOffset);
      assert.equal(log.segmentBaseOffsets(), files.slice(0, 2).map((n) => Number(n.slice(0, 20))));
      assert.ok(!existsSync(join(f.dir, files[2])));
      assert.ok(logger.warnings.some((w) => w.includes("deleting segment")), logger.warnings.join("\n"));
      assert.equal((await readAllRecords(log)).map((r) => text(r.value)), batches.filter((b) => b.lastOffset < lostBatch.baseOffset).flatMap((b) => b.values));
      assert.is(log.latestEpoch, 1, "epochs past the cut are gone");
    } finally {
      await log.close();
    }
  } finally {
    await f.cleanup();
  }
});

test("leftovers of interrupted compaction, deletion and checkpoint writes are removed on open", async () => {
  const f = await openTestLog();
  try {
    await f.log.append(makeBatch(3), { leaderEpoch: 0 });
    await f.log.close();
    const base = segmentBaseName(0);
    for (const name of [`${base}.log.cleaned`, `${base}.index.cleaned`, `${segmentBaseName(7)}.log.deleted`, "leader-epoch-checkpoint.tmp", `${segmentBaseName(9)}.index`]) {
      writeFileSync(join(f.dir, name), "junk");
    }
    const log = await PartitionLog.open(f.dir, {}, { logger: recordingLogger() });
    try {
      assert.equal(readdirSync(f.dir).filter((n) => /cleaned|deleted|tmp|0009\.index/.test(n)), []);
      assert.is((await readAllRecords(log)).length, 3);
    } finally {
      await log.close();
    }
  } finally {
    await f.cleanup();
  }
});

test.run();
