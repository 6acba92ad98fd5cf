// Type helpers over an API file's export (`{ request, response }` grammars): what a request
// decodes to and what a response accepts, for handlers and tools.

import type { KafkaType } from "./schema.js";

export type RequestOf<S> = S extends { request: KafkaType<infer R, unknown> } ? R : never;
export type ResponseIn<S> = S extends { response: KafkaType<unknown, infer I> } ? I : never;
