// CRC32C for record batches: the native three-chain SSE4.2 implementation built from
// native/crc32c.c when it is present and loads (measured ~12–16 GB/s on 16 KiB–1 MiB here),
// otherwise @node-rs/crc32 (~3–4 GB/s). Both have the same contract: crc32c(data, initial = 0).
// SKEIN_CRC32C=js forces the library (to compare, or if the native file misbehaves).

import { crc32c as libraryCrc32c } from "@node-rs/crc32";
import { createRequire } from "node:module";
import { findNearBundle } from "./bundle-files.js";

type Crc32c = (data: Uint8Array, initial?: number) => number;

function findNative(): string | null {
  return process.env.SKEIN_CRC32C_NATIVE || findNearBundle("native/crc32c.node");
}

function load(): { crc32c: Crc32c; implementation: "native" | "@node-rs/crc32" } {
  if (process.env.SKEIN_CRC32C === "js") return { crc32c: libraryCrc32c, implementation: "@node-rs/crc32" };
  const path = findNative();
  if (path) {
    try {
      const addon = createRequire(import.meta.url)(path) as { crc32c: Crc32c; hardware: boolean };
      // Guard against a broken build: the standard check value of "123456789".
      const check = new TextEncoder().encode("123456789");
      if (addon.hardware && addon.crc32c(check) === 0xe3069283) return { crc32c: addon.crc32c, implementation: "native" };
    } catch {
      // not loadable here (another platform, Deno without --allow-ffi, …): use the library
    }
  }
  return { crc32c: libraryCrc32c, implementation: "@node-rs/crc32" };
}

const loaded = load();

/** CRC32C (Castagnoli) of `data`, continuing from `initial` (0 for a fresh checksum). */
export const crc32c: Crc32c = loaded.crc32c;
/** Which implementation `crc32c` is: "native" (dist/native/crc32c.node) or "@node-rs/crc32". */
export const crc32cImplementation = loaded.implementation;
