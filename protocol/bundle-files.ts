// Finds a file that ships next to the built bundles (dist/), from whichever bundle this code
// was built into: dist/, dist/test/ or dist/bench/ (or the source tree, one level below the
// repository). Pure lookup, no other I/O.

import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** `file` (a path relative to dist/, e.g. "worker.js" or "native/crc32c.node") near this bundle, or null. */
export function findNearBundle(file: string): string | null {
  let dir: string;
  try {
    dir = dirname(fileURLToPath(import.meta.url));
  } catch {
    return null; // not loaded from a file (e.g. a data: URL)
  }
  for (let i = 0; i < 6; i++) {
    for (const candidate of [join(dir, file), join(dir, "dist", file)]) if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  return null;
}
