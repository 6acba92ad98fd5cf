// Batch frames (protocol/envelope-batch.ts): round trip, and every way a frame can fail to add up.
import { test } from "uvu";
import * as assert from "uvu/assert";
import fc from "fast-check";
import { decodeEnvelope, encodeEnvelope, EnvelopeKind, ENVELOPE_VERSION } from "../protocol/envelope.js";
import { BATCH_FRAME_MARKER, batchFrameBytes, encodeBatchFrame, isBatchFrame, MAX_BATCH_ENVELOPES, splitBatchFrame } from "../protocol/envelope-batch.js";
import { ErrorCode, isSkeinError } from "../protocol/errors.js";

test("envelopes survive a frame in order, byte for byte (property)", () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 50 }), (parts) => {
      const frame = encodeBatchFrame(parts);
      assert.is(frame.length, batchFrameBytes(parts.length, parts.reduce((a, p) => a + p.length, 0)));
      assert.ok(isBatchFrame(frame));
      assert.equal(splitBatchFrame(frame).map((p) => [...p]), parts.map((p) => [...p]));
    }),
  );
});

test("a frame is told from a plain envelope by its first byte", () => {
  const env = encodeEnvelope(EnvelopeKind.MESSAGE, "Add", { n: 1 });
  assert.is(env[0], ENVELOPE_VERSION);
  assert.not.ok(isBatchFrame(env));
  assert.not.ok(isBatchFrame(new Uint8Array(0)));
  const frame = encodeBatchFrame([env, env]);
  assert.is(frame[0], BATCH_FRAME_MARKER);
  assert.equal(splitBatchFrame(frame).map((e) => decodeEnvelope(e)), [
    { kind: EnvelopeKind.MESSAGE, type: "Add", body: { n: 1 } },
    { kind: EnvelopeKind.MESSAGE, type: "Add", body: { n: 1 } },
  ]);
});

test("binary fields of framed envelopes are views into the frame, not copies", () => {
  const frame = encodeBatchFrame([encodeEnvelope(EnvelopeKind.MESSAGE, "Data", { payload: new Uint8Array([1, 2, 3]) })]);
  const body = decodeEnvelope(splitBatchFrame(frame)[0]).body as { payload: Uint8Array };
  assert.equal([...body.payload], [1, 2, 3]);
  assert.is(body.payload.buffer, frame.buffer);
});

test("the envelope count is bounded on both ends", () => {
  assert.throws(() => encodeBatchFrame([]));
  assert.throws(() => encodeBatchFrame(new Array(MAX_BATCH_ENVELOPES + 1).fill(new Uint8Array(1))));
  assert.is(splitBatchFrame(encodeBatchFrame(new Array(MAX_BATCH_ENVELOPES).fill(new Uint8Array(1)))).length, MAX_BATCH_ENVELOPES);
});

test("a frame that does not add up is CORRUPT_MESSAGE as a whole", () => {
  const good = encodeBatchFrame([new Uint8Array([1, 2, 3]), new Uint8Array([4, 5])]);
  const withCount = (n: number) => {
    const f = good.slice();
    new DataView(f.buffer).setUint32(1, n);
    return f;
  };
  const withFirstLength = (n: number) => {
    const f = good.slice();
    new DataView(f.buffer).setUint32(5, n);
    return f;
  };
  const bad: Array<[string, Uint8Array]> = [
    ["too short for a header", good.subarray(0, 4)],
    ["wrong marker", Uint8Array.of(ENVELOPE_VERSION, ...good.subarray(1))],
    ["no envelopes", withCount(0)],
    ["too many envelopes", withCount(MAX_BATCH_ENVELOPES + 1)],
    ["more envelopes than bytes", withCount(3)],
    ["fewer envelopes than bytes (trailing bytes)", withCount(1)],
    ["a length past the end", withFirstLength(1_000)],
    ["a length of 2^32-1", withFirstLength(0xffffffff)],
    ["truncated in the last envelope", good.subarray(0, good.length - 1)],
    ["a trailing byte", Uint8Array.of(...good, 0)],
  ];
  for (const [what, frame] of bad) {
    try {
      splitBatchFrame(frame);
      assert.unreachable(`${what}: accepted`);
    } catch (e) {
      assert.ok(isSkeinError(e), `${what}: ${e}`);
      assert.is((e as { code: string }).code, ErrorCode.CORRUPT_MESSAGE, what);
    }
  }
});

test("random bytes after the marker never throw anything but CORRUPT_MESSAGE (property)", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (rest) => {
      try {
        for (const e of splitBatchFrame(Uint8Array.of(BATCH_FRAME_MARKER, ...rest))) assert.ok(e.length >= 0);
      } catch (e) {
        assert.is((e as { code?: string }).code, ErrorCode.CORRUPT_MESSAGE);
      }
    }),
  );
});

test.run();
