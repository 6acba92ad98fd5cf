import { test } from "uvu";
import * as assert from "uvu/assert";
import fc from "fast-check";
import { addressToSubject, subjectToAddress, escapeToken, unescapeToken, parseAddress } from "../protocol/address.js";
import { decodeEnvelope, encodeEnvelope, EnvelopeKind } from "../protocol/envelope.js";
import { isSkeinError, ErrorCode } from "../protocol/errors.js";

test("topic-like names with dots, stars and unicode map to safe subjects and back", () => {
  const address = "replica/orders.v2*>/3@b.2";
  const subject = addressToSubject("prod.eu", address);
  assert.not.match(subject.split(".").slice(3).join(""), /[*>\s]/);
  assert.is(subject.split(".").length, 3 + 1 + 3);
  assert.is(subjectToAddress("prod.eu", subject), address);
  assert.is(unescapeToken(escapeToken("ünï_cödé.x")), "ünï_cödé.x");
});

test("escaping is reversible for any token (property)", () => {
  fc.assert(
    fc.property(fc.string({ minLength: 1, maxLength: 40, unit: "grapheme" }), (s) => {
      const e = escapeToken(s);
      assert.ok(/^[A-Za-z0-9_-]+$/.test(e));
      assert.is(unescapeToken(e), s);
    }),
    { numRuns: 500 },
  );
});

test("node-less addresses and malformed addresses", () => {
  assert.is(subjectToAddress("c", addressToSubject("c", "controller")), "controller");
  for (const bad of ["", "a//b@n", "a@", "/a@n"]) {
    try {
      parseAddress(bad);
      assert.unreachable(`accepted ${bad}`);
    } catch (e) {
      assert.ok(isSkeinError(e, ErrorCode.INVALID_REQUEST), String(e));
    }
  }
});

test("envelope carries binary fields untouched and JSON fields as JSON", () => {
  const data = new Uint8Array([0, 1, 2, 255, 254]);
  const env = decodeEnvelope(encodeEnvelope(EnvelopeKind.MESSAGE, "Produce", { topic: "t", partition: 3, records: data }));
  assert.is(env.type, "Produce");
  assert.equal((env.body as { topic: string }).topic, "t");
  assert.equal([...(env.body as { records: Uint8Array }).records], [...data]);
});

test("corrupt envelopes give CORRUPT_MESSAGE, never another exception", () => {
  const good = encodeEnvelope(EnvelopeKind.MESSAGE, "X", { a: 1, b: new Uint8Array(10) });
  let rejected = 0;
  for (let cut = 0; cut < good.length; cut++) {
    try {
      decodeEnvelope(good.subarray(0, cut));
    } catch (e) {
      assert.ok(isSkeinError(e, ErrorCode.CORRUPT_MESSAGE), String(e));
      rejected++;
    }
  }
  assert.is(rejected, good.length);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      try {
        decodeEnvelope(bytes);
      } catch (e) {
        assert.ok(isSkeinError(e, ErrorCode.CORRUPT_MESSAGE), String(e));
      }
    }),
    { numRuns: 2000 },
  );
});

test.run();
