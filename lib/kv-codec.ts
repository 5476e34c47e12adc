// Reading and writing `_cf_KV` values and entries through the native layer.
import { native, out, result } from "./native.js";
import { deserialize, ValueEncoder } from "./structured-clone.js";
import { Reader } from "./wire.js";

const encoder = new ValueEncoder();

/** The stored value of `key`, or undefined. */
export function readValue(handle: number, key: string): unknown {
  const length = native.kvGet(handle, key, out);
  if (length < 0) return undefined;
  return deserialize(result(length).subarray(0, length));
}

export function writeValue(handle: number, key: string, value: unknown): void {
  native.kvPut(handle, key, encoder.encode(value));
}

/** Decodes the engine's key/value entries into a Map, in the engine's order. */
export function readEntries<T>(bytes: Uint8Array, length: number): Map<string, T> {
  const map = new Map<string, T>();
  const reader = new Reader(bytes);
  while (reader.pos < length) {
    const key = reader.text();
    map.set(key, deserialize(reader.bytesView()) as T);
  }
  return map;
}

export interface ListOptions {
  start?: string;
  startAfter?: string;
  end?: string;
  prefix?: string;
  reverse?: boolean;
  limit?: number;
}

export function listEntries<T>(handle: number, o: ListOptions = {}): Map<string, T> {
  const length = native.kvList(
    handle,
    optionalString(o.start),
    optionalString(o.startAfter),
    optionalString(o.end),
    optionalString(o.prefix),
    Boolean(o.reverse),
    o.limit === undefined ? undefined : Number(o.limit),
    out,
  );
  return readEntries<T>(result(length), length);
}

function optionalString(v: unknown): string | undefined {
  return v === undefined || v === null ? undefined : String(v);
}

/** Keys are strings; like workerd we stringify what is given, except symbols. */
export function keyString(key: unknown): string {
  if (typeof key === "string") return key;
  if (typeof key === "symbol") throw new TypeError("Cannot convert a Symbol value to a string");
  return String(key);
}
