// Which worker thread of a node hosts an address: FNV-1a of the address modulo the worker
// count. Deterministic, so any process that knows a node's worker count can tell where an
// actor of that node lives, and can name an actor that lands on a chosen worker.

/** Worker index for an address on a node with `workers` workers (FNV-1a of the address). */
export function placementOf(address: string, workers: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < address.length; i++) h = Math.imul(h ^ address.charCodeAt(i), 0x01000193);
  return (h >>> 0) % workers;
}

const pinned = new Map<string, string>();

/**
 * The address `<kind>/<worker>.<salt>@<node>` with the smallest salt that places it on
 * `worker` of `workers`: a per-worker actor (one on each worker thread of a node) that both
 * the node and its peers can name. About `workers` tries, memoized.
 */
export function workerPinnedAddress(kind: string, worker: number, node: string, workers: number): string {
  const key = `${kind}|${worker}|${node}|${workers}`;
  let address = pinned.get(key);
  if (address === undefined) {
    if (!Number.isInteger(worker) || worker < 0 || worker >= workers) throw new RangeError(`worker ${worker} is not one of ${workers}`);
    for (let salt = 0; ; salt++) {
      const candidate = `${kind}/${worker}.${salt}@${node}`;
      if (placementOf(candidate, workers) === worker) {
        address = candidate;
        break;
      }
    }
    pinned.set(key, address);
  }
  return address;
}
