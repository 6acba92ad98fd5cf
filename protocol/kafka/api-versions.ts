// ApiVersions (key 18), versions 0-2.
//
//   ApiVersions Request (Version: 0-2) =>
//
//   ApiVersions Response (Version: 0) => error_code [api_keys]
//     error_code => INT16
//     api_keys => api_key min_version max_version
//       api_key => INT16
//       min_version => INT16
//       max_version => INT16
//   ApiVersions Response (Version: 1-2) => error_code [api_keys] throttle_time_ms
//     throttle_time_ms => INT32
//
// A request at a version the broker does not know (v3+ from newer clients) is answered in
// the v0 layout with UNSUPPORTED_VERSION and the full list, so the client can pick a version
// it shares with us (KIP-511).

import { ApiKey } from "./api-keys.js";
import { Int16, Int32, array, since, struct } from "./schema.js";

export const ApiVersions = {
  name: "ApiVersions",
  apiKey: ApiKey.ApiVersions,
  minVersion: 0,
  maxVersion: 2,
  request: struct({}),
  response: struct({
    errorCode: Int16,
    apiKeys: array(struct({ apiKey: Int16, minVersion: Int16, maxVersion: Int16 })),
    throttleTimeMs: since(1, Int32, 0),
  }),
};
