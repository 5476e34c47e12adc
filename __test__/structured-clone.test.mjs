// Tests for lib/structured-clone.ts: V8 ValueSerializer format, version 15.
//
// Runs unchanged under `node --test` (22 and 24) and `bun test`. On Node,
// bytes are compared with V8's own base `v8.Serializer`, and V8's
// `v8.Deserializer` must read our bytes back; on Bun, bytes are compared with
// the golden fixture that Node generated (__test__/fixtures/v8-golden.json,
// regenerate with `node scripts/gen-v8-golden.mjs`).
//
// Where V8 on Node and workerd disagree (Node on x64 has 32-bit Smis, workerd
// 31-bit ones, so integers in [2**30, 2**31) and [-(2**31), -(2**30)) are
// kInt32 in Node but kDouble in workerd), we follow workerd: those cases are
// marked `source: "workerd"` in the fixture and skip the byte comparison
// with Node. So are errors in workerd's enhanced format (a host object that
// V8 without workerd can neither write nor read), which the fixture marks
// with the encoder options that write them (`encoder: { errors: "workerd" }`).

import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { types } from "node:util";
import { ValueEncoder, serialize, deserialize, DataCloneError } from "../dist/structured-clone.js";
import { randomExpressions, evaluate } from "../scripts/gen-v8-golden.mjs";

const isBun = typeof process.versions.bun === "string";
const v8 = isBun ? null : (await import("node:v8")).default;
const onNode = { skip: isBun ? "needs V8's serializer (Node only)" : false };

const golden = JSON.parse(readFileSync(new URL("./fixtures/v8-golden.json", import.meta.url), "utf8"));

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const unhex = (s) => Uint8Array.from(s.match(/../g) ?? [], (h) => parseInt(h, 16));

function v8Serialize(value) {
  const s = new v8.Serializer();
  s.writeHeader();
  s.writeValue(value);
  return new Uint8Array(s.releaseBuffer());
}

function v8Deserialize(bytes) {
  const d = new v8.Deserializer(bytes);
  d.readHeader();
  return d.readValue();
}

/**
 * Strict structural equality for cloned values, the same on every runtime
 * (assert.deepStrictEqual differs between Node versions and Bun for invalid
 * Dates, errors and typed arrays). Checks holes, -0 and NaN, Map and Set
 * order, prototypes, errors, boxed primitives, views and their buffers, and
 * that shared and circular references have the same shape.
 */
function assertSame(actual, expected, path = "value", seen = new Map(), seenActual = new Map()) {
  // Messages are built only on failure: String() of a huge sparse array would take minutes.
  const describeValue = (v) => (typeof v === "object" && v !== null ? Object.prototype.toString.call(v) : String(v));
  if (typeof expected !== "object" || expected === null) {
    if (!Object.is(actual, expected)) assert.fail(`${path}: got ${describeValue(actual)}, expected ${describeValue(expected)}`);
    return;
  }
  if (typeof actual !== "object" || actual === null) assert.fail(`${path}: expected an object, got ${describeValue(actual)}`);
  if (seen.has(expected) || seenActual.has(actual)) {
    assert.ok(seen.get(expected) === actual && seenActual.get(actual) === expected, `${path}: reference structure differs`);
    return;
  }
  seen.set(expected, actual);
  seenActual.set(actual, expected);
  const same = (a, e, p) => assertSame(a, e, p, seen, seenActual);

  if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual), `${path}: expected an array`);
    assert.equal(actual.length, expected.length, `${path}.length`);
    if (expected.length > 100000) {
      // Huge sparse arrays: compare the keys that exist.
      assert.deepEqual(Object.keys(actual), Object.keys(expected), `${path}: keys`);
      for (const k of Object.keys(expected)) same(actual[k], expected[k], `${path}[${k}]`);
      return;
    }
    for (let i = 0; i < expected.length; i++) {
      assert.equal(i in actual, i in expected, `${path}[${i}]: hole mismatch`);
      if (i in expected) same(actual[i], expected[i], `${path}[${i}]`);
    }
    const named = (a) => Object.keys(a).filter((k) => !/^(0|[1-9]\d*)$/.test(k) || Number(k) >= a.length);
    assert.deepEqual(named(actual), named(expected), `${path}: named keys`);
    for (const k of named(expected)) same(actual[k], expected[k], `${path}.${k}`);
    return;
  }
  if (types.isDate(expected)) {
    assert.ok(types.isDate(actual), `${path}: expected a Date`);
    assert.ok(Object.is(actual.getTime(), expected.getTime()), `${path}: Date ${actual.getTime()} vs ${expected.getTime()}`);
    return;
  }
  if (types.isRegExp(expected)) {
    assert.ok(types.isRegExp(actual), `${path}: expected a RegExp`);
    assert.equal(actual.source, expected.source, `${path}.source`);
    assert.equal(actual.flags, expected.flags, `${path}.flags`);
    return;
  }
  if (types.isMap(expected) || types.isSet(expected)) {
    assert.equal(types.isMap(actual), types.isMap(expected), `${path}: Map/Set kind`);
    assert.equal(types.isSet(actual), types.isSet(expected), `${path}: Map/Set kind`);
    const a = [...actual.entries()];
    const e = [...expected.entries()];
    assert.equal(a.length, e.length, `${path}.size`);
    for (let i = 0; i < e.length; i++) {
      same(a[i][0], e[i][0], `${path} entry ${i} key`);
      same(a[i][1], e[i][1], `${path} entry ${i} value`);
    }
    return;
  }
  if (types.isArrayBuffer(expected)) {
    assert.ok(types.isArrayBuffer(actual), `${path}: expected an ArrayBuffer`);
    assert.equal(actual.resizable, expected.resizable, `${path}.resizable`);
    assert.equal(actual.maxByteLength, expected.maxByteLength, `${path}.maxByteLength`);
    assert.equal(hex(new Uint8Array(actual)), hex(new Uint8Array(expected)), `${path}: bytes`);
    return;
  }
  if (ArrayBuffer.isView(expected)) {
    assert.ok(ArrayBuffer.isView(actual), `${path}: expected a view`);
    assert.equal(actual.constructor.name, expected.constructor.name, `${path}: view type`);
    assert.equal(actual.byteOffset, expected.byteOffset, `${path}.byteOffset`);
    assert.equal(actual.byteLength, expected.byteLength, `${path}.byteLength`);
    same(actual.buffer, expected.buffer, `${path}.buffer`);
    return;
  }
  if (types.isNativeError(expected)) {
    assert.ok(types.isNativeError(actual), `${path}: expected an Error`);
    assert.equal(Object.getPrototypeOf(actual), Object.getPrototypeOf(expected), `${path}: error prototype`);
    assert.equal(Object.hasOwn(actual, "message"), Object.hasOwn(expected, "message"), `${path}: has message`);
    assert.equal(actual.message, expected.message, `${path}.message`);
    assert.equal(actual.stack, expected.stack, `${path}.stack`);
    assert.equal(Object.hasOwn(actual, "cause"), Object.hasOwn(expected, "cause"), `${path}: has cause`);
    if (Object.hasOwn(expected, "cause")) same(actual.cause, expected.cause, `${path}.cause`);
    return;
  }
  if (types.isBoxedPrimitive(expected)) {
    assert.equal(Object.prototype.toString.call(actual), Object.prototype.toString.call(expected), `${path}: boxed kind`);
    assert.ok(Object.is(actual.valueOf(), expected.valueOf()), `${path}: boxed value`);
    return;
  }
  assert.equal(Object.getPrototypeOf(actual), Object.prototype, `${path}: expected a plain object`);
  assert.deepEqual(Object.keys(actual), Object.keys(expected), `${path}: keys`);
  for (const k of Object.keys(expected)) same(actual[k], expected[k], `${path}.${k}`);
}

/** Serializes with our encoder and checks bytes (against V8 on Node) and the round trip. */
function check(value, { expectHex, expected = value } = {}) {
  const bytes = serialize(value);
  if (expectHex !== undefined) assert.equal(hex(bytes), expectHex);
  if (v8) {
    assert.equal(hex(bytes), hex(v8Serialize(value)), "bytes differ from V8's");
    assertSame(v8Deserialize(bytes), expected, "v8.Deserializer result");
  }
  assertSame(deserialize(bytes), expected);
  return bytes;
}

function assertCloneError(fn, message) {
  assert.throws(fn, (err) => {
    assert.equal(err.name, "DataCloneError");
    assert.ok(err instanceof DataCloneError, "instanceof DataCloneError");
    if (typeof DOMException === "function") {
      assert.ok(err instanceof DOMException, "a DOMException where the runtime has one");
      assert.equal(err.code, 25);
    }
    if (message !== undefined) assert.equal(err.message, message);
    return true;
  });
}

// -----------------------------------------------------------------------------

describe("golden fixtures", () => {
  for (const c of golden.cases) {
    const missing = c.requires && typeof globalThis[c.requires] === "undefined";
    test(c.description, { skip: missing ? `no ${c.requires} here` : false }, () => {
      const bytes = c.encoder ? new ValueEncoder(c.encoder).encodeCopy(evaluate(c.expr)) : serialize(evaluate(c.expr));
      assert.equal(hex(bytes), c.hex, `serialize(${c.expr})`);
      assertSame(deserialize(unhex(c.hex)), evaluate(c.expect ?? c.expr));
    });
  }

  test("fixture bytes are still what Node's V8 writes", onNode, () => {
    for (const c of golden.cases) {
      if (c.requires && typeof globalThis[c.requires] === "undefined") continue;
      if (c.encoder) continue; // workerd's enhanced error format: not V8's alone
      const ours = unhex(c.hex);
      if (c.nodeDiffers) {
        // Node's 32-bit Smis make V8 on Node write these differently from
        // workerd (31-bit Smis); V8 must still read workerd's bytes back.
        assert.notEqual(hex(v8Serialize(evaluate(c.expr))), c.hex, c.description);
      } else {
        assert.equal(hex(v8Serialize(evaluate(c.expr))), c.hex, c.description);
      }
      assertSame(v8Deserialize(ours), evaluate(c.expect ?? c.expr), c.description);
    }
  });
});

describe("numbers", () => {
  test("Smis use workerd's 31-bit range", () => {
    const cases = [
      [0, "ff0f4900"],
      [1, "ff0f4902"],
      [-1, "ff0f4901"],
      [63, "ff0f497e"],
      [-64, "ff0f497f"],
      [64, "ff0f498001"],
      [2 ** 30 - 1, "ff0f49feffffff07"],
      [-(2 ** 30), "ff0f49ffffffff07"],
      [2 ** 30, "ff0f4e000000000000d041"],
      [-(2 ** 30) - 1, "ff0f4e000040000000d0c1"],
    ];
    for (const [v, h] of cases) {
      assert.equal(hex(serialize(v)), h, String(v));
      assert.ok(Object.is(deserialize(unhex(h)), v));
    }
  });

  test("doubles: -0, NaN, infinities, fractions, large integers", () => {
    for (const v of [-0, NaN, Infinity, -Infinity, 0.1, -1.5, 2 ** 53, -(2 ** 60), 5e-324, Number.MAX_VALUE]) {
      check(v);
    }
    assert.equal(hex(serialize(NaN)), "ff0f4e000000000000f87f");
    // A NaN with another payload is still written as the canonical NaN.
    const odd = new Float64Array(new BigUint64Array([0x7ff4000000000001n]).buffer)[0];
    assert.equal(hex(serialize(odd)), "ff0f4e000000000000f87f");
  });

  test("V8's Deserializer reads workerd's number encodings", onNode, () => {
    for (const v of [2 ** 30, 2 ** 31 - 1, -(2 ** 31), -(2 ** 30) - 1, [1, 2 ** 30], { [2 ** 30]: 1 }]) {
      assertSame(v8Deserialize(serialize(v)), v);
    }
  });

  test("BigInt", () => {
    for (const v of [0n, 1n, -1n, 2n ** 63n, 2n ** 64n - 1n, 2n ** 64n, -(2n ** 200n) + 7n, 10n ** 100n]) check(v);
    assert.equal(hex(serialize(1n)), "ff0f5a100100000000000000");
    // Digits of 4 bytes (32-bit V8) read too.
    assert.equal(deserialize(unhex("ff0f5a0905000000")), -5n);
  });
});

describe("strings", () => {
  test("one-byte when every code unit is <= 0xFF", () => {
    check("", { expectHex: "ff0f2200" });
    check("abc", { expectHex: "ff0f2203616263" });
    check("\u00ff\u00e9", { expectHex: "ff0f2202ffe9" });
    check("\0\x01\x7f\x80");
  });

  test("two-byte with kPadding so the data is 2-byte aligned", () => {
    check("a\u20ac", { expectHex: "ff0f63046100ac20" });
    check(["\u20ac"], { expectHex: "ff0f41016302ac20240001" });
    check({ a: "\u20ac" }, { expectHex: "ff0f6f2201616302ac207b01" });
    check({ ab: "\u20ac" }, { expectHex: "ff0f6f22026162006302ac207b01" });
    // A length varint of 2 bytes moves the padding decision.
    check("\u20ac".repeat(64));
    check(["\u20ac".repeat(64)]);
  });

  test("lone surrogates and astral characters survive", () => {
    for (const s of ["\ud800", "\udfff", "a\ud800b", "\ud83d\ude00", "\ude00\ud83d", "x".repeat(100) + "\ud800"]) {
      check(s);
      check({ [s]: s });
    }
  });

  test("long strings (native fast paths)", () => {
    for (const s of ["a".repeat(63), "a".repeat(64), "a".repeat(70000), "\u00e9".repeat(70000), "a".repeat(100) + "\u00e9", "\u20ac".repeat(70000), "a".repeat(5000) + "\ud800"]) {
      check(s);
    }
  });

  test("short strings decode the same through the string cache", () => {
    const words = ["id", "name", "active", "di", "eman", "", "a", "\u00e9t\u00e9", "x".repeat(32), "y".repeat(33)];
    for (let round = 0; round < 3; round++) {
      for (const w of words) assert.equal(deserialize(serialize(w)), w);
    }
    // Strings colliding in one cache slot still decode correctly.
    for (let i = 0; i < 20000; i++) {
      const s = `k${i}`;
      assert.equal(deserialize(serialize(s)), s);
    }
  });
});

describe("objects", () => {
  test("key order and array-index keys written as numbers", () => {
    check({ b: 1, 2: "x", a: 2, 1: "y", 4294967295: 1, 4294967294: 2, "01": 3, "-1": 4, "1.5": 5, "": 6 });
  });

  test("getters are invoked; symbols and non-enumerables are skipped", () => {
    const o = { get x() { return 5; }, y: 2, [Symbol("s")]: 3 };
    Object.defineProperty(o, "hidden", { value: 4, enumerable: false });
    check(o, { expected: { x: 5, y: 2 } });
  });

  test("a getter deleting a later key drops it, as V8 does", () => {
    const make = () => ({ get a() { delete this.b; return 1; }, b: 2, c: 3 });
    check(make(), { expected: { a: 1, c: 3 } });
  });

  test("class instances come back as plain objects", () => {
    class Point {
      constructor() { this.x = 1; this.y = 2; }
      get sum() { return this.x + this.y; }
    }
    check(new Point(), { expected: { x: 1, y: 2 } });
    check(Object.assign(Object.create(null), { a: 1 }), { expected: { a: 1 } });
    check(Object.create(Date.prototype), { expected: {} }); // not a real Date
  });

  test("an own __proto__ key stays an own property", () => {
    const value = JSON.parse('{"__proto__": {"x": 1}, "y": 2}');
    const bytes = check(value);
    const back = deserialize(bytes);
    assert.equal(Object.getPrototypeOf(back), Object.prototype);
    assert.deepEqual(Object.keys(back), ["__proto__", "y"]);
  });

  test("enumerable properties on Object.prototype are not written", () => {
    const expectedHex = hex(serialize({ a: 1 }));
    const nestedHex = hex(serialize([{ a: 1 }, Object.create(null)]));
    Object.prototype.polluted = 1; // eslint-disable-line no-extend-native
    try {
      assert.equal(hex(serialize({ a: 1 })), expectedHex);
      assert.equal(hex(serialize([{ a: 1 }, Object.create(null)])), nestedHex);
      if (v8) assert.equal(hex(serialize({ a: 1 })), hex(v8Serialize({ a: 1 })));
    } finally {
      delete Object.prototype.polluted;
    }
    assert.equal(hex(serialize({ a: 1 })), expectedHex);
  });

  test("many properties, deep nesting", () => {
    const big = {};
    for (let i = 0; i < 500; i++) big[`key${i}`] = i % 3 === 0 ? `v${i}` : i;
    check(big);
    let deep = { leaf: true };
    for (let i = 0; i < 500; i++) deep = { next: deep, i };
    check(deep);
  });
});

describe("arrays", () => {
  test("dense, double and mixed arrays", () => {
    check([], { expectHex: "ff0f4100240000" });
    check([1, 2, 3], { expectHex: "ff0f4103490249044906240003" });
    check([1, 1.5], { expectHex: "ff0f41024e000000000000f03f4e000000000000f83f240002" });
    check([1, 2.5, "x"], { expectHex: "ff0f410349024e0000000000000440220178240003" });
    check([undefined, null, [undefined]]);
    check([1, -0]);
    check([NaN, 1]);
  });

  test("holey arrays use the sparse format", () => {
    check([1, , 3], { expectHex: "ff0f61034900490249044906400203" }); // eslint-disable-line no-sparse-arrays
    check([, ]); // eslint-disable-line no-sparse-arrays
    check([1.5, , 2]); // eslint-disable-line no-sparse-arrays
    const a = [];
    a[5] = 1;
    check(a);
    const huge = [];
    huge[4294967294] = "last";
    check(huge);
  });

  test("named properties on arrays", () => {
    check(Object.assign([1, 2], { foo: "bar" }));
    check(Object.assign([1, , 2], { foo: "bar", 7: 1 })); // eslint-disable-line no-sparse-arrays
  });

  test("large arrays", () => {
    check(Array.from({ length: 10000 }, (_, i) => i));
    check(Array.from({ length: 10000 }, (_, i) => (i % 2 ? `s${i}` : { i })));
  });
});

describe("other built-ins", () => {
  test("boxed primitives", () => {
    check(new Number(1));
    check(new Number(-0));
    check(new String("ab"));
    check(new String("\u20ac"));
    check(new Boolean(true));
    check(new Boolean(false));
    check(Object(12345678901234567890n));
  });

  test("Date", () => {
    check(new Date(0), { expectHex: "ff0f440000000000000000" });
    check(new Date(1700000000000));
    check(new Date(NaN));
    check(new Date(-8.64e15));
  });

  test("RegExp flags use V8's bit layout", () => {
    check(/a/g, { expectHex: "ff0f5222016101" });
    check(/a/i, { expectHex: "ff0f5222016102" });
    check(/a/m, { expectHex: "ff0f5222016104" });
    check(/a/y, { expectHex: "ff0f5222016108" });
    check(/a/u, { expectHex: "ff0f5222016110" });
    check(/a/s, { expectHex: "ff0f5222016120" });
    check(/a/d, { expectHex: "ff0f522201618001" });
    check(/a/v, { expectHex: "ff0f522201618002" });
    check(/[\u20ac-\u20af]+/giu);
    check(new RegExp(""));
    check(new RegExp("a/b\nc"));
  });

  test("a RegExp with V8's experimental 'l' flag does not deserialize", () => {
    assertCloneError(() => deserialize(unhex("ff0f5222016140")), "Unable to deserialize cloned data.");
  });

  test("Map and Set keep insertion order and object keys", () => {
    const k = { k: 1 };
    check(new Map([[k, k], [1, "a"], ["1", "b"], [NaN, -0]]));
    check(new Set([k, 1, "1", NaN, undefined, null]));
    const m = new Map();
    m.set("self", m);
    check(m);
  });

  test("Errors: prototype, message, stack, cause", () => {
    for (const C of [Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError]) {
      const e = new C("boom");
      e.stack = `${C.name}: boom\n    at somewhere`;
      check(e);
    }
    const withCause = new Error("outer", { cause: new TypeError("inner") });
    withCause.stack = "S";
    withCause.cause.stack = "T";
    check(withCause);
    const noMessage = new Error();
    noMessage.stack = "S";
    check(noMessage);
    const back = deserialize(serialize(withCause));
    assert.ok(back instanceof Error);
    assert.ok(back.cause instanceof TypeError);
    assert.equal(back.cause.message, "inner");
    assert.equal(Object.getOwnPropertyDescriptor(back, "message").enumerable, false);
  });

  test("Errors with real stacks round-trip on this runtime", () => {
    const e = new RangeError("real");
    const back = deserialize(serialize(e));
    assert.ok(back instanceof RangeError);
    assert.equal(back.message, "real");
    assert.equal(back.stack, e.stack);
  });

  test("an Error subclass or renamed Error reads back by its name", () => {
    class MyError extends TypeError {}
    const e = new MyError("q");
    e.stack = "s";
    e.extra = 1;
    const back = deserialize(serialize(e));
    assert.equal(Object.getPrototypeOf(back), TypeError.prototype);
    assert.equal(back.extra, undefined);
    const renamed = new Error("m");
    renamed.name = "RangeError";
    renamed.stack = "S";
    assert.equal(Object.getPrototypeOf(deserialize(serialize(renamed))), RangeError.prototype);
  });
});

// workerd's enhanced error format (`enhanced_error_serialization`, on by default from compatibility
// date 2026-04-21): kHostObject, 10, ErrorTag, [name if UNKNOWN], message, then a plain object of the
// error's other own properties. Bytes below were written by workerd 1.20260730.1 (Miniflare
// 4.20260730.0, compatibility date 2026-07-01) into `_cf_KV.value`; what workerd reads back from them
// is described in the comments (src/workerd/jsg/ser.c++, Deserializer::ReadHostObject).
describe("workerd's enhanced error format", () => {
  const workerdEncoder = new ValueEncoder({ errors: "workerd" });
  const enhanced = (value) => hex(workerdEncoder.encode(value));
  const withStack = (error, stack) => {
    error.stack = stack;
    return error;
  };
  const descriptor = (o, key) => {
    const d = Object.getOwnPropertyDescriptor(o, key);
    return d && { value: d.value, writable: d.writable, enumerable: d.enumerable, configurable: d.configurable };
  };
  const dataProperty = (value, enumerable) => ({ value, writable: true, enumerable, configurable: true });
  /** The samples from `wrangler dev` / Miniflare: [what was stored, bytes]. */
  const samples = () => [
    [withStack(new RangeError(), "RangeError"), "ff0f5c0a0322006f2205737461636b220a52616e67654572726f727b01"],
    [withStack(new Error("boom"), "Error: boom\n    at fixed (interop.js:1:1)"), "ff0f5c0a012204626f6f6d6f2205737461636b22294572726f723a20626f6f6d0a2020202061742066697865642028696e7465726f702e6a733a313a31297b01"],
    [withStack(new TypeError("bad type", { cause: { code: 42 } }), "TypeError: bad type"), "ff0f5c0a02220862616420747970656f2205737461636b2213547970654572726f723a206261642074797065220563617573656f2204636f646549547b017b02"],
    [{ err: withStack(new SyntaxError("nested"), "S"), ok: true }, "ff0f6f22036572725c0a0522066e65737465646f2205737461636b2201537b0122026f6b547b02"],
    [[EvalError, ReferenceError, SyntaxError, URIError].map((C) => withStack(new C("m"), "s")), "ff0f41045c0a0a22016d6f2205737461636b2201737b015c0a0422016d6f2205737461636b2201737b015c0a0522016d6f2205737461636b2201737b015c0a0b22016d6f2205737461636b2201737b01240004"],
  ];

  test("the samples workerd wrote read back as workerd reads them", () => {
    // const e = new RangeError(); e.stack = "RangeError": workerd reads back Object.keys(err) = ["stack"].
    const range = deserialize(unhex(samples()[0][1]));
    assert.equal(Object.getPrototypeOf(range), RangeError.prototype);
    assert.deepEqual(Reflect.ownKeys(range), ["stack", "message"]);
    assert.deepEqual(Object.keys(range), ["stack"]);
    assert.deepEqual(descriptor(range, "stack"), dataProperty("RangeError", true));
    assert.deepEqual(descriptor(range, "message"), dataProperty("", false), "the message is always own, even empty");
    assert.equal(range.name, "RangeError", "inherited");

    const boom = deserialize(unhex(samples()[1][1]));
    assert.equal(Object.getPrototypeOf(boom), Error.prototype);
    assert.deepEqual(descriptor(boom, "message"), dataProperty("boom", false));
    assert.equal(boom.stack, "Error: boom\n    at fixed (interop.js:1:1)");
    assert.deepEqual(Object.keys(boom), ["stack"]);

    const typed = deserialize(unhex(samples()[2][1]));
    assert.equal(Object.getPrototypeOf(typed), TypeError.prototype);
    assert.equal(typed.message, "bad type");
    assert.deepEqual(Object.keys(typed), ["stack", "cause"]);
    assert.deepEqual(descriptor(typed, "cause").enumerable, true, "cause is enumerable, unlike V8's own cause");
    assert.deepEqual(typed.cause, { code: 42 });

    const inObject = deserialize(unhex(samples()[3][1]));
    assert.deepEqual(Object.keys(inObject), ["err", "ok"]);
    assert.equal(Object.getPrototypeOf(inObject.err), SyntaxError.prototype);
    assert.equal(inObject.err.message, "nested");
    assert.equal(inObject.err.stack, "S");
    assert.equal(inObject.ok, true);

    const kinds = deserialize(unhex(samples()[4][1]));
    assert.deepEqual(kinds.map((e) => Object.getPrototypeOf(e)), [EvalError.prototype, ReferenceError.prototype, SyntaxError.prototype, URIError.prototype]);
    for (const e of kinds) assert.deepEqual([e.message, e.stack, Object.keys(e)], ["m", "s", ["stack"]]);
  });

  test("the encoder writes the samples byte for byte as workerd did", () => {
    for (const [value, bytes] of samples()) assert.equal(enhanced(value), bytes);
  });

  test("the default stays V8's own format ('r'), which reads back as before", () => {
    const [[value]] = samples();
    assert.equal(hex(serialize(value)), "ff0f725273220a52616e67654572726f722e");
    assert.equal(hex(new ValueEncoder({ errors: "v8" }).encode(value)), "ff0f725273220a52616e67654572726f722e");
    assert.throws(() => new ValueEncoder({ errors: "workerd-ish" }), TypeError);
  });

  test("a custom name is written after ErrorTag UNKNOWN and read back as an own enumerable property", () => {
    const e = withStack(new Error("m"), "S");
    e.name = "MyError";
    const bytes = enhanced(e);
    assert.equal(bytes, "ff0f5c0a0022074d794572726f7222016d6f2205737461636b2201537b01"); // workerd's
    const back = deserialize(unhex(bytes));
    assert.equal(Object.getPrototypeOf(back), Error.prototype);
    assert.deepEqual(Reflect.ownKeys(back), ["stack", "message", "name"]);
    assert.deepEqual(Object.keys(back), ["stack", "name"]);
    assert.deepEqual(descriptor(back, "name"), dataProperty("MyError", true));
    // The name picks the ErrorTag: an Error renamed "RangeError" is a RangeError, a TypeError renamed "Error" an Error.
    const renamed = withStack(new Error("m"), "S");
    renamed.name = "RangeError";
    assert.equal(enhanced(renamed), "ff0f5c0a0322016d6f2205737461636b2201537b01");
    assert.equal(Object.getPrototypeOf(deserialize(workerdEncoder.encode(renamed))), RangeError.prototype);
    // A name that is not a string is written as it is (workerd reads back 42).
    const numbered = withStack(new Error("m"), "S");
    numbered.name = 42;
    assert.equal(enhanced(numbered), "ff0f5c0a00495422016d6f2205737461636b2201537b01");
    assert.equal(deserialize(workerdEncoder.encode(numbered)).name, 42);
  });

  test("own properties are kept, as own enumerable data properties", () => {
    const e = withStack(new TypeError("m", { cause: 1 }), "S");
    e.code = 7;
    Object.defineProperty(e, "hidden", { value: "h", enumerable: false });
    Object.defineProperty(e, "computed", { get: () => "got", enumerable: false, configurable: true });
    e[Symbol("s")] = "dropped";
    e[0] = "dropped";
    // stack first (V8 creates it with the error), message and name left out, the rest in order;
    // on Bun too, whose errors have stack last and line/column/sourceURL own properties.
    const bytes = enhanced(e);
    assert.equal(bytes, "ff0f5c0a0222016d6f2205737461636b2201532205636175736549022204636f6465490e220668696464656e2201682208636f6d70757465642203676f747b05"); // workerd's
    const back = deserialize(unhex(bytes));
    assert.deepEqual(Object.keys(back), ["stack", "cause", "code", "hidden", "computed"]);
    for (const key of Object.keys(back)) assert.deepEqual(descriptor(back, key), dataProperty(back[key], true), key);
    assert.deepEqual([back.cause, back.code, back.hidden, back.computed], [1, 7, "h", "got"]);
    assert.deepEqual(descriptor(back, "message"), dataProperty("m", false));
  });

  test("a real stack round-trips as an own enumerable property", () => {
    const e = new RangeError("real");
    const back = deserialize(workerdEncoder.encode(e));
    assert.equal(Object.getPrototypeOf(back), RangeError.prototype);
    assert.equal(back.stack, e.stack);
    assert.deepEqual(Object.keys(back), ["stack"]);
  });

  test("round trip: class, message, stack, cause, name and own properties", () => {
    const inner = withStack(new ReferenceError("inner"), "R");
    // [value, the keys Object.keys() gives after the round trip]
    const values = [
      [withStack(new Error("outer", { cause: inner }), "S"), ["stack", "cause"]],
      [withStack(new AggregateError([1, inner], "agg"), "A"), ["stack", "errors"]],
      [Object.assign(withStack(new URIError(""), "U"), { list: [1, 2], nested: { deep: true } }), ["stack", "list", "nested"]],
      [withStack(new Error("\u20ac two-byte \ud800"), "\u20ac"), ["stack"]],
    ];
    if (typeof SuppressedError === "function") {
      values.push([withStack(new SuppressedError(inner, "x", "sup"), "P"), ["stack", "error", "suppressed"]]);
    }
    // The URIError as workerd wrote it.
    assert.equal(enhanced(values[2][0]), "ff0f5c0a0b22006f2205737461636b22015522046c69737441024902490424000222066e65737465646f220464656570547b017b03");
    for (const [value, keys] of values) {
      const back = deserialize(workerdEncoder.encode(value));
      assertSame(back, value);
      assert.deepEqual(Object.keys(back), keys);
      assert.equal(enhanced(back), enhanced(value), "writing what was read gives the same bytes");
    }
    const agg = deserialize(workerdEncoder.encode(values[1][0]));
    assert.deepEqual(descriptor(agg, "errors").enumerable, true);
    assert.equal(agg.errors[1].message, "inner");
  });

  test("ErrorTag numbers map to workerd's classes; unknown numbers read as Error", () => {
    const wasm = globalThis.WebAssembly ?? {};
    const classes = [
      Error, Error, TypeError, RangeError, ReferenceError, SyntaxError,
      wasm.CompileError, wasm.LinkError, wasm.RuntimeError, wasm.SuspendError,
      EvalError, URIError, AggregateError, globalThis.SuppressedError,
    ];
    for (let tag = 0; tag < 16; tag++) {
      const name = tag === 0 ? "22014e" : ""; // UNKNOWN carries a name: "N"
      // kHostObject, 10, tag, [name], message "m", an empty property object
      const bytes = unhex(`ff0f5c0a${tag.toString(16).padStart(2, "0")}${name}22016d6f7b00`);
      const e = deserialize(bytes);
      const Expected = classes[tag] ?? Error;
      assert.equal(Object.getPrototypeOf(e), Expected.prototype, `tag ${tag}`);
      assert.equal(e.message, "m");
      assert.equal(Object.hasOwn(e, "errors") || Object.hasOwn(e, "error") || Object.hasOwn(e, "suppressed"), false, `tag ${tag}: no constructor-made properties`);
      assert.deepEqual(Object.keys(e), tag === 0 ? ["name"] : [], `tag ${tag}`);
      // No stack in the bytes: V8's, with no frames of ours.
      assert.equal(e.stack, tag === 0 ? "N: m" : `${e.name}: m`, `tag ${tag} stack`);
    }
  });

  test("back-references: the same error twice, and ids after its property object", () => {
    const e = withStack(new Error("m"), "S");
    const twice = enhanced([e, e]);
    assert.equal(twice, "ff0f41025c0a0122016d6f2205737461636b2201537b015e01240002"); // ^1: the error
    const [a, b] = deserialize(unhex(twice));
    assert.equal(a, b);
    // The error is id 1, its property object id 2, so the cause object is id 3.
    const c = { c: 1 };
    const shared = { e: withStack(new Error("m", { cause: c }), "S"), c };
    shared.e2 = shared.e;
    const bytes = enhanced(shared);
    assert.equal(bytes, "ff0f6f2201655c0a0122016d6f2205737461636b220153220563617573656f22016349027b017b022201635e03220265325e017b03");
    const back = deserialize(unhex(bytes));
    assert.equal(back.e2, back.e);
    assert.equal(back.e.cause, back.c);
    // A reference to the property object itself gives that plain object (as in workerd).
    const [err, props] = deserialize(unhex("ff0f41025c0a0122016d6f2205737461636b2201537b015e02240002"));
    assert.deepEqual(Object.keys(err), ["stack"]);
    assert.equal(Object.getPrototypeOf(props), Object.prototype);
    assert.deepEqual(props, { stack: "S" });
    // Errors mixed with V8-format values and other objects keep one numbering.
    const mixed = [new Map([[e, c]]), e, c, new Date(0), { e }];
    const mixedBack = deserialize(workerdEncoder.encode(mixed));
    assert.equal(mixedBack[1], [...mixedBack[0].keys()][0]);
    assert.equal(mixedBack[2], [...mixedBack[0].values()][0]);
    assert.equal(mixedBack[4].e, mixedBack[1]);
  });

  test("what workerd cannot read back is rejected", () => {
    // An error whose cause is itself: the reference points at an id not yet readable.
    const self = withStack(new Error("m"), "S");
    self.cause = self;
    assert.equal(enhanced(self), "ff0f5c0a0122016d6f2205737461636b220153220563617573655e007b02");
    assertCloneError(() => deserialize(workerdEncoder.encode(self)), "Unable to deserialize cloned data.");
    // A message that is not a string (workerd: "error message is not a string").
    const numeric = withStack(new Error("m"), "S");
    numeric.message = 42;
    assert.equal(enhanced(numeric), "ff0f5c0a0149546f2205737461636b2201537b01");
    assertCloneError(() => deserialize(workerdEncoder.encode(numeric)), "Unable to deserialize cloned data.");
    // Another embedder tag, and truncated data.
    assertCloneError(() => deserialize(unhex("ff0f5c0b0122016d6f7b00")));
    assertCloneError(() => deserialize(unhex("ff0f5c0a01")));
    assertCloneError(() => deserialize(unhex("ff0f5c0a0122016d6f2205737461636b")));
  });

  test("a getter may serialize with the same options (re-entrant use)", () => {
    const e = withStack(new Error("outer"), "S");
    Object.defineProperty(e, "inner", { get: () => enhanced(withStack(new TypeError("t"), "T")), enumerable: true });
    const back = deserialize(workerdEncoder.encode(e));
    assert.equal(back.inner, "ff0f5c0a022201746f2205737461636b2201547b01");
  });
});

describe("binary data", () => {
  const ctors = [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, Float32Array, Float64Array, BigInt64Array, BigUint64Array];
  if (typeof globalThis.Float16Array === "function") ctors.push(globalThis.Float16Array);

  test("every typed array type, whole and with an offset", () => {
    for (const C of ctors) {
      const big = C === BigInt64Array || C === BigUint64Array;
      const xs = [1, 2, 3, 4].map((x) => (big ? BigInt(x) : x));
      check(new C(xs));
      const buffer = new ArrayBuffer(C.BYTES_PER_ELEMENT * 8);
      check(new C(buffer, C.BYTES_PER_ELEMENT * 2, 3));
      check(new C(0));
    }
  });

  test("DataView", () => {
    check(new DataView(new ArrayBuffer(4), 1, 2), { expectHex: "ff0f420400000000563f010200" });
    check(new DataView(new ArrayBuffer(0)));
  });

  test("views share their buffer; the buffer takes an id before the view", () => {
    const b = new ArrayBuffer(8);
    check([new Uint8Array(b), new Uint16Array(b, 2, 2), b], {
      expectHex: "ff0f41034208000000000000000056420008005e0156570204005e01240003",
    });
    const t = new Uint8Array([7, 8]);
    check({ a: t, b: t, c: t.buffer });
    check([b, new DataView(b)]);
  });

  test("resizable buffers and length-tracking views", () => {
    const rab = () => new ArrayBuffer(4, { maxByteLength: 8 });
    check(rab());
    check(new Uint8Array(rab()), { expectHex: "ff0f7e0408000000005642000003" });
    check(new Uint8Array(rab(), 0, 4), { expectHex: "ff0f7e0408000000005642000402" });
    check(new Uint8Array(rab(), 1));
    check(new DataView(rab()));
    check(new DataView(rab(), 1, 2));
    // Buffers already at their maximum size (probed by shrinking instead).
    check(new Uint32Array(new ArrayBuffer(8, { maxByteLength: 8 })));
    check(new Uint32Array(new ArrayBuffer(8, { maxByteLength: 8 }), 0, 2));
    check(new Uint16Array(new ArrayBuffer(8, { maxByteLength: 8 }), 2));
    check(new DataView(new ArrayBuffer(8, { maxByteLength: 8 }), 2, 6));
    check(new DataView(new ArrayBuffer(8, { maxByteLength: 8 }), 2));
    const full = new ArrayBuffer(8, { maxByteLength: 8 });
    new Uint8Array(full).set([1, 2, 3, 4, 5, 6, 7, 8]);
    serialize(new Uint16Array(full, 2, 3));
    assert.deepEqual([...new Uint8Array(full)], [1, 2, 3, 4, 5, 6, 7, 8], "bytes restored after probing");
    const tracking = deserialize(serialize(new Uint16Array(rab())));
    tracking.buffer.resize(8);
    assert.equal(tracking.length, 4, "still length-tracking after the round trip");
    // Probing a view must not change its buffer.
    const b = new ArrayBuffer(4, { maxByteLength: 8 });
    new Uint8Array(b).set([1, 2, 3, 4]);
    serialize(new Uint8Array(b));
    assert.equal(b.byteLength, 4);
    assert.deepEqual([...new Uint8Array(b)], [1, 2, 3, 4]);
  });

  test("deserialized ArrayBuffers are fresh copies", () => {
    const bytes = serialize([new Uint8Array([1, 2, 3]), new ArrayBuffer(2)]);
    const [view, ab] = deserialize(bytes);
    assert.notEqual(view.buffer, bytes.buffer);
    assert.equal(view.buffer.byteLength, 3);
    assert.equal(ab.byteLength, 2);
    bytes.fill(0);
    assert.deepEqual([...view], [1, 2, 3]);
    // Node's Buffer#slice does not copy: make sure that is not what is used.
    if (typeof Buffer === "function") {
      const buf = Buffer.from(serialize(new Uint8Array([9, 9])));
      const v = deserialize(buf);
      buf.fill(0);
      assert.deepEqual([...v], [9, 9]);
      assert.equal(v.buffer.byteLength, 2);
    }
  });
});

describe("references", () => {
  test("shared and circular references use V8's id numbering", () => {
    const o = {};
    check([o, o], { expectHex: "ff0f41026f7b005e01240002" });
    const a = {};
    a.self = a;
    check(a, { expectHex: "ff0f6f220473656c665e007b01" });
    const x = {};
    const y = { x };
    check({ y, x, z: [y] });
  });

  test("many objects (past the linear back-reference scan)", () => {
    const objs = Array.from({ length: 100 }, (_, i) => ({ i }));
    check([objs, [...objs].reverse(), new Map(objs.map((o) => [o, o]))]);
  });

  test("an Error's cause cannot refer to the error itself (as in V8)", () => {
    const e = new Error("m");
    e.stack = "s";
    e.cause = e;
    const bytes = serialize(e);
    if (v8) assert.equal(hex(bytes), hex(v8Serialize(e)));
    assertCloneError(() => deserialize(bytes), "Unable to deserialize cloned data.");
  });
});

describe("values that cannot be cloned", () => {
  const detached = () => {
    const b = new ArrayBuffer(4);
    b.transfer();
    return b;
  };
  const cases = [
    ["function", () => function foo() {}, "function foo() {} could not be cloned."],
    ["arrow function", () => () => 1, "() => 1 could not be cloned."],
    // Bun's transpiler reformats class bodies, so take the runtime's own source text.
    ["class", () => class A {}, (v) => `${Function.prototype.toString.call(v)} could not be cloned.`],
    ["symbol", () => Symbol("x"), "Symbol(x) could not be cloned."],
    ["WeakMap", () => new WeakMap(), "#<WeakMap> could not be cloned."],
    ["WeakSet", () => new WeakSet(), "#<WeakSet> could not be cloned."],
    ["Promise", () => Promise.resolve(), "#<Promise> could not be cloned."],
    ["SharedArrayBuffer", () => new SharedArrayBuffer(4), "#<SharedArrayBuffer> could not be cloned."],
    ["view on a SharedArrayBuffer", () => new Uint8Array(new SharedArrayBuffer(4)), "#<SharedArrayBuffer> could not be cloned."],
    ["Proxy", () => new Proxy({}, {}), "#<Object> could not be cloned."],
    ["Proxy of an array", () => new Proxy([], {}), "[object Array] could not be cloned."],
    ["WeakRef", () => new WeakRef({}), "#<WeakRef> could not be cloned."],
    ["Symbol wrapper", () => Object(Symbol("q")), "[object Symbol] could not be cloned."],
    ["generator", () => (function* () {})(), "[object Generator] could not be cloned."],
    ["array iterator", () => [].values(), "[object Array Iterator] could not be cloned."],
    ["Map iterator", () => new Map().keys(), "[object Map Iterator] could not be cloned."],
    ["arguments", function () { return (function () { return arguments; })(1); }, "#<Object> could not be cloned."],
    ["detached ArrayBuffer", detached, "An ArrayBuffer is detached and could not be cloned."],
    ["function nested in an object", () => ({ a: [1, { f() {} }] }), "f() {} could not be cloned."],
  ];
  for (const [name, make, expectedMessage] of cases) {
    test(name, () => {
      const value = make();
      const message = typeof expectedMessage === "function" ? expectedMessage(value) : expectedMessage;
      assertCloneError(() => serialize(value), message);
      if (v8) {
        // Node's base Serializer throws a plain Error with the same message.
        assert.throws(() => v8Serialize(make()), { message });
      }
    });
  }

  test("DataCloneError is usable on its own", () => {
    const e = new DataCloneError("x");
    assert.equal(e.name, "DataCloneError");
    assert.ok(e instanceof DataCloneError);
    assert.ok(e instanceof Error);
    assert.equal(Object.keys(e).length, 0);
    assert.ok(!(new Error("x") instanceof DataCloneError));
  });

  test("the encoder is usable again after an error", () => {
    const enc = new ValueEncoder();
    const o = { a: 1 };
    assert.throws(() => enc.encode([o, () => 1]));
    assert.equal(hex(enc.encode([o, o])), "ff0f41026f22016149027b015e01240002");
  });
});

describe("deserialize", () => {
  test("older versions: 13 (no view flags), 14, and headerless data", () => {
    assertSame(deserialize(unhex("ff0d420301020356420003")), new Uint8Array([1, 2, 3]));
    assertSame(deserialize(unhex("ff0e42030102035642000300")), new Uint8Array([1, 2, 3]));
    assertSame(deserialize(unhex("420301020356420003")), new Uint8Array([1, 2, 3]));
    assertSame(deserialize(unhex("6f22016149027b01")), { a: 1 });
  });

  test("version 13 data written with view flags (crbug.com/1284506) is retried", () => {
    // [length-tracking Uint8Array on a resizable buffer, 1], views with flags.
    const bytes = unhex("ff0d41027e04080000000056420000034902240002");
    const [view, one] = deserialize(bytes);
    assert.equal(one, 1);
    assert.ok(view instanceof Uint8Array);
    assert.equal(view.buffer.resizable, true);
    if (v8) assertSame(v8Deserialize(bytes), [view, one]);
  });

  test("unsupported versions are rejected", () => {
    const msg = "Unable to deserialize cloned data due to invalid or unsupported version.";
    assertCloneError(() => deserialize(unhex("ff104902")), msg);
    assertCloneError(() => deserialize(unhex("ff0c4902")), msg);
  });

  test("rarely written tags: kVerifyObjectCount, kUint32, kUtf8String, kPadding, kTheHole", () => {
    assert.equal(deserialize(unhex("ff0f3f014902")), 1);
    assert.equal(deserialize(unhex("ff0f55ffffffff0f")), 4294967295);
    assert.equal(deserialize(unhex("ff0f5303e282ac")), "\u20ac");
    assert.equal(deserialize(unhex("ff0f00004902")), 1);
    assertSame(deserialize(unhex("ff0f410349022d4906240003")), [1, , 3]); // eslint-disable-line no-sparse-arrays
  });

  test("invalid data throws a DataCloneError", () => {
    const msg = "Unable to deserialize cloned data.";
    const good = serialize({ a: [1, "two", new Map([[3, 4]])] });
    for (let n = 0; n < good.length; n++) assertCloneError(() => deserialize(good.subarray(0, n)), msg);
    const bad = {
      "no value": "ff0f",
      "kTheHole outside an array": "ff0f2d",
      "reference to an unknown id": "ff0f5e00",
      "object as a key": "ff0f6f6f7b00497b01",
      "reference as a key": "ff0f6f5e007b01",
      "array longer than the data": "ff0f4105",
      "host object": "ff0f5c",
      "truncated BigInt object": "ff0f7a",
      "odd two-byte length": "ff0f63036100",
      "end tag where a value belongs": "ff0f6f49027b02",
      "wrong array length at the end": "ff0f41014902240003",
      "wrong property count": "ff0f4100240100",
      "view past the end of its buffer": "ff0f420201025642000300",
      "misaligned Int16Array": "ff0f4204000000005677010200",
      "unknown view subtag": "ff0f420400000000567a000400",
      "invalid RegExp pattern": "ff0f5222012800",
      "length-tracking view on a fixed buffer": "ff0f4204000000005642000003",
    };
    for (const [what, h] of Object.entries(bad)) {
      assert.throws(() => deserialize(unhex(h)), (e) => e.name === "DataCloneError" && e.message === msg, what);
    }
    // An own "length" key on an array is refused, as V8 refuses existing keys.
    assertCloneError(() => deserialize(unhex("ff0f610022066c656e6774684902400100")), msg);
  });

  test("accepts a Buffer, a DataView or an ArrayBuffer", () => {
    const bytes = serialize({ a: 1 });
    assertSame(deserialize(new DataView(bytes.buffer)), { a: 1 });
    assertSame(deserialize(bytes.buffer), { a: 1 });
    if (typeof Buffer === "function") assertSame(deserialize(Buffer.from(bytes)), { a: 1 });
  });
});

describe("ValueEncoder", () => {
  test("reuses its buffer; the view is valid until the next encode()", () => {
    const enc = new ValueEncoder();
    const first = enc.encode({ a: 1 });
    assert.equal(hex(first), hex(serialize({ a: 1 })));
    const second = enc.encode("x".repeat(5000)); // grows the buffer
    assert.equal(hex(second), hex(serialize("x".repeat(5000))));
    const third = enc.encode(7);
    assert.equal(hex(third), "ff0f490e");
    // serialize() returns copies that stay valid.
    const kept = serialize(1);
    serialize(2);
    assert.equal(hex(kept), "ff0f4902");
  });

  test("a getter may serialize (re-entrant use)", () => {
    const value = {
      get inner() {
        return hex(serialize({ z: [1, 2] }));
      },
      after: 3,
    };
    const back = deserialize(serialize(value));
    assert.equal(back.inner, hex(serialize({ z: [1, 2] })));
    assert.equal(back.after, 3);
    const enc = new ValueEncoder();
    const nested = { get n() { return enc.encode(5).length; }, m: 1 };
    assertSame(deserialize(enc.encode(nested)), { n: 4, m: 1 });
  });

  test("a large value does not pin a large buffer", () => {
    const enc = new ValueEncoder();
    const big = new Uint8Array(3 << 20).fill(7);
    assert.equal(hex(enc.encode(big)), hex(serialize(big)));
    assert.equal(hex(enc.encode(true)), "ff0f54");
  });
});

test("random values: V8's bytes on Node, the same bytes and a faithful round trip everywhere", () => {
  const { seed, count, sha256 } = golden.random;
  const hash = createHash("sha256");
  let i = 0;
  for (const expr of randomExpressions(seed, count)) {
    const where = `random value #${i++}: ${expr}`;
    const bytes = serialize(evaluate(expr));
    hash.update(bytes);
    if (v8) {
      assert.equal(hex(bytes), hex(v8Serialize(evaluate(expr))), where);
      assertSame(v8Deserialize(bytes), evaluate(expr), where);
    }
    const back = deserialize(bytes);
    assertSame(back, evaluate(expr), where);
    assert.equal(hex(serialize(back)), hex(bytes), `${where}: re-encoding the result changed the bytes`);
  }
  // The digest of V8's bytes for these values, recorded on Node: checks Bun's bytes too.
  assert.equal(hash.digest("hex"), sha256, "bytes differ from V8's for the random values (if the generator changed, rerun scripts/gen-v8-golden.mjs)");
});
