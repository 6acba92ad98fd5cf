// InitProducerId: a new producer id (epoch 0) from the controller, for idempotent producers.
// Transactional ids need a transaction coordinator, which Skein does not have.

import { InitProducerId } from "../../../protocol/kafka/init-producer-id.js";
import { KafkaErrorCode, kafkaErrorCode } from "../../../protocol/kafka/errors.js";
import { defineHandler } from "../handler.js";

export const initProducerIdHandler = defineHandler(InitProducerId, async (request, ctx) => {
  const none = { throttleTimeMs: 0, producerId: -1, producerEpoch: -1 };
  if (request.transactionalId !== null) return { ...none, errorCode: KafkaErrorCode.INVALID_REQUEST };
  try {
    const { producerId, producerEpoch } = await ctx.services.client.initProducerId();
    return { throttleTimeMs: 0, errorCode: KafkaErrorCode.NONE, producerId, producerEpoch };
  } catch (e) {
    return { ...none, errorCode: kafkaErrorCode(e) };
  }
});
