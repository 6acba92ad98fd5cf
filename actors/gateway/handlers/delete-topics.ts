// DeleteTopics through the controller; answers once this gateway's view no longer has the
// topic (bounded by the request's timeout).

import { DeleteTopics } from "../../../protocol/kafka/delete-topics.js";
import { KafkaErrorCode, kafkaErrorCode } from "../../../protocol/kafka/errors.js";
import { defineHandler } from "../handler.js";
import { awaitView, duplicates } from "./admin.js";

export const deleteTopicsHandler = defineHandler(DeleteTopics, async (request, ctx) => {
  const s = ctx.services;
  const twice = duplicates(request.topicNames);
  const responses = await Promise.all(
    request.topicNames.map(async (name) => {
      if (twice.has(name)) return { name, errorCode: KafkaErrorCode.INVALID_REQUEST };
      try {
        await s.client.deleteTopic(name);
        await awaitView(s, request.timeoutMs, () => !s.view.topic(name));
        return { name, errorCode: KafkaErrorCode.NONE };
      } catch (e) {
        return { name, errorCode: kafkaErrorCode(e) };
      }
    }),
  );
  return { throttleTimeMs: 0, responses };
});
