// InitProducerId (key 22), versions 0-1.
//
//   InitProducerId Request (Version: 0-1) => transactional_id transaction_timeout_ms
//     transactional_id => NULLABLE_STRING  null for an idempotent (not transactional) producer
//     transaction_timeout_ms => INT32
//
//   InitProducerId Response (Version: 0-1) => throttle_time_ms error_code producer_id producer_epoch
//     throttle_time_ms => INT32
//     error_code => INT16
//     producer_id => INT64
//     producer_epoch => INT16

import { ApiKey } from "./api-keys.js";
import { Int16, Int32, Int64, NullableStr, struct } from "./schema.js";

export const InitProducerId = {
  name: "InitProducerId",
  apiKey: ApiKey.InitProducerId,
  minVersion: 0,
  maxVersion: 1,
  request: struct({ transactionalId: NullableStr, transactionTimeoutMs: Int32 }),
  response: struct({ throttleTimeMs: Int32, errorCode: Int16, producerId: Int64, producerEpoch: Int16 }),
};
