// Same-thread delivery (localEnvelope) must give the receiver exactly the value a NATS hop
// (encodeEnvelope → decodeEnvelope) gives, except that binary fields are not copied.
import { test } from "uvu";
import * as assert from "uvu/assert";
import fc from "fast-check";
import { decodeEnvelope, encodeEnvelope, EnvelopeKind, localEnvelope } from "../protocol/envelope.js";

const jsonValue = fc.jsonValue({ maxDepth: 3 });
// uvu's deep equality compares `a.constructor === b.constructor` before anything else, so a
// field literally named "constructor" (or "__proto__") makes equal bodies look different.
const fieldName = (minLength: number, maxLength: number) =>
  fc.string({ minLength, maxLength, unit: "grapheme" }).filter((k) => k !== "constructor" && k !== "__proto__");

test("localEnvelope equals the encode → decode round trip (property)", () => {
  fc.assert(
    fc.property(
      fc.dictionary(fieldName(1, 20), fc.uint8Array({ maxLength: 300 }), { maxKeys: 3 }),
      fc.dictionary(fieldName(0, 30), jsonValue, { maxKeys: 4 }),
      (binaries, fields) => {
        const body = { ...fields, ...binaries, gone: undefined };
        const viaNats = decodeEnvelope(encodeEnvelope(EnvelopeKind.MESSAGE, "T", body));
        const local = localEnvelope(EnvelopeKind.MESSAGE, "T", body);
        assert.equal(local, viaNats);
        for (const v of Object.values(local.body as Record<string, unknown>)) if (v instanceof Uint8Array) assert.is(v.constructor, Uint8Array);
      },
    ),
    { numRuns: 1000 },
  );
});

test("binary fields are handed over, not copied; a Buffer arrives as a plain Uint8Array", () => {
  const data = Buffer.from("record batch bytes");
  const body = localEnvelope(EnvelopeKind.REPLY_OK, "reply", { data, highWatermark: 7 }).body as { data: Uint8Array; highWatermark: number };
  assert.is(body.highWatermark, 7);
  assert.is(body.data.constructor, Uint8Array);
  assert.is(body.data.buffer, data.buffer);
  assert.is(body.data.byteOffset, data.byteOffset);
});

test("bodies without binary fields take the plain round trip", () => {
  const body = { a: 1, d: new Date(0) };
  assert.equal(localEnvelope(EnvelopeKind.MESSAGE, "T", body).body, { a: 1, d: "1970-01-01T00:00:00.000Z" });
});

test.run();
