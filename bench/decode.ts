// The consumer facade's decoding (actors/client/decode.ts) on its own: a 4 MiB fetched chunk
// of 100-byte records, as the consume benchmark's consumer gets it (maxBytesPerPartition 4 MiB,
// batches as the producer writes them), split into eachBatch slices and decoded slice by slice
// the way consumer.run() does, garbage collection included. Prints ns of CPU per record (the
// process's user + system time, so GC threads count) and the wall-clock rate, best and median
// of the rounds. Compare two builds by running each back to back:
//   node scripts/build.mjs && node dist/bench/decode.js [rounds, default 15]
import { encodeBatch, type RecordInput } from "../protocol/record-batch.js";
import { decodeChunkMessages, EACH_BATCH_MAX_BYTES, splitChunk } from "../actors/client/decode.js";

const CHUNK_BYTES = 4 * 1024 * 1024;
const VALUE_BYTES = 100;
/** Records per batch: the consume benchmark's producer sends 1,000 records over 6 partitions. */
const RECORDS_PER_BATCH = 170;
const ROUND_RECORDS = 2_000_000;
const rounds = Number(process.argv[2] ?? 15);

interface Shape {
  name: string;
  record: (i: number) => RecordInput;
}

const value = new Uint8Array(VALUE_BYTES).map((_, j) => j & 0xff);
const shapes: Shape[] = [
  { name: "100 B value, null key", record: () => ({ value }) },
  { name: "100 B value, 8 B key", record: (i) => ({ key: new TextEncoder().encode(`k${String(i).padStart(7, "0")}`), value }) },
  { name: "100 B value, 2 headers", record: () => ({ value, headers: [{ key: "trace", value: new Uint8Array(16) }, { key: "kind", value: null }] }) },
];

/** Whole batches of `shape` up to CHUNK_BYTES, consecutive offsets from 0, one timestamp per batch. */
function makeChunk(shape: Shape): { data: Uint8Array; records: number } {
  const batches: Uint8Array[] = [];
  let bytes = 0;
  let offset = 0;
  for (;;) {
    const records = Array.from({ length: RECORDS_PER_BATCH }, (_, i) => shape.record(offset + i));
    const batch = encodeBatch(records, { baseOffset: offset, timestamp: 1_700_000_000_000 + offset });
    if (bytes + batch.length > CHUNK_BYTES) break;
    batches.push(batch);
    bytes += batch.length;
    offset += RECORDS_PER_BATCH;
  }
  const data = new Uint8Array(bytes);
  let pos = 0;
  for (const b of batches) {
    data.set(b, pos);
    pos += b.length;
  }
  return { data, records: offset };
}

let sink = 0;

/**
 * One chunk as run() handles it: slices, each decoded just before its (here trivial) handler.
 * The chunk is first copied into an ArrayBuffer of its own, as each poll reply arrives in one
 * (transferred from the consumer's worker): its messages keep it alive, which is external
 * memory to the garbage collector.
 */
function consumeChunk(chunk: Uint8Array): void {
  const data = new Uint8Array(new ArrayBuffer(chunk.length));
  data.set(chunk);
  for (const slice of splitChunk(data, EACH_BATCH_MAX_BYTES)) {
    const messages = decodeChunkMessages(slice, 0);
    sink += messages.length + (messages[messages.length - 1].value as Buffer).length;
  }
}

function cpuNs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

for (const shape of shapes) {
  const { data, records } = makeChunk(shape);
  const chunksPerRound = Math.ceil(ROUND_RECORDS / records);
  for (let i = 0; i < chunksPerRound; i++) consumeChunk(data); // warm up the JIT
  const cpu: number[] = [];
  const rate: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const cpu0 = cpuNs();
    const t0 = performance.now();
    for (let i = 0; i < chunksPerRound; i++) consumeChunk(data);
    const ms = performance.now() - t0;
    cpu.push((cpuNs() - cpu0) / (chunksPerRound * records));
    rate.push((chunksPerRound * records) / (ms / 1000));
  }
  console.log(
    `${shape.name.padEnd(24)} CPU ns/rec best ${Math.min(...cpu).toFixed(0).padStart(4)} median ${median(cpu).toFixed(0).padStart(4)}` +
      `   M rec/s best ${(Math.max(...rate) / 1e6).toFixed(2)} median ${(median(rate) / 1e6).toFixed(2)}`,
  );
}
if (sink === 0) console.log("unreachable");
