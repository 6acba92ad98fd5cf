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

test("without binary fields too, localEnvelope equals the round trip: odd strings, odd type names, non-JSON values (property)", () => {
  // Any UTF-16 code unit, lone surrogates too, in the body and in the type name; values JSON
  // turns into something else; nested binary data (only top-level fields are carried as binary).
  const utf16 = (maxLength: number) => fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength });
  const odd = fc.oneof(
    jsonValue,
    utf16(20),
    fc.date({ noInvalidDate: true }),
    fc.constant(undefined),
    fc.uint8Array({ maxLength: 8 }).map((b) => ({ nested: b })),
  );
  const body = fc.oneof(odd, fc.dictionary(fieldName(0, 10), odd, { maxKeys: 4 }), fc.array(odd, { maxLength: 4 }));
  const typeName = fc.oneof(fc.constantFrom("Fetch", "reply", "error"), utf16(12));
  fc.assert(
    fc.property(fc.constantFrom(EnvelopeKind.MESSAGE, EnvelopeKind.REPLY_OK, EnvelopeKind.REPLY_ERROR), typeName, body, (kind, type, b) => {
      assert.equal(localEnvelope(kind, type, b), decodeEnvelope(encodeEnvelope(kind, type, b)));
    }),
    { numRuns: 2000 },
  );
});

test("bodies without binary fields take the plain round trip", () => {
  const body = { a: 1, d: new Date(0) };
  assert.equal(localEnvelope(EnvelopeKind.MESSAGE, "T", body).body, { a: 1, d: "1970-01-01T00:00:00.000Z" });
});

test.run();
