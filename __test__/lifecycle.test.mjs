// Objects leave memory when idle and come back on their next event (reference §2.13).
import assert from "node:assert/strict";
import { test } from "node:test";
import { DurableObject, Registry, runInDurableObject } from "../index.js";
import { tempDir } from "./helpers/objects.mjs";

let constructed = 0;
class Visitor extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    constructed++;
    this.inMemory = 0;
  }
  async visit() {
    this.inMemory++;
    const stored = ((await this.ctx.storage.get("visits")) ?? 0) + 1;
    await this.ctx.storage.put("visits", stored);
    return { inMemory: this.inMemory, stored };
  }
  wait(promise) {
    return promise;
  }
}

for (const dataDir of ["files", ":memory:"]) {
  test(`an evicted object runs its constructor again on its next event; storage is kept (${dataDir})`, async () => {
    const registry = new Registry({ dataDir: dataDir === "files" ? tempDir() : dataDir });
    const stub = await registry.get("v", Visitor);
    const before = constructed;
    assert.deepEqual(await stub.visit(), { inMemory: 1, stored: 1 });
    assert.deepEqual(await stub.visit(), { inMemory: 2, stored: 2 });
    assert.equal(registry.liveObjects, 1);
    assert.equal(registry.evictIdle(), 1);
    assert.equal(registry.liveObjects, 0);
    assert.deepEqual(await stub.visit(), { inMemory: 1, stored: 3 }, "in-memory state is gone, storage is not");
    assert.equal(constructed - before, 2);
    await registry.close();
  });
}

test("objects with work in flight or waitUntil() pending are not evicted", async () => {
  const registry = new Registry({ dataDir: tempDir() });
  const stub = await registry.get("busy", Visitor);
  let release;
  const pending = new Promise((resolve) => (release = resolve));
  const call = runInDurableObject(stub, (object) => object.wait(pending));
  await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(registry.evictIdle(stub), 0);
  release("done");
  assert.equal(await call, "done");

  let finish;
  await runInDurableObject(stub, (_, ctx) => ctx.waitUntil(new Promise((resolve) => (finish = resolve))));
  assert.equal(registry.evictIdle(), 0, "waitUntil keeps the object");
  finish();
  await new Promise((resolve) => setTimeout(resolve, 1));
  assert.equal(registry.evictIdle(stub), 1);
  await registry.close();
});

test("idleTimeout evicts objects by itself after they go idle", async () => {
  // Long enough that none goes idle before all three visits are answered (their fsyncs
  // may end far apart on a slow disk), short enough for a test.
  const registry = new Registry({ dataDir: tempDir(), idleTimeout: 1000 });
  const stubs = await Promise.all(["a", "b", "c"].map((name) => registry.get(name, Visitor)));
  await Promise.all(stubs.map((stub) => stub.visit()));
  assert.equal(registry.liveObjects, 3);
  const deadline = Date.now() + 10_000;
  while (registry.liveObjects > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(registry.liveObjects, 0);
  assert.deepEqual(await stubs[0].visit(), { inMemory: 1, stored: 2 });
  await registry.close();
});

test("touching thousands of objects and evicting them leaves nothing behind", async () => {
  const registry = new Registry({ dataDir: tempDir(), idleTimeout: Infinity, durability: "relaxed" });
  const ns = registry.namespace(Visitor);
  for (let i = 0; i < 500; i++) await ns.getByName(`o${i}`).visit();
  assert.equal(registry.liveObjects, 500);
  assert.equal(registry.evictIdle(), 500);
  assert.equal(registry.liveObjects, 0);
  assert.deepEqual(await ns.getByName("o7").visit(), { inMemory: 1, stored: 2 });
  await registry.close();
});

test("idleTimeout is validated", () => {
  assert.throws(() => new Registry({ dataDir: ":memory:", idleTimeout: 0 }), TypeError);
  assert.throws(() => new Registry({ dataDir: ":memory:", idleTimeout: -5 }), TypeError);
  new Registry({ dataDir: ":memory:", idleTimeout: Infinity });
});

// Closing an evicted object's file checkpoints and fsyncs it, now on a thread of its own:
// an object touched again right away waits for its file's close, and a registry releases
// its folders only once every close is done.
test("objects evicted and touched again at once, round after round, keep every write; so does the next registry", async () => {
  class Kept extends DurableObject {}
  const dataDir = tempDir();
  const registry = new Registry({ dataDir, idleTimeout: Infinity });
  const ns = registry.namespace(Kept);
  for (let round = 0; round < 4; round++) {
    for (let i = 0; i < 60; i++) await runInDurableObject(ns.getByName(`o${i}`), (_, ctx) => ctx.storage.put("n", round * 100 + i));
    assert.equal(registry.evictIdle(), 60);
    for (let i = 0; i < 60; i++) assert.equal(await runInDurableObject(ns.getByName(`o${i}`), (_, ctx) => ctx.storage.get("n")), round * 100 + i);
    registry.evictIdle();
  }
  await registry.close();
  const again = new Registry({ dataDir });
  const ns2 = again.namespace(Kept);
  for (let i = 0; i < 60; i++) assert.equal(await runInDurableObject(ns2.getByName(`o${i}`), (_, ctx) => ctx.storage.get("n")), 300 + i);
  await again.close();
});
