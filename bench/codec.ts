// Record batch codec throughput: 100-byte values with 16-byte keys, packed into ~16 KB
// batches, the shape of a busy producer. Prints MB/s (batch bytes) and records/s for encode,
// verify (CRC only) and verify + decode.
//   node scripts/build.mjs && node dist/bench/codec.js [seconds per case, default 2]
import { decodeRecords, encodeBatch, type RecordInput, verifyBatch } from "../protocol/record-batch.js";

const VALUE_BYTES = 100;
const KEY_BYTES = 16;
const TARGET_BATCH_BYTES = 16 * 1024;
const secondsPerCase = Number(process.argv[2] ?? 2);

function makeRecords(): RecordInput[] {
  const perRecord = VALUE_BYTES + KEY_BYTES + 12; // + record framing, roughly
  const count = Math.floor((TARGET_BATCH_BYTES - 61) / perRecord);
  return Array.from({ length: count }, (_, i) => ({
    key: new Uint8Array(KEY_BYTES).fill(i & 0xff),
    value: new Uint8Array(VALUE_BYTES).map((_, j) => (i * 31 + j) & 0xff),
  }));
}

function measure(name: string, batchBytes: number, recordsPerBatch: number, op: () => void): void {
  for (let i = 0; i < 2000; i++) op(); // warm up the JIT
  let iterations = 0;
  const started = performance.now();
  const deadline = started + secondsPerCase * 1000;
  let now = started;
  while (now < deadline) {
    for (let i = 0; i < 200; i++) op();
    iterations += 200;
    now = performance.now();
  }
  const seconds = (now - started) / 1000;
  const mbPerSec = (iterations * batchBytes) / seconds / 1e6;
  const recordsPerSec = (iterations * recordsPerBatch) / seconds;
  console.log(
    `${name.padEnd(18)} ${mbPerSec.toFixed(0).padStart(6)} MB/s  ${(recordsPerSec / 1e6).toFixed(2).padStart(6)} M records/s`,
  );
}

const records = makeRecords();
const batch = encodeBatch(records, { timestamp: Date.now() });
console.log(`batch: ${records.length} records of ${VALUE_BYTES} B (+${KEY_BYTES} B key), ${batch.length} bytes`);
let sink = 0;
measure("encode", batch.length, records.length, () => {
  sink += encodeBatch(records, { timestamp: 1_700_000_000_000 }).length;
});
measure("verify (CRC)", batch.length, records.length, () => {
  sink += verifyBatch(batch).recordCount;
});
measure("verify + decode", batch.length, records.length, () => {
  verifyBatch(batch);
  sink += decodeRecords(batch).length;
});
if (sink === 0) console.log("unreachable");
