// ctx.storage.kv: the synchronous KV API (reference §1.8).
import { test } from "node:test";
import assert from "node:assert/strict";
import { inObject } from "./helpers/objects.mjs";

test("get/put/delete are synchronous", async () => {
  await inObject((storage) => {
    const kv = storage.kv;
    assert.equal(kv.get("a"), undefined);
    kv.put("a", { deep: [1, new Date(0)] });
    assert.deepEqual(kv.get("a"), { deep: [1, new Date(0)] });
    assert.equal(kv.delete("a"), true);
    assert.equal(kv.delete("a"), false);
  });
});

test("put(k, undefined) stores undefined instead of throwing", async () => {
  await inObject((storage) => {
    storage.kv.put("u", undefined);
    assert.deepEqual([...storage.kv.list()], [["u", undefined]]);
  });
});

test("list is a lazy iterator with storage.list()'s option rules", async () => {
  await inObject((storage) => {
    const kv = storage.kv;
    for (let i = 0; i < 300; i++) kv.put(`k${String(i).padStart(3, "0")}`, i);
    const all = [...kv.list()];
    assert.equal(all.length, 300);
    assert.deepEqual(all[0], ["k000", 0]);
    assert.deepEqual(all[299], ["k299", 299]);
    assert.deepEqual([...kv.list({ prefix: "k29", reverse: true })].map(([k]) => k), ["k299", "k298", "k297", "k296", "k295", "k294", "k293", "k292", "k291", "k290"]);
    assert.equal([...kv.list({ limit: 200 })].length, 200);
    assert.equal([...kv.list({ reverse: true, limit: 150 })].at(-1)[0], "k150");
    assert.deepEqual([...kv.list({ startAfter: "k297" })].map(([k]) => k), ["k298", "k299"]);
    assert.deepEqual([...kv.list({ start: "k100", end: "k103", reverse: true })].map(([k]) => k), ["k102", "k101", "k100"]);
    assert.throws(() => kv.list({ limit: 0 }), { name: "TypeError", message: "List limit must be positive." });
  });
});

test("starting a new list() invalidates the previous iterator", async () => {
  await inObject((storage) => {
    storage.kv.put("a", 1);
    storage.kv.put("b", 2);
    const first = storage.kv.list();
    first.next();
    const second = storage.kv.list();
    assert.throws(() => first.next(), {
      message:
        "kv.list() iterator was invalidated because a new call to kv.list() was started. Only one kv.list() iterator can exist at a time.",
    });
    assert.equal([...second].length, 2);
  });
});
