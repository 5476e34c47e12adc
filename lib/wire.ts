// Byte layouts shared with src/binding/wire.rs. Little-endian throughout.
//
// SQL parameters: per value a tag, 0 null | 1 number (f64) | 2 text (u32 length + bytes) |
// 3 blob (u32 length + bytes). Row values use the same tags. KV entries and lists of keys:
// u32 length + bytes, repeated. Optional strings: a presence byte, then u32 length + bytes.
//
// Strings are written as WTF-8: UTF-8, except that a lone surrogate keeps its own 3-byte
// sequence instead of becoming U+FFFD. That is how workerd stores keys and binds SQL text
// (V8 hands it the string's code units), so a key holding a lone surrogate finds the same
// row here and there.

const NULL = 0;
const NUMBER = 1;
const TEXT = 2;
const BLOB = 3;

const textDecoder = new TextDecoder("utf-8", { fatal: false });

/** A growable byte buffer that is reused across calls (its `bytes` may be replaced). */
export class ByteWriter {
  bytes: Uint8Array;
  private view: DataView;
  length = 0;

  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
  }

  reset(): this {
    this.length = 0;
    return this;
  }

  ensure(extra: number): void {
    const need = this.length + extra;
    if (need <= this.bytes.length) return;
    let n = this.bytes.length * 2;
    while (n < need) n *= 2;
    const bigger = new Uint8Array(n);
    bigger.set(this.bytes.subarray(0, this.length));
    this.bytes = bigger;
    this.view = new DataView(bigger.buffer);
  }

  byte(b: number): void {
    this.ensure(1);
    this.bytes[this.length++] = b;
  }

  u32(n: number): void {
    this.ensure(4);
    this.view.setUint32(this.length, n, true);
    this.length += 4;
  }

  f64(n: number): void {
    this.ensure(8);
    this.view.setFloat64(this.length, n, true);
    this.length += 8;
  }

  /** A string as u32 length + WTF-8. */
  text(s: string): void {
    this.ensure(4 + s.length * 3);
    const at = this.length;
    this.length += 4;
    this.wtf8(s);
    this.view.setUint32(at, this.length - at - 4, true);
  }

  /** A string as WTF-8, without a length. */
  wtf8(s: string): void {
    this.ensure(s.length * 3);
    const b = this.bytes;
    let at = this.length;
    const n = s.length;
    for (let i = 0; i < n; i++) {
      let c = s.charCodeAt(i);
      if (c < 0x80) {
        b[at++] = c;
      } else if (c < 0x800) {
        b[at++] = 0xc0 | (c >> 6);
        b[at++] = 0x80 | (c & 0x3f);
      } else {
        if (c >= 0xd800 && c <= 0xdbff && i + 1 < n) {
          const d = s.charCodeAt(i + 1);
          if (d >= 0xdc00 && d <= 0xdfff) {
            c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
            i++;
            b[at++] = 0xf0 | (c >> 18);
            b[at++] = 0x80 | ((c >> 12) & 0x3f);
            b[at++] = 0x80 | ((c >> 6) & 0x3f);
            b[at++] = 0x80 | (c & 0x3f);
            continue;
          }
        }
        // Everything else in the BMP, lone surrogates included, takes three bytes.
        b[at++] = 0xe0 | (c >> 12);
        b[at++] = 0x80 | ((c >> 6) & 0x3f);
        b[at++] = 0x80 | (c & 0x3f);
      }
    }
    this.length = at;
  }

  blob(data: Uint8Array): void {
    this.ensure(4 + data.length);
    this.u32(data.length);
    this.bytes.set(data, this.length);
    this.length += data.length;
  }

  /** An optional string: presence byte, then the string. */
  optionalText(s: string | undefined): void {
    if (s === undefined) {
      this.byte(0);
    } else {
      this.byte(1);
      this.text(s);
    }
  }
}

/** Where `encodeParams` writes SQL parameters. */
export const params = new ByteWriter(4096);

/**
 * Encodes `exec()` bindings into `params` with Cloudflare's mapping: numbers bind as REAL,
 * strings as TEXT, ArrayBuffer and views as BLOB, null/undefined as NULL, booleans as the
 * strings "true"/"false", other objects by their string form; a BigInt is a TypeError.
 */
export function encodeParams(bindings: unknown[]): void {
  params.reset();
  for (const v of bindings) {
    switch (typeof v) {
      case "number":
        params.byte(NUMBER);
        params.f64(v);
        break;
      case "string":
        params.byte(TEXT);
        params.text(v);
        break;
      case "undefined":
        params.byte(NULL);
        break;
      case "bigint":
        throw new TypeError("Cannot convert a BigInt value to a number");
      case "symbol":
        throw new TypeError("Cannot convert a Symbol value to a string");
      case "boolean":
        params.byte(TEXT);
        params.text(v ? "true" : "false");
        break;
      default:
        if (v === null) {
          params.byte(NULL);
        } else if (v instanceof ArrayBuffer) {
          params.byte(BLOB);
          params.blob(new Uint8Array(v));
        } else if (ArrayBuffer.isView(v)) {
          params.byte(BLOB);
          params.blob(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
        } else {
          params.byte(TEXT);
          params.text(String(v));
        }
    }
  }
}

/** Decodes UTF-8, by hand for short ASCII (TextDecoder's call cost dominates there). */
function decodeText(bytes: Uint8Array, start: number, end: number): string {
  if (end - start < 64) {
    let s = "";
    for (let i = start; i < end; i++) {
      const c = bytes[i]!;
      if (c >= 0x80) return textDecoder.decode(bytes.subarray(start, end));
      s += String.fromCharCode(c);
    }
    return s;
  }
  return textDecoder.decode(bytes.subarray(start, end));
}

/** A reader over a result buffer. */
export class Reader {
  pos: number;
  readonly view: DataView;
  constructor(
    readonly bytes: Uint8Array,
    pos = 0,
    view?: DataView,
  ) {
    this.pos = pos;
    this.view = view ?? new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  u32(): number {
    const n = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return n;
  }
  f64(): number {
    const n = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return n;
  }
  text(): string {
    const len = this.u32();
    const s = decodeText(this.bytes, this.pos, this.pos + len);
    this.pos += len;
    return s;
  }
  /** A fresh copy of a length-prefixed byte range. */
  copy(): ArrayBuffer {
    const len = this.u32();
    // Not bytes.slice(): on a Node Buffer (an overflow result) that is a view, not a copy.
    const copy = new Uint8Array(len);
    copy.set(this.bytes.subarray(this.pos, this.pos + len));
    this.pos += len;
    return copy.buffer;
  }
  /** A view of a length-prefixed byte range, valid until the buffer is reused. */
  bytesView(): Uint8Array {
    const len = this.u32();
    const b = this.bytes.subarray(this.pos, this.pos + len);
    this.pos += len;
    return b;
  }
  /** One SQL value. */
  value(): unknown {
    const tag = this.bytes[this.pos++];
    switch (tag) {
      case NUMBER:
        return this.f64();
      case TEXT:
        return this.text();
      case BLOB:
        return this.copy();
      default:
        return null;
    }
  }
}
