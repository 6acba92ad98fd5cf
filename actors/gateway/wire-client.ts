// A minimal Kafka protocol client over Skein's own codec: one connection, requests encoded and
// responses decoded with the same grammars the gateway serves. For tests (raw fetches, which
// kafkajs only does inside a consumer group; malformed frames), benchmarks and probes; not
// a producer or consumer library.

import { connect, type Socket } from "node:net";
import { FrameDecoder } from "../../protocol/kafka/framing.js";
import { writeRequestHeader } from "../../protocol/kafka/header.js";
import { KafkaReader, KafkaWriter } from "../../protocol/kafka/primitives.js";
import type { KafkaType } from "../../protocol/kafka/schema.js";

export interface WireApi<ReqIn, Res> {
  readonly name: string;
  readonly apiKey: number;
  readonly request: KafkaType<unknown, ReqIn>;
  readonly response: KafkaType<Res, unknown>;
}

interface Pending {
  correlationId: number;
  resolve(body: Uint8Array): void;
  reject(e: Error): void;
}

/** Responses are bounded too: a broker is trusted, but not without limit, bytes. */
const MAX_RESPONSE_BYTES = 256 * 1024 * 1024;

export class KafkaWireClient {
  private readonly decoder = new FrameDecoder(MAX_RESPONSE_BYTES, 4);
  private readonly pending: Pending[] = [];
  private nextCorrelationId = 1;
  private closedError: Error | null = null;
  /** Resolves when the connection has closed (either side). */
  readonly closed: Promise<void>;

  private constructor(
    readonly socket: Socket,
    readonly clientId: string,
  ) {
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", (e) => this.fail(e));
    this.closed = new Promise((resolve) => socket.once("close", () => resolve()));
    void this.closed.then(() => this.fail(new Error("connection closed")));
  }

  static connect(port: number, host = "127.0.0.1", clientId = "skein-wire-client"): Promise<KafkaWireClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host }, () => {
        socket.off("error", reject);
        resolve(new KafkaWireClient(socket, clientId));
      });
      socket.once("error", reject);
    });
  }

  /** Sends one request and resolves with its decoded response. */
  async send<ReqIn, Res>(api: WireApi<ReqIn, Res>, version: number, request: ReqIn): Promise<Res> {
    const body = await this.sendEncoded(api, version, request);
    const r = new KafkaReader(body, 4); // after correlation_id
    return api.response.read(r, version);
  }

  private sendEncoded<ReqIn>(api: WireApi<ReqIn, unknown>, version: number, request: ReqIn): Promise<Uint8Array> {
    if (this.closedError) return Promise.reject(this.closedError);
    const correlationId = this.nextCorrelationId++;
    const w = new KafkaWriter();
    writeRequestHeader(w, { apiKey: api.apiKey, apiVersion: version, correlationId, clientId: this.clientId });
    api.request.write(w, request, version);
    const size = new KafkaWriter().int32(w.length);
    const done = new Promise<Uint8Array>((resolve, reject) => this.pending.push({ correlationId, resolve, reject }));
    this.writeChunks([...size.toChunks(), ...w.toChunks()]);
    return done;
  }

  /** Writes bytes as they are (for malformed-frame tests). */
  writeRaw(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  private writeChunks(chunks: Uint8Array[]): void {
    this.socket.cork();
    for (const c of chunks) this.socket.write(c);
    this.socket.uncork();
  }

  private onData(chunk: Uint8Array): void {
    this.decoder.push(chunk);
    try {
      for (let frame = this.decoder.next(); frame !== null; frame = this.decoder.next()) {
        const correlationId = new KafkaReader(frame).int32();
        const p = this.pending.shift();
        if (!p) throw new Error(`response ${correlationId} to no request`);
        if (p.correlationId !== correlationId) throw new Error(`response ${correlationId} while waiting for ${p.correlationId}`);
        p.resolve(frame);
      }
    } catch (e) {
      this.fail(e as Error);
      this.socket.destroy();
    }
  }

  private fail(e: Error): void {
    this.closedError ??= e;
    for (const p of this.pending.splice(0)) p.reject(e);
  }

  close(): Promise<void> {
    this.socket.end();
    return this.closed;
  }
}
