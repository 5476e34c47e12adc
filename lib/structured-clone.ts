// Structured clone in V8's ValueSerializer wire format (version 15): the
// bytes workerd keeps in `_cf_KV.value` of a Durable Object's SQLite file.
//
// Pure TypeScript, so Node (which has V8's serializer) and Bun (whose
// `node:v8` writes JavaScriptCore's format) produce identical bytes for the
// same value, and both read what workerd wrote. See encoder.ts for the rules
// used where V8's output depends on its heap state (Smi range, elements
// kinds), and decoder.ts for what is read.
//
// Errors: serialize() writes V8's own error format ('r'), as workerd does for
// Workers with a compatibility date before 2026-04-21. From that date
// workerd's `enhanced_error_serialization` flag stores errors as host
// objects instead; deserialize() reads both, and
// `new ValueEncoder({ errors: "workerd" })` writes the newer one (see
// ValueEncoderOptions for when to choose it).

import { ValueEncoder } from "./structured-clone/encoder.js";
import { ValueDecoder } from "./structured-clone/decoder.js";

export { ValueEncoder } from "./structured-clone/encoder.js";
export type { ValueEncoderOptions } from "./structured-clone/encoder.js";
export { DataCloneError } from "./structured-clone/errors.js";

const sharedEncoder = new ValueEncoder();
const sharedDecoder = new ValueDecoder();

/**
 * Serializes `value` into a new Uint8Array (header 0xFF 0x0F, then the value).
 * Throws a DataCloneError (a DOMException where the runtime has one) for
 * values V8 cannot clone: functions, symbols, WeakMap, WeakSet, Promise,
 * SharedArrayBuffer, proxies, ...
 */
export function serialize(value: unknown): Uint8Array {
  return sharedEncoder.encodeCopy(value);
}

/**
 * Reads one value from V8 ValueSerializer data, versions 13 to 15 (data
 * without a header is read as version 13). ArrayBuffers in the result are
 * fresh copies, never views into `bytes`.
 */
export function deserialize(bytes: Uint8Array): unknown {
  if (!(bytes instanceof Uint8Array)) bytes = toUint8Array(bytes);
  // A setter or constructor run while decoding may call deserialize() again.
  return (sharedDecoder.busy ? new ValueDecoder() : sharedDecoder).decode(bytes);
}

function toUint8Array(bytes: unknown): Uint8Array {
  if (ArrayBuffer.isView(bytes)) return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes instanceof ArrayBuffer) return new Uint8Array(bytes);
  throw new TypeError("deserialize() expects a Uint8Array");
}
