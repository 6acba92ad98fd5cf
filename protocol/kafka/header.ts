// Request and response headers (https://kafka.apache.org/protocol#protocol_messages).
//
//   Request Header v1 => request_api_key request_api_version correlation_id client_id
//     request_api_key => INT16
//     request_api_version => INT16
//     correlation_id => INT32
//     client_id => NULLABLE_STRING
//   Request Header v2 => v1 TAG_BUFFER     (flexible versions, e.g. ApiVersions v3+)
//
//   Response Header v0 => correlation_id
//     correlation_id => INT32
//
// Every version Skein serves uses header v1. A request in a flexible version (header v2) is
// never decoded past its fixed fields: the gateway only needs key, version and correlation id
// to answer ApiVersions v3+ with UNSUPPORTED_VERSION, which is what Kafka does.

import { KafkaReader, KafkaWriter } from "./primitives.js";

export interface RequestHeader {
  apiKey: number;
  apiVersion: number;
  correlationId: number;
  clientId: string | null;
}

/** Bytes of key + version + correlation id: a shorter frame cannot be answered at all. */
export const MIN_REQUEST_HEADER_BYTES = 8;

/** The fixed fields only; throws INVALID_REQUEST on a frame shorter than them. */
export function readRequestHeaderFixed(frame: Uint8Array): Omit<RequestHeader, "clientId"> {
  const r = new KafkaReader(frame);
  return { apiKey: r.int16(), apiVersion: r.int16(), correlationId: r.int32() };
}

/** Header v1; returns it and where the body starts. */
export function readRequestHeader(frame: Uint8Array): { header: RequestHeader; bodyOffset: number } {
  const r = new KafkaReader(frame);
  const header = { apiKey: r.int16(), apiVersion: r.int16(), correlationId: r.int32(), clientId: r.nullableString() };
  return { header, bodyOffset: r.pos };
}

export function writeRequestHeader(w: KafkaWriter, h: RequestHeader): KafkaWriter {
  return w.int16(h.apiKey).int16(h.apiVersion).int32(h.correlationId).nullableString(h.clientId);
}
