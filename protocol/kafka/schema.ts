// Declarative message grammars. A message is a `struct` of fields in wire order; a field that
// exists only in some versions is declared with `since`/`until` and a default, so one
// declaration reads and writes every version of an API, in both directions (the gateway
// decodes requests and encodes responses; tests and tools do the opposite with the same
// declaration). The grammar comment at the top of each API file is the reference; the struct
// below it must read the same.

import { KafkaReader, type KafkaWriter, malformed } from "./primitives.js";

/** A wire type: `T` is what reading gives, `In` what writing accepts (optional fields left out). */
export interface KafkaType<T, In = T> {
  read(r: KafkaReader, version: number): T;
  write(w: KafkaWriter, value: In, version: number): void;
  /** Fewest bytes one value takes on the wire (bounds array counts against the frame). */
  readonly minBytes: number;
}

const primitive = <T>(minBytes: number, read: (r: KafkaReader) => T, write: (w: KafkaWriter, v: T) => void): KafkaType<T> => ({
  minBytes,
  read: (r) => read(r),
  write: (w, v) => write(w, v),
});

export const Int8 = primitive(1, (r) => r.int8(), (w, v: number) => w.int8(v));
export const Int16 = primitive(2, (r) => r.int16(), (w, v: number) => w.int16(v));
export const Int32 = primitive(4, (r) => r.int32(), (w, v: number) => w.int32(v));
export const Int64 = primitive(8, (r) => r.int64(), (w, v: number) => w.int64(v));
export const Bool = primitive(1, (r) => r.bool(), (w, v: boolean) => w.bool(v));
export const Str = primitive(2, (r) => r.string(), (w, v: string) => w.nullableString(v));
export const NullableStr = primitive(2, (r) => r.nullableString(), (w, v: string | null) => w.nullableString(v));
export const NullableBytes = primitive(4, (r) => r.nullableBytes(), (w, v: Uint8Array | null) => w.nullableBytes(v));
/** Record batches (RecordBatch v2 for every version Skein speaks), carried as they are. */
export const Records = NullableBytes;

/** ARRAY that must not be null. kafkajs writes -1 for some empty arrays, so -1 reads as []. */
export function array<T, In>(of: KafkaType<T, In>): KafkaType<T[], In[]> {
  return {
    minBytes: 4,
    read(r, version) {
      const n = r.arrayLength(of.minBytes);
      const out: T[] = [];
      for (let i = 0; i < n; i++) out.push(of.read(r, version));
      return out;
    },
    write(w, values, version) {
      w.int32(values.length);
      for (const v of values) of.write(w, v, version);
    },
  };
}

/** ARRAY where null (-1) means something other than empty (e.g. "all topics"). */
export function nullableArray<T, In>(of: KafkaType<T, In>): KafkaType<T[] | null, In[] | null> {
  return {
    minBytes: 4,
    read(r, version) {
      const n = r.arrayLength(of.minBytes);
      if (n === -1) return null;
      const out: T[] = [];
      for (let i = 0; i < n; i++) out.push(of.read(r, version));
      return out;
    },
    write(w, values, version) {
      if (values === null) {
        w.int32(-1);
        return;
      }
      w.int32(values.length);
      for (const v of values) of.write(w, v, version);
    },
  };
}

/** A field present only in versions [since, until]; other versions read `default`. */
export interface VersionedField<T, In = T> {
  readonly type: KafkaType<T, In>;
  readonly since: number;
  readonly until: number;
  readonly default: T;
}

export function since<T, In>(version: number, type: KafkaType<T, In>, fallback: T): VersionedField<T, In> {
  return { type, since: version, until: Number.MAX_SAFE_INTEGER, default: fallback };
}

export function until<T, In>(version: number, type: KafkaType<T, In>, fallback: T): VersionedField<T, In> {
  return { type, since: 0, until: version, default: fallback };
}

type AnyField = KafkaType<any, any> | VersionedField<any, any>;
type Out<F> = F extends VersionedField<infer T, any> ? T : F extends KafkaType<infer T, any> ? T : never;
type In<F> = F extends VersionedField<any, infer I> ? I : F extends KafkaType<any, infer I> ? I : never;
type RequiredKeys<F> = { [K in keyof F]: F[K] extends VersionedField<any, any> ? never : K }[keyof F];
type OptionalKeys<F> = Exclude<keyof F, RequiredKeys<F>>;

export type StructOut<F> = { [K in keyof F]: Out<F[K]> };
export type StructIn<F> = { [K in RequiredKeys<F>]: In<F[K]> } & { [K in OptionalKeys<F>]?: In<F[K]> };

interface FieldEntry {
  name: string;
  type: KafkaType<unknown, unknown>;
  since: number;
  until: number;
  default: unknown;
  optional: boolean;
}

function isVersioned(f: AnyField): f is VersionedField<unknown, unknown> {
  return "since" in f;
}

/** Fields in wire order (object key order). */
export function struct<F extends Record<string, AnyField>>(fields: F): KafkaType<StructOut<F>, StructIn<F>> {
  const entries = Object.entries(fields).map(([name, f]): FieldEntry => {
    if (isVersioned(f)) return { name, type: f.type, since: f.since, until: f.until, default: f.default, optional: true };
    return { name, type: f as KafkaType<unknown, unknown>, since: 0, until: Number.MAX_SAFE_INTEGER, default: undefined, optional: false };
  });
  const minBytes = entries.filter((e) => !e.optional).reduce((n, e) => n + e.type.minBytes, 0);
  return {
    minBytes,
    read(r, version) {
      const out: Record<string, unknown> = {};
      for (const e of entries) {
        if (version < e.since || version > e.until) out[e.name] = e.default;
        else {
          try {
            out[e.name] = e.type.read(r, version);
          } catch (err) {
            throw withField(err, e.name);
          }
        }
      }
      return out as StructOut<F>;
    },
    write(w, value, version) {
      const v = value as Record<string, unknown>;
      for (const e of entries) {
        if (version < e.since || version > e.until) continue;
        const field = v[e.name] === undefined ? e.default : v[e.name];
        if (field === undefined) throw new TypeError(`field ${e.name} is required at version ${version}`);
        e.type.write(w, field, version);
      }
    },
  };
}

/** Prefixes the failing field to the error's path, so a decode error names "topics.partitions.records". */
function withField(err: unknown, name: string): unknown {
  const e = err as { context?: { field?: string } };
  if (e?.context && typeof e.context === "object") e.context.field = e.context.field ? `${name}.${e.context.field}` : name;
  return err;
}

/** Decodes `type` at `version` and requires the buffer to end exactly there. */
export function decodeExact<T>(type: KafkaType<T, unknown>, buf: Uint8Array, pos: number, version: number): T {
  const r = new KafkaReader(buf, pos);
  const value = type.read(r, version);
  if (r.remaining !== 0) throw malformed(`${r.remaining} unexpected bytes after the message`);
  return value;
}
