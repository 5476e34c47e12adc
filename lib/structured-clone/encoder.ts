// Encoder for V8's ValueSerializer wire format, version 15.
//
// Written from the format as V8 defines it (src/objects/value-serializer.cc)
// and checked byte for byte against `new v8.Serializer()` on Node and against
// what workerd stores in `_cf_KV.value`. Tag names in comments are V8's
// SerializationTag names. Tags are written as numeric literals, not enum
// members: TypeScript's `verbatimModuleSyntax` keeps enums as runtime objects,
// and a property load per byte is measurable on this hot path.
//
// Where V8's output depends on heap state that JavaScript cannot observe, we
// pick what V8 writes for a freshly created literal of the same value:
//
// - Numbers. V8 writes a Smi as kInt32 ('I', zigzag varint) and anything else
//   as kDouble ('N', float64 LE). Smi range depends on the build: Node on x64
//   has 32-bit Smis, workerd is built with pointer compression and has 31-bit
//   Smis. workerd is the peer that reads and writes our SQLite files, so we
//   use its range, [-2**30, 2**30 - 1]. Measured with miniflare 4.20260730.0
//   (`ctx.storage.put(k, v)`, bytes read back from `_cf_KV.value`):
//     2**30 - 1    -> ff0f 49 feffffff07          (kInt32)
//     -(2**30)     -> ff0f 49 ffffffff07          (kInt32)
//     2**30        -> ff0f 4e 000000000000d041    (kDouble)
//     -(2**30) - 1 -> ff0f 4e 000040000000d0c1    (kDouble)
//     2**31 - 1    -> ff0f 4e 0000c0ffffffdf41    (kDouble; Node writes kInt32)
//     [1, 2**30]   -> ff0f 41 02 4e..f03f 4e..d041 24 00 02 (double array)
//   -0 and every non-integer are kDouble on both.
// - Arrays. V8 picks the format from the elements kind: packed arrays are
//   dense ('A' ... '$'), holey ones sparse ('a' ... '@'). A literal is holey
//   exactly when it has a hole, so we check for holes. A packed array whose
//   elements are all numbers, at least one of them not a Smi, is
//   PACKED_DOUBLE_ELEMENTS, and V8 writes every element as kDouble (even 1).
// - Strings. V8 writes a flat one-byte string as kOneByteString ('"') and a
//   two-byte string as kTwoByteString ('c'). A literal is one-byte exactly
//   when every code unit is <= 0xFF, so that is our rule.
// - NaN is always written as the canonical quiet NaN (0x7FF8000000000000),
//   so the same value gives the same bytes everywhere.
//
// Errors are written in V8's own format (kError, 'r') by default, which is
// what workerd writes before compatibility date 2026-04-21 and reads at any
// date. `new ValueEncoder({ errors: "workerd" })` writes them as workerd does
// with `enhanced_error_serialization` (see writeWorkerdError()).

import { types } from "node:util";
import { cloneError, notCloneable, DETACHED_MESSAGE } from "./errors.js";
import {
  Kind,
  PROTO_KIND,
  UNCLONEABLE_PROTOS,
  isLengthTracking,
  LITTLE_ENDIAN_HOST,
  REGEXP_FLAGS,
  VIEW_FLAG_BACKED_BY_RAB,
  VIEW_FLAG_LENGTH_TRACKING,
  VIEW_SUBTAG,
  DATA_VIEW_SUBTAG,
  WORKERD_ERROR_NAMES,
  WORKERD_NATIVE_ERROR,
  arrayBufferByteLength,
  arrayBufferDetached,
  arrayBufferMaxByteLength,
  arrayBufferResizable,
  dataViewBuffer,
  dataViewByteLength,
  dataViewByteOffset,
  regExpSource,
  typedArrayBuffer,
  typedArrayByteLength,
  typedArrayByteOffset,
  typedArrayName,
} from "./intrinsics.js";

const ObjectPrototype = Object.prototype;
const getPrototypeOf = Object.getPrototypeOf;
const objectKeys = Object.keys;
const getOwnPropertyNames = Object.getOwnPropertyNames;
const propertyIsEnumerable = Object.prototype.propertyIsEnumerable;
const getOwnPropertyDescriptor = Object.getOwnPropertyDescriptor;
const hasOwn = Object.hasOwn;
const isArray = Array.isArray;
const isView = ArrayBuffer.isView;
const MapForEach = Map.prototype.forEach;
const SetForEach = Set.prototype.forEach;
const DateGetTime = Date.prototype.getTime;
const NumberValueOf = Number.prototype.valueOf;
const StringValueOf = String.prototype.valueOf;
const BooleanValueOf = Boolean.prototype.valueOf;
const BigIntValueOf = BigInt.prototype.valueOf;
const textEncoder = new TextEncoder();

const INITIAL_CAPACITY = 256;
/** A buffer grown past this by one large value is dropped at the next encode(). */
const MAX_RETAINED_CAPACITY = 1 << 20;
/** Up to this many objects, back-references are found by a linear scan (no Map). */
const LINEAR_ID_LIMIT = 16;
/** From this length on, try TextEncoder.encodeInto as a fast ASCII copy. */
const ENCODE_INTO_MIN_LENGTH = 64;
/** Views of outputs shorter than this are cached; see ValueEncoder.view(). */
const VIEW_CACHE_SIZE = 128;
/** 2**64 - 1: a BigInt magnitude up to this has a single 64-bit digit. */
const MAX_ONE_DIGIT = 0xffff_ffff_ffff_ffffn;

/** True if V8 would write this number as a Smi in workerd (31-bit range, not -0). */
function isSmi(v: number): boolean {
  return (v << 1) >> 1 === v && (v !== 0 || 1 / v > 0);
}

/** Number of bytes WriteVarint uses for an unsigned 32-bit value. */
function varintSize(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5;
}

/**
 * The key as an array index (0 .. 2**32 - 2), or -1. V8 stores such keys as
 * elements and writes them as numbers, not strings.
 */
function arrayIndex(key: string): number {
  const n = key.length;
  if (n > 10 || (n > 1 && key.charCodeAt(0) === 0x30)) return -1;
  let v = 0;
  for (let i = 0; i < n; i++) {
    const d = key.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return n > 0 && v <= 4294967294 ? v : -1;
}

/** workerd's getErrorTagFromName(): a standard error name to its ErrorTag (absent: UNKNOWN, 0). */
const WORKERD_ERROR_TAG = new Map<string, number>(WORKERD_ERROR_NAMES.map((name, tag) => [name, tag]));
WORKERD_ERROR_TAG.delete("");

/**
 * Own properties the engine gives an error besides `stack`, `message` and
 * `cause`: none in V8, but JavaScriptCore (Bun) adds `line`, `column`,
 * `sourceURL`, `originalLine` and `originalColumn`, non-enumerable. workerd's
 * errors never have them, so the workerd format leaves them out (when still
 * non-enumerable, i.e. not defined by the program).
 */
const ENGINE_ERROR_KEYS: ReadonlySet<string> = new Set(
  withStackTraces(() => getOwnPropertyNames(new Error("m", { cause: 0 }))).filter(
    (key) => key !== "stack" && key !== "message" && key !== "cause",
  ),
);
/**
 * Whether the engine creates `stack` as an error's first own property, as V8
 * (and so workerd) does. JavaScriptCore adds it last, after `message`,
 * `cause` or `errors`; the workerd format then moves it to the front, where
 * V8 would have it.
 */
const STACK_IS_FIRST = withStackTraces(() => getOwnPropertyNames(new Error("m", { cause: 0 }))[0] === "stack");

/** Runs `fn` with Error.stackTraceLimit at its default, so that errors get their usual stack. */
function withStackTraces<T>(fn: () => T): T {
  const E = Error as { stackTraceLimit?: unknown };
  const limit = E.stackTraceLimit;
  E.stackTraceLimit = 10;
  try {
    return fn();
  } finally {
    E.stackTraceLimit = limit;
  }
}

/** Options for {@link ValueEncoder}. */
export interface ValueEncoderOptions {
  /**
   * How Error objects are written:
   *
   * - `"v8"` (the default): V8's own kError ('r') format: type, message,
   *   stack and cause. This is what workerd writes into `_cf_KV.value` for
   *   Workers with a compatibility date before 2026-04-21, and workerd reads
   *   it at any date.
   * - `"workerd"`: the host-object format workerd writes with the
   *   `enhanced_error_serialization` compatibility flag, on by default from
   *   compatibility date 2026-04-21 (off with `legacy_error_serialization`):
   *   the type, the message, and all the error's other own properties
   *   (stack, cause, a custom name, `code`, ...), which read back as own
   *   enumerable properties. Choose it to store errors exactly as workerd
   *   does for a Worker at such a date (byte for byte), or to keep custom
   *   names and own properties. Keep the default to match workerd's bytes
   *   for an older date, or when the data must be readable by plain V8
   *   (Node's `v8.deserialize()`) or by workerd releases older than the
   *   flag: current workerd reads both formats at any date (checked with
   *   workerd 1.20260730.1 at 2024-01-01 and 2026-04-20), but only workerd
   *   knows this host object. The runtime will pick it from the Durable
   *   Object's compatibility date (#6).
   */
  errors?: "v8" | "workerd";
}

/**
 * Serializes values to V8's ValueSerializer format (version 15), reusing one
 * growable buffer across calls.
 */
export class ValueEncoder {
  private buf!: Uint8Array;
  private dv!: DataView;
  /** Same memory as `buf`, for writing two-byte strings (little-endian hosts only). */
  private u16!: Uint16Array | null;
  private pos = 0;
  /** Cached views of the buffer, by length; see view(). */
  private views!: (Uint8Array | undefined)[];
  /** Objects written so far; an object's index is its back-reference id. */
  private readonly objs: object[] = [];
  private nObjs = 0;
  /** Used instead of the linear scan of `objs` once a value holds many objects. */
  private idMap: Map<object, number> | null = null;
  private spareMap: Map<object, number> | null = null;
  private busy = false;
  private readonly options: ValueEncoderOptions;
  /** options.errors === "workerd": write errors in workerd's enhanced format. */
  private readonly workerdErrors: boolean;

  constructor(options: ValueEncoderOptions = {}) {
    const errors = options.errors ?? "v8";
    if (errors !== "v8" && errors !== "workerd") {
      throw new TypeError(`ValueEncoder: options.errors must be "v8" or "workerd", got ${String(errors)}`);
    }
    this.options = { errors };
    this.workerdErrors = errors === "workerd";
    this.reset(INITIAL_CAPACITY);
  }

  /**
   * Serializes `value`: header 0xFF 0x0F (kVersion, 15), then the value.
   * The returned view is into this encoder's buffer and is only valid until
   * the next call to encode(), which may even return the same Uint8Array
   * object again (with new contents). Copy it, or use encodeCopy(), to keep it.
   */
  encode(value: unknown): Uint8Array {
    // A getter run while serializing may itself call encode(); give it its own state.
    if (this.busy) return new ValueEncoder(this.options).encode(value);
    if (this.buf.length > MAX_RETAINED_CAPACITY) this.reset(INITIAL_CAPACITY);
    this.busy = true;
    this.pos = 2;
    this.protoState = 0;
    try {
      this.writeValue(value);
    } finally {
      this.busy = false;
      if (this.nObjs !== 0) this.clearIds();
    }
    return this.view(this.pos);
  }

  /**
   * A view of the first `n` bytes of the buffer. Creating a typed array costs
   * about as much as encoding a small value, so views of short outputs are
   * cached by length and handed out again (they all look into the same
   * buffer, and each is only promised to be valid until the next encode()).
   */
  private view(n: number): Uint8Array {
    if (n >= VIEW_CACHE_SIZE) return new Uint8Array(this.buf.buffer, 0, n);
    let v = this.views[n];
    if (v === undefined) v = this.views[n] = new Uint8Array(this.buf.buffer, 0, n);
    return v;
  }

  /** Like encode(), but returns a copy that stays valid. */
  encodeCopy(value: unknown): Uint8Array {
    const view = this.encode(value);
    const n = view.length;
    const copy = new Uint8Array(n);
    if (n <= 64) for (let i = 0; i < n; i++) copy[i] = view[i]!;
    else copy.set(view);
    return copy;
  }

  private reset(capacity: number): void {
    this.setBuffer(new Uint8Array(capacity));
    this.buf[0] = 0xff; // kVersion
    this.buf[1] = 0x0f; // version 15, kept in place across encodes
  }

  private setBuffer(buf: Uint8Array): void {
    this.buf = buf;
    this.views = new Array<Uint8Array | undefined>(VIEW_CACHE_SIZE).fill(undefined);
    this.dv = new DataView(buf.buffer);
    this.u16 = LITTLE_ENDIAN_HOST ? new Uint16Array(buf.buffer) : null;
  }

  /** Makes room for `extra` more bytes. Capacity stays a power of two (so `u16` always fits). */
  private grow(extra: number): void {
    const needed = this.pos + extra;
    let capacity = this.buf.length * 2;
    while (capacity < needed) capacity *= 2;
    const old = this.buf;
    this.setBuffer(new Uint8Array(capacity));
    this.buf.set(old.subarray(0, this.pos));
  }

  private clearIds(): void {
    const objs = this.objs;
    for (let i = 0, n = Math.min(this.nObjs, LINEAR_ID_LIMIT); i < n; i++) objs[i] = undefined!;
    if (this.idMap !== null) {
      this.idMap.clear();
      this.spareMap = this.idMap;
      this.idMap = null;
    }
    this.nObjs = 0;
  }

  /** The back-reference id of an object already written, or -1. */
  private findId(o: object): number {
    if (this.idMap !== null) {
      const id = this.idMap.get(o);
      return id === undefined ? -1 : id;
    }
    const objs = this.objs;
    for (let i = 0, n = this.nObjs; i < n; i++) if (objs[i] === o) return i;
    return -1;
  }

  /** Gives `o` the next id: like V8, every object takes one on first visit, in order. */
  private addId(o: object): void {
    const id = this.nObjs++;
    if (id < LINEAR_ID_LIMIT) {
      this.objs[id] = o;
      return;
    }
    if (this.idMap === null) {
      const map = this.spareMap ?? new Map<object, number>();
      this.spareMap = null;
      for (let i = 0; i < LINEAR_ID_LIMIT; i++) map.set(this.objs[i]!, i);
      this.idMap = map;
    }
    this.idMap.set(o, id);
  }

  // ---------------------------------------------------------------------------
  // Primitives

  private writeValue(v: unknown): void {
    // An if-chain of `typeof v === "..."` tests: V8 turns each into a direct
    // type check, where `switch (typeof v)` makes it build the typeof string.
    if (typeof v === "number") {
      this.writeNumber(v);
    } else if (typeof v === "string") {
      this.writeString(v);
    } else if (typeof v === "object") {
      if (v === null) this.writeByte(0x30); // '0' kNull
      else this.writeObject(v);
    } else if (typeof v === "boolean") {
      this.writeByte(v ? 0x54 : 0x46); // 'T' kTrue / 'F' kFalse
    } else if (v === undefined) {
      this.writeByte(0x5f); // '_' kUndefined
    } else if (typeof v === "bigint") {
      this.writeByte(0x5a); // 'Z' kBigInt
      this.writeBigIntContents(v);
    } else {
      throw notCloneable(v); // functions and symbols
    }
  }

  private writeByte(b: number): void {
    if (this.pos >= this.buf.length) this.grow(1);
    this.buf[this.pos++] = b;
  }

  /** Writes an unsigned 32-bit varint (base-128, least significant group first). */
  private writeVarint(n: number): void {
    if (this.pos + 5 > this.buf.length) this.grow(5);
    const buf = this.buf;
    let p = this.pos;
    while (n >= 0x80) {
      buf[p++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    buf[p++] = n;
    this.pos = p;
  }

  private writeTagVarint(tag: number, n: number): void {
    this.writeByte(tag);
    this.writeVarint(n);
  }

  private writeNumber(v: number): void {
    if (this.pos + 10 > this.buf.length) this.grow(10);
    const buf = this.buf;
    let p = this.pos;
    if ((v << 1) >> 1 === v && (v !== 0 || 1 / v > 0)) {
      buf[p++] = 0x49; // 'I' kInt32, zigzag: 0, -1, 1, -2 -> 0, 1, 2, 3
      let z = (v << 1) ^ (v >> 31); // non-negative: v has at most 31 bits
      while (z >= 0x80) {
        buf[p++] = (z & 0x7f) | 0x80;
        z >>>= 7;
      }
      buf[p++] = z;
      this.pos = p;
    } else {
      buf[p] = 0x4e; // 'N' kDouble
      this.pos = p + 1;
      this.writeDouble(v);
    }
  }

  /** Raw float64, little-endian; the caller has made room for 8 bytes. */
  private writeDouble(v: number): void {
    if (v !== v) {
      const buf = this.buf;
      const p = this.pos;
      buf[p] = buf[p + 1] = buf[p + 2] = buf[p + 3] = buf[p + 4] = buf[p + 5] = 0;
      buf[p + 6] = 0xf8;
      buf[p + 7] = 0x7f;
    } else {
      this.dv.setFloat64(this.pos, v, true);
    }
    this.pos += 8;
  }

  private writeTaggedDouble(tag: number, v: number): void {
    if (this.pos + 9 > this.buf.length) this.grow(9);
    this.buf[this.pos++] = tag;
    this.writeDouble(v);
  }

  /**
   * kOneByteString ('"') when every code unit fits in a byte, else
   * kTwoByteString ('c') with V8's padding rule.
   */
  private writeString(s: string): void {
    const n = s.length;
    const room = 2 * n + 12; // enough for either form
    if (this.pos + room > this.buf.length) this.grow(room);
    const buf = this.buf;
    const start = this.pos;
    let p = start + 1;
    let len = n;
    while (len >= 0x80) {
      buf[p++] = (len & 0x7f) | 0x80;
      len >>>= 7;
    }
    buf[p++] = len;
    if (n >= ENCODE_INTO_MIN_LENGTH) {
      // For an ASCII string UTF-8 is the one-byte form, and encodeInto copies
      // it natively. Anything else makes it stop short, and we fall through.
      const r = textEncoder.encodeInto(s, buf.subarray(p, p + n));
      if (r.read === n && r.written === n) {
        buf[start] = 0x22; // '"' kOneByteString
        this.pos = p + n;
        return;
      }
    }
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c > 0xff) {
        this.writeTwoByteString(s, start);
        return;
      }
      buf[p + i] = c;
    }
    buf[start] = 0x22; // '"' kOneByteString
    this.pos = p + n;
  }

  private writeTwoByteString(s: string, start: number): void {
    const buf = this.buf;
    const n = s.length;
    const byteLength = n * 2;
    let p = start;
    // V8 keeps uc16 data 2-byte aligned relative to the start of the output:
    // if tag + length varint would leave it odd, a kPadding ('\0') goes first.
    if ((p + 1 + varintSize(byteLength)) & 1) buf[p++] = 0x00;
    buf[p++] = 0x63; // 'c' kTwoByteString
    let len = byteLength;
    while (len >= 0x80) {
      buf[p++] = (len & 0x7f) | 0x80;
      len >>>= 7;
    }
    buf[p++] = len;
    const u16 = this.u16;
    if (u16 !== null) {
      // p is even here, and the buffer starts at offset 0 of its ArrayBuffer.
      const q = p >>> 1;
      for (let i = 0; i < n; i++) u16[q + i] = s.charCodeAt(i);
    } else {
      for (let i = 0; i < n; i++) {
        const c = s.charCodeAt(i);
        buf[p + 2 * i] = c & 0xff;
        buf[p + 2 * i + 1] = c >>> 8;
      }
    }
    this.pos = p + byteLength;
  }

  /**
   * BigInt contents as V8 writes them: a bitfield varint (bit 0 sign, the rest
   * the digits' byte length), then the magnitude as 64-bit little-endian digits.
   */
  private writeBigIntContents(v: bigint): void {
    const negative = v < 0n;
    let x = negative ? -v : v;
    if (x === 0n) {
      this.writeVarint(0);
      return;
    }
    const digits = x <= MAX_ONE_DIGIT ? 1 : Math.ceil(x.toString(16).length / 16);
    const byteLength = digits * 8;
    this.writeVarint(byteLength * 2 + (negative ? 1 : 0));
    if (this.pos + byteLength > this.buf.length) this.grow(byteLength);
    for (let i = 0; i < digits; i++) {
      this.dv.setBigUint64(this.pos, BigInt.asUintN(64, x), true);
      this.pos += 8;
      x >>= 64n;
    }
  }

  // ---------------------------------------------------------------------------
  // Objects

  private writeObject(o: object): void {
    const ref = this.findId(o);
    if (ref !== -1) {
      this.writeTagVarint(0x5e, ref); // '^' kObjectReference
      return;
    }
    // Checked first so that no proxy trap (getPrototypeOf, ownKeys) ever runs.
    if (types.isProxy(o)) throw notCloneable(o);
    if (isArray(o)) {
      this.addId(o);
      this.writeArray(o);
      return;
    }
    const proto: unknown = getPrototypeOf(o);
    if (proto === ObjectPrototype) {
      // The common case. Of the objects V8 refuses, only `arguments` has this prototype.
      if (types.isArgumentsObject(o)) throw notCloneable(o);
      this.addId(o);
      this.writePlainObject(o, this.objectPrototypeIsClean());
      return;
    }
    if (proto === null) {
      // Object.create(null). Of the objects V8 refuses, only module namespaces look like this.
      if (types.isModuleNamespaceObject(o)) throw notCloneable(o);
      this.addId(o);
      this.writePlainObject(o, true);
      return;
    }
    if (isView(o)) {
      this.writeView(o);
      return;
    }
    this.addId(o);
    this.writeOtherObject(o, proto);
  }

  /** Everything that is not an array, a view or an Object.prototype object. */
  private writeOtherObject(o: object, proto: unknown): void {
    // Guess from the prototype, confirm with one brand check.
    switch (proto === null ? undefined : PROTO_KIND.get(proto as object)) {
      case Kind.Date:
        if (types.isDate(o)) return this.writeTaggedDouble(0x44, DateGetTime.call(o)); // 'D' kDate
        break;
      case Kind.Map:
        if (types.isMap(o)) return this.writeMap(o as Map<unknown, unknown>);
        break;
      case Kind.Set:
        if (types.isSet(o)) return this.writeSet(o as Set<unknown>);
        break;
      case Kind.RegExp:
        if (types.isRegExp(o)) return this.writeRegExp(o as RegExp);
        break;
      case Kind.ArrayBuffer:
        if (types.isArrayBuffer(o)) return this.writeArrayBuffer(o as ArrayBuffer);
        break;
      case Kind.Error:
        if (types.isNativeError(o)) return this.writeAnyError(o as Error);
        break;
      case Kind.Boxed:
        if (types.isBoxedPrimitive(o)) return this.writeBoxed(o);
        break;
    }
    // No match: a class instance, a null-prototype object, or a built-in
    // whose prototype was changed. Check every brand.
    if (types.isDate(o)) return this.writeTaggedDouble(0x44, DateGetTime.call(o));
    if (types.isMap(o)) return this.writeMap(o as Map<unknown, unknown>);
    if (types.isSet(o)) return this.writeSet(o as Set<unknown>);
    if (types.isRegExp(o)) return this.writeRegExp(o as RegExp);
    if (types.isArrayBuffer(o)) return this.writeArrayBuffer(o as ArrayBuffer);
    if (types.isNativeError(o)) return this.writeAnyError(o as Error);
    if (types.isBoxedPrimitive(o)) return this.writeBoxed(o);
    if (
      types.isSharedArrayBuffer(o) || // V8 needs a delegate to share these; there is none
      types.isPromise(o) ||
      types.isWeakMap(o) ||
      types.isWeakSet(o) ||
      types.isGeneratorObject(o) ||
      types.isMapIterator(o) ||
      types.isSetIterator(o) ||
      types.isArgumentsObject(o) ||
      types.isModuleNamespaceObject(o) ||
      (proto !== null && UNCLONEABLE_PROTOS.has(proto as object))
    ) {
      throw notCloneable(o);
    }
    // An ordinary object (class instances included): V8 writes its own
    // enumerable string-keyed properties, and it comes back as a plain object.
    this.writeJSObject(o);
  }

  /**
   * Whether Object.prototype has no enumerable properties (nobody has
   * polluted it), checked once per encode(). Then for-in over an object
   * whose prototype is Object.prototype or null yields exactly its own
   * enumerable string keys, in Object.keys order. V8 serves for-in from the
   * map's enum cache, which makes it several times faster than Object.keys
   * followed by keyed loads.
   */
  private objectPrototypeIsClean(): boolean {
    if (this.protoState === 0) {
      this.protoState = 1;
      for (const _ in ObjectPrototype) {
        this.protoState = 2;
        break;
      }
    }
    return this.protoState === 1;
  }

  /** 0: not checked in this encode(), 1: clean, 2: has enumerable properties. */
  private protoState = 0;

  /** An object with prototype Object.prototype or null; see objectPrototypeIsClean(). */
  private writePlainObject(o: object, inheritsNothingEnumerable: boolean): void {
    if (!inheritsNothingEnumerable) {
      this.writeJSObject(o);
      return;
    }
    this.writeByte(0x6f); // 'o' kBeginJSObject
    const rec = o as Record<string, unknown>;
    let count = 0;
    // for-in skips a key deleted (by a getter) before it is reached, as V8 does.
    for (const key in rec) {
      const value = rec[key];
      const c = key.charCodeAt(0);
      const index = c >= 0x30 && c <= 0x39 ? arrayIndex(key) : -1;
      if (index !== -1) this.writeNumber(index);
      else this.writeString(key);
      this.writeValue(value);
      count++;
    }
    this.writeTagVarint(0x7b, count); // '{' kEndJSObject, property count
  }

  /** kBeginJSObject ('o'), key/value pairs, kEndJSObject ('{') and the pair count. */
  private writeJSObject(o: object): void {
    this.writeByte(0x6f); // 'o' kBeginJSObject
    const count = this.writeProperties(o, objectKeys(o), 0);
    this.writeTagVarint(0x7b, count); // '{' kEndJSObject, property count
  }

  /**
   * Writes keys[from..] with their values and returns how many were written.
   * Array-index keys are written as numbers, as V8 does for elements. Like
   * V8, the keys are collected first and each value is read when it is
   * written, running getters; a key a getter deleted meanwhile is skipped.
   */
  private writeProperties(o: object, keys: string[], from: number): number {
    const rec = o as Record<string, unknown>;
    let count = 0;
    for (let i = from; i < keys.length; i++) {
      const key = keys[i]!;
      const value = rec[key];
      if (value === undefined && !hasOwn(o, key)) continue;
      const c = key.charCodeAt(0);
      const index = c >= 0x30 && c <= 0x39 ? arrayIndex(key) : -1;
      if (index !== -1) this.writeNumber(index);
      else this.writeString(key);
      this.writeValue(value);
      count++;
    }
    return count;
  }

  private writeArray(a: unknown[]): void {
    const n = a.length;
    // One pass to classify: a hole means a holey elements kind (sparse
    // format); all numbers with at least one non-Smi means
    // PACKED_DOUBLE_ELEMENTS (every element written as kDouble).
    let allNumbers = true;
    let hasDouble = false;
    for (let i = 0; i < n; i++) {
      const v = a[i];
      if (typeof v === "number") {
        if (!hasDouble && !isSmi(v)) hasDouble = true;
      } else {
        allNumbers = false;
        if (v === undefined && !(i in a)) {
          this.writeSparseArray(a, n);
          return;
        }
      }
    }
    this.writeTagVarint(0x41, n); // 'A' kBeginDenseJSArray, length
    if (allNumbers && hasDouble) {
      for (let i = 0; i < n; i++) this.writeTaggedDouble(0x4e, a[i] as number); // 'N' kDouble
    } else {
      for (let i = 0; i < n; i++) this.writeValue(a[i]);
    }
    // Then any named properties. The first n keys of a packed array are its
    // indices, so the rest are exactly the non-index keys V8 writes here.
    const count = this.writeProperties(a, objectKeys(a), n);
    this.writeTagVarint(0x24, count); // '$' kEndDenseJSArray, property count, length
    this.writeVarint(n);
  }

  private writeSparseArray(a: unknown[], n: number): void {
    this.writeTagVarint(0x61, n); // 'a' kBeginSparseJSArray, length
    const count = this.writeProperties(a, objectKeys(a), 0);
    this.writeTagVarint(0x40, count); // '@' kEndSparseJSArray, property count, length
    this.writeVarint(n);
  }

  private writeMap(m: Map<unknown, unknown>): void {
    // Copy the entries first, as V8 does, so getters run while writing them
    // cannot change which entries are written.
    const entries: unknown[] = [];
    MapForEach.call(m, (v: unknown, k: unknown) => {
      entries.push(k, v);
    });
    this.writeByte(0x3b); // ';' kBeginJSMap
    for (let i = 0; i < entries.length; i++) this.writeValue(entries[i]);
    this.writeTagVarint(0x3a, entries.length); // ':' kEndJSMap, keys + values
  }

  private writeSet(s: Set<unknown>): void {
    const entries: unknown[] = [];
    SetForEach.call(s, (v: unknown) => {
      entries.push(v);
    });
    this.writeByte(0x27); // '\'' kBeginJSSet
    for (let i = 0; i < entries.length; i++) this.writeValue(entries[i]);
    this.writeTagVarint(0x2c, entries.length); // ',' kEndJSSet, count
  }

  private writeRegExp(r: RegExp): void {
    this.writeByte(0x52); // 'R' kRegExp, source, flags
    // The `source` getter escapes '/' and line terminators and turns an empty
    // pattern into "(?:)"; V8 writes that same escaped source.
    this.writeString(regExpSource.call(r));
    let flags = 0;
    for (const [bit, , get] of REGEXP_FLAGS) if (get !== undefined && get.call(r)) flags |= bit;
    this.writeVarint(flags);
  }

  private writeBoxed(o: object): void {
    if (types.isNumberObject(o)) {
      this.writeTaggedDouble(0x6e, NumberValueOf.call(o)); // 'n' kNumberObject, always a double
    } else if (types.isStringObject(o)) {
      this.writeByte(0x73); // 's' kStringObject
      this.writeString(StringValueOf.call(o));
    } else if (types.isBooleanObject(o)) {
      this.writeByte(BooleanValueOf.call(o) ? 0x79 : 0x78); // 'y' kTrueObject / 'x' kFalseObject
    } else if (types.isBigIntObject(o)) {
      this.writeByte(0x7a); // 'z' kBigIntObject
      this.writeBigIntContents(BigIntValueOf.call(o));
    } else {
      throw notCloneable(o); // a Symbol wrapper
    }
  }

  private writeArrayBuffer(ab: ArrayBuffer): void {
    if (arrayBufferDetached !== undefined && arrayBufferDetached.call(ab)) {
      throw cloneError(DETACHED_MESSAGE);
    }
    const length = arrayBufferByteLength.call(ab);
    if (length > 0xffffffff) throw notCloneable(ab);
    if (arrayBufferResizable !== undefined && arrayBufferResizable.call(ab)) {
      const max = arrayBufferMaxByteLength!.call(ab);
      if (max > 0xffffffff) throw notCloneable(ab);
      this.writeTagVarint(0x7e, length); // '~' kResizableArrayBuffer, length, max length
      this.writeVarint(max);
    } else {
      this.writeTagVarint(0x42, length); // 'B' kArrayBuffer, length
    }
    if (this.pos + length > this.buf.length) this.grow(length);
    this.buf.set(new Uint8Array(ab, 0, length), this.pos);
    this.pos += length;
  }

  /**
   * A typed array or DataView not written before. V8 writes its buffer first
   * (or a back-reference to it), so the buffer takes an id before the view,
   * then kArrayBufferView ('V'), subtag, byteOffset, byteLength and flags.
   */
  private writeView(view: ArrayBufferView): void {
    const name = typedArrayName.call(view);
    const isDataView = name === undefined;
    const buffer = isDataView ? dataViewBuffer.call(view) : typedArrayBuffer.call(view);
    const bufferRef = this.findId(buffer);
    if (bufferRef !== -1) {
      this.writeTagVarint(0x5e, bufferRef); // '^' kObjectReference
    } else {
      if (!types.isArrayBuffer(buffer)) throw notCloneable(buffer); // SharedArrayBuffer
      this.addId(buffer);
      this.writeArrayBuffer(buffer); // throws first if the buffer is detached
    }
    this.addId(view);
    let byteOffset: number, byteLength: number, subtag: number | undefined, elementSize: number;
    if (isDataView) {
      subtag = DATA_VIEW_SUBTAG;
      elementSize = 1;
      try {
        byteOffset = dataViewByteOffset.call(view);
        byteLength = dataViewByteLength.call(view);
      } catch {
        throw notCloneable(view); // out of bounds of its (shrunk) resizable buffer
      }
    } else {
      subtag = VIEW_SUBTAG[name];
      if (subtag === undefined) throw notCloneable(view);
      elementSize = (view as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
      byteOffset = typedArrayByteOffset.call(view);
      byteLength = typedArrayByteLength.call(view);
    }
    let flags = 0;
    if (arrayBufferResizable !== undefined && arrayBufferResizable.call(buffer)) {
      flags = VIEW_FLAG_BACKED_BY_RAB;
      if (isLengthTracking(view, buffer, byteOffset, byteLength, elementSize, isDataView)) {
        flags |= VIEW_FLAG_LENGTH_TRACKING;
        // V8 writes the raw byte_length field, which is 0 for a length-tracking view.
        byteLength = 0;
      }
    }
    this.writeByte(0x56); // 'V' kArrayBufferView
    this.writeVarint(subtag);
    this.writeVarint(byteOffset);
    this.writeVarint(byteLength);
    this.writeVarint(flags);
  }

  /** A native error, in the format chosen by options.errors. */
  private writeAnyError(e: Error): void {
    if (this.workerdErrors) this.writeWorkerdError(e);
    else this.writeError(e);
  }

  /**
   * An error as workerd writes it with `enhanced_error_serialization`
   * (src/workerd/jsg/ser.c++, Serializer::WriteHostObject; V8 writes the
   * kHostObject tag and has already given the error its id):
   *
   * 1. kHostObject ('\\'), varint SERIALIZATION_TAG_NATIVE_ERROR (10).
   * 2. varint ErrorTag from String(error.name) (getErrorTagFromName; the
   *    name is read with [[Get]], so an inherited one counts: a TypeError
   *    subclass is TYPE_ERROR, an Error renamed "RangeError" is RANGE_ERROR).
   * 3. For ErrorTag::UNKNOWN (0) only, the name value itself.
   * 4. error.message ([[Get]], so "" from the prototype if not own), as any
   *    value (workerd cannot read the result back unless it is a string).
   * 5. A new plain object holding, for every own string key of the error but
   *    `name`, `message` and array indices (GetPropertyNames with
   *    ALL_PROPERTIES and kSkipIndices, so non-enumerable ones too), the
   *    value read with [[Get]] (getters run, all before anything is
   *    written). It is set with [[Set]] on a fresh object, so `__proto__`
   *    ends up as the object's prototype, not a property, and is lost; symbol
   *    keys are set but V8 does not write them. The object takes the next id,
   *    after the name and message.
   *
   * Key order is the error's own property order in V8: `stack` first (V8
   * creates it with the error), then `message`, `cause` / `errors`, then the
   * rest in creation order. On JavaScriptCore (Bun), which creates `stack`
   * last and adds `line`, `column`, `sourceURL`, ..., `stack` is moved to the
   * front and those are left out (STACK_IS_FIRST, ENGINE_ERROR_KEYS), so Bun
   * writes the same bytes. Checked byte for byte against workerd 1.20260730.1
   * (Miniflare 4.20260730.0, compatibility date 2026-07-01).
   */
  private writeWorkerdError(e: Error): void {
    this.writeByte(0x5c); // '\\' kHostObject
    this.writeVarint(WORKERD_NATIVE_ERROR);
    const name: unknown = e.name;
    const tag = WORKERD_ERROR_TAG.get(String(name)) ?? 0;
    this.writeVarint(tag);
    if (tag === 0) this.writeValue(name);
    this.writeValue(e.message);
    const rec = e as unknown as Record<string, unknown>;
    const keys: string[] = [];
    for (const key of getOwnPropertyNames(e)) {
      if (key === "name" || key === "message" || key === "__proto__") continue;
      const c = key.charCodeAt(0);
      if (c >= 0x30 && c <= 0x39 && arrayIndex(key) !== -1) continue;
      if (ENGINE_ERROR_KEYS.has(key) && !propertyIsEnumerable.call(e, key)) continue;
      if (key === "stack" && !STACK_IS_FIRST) keys.unshift(key);
      else keys.push(key);
    }
    const values = keys.map((key) => rec[key]);
    this.addId({}); // the property object workerd builds, never referred to again
    this.writeByte(0x6f); // 'o' kBeginJSObject
    for (let i = 0; i < keys.length; i++) {
      this.writeString(keys[i]!);
      this.writeValue(values[i]);
    }
    this.writeTagVarint(0x7b, keys.length); // '{' kEndJSObject, property count
  }

  /**
   * kError ('r') then ErrorTag subtags: the prototype (from `name`), 'm'
   * message (own data property, stringified), 's' stack (if a string),
   * 'c' cause (own data property), '.' end. This is the order V8 in Node 22,
   * Node 24 and workerd writes them in.
   */
  private writeError(e: Error): void {
    const messageDesc = getOwnPropertyDescriptor(e, "message");
    const causeDesc = getOwnPropertyDescriptor(e, "cause");
    this.writeByte(0x72); // 'r' kError
    const name = String(e.name);
    let proto = 0;
    switch (name) {
      case "EvalError": proto = 0x45; break; // 'E'
      case "RangeError": proto = 0x52; break; // 'R'
      case "ReferenceError": proto = 0x46; break; // 'F'
      case "SyntaxError": proto = 0x53; break; // 'S'
      case "TypeError": proto = 0x54; break; // 'T'
      case "URIError": proto = 0x55; break; // 'U'
    }
    if (proto !== 0) this.writeByte(proto); // anything else reads back as Error
    if (messageDesc !== undefined && "value" in messageDesc) {
      this.writeByte(0x6d); // 'm' message
      this.writeString(String(messageDesc.value));
    }
    const stack: unknown = e.stack;
    if (typeof stack === "string") {
      this.writeByte(0x73); // 's' stack
      this.writeString(stack);
    }
    if (causeDesc !== undefined && "value" in causeDesc) {
      this.writeByte(0x63); // 'c' cause
      this.writeValue(causeDesc.value);
    }
    this.writeByte(0x2e); // '.' end
  }
}
