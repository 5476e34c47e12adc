// The input gate and the object's event delivery (issue #3): what may interleave, what
// may not, critical sections, resets, abort and overload — as a caller observes them.
import assert from "node:assert/strict";
import { test } from "node:test";
import { DurableObject, Registry, runInDurableObject } from "../index.js";
import { tempDir } from "./helpers/objects.mjs";
import { native } from "../dist/native.js";

/** Runs `run` while no sync of any object can start: each attempt throws `message`. */
async function withFailingSyncs(message, run) {
  const { syncObjectNow, syncStart } = native;
  const failing = () => {
    throw new Error(message);
  };
  native.syncObjectNow = failing;
  native.syncStart = failing;
  try {
    return await run();
  } finally {
    native.syncObjectNow = syncObjectNow;
    native.syncStart = syncStart;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function deferred() {
  let resolve;
  const promise = new Promise((r) => (resolve = r));
  return { promise, resolve };
}

class Counter extends DurableObject {
  async fetch() {
    const n = (await this.ctx.storage.get("n")) ?? 0;
    await this.ctx.storage.put("n", n + 1);
    return new Response(String(n + 1));
  }
}

test("N concurrent get-then-put increments end at exactly N", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  const stub = await registry.get("c", Counter);
  const N = 500;
  const results = await Promise.all(Array.from({ length: N }, () => stub.fetch("http://do/").then((r) => r.text())));
  assert.equal(await runInDurableObject(stub, (_, ctx) => ctx.storage.get("n")), N);
  // Every caller saw a distinct count: no two increments read the same value.
  assert.equal(new Set(results).size, N);
  await registry.close();
});

test("increments through SQL and sync KV from many stubs at once also end at exactly N", async () => {
  class SqlCounter extends DurableObject {
    constructor(ctx, env) {
      super(ctx, env);
      ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS c (n INTEGER)");
    }
    async fetch() {
      const row = this.ctx.storage.sql.exec("SELECT n FROM c").toArray()[0];
      await this.ctx.storage.get("unrelated"); // a storage await does not open the gate
      if (row === undefined) this.ctx.storage.sql.exec("INSERT INTO c VALUES (1)");
      else this.ctx.storage.sql.exec("UPDATE c SET n = ?", row.n + 1);
      this.ctx.storage.kv.put("k", (this.ctx.storage.kv.get("k") ?? 0) + 1);
      return new Response("ok");
    }
  }
  const registry = new Registry({ dataDir: ":memory:" });
  const N = 200;
  // A fresh stub per call: different stubs to one object share its gate.
  await Promise.all(Array.from({ length: N }, async () => (await registry.get("s", SqlCounter)).fetch("http://do/")));
  const stub = await registry.get("s", SqlCounter);
  const [n, k] = await runInDurableObject(stub, (_, ctx) => [ctx.storage.sql.exec("SELECT n FROM c").one().n, ctx.storage.kv.get("k")]);
  assert.deepEqual([n, k], [N, N]);
  await registry.close();
});

test("a call is asynchronous: the caller's code runs on before the handler starts", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  const stub = await registry.get("a", Counter);
  const order = [];
  const call = runInDurableObject(stub, () => order.push("handler"));
  order.push("caller");
  await call;
  assert.deepEqual(order, ["caller", "handler"]);
  await registry.close();
});

test("calls through one stub start in the order they were made, even while earlier ones wait on I/O", async () => {
  const started = [];
  class Recorder extends DurableObject {
    async record(i) {
      started.push(i);
      if (i % 3 === 0) await sleep(2); // non-storage I/O: later calls may start meanwhile
      return i;
    }
  }
  const registry = new Registry({ dataDir: ":memory:" });
  const stub = await registry.get("r", Recorder);
  const calls = Array.from({ length: 60 }, (_, i) => runInDurableObject(stub, (o) => o.record(i)));
  assert.deepEqual(await Promise.all(calls), [...Array(60).keys()]);
  assert.deepEqual(started, [...Array(60).keys()]);
  await registry.close();
});

test("another event runs while one awaits non-storage I/O (no deadlock when it waits for that event)", async () => {
  const gate = deferred();
  class Waiter extends DurableObject {
    async waitForSignal() {
      await gate.promise; // awaits something other than storage: the gate opens
      return "released";
    }
    signal() {
      gate.resolve();
      return "signalled";
    }
  }
  const registry = new Registry({ dataDir: ":memory:" });
  const stub = await registry.get("w", Waiter);
  const waiting = runInDurableObject(stub, (o) => o.waitForSignal());
  const signalling = runInDurableObject(stub, (o) => o.signal());
  assert.deepEqual(await Promise.all([waiting, signalling]), ["released", "signalled"]);
  await registry.close();
});

test("blockConcurrencyWhile holds other events for its whole callback, timers included", async () => {
  const log = [];
  class Blocker extends DurableObject {
    async block() {
      await this.ctx.blockConcurrencyWhile(async () => {
        log.push("section start");
        await sleep(30);
        log.push("section end");
      });
    }
    other() {
      log.push("other");
    }
  }
  const registry = new Registry({ dataDir: ":memory:" });
  const stub = await registry.get("b", Blocker);
  const blocking = runInDurableObject(stub, (o) => o.block());
  await sleep(5); // the section is open and awaiting its timer
  await Promise.all([runInDurableObject(stub, (o) => o.other()), blocking]);
  assert.deepEqual(log, ["section start", "section end", "other"]);
  await registry.close();
});

test("storage.transaction() is a critical section: nothing else starts while its closure awaits", async () => {
  const log = [];
  class Txn extends DurableObject {
    async transfer() {
      await this.ctx.storage.transaction(async (txn) => {
        await txn.put("a", 1);
        await sleep(20);
        await txn.put("b", 1);
        log.push("transaction done");
      });
    }
    async read() {
      log.push(`read a=${await this.ctx.storage.get("a")} b=${await this.ctx.storage.get("b")}`);
    }
  }
  const registry = new Registry({ dataDir: ":memory:" });
  const stub = await registry.get("t", Txn);
  const transferring = runInDurableObject(stub, (o) => o.transfer());
  await sleep(5);
  await Promise.all([runInDurableObject(stub, (o) => o.read()), transferring]);
  assert.deepEqual(log, ["transaction done", "read a=1 b=1"]);
  await registry.close();
});

test("a throwing blockConcurrencyWhile fails the events queued behind it and resets the object", async () => {
  let constructed = 0;
  class Fragile extends DurableObject {
    constructor(ctx, env) {
      super(ctx, env);
      constructed++;
      this.instance = constructed;
    }
    async explode() {
      await this.ctx.blockConcurrencyWhile(async () => {
        await sleep(10);
        throw new TypeError("migration failed");
      });
    }
    which() {
      return this.instance;
    }
  }
  const registry = new Registry({ dataDir: ":memory:" });
  const stub = await registry.get("f", Fragile);
  const exploding = runInDurableObject(stub, (o) => o.explode());
  await sleep(2);
  const queued = stub.fetch("http://do/"); // waits behind the section
  await assert.rejects(exploding, { name: "TypeError", message: "migration failed" });
  await assert.rejects(queued, (e) => e.name === "TypeError" && e.message === "migration failed" && e.remote === true);
  assert.equal(await runInDurableObject(stub, (o) => o.which()), 2, "the next event constructs a new instance");
  await registry.close();
});

test("blockConcurrencyWhile that runs too long resets the object with Cloudflare's overloaded error", async () => {
  let constructed = 0;
  class Slow extends DurableObject {
    constructor(ctx, env) {
      super(ctx, env);
      constructed++;
    }
    async hang() {
      await this.ctx.blockConcurrencyWhile(() => new Promise(() => {}));
    }
    count() {
      return constructed;
    }
  }
  const registry = new Registry({ dataDir: ":memory:", blockConcurrencyWhileTimeout: 30 });
  const stub = await registry.get("s", Slow);
  const hanging = runInDurableObject(stub, (o) => o.hang());
  const queued = runInDurableObject(stub, (o) => o.count());
  const expected = {
    message: "A call to blockConcurrencyWhile() in a Durable Object waited for too long. The call was canceled and the Durable Object was reset.",
    overloaded: true,
  };
  await assert.rejects(hanging, expected);
  await assert.rejects(queued, expected);
  assert.equal(await runInDurableObject(stub, (o) => o.count()), 2);
  await registry.close();
});

test("ctx.abort() fails calls in flight, drops uncommitted writes and starts a new instance", async () => {
  let constructed = 0;
  class Abortable extends DurableObject {
    constructor(ctx, env) {
      super(ctx, env);
      constructed++;
    }
    async slow() {
      await new Promise(() => {}); // only the abort settles this call (no race with a timer)
    }
    async abortAfterWrite(reason) {
      await this.ctx.storage.put("doomed", true);
      this.ctx.abort(reason);
      return "unreachable";
    }
    async state() {
      return { constructed, doomed: await this.ctx.storage.get("doomed") };
    }
  }
  const registry = new Registry({ dataDir: ":memory:" });
  const stub = await registry.get("a", Abortable);
  const inFlight = runInDurableObject(stub, (o) => o.slow());
  await sleep(5);
  await assert.rejects(runInDurableObject(stub, (o) => o.abortAfterWrite()), { message: "Application called abort() to reset Durable Object." });
  await assert.rejects(inFlight, { message: "Application called abort() to reset Durable Object." });
  assert.deepEqual(await runInDurableObject(stub, (o) => o.state()), { constructed: 2, doomed: undefined });
  await assert.rejects(runInDurableObject(stub, (o) => o.abortAfterWrite("custom reason")), { message: "custom reason" });
  await registry.close();
});

test("a full queue answers with Cloudflare's overloaded error; queued calls still complete", async () => {
  const release = deferred();
  class Busy extends DurableObject {
    async hold() {
      await this.ctx.blockConcurrencyWhile(() => release.promise);
      return "held";
    }
    ping(i) {
      return i;
    }
  }
  const registry = new Registry({ dataDir: ":memory:", maxQueuedEvents: 5 });
  const stub = await registry.get("b", Busy);
  const holding = runInDurableObject(stub, (o) => o.hold());
  await sleep(1);
  const calls = Array.from({ length: 8 }, (_, i) => runInDurableObject(stub, (o) => o.ping(i)));
  const outcomes = calls.map((p) => p.then((v) => ({ ok: v }), (e) => ({ error: e })));
  release.resolve();
  const settled = await Promise.all(outcomes);
  assert.deepEqual(settled.slice(0, 5), [0, 1, 2, 3, 4].map((i) => ({ ok: i })));
  for (const { error } of settled.slice(5)) {
    assert.equal(error.message, "Durable Object is overloaded. Too many requests queued.");
    assert.equal(error.overloaded, true);
  }
  assert.equal(await holding, "held");
  await registry.close();
});

test("registry limits are validated", () => {
  assert.throws(() => new Registry({ dataDir: ":memory:", maxQueuedEvents: 0 }), TypeError);
  assert.throws(() => new Registry({ dataDir: ":memory:", blockConcurrencyWhileTimeout: -1 }), TypeError);
});

test("calls an object makes through its env wait for its writes; a failed commit drops them", async () => {
  const received = [];
  class Receiver extends DurableObject {
    record(value) {
      received.push(value);
      return "recorded";
    }
    async fetch(request) {
      received.push(`fetch ${await request.text()}`);
      return new Response("fetched");
    }
  }
  class Sender extends DurableObject {
    async writeThenCall(value) {
      this.ctx.storage.kv.put("last", value);
      return this.env.RECEIVER.getByName("r").record(value);
    }
    async writeThenFetch(value) {
      this.ctx.storage.kv.put("last", value);
      const response = await this.env.RECEIVER.getByName("r").fetch("http://r/", { method: "POST", body: String(value) });
      return response.text();
    }
  }
  const env = {};
  const registry = new Registry({ dataDir: tempDir(), env });
  env.RECEIVER = registry.namespace(Receiver);
  const sender = await registry.get("s", Sender);
  assert.equal(await sender.writeThenCall(1), "recorded");
  assert.deepEqual(received, [1]);

  // Make the sender's next commit fail to reach the disk: the call it made after the write
  // must never be delivered, and the sender's caller gets the failure.
  await withFailingSyncs("fsync failed: injected", async () => {
    await assert.rejects(sender.writeThenCall(2), { message: "fsync failed: injected" });
    await assert.rejects(sender.writeThenFetch(2), { message: "fsync failed: injected" });
  });
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual(received, [1], "the held call was dropped");
  // The sender was reset and works again.
  assert.equal(await sender.writeThenCall(3), "recorded");
  assert.equal(await sender.writeThenFetch(4), "fetched");
  assert.deepEqual(received, [1, 3, "fetch 4"]);
  await registry.close();
});

test("a sync that could not start (no descriptor left, say) is retried by the next instance's first output, even one that only reads", async () => {
  class Counter extends DurableObject {
    write(value) {
      this.ctx.storage.kv.put("n", value);
      return "ok";
    }
    read() {
      return this.ctx.storage.kv.get("n");
    }
  }
  const registry = new Registry({ dataDir: tempDir() });
  const stub = await registry.get("c", Counter);
  assert.equal(await stub.write(1), "ok");
  // The commit of write(2) is made, but no sync of it can start (as when opening the WAL
  // to fsync it fails): the object is reset, and commit 2 is still not durable.
  await withFailingSyncs("cannot open the WAL: Too many open files (os error 24)", () => assert.rejects(stub.write(2), /cannot open the WAL/));
  // The new instance reads commit 2's value: its result must wait for commit 2 to be
  // durable, and something must sync it (before, nothing did, and the call never ended).
  const read = stub.read();
  const outcome = await Promise.race([read, new Promise((resolve) => setTimeout(() => resolve("still waiting after 5 s"), 5_000))]);
  assert.equal(outcome, 2);
  await registry.close();
});

test("allowUnconfirmed writes do not hold outputs; sync() still waits for them; a failure still resets the object", async () => {
  let instances = 0;
  const order = [];
  class Writer extends DurableObject {
    constructor(ctx, env) {
      super(ctx, env);
      instances++;
    }
    write(value, options, alsoConfirmed = false) {
      this.ctx.storage.put("k", value, options);
      if (alsoConfirmed) this.ctx.storage.put("other", value);
      this.ctx.storage.sync().then(() => order.push("synced"), () => order.push("sync failed"));
      return "ok";
    }
    alarmUnconfirmed() {
      this.ctx.storage.setAlarm(Date.now() + 3_600_000, { allowUnconfirmed: true });
      this.ctx.storage.sync().then(() => order.push("synced"), () => order.push("sync failed"));
      return "ok";
    }
    alarm() {}
  }
  const registry = new Registry({ dataDir: tempDir() });
  const stub = await registry.get("w", Writer);
  const call = async (promise) => {
    assert.equal(await promise, "ok");
    order.push("returned");
    await stub.write(0); // a later call, whose result follows every earlier commit
    return order.splice(0).slice(0, 2);
  };
  assert.deepEqual(await call(stub.write(1)), ["synced", "returned"], "a write holds the result until it is durable");
  assert.deepEqual(await call(stub.write(2, { allowUnconfirmed: true })), ["returned", "synced"], "an unconfirmed one does not");
  assert.deepEqual(await call(stub.write(3, { allowUnconfirmed: true }, true)), ["synced", "returned"], "one confirmed write in the turn holds it again");
  assert.deepEqual(await call(stub.alarmUnconfirmed()), ["returned", "synced"], "setAlarm takes the option too");

  // The result goes out before the write is on disk, so a failing fsync no longer reaches
  // the caller; it still resets the object (a new instance serves the next call).
  const before = instances;
  const failSyncs = (run) => withFailingSyncs("fsync failed: injected", run);
  await failSyncs(() => assert.rejects(stub.write(4), { message: "fsync failed: injected" }));
  // The next instance's results wait for the commits before it too (it may have read
  // them): a working sync covers commit 4 and this one.
  assert.equal(await stub.write(5), "ok");
  await failSyncs(async () => {
    order.length = 0;
    assert.equal(await stub.write(6, { allowUnconfirmed: true }), "ok");
    assert.deepEqual(order, [], "the result came before the commit");
    while (!order.includes("sync failed")) await sleep(5);
  });
  await stub.write(7);
  assert.equal(instances, before + 2, "each failed commit reset the object");
  await registry.close();
});

test("code of a reset instance that runs on can no longer reach storage", async () => {
  let zombie;
  // The old instance writes only once the abort is done, whatever the machine's pace.
  const abortDone = deferred();
  class Lingering extends DurableObject {
    async lingerThenWrite() {
      const storage = this.ctx.storage;
      await abortDone.promise;
      try {
        storage.kv.put("zombie", 1);
        zombie = "wrote";
      } catch (e) {
        zombie = e.message;
      }
    }
    abortNow() {
      this.ctx.abort();
    }
    read() {
      return this.ctx.storage.kv.get("zombie") ?? "nothing";
    }
  }
  const registry = new Registry({ dataDir: tempDir() });
  const stub = await registry.get("l", Lingering);
  const lingering = stub.lingerThenWrite();
  await sleep(5);
  await assert.rejects(stub.abortNow(), { message: "Application called abort() to reset Durable Object." });
  await assert.rejects(lingering, { message: "Application called abort() to reset Durable Object." });
  abortDone.resolve();
  for (let waited = 0; zombie === undefined && waited < 10_000; waited += 5) await sleep(5);
  assert.equal(zombie, "This Durable Object was reset; its earlier instance can no longer use storage.");
  assert.equal(await stub.read(), "nothing");
  await registry.close();
});

// The mailbox hands a finished event's successor over at once; starting it on the finished
// event's stack made a burst of synchronous calls recurse until the stack overflowed
// (4,000 on Node, 9,000 on Bun, with the default maxQueuedEvents of 10,000).
test("a burst of synchronous calls queued behind the constructor's blockConcurrencyWhile all run, in order", { timeout: 60_000 }, async () => {
  class Waking extends DurableObject {
    constructor(ctx, env) {
      super(ctx, env);
      this.seen = [];
      ctx.blockConcurrencyWhile(() => new Promise((resolve) => setTimeout(resolve, 20)));
    }
    note(i) {
      this.seen.push(i);
      return i;
    }
    order() {
      return this.seen.every((v, i) => v === i) && this.seen.length;
    }
  }
  const registry = new Registry({ dataDir: ":memory:" });
  const stub = await registry.get("burst", Waking);
  const n = 9_500;
  const results = await Promise.all(Array.from({ length: n }, (_, i) => stub.note(i)));
  assert.equal(results.length, n);
  assert.equal(await stub.order(), n);
  await registry.close();
});
