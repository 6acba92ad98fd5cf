// The shape every API file exports: its key, the versions Skein serves, and one grammar per
// direction that covers all of them.

import type { KafkaType } from "./schema.js";

export interface ApiSpec<Req = unknown, Res = unknown, ResIn = Res, ReqIn = Req> {
  readonly name: string;
  readonly apiKey: number;
  readonly minVersion: number;
  readonly maxVersion: number;
  readonly request: KafkaType<Req, ReqIn>;
  readonly response: KafkaType<Res, ResIn>;
}

/** Request as decoded and response as accepted by the encoder, for an API file's export. */
export type RequestOf<S> = S extends { request: KafkaType<infer R, unknown> } ? R : never;
export type ResponseIn<S> = S extends { response: KafkaType<unknown, infer I> } ? I : never;
export type ResponseOf<S> = S extends { response: KafkaType<infer R, unknown> } ? R : never;
export type RequestIn<S> = S extends { request: KafkaType<unknown, infer I> } ? I : never;
