// A request handler: the API grammar it serves (key, versions, request and response types)
// and the function from a decoded request to a response. The gateway's table of handlers is
// the single place that says what Skein serves; ApiVersions advertises exactly it.

import type { KafkaType } from "../../protocol/kafka/schema.js";
import type { RequestContext } from "./types.js";

export interface ApiGrammar<Req, ResIn> {
  readonly name: string;
  readonly apiKey: number;
  readonly minVersion: number;
  readonly maxVersion: number;
  readonly request: KafkaType<Req, unknown>;
  readonly response: KafkaType<unknown, ResIn>;
}

export interface ApiHandler {
  readonly api: ApiGrammar<unknown, unknown>;
  /** The response, or null when the protocol says none is sent (acks=0 produce). */
  handle(request: unknown, ctx: RequestContext): Promise<unknown>;
}

/** Ties a handler to its grammar so request and response types are checked against it. */
export function defineHandler<Req, ResIn>(api: ApiGrammar<Req, ResIn>, handle: (request: Req, ctx: RequestContext) => Promise<ResIn | null>): ApiHandler {
  return { api: api as ApiGrammar<unknown, unknown>, handle: handle as ApiHandler["handle"] };
}
