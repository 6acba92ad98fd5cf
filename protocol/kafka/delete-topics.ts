// DeleteTopics (key 20), versions 0-1.
//
//   DeleteTopics Request (Version: 0-1) => [topic_names] timeout_ms
//     topic_names => STRING
//     timeout_ms => INT32
//
//   DeleteTopics Response (Version: 0-1) => throttle_time_ms [responses]
//     throttle_time_ms => INT32            (v1+)
//     responses => name error_code
//       name => STRING
//       error_code => INT16

import { ApiKey } from "./api-keys.js";
import { Int16, Int32, Str, array, since, struct } from "./schema.js";

export const DeleteTopics = {
  name: "DeleteTopics",
  apiKey: ApiKey.DeleteTopics,
  minVersion: 0,
  maxVersion: 1,
  request: struct({ topicNames: array(Str), timeoutMs: Int32 }),
  response: struct({
    throttleTimeMs: since(1, Int32, 0),
    responses: array(struct({ name: Str, errorCode: Int16 })),
  }),
};
