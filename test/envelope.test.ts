// The envelope's fast paths (ASCII text by hand, `{}`/`null` bodies, envelopes cut from a
// shared slab) must give exactly what the plain TextEncoder/JSON path gives.
import { test } from "uvu";
import * as assert from "uvu/assert";
import fc from "fast-check";
import { decodeEnvelope, encodeEnvelope, EnvelopeKind, offerEnvelopeHeadroom } from "../protocol/envelope.js";

const plainKey = (k: string) => k !== "__proto__" && k !== "constructor";
const jsonValue = fc.jsonValue({ maxDepth: 3 });

test("any JSON body and any type name survive encode → decode (property)", () => {
  fc.assert(
    fc.property(fc.string({ unit: "grapheme", maxLength: 300 }), jsonValue, (type, body) => {
      const env = decodeEnvelope(encodeEnvelope(EnvelopeKind.REPLY_OK, type, body));
      assert.is(env.type, type);
      assert.is(env.kind, EnvelopeKind.REPLY_OK);
      assert.equal(env.body, JSON.parse(JSON.stringify(body)));
    }),
    { numRuns: 3000 },
  );
});

test("binary fields next to JSON fields, short and long, ASCII and not (property)", () => {
  fc.assert(
    fc.property(
      // Top-level "__proto__"/"constructor" keys are excluded: assigning them changes an
      // object's prototype, and uvu's deep equality compares constructors first.
      fc.dictionary(fc.string({ minLength: 1, maxLength: 20, unit: "grapheme" }).filter(plainKey), fc.uint8Array({ maxLength: 600 }), { maxKeys: 4 }),
      fc.dictionary(fc.string({ maxLength: 300, unit: "grapheme" }).filter(plainKey), jsonValue, { maxKeys: 4 }),
      (binaries, fields) => {
        const body = { ...fields, ...binaries };
        const decoded = decodeEnvelope(encodeEnvelope(EnvelopeKind.MESSAGE, "T", body)).body as Record<string, unknown>;
        for (const [k, v] of Object.entries(binaries)) {
          assert.instance(decoded[k], Uint8Array);
          assert.equal([...(decoded[k] as Uint8Array)], [...v]);
        }
        for (const [k, v] of Object.entries(fields)) if (!(k in binaries)) assert.equal(decoded[k], JSON.parse(JSON.stringify(v)));
      },
    ),
    { numRuns: 2000 },
  );
});

test("envelopes cut from the shared slab never overlap: each keeps its own bytes", () => {
  const encoded = Array.from({ length: 5000 }, (_, i) => encodeEnvelope(EnvelopeKind.MESSAGE, `T${i}`, { i, data: new Uint8Array(1 + (i % 300)).fill(i & 0xff) }));
  encoded.forEach((bytes, i) => {
    const env = decodeEnvelope(bytes);
    const body = env.body as { i: number; data: Uint8Array };
    assert.is(env.type, `T${i}`);
    assert.is(body.i, i);
    assert.is(body.data.length, 1 + (i % 300));
    assert.ok(body.data.every((b) => b === (i & 0xff)), `envelope ${i} was overwritten`);
  });
});

test("`{}` and `null` bodies decode to fresh values", () => {
  const a = decodeEnvelope(encodeEnvelope(EnvelopeKind.MESSAGE, "Ping", {})).body as Record<string, unknown>;
  const b = decodeEnvelope(encodeEnvelope(EnvelopeKind.MESSAGE, "Ping", {})).body as Record<string, unknown>;
  assert.equal(a, {});
  assert.ok(a !== b, "each decode gives its own object");
  assert.is(decodeEnvelope(encodeEnvelope(EnvelopeKind.REPLY_OK, "reply", null)).body, null);
  assert.is(decodeEnvelope(encodeEnvelope(EnvelopeKind.REPLY_OK, "reply", undefined)).body, null);
});

/** `length` bytes of data `headroom` bytes into a buffer of their own. */
function behindHeadroom(headroom: number, length: number, fill: number): Uint8Array {
  return new Uint8Array(new ArrayBuffer(headroom + length), headroom, length).fill(fill);
}

test("offered headroom: the envelope is written in front of the data, not around a copy of it", () => {
  const data = behindHeadroom(1024, 100_000, 7);
  offerEnvelopeHeadroom(data);
  const bytes = encodeEnvelope(EnvelopeKind.REPLY_OK, "reply", { highWatermark: 5, data });
  assert.is(bytes.buffer, data.buffer, "no new buffer");
  assert.is(bytes.byteOffset + bytes.length, data.byteOffset + data.length, "the envelope ends with the data");
  const body = decodeEnvelope(bytes).body as { highWatermark: number; data: Uint8Array };
  assert.is(body.highWatermark, 5);
  assert.is(body.data.length, 100_000);
  assert.ok(body.data.every((b) => b === 7));
});

test("offered headroom is used once: a second envelope of the same data copies it, the first stays intact", () => {
  const data = behindHeadroom(512, 5_000, 9);
  offerEnvelopeHeadroom(data);
  const first = encodeEnvelope(EnvelopeKind.REPLY_OK, "reply", { n: 1, data });
  const second = encodeEnvelope(EnvelopeKind.REPLY_OK, "other-reply", { n: 2, extra: "x".repeat(100), data });
  assert.is(first.buffer, data.buffer);
  assert.ok(second.buffer !== data.buffer, "the second one has its own bytes");
  const a = decodeEnvelope(first);
  const b = decodeEnvelope(second);
  assert.is(a.type, "reply");
  assert.equal((a.body as { n: number }).n, 1);
  assert.is(b.type, "other-reply");
  assert.equal((b.body as { n: number }).n, 2);
  for (const env of [a, b]) assert.ok((env.body as { data: Uint8Array }).data.every((x) => x === 9));
});

test("headroom too small, not offered, or data not at its start: the envelope copies the data", () => {
  const small = behindHeadroom(8, 10_000, 1);
  offerEnvelopeHeadroom(small);
  const notOffered = behindHeadroom(1024, 10_000, 2);
  const offered = behindHeadroom(1024, 10_000, 3);
  offerEnvelopeHeadroom(offered);
  const shifted = offered.subarray(1);
  for (const [data, fill] of [[small, 1], [notOffered, 2], [shifted, 3]] as const) {
    const bytes = encodeEnvelope(EnvelopeKind.MESSAGE, "T", { topic: "t".repeat(50), data });
    assert.ok(bytes.buffer !== data.buffer, `fill ${fill}: copied`);
    const got = (decodeEnvelope(bytes).body as { data: Uint8Array }).data;
    assert.is(got.length, data.length);
    assert.ok(got.every((x) => x === fill));
  }
});

test("with several binary fields only the last one's headroom is used, and the others are copied in front", () => {
  const head = new Uint8Array(300).fill(4);
  const tail = behindHeadroom(2048, 20_000, 5);
  offerEnvelopeHeadroom(tail);
  const bytes = encodeEnvelope(EnvelopeKind.MESSAGE, "Two", { a: 1, head, tail });
  assert.is(bytes.buffer, tail.buffer);
  const body = decodeEnvelope(bytes).body as { a: number; head: Uint8Array; tail: Uint8Array };
  assert.is(body.a, 1);
  assert.ok(body.head.length === 300 && body.head.every((x) => x === 4));
  assert.ok(body.tail.length === 20_000 && body.tail.every((x) => x === 5));
});

test.run();
