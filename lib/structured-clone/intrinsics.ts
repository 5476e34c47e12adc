// Built-in getters and tables shared by the encoder and the decoder.
//
// The encoder reads internal state through the original built-in getters,
// captured once here, rather than through `value.buffer` or `value.source`:
// those can be shadowed by a subclass or an own property, while V8 reads the
// internal slots directly. The getters also work as brand checks.

type Getter<T> = (this: unknown) => T;

function getter<T>(proto: object, key: PropertyKey): Getter<T> {
  const desc = Object.getOwnPropertyDescriptor(proto, key);
  if (desc === undefined || desc.get === undefined) {
    throw new Error(`structured-clone: missing built-in getter ${String(key)}`);
  }
  return desc.get as Getter<T>;
}

/** Returns this built-in getter if the runtime has it (e.g. `ArrayBuffer#detached`). */
function optionalGetter<T>(proto: object, key: PropertyKey): Getter<T> | undefined {
  const desc = Object.getOwnPropertyDescriptor(proto, key);
  return desc?.get as Getter<T> | undefined;
}

const TypedArrayPrototype: object = Object.getPrototypeOf(Uint8Array.prototype);

/** %TypedArray%.prototype[@@toStringTag]: the element type's name, or undefined for any non-typed-array. */
export const typedArrayName = getter<string | undefined>(TypedArrayPrototype, Symbol.toStringTag);
export const typedArrayBuffer = getter<ArrayBuffer>(TypedArrayPrototype, "buffer");
export const typedArrayByteOffset = getter<number>(TypedArrayPrototype, "byteOffset");
export const typedArrayByteLength = getter<number>(TypedArrayPrototype, "byteLength");
export const dataViewBuffer = getter<ArrayBuffer>(DataView.prototype, "buffer");
export const dataViewByteOffset = getter<number>(DataView.prototype, "byteOffset");
export const dataViewByteLength = getter<number>(DataView.prototype, "byteLength");
export const arrayBufferByteLength = getter<number>(ArrayBuffer.prototype, "byteLength");
export const arrayBufferResizable = optionalGetter<boolean>(ArrayBuffer.prototype, "resizable");
export const arrayBufferMaxByteLength = optionalGetter<number>(ArrayBuffer.prototype, "maxByteLength");
export const arrayBufferDetached = optionalGetter<boolean>(ArrayBuffer.prototype, "detached");

export const regExpSource = getter<string>(RegExp.prototype, "source");

/**
 * V8's JSRegExp::Flags bit layout (src/regexp/regexp-flags.h), as written
 * after kRegExp. Bit 6 is V8's experimental 'l' (linear) flag, which no
 * standard flags string produces and which the decoder rejects like V8 does
 * without --enable-experimental-regexp-engine.
 */
export const REGEXP_FLAGS: ReadonlyArray<readonly [bit: number, flag: string, getter: Getter<boolean> | undefined]> = [
  [1 << 0, "g", optionalGetter(RegExp.prototype, "global")],
  [1 << 1, "i", optionalGetter(RegExp.prototype, "ignoreCase")],
  [1 << 2, "m", optionalGetter(RegExp.prototype, "multiline")],
  [1 << 3, "y", optionalGetter(RegExp.prototype, "sticky")],
  [1 << 4, "u", optionalGetter(RegExp.prototype, "unicode")],
  [1 << 5, "s", optionalGetter(RegExp.prototype, "dotAll")],
  [1 << 7, "d", optionalGetter(RegExp.prototype, "hasIndices")],
  [1 << 8, "v", optionalGetter(RegExp.prototype, "unicodeSets")],
];
export const REGEXP_KNOWN_FLAG_BITS = 0x1bf; // every bit above except 'l' (1 << 6)

/**
 * ArrayBufferViewTag subtags written after kArrayBufferView ('V'), keyed by
 * the typed array's @@toStringTag. Float16Array ('h') exists only where the
 * runtime has it (Node 24+, Bun).
 */
export const VIEW_SUBTAG: Readonly<Record<string, number>> = {
  Int8Array: 0x62, // 'b'
  Uint8Array: 0x42, // 'B'
  Uint8ClampedArray: 0x43, // 'C'
  Int16Array: 0x77, // 'w'
  Uint16Array: 0x57, // 'W'
  Int32Array: 0x64, // 'd'
  Uint32Array: 0x44, // 'D'
  Float16Array: 0x68, // 'h'
  Float32Array: 0x66, // 'f'
  Float64Array: 0x46, // 'F'
  BigInt64Array: 0x71, // 'q'
  BigUint64Array: 0x51, // 'Q'
};
export const DATA_VIEW_SUBTAG = 0x3f; // '?' kDataView

type ViewCtor = new (buffer: ArrayBuffer, byteOffset?: number, length?: number) => ArrayBufferView;

/** Maps a view subtag back to its constructor (undefined if unknown or unsupported here). */
export function viewConstructor(subtag: number): ViewCtor | undefined {
  switch (subtag) {
    case 0x62: return Int8Array;
    case 0x42: return Uint8Array;
    case 0x43: return Uint8ClampedArray;
    case 0x77: return Int16Array;
    case 0x57: return Uint16Array;
    case 0x64: return Int32Array;
    case 0x44: return Uint32Array;
    case 0x68: return (globalThis as { Float16Array?: ViewCtor }).Float16Array;
    case 0x66: return Float32Array;
    case 0x46: return Float64Array;
    case 0x71: return BigInt64Array;
    case 0x51: return BigUint64Array;
    case 0x3f: return DataView;
    default: return undefined;
  }
}

/** JSArrayBufferView flags, serialized bit by bit since version 14. */
export const VIEW_FLAG_LENGTH_TRACKING = 1;
export const VIEW_FLAG_BACKED_BY_RAB = 2;

/** True when the host stores multi-byte numbers little-endian (x64, arm64). */
export const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// ---------------------------------------------------------------------------
// Used by the encoder to classify objects and views.

/** Kinds for the encoder's prototype hint (see PROTO_KIND). */
export const Kind = { Date: 1, Map: 2, Set: 3, RegExp: 4, ArrayBuffer: 5, Error: 6, Boxed: 7 } as const;
export type Kind = (typeof Kind)[keyof typeof Kind];

// Direct prototypes of built-ins, to guess an object's kind with one lookup
// before confirming it with a single brand check.
export const PROTO_KIND = new Map<object, Kind>([
  [Date.prototype, Kind.Date],
  [Map.prototype, Kind.Map],
  [Set.prototype, Kind.Set],
  [RegExp.prototype, Kind.RegExp],
  [ArrayBuffer.prototype, Kind.ArrayBuffer],
  [Error.prototype, Kind.Error],
  [EvalError.prototype, Kind.Error],
  [RangeError.prototype, Kind.Error],
  [ReferenceError.prototype, Kind.Error],
  [SyntaxError.prototype, Kind.Error],
  [TypeError.prototype, Kind.Error],
  [URIError.prototype, Kind.Error],
  [Number.prototype, Kind.Boxed],
  [String.prototype, Kind.Boxed],
  [Boolean.prototype, Kind.Boxed],
  [BigInt.prototype, Kind.Boxed],
]);

// Objects V8 refuses (not JS_OBJECT_TYPE or another cloneable instance type)
// that util.types cannot recognise: iterators, WeakRef, FinalizationRegistry.
// Recognised by their direct prototype.
export const UNCLONEABLE_PROTOS = new Set<object>();
{
  const add = (p: unknown): void => {
    if (typeof p === "object" && p !== null) UNCLONEABLE_PROTOS.add(p);
  };
  add(Object.getPrototypeOf([][Symbol.iterator]()));
  add(Object.getPrototypeOf(""[Symbol.iterator]()));
  add(Object.getPrototypeOf(/a/[Symbol.matchAll]("")));
  const g = globalThis as { WeakRef?: { prototype: object }; FinalizationRegistry?: { prototype: object } };
  add(g.WeakRef?.prototype);
  add(g.FinalizationRegistry?.prototype);
}

/**
 * Whether a view on a resizable buffer tracks the buffer's length (was
 * created without an explicit length). JavaScript has no accessor for this,
 * so when the view reaches the end of the buffer we resize the buffer by one
 * element, see whether the view followed, and put the buffer back as it was:
 * growing zero-fills and shrinking back keeps every original byte; shrinking
 * first saves the bytes it drops and restores them after growing back.
 * In the one case no resize can tell (a one-element view at offset 0 of a
 * buffer already at its maximum size) we assume length-tracking.
 */
export function isLengthTracking(
  view: ArrayBufferView,
  buffer: ArrayBuffer,
  byteOffset: number,
  byteLength: number,
  elementSize: number,
  isDataView: boolean,
): boolean {
  const bufferLength = arrayBufferByteLength.call(buffer);
  const trackedLength = Math.floor((bufferLength - byteOffset) / elementSize) * elementSize;
  if (byteLength !== trackedLength) return false;
  const rab = buffer as ArrayBuffer & { resize(n: number): void };
  const lengthNow = (): number => {
    try {
      return isDataView ? dataViewByteLength.call(view) : typedArrayByteLength.call(view);
    } catch {
      return -1; // a DataView out of bounds throws
    }
  };
  if (bufferLength + elementSize <= arrayBufferMaxByteLength!.call(buffer)) {
    rab.resize(bufferLength + elementSize);
    try {
      return lengthNow() !== byteLength;
    } finally {
      rab.resize(bufferLength);
    }
  }
  if (byteLength < elementSize || (byteLength === elementSize && byteOffset === 0)) return true;
  // Shrinking puts a fixed-length view out of bounds (its length reads 0, or a
  // DataView throws), while a length-tracking one just gets shorter.
  const dropped = new Uint8Array(buffer, bufferLength - elementSize, elementSize).slice();
  rab.resize(bufferLength - elementSize);
  try {
    return lengthNow() === byteLength - elementSize;
  } finally {
    rab.resize(bufferLength);
    new Uint8Array(buffer, bufferLength - elementSize, elementSize).set(dropped);
  }
}

// ---------------------------------------------------------------------------
// workerd's enhanced error format (compatibility flag `enhanced_error_serialization`).
//
// With the flag, workerd's Serializer::IsHostObject answers true for native
// errors, so V8 writes kHostObject ('\\') and lets workerd's
// Serializer::WriteHostObject write the rest (src/workerd/jsg/ser.c++):
// SERIALIZATION_TAG_NATIVE_ERROR (10) and an ErrorTag, both as varints, then
// the name only for ErrorTag::UNKNOWN, the message, and a plain object of
// the error's other own properties.

/** SERIALIZATION_TAG_NATIVE_ERROR: the first varint after kHostObject for an error. */
export const WORKERD_NATIVE_ERROR = 10;

/**
 * workerd's `enum class ErrorTag`, indexed by tag number: the `name` that
 * getErrorTagFromName() maps to each tag. Index 0 is UNKNOWN (any other
 * name, which is then written too). Tags 6 to 9 are matched by these names,
 * which no built-in has (WebAssembly.CompileError's name is "CompileError"),
 * so in practice only ToJsError() on the reading side sees them.
 */
export const WORKERD_ERROR_NAMES: readonly string[] = [
  "", // UNKNOWN
  "Error",
  "TypeError",
  "RangeError",
  "ReferenceError",
  "SyntaxError",
  "WasmCompileError",
  "WasmLinkError",
  "WasmRuntimeError",
  "WasmSuspendError",
  "EvalError",
  "URIError",
  "AggregateError",
  "SuppressedError",
];

type AnyErrorCtor = new (...args: never[]) => Error;
const wasm = (globalThis as unknown as { WebAssembly?: Record<string, AnyErrorCtor | undefined> }).WebAssembly;

/**
 * The constructor toJsError() uses for each ErrorTag (v8::Exception::Error,
 * TypeError, ..., WasmCompileError = WebAssembly.CompileError, ...). Tags the
 * runtime has no class for (SuppressedError before Node 24,
 * WebAssembly.SuspendError before Node 24) and UNKNOWN are left undefined:
 * the reader falls back to Error, as toJsError() does for UNKNOWN and for
 * numbers it does not know.
 */
export const WORKERD_ERROR_CTORS: readonly (AnyErrorCtor | undefined)[] = [
  undefined,
  Error,
  TypeError,
  RangeError,
  ReferenceError,
  SyntaxError,
  wasm?.CompileError,
  wasm?.LinkError,
  wasm?.RuntimeError,
  wasm?.SuspendError,
  EvalError,
  URIError,
  AggregateError,
  (globalThis as { SuppressedError?: AnyErrorCtor }).SuppressedError,
];
