// CRC32C: the native three-chain implementation (native/crc32c.c) must agree with
// @node-rs/crc32 bit for bit, for every length, alignment and initial value, and it must be
// the one in use wherever it can be built (x86-64 with a C compiler), or the fast path would
// silently never run.
import { crc32c as library } from "@node-rs/crc32";
import * as fc from "fast-check";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { crc32c, crc32cImplementation } from "../protocol/crc32c.js";

const canBuild = process.arch === "x64" && spawnSync("cc", ["--version"]).status === 0 && process.env.SKEIN_CRC32C !== "js" && process.env.SKEIN_NO_NATIVE !== "1";

test("the native implementation is in use where it can be built", () => {
  console.log(`  crc32c implementation: ${crc32cImplementation}`);
  if (canBuild) assert.is(crc32cImplementation, "native", "dist/native/crc32c.node was built and loaded (npm run build)");
  else assert.is(crc32cImplementation, "@node-rs/crc32");
});

test("check value and empty input", () => {
  assert.is(crc32c(new TextEncoder().encode("123456789")), 0xe3069283);
  assert.is(crc32c(new Uint8Array(0)), 0);
  assert.is(crc32c(new Uint8Array(0), 0x12345678), 0x12345678);
});

test("agrees with @node-rs/crc32 around every block boundary (256 B and 8 KiB chains)", () => {
  const data = randomBytes(3 * 8192 * 2 + 100);
  const sizes = new Set<number>();
  for (const edge of [0, 768, 3 * 8192, 2 * 3 * 8192]) for (let d = -9; d <= 9; d++) if (edge + d >= 0) sizes.add(edge + d);
  for (const size of sizes) {
    for (const offset of [0, 1, 3, 7]) {
      const view = data.subarray(offset, offset + size);
      assert.is(crc32c(view), library(view), `size ${size} offset ${offset}`);
    }
  }
});

test("agrees with @node-rs/crc32 on random data, lengths, offsets and initial values (property)", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 100_000 }), fc.nat(16), fc.integer({ min: 0, max: 0xffffffff }), (bytes, cut, initial) => {
      const view = bytes.subarray(Math.min(cut, bytes.length));
      return crc32c(view, initial) === library(view, initial) && crc32c(view) === library(view);
    }),
    { numRuns: 500 },
  );
});

test("continuing a checksum equals checksumming the concatenation", () => {
  const a = randomBytes(50_000);
  const b = randomBytes(70_001);
  assert.is(crc32c(b, crc32c(a)), crc32c(Buffer.concat([a, b])));
});

test("bad arguments throw, not crash", () => {
  const loose = crc32c as unknown as (x: unknown, i?: unknown) => number;
  assert.throws(() => loose(new Uint16Array(4)));
  if (crc32cImplementation === "native") {
    // (@node-rs/crc32 also accepts strings; the addon takes bytes only)
    assert.throws(() => loose("text"), (e: Error) => e instanceof TypeError);
    assert.throws(() => loose(new Uint8Array(1), "0"), (e: Error) => e instanceof TypeError);
  }
});

test.run();
