// Namespaces, ids and stub.fetch (reference §1.2–1.4).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { DurableObject, DurableObjectId, Registry, runInDurableObject } from "../index.js";
import { Plain } from "./helpers/objects.mjs";

class Echo extends DurableObject {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/throw") throw new RangeError("bad range");
    if (url.pathname === "/not-a-response") return "nope";
    return new Response(`${request.method} ${url.pathname} ${this.ctx.id.name ?? "-"} ${await request.text()}`);
  }
}
class NoFetch extends DurableObject {}

/** workerd's local-mode derivation, computed independently here. */
function workerdId(uniqueKey, name) {
  const key = createHash("sha256").update(uniqueKey).digest();
  const first = createHmac("sha256", key).update(name).digest().subarray(0, 16);
  const mac = createHmac("sha256", key).update(first).digest().subarray(0, 16);
  return Buffer.concat([first, mac]).toString("hex");
}

test("idFromName is deterministic per namespace and matches workerd's derivation", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  const ns = registry.namespace(Echo, { uniqueKey: "my-worker-Echo" });
  const id = ns.idFromName("room");
  assert.equal(id.toString(), workerdId("my-worker-Echo", "room"));
  assert.match(id.toString(), /^[0-9a-f]{64}$/);
  assert.equal(id.name, "room");
  assert.ok(id.equals(ns.idFromName("room")));
  assert.ok(!id.equals(ns.idFromName("other")));
  const other = registry.namespace(NoFetch);
  assert.notEqual(other.idFromName("room").toString(), id.toString());
  await registry.close();
});

test("names that differ only in a lone surrogate are different names, as in workerd", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  const ns = registry.namespace(Plain, { uniqueKey: "-Store" });
  const ids = ["x\uD800", "x\uDC00", "x\uFFFD"].map((name) => ns.idFromName(name).toString());
  // workerd's ids for these names in a namespace keyed "-Store" (Miniflare's key for an unnamed
  // Worker's class Store); miniflare-interop.test.mjs checks them against workerd itself.
  assert.deepEqual(ids, [
    "5f67ef79334a062dad1d98cb09ace4364640e37eace840586359e8fe019e4482",
    "a600b0ab5eb02f297716ce948e2899f4009b1eafb891b35adb8d30f9979ded1b",
    "2cd74092630e397640fb1c9af1deb20885b9ca0104bfe6238a769ee782a55a64",
  ]);
  assert.equal(ns.idFromName("x\uD800").name, "x\uD800");
  const a = await registry.get("x\uD800", Plain);
  await runInDurableObject(a, (_, ctx) => ctx.storage.put("who", "lone"));
  assert.equal(await runInDurableObject(await registry.get("x\uFFFD", Plain), (_, ctx) => ctx.storage.get("who")), undefined);
  await registry.close();
});

test("a namespace key that is not well-formed Unicode is refused: it would share a folder and ids with another", () => {
  const registry = new Registry({ dataDir: ":memory:" });
  for (const uniqueKey of ["x\uD800", "x\uDC00y", "\uDFFF\uD800"]) {
    assert.throws(() => registry.namespace(Plain, { uniqueKey }), { name: "TypeError", message: /lone surrogate/ }, JSON.stringify(uniqueKey));
    assert.throws(() => registry.reserveNamespace(uniqueKey), { name: "TypeError", message: /lone surrogate/ });
  }
  registry.namespace(Plain, { uniqueKey: "x\uD83D\uDE00" }); // a pair is fine
});

test("newUniqueId is random and valid; idFromString checks format and namespace", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  const ns = registry.namespace(Echo);
  const a = ns.newUniqueId();
  assert.notEqual(a.toString(), ns.newUniqueId().toString());
  assert.equal(a.name, undefined);
  const parsed = ns.idFromString(a.toString().toUpperCase());
  assert.ok(parsed.equals(a));
  assert.equal(parsed.name, undefined);
  assert.throws(() => ns.idFromString("abc"), { name: "TypeError", message: "Invalid Durable Object ID: must be 64 hex digits" });
  const foreign = registry.namespace(NoFetch).newUniqueId().toString();
  assert.throws(() => ns.idFromString(foreign), { name: "TypeError", message: "Durable Object ID is not valid for this namespace." });
  await registry.close();
});

test("get() is synchronous and lazy; getByName carries the name to the stub and ctx.id", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  const ns = registry.namespace(Echo);
  const stub = ns.getByName("alice");
  assert.equal(stub.name, "alice");
  assert.ok(stub.id instanceof DurableObjectId);
  const r = await stub.fetch("http://do/path", { method: "POST", body: "hi" });
  assert.equal(await r.text(), "POST /path alice hi");
  const byId = ns.get(ns.idFromString(stub.id.toString()));
  assert.equal(byId.name, undefined);
  await registry.close();
});

test("registry.get accepts a name, an id string or a DurableObjectId for the same object", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  const byName = await registry.get("same", Echo);
  await runInDurableObject(byName, (_, ctx) => ctx.storage.put("who", "me"));
  const byString = await registry.get(byName.id.toString(), Echo);
  const byId = await registry.get(byName.id, Echo);
  for (const stub of [byString, byId]) {
    assert.equal(await runInDurableObject(stub, (_, ctx) => ctx.storage.get("who")), "me");
  }
  await registry.close();
});

test("stub.fetch needs an absolute URL", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  const stub = await registry.get("x", Echo);
  await assert.rejects(stub.fetch("/relative"), { name: "TypeError", message: "Fetch API cannot load: /relative" });
  const ok = await stub.fetch(new Request("https://any.host/abs"));
  assert.equal(await ok.text(), "GET /abs x ");
  await registry.close();
});

test("errors thrown by the object reach the caller with their class, message and remote = true", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  const stub = await registry.get("x", Echo);
  await assert.rejects(stub.fetch("http://do/throw"), (e) => e instanceof RangeError && e.message === "bad range" && e.remote === true);
  await assert.rejects(stub.fetch("http://do/not-a-response"), { name: "TypeError" });
  // the stub stays usable after an application error
  assert.equal(await (await stub.fetch("http://do/ok")).text(), "GET /ok x ");
  const noFetch = await registry.get("y", NoFetch);
  await assert.rejects(noFetch.fetch("http://do/"), { name: "TypeError", message: "Handler does not export a fetch() function." });
  await registry.close();
});

test("two classes cannot share a namespace key", () => {
  const registry = new Registry({ dataDir: ":memory:" });
  registry.namespace(Echo, { uniqueKey: "shared" });
  assert.throws(() => registry.namespace(NoFetch, { uniqueKey: "shared" }), /already belongs to another class/);
  assert.equal(registry.namespace(Echo, { uniqueKey: "shared" }), registry.namespace(Echo, { uniqueKey: "shared" }));
});

test("the constructor gets ctx and env; this.state and this.storage are shortcuts", async () => {
  class Shape extends DurableObject {
    constructor(ctx, env) {
      super(ctx, env);
      this.seen = { env, sameState: this.state === ctx, sameStorage: this.storage === ctx.storage };
    }
  }
  class OldStyle extends DurableObject {
    constructor(state, env) {
      super(state, env);
      this.state = state; // older code assigns these itself
      this.storage = state.storage;
    }
  }
  const registry = new Registry({ dataDir: ":memory:", env: { GREETING: "hi" } });
  const seen = await runInDurableObject(await registry.get("s", Shape), (o) => o.seen);
  assert.deepEqual(seen, { env: { GREETING: "hi" }, sameState: true, sameStorage: true });
  assert.equal(await runInDurableObject(await registry.get("o", OldStyle), (o) => typeof o.storage.put), "function");
  await registry.close();
});

test("blockConcurrencyWhile in the constructor holds events until it finishes", async () => {
  class Init extends DurableObject {
    constructor(ctx, env) {
      super(ctx, env);
      ctx.blockConcurrencyWhile(async () => {
        await new Promise((r) => setTimeout(r, 20));
        this.ready = await ctx.storage.get("boot") ?? "initialised";
      });
    }
    async fetch() {
      return new Response(this.ready);
    }
  }
  const registry = new Registry({ dataDir: ":memory:" });
  const stub = await registry.get("i", Init);
  const texts = await Promise.all([stub.fetch("http://do/"), stub.fetch("http://do/")].map(async (p) => (await p).text()));
  assert.deepEqual(texts, ["initialised", "initialised"]);
  await registry.close();
});

test("a throwing blockConcurrencyWhile resets the object", async () => {
  let constructed = 0;
  class Fragile extends DurableObject {
    constructor(ctx, env) {
      super(ctx, env);
      constructed++;
      if (constructed === 1) ctx.blockConcurrencyWhile(async () => { throw new Error("init failed"); });
    }
    async fetch() {
      return new Response(String(constructed));
    }
  }
  const registry = new Registry({ dataDir: ":memory:" });
  const stub = await registry.get("f", Fragile);
  await assert.rejects(stub.fetch("http://do/"), { message: "init failed" });
  assert.equal(await (await stub.fetch("http://do/")).text(), "2");
  await registry.close();
});

test("jurisdiction(): other ids for the same name, restricted namespaces take only their own", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  const ns = registry.namespace(Echo);
  const eu = ns.jurisdiction("eu");
  const plainId = ns.idFromName("x");
  const euId = eu.idFromName("x");
  assert.notEqual(euId.toString(), plainId.toString());
  assert.equal(eu.idFromName("x").toString(), euId.toString(), "deterministic per jurisdiction");
  assert.equal(euId.jurisdiction, "eu");
  assert.equal(plainId.jurisdiction, undefined);
  // The unrestricted namespace accepts any jurisdiction's ids, and knows which one they are.
  assert.equal(ns.idFromString(euId.toString()).jurisdiction, "eu");
  assert.throws(() => eu.idFromString(plainId.toString()), { name: "TypeError", message: "Durable Object ID is not valid for this namespace." });
  assert.throws(() => eu.get(plainId), TypeError);
  assert.throws(() => ns.jurisdiction("mars"), TypeError);
  assert.throws(() => eu.jurisdiction("us"), Error);
  const fresh = ns.newUniqueId({ jurisdiction: "fedramp" });
  assert.equal(fresh.jurisdiction, "fedramp");
  assert.equal(ns.idFromString(fresh.toString()).jurisdiction, "fedramp");
  assert.equal(eu.newUniqueId().jurisdiction, "eu");
  assert.throws(() => eu.newUniqueId({ jurisdiction: "us" }), TypeError);
  // Each id is its own object; the name and jurisdiction reach ctx.id.
  const seen = await runInDurableObject(eu.getByName("x"), (_, ctx) => [ctx.id.name, ctx.id.jurisdiction, ctx.id.toString()]);
  assert.deepEqual(seen, ["x", "eu", euId.toString()]);
  assert.equal(await runInDurableObject(ns.getByName("x"), (_, ctx) => ctx.id.jurisdiction), undefined);
  await registry.close();
});

test("an id belongs to its namespace: another namespace's get() refuses it", async () => {
  class Other extends DurableObject {}
  const registry = new Registry({ dataDir: ":memory:" });
  const id = registry.namespace(Echo).idFromName("x");
  assert.throws(() => registry.namespace(Other).get(id), { name: "TypeError", message: "Durable Object ID is not valid for this namespace." });
  assert.ok(id.equals(registry.namespace(Echo).idFromString(id.toString())));
  await registry.close();
});
