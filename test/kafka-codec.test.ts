// The Kafka wire codec against kafkajs's own encoders and decoders: every request kafkajs
// 2.2.4 can send at each version Skein serves decodes to what kafkajs meant, and every
// response Skein encodes decodes in kafkajs to what Skein meant. Plus framing over random
// chunk splits, fuzzed bodies, and the error table.
import { createRequire } from "node:module";
import * as fc from "fast-check";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { ErrorCode, SkeinError } from "../protocol/errors.js";
import { decodeRecords, iterateBatches } from "../protocol/record-batch.js";
import {
  ApiVersions,
  CreatePartitions,
  CreateTopics,
  DeleteTopics,
  DescribeConfigs,
  Fetch,
  FrameDecoder,
  InitProducerId,
  KafkaErrorCode,
  KafkaWriter,
  ListOffsets,
  Metadata,
  Produce,
  SKEIN_TO_KAFKA,
  decodeExact,
  kafkaErrorCode,
  readRequestHeader,
  type KafkaType,
} from "../protocol/kafka/mod.js";

const require = createRequire(import.meta.url);
// kafkajs internals are CommonJS without types: each request module is (args) => request.
type KafkajsRequest = { apiKey: number; apiVersion: number; encode(): Promise<{ buffer: Buffer }> };
const kafkajsRequest = (api: string, version: number) => require(`kafkajs/src/protocol/requests/${api}/v${version}/request`) as (args: unknown) => KafkajsRequest;
const kafkajsResponse = (api: string, version: number) =>
  require(`kafkajs/src/protocol/requests/${api}/v${version}/response`) as { decode(b: Buffer): Promise<unknown>; parse(d: unknown): Promise<unknown> };
const kafkajsFrame = require("kafkajs/src/protocol/request") as (a: { correlationId: number; clientId: string; request: KafkajsRequest }) => Promise<{ buffer: Buffer }>;

/** kafkajs → whole frame → FrameDecoder → header + body decoded with Skein's grammar. */
async function viaKafkajs<T>(api: string, version: number, args: unknown, grammar: KafkaType<T, unknown>): Promise<T> {
  const request = kafkajsRequest(api, version)(args);
  assert.is(request.apiVersion, version);
  const frame = (await kafkajsFrame({ correlationId: 42, clientId: "codec-test", request })).buffer;
  const decoder = new FrameDecoder(1 << 20, 8);
  decoder.push(frame);
  const body = decoder.next()!;
  assert.ok(body, "one whole frame");
  const { header, bodyOffset } = readRequestHeader(body);
  assert.equal(header, { apiKey: request.apiKey, apiVersion: version, correlationId: 42, clientId: "codec-test" });
  return decodeExact(grammar, body, bodyOffset, version);
}

/** Skein's grammar → bytes → kafkajs's decoder (and its parse, which throws on error codes). */
async function toKafkajs<In>(api: string, version: number, grammar: KafkaType<unknown, In>, value: In): Promise<Record<string, unknown>> {
  const w = new KafkaWriter();
  grammar.write(w, value, version);
  const r = kafkajsResponse(api, version);
  return (await r.parse(await r.decode(Buffer.from(w.toBytes())))) as Record<string, unknown>;
}

const versions = (spec: { minVersion: number; maxVersion: number }) => Array.from({ length: spec.maxVersion - spec.minVersion + 1 }, (_, i) => spec.minVersion + i);

test("ApiVersions v0-2 round-trips through kafkajs", async () => {
  for (const v of versions(ApiVersions)) {
    await viaKafkajs("apiVersions", v, {}, ApiVersions.request);
    const decoded = await toKafkajs("apiVersions", v, ApiVersions.response, { errorCode: 0, apiKeys: [{ apiKey: 3, minVersion: 0, maxVersion: 6 }] });
    assert.equal(decoded.apiVersions, [{ apiKey: 3, minVersion: 0, maxVersion: 6 }], `v${v}`);
  }
});

test("Metadata v0-6: topics, auto-creation flag, brokers, partitions", async () => {
  for (const v of versions(Metadata)) {
    const req = await viaKafkajs("metadata", v, { topics: ["a", "b"], allowAutoTopicCreation: false }, Metadata.request);
    assert.equal(req.topics, ["a", "b"]);
    assert.is(req.allowAutoTopicCreation, v >= 4 ? false : true, `v${v}`);
    const all = await viaKafkajs("metadata", v, { topics: [] }, Metadata.request);
    assert.equal(all.topics, v === 0 ? [] : null, `v${v}: kafkajs asks for all topics`);
    const decoded = (await toKafkajs("metadata", v, Metadata.response, {
      brokers: [{ nodeId: 1, host: "127.0.0.1", port: 19092 }],
      clusterId: "c",
      controllerId: 1,
      topics: [
        {
          errorCode: 0,
          name: "a",
          partitions: [{ errorCode: 0, partitionIndex: 0, leaderId: 1, replicaNodes: [1, 2], isrNodes: [1], offlineReplicas: [2] }],
        },
      ],
    })) as { brokers: { nodeId: number; port: number }[]; topicMetadata: { topic: string; partitionMetadata: { leader: number; replicas: number[]; isr: number[] }[] }[] };
    assert.is(decoded.brokers[0].nodeId, 1);
    assert.is(decoded.brokers[0].port, 19092);
    assert.is(decoded.topicMetadata[0].topic, "a");
    assert.is(decoded.topicMetadata[0].partitionMetadata[0].leader, 1);
    assert.equal(decoded.topicMetadata[0].partitionMetadata[0].replicas, [1, 2]);
  }
});

test("Produce v3-7: kafkajs record batches arrive intact (keys, null keys, headers)", async () => {
  for (const v of versions(Produce)) {
    const topicData = [
      {
        topic: "t",
        partitions: [
          {
            partition: 2,
            firstSequence: 7,
            messages: [
              { key: "k1", value: "v1", headers: { h: "x" }, timestamp: 1_700_000_000_000 },
              { key: null, value: "v2", timestamp: 1_700_000_000_001 },
            ],
          },
        ],
      },
    ];
    const req = await viaKafkajs("produce", v, { acks: -1, timeout: 1234, topicData, producerId: 5, producerEpoch: 1 }, Produce.request);
    assert.is(req.acks, -1);
    assert.is(req.timeoutMs, 1234);
    assert.is(req.transactionalId, null);
    const p = req.topics[0].partitions[0];
    assert.is(p.index, 2);
    const batches = [...iterateBatches(p.records!)];
    assert.is(batches.length, 1);
    assert.is(batches[0].header.baseSequence, 7);
    const records = decodeRecords(p.records!, batches[0].pos);
    assert.equal(new TextDecoder().decode(records[0].key!), "k1");
    assert.is(records[1].key, null);
    assert.is(records[0].headers[0].key, "h");
    const decoded = (await toKafkajs("produce", v, Produce.response, {
      responses: [{ name: "t", partitions: [{ index: 2, errorCode: 0, baseOffset: 10, logAppendTimeMs: -1, logStartOffset: 0 }] }],
      throttleTimeMs: 0,
    })) as { topics: { topicName: string; partitions: { partition: number; baseOffset: string }[] }[] };
    assert.is(decoded.topics[0].partitions[0].baseOffset, "10");
  }
});

test("Fetch v4-11: request fields and a response with records", async () => {
  const records = (await (async () => {
    const req = await viaKafkajs("produce", 7, { acks: 1, timeout: 1, topicData: [{ topic: "t", partitions: [{ partition: 0, messages: [{ key: "k", value: "v" }] }] }] }, Produce.request);
    return req.topics[0].partitions[0].records!;
  })());
  for (const v of versions(Fetch)) {
    const topics = [{ topic: "t", partitions: [{ partition: 1, fetchOffset: "5", maxBytes: 1000 }] }];
    const req = await viaKafkajs("fetch", v, { replicaId: -1, maxWaitTime: 100, minBytes: 1, maxBytes: 5000, topics, isolationLevel: 1 }, Fetch.request);
    assert.is(req.maxWaitMs, 100);
    assert.is(req.maxBytes, 5000);
    assert.is(req.topics[0].partitions[0].fetchOffset, 5);
    assert.is(req.topics[0].partitions[0].partitionMaxBytes, 1000);
    assert.is(req.sessionId, 0);
    const decoded = (await toKafkajs("fetch", v, Fetch.response, {
      throttleTimeMs: 0,
      responses: [
        {
          topic: "t",
          partitions: [{ partitionIndex: 1, errorCode: 0, highWatermark: 9, lastStableOffset: 9, logStartOffset: 0, abortedTransactions: [], records }],
        },
      ],
    })) as { responses: { partitions: { highWatermark: string; messages: { key: Buffer; value: Buffer }[] }[] }[] };
    const part = decoded.responses[0].partitions[0];
    assert.is(part.highWatermark, "9", `v${v}`);
    assert.is(part.messages.length, 1);
    assert.is(part.messages[0].value.toString(), "v");
  }
});

test("ListOffsets v0-3", async () => {
  for (const v of versions(ListOffsets)) {
    const req = await viaKafkajs("listOffsets", v, { replicaId: -1, isolationLevel: 1, topics: [{ topic: "t", partitions: [{ partition: 0, timestamp: -2 }] }] }, ListOffsets.request);
    assert.is(req.topics[0].partitions[0].timestamp, -2);
    const decoded = (await toKafkajs("listOffsets", v, ListOffsets.response, {
      topics: [{ name: "t", partitions: [{ partitionIndex: 0, errorCode: 0, oldStyleOffsets: [3], timestamp: -1, offset: 3 }] }],
    })) as { responses: { partitions: { offset?: string; offsets?: string[] }[] }[] };
    const p = decoded.responses[0].partitions[0];
    assert.is(v === 0 ? p.offsets![0] : p.offset, "3", `v${v}`);
  }
});

test("CreateTopics v0-3, DeleteTopics v0-1, CreatePartitions v0-1", async () => {
  for (const v of versions(CreateTopics)) {
    const req = await viaKafkajs(
      "createTopics",
      v,
      { topics: [{ topic: "t", configEntries: [{ name: "cleanup.policy", value: "compact" }] }], timeout: 777, validateOnly: true },
      CreateTopics.request,
    );
    assert.is(req.topics[0].numPartitions, -1);
    assert.is(req.topics[0].replicationFactor, -1);
    assert.equal(req.topics[0].configs, [{ name: "cleanup.policy", value: "compact" }]);
    assert.is(req.validateOnly, v >= 1);
    const decoded = (await toKafkajs("createTopics", v, CreateTopics.response, { topics: [{ name: "t", errorCode: 0, errorMessage: null }] })) as {
      topicErrors: { topic: string; errorCode: number }[];
    };
    assert.equal(decoded.topicErrors, [{ topic: "t", errorCode: 0, ...(v >= 1 ? { errorMessage: null } : {}) }]);
  }
  for (const v of versions(DeleteTopics)) {
    const req = await viaKafkajs("deleteTopics", v, { topics: ["a", "b"], timeout: 5 }, DeleteTopics.request);
    assert.equal(req.topicNames, ["a", "b"]);
    await toKafkajs("deleteTopics", v, DeleteTopics.response, { responses: [{ name: "a", errorCode: 0 }] });
  }
  for (const v of versions(CreatePartitions)) {
    const req = await viaKafkajs("createPartitions", v, { topicPartitions: [{ topic: "t", count: 4 }], timeout: 5 }, CreatePartitions.request);
    assert.equal(req.topics, [{ name: "t", count: 4, assignments: null }]);
    await toKafkajs("createPartitions", v, CreatePartitions.response, { throttleTimeMs: 0, results: [{ name: "t", errorCode: 0, errorMessage: null }] });
  }
});

test("kafkajs parse turns a Skein error code into its typed error", async () => {
  const e = await toKafkajs("createTopics", 3, CreateTopics.response, {
    topics: [{ name: "t", errorCode: KafkaErrorCode.TOPIC_ALREADY_EXISTS, errorMessage: "exists" }],
  }).catch((x: unknown) => x);
  const errors = (e as { errors?: { type?: string; topic?: string }[] }).errors ?? [];
  assert.equal(errors.map((x) => [x.type, x.topic]), [["TOPIC_ALREADY_EXISTS", "t"]]);
});

test("DescribeConfigs v0-2 and InitProducerId v0-1", async () => {
  for (const v of versions(DescribeConfigs)) {
    const req = await viaKafkajs("describeConfigs", v, { resources: [{ type: 2, name: "t", configNames: [] }], includeSynonyms: false }, DescribeConfigs.request);
    assert.equal(req.resources, [{ resourceType: 2, resourceName: "t", configurationKeys: null }]);
    const decoded = (await toKafkajs("describeConfigs", v, DescribeConfigs.response, {
      throttleTimeMs: 0,
      results: [
        {
          errorCode: 0,
          errorMessage: null,
          resourceType: 2,
          resourceName: "t",
          configs: [{ name: "retention.ms", value: "1000", readOnly: false, isDefault: false, configSource: 1, isSensitive: false }],
        },
      ],
    })) as { resources: { configEntries: { configName: string; configValue: string; isDefault: boolean }[] }[] };
    assert.is(decoded.resources[0].configEntries[0].configName, "retention.ms");
    assert.is(decoded.resources[0].configEntries[0].configValue, "1000");
    assert.is(decoded.resources[0].configEntries[0].isDefault, false);
  }
  for (const v of versions(InitProducerId)) {
    const req = await viaKafkajs("initProducerId", v, { transactionTimeout: 30000 }, InitProducerId.request);
    assert.equal(req, { transactionalId: null, transactionTimeoutMs: 30000 });
    const decoded = (await toKafkajs("initProducerId", v, InitProducerId.response, { throttleTimeMs: 0, errorCode: 0, producerId: 77, producerEpoch: 0 })) as {
      producerId: string;
    };
    assert.is(decoded.producerId, "77");
  }
});

function sizePrefix(size: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(size);
  return b;
}

test("frames survive any chunking; sizes outside the bounds are refused", () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ minLength: 8, maxLength: 40 }), { minLength: 1, maxLength: 6 }), fc.array(fc.integer({ min: 1, max: 30 })), (bodies, cuts) => {
      const stream = Buffer.concat(bodies.flatMap((b) => [sizePrefix(b.length), Buffer.from(b)]));
      const d = new FrameDecoder(1024, 8);
      const out: Uint8Array[] = [];
      let pos = 0;
      for (const c of [...cuts, stream.length]) {
        d.push(stream.subarray(pos, Math.min(stream.length, pos + c)));
        pos = Math.min(stream.length, pos + c);
        for (let f = d.next(); f; f = d.next()) out.push(f);
      }
      assert.equal(out.map((f) => Buffer.from(f).toString("hex")), bodies.map((b) => Buffer.from(b).toString("hex")));
      assert.is(d.partial, false);
    }),
    { numRuns: 300 },
  );
  for (const size of [-1, 0, 7, 1025, 0x7fffffff]) {
    const d = new FrameDecoder(1024, 8);
    d.push(sizePrefix(size));
    assert.throws(() => d.next(), (e: SkeinError) => e.code === ErrorCode.INVALID_REQUEST, `size ${size}`);
  }
});

test("fuzzed request bodies decode or fail with INVALID_REQUEST, never anything else", () => {
  const apis = [ApiVersions, Metadata, Produce, Fetch, ListOffsets, CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs, InitProducerId];
  fc.assert(
    fc.property(fc.constantFrom(...apis), fc.integer({ min: 0, max: 12 }), fc.uint8Array({ maxLength: 200 }), (api, version, body) => {
      try {
        decodeExact(api.request as KafkaType<unknown, unknown>, body, 0, version);
      } catch (e) {
        assert.instance(e, SkeinError);
        assert.is((e as SkeinError).code, ErrorCode.INVALID_REQUEST);
      }
    }),
    { numRuns: 5_000 },
  );
  // A huge array count in a tiny body is refused before anything is allocated for it.
  const w = new KafkaWriter().int32(0x7fffffff);
  assert.throws(() => decodeExact(DeleteTopics.request, w.toBytes(), 0, 0), /array of 2147483647 elements/);
});

test("every Skein error code has a Kafka code", () => {
  for (const code of Object.values(ErrorCode)) {
    if (code === ErrorCode.UNKNOWN) continue;
    const mapped = kafkaErrorCode(new SkeinError(code, "x"));
    assert.ok(mapped !== KafkaErrorCode.UNKNOWN_SERVER_ERROR, `${code} has no Kafka code: add it to SKEIN_TO_KAFKA or KafkaErrorCode`);
  }
  assert.is(SKEIN_TO_KAFKA[ErrorCode.ACTOR_NOT_FOUND], KafkaErrorCode.NOT_LEADER_OR_FOLLOWER);
  assert.is(kafkaErrorCode(new SkeinError(ErrorCode.NOT_LEADER_OR_FOLLOWER, "x")), 6);
  assert.is(kafkaErrorCode(new SkeinError(ErrorCode.TIMEOUT, "x")), 7);
  assert.is(kafkaErrorCode(new Error("plain")), -1);
});

test.run();
