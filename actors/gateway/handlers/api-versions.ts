// ApiVersions: the handler table, as the client's version negotiation needs it.
import { ApiVersions } from "../../../protocol/kafka/api-versions.js";
import { KafkaErrorCode } from "../../../protocol/kafka/errors.js";
import { defineHandler } from "../handler.js";

export const apiVersionsHandler = defineHandler(ApiVersions, async (_request, ctx) => ({
  errorCode: KafkaErrorCode.NONE,
  apiKeys: ctx.services.supportedApis(),
  throttleTimeMs: 0,
}));
