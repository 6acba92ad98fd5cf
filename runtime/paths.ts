// Locates sibling bundles (the worker entry) from wherever the calling bundle was built to:
// dist/, dist/test/ or dist/bench/.

import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { findNearBundle } from "../protocol/bundle-files.js";

export function workerBundlePath(): string {
  const override = process.env.SKEIN_WORKER_BUNDLE;
  if (override) return override;
  return findUp("worker.js");
}

/** Path of the built CLI (dist/skein.js). */
export function cliBundlePath(): string {
  return findUp("skein.js");
}

/**
 * Path of another top-level bundle in dist/, e.g. "actors.js" (a module workers load actors
 * from). Top-level bundles sit next to the CLI bundle; looking next to it first keeps a
 * same-named bundle deeper in dist/ (dist/bench/actors.js is the actor benchmark) from being
 * picked up by code bundled into dist/bench/….
 */
export function bundlePath(file: string): string {
  const beside = join(dirname(findUp("skein.js")), file);
  return existsSync(beside) ? beside : findUp(file);
}

function findUp(file: string): string {
  const found = findNearBundle(file);
  if (found === null) throw new Error(`cannot find the ${file} bundle near ${fileURLToPath(import.meta.url)}; run "npm run build" first`);
  return found;
}
