// storage.transaction() and storage.transactionSync() (reference §1.7, §2.8).
import { test } from "node:test";
import assert from "node:assert/strict";
import { inObject } from "./helpers/objects.mjs";

test("transactionSync commits its writes and returns the closure's value", async () => {
  await inObject(async (storage) => {
    storage.sql.exec("CREATE TABLE t (x)");
    const v = storage.transactionSync(() => {
      storage.sql.exec("INSERT INTO t VALUES (1)");
      storage.kv.put("k", "v");
      return 42;
    });
    assert.equal(v, 42);
    assert.equal(storage.sql.exec("SELECT count(*) AS n FROM t").one().n, 1);
    assert.equal(storage.kv.get("k"), "v");
  });
});

test("transactionSync rolls back SQL and KV writes when the closure throws", async () => {
  await inObject(async (storage) => {
    storage.sql.exec("CREATE TABLE t (x)");
    await storage.put("k", "before");
    assert.throws(
      () =>
        storage.transactionSync(() => {
          storage.sql.exec("INSERT INTO t VALUES (1)");
          storage.kv.put("k", "during");
          storage.kv.put("new", 1);
          throw new Error("boom");
        }),
      { message: "boom" },
    );
    assert.equal(storage.sql.exec("SELECT count(*) AS n FROM t").one().n, 0);
    assert.equal(await storage.get("k"), "before");
    assert.equal(await storage.get("new"), undefined);
  });
});

test("transactionSync nests: an inner rollback keeps the outer writes", async () => {
  await inObject(async (storage) => {
    storage.transactionSync(() => {
      storage.kv.put("outer", 1);
      try {
        storage.transactionSync(() => {
          storage.kv.put("inner", 1);
          throw new Error("inner");
        });
      } catch {}
    });
    assert.equal(storage.kv.get("outer"), 1);
    assert.equal(storage.kv.get("inner"), undefined);
  });
});

test("a KV table created inside a rolled-back transaction is usable afterwards", async () => {
  await inObject(async (storage) => {
    assert.throws(() =>
      storage.transactionSync(() => {
        storage.kv.put("first", 1);
        throw new Error("undo");
      }),
    );
    assert.equal(storage.kv.get("first"), undefined);
    storage.kv.put("second", 2);
    assert.equal(storage.kv.get("second"), 2);
  });
});

test("transaction() commits on success and returns the closure's value", async () => {
  await inObject(async (storage) => {
    const v = await storage.transaction(async (txn) => {
      await txn.put("a", 1);
      await storage.put("b", 2); // storage calls inside the closure belong to it too
      return "done";
    });
    assert.equal(v, "done");
    assert.deepEqual([...(await storage.list())], [["a", 1], ["b", 2]]);
  });
});

test("transaction() rolls back and rethrows when the closure throws, without resetting", async () => {
  await inObject(async (storage, ctx, instance) => {
    instance.marker = "kept";
    await storage.put("a", "before");
    await assert.rejects(
      storage.transaction(async (txn) => {
        await txn.put("a", "during");
        throw new TypeError("nope");
      }),
      { name: "TypeError", message: "nope" },
    );
    assert.equal(await storage.get("a"), "before");
    assert.equal(instance.marker, "kept");
  });
});

test("txn.rollback() undoes the writes; later use of txn fails with Cloudflare's messages", async () => {
  await inObject(async (storage) => {
    let leaked;
    await storage.transaction(async (txn) => {
      await txn.put("a", 1);
      txn.rollback();
      txn.rollback(); // idempotent
      await assert.rejects(txn.get("a"), { message: "Cannot get on rolled back transaction" });
      assert.throws(() => txn.deleteAll(), { message: "Cannot call deleteAll() within a transaction" });
    });
    assert.equal(await storage.get("a"), undefined);
    await storage.transaction(async (txn) => {
      leaked = txn;
    });
    await assert.rejects(leaked.put("x", 1), {
      message: "Cannot call put on transaction that has already committed: did you move `txn` outside of the closure?",
    });
  });
});

test("deleteAll() inside a transaction is an error", async () => {
  await inObject(async (storage) => {
    await storage.transaction(async () => {
      await assert.rejects(storage.deleteAll(), { message: "Cannot call deleteAll() within a transaction" });
    });
  });
});
