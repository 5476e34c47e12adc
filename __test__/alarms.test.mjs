// Alarms (issue #4), first part: the storage API — setAlarm, getAlarm, deleteAlarm — with
// Cloudflare's errors, as writes of the turn, kept in _cf_METADATA as workerd keeps them.
import assert from "node:assert/strict";
import { test } from "node:test";
import { DurableObject, Registry, runInDurableObject } from "../index.js";
import { tempDir } from "./helpers/objects.mjs";

class WithAlarm extends DurableObject {
  async alarm() {}
}

class SetsInConstructor extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    // Allowed here even without an alarm() handler: Cloudflare defers the check.
    ctx.storage.setAlarm(Date.now() + 60_000);
  }
}

class NoHandler extends DurableObject {}

const inside = (stub, fn) => runInDurableObject(stub, (_, ctx) => fn(ctx.storage));

test("setAlarm / getAlarm / deleteAlarm: one alarm per object, a Date or ms", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  const stub = await registry.get("a", WithAlarm);
  assert.equal(await inside(stub, (s) => s.getAlarm()), null);
  const first = Date.now() + 60_000;
  await inside(stub, (s) => s.setAlarm(first));
  assert.equal(await inside(stub, (s) => s.getAlarm()), first);
  const second = new Date(Date.now() + 120_000);
  await inside(stub, (s) => s.setAlarm(second));
  assert.equal(await inside(stub, (s) => s.getAlarm()), second.getTime(), "a new time replaces the old one");
  await inside(stub, (s) => s.deleteAlarm());
  assert.equal(await inside(stub, (s) => s.getAlarm()), null);
  await registry.close();
});

test("setAlarm refuses times <= 0 and non-times; a time in the past means now", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  const stub = await registry.get("a", WithAlarm);
  for (const bad of [0, -1, new Date(0)]) {
    await assert.rejects(inside(stub, (s) => s.setAlarm(bad)), { name: "TypeError", message: "setAlarm() cannot be called with an alarm time <= 0" });
  }
  await assert.rejects(inside(stub, (s) => s.setAlarm("soon")), TypeError);
  await assert.rejects(inside(stub, (s) => s.setAlarm(NaN)), TypeError);
  const before = Date.now();
  await inside(stub, (s) => s.setAlarm(1));
  const stored = await inside(stub, (s) => s.getAlarm());
  assert.ok(stored >= before && stored <= Date.now(), `clamped to now: ${stored}`);
  await registry.close();
});

test("a class without alarm() cannot set one, except from its constructor", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  await assert.rejects(inside(await registry.get("n", NoHandler), (s) => s.setAlarm(Date.now() + 1000)), {
    name: "TypeError",
    message: "Your Durable Object class must have an alarm() handler in order to call setAlarm()",
  });
  const stub = await registry.get("c", SetsInConstructor);
  assert.notEqual(await inside(stub, (s) => s.getAlarm()), null);
  await registry.close();
});

test("alarm writes belong to transactions and roll back with them; deleteAll deletes the alarm", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  const stub = await registry.get("t", WithAlarm);
  const kept = Date.now() + 60_000;
  await inside(stub, (s) => s.setAlarm(kept));
  await inside(stub, (s) =>
    s.transaction(async (txn) => {
      await txn.setAlarm(Date.now() + 90_000);
      assert.notEqual(await txn.getAlarm(), kept);
      txn.rollback();
    }),
  );
  assert.equal(await inside(stub, (s) => s.getAlarm()), kept);
  await assert.rejects(
    runInDurableObject(stub, (_, ctx) =>
      ctx.storage.transactionSync(() => {
        ctx.storage.deleteAlarm();
        throw new Error("undo");
      }),
    ),
    { message: "undo" },
  );
  assert.equal(await inside(stub, (s) => s.getAlarm()), kept, "a throwing transactionSync undoes deleteAlarm");
  await inside(stub, (s) => s.transaction((txn) => txn.deleteAlarm()));
  assert.equal(await inside(stub, (s) => s.getAlarm()), null);
  await inside(stub, (s) => s.setAlarm(kept));
  await inside(stub, (s) => s.deleteAll());
  assert.equal(await inside(stub, (s) => s.getAlarm()), null);
  await registry.close();
});

test("the alarm is stored: it survives closing and reopening the registry", async () => {
  const dataDir = tempDir();
  const time = Date.now() + 3_600_000;
  const first = new Registry({ dataDir });
  await inside(await first.get("p", WithAlarm), (s) => s.setAlarm(time));
  await first.close();
  const second = new Registry({ dataDir });
  assert.equal(await inside(await second.get("p", WithAlarm), (s) => s.getAlarm()), time);
  await second.close();
});
