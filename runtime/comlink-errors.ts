// comlink turns a thrown error into a plain Error (message, name, stack), which would lose a
// SkeinError's code and context between a worker and its supervisor. This replaces comlink's
// "throw" transfer handler on both sides so typed errors survive the thread boundary.

import { transferHandlers, type TransferHandler } from "comlink";
import { SkeinError, type WireError } from "../protocol/errors.js";

type Serialized = { isError: true; skein: WireError | null; message: string; name: string; stack?: string } | { isError: false; value: unknown };

const original = transferHandlers.get("throw") as TransferHandler<unknown, unknown>;

const handler: TransferHandler<{ value: unknown }, Serialized> = {
  canHandle: (v: unknown): v is { value: unknown } => original.canHandle(v),
  serialize({ value }) {
    if (value instanceof Error) {
      const skein = value instanceof SkeinError ? value.toWire() : null;
      return [{ isError: true, skein, message: value.message, name: value.name, stack: value.stack }, []];
    }
    return [{ isError: false, value }, []];
  },
  deserialize(s) {
    if (!s.isError) throw s.value;
    if (s.skein) throw SkeinError.fromWire(s.skein);
    throw Object.assign(new Error(s.message), { name: s.name, stack: s.stack });
  },
};

transferHandlers.set("throw", handler as TransferHandler<unknown, unknown>);
