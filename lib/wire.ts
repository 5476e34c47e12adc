// Byte layouts shared with src/binding/wire.rs: SQL parameters in, rows and KV entries
// out. Little-endian; tags 0 null, 1 number (f64), 2 text (u32 length + UTF-8), 3 blob
// (u32 length + bytes).

const NULL = 0;
const NUMBER = 1;
const TEXT = 2;
const BLOB = 3;

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", { fatal: false });

let params = new Uint8Array(4096);
let paramsView = new DataView(params.buffer);

function ensure(size: number): void {
  if (size <= params.length) return;
  let n = params.length;
  while (n < size) n *= 2;
  const bigger = new Uint8Array(n);
  bigger.set(params);
  params = bigger;
  paramsView = new DataView(params.buffer);
}

function writeText(at: number, s: string): number {
  // ASCII is by far the common case and is cheaper to copy by hand than to encode.
  ensure(at + 4 + s.length * 3);
  const start = at + 4;
  let i = 0;
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) break;
    params[start + i] = c;
  }
  let len = i;
  if (i < s.length) len = i + textEncoder.encodeInto(s.slice(i), params.subarray(start + i)).written;
  paramsView.setUint32(at, len, true);
  return start + len;
}

function writeBytes(at: number, b: Uint8Array): number {
  ensure(at + 4 + b.length);
  paramsView.setUint32(at, b.length, true);
  params.set(b, at + 4);
  return at + 4 + b.length;
}

/**
 * Encodes `exec()` bindings with Cloudflare's mapping: numbers bind as REAL, strings as
 * TEXT, ArrayBuffer and views as BLOB, null/undefined as NULL, booleans as the strings
 * "true"/"false", other objects by their string form; a BigInt is a TypeError.
 */
export function encodeParams(bindings: unknown[]): Uint8Array {
  let at = 0;
  for (const v of bindings) {
    ensure(at + 9);
    switch (typeof v) {
      case "number":
        params[at] = NUMBER;
        paramsView.setFloat64(at + 1, v, true);
        at += 9;
        break;
      case "string":
        params[at] = TEXT;
        at = writeText(at + 1, v);
        break;
      case "undefined":
        params[at++] = NULL;
        break;
      case "bigint":
        throw new TypeError("Cannot convert a BigInt value to a number");
      case "symbol":
        throw new TypeError("Cannot convert a Symbol value to a string");
      case "boolean":
        params[at] = TEXT;
        at = writeText(at + 1, v ? "true" : "false");
        break;
      default:
        if (v === null) {
          params[at++] = NULL;
        } else if (v instanceof ArrayBuffer) {
          params[at] = BLOB;
          at = writeBytes(at + 1, new Uint8Array(v));
        } else if (ArrayBuffer.isView(v)) {
          params[at] = BLOB;
          at = writeBytes(at + 1, new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
        } else {
          params[at] = TEXT;
          at = writeText(at + 1, String(v));
        }
    }
  }
  return params.subarray(0, at);
}

/** Decodes UTF-8, by hand for short ASCII (TextDecoder's call cost dominates there). */
export function decodeText(bytes: Uint8Array, start: number, end: number): string {
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
  private view: DataView;
  constructor(readonly bytes: Uint8Array, pos = 0) {
    this.pos = pos;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
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
