#!/usr/bin/env node
// Regenerates __test__/fixtures/v8-golden.json: V8 ValueSerializer bytes for
// a representative set of values, so the structured-clone tests can check
// bytes on runtimes without V8 (Bun) too.
//
//   node scripts/gen-v8-golden.mjs        (Node only; needs `tsc -p .` first)
//
// Each case is a JavaScript expression, so every runtime can rebuild the
// value. Bytes come from Node's base `v8.Serializer` (not `v8.serialize()`,
// whose DefaultSerializer writes typed arrays as Node host objects), except
// cases marked `source: "workerd"`, whose bytes were read from `_cf_KV.value`
// after `ctx.storage.put()` in workerd (miniflare 4.20260730.0): they are the
// numbers where Node (32-bit Smis on x64) and workerd (31-bit Smis, pointer
// compression) disagree, and our encoder follows workerd; and errors in
// workerd's enhanced format (compatibility date from 2026-04-21,
// `enhanced_error_serialization`; workerd 1.20260730.1, compatibility date
// 2026-07-01), which carry `encoder: { errors: "workerd" }`: the options of
// the ValueEncoder that must write those bytes. V8 on Node can neither write
// nor read that format (it is a host object).
//
// This module also exports the seeded random value generator used by the
// property test; the fixture records a digest of the encoder's output for it,
// so Bun is checked against bytes that Node verified against V8.

import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/**
 * Golden cases. `expect` (optional) is the expression for the value that
 * deserializing must give when it differs from `expr` (class instances come
 * back as plain objects). `requires` names a global the case needs.
 */
export const GOLDEN_CASES = [
  // Oddballs and numbers
  { description: "undefined", expr: "undefined" },
  { description: "null", expr: "null" },
  { description: "true", expr: "true" },
  { description: "false", expr: "false" },
  { description: "zero (Smi)", expr: "0" },
  { description: "negative zero (double)", expr: "-0" },
  { description: "small positive Smi", expr: "42" },
  { description: "small negative Smi", expr: "-1" },
  { description: "largest 31-bit Smi", expr: "1073741823" },
  { description: "smallest 31-bit Smi", expr: "-1073741824" },
  { description: "fraction", expr: "1.5" },
  { description: "NaN (canonical quiet NaN)", expr: "NaN" },
  { description: "Infinity", expr: "Infinity" },
  { description: "-Infinity", expr: "-Infinity" },
  { description: "2**53", expr: "2**53" },
  { description: "2**32 (double in both)", expr: "4294967296" },
  { description: "-(2**31) - 1 (double in both)", expr: "-2147483649" },
  // Smi range: workerd's 31-bit Smis (measured), not Node's 32-bit ones
  { description: "2**30 is a double in workerd", expr: "2**30", source: "workerd", hex: "ff0f4e000000000000d041" },
  { description: "2**30 - 1 is a Smi in workerd", expr: "2**30 - 1", source: "workerd", hex: "ff0f49feffffff07" },
  { description: "-(2**30) is a Smi in workerd", expr: "-(2**30)", source: "workerd", hex: "ff0f49ffffffff07" },
  { description: "-(2**30) - 1 is a double in workerd", expr: "-(2**30) - 1", source: "workerd", hex: "ff0f4e000040000000d0c1" },
  { description: "2**31 - 1 is a double in workerd", expr: "2**31 - 1", source: "workerd", hex: "ff0f4e0000c0ffffffdf41" },
  { description: "-(2**31) is a double in workerd", expr: "-(2**31)", source: "workerd", hex: "ff0f4e000000000000e0c1" },
  { description: "[1, 2**30] is a double array in workerd", expr: "[1, 1073741824]", source: "workerd", hex: "ff0f41024e000000000000f03f4e000000000000d041240002" },
  { description: "index keys 2**30 - 1 (Smi) and 2**30 (double) in workerd", expr: "({1073741824: 1, 1073741823: 2})", source: "workerd", hex: "ff0f6f49feffffff0749044e000000000000d04149027b02" },
  // BigInt
  { description: "0n", expr: "0n" },
  { description: "1n", expr: "1n" },
  { description: "-1n", expr: "-1n" },
  { description: "2n**64n (two digits)", expr: "2n**64n" },
  { description: "-(2n**64n) - 1n", expr: "-(2n**64n) - 1n" },
  { description: "big BigInt", expr: "123456789012345678901234567890123456789n" },
  // Strings
  { description: "empty string", expr: "''" },
  { description: "ASCII string", expr: "'hello'" },
  { description: "Latin-1 string is one-byte", expr: "'\\u00ff\\u00e9t\\u00e9'" },
  { description: "two-byte string", expr: "'a\\u20ac'" },
  { description: "two-byte string after padding", expr: "['\\u20ac']" },
  { description: "two-byte value needing kPadding", expr: "({a: '\\u20ac'})" },
  { description: "two-byte value without kPadding", expr: "({ab: '\\u20ac'})" },
  { description: "lone high surrogate", expr: "'\\ud800'" },
  { description: "lone low surrogate in text", expr: "'x\\udc00y'" },
  { description: "astral character", expr: "'\\ud83d\\ude00'" },
  { description: "long ASCII string", expr: "'abcdefghij'.repeat(30)" },
  { description: "long Latin-1 string", expr: "'\\u00e9a'.repeat(100)" },
  { description: "long two-byte string", expr: "'\\u20acb'.repeat(100)" },
  { description: "two-byte object key", expr: "({'\\u043a\\u043b\\u044e\\u0447': 1})" },
  // Objects
  { description: "empty object", expr: "({})" },
  { description: "3-field object", expr: "({id: 123, name: 'alice', active: true})" },
  { description: "index keys first, as numbers; other keys as strings", expr: "({b: 1, 2: 'x', a: 2, 1: 'y', '4294967295': 1, '4294967294': 2, '01': 3, '-1': 4, '1.5': 5})" },
  { description: "nested objects", expr: "({user: {id: 1, tags: ['a', 'b']}, n: 1.5, u: undefined, z: null})" },
  { description: "getter is invoked", expr: "({get x() { return 5; }, y: 2})", expect: "({x: 5, y: 2})" },
  { description: "symbol keys and non-enumerables skipped", expr: "Object.defineProperty({a: 1, [Symbol('s')]: 2}, 'hidden', {value: 3, enumerable: false})", expect: "({a: 1})" },
  { description: "class instance becomes a plain object", expr: "new (class Point { constructor() { this.x = 1; this.y = 2; } get sum() { return 3; } })()", expect: "({x: 1, y: 2})" },
  { description: "null-prototype object", expr: "Object.assign(Object.create(null), {a: 1})", expect: "({a: 1})" },
  // Arrays
  { description: "empty array", expr: "[]" },
  { description: "Smi array", expr: "[1, 2, 3]" },
  { description: "double array writes every element as a double", expr: "[1, 1.5]" },
  { description: "double array with -0 and NaN", expr: "[0, -0, NaN]" },
  { description: "mixed array keeps Smis", expr: "[1, 2.5, 'x']" },
  { description: "holey array is sparse", expr: "[1, , 3]" },
  { description: "only a hole", expr: "[,]" },
  { description: "holey double array (sparse, Smis stay Smis)", expr: "[1.5, , 2]" },
  { description: "undefined is not a hole", expr: "[undefined, null]" },
  { description: "dense array with a named property", expr: "Object.assign([1, 2], {foo: 'bar'})" },
  { description: "sparse array with a named property", expr: "Object.assign([1, , 2], {foo: 'bar'})" },
  { description: "sparse array with large length", expr: "(() => { const a = []; a[5] = 1; return a; })()" },
  { description: "nested arrays", expr: "[[1, [2, [3]]], []]" },
  // Boxed primitives, Date, RegExp
  { description: "Number object", expr: "new Number(1)" },
  { description: "Number object -0", expr: "new Number(-0)" },
  { description: "String object", expr: "new String('ab')" },
  { description: "two-byte String object", expr: "new String('\\u20ac')" },
  { description: "Boolean objects", expr: "[new Boolean(true), new Boolean(false)]" },
  { description: "BigInt object", expr: "Object(5n)" },
  { description: "Date", expr: "new Date(1700000000000)" },
  { description: "invalid Date", expr: "new Date(NaN)" },
  { description: "RegExp with every flag but v", expr: "/a\\/b/dgimsuy" },
  { description: "RegExp with v flag", expr: "/[\\p{L}--a]/v" },
  { description: "empty RegExp source is (?:)", expr: "new RegExp('')" },
  { description: "RegExp source escapes /", expr: "new RegExp('a/b')" },
  { description: "RegExp source escapes newline", expr: "new RegExp('a\\nb', 'g')" },
  // Collections
  { description: "Map", expr: "new Map([[1, 'a'], ['b', {}]])" },
  { description: "Set", expr: "new Set([1, 'a', null])" },
  { description: "nested Map and Set", expr: "new Map([[new Map(), new Set([[]])]])" },
  { description: "Map containing itself", expr: "(() => { const m = new Map(); m.set(m, m); return m; })()" },
  // Binary data
  { description: "ArrayBuffer", expr: "new Uint8Array([1, 2, 3]).buffer" },
  { description: "empty ArrayBuffer", expr: "new ArrayBuffer(0)" },
  { description: "Uint8Array", expr: "new Uint8Array([1, 2, 3])" },
  { description: "Int8Array", expr: "new Int8Array([-1, 2])" },
  { description: "Uint8ClampedArray", expr: "new Uint8ClampedArray([300, -5])" },
  { description: "Int16Array", expr: "new Int16Array([1, -2])" },
  { description: "Uint16Array", expr: "new Uint16Array([65535])" },
  { description: "Int32Array", expr: "new Int32Array([-7])" },
  { description: "Uint32Array", expr: "new Uint32Array([4294967295])" },
  { description: "Float32Array", expr: "new Float32Array([1.5, -0])" },
  { description: "Float64Array", expr: "new Float64Array([Math.PI])" },
  { description: "BigInt64Array", expr: "new BigInt64Array([1n, -1n])" },
  { description: "BigUint64Array", expr: "new BigUint64Array([2n**64n - 1n])" },
  { description: "Float16Array", expr: "new Float16Array([1, 2])", requires: "Float16Array" },
  { description: "DataView with offset", expr: "new DataView(new Uint8Array([1, 2, 3, 4]).buffer, 1, 2)" },
  { description: "typed array with offset into a larger buffer", expr: "new Uint16Array(new ArrayBuffer(8), 2, 2)" },
  { description: "views sharing a buffer, and the buffer itself", expr: "(() => { const b = new ArrayBuffer(8); return [new Uint8Array(b), new Uint16Array(b, 2, 2), b]; })()" },
  { description: "same view twice", expr: "(() => { const t = new Uint8Array(2); return [t, t]; })()" },
  { description: "DataView and typed array on one buffer", expr: "(() => { const b = new ArrayBuffer(4); return [new DataView(b), new Int8Array(b)]; })()" },
  { description: "resizable ArrayBuffer", expr: "new ArrayBuffer(2, {maxByteLength: 8})" },
  { description: "length-tracking view on a resizable buffer", expr: "new Uint8Array(new ArrayBuffer(4, {maxByteLength: 8}))" },
  { description: "fixed-length view on a resizable buffer", expr: "new Uint8Array(new ArrayBuffer(4, {maxByteLength: 8}), 0, 4)" },
  { description: "length-tracking DataView", expr: "new DataView(new ArrayBuffer(4, {maxByteLength: 8}), 1)" },
  // References
  { description: "shared reference", expr: "(() => { const o = {}; return [o, o]; })()" },
  { description: "circular reference", expr: "(() => { const a = {}; a.self = a; return a; })()" },
  { description: "back-reference ids in first-visit order", expr: "(() => { const a = {}; const b = {a}; return {b, a, c: [b]}; })()" },
  // Errors (stack fixed, since real stacks differ between runtimes)
  { description: "Error with message, stack and cause", expr: "(() => { const e = new Error('x', {cause: 5}); e.stack = 'S'; return e; })()" },
  { description: "TypeError", expr: "(() => { const e = new TypeError('t'); e.stack = 'S'; return e; })()" },
  { description: "RangeError without message", expr: "(() => { const e = new RangeError(); e.stack = 'S'; return e; })()" },
  { description: "EvalError, ReferenceError, SyntaxError, URIError", expr: "[EvalError, ReferenceError, SyntaxError, URIError].map((C) => { const e = new C('m'); e.stack = 's'; return e; })" },
  { description: "Error without stack", expr: "(() => { const e = new Error('m'); delete e.stack; Object.defineProperty(e, 'stack', {value: undefined}); return e; })()" },
  { description: "custom name reads back as Error", expr: "(() => { const e = new Error('m'); e.name = 'MyError'; e.stack = 'S'; return e; })()", expect: "(() => { const e = new Error('m'); e.stack = 'S'; return e; })()" },
  { description: "Error subclass reads back as its base", expr: "(() => { class MyErr extends TypeError {} const e = new MyErr('q'); e.stack = 's'; e.extra = 1; return e; })()", expect: "(() => { const e = new TypeError('q'); e.stack = 's'; return e; })()" },
  { description: "Error with object cause", expr: "(() => { const e = new Error('m', {cause: {code: 1}}); e.stack = 'S'; return e; })()" },
  // Errors in workerd's enhanced format (kHostObject, 10, ErrorTag, [name], message, {own properties}),
  // as workerd wrote them: `expect` where reading gives an own message "" or another class.
  ...[
    { description: "RangeError without message", expr: "(() => { const e = new RangeError(); e.stack = 'RangeError'; return e; })()", expect: "(() => { const e = new RangeError(''); e.stack = 'RangeError'; return e; })()", hex: "ff0f5c0a0322006f2205737461636b220a52616e67654572726f727b01" },
    { description: "Error with message and stack", expr: "(() => { const e = new Error('boom'); e.stack = 'Error: boom\\n    at fixed (interop.js:1:1)'; return e; })()", hex: "ff0f5c0a012204626f6f6d6f2205737461636b22294572726f723a20626f6f6d0a2020202061742066697865642028696e7465726f702e6a733a313a31297b01" },
    { description: "TypeError with an object cause", expr: "(() => { const e = new TypeError('bad type', {cause: {code: 42}}); e.stack = 'TypeError: bad type'; return e; })()", hex: "ff0f5c0a02220862616420747970656f2205737461636b2213547970654572726f723a206261642074797065220563617573656f2204636f646549547b017b02" },
    { description: "SyntaxError inside an object", expr: "({err: (() => { const e = new SyntaxError('nested'); e.stack = 'S'; return e; })(), ok: true})", hex: "ff0f6f22036572725c0a0522066e65737465646f2205737461636b2201537b0122026f6b547b02" },
    { description: "EvalError, ReferenceError, SyntaxError, URIError", expr: "[EvalError, ReferenceError, SyntaxError, URIError].map((C) => { const e = new C('m'); e.stack = 's'; return e; })", hex: "ff0f41045c0a0a22016d6f2205737461636b2201737b015c0a0422016d6f2205737461636b2201737b015c0a0522016d6f2205737461636b2201737b015c0a0b22016d6f2205737461636b2201737b01240004" },
    { description: "custom name is written after ErrorTag UNKNOWN (0)", expr: "(() => { const e = new Error('m'); e.stack = 'S'; e.name = 'MyError'; return e; })()", hex: "ff0f5c0a0022074d794572726f7222016d6f2205737461636b2201537b01" },
    { description: "WebAssembly.CompileError is UNKNOWN with its name", expr: "(() => { const e = new WebAssembly.CompileError('w'); e.stack = 'S'; return e; })()", expect: "(() => { const e = new Error('w'); e.stack = 'S'; return e; })()", hex: "ff0f5c0a00220c436f6d70696c654572726f722201776f2205737461636b2201537b01" },
    { description: "own properties, non-enumerable ones too; no symbols, indices or __proto__", expr: "(() => { const e = new RangeError('r'); e.stack = 'S'; e.code = 5; Object.defineProperty(e, 'hidden', {value: 1}); e[Symbol('s')] = 2; e[0] = 3; Object.defineProperty(e, '__proto__', {value: {p: 1}, enumerable: true}); return e; })()", hex: "ff0f5c0a032201726f2205737461636b2201532204636f6465490a220668696464656e49027b03" },
    { description: "subclass written by its inherited name", expr: "(() => { class MyErr extends TypeError {} const e = new MyErr('q'); e.stack = 'S'; e.extra = 1; return e; })()", expect: "(() => { const e = new TypeError('q'); e.stack = 'S'; return e; })()", hex: "ff0f5c0a022201716f2205737461636b2201532205657874726149027b02" },
    { description: "error without a stack", expr: "(() => { const e = new Error('m'); delete e.stack; return e; })()", expect: "(() => { const e = new Error('m'); e.stack = 'Error: m'; return e; })()", hex: "ff0f5c0a0122016d6f7b00" },
    { description: "two-byte message and stack (kPadding)", expr: "(() => { const e = new Error('\\u20ac'); e.stack = '\\u20ac'; return e; })()", hex: "ff0f5c0a01006302ac206f2205737461636b6302ac207b01" },
    { description: "error cause is an error", expr: "(() => { const i = new TypeError('inner'); i.stack = 'T'; const e = new Error('outer', {cause: i}); e.stack = 'S'; return e; })()", hex: "ff0f5c0a0122056f757465726f2205737461636b220153220563617573655c0a022205696e6e65726f2205737461636b2201547b017b02" },
    { description: "AggregateError with its errors", expr: "(() => { const t = new TypeError('t'); t.stack = 'T'; const e = new AggregateError([1, t], 'agg'); e.stack = 'S'; return e; })()", hex: "ff0f5c0a0c22036167676f2205737461636b22015322066572726f7273410249025c0a022201746f2205737461636b2201547b012400027b02" },
    { description: "SuppressedError", requires: "SuppressedError", expr: "(() => { const e = new SuppressedError(1, 2, 'sup'); e.stack = 'S'; return e; })()", hex: "ff0f5c0a0d22037375706f2205737461636b22015322056572726f724902220a7375707072657373656449047b03" },
    { description: "the same error twice: a back-reference to the error's id", expr: "(() => { const e = new Error('m'); e.stack = 'S'; return [e, e]; })()", hex: "ff0f41025c0a0122016d6f2205737461636b2201537b015e01240002" },
    { description: "back-references count the error's property object", expr: "(() => { const c = {c: 1}; const e = new Error('m', {cause: c}); e.stack = 'S'; return {e, c, e2: e}; })()", hex: "ff0f6f2201655c0a0122016d6f2205737461636b220153220563617573656f22016349027b017b022201635e03220265325e017b03" },
  ].map((c) => ({ ...c, description: `workerd enhanced error format: ${c.description}`, source: "workerd", encoder: { errors: "workerd" } })),
];

// ---------------------------------------------------------------------------
// Seeded random values for the property test.

/** mulberry32: small, fast, deterministic PRNG returning floats in [0, 1). */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Returns `count` JavaScript expressions for random values: nested objects,
 * arrays (dense, holey, double), Maps, Sets, Dates, typed arrays, shared
 * references, strings with Latin-1, BMP, astral and lone-surrogate code
 * units, and numbers of every kind.
 *
 * Everything is built from literals (or Map#set / Set#add with literal
 * arguments), so V8's heap representation of each value is what our encoder
 * assumes. Object keys are chosen by the kind of value they hold ('i…' for
 * Smis, 'd…' for other numbers, 'k…' for the rest): V8 keeps one field
 * representation per key across all objects of the same shape, and a key that
 * once held a double makes V8 write later integers in it as doubles too.
 * Integers in [2**30, 2**31) are left out: Node and workerd disagree on them
 * (see the explicit cases above).
 */
export function randomExpressions(seed, count) {
  const rnd = prng(seed);
  const int = (n) => Math.floor(rnd() * n);
  const pick = (xs) => xs[int(xs.length)];

  const smi = () => {
    const r = rnd();
    const v = r < 0.6 ? int(200) - 100 : r < 0.9 ? int(2 ** 20) - 2 ** 19 : int(2 ** 31) - 2 ** 30;
    return String(v);
  };
  const nonSmi = () =>
    pick([
      () => String(int(2000) / 8 + 0.125),
      () => String(-(int(10 ** 6) + 0.5)),
      () => "-0",
      () => "NaN",
      () => "Infinity",
      () => "-Infinity",
      () => String(2 ** 31 + int(2 ** 20)),
      () => String(-(2 ** 31) - 1 - int(2 ** 20)),
      () => String(2 ** 53 - int(1000)),
      () => String(rnd() * 1e300),
      () => String(5e-324 * (1 + int(5))),
    ])();
  const codeUnit = () =>
    pick([
      () => 0x20 + int(0x5f), // ASCII
      () => 0x20 + int(0x5f),
      () => 0xa0 + int(0x60), // Latin-1
      () => int(0x20), // control characters
      () => 0x100 + int(0xd700), // BMP below the surrogates
      () => 0xd800 + int(0x800), // a lone surrogate
      () => 0xe000 + int(0x2000),
    ])();
  const string = () => {
    const n = pick([0, 1, 2, 3, 5, 8, 13, 40, 100]);
    let s = "";
    const allAscii = rnd() < 0.5;
    for (let i = 0; i < n; i++) {
      if (allAscii) s += String.fromCharCode(0x20 + int(0x5f));
      else if (rnd() < 0.1) s += String.fromCodePoint(0x10000 + int(0xfffff)); // astral pair
      else s += String.fromCharCode(codeUnit());
    }
    return JSON.stringify(s);
  };
  const bigint = () => {
    const digits = 1 + int(45);
    let s = String(1 + int(9));
    for (let i = 1; i < digits; i++) s += int(10);
    return `${rnd() < 0.5 ? "-" : ""}${s}n`;
  };
  const keySuffix = () => pick(["", "a", "b", "x_y", "\u00e9t\u00e9", "\u043a\u043b\u044e\u0447", "\ud83d\ude00"]) + int(6);
  const typedArray = () => {
    const ctor = pick(["Uint8Array", "Int8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array", "Int32Array", "Uint32Array", "Float32Array", "Float64Array", "BigInt64Array", "BigUint64Array", "DataView"]);
    const n = int(6);
    if (ctor === "DataView") return `new DataView(new ArrayBuffer(${n + 2}), 1, ${n})`;
    const big = ctor.startsWith("Big");
    const xs = Array.from({ length: n }, () => (big ? `${int(1000) - 500}n` : String(int(1000) - 500)));
    return `new ${ctor}([${xs.join(", ")}])`;
  };

  // A value expression and the key class ('i' | 'd' | 'k') it belongs in.
  const value = (depth) => {
    const r = rnd();
    if (depth <= 0 || r < 0.45) {
      const p = rnd();
      if (p < 0.2) return ["i", smi()];
      if (p < 0.32) return ["d", nonSmi()];
      if (p < 0.6) return ["k", string()];
      if (p < 0.66) return ["k", bigint()];
      return ["k", pick(["true", "false", "null", "undefined"])];
    }
    const q = rnd();
    if (q < 0.3) return ["k", object(depth - 1)];
    if (q < 0.6) return ["k", array(depth - 1)];
    if (q < 0.68) return ["k", map(depth - 1)];
    if (q < 0.74) return ["k", set(depth - 1)];
    if (q < 0.8) return ["k", typedArray()];
    if (q < 0.84) return ["k", `new Date(${int(2 ** 41)})`];
    if (q < 0.87) return ["k", pick(["/ab+c/gi", "/x/y", "new RegExp('')", "/\\u20ac./su", "new Number(2.5)", "new String('s\\u00e9')", "Object(3n)", "new Boolean(false)"])];
    // A shared reference: the same object reached twice.
    const [, inner] = value(depth - 1);
    return ["k", `((s) => [s, {k0: s}, [s]])(${inner})`];
  };
  const object = (depth) => {
    const n = int(6);
    const parts = [];
    const used = new Set();
    for (let i = 0; i < n; i++) {
      const [cls, v] = value(depth);
      let key = rnd() < 0.15 ? String(pick([0, 1, 2, 7, 10, 4294967294])) : cls + keySuffix();
      if (used.has(key)) continue;
      used.add(key);
      parts.push(`${JSON.stringify(key)}: ${v}`);
    }
    return `({${parts.join(", ")}})`;
  };
  const array = (depth) => {
    const n = int(7);
    const kind = rnd();
    // A mixed array keeps either Smis or other numbers, not both: V8 builds a
    // literal like [undefined, 72, 1.5] from a double-array boilerplate and
    // boxes every number when `undefined` (an identifier, not a constant)
    // is stored, so it would write 72 as a double. Our encoder cannot see how
    // an array was built and writes 72 as a Smi, as V8 does for [null, 72, 1.5].
    const mixedNumbers = rnd() < 0.5 ? "i" : "d";
    const xs = [];
    for (let i = 0; i < n; i++) {
      if (kind < 0.15 && rnd() < 0.3) xs.push(""); // a hole
      else if (kind < 0.35) xs.push(smi());
      else if (kind < 0.5) xs.push(rnd() < 0.5 ? smi() : nonSmi());
      else {
        const [cls, v] = value(depth);
        xs.push(cls === "k" || cls === mixedNumbers ? v : string());
      }
    }
    // A trailing hole needs an extra comma to count.
    return `[${xs.join(", ")}${xs.length > 0 && xs[xs.length - 1] === "" ? "," : ""}]`;
  };
  const map = (depth) => {
    const n = int(5);
    const sets = [];
    for (let i = 0; i < n; i++) sets.push(`m.set(${value(depth)[1]}, ${value(depth)[1]});`);
    return `(() => { const m = new Map(); ${sets.join(" ")} return m; })()`;
  };
  const set = (depth) => {
    const n = int(5);
    const adds = [];
    for (let i = 0; i < n; i++) adds.push(`s.add(${value(depth)[1]});`);
    return `(() => { const s = new Set(); ${adds.join(" ")} return s; })()`;
  };

  const out = [];
  for (let i = 0; i < count; i++) out.push(value(1 + int(4))[1]);
  return out;
}

export const RANDOM_SEED = 0x5eed;
export const RANDOM_COUNT = 3000;

/** Evaluates a case expression in the global scope. */
export function evaluate(expr) {
  return (0, eval)(`(${expr})`);
}

/** SHA-256 over `serialize(value)` for every random expression, in order. */
export function digestRandom(serialize) {
  const hash = createHash("sha256");
  for (const expr of randomExpressions(RANDOM_SEED, RANDOM_COUNT)) hash.update(serialize(evaluate(expr)));
  return hash.digest("hex");
}

async function main() {
  if (typeof process.versions.bun === "string") throw new Error("run this with Node: it needs V8's serializer");
  const v8 = await import("node:v8");
  const v8Bytes = (value) => {
    const s = new v8.Serializer();
    s.writeHeader();
    s.writeValue(value);
    return s.releaseBuffer();
  };
  const v8Hex = (value) => v8Bytes(value).toString("hex");
  const cases = [];
  for (const c of GOLDEN_CASES) {
    if (c.requires && typeof globalThis[c.requires] === "undefined") {
      throw new Error(`case "${c.description}" needs ${c.requires}: use a Node that has it (24+)`);
    }
    const entry = { description: c.description, expr: c.expr };
    if (c.expect) entry.expect = c.expect;
    if (c.requires) entry.requires = c.requires;
    if (c.encoder) entry.encoder = c.encoder;
    entry.source = c.source ?? "v8";
    entry.hex = c.source === "workerd" ? c.hex : v8Hex(evaluate(c.expr));
    // Whether V8 on Node (32-bit Smis) writes something else than workerd.
    if (c.source === "workerd" && !c.encoder) entry.nodeDiffers = v8Hex(evaluate(c.expr)) !== c.hex;
    cases.push(entry);
  }
  // The property test checks every random value against V8 on Node; this
  // digest lets it check the same bytes on Bun.
  const random = { seed: RANDOM_SEED, count: RANDOM_COUNT, sha256: digestRandom(v8Bytes) };
  const file = fileURLToPath(new URL("../__test__/fixtures/v8-golden.json", import.meta.url));
  writeFileSync(file, JSON.stringify({ generatedBy: "scripts/gen-v8-golden.mjs", node: process.version, random, cases }, null, 2) + "\n");
  console.log(`wrote ${cases.length} cases to ${file}`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
