// The async KV API of ctx.storage (Cloudflare reference §1.6, §2.9).
import { test } from "node:test";
import assert from "node:assert/strict";
import { DurableObject, Registry, runInDurableObject } from "../index.js";
import { inObject } from "./helpers/objects.mjs";

test("get of a missing key is undefined; put then get returns a fresh copy", async () => {
  await inObject(async (storage) => {
    assert.equal(await storage.get("nope"), undefined);
    const value = { a: 1, nested: { b: [1, 2] } };
    await storage.put("k", value);
    const back = await storage.get("k");
    assert.deepEqual(back, value);
    assert.notEqual(back, value);
    back.a = 2;
    assert.deepEqual(await storage.get("k"), value);
  });
});

test("put() with an undefined value is a TypeError (rejected promise)", async () => {
  await inObject(async (storage) => {
    await assert.rejects(storage.put("k", undefined), { name: "TypeError", message: "put() called with undefined value." });
    assert.equal(await storage.get("k"), undefined);
  });
});

test("put(entries) stores each entry and silently skips undefined values", async () => {
  await inObject(async (storage) => {
    await storage.put({ a: 1, b: undefined, c: "three" });
    assert.deepEqual([...(await storage.list())], [["a", 1], ["c", "three"]]);
  });
});

test("put(entries, notOptions) is a TypeError", async () => {
  await inObject(async (storage) => {
    await assert.rejects(storage.put({ a: 1 }, 5), { name: "TypeError", message: /put\(\) may only be called with/ });
  });
});

test("get(keys[]) returns a Map of the keys that exist, sorted by UTF-8 bytes", async () => {
  await inObject(async (storage) => {
    await storage.put({ b: 2, a: 1, "\u{1D655}": "astral", "\uFF3A": "fullwidth" });
    const got = await storage.get(["\u{1D655}", "missing", "b", "\uFF3A", "a", "b"]);
    assert.ok(got instanceof Map);
    // U+FF3A sorts before U+1D655 in UTF-8 (EF BC BA < F0 9D 99 95) though not in UTF-16.
    assert.deepEqual([...got.keys()], ["a", "b", "\uFF3A", "\u{1D655}"]);
    assert.equal(got.get("\uFF3A"), "fullwidth");
  });
});

test("delete(key) says whether it existed; delete(keys[]) counts those that existed", async () => {
  await inObject(async (storage) => {
    await storage.put({ a: 1, b: 2, c: 3 });
    assert.equal(await storage.delete("a"), true);
    assert.equal(await storage.delete("a"), false);
    assert.equal(await storage.delete(["b", "c", "zzz"]), 2);
    assert.equal((await storage.list()).size, 0);
  });
});

test("more than 128 keys in one call is a RangeError and changes nothing", async () => {
  await inObject(async (storage) => {
    const keys = Array.from({ length: 129 }, (_, i) => `k${i}`);
    const entries = Object.fromEntries(keys.map((k) => [k, 1]));
    const tooMany = { name: "RangeError", message: "Maximum number of keys is 128." };
    await assert.rejects(storage.put(entries), tooMany);
    assert.equal((await storage.list()).size, 0);
    await storage.put("k1", "kept");
    await assert.rejects(storage.get(keys), tooMany);
    await assert.rejects(storage.delete(keys), tooMany);
    assert.equal(await storage.get("k1"), "kept");
    // exactly 128 is fine
    await storage.put(Object.fromEntries(keys.slice(0, 128).map((k) => [k, 2])));
    assert.equal((await storage.get(keys.slice(0, 128))).size, 128);
  });
});

test("values over the size limit fail with SQLITE_TOOBIG and leave data intact", async () => {
  await inObject(async (storage) => {
    await storage.put("k", "small");
    await assert.rejects(storage.put("k", new Uint8Array(2_200_000)), { message: "string or blob too big: SQLITE_TOOBIG" });
    await assert.rejects(storage.put("x".repeat(2_200_000), 1), { message: "string or blob too big: SQLITE_TOOBIG" });
    assert.equal(await storage.get("k"), "small");
    // 2 MiB itself is accepted, as in workerd
    await storage.put("big", new Uint8Array(2_097_152));
    assert.equal((await storage.get("big")).byteLength, 2_097_152);
  });
});

test("KV-backed classes have the KV backend's limits: 2,048-byte keys, 131,072-byte values; SQLite-backed ones do not", async () => {
  class Legacy extends DurableObject {}
  class Modern extends DurableObject {}
  const registry = new Registry({ dataDir: ":memory:" });
  const keyTooBig = { name: "RangeError", message: "Keys cannot be larger than 2048 bytes." };
  const valueTooBig = { name: "RangeError", message: "Values cannot be larger than 131072 bytes." };
  const longest = "é".repeat(1024); // 2,048 bytes of UTF-8
  await runInDurableObject(registry.namespace(Legacy, { storage: "kv" }).getByName("l"), async (_, { storage }) => {
    await storage.put("k", "kept");
    await assert.rejects(storage.put(longest + "x", 1), keyTooBig);
    await assert.rejects(storage.get(longest + "x"), keyTooBig);
    await assert.rejects(storage.get(["k", longest + "x"]), keyTooBig);
    await assert.rejects(storage.delete(longest + "x"), keyTooBig);
    await assert.rejects(storage.put("k", new Uint8Array(131_072 + 100)), valueTooBig);
    await assert.rejects(storage.put({ a: 1, k: "x".repeat(140_000) }), valueTooBig);
    assert.deepEqual([...(await storage.list())], [["k", "kept"]], "nothing of the refused calls was stored");
    await storage.put(longest, new Uint8Array(131_072));
    assert.equal((await storage.get(longest)).byteLength, 131_072, "128 KiB of bytes under a 2 KiB key fit");
  });
  await runInDurableObject(registry.namespace(Modern).getByName("m"), async (_, { storage }) => {
    await storage.put(longest + "x", new Uint8Array(200_000));
    assert.equal((await storage.get(longest + "x")).byteLength, 200_000);
  });
  await registry.close();
});

test("keys order by UTF-8 bytes; the empty string is the smallest key", async () => {
  await inObject(async (storage) => {
    const keys = ["b", "", "a", "ab", "\u{1D655}", "\uFF3A", "\u00e9", "A", "a\0"];
    for (const k of keys) await storage.put(k, k);
    const enc = new TextEncoder();
    const byBytes = [...keys].sort((x, y) => Buffer.compare(Buffer.from(enc.encode(x)), Buffer.from(enc.encode(y))));
    assert.deepEqual([...(await storage.list()).keys()], byBytes);
    assert.deepEqual([...(await storage.list({ reverse: true })).keys()], [...byBytes].reverse());
  });
});

test("list(): start is inclusive, startAfter exclusive, end exclusive, limit, reverse", async () => {
  await inObject(async (storage) => {
    await storage.put({ a: 1, b: 2, c: 3, d: 4, e: 5 });
    const keys = async (o) => [...(await storage.list(o)).keys()];
    assert.deepEqual(await keys({ start: "b" }), ["b", "c", "d", "e"]);
    assert.deepEqual(await keys({ startAfter: "b" }), ["c", "d", "e"]);
    assert.deepEqual(await keys({ end: "c" }), ["a", "b"]);
    assert.deepEqual(await keys({ start: "b", end: "d" }), ["b", "c"]);
    assert.deepEqual(await keys({ limit: 2 }), ["a", "b"]);
    // reverse walks the same range backwards; it does not swap start and end
    assert.deepEqual(await keys({ start: "b", end: "e", reverse: true }), ["d", "c", "b"]);
    assert.deepEqual(await keys({ reverse: true, limit: 2 }), ["e", "d"]);
    assert.deepEqual(await keys({ start: "d", end: "b" }), []);
  });
});

test("list(): prefix intersects the range", async () => {
  await inObject(async (storage) => {
    await storage.put({ a: 0, "p:1": 1, "p:2": 2, "p:3": 3, q: 4, "p\xff": 5 });
    const keys = async (o) => [...(await storage.list(o)).keys()];
    assert.deepEqual(await keys({ prefix: "p:" }), ["p:1", "p:2", "p:3"]);
    assert.deepEqual(await keys({ prefix: "p:", start: "p:2" }), ["p:2", "p:3"]);
    assert.deepEqual(await keys({ prefix: "p:", startAfter: "p:2" }), ["p:3"]);
    assert.deepEqual(await keys({ prefix: "p:", end: "p:3" }), ["p:1", "p:2"]);
    assert.deepEqual(await keys({ prefix: "p:", start: "q" }), []);
    assert.deepEqual(await keys({ prefix: "p:", end: "a" }), []);
    assert.deepEqual(await keys({ prefix: "p:", reverse: true, limit: 2 }), ["p:3", "p:2"]);
    assert.deepEqual(await keys({ prefix: "p" }), ["p:1", "p:2", "p:3", "p\xff"]);
  });
});

test("list() option errors are Cloudflare's TypeErrors", async () => {
  await inObject(async (storage) => {
    await assert.rejects(storage.list({ start: "a", startAfter: "b" }), {
      name: "TypeError",
      message: "list() cannot be called with both start and startAfter values.",
    });
    await assert.rejects(storage.list({ limit: 0 }), { name: "TypeError", message: "List limit must be positive." });
    await assert.rejects(storage.list({ limit: -3 }), { name: "TypeError", message: "List limit must be positive." });
  });
});

test("deleteAll() removes every key and every SQL table", async () => {
  await inObject(async (storage) => {
    await storage.put({ a: 1, b: 2 });
    storage.sql.exec("CREATE TABLE t (x)");
    storage.sql.exec("CREATE TABLE child (id INTEGER PRIMARY KEY, t_x REFERENCES t(x))");
    storage.sql.exec("CREATE VIEW v AS SELECT * FROM t");
    storage.sql.exec("INSERT INTO t VALUES (1)");
    await storage.deleteAll();
    assert.equal((await storage.list()).size, 0);
    const tables = storage.sql.exec("SELECT name FROM sqlite_master WHERE name NOT LIKE '\\_cf\\_%' ESCAPE '\\'").toArray();
    assert.deepEqual(tables, []);
    await storage.put("again", 1);
    assert.equal(await storage.get("again"), 1);
  });
});

test("awaiting storage does not yield: the methods return settled promises", async () => {
  await inObject(async (storage) => {
    const order = [];
    const p = storage.put("k", 1).then(() => order.push("put"));
    queueMicrotask(() => order.push("microtask"));
    await p;
    assert.deepEqual(order, ["put", "microtask"]);
  });
});

test("sync() resolves once earlier writes are durable", async () => {
  await inObject(async (storage) => {
    storage.put("k", 1);
    await storage.sync();
    assert.equal(await storage.get("k"), 1);
  });
});

test("storage.kv and the async API share keys and values", async () => {
  await inObject(async (storage) => {
    await storage.put("a", new Map([[1, "x"]]));
    assert.deepEqual(storage.kv.get("a"), new Map([[1, "x"]]));
    storage.kv.put("b", [1, 2]);
    assert.deepEqual(await storage.get("b"), [1, 2]);
  });
});

test("a key with a lone surrogate is stored as workerd stores it (WTF-8)", async () => {
  await inObject(async (storage) => {
    await storage.put("k\uD800", "lone");
    assert.equal(await storage.get("k\uD800"), "lone");
    // U+FFFD is a different key, as in workerd
    assert.equal(await storage.get("k\uFFFD"), undefined);
    assert.deepEqual([...(await storage.get(["k\uD800"])).values()], ["lone"]);
    // listing decodes the stored bytes, so the listed key carries replacement characters
    const [listed] = [...(await storage.list()).keys()];
    assert.notEqual(listed, "k\uD800");
    assert.match(listed, /^k\uFFFD+$/);
    assert.equal(await storage.delete("k\uD800"), true);
  });
});

test("keys that differ only in a lone surrogate read back alike: kv.list() yields each, list()'s Map merges them (as workerd)", async () => {
  await inObject(async (storage) => {
    const keys = ["\uD800", "\uDC00", "\uFFFD", "x\uD800y", "x\uFFFDy"];
    keys.forEach((key, i) => storage.kv.put(key, i));
    const lone = "\uFFFD".repeat(3);
    assert.deepEqual([...storage.kv.list()], [[`x${lone}y`, 3], ["x\uFFFDy", 4], [lone, 0], [lone, 1], ["\uFFFD", 2]]);
    assert.deepEqual([...(await storage.list())], [[`x${lone}y`, 3], ["x\uFFFDy", 4], [lone, 1], ["\uFFFD", 2]]);
    assert.deepEqual(keys.map((key) => storage.kv.get(key)), [0, 1, 2, 3, 4]);
  });
});

test("kv.list() pages past keys holding lone surrogates without skipping or repeating any", async () => {
  await inObject(async (storage) => {
    // Pages are 128 entries; each page goes on after the last key as stored, whose decoded
    // form (U+FFFD in place of the surrogate) would name a different place in the order.
    const n = 300;
    for (let i = 0; i < n; i++) storage.kv.put(`k\uD800${String(i).padStart(3, "0")}`, i);
    for (let i = 0; i < n; i++) storage.kv.put(`k\uFFFD${String(i).padStart(3, "0")}`, n + i);
    const values = [...storage.kv.list()].map(([, v]) => v);
    assert.deepEqual(values, Array.from({ length: 2 * n }, (_, i) => i));
    const reversed = [...storage.kv.list({ reverse: true })].map(([, v]) => v);
    assert.deepEqual(reversed, Array.from({ length: 2 * n }, (_, i) => 2 * n - 1 - i));
    const limited = [...storage.kv.list({ prefix: "k\uD800", limit: 200 })].map(([, v]) => v);
    assert.deepEqual(limited, Array.from({ length: 200 }, (_, i) => i));
  });
});
