// The `cloudflare:test`-shaped helpers beyond runInDurableObject (reference §4 item 19):
// runDurableObjectAlarm and listDurableObjectIds, as vitest-pool-workers defines them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { DurableObject, listDurableObjectIds, Registry, runDurableObjectAlarm, runInDurableObject } from "../index.js";
import { tempDir } from "./helpers/objects.mjs";

class Alarmed extends DurableObject {
  async alarm(info) {
    const runs = ((await this.ctx.storage.get("runs")) ?? 0) + 1;
    await this.ctx.storage.put({ runs, info });
    const mode = await this.ctx.storage.get("mode");
    if (mode === "again") await this.ctx.storage.setAlarm(Date.now() + 3_600_000);
    if (mode === "throw") throw new TypeError("the alarm failed");
  }
}

class Plain extends DurableObject {}

const storage = (stub) => ({
  get: (key) => runInDurableObject(stub, (_, ctx) => ctx.storage.get(key)),
  put: (key, value) => runInDurableObject(stub, (_, ctx) => ctx.storage.put(key, value)),
  getAlarm: () => runInDurableObject(stub, (_, ctx) => ctx.storage.getAlarm()),
  setAlarm: (at) => runInDurableObject(stub, (_, ctx) => ctx.storage.setAlarm(at)),
});

test("runDurableObjectAlarm runs a set alarm now and removes it; without one it runs nothing", async () => {
  const registry = new Registry({ dataDir: tempDir() });
  const stub = registry.namespace(Alarmed).getByName("a");
  const s = storage(stub);
  assert.equal(await runDurableObjectAlarm(stub), false, "no alarm is set");
  assert.equal(await s.get("runs"), undefined, "and alarm() did not run");

  await s.setAlarm(Date.now() + 400);
  assert.equal(await runDurableObjectAlarm(stub), true);
  assert.equal(await s.get("runs"), 1);
  assert.deepEqual(await s.get("info"), { retryCount: 0, isRetry: false });
  assert.equal(await s.getAlarm(), null, "the alarm is gone");
  await sleep(800);
  assert.equal(await s.get("runs"), 1, "nor does it run again at its time");
  assert.equal(await runDurableObjectAlarm(stub), false);

  // An alarm that sets the next one keeps it.
  await s.put("mode", "again");
  await s.setAlarm(Date.now() + 3_600_000);
  assert.equal(await runDurableObjectAlarm(stub), true);
  assert.ok((await s.getAlarm()) > Date.now(), "the alarm set by alarm() stays");
  await registry.close();
});

test("runDurableObjectAlarm hands alarm()'s error to the caller, and the alarm is not retried", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  const stub = registry.namespace(Alarmed).getByName("b");
  const s = storage(stub);
  await s.put("mode", "throw");
  await s.setAlarm(Date.now() + 3_600_000);
  await assert.rejects(runDurableObjectAlarm(stub), { name: "TypeError", message: "the alarm failed" });
  assert.equal(await s.getAlarm(), null);
  assert.equal(await runDurableObjectAlarm(stub), false);
  await registry.close();
});

for (const where of ["a data folder", ":memory:"]) {
  test(`listDurableObjectIds lists the objects that stored something, in ${where}`, async () => {
    const dataDir = where === ":memory:" ? ":memory:" : tempDir();
    const registry = new Registry({ dataDir });
    const counters = registry.namespace(Plain, { uniqueKey: "app-Plain" });
    const others = registry.namespace(Alarmed, { uniqueKey: "app-Alarmed" });
    assert.deepEqual(await listDurableObjectIds(counters), [], "nothing was written yet");

    const written = ["x", "y", "z"].map((name) => counters.getByName(name));
    for (const stub of written) await runInDurableObject(stub, (_, ctx) => ctx.storage.put("k", 1));
    await runInDurableObject(counters.getByName("read-only"), (_, ctx) => ctx.storage.get("k"));
    await runInDurableObject(others.getByName("x"), (_, ctx) => ctx.storage.put("k", 1));

    const expected = written.map((stub) => stub.id.toString()).sort();
    const listed = await listDurableObjectIds(counters);
    assert.deepEqual(
      listed.map((id) => id.toString()),
      expected,
      "the three that wrote, sorted; not the one that only read, nor another namespace's",
    );
    assert.ok(listed.every((id) => id.name === undefined));
    assert.ok(listed.some((id) => id.equals(counters.idFromName("x"))));
    // The ids address the same objects.
    assert.equal(await runInDurableObject(counters.get(listed[0]), (_, ctx) => ctx.storage.get("k")), 1);
    await registry.close();

    if (dataDir !== ":memory:") {
      const again = new Registry({ dataDir });
      const listedAgain = await listDurableObjectIds(again.namespace(Plain, { uniqueKey: "app-Plain" }));
      assert.deepEqual(
        listedAgain.map((id) => id.toString()),
        expected,
        "a new registry on the same folder finds them",
      );
      await again.close();
    }
  });
}
