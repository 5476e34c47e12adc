// Point-in-time-recovery bookmarks as workerd serves them locally (reference §1.9 and the
// local-runtime notes): SQLite-backed objects get bookmarks that sort in the order they
// were taken, kept in _cf_METADATA across restarts; the recovery calls refuse with
// workerd's message, by which code detects that recovery is unavailable.
import { test } from "node:test";
import assert from "node:assert/strict";
import { DurableObject, Registry, runInDurableObject } from "../index.js";
import { tempDir } from "./helpers/objects.mjs";

class Store extends DurableObject {}

const NO_PITR = "This Durable Object's storage back-end does not implement point-in-time recovery.";
const BOOKMARK = /^[0-9a-f]{8}-[0-9a-f]{8}-00000000-0{32}$/;
const inside = (stub, fn) => runInDurableObject(stub, (_, ctx) => fn(ctx.storage));

test("getCurrentBookmark gives bookmarks in production's shape that sort in the order taken, across restarts", async () => {
  const dataDir = tempDir();
  const first = new Registry({ dataDir });
  const stub = first.namespace(Store).getByName("b");
  const taken = [];
  for (let i = 0; i < 3; i++) taken.push(await inside(stub, (s) => s.getCurrentBookmark()));
  assert.equal(taken[0], `00000000-00000000-00000000-${"0".repeat(32)}`);
  for (const b of taken) assert.match(b, BOOKMARK);
  assert.deepEqual([...taken].sort(), taken);
  assert.equal(new Set(taken).size, 3);
  assert.equal(await inside(stub, (s) => s.waitForBookmark(taken[2])), undefined);
  await first.close();

  const second = new Registry({ dataDir });
  const later = await inside(second.namespace(Store).getByName("b"), (s) => s.getCurrentBookmark());
  assert.ok(later > taken[2], `${later} sorts after ${taken[2]}`);
  await second.close();
});

test("getBookmarkForTime and onNextSessionRestoreBookmark refuse with workerd's message; KV-backed objects have no bookmarks", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  const stub = registry.namespace(Store).getByName("r");
  await inside(stub, async (s) => {
    await assert.rejects(s.getBookmarkForTime(Date.now() - 1000), { name: "Error", message: NO_PITR });
    await assert.rejects(s.onNextSessionRestoreBookmark(await s.getCurrentBookmark()), { name: "Error", message: NO_PITR });
  });
  class Legacy extends DurableObject {}
  const legacy = registry.namespace(Legacy, { storage: "kv" }).getByName("l");
  await inside(legacy, async (s) => {
    await assert.rejects(s.getCurrentBookmark(), { message: NO_PITR });
    await assert.rejects(s.waitForBookmark("x"), { message: NO_PITR });
  });
  await registry.close();
});
