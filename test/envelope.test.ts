// The envelope's fast paths (ASCII text by hand, `{}`/`null` bodies, envelopes cut from a
// shared slab) must give exactly what the plain TextEncoder/JSON path gives.
import { test } from "uvu";
import * as assert from "uvu/assert";
import fc from "fast-check";
import { decodeEnvelope, encodeEnvelope, EnvelopeKind } from "../protocol/envelope.js";

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

test.run();
