// The Kafka gateway of one broker: a TCP server speaking the Kafka protocol, translating each
// request into Skein actor messages (produce/fetch/list-offset asks to partition leaders,
// admin asks to the controller).
//
// It runs on the broker process's main thread, next to the broker agent, with a NATS
// connection of its own, rather than as an actor in a worker: client sockets cannot move
// between threads, a worker restart would drop every client connection, and the gateway holds
// no state that needs an actor's mailbox (per-connection order is kept by the connection
// itself; the metadata view is rebuilt from the KV). Its per-request work is framing and
// routing; record batches pass through as opaque bytes.

import { createServer, type Server, type Socket } from "node:net";
import { ApiKey } from "../../protocol/kafka/api-keys.js";
import { ClusterClient } from "../cluster/admin.js";
import { ClusterView } from "./cluster-view.js";
import { KafkaConnection } from "./connection.js";
import { createDispatcher } from "./dispatch.js";
import { HANDLERS } from "./handlers/index.js";
import type { GatewayServices, KafkaGatewayOptions, ResolvedGatewayOptions } from "./types.js";

const MIB = 1024 * 1024;
/** Room left in a NATS message for the actor envelope around a record set, bytes. */
const ENVELOPE_MARGIN_BYTES = 64 * 1024;
/** The replica's bound on one fetch, bytes. */
const MAX_REPLICA_FETCH_BYTES = 64 * MIB;
/** Without server info, assume NATS's default max_payload, bytes. */
const DEFAULT_NATS_MAX_PAYLOAD = MIB;
/** Closes for protocol errors are logged at most this often, ms (a fuzzing client must not flood the log). */
const CLOSE_LOG_INTERVAL_MS = 1_000;

/** Produce requests may overlap on a connection (see connection.ts); everything else runs alone. */
const isProduce = (frame: Uint8Array) => frame.length >= 2 && ((frame[0] << 8) | frame[1]) === ApiKey.Produce;

export interface GatewayStats {
  connectionsOpen: number;
  connectionsAccepted: number;
  /** Connections the gateway closed (protocol errors, idle), not the ones clients closed. */
  connectionsClosedByGateway: number;
  lastCloseReason: string | null;
  /** Request bytes received and not yet answered, over all connections. */
  bufferedRequestBytes: number;
}

function resolveOptions(o: KafkaGatewayOptions): ResolvedGatewayOptions {
  const host = o.host ?? "127.0.0.1";
  const wildcard = host === "0.0.0.0" || host === "::" || host === "";
  return {
    brokerId: o.brokerId,
    nats: o.nats,
    cluster: o.cluster ?? "default",
    port: o.port,
    host,
    advertisedHost: o.advertisedHost ?? (wildcard ? "127.0.0.1" : host),
    maxRequestBytes: o.maxRequestBytes ?? 100 * MIB,
    maxInFlightRequestsPerConnection: o.maxInFlightRequestsPerConnection ?? 32,
    maxConnections: o.maxConnections ?? 1024,
    connectionsMaxIdleMs: o.connectionsMaxIdleMs ?? 600_000,
    fetchConcurrency: o.fetchConcurrency ?? 16,
    fetchMaxBytes: o.fetchMaxBytes ?? 50 * MIB,
    fetchLongPollPartitions: o.fetchLongPollPartitions ?? 1000,
    defaultPartitions: o.defaultPartitions ?? 1,
    defaultReplicationFactor: o.defaultReplicationFactor ?? 3,
    startTimeoutMs: o.startTimeoutMs ?? 15_000,
    logger: o.logger ?? { info: (m) => console.log(m), warn: (m) => console.warn(m) },
  };
}

export class KafkaGateway {
  private readonly server: Server;
  private readonly connections = new Set<KafkaConnection>();
  private readonly counters: GatewayStats = { connectionsOpen: 0, connectionsAccepted: 0, connectionsClosedByGateway: 0, lastCloseReason: null, bufferedRequestBytes: 0 };
  private lastCloseLogAt = 0;
  private boundPort = 0;

  private constructor(
    readonly options: ResolvedGatewayOptions,
    private readonly client: ClusterClient,
    private readonly view: ClusterView,
  ) {
    const natsMaxPayload = client.system.nc.info?.max_payload ?? DEFAULT_NATS_MAX_PAYLOAD;
    const gateway = this;
    const services: GatewayServices = {
      brokerId: options.brokerId,
      get port() {
        return gateway.port;
      },
      options,
      client,
      view,
      maxRecordsBytes: natsMaxPayload - ENVELOPE_MARGIN_BYTES,
      maxFetchBytes: Math.min(MAX_REPLICA_FETCH_BYTES, natsMaxPayload - ENVELOPE_MARGIN_BYTES),
      supportedApis: () => [...HANDLERS.values()].map(({ api }) => ({ apiKey: api.apiKey, minVersion: api.minVersion, maxVersion: api.maxVersion })),
    };
    const dispatch = createDispatcher(HANDLERS, services);
    const limits = { maxRequestBytes: options.maxRequestBytes, maxInFlightRequests: options.maxInFlightRequestsPerConnection, idleMs: options.connectionsMaxIdleMs };
    this.server = createServer((socket: Socket) => {
      this.counters.connectionsAccepted++;
      const conn = new KafkaConnection(socket, dispatch, limits, (reason) => this.onClosed(conn, reason), isProduce);
      this.connections.add(conn);
    });
    this.server.maxConnections = options.maxConnections;
  }

  /** Connects to NATS, builds the metadata view, then listens. */
  static async start(options: KafkaGatewayOptions): Promise<KafkaGateway> {
    const resolved = resolveOptions(options);
    const client = await ClusterClient.connect({ nats: resolved.nats, cluster: resolved.cluster, name: `skein:gateway:${resolved.brokerId}` });
    let view: ClusterView | null = null;
    try {
      view = await ClusterView.open(client.meta, resolved.logger, resolved.startTimeoutMs);
      const gateway = new KafkaGateway(resolved, client, view);
      await gateway.listen();
      return gateway;
    } catch (e) {
      view?.close();
      await client.close();
      throw e;
    }
  }

  /** The port clients connect to (the one the OS chose when `options.port` was 0). */
  get port(): number {
    return this.boundPort;
  }

  stats(): GatewayStats {
    let bufferedRequestBytes = 0;
    for (const c of this.connections) bufferedRequestBytes += c.bufferedBytes;
    return { ...this.counters, connectionsOpen: this.connections.size, bufferedRequestBytes };
  }

  private listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen({ port: this.options.port, host: this.options.host }, () => {
        this.server.off("error", reject);
        this.server.on("error", (e) => this.options.logger.warn(`gateway: server error: ${e.message}`));
        const address = this.server.address();
        this.boundPort = typeof address === "object" && address ? address.port : this.options.port;
        resolve();
      });
    });
  }

  private onClosed(conn: KafkaConnection, reason: string | null): void {
    this.connections.delete(conn);
    if (reason === null) return;
    this.counters.connectionsClosedByGateway++;
    this.counters.lastCloseReason = reason;
    const now = Date.now();
    if (now - this.lastCloseLogAt < CLOSE_LOG_INTERVAL_MS) return;
    this.lastCloseLogAt = now;
    this.options.logger.info(`gateway: closed a connection from ${conn.socket.remoteAddress}:${conn.socket.remotePort}: ${reason}`);
  }

  /** Stops accepting, closes every connection, leaves NATS. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const c of this.connections) c.close("gateway shutting down");
    for (const c of this.connections) c.socket.destroy();
    await closed;
    this.view.close();
    await this.client.close();
  }
}
