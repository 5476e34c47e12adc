// Fuzzing stored values (#8): random values and keys through the storage API, random SQL
// values, and damaged value bytes through the V8-format decoder, which reads whatever a
// file holds (workerd's, ours, or a damaged one). Seeded and bounded: see helpers/fuzz.mjs;
// `npm run fuzz` runs it 100 times longer.
import { test } from "node:test";
import assert from "node:assert/strict";
import { inspect } from "node:util";
import { deserialize, serialize } from "../dist/structured-clone.js";
import { describeSeed, fuzzCases, fuzzRandom } from "./helpers/fuzz.mjs";
import { inObject } from "./helpers/objects.mjs";

/** A random structured-cloneable value, `depth` levels deep at most. */
function randomValue(random, depth = 3) {
  const leaf = depth <= 0 || random.chance(0.4);
  if (leaf) {
    switch (random.int(12)) {
      case 0: return random.pick([0, -0, 1, -1, 2 ** 31, -(2 ** 31) - 1, 2 ** 53, Number.MAX_VALUE, Number.MIN_VALUE, NaN, Infinity, -Infinity]);
      case 1: return random.next() * 1e6 - 5e5;
      case 2: return random.int(2 ** 31) - 2 ** 30;
      case 3: return random.string(random.int(40));
      case 4: return "a".repeat(random.int(3000));
      case 5: return random.pick([null, undefined, true, false]);
      case 6: return BigInt(random.int(2 ** 31)) ** BigInt(1 + random.int(4)) * (random.chance(0.5) ? -1n : 1n);
      case 7: return new Date(random.chance(0.1) ? NaN : random.int(2 ** 31) * 1000);
      case 8: return random.bytes(random.int(64)).buffer;
      case 9: {
        const bytes = random.bytes(8 * (1 + random.int(8)));
        const Type = random.pick([Uint8Array, Int8Array, Uint16Array, Int32Array, Float32Array, Float64Array, BigInt64Array, DataView]);
        const size = Type === DataView ? 1 : Type.BYTES_PER_ELEMENT;
        const offset = size * random.int(2);
        return new Type(bytes.buffer, offset, Math.max(0, (bytes.length - offset) / size - 1 - random.int(2)));
      }
      case 10: return random.chance(0.5) ? new RegExp(random.pick(["a+b", "^x$", "[\\u0000-\\uFFFF]"]), random.pick(["", "g", "imsu"])) : Object(random.string(5));
      default: {
        const Ctor = random.pick([Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError]);
        const e = new Ctor(random.string(10));
        e.stack = "fixed";
        return e;
      }
    }
  }
  switch (random.int(4)) {
    case 0: {
      const a = Array.from({ length: random.int(6) }, () => randomValue(random, depth - 1));
      if (random.chance(0.2)) a[a.length + random.int(5)] = 1; // holes
      return a;
    }
    case 1: return new Map(Array.from({ length: random.int(5) }, () => [randomValue(random, depth - 1), randomValue(random, depth - 1)]));
    case 2: return new Set(Array.from({ length: random.int(5) }, () => randomValue(random, 0)));
    default: {
      const o = {};
      for (let i = random.int(6); i > 0; i--) o[random.chance(0.2) ? String(random.int(100)) : random.string(1 + random.int(8))] = randomValue(random, depth - 1);
      if (random.chance(0.1)) o.self = o; // a cycle
      return o;
    }
  }
}

/**
 * Whether `b` is a structured clone of `a`: same shapes, same primitives (Object.is, so -0
 * and NaN), Dates by time (Invalid Date equals Invalid Date), Errors by class and message,
 * Maps and Sets in order, holes kept, cycles where `a` has them. Node's isDeepStrictEqual
 * differs here between Node 22, Node 24 and Bun, so the fuzzer brings its own.
 */
function sameClone(a, b, seen = new Map()) {
  if (typeof a !== "object" || a === null) return Object.is(a, b);
  if (typeof b !== "object" || b === null) return false;
  if (seen.has(a)) return seen.get(a) === b;
  seen.set(a, b);
  const tag = Object.prototype.toString.call(a);
  if (tag !== Object.prototype.toString.call(b)) return false;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  if (a instanceof Date) return Object.is(a.getTime(), b.getTime());
  if (a instanceof RegExp) return a.source === b.source && a.flags === b.flags;
  if (a instanceof Error) return a.name === b.name && a.message === b.message;
  if (a instanceof String || a instanceof Number || a instanceof Boolean || a instanceof BigInt) return Object.is(a.valueOf(), b.valueOf());
  if (a instanceof ArrayBuffer) return Buffer.from(a).equals(Buffer.from(b));
  if (ArrayBuffer.isView(a)) {
    return a.byteOffset === b.byteOffset && a.byteLength === b.byteLength && sameClone(a.buffer, b.buffer, seen);
  }
  if (a instanceof Map || a instanceof Set) {
    if (a.size !== b.size) return false;
    const ea = [...a];
    const eb = [...b];
    return ea.every((entry, i) => sameClone(entry, eb[i], seen));
  }
  if (Array.isArray(a) && a.length !== b.length) return false;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((key) => Object.hasOwn(b, key) && sameClone(a[key], b[key], seen));
}

test("fuzz: random values under random keys come back as they went in", { timeout: 120_000 }, async () => {
  const random = fuzzRandom("storage-values");
  const cases = fuzzCases(300);
  await inObject(
    async (storage) => {
      const written = new Map();
      for (let i = 0; i < cases; i++) {
        const key = random.chance(0.5) ? random.string(1 + random.int(30)) : `k${i}`;
        let value = randomValue(random);
        if (value === undefined) value = null; // put() refuses undefined, as Cloudflare's does
        const how = random.int(3);
        if (how === 0) await storage.put(key, value);
        else if (how === 1) storage.kv.put(key, value);
        else await storage.put({ [key]: value });
        written.set(key, value);
        if (random.chance(0.1)) {
          const got = random.chance(0.5) ? await storage.get(key) : storage.kv.get(key);
          assert.ok(sameClone(got, value), `${describeSeed()}: value ${i} under ${JSON.stringify(key)}: ${inspect(value)} came back as ${inspect(got)}`);
        }
      }
      for (const [key, value] of written) {
        assert.ok(sameClone(storage.kv.get(key), value), `${describeSeed()}: ${JSON.stringify(key)} read back`);
      }
      // Every key listed once, in the order of its stored bytes.
      assert.equal([...storage.kv.list()].length, written.size, describeSeed());
    },
    { dataDir: (await import("./helpers/objects.mjs")).tempDir("fuzz-storage") },
  );
});

test("fuzz: damaged value bytes fail with an Error, never hang, crash or allocate without bound", { timeout: 120_000 }, () => {
  const random = fuzzRandom("storage-damage");
  const cases = fuzzCases(3000);
  let decoded = 0;
  let refused = 0;
  for (let i = 0; i < cases; i++) {
    let bytes = serialize(randomValue(random));
    switch (random.int(5)) {
      case 0: // flip bytes
        bytes = bytes.slice();
        for (let n = 1 + random.int(4); n > 0; n--) bytes[random.int(bytes.length)] = random.int(256);
        break;
      case 1: // truncate
        bytes = bytes.subarray(0, random.int(bytes.length));
        break;
      case 2: { // a huge length or count where a small one was
        bytes = bytes.slice();
        const at = 2 + random.int(Math.max(1, bytes.length - 2));
        const huge = [0xff, 0xff, 0xff, 0xff, 0x0f];
        const grown = new Uint8Array(bytes.length + huge.length);
        grown.set(bytes.subarray(0, at));
        grown.set(huge, at);
        grown.set(bytes.subarray(at), at + huge.length);
        bytes = grown;
        break;
      }
      case 3: // random bytes after a valid header
        bytes = Uint8Array.from([0xff, 0x0f, ...random.bytes(random.int(40))]);
        break;
      default: // splice two values together
        bytes = Uint8Array.from([...bytes.subarray(0, random.int(bytes.length)), ...serialize(randomValue(random, 1)).subarray(2)]);
    }
    try {
      deserialize(bytes);
      decoded++;
    } catch (error) {
      assert.ok(error instanceof Error, `${describeSeed()}: case ${i} threw a non-Error: ${String(error)}`);
      assert.equal(typeof error.message, "string");
      refused++;
    }
  }
  assert.equal(decoded + refused, cases);
  assert.ok(refused > 0, "some damage was noticed");
});

test("fuzz: random SQL values round-trip with Cloudflare's mapping", { timeout: 120_000 }, async () => {
  const random = fuzzRandom("storage-sql");
  const cases = fuzzCases(300);
  await inObject(async (storage) => {
    const sql = storage.sql;
    sql.exec("CREATE TABLE t (i INTEGER PRIMARY KEY, v)");
    for (let i = 0; i < cases; i++) {
      let value;
      let expected;
      switch (random.int(4)) {
        case 0:
          value = random.chance(0.5) ? random.next() * 1e9 : random.int(1000);
          expected = value;
          break;
        case 1: {
          // Well-formed text round-trips; a lone surrogate reads back as U+FFFD per byte.
          value = random.string(random.int(50));
          expected = value.isWellFormed() ? value : undefined;
          break;
        }
        case 2:
          value = random.bytes(random.int(100));
          expected = value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength);
          break;
        default:
          value = null;
          expected = null;
      }
      sql.exec("INSERT INTO t VALUES (?, ?)", i, value);
      const got = sql.exec("SELECT v FROM t WHERE i = ?", i).one().v;
      if (expected !== undefined) assert.ok(sameClone(got, expected), `${describeSeed()}: SQL value ${i}`);
      else assert.equal(typeof got, "string");
    }
    assert.equal(sql.exec("SELECT count(*) AS n FROM t").one().n, cases);
  });
});
