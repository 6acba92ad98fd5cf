// The handler table: every API the gateway serves, keyed by API key. ApiVersions advertises
// exactly this table.

import type { ApiHandler } from "../handler.js";
import { alterConfigsHandler, incrementalAlterConfigsHandler } from "./alter-configs.js";
import { apiVersionsHandler } from "./api-versions.js";
import { createPartitionsHandler } from "./create-partitions.js";
import { createTopicsHandler } from "./create-topics.js";
import { deleteGroupsHandler } from "./delete-groups.js";
import { deleteTopicsHandler } from "./delete-topics.js";
import { describeConfigsHandler } from "./describe-configs.js";
import { describeGroupsHandler } from "./describe-groups.js";
import { fetchHandler } from "./fetch.js";
import { findCoordinatorHandler } from "./find-coordinator.js";
import { heartbeatHandler } from "./heartbeat.js";
import { initProducerIdHandler } from "./init-producer-id.js";
import { joinGroupHandler } from "./join-group.js";
import { leaveGroupHandler } from "./leave-group.js";
import { listGroupsHandler } from "./list-groups.js";
import { listOffsetsHandler } from "./list-offsets.js";
import { metadataHandler } from "./metadata.js";
import { offsetCommitHandler } from "./offset-commit.js";
import { offsetFetchHandler } from "./offset-fetch.js";
import { produceHandler } from "./produce.js";
import { syncGroupHandler } from "./sync-group.js";

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
    alterConfigsHandler,
    incrementalAlterConfigsHandler,
    initProducerIdHandler,
    findCoordinatorHandler,
    joinGroupHandler,
    syncGroupHandler,
    heartbeatHandler,
    leaveGroupHandler,
    offsetCommitHandler,
    offsetFetchHandler,
    describeGroupsHandler,
    listGroupsHandler,
    deleteGroupsHandler,
  ].map((h) => [h.api.apiKey, h]),
);
