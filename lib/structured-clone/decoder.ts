// Decoder for V8's ValueSerializer wire format, versions 13 to 15.
//
// Follows V8's ValueDeserializer (src/objects/value-serializer.cc): the same
// tags, the same object-id numbering for back-references, and the same
// checks, failing with "Unable to deserialize cloned data." where V8 would.
// Tags are numeric literals for speed; comments give V8's names.
//
// Differences from V8, all for inputs V8 itself never writes:
// - Data without a version header is read as version 13 (V8 reads it as
//   version 0, an old Blink format).
// - A duplicate key in one object overwrites the earlier value (V8 fails).
// - Properties are set by assignment, except "__proto__", which is defined
//   as an own property as V8 does (so the prototype is never changed).
// - Host objects (kHostObject) are read only in the one form workerd writes
//   for errors under `enhanced_error_serialization` (readHostObject below);
//   any other host object, transferred buffers, SharedArrayBuffers, shared
//   objects and wasm values cannot be read (V8 fails on these too without a
//   delegate that knows them).

import { Buffer } from "node:buffer";
import { cloneError, DESERIALIZE_MESSAGE, VERSION_MESSAGE } from "./errors.js";
import {
  LITTLE_ENDIAN_HOST,
  REGEXP_FLAGS,
  REGEXP_KNOWN_FLAG_BITS,
  VIEW_FLAG_BACKED_BY_RAB,
  VIEW_FLAG_LENGTH_TRACKING,
  WORKERD_ERROR_CTORS,
  WORKERD_NATIVE_ERROR,
  arrayBufferByteLength,
  arrayBufferResizable,
  viewConstructor,
} from "./intrinsics.js";

const LATEST_VERSION = 15;
const OLDEST_VERSION = 13;

const MapSet = Map.prototype.set;
const SetAdd = Set.prototype.add;
const Uint8ArraySlice = Uint8Array.prototype.slice; // Buffer#slice would not copy
const defineProperty = Object.defineProperty;
const reflectDefineProperty = Reflect.defineProperty;
const ownKeys = Reflect.ownKeys;
const hasOwn = Object.hasOwn;
const ErrorToString = Error.prototype.toString;
const fromCharCode = String.fromCharCode;
const utf8Decoder = new TextDecoder("utf-8", { ignoreBOM: true });
const EMPTY = new Uint8Array(0);
/** ArrayBuffer's ES2024 constructor signature (our TypeScript lib is ES2023). */
const ResizableArrayBuffer = ArrayBuffer as unknown as new (
  length: number,
  options: { maxByteLength: number },
) => ArrayBuffer;
/** String.fromCharCode.apply takes at most this many code units at a time. */
const CHUNK = 8192;
/** One-byte strings up to this length go through the string cache. */
const CACHED_STRING = 32;
/** Two-byte strings up to this length are built in JavaScript. */
const SHORT_STRING = 24;

/**
 * Node's and Bun's native Latin-1 / UTF-16LE byte-to-string conversions,
 * if they behave as we need (exact Latin-1; UTF-16 with lone surrogates
 * kept). Far faster than String.fromCharCode.apply for long strings.
 */
type Slice = (this: Uint8Array, start: number, end: number) => string;
const latin1Slice = checkedSlice("latin1Slice", [0x41, 0x80, 0xe9, 0xff], "A\u0080\u00e9\u00ff");
const ucs2Slice = checkedSlice("ucs2Slice", [0x00, 0xd8, 0x41, 0x00], "\ud800A");
function checkedSlice(name: string, bytes: number[], expected: string): Slice | undefined {
  try {
    const fn = (Buffer.prototype as unknown as Record<string, unknown>)[name];
    if (typeof fn !== "function") return undefined;
    const probe = new Uint8Array([0, ...bytes]);
    return (fn as Slice).call(probe, 1, probe.length) === expected ? (fn as Slice) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Short one-byte strings (object keys above all) are looked up in a small
 * direct-mapped cache by a hash of their bytes. A hit returns the same string
 * as before, which V8 has already internalized when it was used as a key:
 * decoding a small object then neither allocates its keys nor re-hashes them.
 * Strings are immutable, so sharing them is invisible to callers.
 */
const STRING_CACHE_SIZE = 4096; // power of two
const stringCache: (string | undefined)[] = new Array<string | undefined>(STRING_CACHE_SIZE).fill(undefined);
/**
 * Each slot's bytes (CACHED_STRING per slot) and length + 1 (0: empty), so a
 * hit is confirmed by comparing bytes with bytes, which is much cheaper than
 * charCodeAt() on the cached string.
 */
const stringCacheBytes = new Uint8Array(STRING_CACHE_SIZE * CACHED_STRING);
const stringCacheLength = new Uint8Array(STRING_CACHE_SIZE);

/** Builds a short one-byte string from bytes. */
function latin1Short(b: Uint8Array, p: number, n: number): string {
  switch (n) {
    case 0: return "";
    case 1: return fromCharCode(b[p]!);
    case 2: return fromCharCode(b[p]!, b[p + 1]!);
    case 3: return fromCharCode(b[p]!, b[p + 1]!, b[p + 2]!);
    case 4: return fromCharCode(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!);
    case 5: return fromCharCode(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!, b[p + 4]!);
    case 6: return fromCharCode(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!, b[p + 4]!, b[p + 5]!);
    case 7: return fromCharCode(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!, b[p + 4]!, b[p + 5]!, b[p + 6]!);
    case 8: return fromCharCode(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!, b[p + 4]!, b[p + 5]!, b[p + 6]!, b[p + 7]!);
  }
  if (latin1Slice !== undefined) return latin1Slice.call(b, p, p + n);
  let s = "";
  for (let i = 0; i < n; i++) s += fromCharCode(b[p + i]!);
  return s;
}

function invalid(): never {
  throw cloneError(DESERIALIZE_MESSAGE);
}

/** Code units to a string, in chunks so that apply() never sees a huge argument list. */
function fromCodeUnits(units: Uint8Array | Uint16Array): string {
  const n = units.length;
  if (n <= CHUNK) return fromCharCode.apply(null, units as unknown as number[]);
  let s = "";
  for (let i = 0; i < n; i += CHUNK) {
    s += fromCharCode.apply(null, units.subarray(i, Math.min(n, i + CHUNK)) as unknown as number[]);
  }
  return s;
}

/** Reads V8 ValueSerializer data. Not re-entrant per instance; deserialize() handles that. */
export class ValueDecoder {
  private b: Uint8Array = EMPTY;
  private p = 0;
  private end = 0;
  /** kArrayBufferView carries a flags varint from version 14 on. */
  private viewFlags = true;
  /** Objects by id, in V8's numbering. `undefined` marks an id that is reserved but not yet readable. */
  private ids: unknown[] = [];
  private nextId = 0;
  private readonly f64 = new Float64Array(1);
  private readonly f64Bytes = new Uint8Array(this.f64.buffer);
  busy = false;

  decode(bytes: Uint8Array): unknown {
    this.busy = true;
    try {
      this.b = bytes;
      this.p = 0;
      this.end = bytes.length;
      let version = OLDEST_VERSION;
      if (this.end > 0 && bytes[0] === 0xff) {
        // kVersion
        this.p = 1;
        version = this.readVarint();
        if (version > LATEST_VERSION || version < OLDEST_VERSION) throw cloneError(VERSION_MESSAGE);
      }
      this.viewFlags = version >= 14;
      const start = this.p;
      try {
        return this.readValue();
      } catch (e) {
        if (version !== 13 || e instanceof RangeError) throw e;
        // Some V8 releases wrote version 13 with view flags (crbug.com/1284506);
        // like V8, retry reading it that way.
        this.clearIds();
        this.p = start;
        this.viewFlags = true;
        return this.readValue();
      }
    } catch (e) {
      // Our own failures are DataCloneErrors already; RangeError is a stack
      // overflow or a failed allocation, as in V8. Anything else came from a
      // constructor rejecting what the bytes describe (e.g. a RegExp pattern).
      if (e instanceof RangeError || (e as { name?: unknown })?.name === "DataCloneError") throw e;
      throw cloneError(DESERIALIZE_MESSAGE);
    } finally {
      this.clearIds();
      this.b = EMPTY;
      this.busy = false;
    }
  }

  private clearIds(): void {
    const ids = this.ids;
    if (this.nextId > 4096) this.ids = [];
    else for (let i = 0; i < this.nextId; i++) ids[i] = undefined;
    this.nextId = 0;
  }

  // ---------------------------------------------------------------------------
  // Low-level reads

  /** Next tag, skipping kPadding ('\0') bytes. */
  private readTag(): number {
    const b = this.b;
    let p = this.p;
    let tag: number;
    do {
      if (p >= this.end) invalid();
      tag = b[p++]!;
    } while (tag === 0x00);
    this.p = p;
    return tag;
  }

  /** If the next tag (after padding) is `tag`, consumes it and returns true. */
  private consumeTag(tag: number): boolean {
    const b = this.b;
    let p = this.p;
    while (p < this.end && b[p] === 0x00) p++;
    if (p < this.end && b[p] === tag) {
      this.p = p + 1;
      return true;
    }
    return false;
  }

  /**
   * Unsigned 32-bit base-128 varint. Like V8, reads at most five bytes and
   * drops bits beyond 32.
   */
  private readVarint(): number {
    const b = this.b;
    const end = this.end;
    let p = this.p;
    if (p >= end) invalid();
    let byte = b[p++]!;
    if (byte < 0x80) {
      this.p = p;
      return byte;
    }
    let result = byte & 0x7f;
    for (let shift = 7; ; shift += 7) {
      if (p >= end) invalid();
      byte = b[p++]!;
      if (shift === 28) {
        this.p = p;
        return result + (byte & 0x0f) * 0x10000000;
      }
      result |= (byte & 0x7f) << shift;
      if (byte < 0x80) {
        this.p = p;
        return result;
      }
    }
  }

  private readDouble(): number {
    const p = this.p;
    if (p + 8 > this.end) invalid();
    const b = this.b;
    const f = this.f64Bytes;
    if (LITTLE_ENDIAN_HOST) {
      f[0] = b[p]!; f[1] = b[p + 1]!; f[2] = b[p + 2]!; f[3] = b[p + 3]!;
      f[4] = b[p + 4]!; f[5] = b[p + 5]!; f[6] = b[p + 6]!; f[7] = b[p + 7]!;
    } else {
      for (let i = 0; i < 8; i++) f[7 - i] = b[p + i]!;
    }
    this.p = p + 8;
    return this.f64[0]!;
  }

  /** Checks that `n` more bytes exist and returns their start. */
  private take(n: number): number {
    const p = this.p;
    if (n > this.end - p) invalid();
    this.p = p + n;
    return p;
  }

  private readOneByteString(): string {
    const b = this.b;
    let n = this.p < this.end ? b[this.p]! : 0x80;
    if (n < 0x80) this.p++; // a one-byte length, the common case
    else n = this.readVarint();
    const p = this.take(n);
    if (n <= CACHED_STRING) {
      // Hash the length and up to five bytes (first two, middle, last two):
      // constant work, and the full comparison below settles any collision.
      let h = n;
      if (n !== 0) {
        h = (h * 31 + b[p]! * 7 + b[p + n - 1]!) | 0;
        h = (h * 31 + b[p + (n >>> 1)]!) | 0;
        if (n > 3) h = (h * 31 + b[p + 1]! * 5 + b[p + n - 2]!) | 0;
      }
      const slot = (h ^ (h >>> 11)) & (STRING_CACHE_SIZE - 1);
      const base = slot * CACHED_STRING;
      const cache = stringCacheBytes;
      if (stringCacheLength[slot] === n + 1) {
        let i = 0;
        while (i < n && cache[base + i] === b[p + i]) i++;
        if (i === n) return stringCache[slot]!;
      }
      const s = latin1Short(b, p, n);
      for (let i = 0; i < n; i++) cache[base + i] = b[p + i]!;
      stringCacheLength[slot] = n + 1;
      stringCache[slot] = s;
      return s;
    }
    if (latin1Slice !== undefined) return latin1Slice.call(b, p, p + n);
    return fromCodeUnits(b.subarray(p, p + n));
  }

  private readTwoByteString(): string {
    const byteLength = this.readVarint();
    if (byteLength & 1) invalid();
    const p = this.take(byteLength);
    const b = this.b;
    const n = byteLength >>> 1;
    if (n <= SHORT_STRING) {
      let s = "";
      for (let i = 0; i < n; i++) s += fromCharCode(b[p + 2 * i]! | (b[p + 2 * i + 1]! << 8));
      return s;
    }
    if (ucs2Slice !== undefined) return ucs2Slice.call(b, p, p + byteLength);
    const offset = b.byteOffset + p;
    let units: Uint16Array;
    if (LITTLE_ENDIAN_HOST && (offset & 1) === 0) {
      units = new Uint16Array(b.buffer, offset, n);
    } else {
      units = new Uint16Array(n);
      for (let i = 0; i < n; i++) units[i] = b[p + 2 * i]! | (b[p + 2 * i + 1]! << 8);
    }
    return fromCodeUnits(units);
  }

  /** kUtf8String ('S'): only written by old versions, still readable. */
  private readUtf8String(): string {
    const n = this.readVarint();
    const p = this.take(n);
    return utf8Decoder.decode(this.b.subarray(p, p + n));
  }

  /** A value that must be a string (V8's ReadString for version >= 12). */
  private readString(): string {
    const s = this.readValue();
    if (typeof s !== "string") invalid();
    return s;
  }

  private readBigIntContents(): bigint {
    const bitfield = this.readVarint();
    const byteLength = bitfield >>> 1; // bit 0 is the sign
    const p = this.take(byteLength);
    const b = this.b;
    let v: bigint;
    if (byteLength === 0) {
      v = 0n;
    } else if (byteLength === 8) {
      const lo = (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24)) >>> 0;
      const hi = (b[p + 4]! | (b[p + 5]! << 8) | (b[p + 6]! << 16) | (b[p + 7]! << 24)) >>> 0;
      v = hi === 0 ? BigInt(lo) : (BigInt(hi) << 32n) | BigInt(lo);
    } else {
      // Little-endian digits of any size (V8 on 32-bit hosts uses 4-byte digits).
      let hex = "0x";
      for (let i = byteLength - 1; i >= 0; i--) hex += HEX[b[p + i]!];
      v = BigInt(hex);
    }
    return bitfield & 1 ? -v : v;
  }

  // ---------------------------------------------------------------------------
  // Values

  private readValue(): unknown {
    const tag = this.readTag();
    switch (tag) {
      case 0x49: { // 'I' kInt32, zigzag
        const u = this.readVarint();
        return (u >>> 1) ^ -(u & 1);
      }
      case 0x22: // '"' kOneByteString
        return this.readOneByteString();
      case 0x6f: // 'o' kBeginJSObject
        return this.readJSObject();
      case 0x4e: // 'N' kDouble
        return this.readDouble();
      case 0x54: // 'T' kTrue
        return true;
      case 0x46: // 'F' kFalse
        return false;
      case 0x5f: // '_' kUndefined
        return undefined;
      case 0x30: // '0' kNull
        return null;
      case 0x63: // 'c' kTwoByteString
        return this.readTwoByteString();
      case 0x41: // 'A' kBeginDenseJSArray
        return this.readDenseArray();
      case 0x61: // 'a' kBeginSparseJSArray
        return this.readSparseArray();
      case 0x5e: { // '^' kObjectReference
        const id = this.readVarint();
        const o = id < this.nextId ? this.ids[id] : undefined;
        if (o === undefined) invalid();
        // A view may follow any ArrayBuffer, including a referenced one.
        return o instanceof ArrayBuffer ? this.maybeView(o) : o;
      }
      default:
        return this.readOtherValue(tag);
    }
  }

  /** The less common tags, kept out of readValue() so that it stays small enough to inline well. */
  private readOtherValue(tag: number): unknown {
    switch (tag) {
      case 0x55: // 'U' kUint32
        return this.readVarint();
      case 0x5a: // 'Z' kBigInt
        return this.readBigIntContents();
      case 0x53: // 'S' kUtf8String
        return this.readUtf8String();
      case 0x44: { // 'D' kDate
        const d = new Date(this.readDouble());
        this.ids[this.nextId++] = d;
        return d;
      }
      case 0x79: // 'y' kTrueObject
      case 0x78: // 'x' kFalseObject
      case 0x6e: // 'n' kNumberObject
      case 0x7a: // 'z' kBigIntObject
      case 0x73: // 's' kStringObject
        return this.readPrimitiveWrapper(tag);
      case 0x52: // 'R' kRegExp
        return this.readRegExp();
      case 0x3b: // ';' kBeginJSMap
        return this.readMap();
      case 0x27: // '\'' kBeginJSSet
        return this.readSet();
      case 0x42: // 'B' kArrayBuffer
        return this.maybeView(this.readArrayBuffer(false));
      case 0x7e: // '~' kResizableArrayBuffer
        return this.maybeView(this.readArrayBuffer(true));
      case 0x72: // 'r' kError
        return this.readError();
      case 0x3f: // '?' kVerifyObjectCount: a count to ignore, then the value
        this.readVarint();
        return this.readValue();
      case 0x5c: // '\\' kHostObject: only workerd's errors (enhanced_error_serialization)
        return this.readHostObject();
      default:
        // kArrayBufferTransfer, kSharedArrayBuffer, kSharedObject, wasm tags,
        // kTheHole outside a dense array, and unknown tags.
        invalid();
    }
  }

  /**
   * Reads properties up to `endTag` into `o`. V8 accepts numbers (Smi or
   * double) and strings as keys.
   */
  private readProperties(o: Record<string | number, unknown>, endTag: number, isArray: boolean): number {
    const b = this.b;
    let count = 0;
    for (;;) {
      let p = this.p;
      while (p < this.end && b[p] === 0x00) p++; // kPadding
      if (p >= this.end) invalid();
      const tag = b[p]!;
      if (tag === endTag) {
        this.p = p + 1;
        return count;
      }
      let key: unknown;
      if (tag === 0x22) {
        // The usual key: a one-byte string, read without going through readValue().
        this.p = p + 1;
        key = this.readOneByteString();
      } else {
        key = this.readValue();
        if (typeof key !== "string" && typeof key !== "number") invalid();
      }
      const value = this.readValue();
      if (key === "__proto__") {
        defineProperty(o, key, { value, writable: true, enumerable: true, configurable: true });
      } else {
        if (isArray && key === "length") invalid(); // V8 refuses keys that already exist
        o[key as string] = value;
      }
      count++;
    }
  }

  private readJSObject(): object {
    const o: Record<string | number, unknown> = {};
    this.ids[this.nextId++] = o;
    const count = this.readProperties(o, 0x7b, false); // '{' kEndJSObject
    if (this.readVarint() !== count) invalid();
    return o;
  }

  private readDenseArray(): unknown[] {
    const length = this.readVarint();
    // Every element takes at least one byte: fail fast on a bogus length.
    if (length > this.end - this.p) invalid();
    const a = new Array<unknown>(length);
    this.ids[this.nextId++] = a;
    for (let i = 0; i < length; i++) {
      if (this.consumeTag(0x2d)) continue; // '-' kTheHole: leave a hole
      a[i] = this.readValue();
    }
    const count = this.readProperties(a as unknown as Record<string, unknown>, 0x24, true); // '$' kEndDenseJSArray
    if (this.readVarint() !== count || this.readVarint() !== length) invalid();
    return a;
  }

  private readSparseArray(): unknown[] {
    const length = this.readVarint();
    const a = new Array<unknown>(length);
    this.ids[this.nextId++] = a;
    const count = this.readProperties(a as unknown as Record<string, unknown>, 0x40, true); // '@' kEndSparseJSArray
    if (this.readVarint() !== count || this.readVarint() !== length) invalid();
    return a;
  }

  private readPrimitiveWrapper(tag: number): object {
    const id = this.nextId++;
    let value: object;
    switch (tag) {
      case 0x79: value = Object(true); break;
      case 0x78: value = Object(false); break;
      case 0x6e: value = Object(this.readDouble()); break;
      case 0x7a: value = Object(this.readBigIntContents()); break;
      default: value = Object(this.readString()); break;
    }
    this.ids[id] = value;
    return value;
  }

  private readRegExp(): RegExp {
    const id = this.nextId++;
    const source = this.readString();
    const bits = this.readVarint();
    if (bits & ~REGEXP_KNOWN_FLAG_BITS) invalid(); // includes V8's experimental 'l'
    let flags = "";
    for (const [bit, flag] of REGEXP_FLAGS) if (bits & bit) flags += flag;
    const r = new RegExp(source, flags); // a SyntaxError here becomes a DataCloneError
    this.ids[id] = r;
    return r;
  }

  private readMap(): Map<unknown, unknown> {
    const m = new Map<unknown, unknown>();
    this.ids[this.nextId++] = m;
    let length = 0;
    while (!this.consumeTag(0x3a)) { // ':' kEndJSMap
      const key = this.readValue();
      MapSet.call(m, key, this.readValue());
      length += 2;
    }
    if (this.readVarint() !== length) invalid();
    return m;
  }

  private readSet(): Set<unknown> {
    const s = new Set<unknown>();
    this.ids[this.nextId++] = s;
    let length = 0;
    while (!this.consumeTag(0x2c)) { // ',' kEndJSSet
      SetAdd.call(s, this.readValue());
      length++;
    }
    if (this.readVarint() !== length) invalid();
    return s;
  }

  /** A fresh copy of the bytes, never a view into the input. */
  private readArrayBuffer(resizable: boolean): ArrayBuffer {
    const id = this.nextId++;
    const length = this.readVarint();
    let ab: ArrayBuffer;
    if (resizable) {
      const maxByteLength = this.readVarint();
      if (length > maxByteLength) invalid();
      const p = this.take(length);
      ab = new ResizableArrayBuffer(length, { maxByteLength });
      new Uint8Array(ab).set(this.b.subarray(p, p + length));
    } else {
      const p = this.take(length);
      ab = Uint8ArraySlice.call(this.b, p, p + length).buffer as ArrayBuffer;
    }
    this.ids[id] = ab;
    return ab;
  }

  /** kArrayBufferView ('V') applies to the ArrayBuffer just read, if it follows. */
  private maybeView(ab: ArrayBuffer): ArrayBuffer | ArrayBufferView {
    return this.consumeTag(0x56) ? this.readView(ab) : ab;
  }

  private readView(ab: ArrayBuffer): ArrayBufferView {
    const bufferLength = arrayBufferByteLength.call(ab);
    const subtag = this.readVarint() & 0xff;
    const byteOffset = this.readVarint();
    const byteLength = this.readVarint();
    if (byteOffset > bufferLength || byteLength > bufferLength - byteOffset) invalid();
    const flags = this.viewFlags ? this.readVarint() : 0;
    const id = this.nextId++;
    const Ctor = viewConstructor(subtag);
    if (Ctor === undefined) invalid();
    // V8's ValidateJSArrayBufferViewFlags: the flags must agree with the buffer.
    const lengthTracking = (flags & VIEW_FLAG_LENGTH_TRACKING) !== 0;
    const backedByRab = (flags & VIEW_FLAG_BACKED_BY_RAB) !== 0;
    const resizable = arrayBufferResizable !== undefined && arrayBufferResizable.call(ab);
    if ((lengthTracking || backedByRab) && !resizable) invalid();
    if (resizable && !backedByRab) invalid();
    let view: ArrayBufferView;
    if (Ctor === DataView) {
      view = lengthTracking ? new DataView(ab, byteOffset) : new DataView(ab, byteOffset, byteLength);
    } else {
      const size = (Ctor as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
      if (byteOffset % size !== 0 || byteLength % size !== 0) invalid();
      view = lengthTracking ? new Ctor(ab, byteOffset) : new Ctor(ab, byteOffset, byteLength / size);
    }
    this.ids[id] = view;
    return view;
  }

  private readError(): Error {
    // The id is taken now but the error only becomes referable once complete,
    // as in V8 (so a cause cannot refer back to its own error).
    const id = this.nextId++;
    let Ctor: ErrorConstructor = Error;
    let message: string | undefined;
    let stack: string | undefined;
    let hasCause = false;
    let cause: unknown;
    for (let done = false; !done; ) {
      switch (this.readVarint() & 0xff) {
        case 0x45: Ctor = EvalError; break; // 'E'
        case 0x52: Ctor = RangeError; break; // 'R'
        case 0x46: Ctor = ReferenceError; break; // 'F'
        case 0x53: Ctor = SyntaxError; break; // 'S'
        case 0x54: Ctor = TypeError; break; // 'T'
        case 0x55: Ctor = URIError; break; // 'U'
        case 0x6d: message = this.readString(); break; // 'm' message
        case 0x73: stack = this.readString(); break; // 's' stack
        case 0x63: cause = this.readValue(); hasCause = true; break; // 'c' cause
        case 0x2e: done = true; break; // '.' end
        default: invalid();
      }
    }
    // V8 constructs the error without capturing a stack trace, then installs
    // the serialized stack (undefined if there was none).
    const E = Error as { stackTraceLimit?: unknown };
    const limit = E.stackTraceLimit;
    E.stackTraceLimit = 0;
    let e: Error;
    try {
      e = hasCause ? new Ctor(message, { cause }) : new Ctor(message);
    } finally {
      E.stackTraceLimit = limit;
    }
    defineProperty(e, "stack", { value: stack, writable: true, enumerable: false, configurable: true });
    this.ids[id] = e;
    return e;
  }

  /**
   * An error as workerd writes it with `enhanced_error_serialization` (on by
   * default from compatibility date 2026-04-21), read as workerd's
   * Deserializer::ReadHostObject reads it (src/workerd/jsg/ser.c++):
   *
   *   kHostObject, varint SERIALIZATION_TAG_NATIVE_ERROR (10), varint ErrorTag,
   *   [name value, only for ErrorTag::UNKNOWN (0)], message value (a string),
   *   then one value (a plain object) holding the error's other own properties.
   *
   * The error is built with toJsError()'s class for the tag (Error for
   * UNKNOWN and for numbers it does not know) and the message as an own,
   * non-enumerable property; an UNKNOWN tag's name is then defined as an own
   * enumerable property (JsObject::defineProperty, default attributes); and
   * every own non-index key of the property object is defined on the error
   * as an own, enumerable, writable, configurable data property
   * (createDataProperty), `stack` included: Durable Object storage reads keep
   * it (the Deserializer's preserveStackInErrors option, which drops it for
   * RPC). Checked against workerd 1.20260730.1: reading back what it wrote,
   * it gives `Object.keys(err)` = ["stack", <name if custom>, ...the rest].
   */
  private readHostObject(): Error {
    // V8's ValueDeserializer::ReadHostObject takes the id before the embedder
    // reads anything and registers the object once it is complete, so the
    // name, message and property object come after it in id order, and a
    // reference to the error from inside itself fails (as in workerd).
    const id = this.nextId++;
    if (this.readVarint() !== WORKERD_NATIVE_ERROR) invalid(); // another embedder's host object
    const type = this.readVarint();
    const hasName = type === 0; // ErrorTag::UNKNOWN carries its name
    const name = hasName ? this.readValue() : undefined;
    const message = this.readValue();
    if (typeof message !== "string") invalid(); // workerd: "error message is not a string"
    const e = newWorkerdError(type);
    // V8 gives every error an own `stack` first, then `message`, ahead of
    // `name` and the copied properties. JavaScriptCore (Bun) makes no stack
    // with Error.stackTraceLimit = 0, and would put `message` first: so the
    // error is made without a message, the `stack` slot added if missing,
    // and `message` defined after it (as V8 defines it: non-enumerable), so
    // that the own keys come in the same order everywhere.
    const addedStack = !hasOwn(e, "stack");
    if (addedStack) defineProperty(e, "stack", { value: undefined, writable: true, enumerable: false, configurable: true });
    defineProperty(e, "message", { value: message, writable: true, enumerable: false, configurable: true });
    if (hasName) defineProperty(e, "name", { value: name, writable: true, enumerable: true, configurable: true });
    const props = this.readValue();
    let stackCopied = false;
    if (typeof props === "object" && props !== null) {
      // GetPropertyNames(kOwnOnly, ALL_PROPERTIES, kSkipIndices): own keys,
      // non-enumerable ones too, array indices left out.
      for (const key of ownKeys(props)) {
        if (typeof key === "string" && isArrayIndexKey(key)) continue;
        const value = (props as Record<PropertyKey, unknown>)[key];
        reflectDefineProperty(e, key, { value, writable: true, enumerable: true, configurable: true });
        if (key === "stack") stackCopied = true;
      }
    }
    // With no stack in the bytes, workerd's error keeps the stack V8 captured
    // when it was made (header and whatever JS frames were running). Ours was
    // made with no frames, so V8 formats it as just the header, which is
    // Error.prototype.toString(); give engines that made none the same text.
    if (addedStack && !stackCopied) {
      defineProperty(e, "stack", { value: ErrorToString.call(e), writable: true, enumerable: false, configurable: true });
    }
    this.ids[id] = e;
    return e;
  }
}

/**
 * A new error of the class toJsError() picks for workerd's ErrorTag `type`,
 * with no message yet, made without capturing our own stack trace, and
 * without the own properties that the AggregateError and SuppressedError
 * constructors add (v8::Exception::* adds none; the bytes carry `errors`,
 * `error` and `suppressed` if the error had them).
 */
function newWorkerdError(type: number): Error {
  const Ctor = type < WORKERD_ERROR_CTORS.length ? WORKERD_ERROR_CTORS[type] : undefined;
  const E = Error as { stackTraceLimit?: unknown };
  const limit = E.stackTraceLimit;
  E.stackTraceLimit = 0;
  try {
    if (Ctor === undefined) return new Error();
    if (type === 12) { // AggregateError
      const e = new (Ctor as unknown as new (errors: Iterable<unknown>) => Error)([]);
      delete (e as { errors?: unknown }).errors;
      return e;
    }
    if (type === 13) { // SuppressedError
      const e = new (Ctor as unknown as new (error: unknown, suppressed: unknown) => Error)(undefined, undefined);
      delete (e as { error?: unknown }).error;
      delete (e as { suppressed?: unknown }).suppressed;
      return e;
    }
    return new (Ctor as unknown as new () => Error)();
  } finally {
    E.stackTraceLimit = limit;
  }
}

/** A canonical array index ("0" .. "4294967294"), which V8's kSkipIndices leaves out. */
function isArrayIndexKey(key: string): boolean {
  const c = key.charCodeAt(0);
  if (!(c >= 0x30 && c <= 0x39)) return false;
  const n = Number(key);
  return n >>> 0 === n && n !== 0xffffffff && String(n) === key;
}

const HEX: string[] = [];
for (let i = 0; i < 256; i++) HEX.push(i.toString(16).padStart(2, "0"));
