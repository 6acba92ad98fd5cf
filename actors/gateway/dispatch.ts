// From a request frame to an outcome: header, handler lookup by API key, version check,
// body decode, handler, response encode. What cannot be answered closes the connection, as
// Kafka does: an unknown API key, a version outside what the handler table advertises (except
// ApiVersions, answered in its v0 layout with UNSUPPORTED_VERSION so the client can
// negotiate), a body that does not follow the grammar.

import { ApiVersions } from "../../protocol/kafka/api-versions.js";
import { apiName } from "../../protocol/kafka/api-keys.js";
import { KafkaErrorCode } from "../../protocol/kafka/errors.js";
import { readRequestHeader, readRequestHeaderFixed } from "../../protocol/kafka/header.js";
import { KafkaWriter } from "../../protocol/kafka/primitives.js";
import { decodeExact, type KafkaType } from "../../protocol/kafka/schema.js";
import type { Outcome } from "./connection.js";
import type { ApiHandler } from "./handler.js";
import type { GatewayServices } from "./types.js";

export type Dispatcher = (frame: Uint8Array) => Promise<Outcome>;

export function createDispatcher(handlers: ReadonlyMap<number, ApiHandler>, services: GatewayServices): Dispatcher {
  return async (frame) => {
    let fixed;
    try {
      fixed = readRequestHeaderFixed(frame);
    } catch {
      return close("frame shorter than a request header");
    }
    const handler = handlers.get(fixed.apiKey);
    const name = apiName(fixed.apiKey);
    if (!handler) return close(`${name} is not supported`);
    const { api } = handler;
    if (fixed.apiVersion < api.minVersion || fixed.apiVersion > api.maxVersion) {
      if (api.apiKey !== ApiVersions.apiKey) return close(`${name} v${fixed.apiVersion} is not supported (versions ${api.minVersion}-${api.maxVersion})`);
      const body = { errorCode: KafkaErrorCode.UNSUPPORTED_VERSION, apiKeys: services.supportedApis() };
      return respond(fixed.correlationId, ApiVersions.response, body, 0);
    }
    let header;
    let request: unknown;
    try {
      const h = readRequestHeader(frame);
      header = h.header;
      request = decodeExact(api.request, frame, h.bodyOffset, fixed.apiVersion);
    } catch (e) {
      return close(`malformed ${name} v${fixed.apiVersion} request: ${(e as Error).message}`);
    }
    let response: unknown;
    try {
      response = await handler.handle(request, { header, services });
    } catch (e) {
      // Handlers answer every Skein error inside the response; reaching here is a bug.
      services.options.logger.warn(`gateway: ${name} v${fixed.apiVersion} handler failed: ${(e as Error).stack ?? e}`);
      return close(`internal error in ${name}`);
    }
    if (response === null) return { kind: "none" };
    return respond(fixed.correlationId, api.response, response, fixed.apiVersion);
  };
}

function close(reason: string): Outcome {
  return { kind: "close", reason };
}

/**
 *   Response => Size correlation_id body
 */
function respond<In>(correlationId: number, type: KafkaType<unknown, In>, value: In, version: number): Outcome {
  const body = new KafkaWriter();
  type.write(body, value, version);
  const head = new KafkaWriter().int32(4 + body.length).int32(correlationId);
  return { kind: "response", chunks: [...head.toChunks(), ...body.toChunks()] };
}
