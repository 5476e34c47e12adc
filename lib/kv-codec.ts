// Reading and writing `_cf_KV` values and entries through the native layer.
import { native, out, result } from "./native.js";
import { deserialize, ValueEncoder } from "./structured-clone.js";
import { ByteWriter, Reader } from "./wire.js";

/**
 * How stored Errors are written: "v8" (V8's own format, what workerd writes before
 * compat date 2026-04-21) or "workerd" (its enhanced_error_serialization format).
 */
export type StoredErrorFormat = "v8" | "workerd";

const encoders: Record<StoredErrorFormat, ValueEncoder> = { v8: new ValueEncoder(), workerd: new ValueEncoder({ errors: "workerd" }) };

/** The encoder of stored values for objects whose registry stores Errors as `errors`. */
export function valueEncoder(errors: StoredErrorFormat): ValueEncoder {
  return encoders[errors];
}

/** The key (or keys, or list options) of the current call, as WTF-8 (see wire.ts). */
const keys = new ByteWriter(1024);

function encodeKey(key: string): number {
  keys.reset().wtf8(key);
  return keys.length;
}

/** The stored value of `key`, or undefined. */
export function readValue(handle: number, key: string): unknown {
  const keyLength = encodeKey(key);
  const length = native.kvGet(handle, keys.bytes, keyLength, out);
  if (length < 0) return undefined;
  return deserialize(result(length).subarray(0, length));
}

// The limits of Cloudflare's KV storage backend, which KV-backed classes have in production
// (SQLite-backed ones only have SQLite's row limit). Its values are measured serialized;
// miniflare v2, written against production, let them run 32 bytes over for V8's framing.
const MAX_KEY_BYTES = 2048;
const MAX_VALUE_BYTES = 128 * 1024;
const VALUE_FRAMING_SLACK = 32;

/** Throws the KV backend's error for a key over its limit (UTF-8 bytes). */
export function checkKvBackendKey(key: string): void {
  if (key.length > MAX_KEY_BYTES / 3 && Buffer.byteLength(key, "utf8") > MAX_KEY_BYTES) {
    throw new RangeError(`Keys cannot be larger than ${MAX_KEY_BYTES} bytes.`);
  }
}

/** Stores `value` under `key`; `kvBackend` applies the KV backend's key and value limits. */
export function writeValue(handle: number, key: string, value: unknown, encoder: ValueEncoder, kvBackend = false): void {
  if (kvBackend) checkKvBackendKey(key);
  const bytes = encoder.encode(value);
  if (kvBackend && bytes.length > MAX_VALUE_BYTES + VALUE_FRAMING_SLACK) {
    throw new RangeError(`Values cannot be larger than ${MAX_VALUE_BYTES} bytes.`);
  }
  const keyLength = encodeKey(key);
  native.kvPut(handle, keys.bytes, keyLength, bytes);
}

export function deleteKey(handle: number, key: string): boolean {
  const keyLength = encodeKey(key);
  return native.kvDelete(handle, keys.bytes, keyLength);
}

/** Decodes the engine's key/value entries into a Map, in the engine's order. */
function readEntries<T>(bytes: Uint8Array, length: number): Map<string, T> {
  const map = new Map<string, T>();
  const reader = new Reader(bytes);
  while (reader.pos < length) {
    const key = reader.text();
    map.set(key, deserialize(reader.bytesView()) as T);
  }
  return map;
}

/** A page of `kv.list()`: its entries, and the last key as stored, to go on after it. */
export interface ListPage<T> {
  entries: [string, T][];
  lastKey: Uint8Array | undefined;
}

/**
 * Lists like `listEntries`, but as an array: keys holding lone surrogates are stored apart
 * (as WTF-8) yet read back with U+FFFD in their place, so two of them can read as the same
 * string, and workerd's `kv.list()` yields both. `after` (a stored key, as a previous page's
 * `lastKey`) goes on past that exact key, which its decoded string may not name.
 */
export function listEntryArray<T>(handle: number, o: ListOptions, after?: Uint8Array): ListPage<T> {
  keys.reset();
  if (after !== undefined && !o.reverse) {
    keys.optionalText(undefined);
    keys.byte(1);
    keys.blob(after);
  } else {
    keys.optionalText(optionalString(o.start));
    keys.optionalText(optionalString(o.startAfter));
  }
  if (after !== undefined && o.reverse) {
    keys.byte(1);
    keys.blob(after);
  } else {
    keys.optionalText(optionalString(o.end));
  }
  keys.optionalText(optionalString(o.prefix));
  const limit = o.limit === undefined ? undefined : Number(o.limit);
  const length = native.kvList(handle, keys.bytes, keys.length, Boolean(o.reverse), limit, out);
  const bytes = result(length);
  const entries: [string, T][] = [];
  const reader = new Reader(bytes);
  let lastKey: Uint8Array | undefined;
  while (reader.pos < length) {
    const at = reader.pos;
    const key = reader.text();
    lastKey = bytes.subarray(at + 4, reader.pos);
    entries.push([key, deserialize(reader.bytesView()) as T]);
  }
  // A copy (not slice(), which on a Node Buffer, an overflow result, is a view): the
  // result buffer is reused by the next native call.
  return { entries, lastKey: lastKey === undefined ? undefined : new Uint8Array(lastKey) };
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
  keys.reset();
  keys.optionalText(optionalString(o.start));
  keys.optionalText(optionalString(o.startAfter));
  keys.optionalText(optionalString(o.end));
  keys.optionalText(optionalString(o.prefix));
  const limit = o.limit === undefined ? undefined : Number(o.limit);
  const length = native.kvList(handle, keys.bytes, keys.length, Boolean(o.reverse), limit, out);
  return readEntries<T>(result(length), length);
}

/** The entries of the keys that exist, in key order (see `storage.get(keys[])`). */
export function getEntries<T>(handle: number, list: string[]): Map<string, T> {
  keys.reset();
  for (const key of list) keys.text(key);
  const length = native.kvGetMany(handle, keys.bytes, keys.length, out);
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
