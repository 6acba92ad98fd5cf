// Public face of Skein's actor runtime: `import { ActorSystem, SkeinNode, defineActor } from "skein/runtime"`.
export { defineActor, type ActorDefinition, type ActorContext, type ReplyHandle, type AskOptions, type ReplyOf, type MessageOf } from "./actor.js";
export { ActorSystem, type ActorRef, type SystemOptions } from "./system.js";
export { SkeinNode, type NodeOptions } from "./node.js";
export { startNatsServer, type NatsServerHandle } from "./nats-server.js";
export * from "./types.js";
export { SkeinError, ErrorCode, isSkeinError } from "../protocol/errors.js";
