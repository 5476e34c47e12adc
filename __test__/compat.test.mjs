// Compatibility flags that change Durable Object behaviour (reference §2.17): the Registry's
// `compatibility` option (open-do serve derives it from the wrangler config's date and flags).
import assert from "node:assert/strict";
import { test } from "node:test";
import { DurableObject, Registry, RpcStub, RpcTarget, WebSocketPair, runInDurableObject } from "../index.js";
import { compatFlags } from "../dist/wrangler/compat.js";
import WsClient from "ws";

class Thing extends DurableObject {
  fetch(request) {
    return new Response(request.url);
  }
  ping() {
    return "pong";
  }
  async use(counter) {
    return counter.increment();
  }
  alarm() {}
}


/**
 * Wraps a test that creates registries with old compatibility dates: the WebSocket flags
 * and rpc_params_dup_stubs are process-wide, so the defaults are restored afterwards,
 * even when the test fails, for the tests and files that run next in the same process.
 */
function restoringDefaults(body) {
  return async () => {
    try {
      await body();
    } finally {
      await new Registry({ dataDir: ":memory:" }).close();
    }
  };
}

test("flags follow the compatibility date, and named flags (or their no_ forms) override it", () => {
  const old = compatFlags("2021-01-01");
  assert.equal(old.durable_object_fetch_requires_full_url, false);
  assert.equal(old.rpc, false);
  const mid = compatFlags("2026-02-01");
  assert.equal(mid.rpc, true);
  assert.equal(mid.delete_all_deletes_alarm, false);
  assert.equal(mid.enhanced_error_serialization, false);
  const now = compatFlags("2026-07-01");
  assert.ok(Object.values(now).every(Boolean), "every flag is on at a current date");
  assert.equal(compatFlags("2026-07-01", ["no_enhanced_error_serialization"]).enhanced_error_serialization, false);
  assert.equal(compatFlags("2026-01-01", ["delete_all_deletes_alarm"]).delete_all_deletes_alarm, true);
});

test("enhanced_error_serialization (2026-04-21) is each registry's own: two at once store Errors their own way", async () => {
  // workerd's enhanced format keeps an Error's own properties; V8's keeps name and message only.
  const enhanced = new Registry({ dataDir: ":memory:", compatibility: compatFlags("2026-07-01") });
  const legacy = new Registry({ dataDir: ":memory:", compatibility: compatFlags("2026-01-01") });
  try {
    const roundTrip = (registry) =>
      runInDurableObject(registry.namespace(Thing).getByName("e"), async (_, ctx) => {
        await ctx.storage.put("error", Object.assign(new RangeError("bad"), { code: 7 }));
        ctx.storage.kv.put("sync", Object.assign(new TypeError("worse"), { code: 8 }));
        return [await ctx.storage.get("error"), ctx.storage.kv.get("sync")];
      });
    const [asyncEnhanced, syncEnhanced] = await roundTrip(enhanced);
    const [asyncLegacy, syncLegacy] = await roundTrip(legacy);
    assert.equal(asyncEnhanced.code, 7, "the registry created first keeps its format");
    assert.equal(syncEnhanced.code, 8);
    assert.equal(asyncLegacy.code, undefined);
    assert.equal(syncLegacy.code, undefined);
    assert.ok(asyncEnhanced instanceof RangeError && asyncLegacy instanceof RangeError);
    assert.equal(asyncLegacy.message, "bad");
  } finally {
    await enhanced.close();
    await legacy.close();
  }
});

test("rpc (2024-04-03): older stubs have fetch() only", async () => {
  const registry = new Registry({ dataDir: ":memory:", compatibility: compatFlags("2024-01-01") });
  const stub = registry.namespace(Thing).getByName("a");
  assert.equal(stub.ping, undefined, "no RPC methods");
  assert.equal(stub.anything, undefined, "no wildcard properties");
  assert.equal(await (await stub.fetch("https://x.test/ok")).text(), "https://x.test/ok");
  await registry.close();

  const current = new Registry({ dataDir: ":memory:" });
  assert.equal(await current.namespace(Thing).getByName("a").ping(), "pong");
  await current.close();
});

class Counter extends RpcTarget {
  n = 0;
  increment() {
    return ++this.n;
  }
}

test("rpc_params_dup_stubs (2026-01-20): before it, a stub passed as an argument is transferred", restoringDefaults(async () => {
  for (const [date, callerKeepsIt] of [
    ["2025-06-01", false],
    ["2026-07-01", true],
  ]) {
    const registry = new Registry({ dataDir: ":memory:", compatibility: compatFlags(date) });
    const counter = new RpcStub(new Counter());
    assert.equal(await registry.namespace(Thing).getByName("a").use(counter), 1);
    if (callerKeepsIt) assert.equal(await counter.increment(), 2, date);
    else await assert.rejects(async () => counter.increment(), /disposed/i, date);
    await registry.close();
  }
}));

test("durable_object_fetch_requires_full_url (2021-11-10): before it, stub.fetch() takes a path", async () => {
  const old = new Registry({ dataDir: ":memory:", compatibility: compatFlags("2021-01-01") });
  assert.equal(await (await old.namespace(Thing).getByName("a").fetch("/path?x=1")).text(), "https://fake-host/path?x=1");
  await old.close();
  const current = new Registry({ dataDir: ":memory:" });
  await assert.rejects(current.namespace(Thing).getByName("a").fetch("/path"), { name: "TypeError", message: "Fetch API cannot load: /path" });
  await current.close();
});

test("delete_all_deletes_alarm (2026-02-24): before it, deleteAll() keeps the alarm", async () => {
  for (const [date, kept] of [
    ["2026-01-01", true],
    ["2026-07-01", false],
  ]) {
    const registry = new Registry({ dataDir: ":memory:", compatibility: compatFlags(date) });
    const stub = registry.namespace(Thing).getByName("a");
    const at = Date.now() + 3_600_000;
    const after = await runInDurableObject(stub, async (_instance, ctx) => {
      await ctx.storage.put("k", 1);
      await ctx.storage.setAlarm(at);
      await ctx.storage.deleteAll();
      return { alarm: await ctx.storage.getAlarm(), k: await ctx.storage.get("k") };
    });
    assert.deepEqual(after, { alarm: kept ? at : null, k: undefined }, date);
    await registry.close();
  }
});

test("websocket_close_reason_byte_limit (2026-03-03) and websocket_standard_binary_type (2026-03-17)", restoringDefaults(async () => {
  const old = new Registry({ dataDir: ":memory:", compatibility: compatFlags("2026-01-01") });
  let [client, server] = Object.values(new WebSocketPair());
  assert.equal(server.binaryType, "arraybuffer");
  server.accept();
  server.close(1000, "x".repeat(200)); // no byte limit before the flag
  await old.close();

  const current = new Registry({ dataDir: ":memory:", compatibility: compatFlags("2026-07-01") });
  [client, server] = Object.values(new WebSocketPair());
  assert.equal(server.binaryType, "blob");
  server.accept();
  client.accept();
  const received = new Promise((resolve) => server.addEventListener("message", (e) => resolve(e.data)));
  client.send(new Uint8Array([1, 2, 3]));
  const data = await received;
  assert.ok(data instanceof Blob, "binary messages of the standard API arrive as Blob");
  assert.deepEqual([...new Uint8Array(await data.arrayBuffer())], [1, 2, 3]);
  assert.throws(() => server.close(1000, "x".repeat(124)), SyntaxError);
  await current.close();
}));

/** For each webSocketClose: was the closing socket still among getWebSockets()? */
const listedWhenClosing = [];

class Answering extends DurableObject {
  fetch(request) {
    const [client, server] = Object.values(new WebSocketPair());
    this.ctx.acceptWebSocket(server);
    server.serializeAttachment({ answer: new URL(request.url).searchParams.has("answer") });
    return new Response(null, { status: 101, webSocket: client });
  }
  webSocketClose(ws, code, reason) {
    listedWhenClosing.push(this.ctx.getWebSockets().includes(ws));
    if (ws.deserializeAttachment().answer) ws.close(code, reason);
  }
}

test("web_socket_auto_reply_to_close (2026-04-07): before it, a peer's Close is answered only by the object's close()", restoringDefaults(async () => {
  const closeCode = async (date, query, expectAnswer) => {
    const registry = new Registry({ dataDir: ":memory:", compatibility: compatFlags(date) });
    const ns = registry.namespace(Answering);
    const server = await registry.listen({ port: 0, fetch: (request) => ns.getByName("a").fetch(request) });
    // A client that gives up on an unanswered Close (then reports 1006): quickly when no
    // answer is expected, generously when one is (it may come from a busy JS thread).
    const closeTimeout = expectAnswer ? 10_000 : 300;
    const client = new WsClient(`${server.url.replace("http", "ws")}/${query}`, { closeTimeout });
    await new Promise((resolve, reject) => client.on("open", resolve).on("error", reject));
    const closed = new Promise((resolve) => client.on("close", (code) => resolve(code)));
    const handled = listedWhenClosing.length + 1;
    client.close(4000, "bye");
    const code = await closed;
    for (let i = 0; i < 1000 && listedWhenClosing.length < handled; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    await registry.close();
    return code;
  };
  assert.equal(await closeCode("2026-01-01", "?answer", true), 4000, "the object's close() answers");
  assert.equal(await closeCode("2026-01-01", "", false), 1006, "nobody answers: the client gives up");
  assert.equal(await closeCode("2026-07-01", "", true), 4000, "the runtime answers by itself");
  // Either way, a socket whose peer closed is no longer listed in its webSocketClose
  // (a broadcast there does not reach it), whenever its connection ends.
  assert.deepEqual(listedWhenClosing, [false, false, false]);
}));
