// Kafka's default partitioner hash (org.apache.kafka.common.utils.Utils.murmur2), bit for bit,
// so a key lands on the same partition whether it is produced through Skein or a Kafka client.
// Java ints wrap at 32 bits: Math.imul for the multiplications, `| 0` after every xor/add,
// `>>>` where Java uses `>>>`.

import { ErrorCode, SkeinError } from "./errors.js";

const SEED = 0x9747b28c;
const M = 0x5bd1e995;
const R = 24;

/**
 * The signed 32-bit murmur2 hash of `bytes` (or of its `length` bytes from `offset`: a key
 * inside a larger buffer needs no view of its own), as Java's Utils.murmur2 returns it.
 */
export function murmur2(bytes: Uint8Array, offset = 0, length = bytes.length - offset): number {
  let h = (SEED ^ length) | 0;
  const tail = offset + (length & ~3);
  for (let i = offset; i < tail; i += 4) {
    let k = bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24);
    k = Math.imul(k, M);
    k ^= k >>> R;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  const rest = length & 3;
  if (rest === 3) h ^= bytes[tail + 2] << 16;
  if (rest >= 2) h ^= bytes[tail + 1] << 8;
  if (rest >= 1) h = Math.imul(h ^ bytes[tail], M);
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/** Kafka's partition for a keyed record: toPositive(murmur2(key)) % numPartitions. */
export function partitionForKey(key: Uint8Array, numPartitions: number, offset = 0, length = key.length - offset): number {
  if (!Number.isInteger(numPartitions) || numPartitions <= 0) {
    throw new SkeinError(ErrorCode.INVALID_PARTITIONS, `numPartitions must be a positive integer, got ${numPartitions}`);
  }
  return (murmur2(key, offset, length) & 0x7fffffff) % numPartitions;
}
