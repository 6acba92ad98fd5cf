// Contracts of the Kafka gateway: its options (every bound is one of them, with its unit and
// default) and what request handlers get to work with.

import type { NatsOptions } from "../../runtime/types.js";
import type { ClusterClient } from "../cluster/admin.js";
import type { RequestHeader } from "../../protocol/kafka/header.js";
import type { ClusterView } from "./cluster-view.js";

export interface KafkaGatewayOptions {
  /** The broker this gateway speaks for: its node_id in Metadata. */
  brokerId: number;
  nats: NatsOptions;
  /** Cluster namespace. Default "default". */
  cluster?: string;
  /** TCP port to listen on; 0 = a free port chosen by the OS (see `KafkaGateway.port`). */
  port: number;
  /** Interface to listen on. Default "127.0.0.1". */
  host?: string;
  /**
   * Host advertised in Metadata for every broker's gateway. Default: `host`, or 127.0.0.1
   * when `host` is a wildcard. (A broker registration carries its gateway port, not a host,
   * so all brokers are advertised on this host.)
   */
  advertisedHost?: string;
  /** Largest request frame accepted, bytes (a larger size prefix closes the connection), and the most request bytes one connection holds queued, running or partial (at the bound, reading pauses). Default 100 MiB. */
  maxRequestBytes?: number;
  /** Requests received and not yet answered per connection; at the limit, reading pauses. Default 32. */
  maxInFlightRequestsPerConnection?: number;
  /** Open connections at once; more are refused at accept. Memory for requests is bounded by about maxConnections × maxRequestBytes, for responses by about maxConnections × fetchMaxBytes. Default 1024. */
  maxConnections?: number;
  /** A connection without traffic and without a request in flight is closed after this long, ms. Default 600000 (Kafka's connections.max.idle.ms). */
  connectionsMaxIdleMs?: number;
  /** Partitions one Fetch request reads at once. Default 16. */
  fetchConcurrency?: number;
  /**
   * Largest Fetch response, bytes: a client's max_bytes is clamped to it, and reads stop once
   * the response is full (its first non-empty partition stays whole, KIP-74). Default 50 MiB
   * (Kafka's broker fetch.max.bytes is 55 MB).
   */
  fetchMaxBytes?: number;
  /** Partitions one Fetch long-polls at once; a request naming more waits on the first ones only. Default 1000. */
  fetchLongPollPartitions?: number;
  /** Partitions of a topic created with num_partitions = -1. Default 1. */
  defaultPartitions?: number;
  /** Replication factor of a topic created with replication_factor = -1, capped by the live brokers. Default 3. */
  defaultReplicationFactor?: number;
  /** How long start() waits for the first complete view of the cluster metadata, ms. Default 15000. */
  startTimeoutMs?: number;
  logger?: GatewayLogger;
}

export interface GatewayLogger {
  info(message: string): void;
  warn(message: string): void;
}

export type ResolvedGatewayOptions = Required<Omit<KafkaGatewayOptions, "logger">> & { logger: GatewayLogger };

/** What a request handler works with. */
export interface GatewayServices {
  readonly brokerId: number;
  /** The port the gateway listens on (the bound one when `options.port` is 0). */
  readonly port: number;
  readonly options: ResolvedGatewayOptions;
  readonly client: ClusterClient;
  readonly view: ClusterView;
  /** Largest record set one Produce partition may carry: what fits in one NATS message with room for the envelope, bytes. */
  readonly maxRecordsBytes: number;
  /** Largest read asked of one replica per fetch, bytes (same NATS bound). */
  readonly maxFetchBytes: number;
  /** [apiKey, minVersion, maxVersion] of every API served, for ApiVersions. */
  supportedApis(): { apiKey: number; minVersion: number; maxVersion: number }[];
}

export interface RequestContext {
  readonly header: RequestHeader;
  readonly services: GatewayServices;
}
