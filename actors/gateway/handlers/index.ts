// The handler table: every API the gateway serves, keyed by API key. ApiVersions advertises
// exactly this table. Consumer-group APIs (FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
// LeaveGroup, OffsetCommit, OffsetFetch, DescribeGroups, ListGroups, DeleteGroups) join it
// once the group coordinator exists (issue 9).

import type { ApiHandler } from "../handler.js";
import { apiVersionsHandler } from "./api-versions.js";
import { createPartitionsHandler } from "./create-partitions.js";
import { createTopicsHandler } from "./create-topics.js";
import { deleteTopicsHandler } from "./delete-topics.js";
import { describeConfigsHandler } from "./describe-configs.js";
import { fetchHandler } from "./fetch.js";
import { initProducerIdHandler } from "./init-producer-id.js";
import { listOffsetsHandler } from "./list-offsets.js";
import { metadataHandler } from "./metadata.js";
import { produceHandler } from "./produce.js";

export const HANDLERS: ReadonlyMap<number, ApiHandler> = new Map(
  [
    apiVersionsHandler,
    metadataHandler,
    produceHandler,
    fetchHandler,
    listOffsetsHandler,
    createTopicsHandler,
    deleteTopicsHandler,
    createPartitionsHandler,
    describeConfigsHandler,
    initProducerIdHandler,
  ].map((h) => [h.api.apiKey, h]),
);
