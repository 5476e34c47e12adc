// The WebSocket API's rules, checked in-process (no server): WebSocketPair, Response with
// webSocket, acceptWebSocket and its limits, attachments, auto-responses, close codes
// (reference §1.5, §1.10, §2.14, §2.16).
import assert from "node:assert/strict";
import { test } from "node:test";
import { DurableObject, Registry, WebSocketPair, WebSocketRequestResponsePair, runInDurableObject } from "../index.js";

let constructed = 0;
const events = [];

class Chat extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    constructed++;
  }
  async fetch(request) {
    const [client, server] = Object.values(new WebSocketPair());
    const tags = new URL(request.url).searchParams.getAll("tag");
    this.ctx.acceptWebSocket(server, tags);
    server.serializeAttachment({ since: new Date(0), seen: new Map([["a", 1]]) });
    return new Response(null, { status: 101, webSocket: client });
  }
  async webSocketMessage(ws, message) {
    events.push(["message", message]);
    if (message === "slow") return new Promise(() => {}); // never settles
    ws.send(`echo:${typeof message === "string" ? message : `binary ${message.byteLength}`}`);
  }
  webSocketClose(ws, code, reason, wasClean) {
    events.push(["close", code, reason, wasClean]);
  }
}

/** Connects in-process: the client end of the 101 response, accepted here. */
async function open(stub, query = "") {
  const response = await stub.fetch(`https://chat.test/${query}`, { headers: { upgrade: "websocket" } });
  assert.equal(response.status, 101);
  const ws = response.webSocket;
  const inbox = [];
  const waiters = [];
  ws.accept();
  ws.addEventListener("message", (e) => (waiters.length ? waiters.shift()(e.data) : inbox.push(e.data)));
  return { ws, next: () => (inbox.length ? Promise.resolve(inbox.shift()) : new Promise((r) => waiters.push(r))) };
}

test("Response: a WebSocket needs status 101; without one, 101 is refused; runtime-made Responses are Responses", () => {
  const [client] = Object.values(new WebSocketPair());
  assert.throws(() => new Response(null, { status: 200, webSocket: client }), { name: "RangeError", message: "Responses with a WebSocket must have status code 101." });
  assert.throws(() => new Response(null, { status: 101 }), RangeError);
  const upgrade = new Response(null, { status: 101, webSocket: client });
  assert.equal(upgrade.status, 101);
  assert.equal(upgrade.webSocket, client);
  assert.equal(new Response("x").webSocket, null);
  assert.ok(Response.json({}) instanceof Response);
});

test("WebSocketPair: [0] is the client end, [1] the server end; sending needs accept()", () => {
  const pair = new WebSocketPair();
  const [client, server] = Object.values(pair);
  assert.equal(pair[0], client);
  assert.equal(pair[1], server);
  assert.throws(() => server.send("x"), { name: "TypeError", message: /accept\(\)/ });
  server.accept();
  assert.throws(() => server.close(1006), TypeError, "1006 is reserved");
  assert.throws(() => server.close(1000, "x".repeat(124)), SyntaxError, "a close reason is at most 123 bytes");
  server.close(1000, "ok");
  assert.throws(() => server.send("x"), { name: "TypeError", message: "Can't call WebSocket send() after close()." });
});

test("in-process clients: messages reach webSocketMessage and its replies come back; hibernation too", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  const stub = registry.namespace(Chat).getByName("in-process");
  events.length = 0;
  const { ws, next } = await open(stub);
  ws.send("hi");
  assert.equal(await next(), "echo:hi");
  ws.send(new Uint8Array([1, 2]).buffer);
  assert.equal(await next(), "echo:binary 2");
  const before = constructed;
  assert.equal(registry.evictIdle(), 1);
  ws.send("after");
  assert.equal(await next(), "echo:after");
  assert.equal(constructed, before + 1);
  ws.close(4000, "done");
  while (!events.some((e) => e[0] === "close")) await new Promise((r) => setTimeout(r, 1));
  assert.deepEqual(events.find((e) => e[0] === "close"), ["close", 4000, "done", true]);
  await registry.close();
});

test("acceptWebSocket: at most 10 distinct tags of 256 characters; one end of a pair; not after accept()", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  const stub = registry.namespace(Chat).getByName("tags");
  await runInDurableObject(stub, (instance, ctx) => {
    assert.deepEqual(ctx.getWebSockets(), [], "nothing accepted yet");
    const tooMany = Object.values(new WebSocketPair())[1];
    assert.throws(() => ctx.acceptWebSocket(tooMany, Array.from({ length: 11 }, (_, i) => `t${i}`)), { message: "a Hibernatable WebSocket cannot have more than 10 tags" });
    const tooLong = Object.values(new WebSocketPair())[1];
    assert.throws(() => ctx.acceptWebSocket(tooLong, ["x".repeat(257)]), { message: `"${"x".repeat(257)}" is longer than the max tag length (256 characters).` });
    const [client, server] = Object.values(new WebSocketPair());
    ctx.acceptWebSocket(server, ["a", "b", "a"]);
    assert.throws(() => ctx.acceptWebSocket(client), {
      message: "Cannot call `acceptWebSocket()` on this WebSocket because its pair has already been accepted or used in a Response.",
    });
    assert.deepEqual(ctx.getTags(server), ["a", "b"], "duplicates are ignored");
    assert.deepEqual(ctx.getWebSockets("b"), [server]);
    assert.deepEqual(ctx.getWebSockets("c"), []);
    const standard = Object.values(new WebSocketPair())[1];
    standard.accept();
    assert.throws(() => ctx.acceptWebSocket(standard), { message: "Cannot call `acceptWebSocket()` if the WebSocket was already accepted via `accept()`" });
    assert.throws(() => ctx.getTags(standard), TypeError);
  });
  await registry.close();
});

test("attachments: a structured-clone copy, 16 KiB at most, fresh on every read", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  const stub = registry.namespace(Chat).getByName("attachments");
  await runInDurableObject(stub, (instance, ctx) => {
    const server = Object.values(new WebSocketPair())[1];
    ctx.acceptWebSocket(server);
    assert.equal(server.deserializeAttachment(), null);
    const value = { when: new Date(5), tags: new Set(["x"]) };
    server.serializeAttachment(value);
    value.when = null; // later changes do not reach the stored copy
    const copy = server.deserializeAttachment();
    assert.deepEqual(copy, { when: new Date(5), tags: new Set(["x"]) });
    copy.tags.add("y");
    assert.deepEqual(server.deserializeAttachment().tags, new Set(["x"]));
    assert.throws(() => server.serializeAttachment("x".repeat(16 * 1024 + 1)), /cannot be larger than 16384 bytes/);
    assert.throws(() => server.serializeAttachment(() => {}), { name: "DataCloneError" });
  });
  await registry.close();
});

test("auto-response pair: 2048 bytes each, read back, cleared with no argument", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  const stub = registry.namespace(Chat).getByName("auto-pair");
  await runInDurableObject(stub, (instance, ctx) => {
    assert.equal(ctx.getWebSocketAutoResponse(), null);
    assert.throws(() => ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("x".repeat(2049), "y")), {
      name: "RangeError",
      message: "Request cannot be larger than 2048 bytes. A request of size 2049 was provided.",
    });
    assert.throws(() => ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("x", "é".repeat(1025))), {
      name: "RangeError",
      message: "Response cannot be larger than 2048 bytes. A response of size 2050 was provided.",
    });
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
    const pair = ctx.getWebSocketAutoResponse();
    assert.ok(pair instanceof WebSocketRequestResponsePair);
    assert.deepEqual([pair.request, pair.response], ["ping", "pong"]);
    ctx.setWebSocketAutoResponse();
    assert.equal(ctx.getWebSocketAutoResponse(), null);
  });
  await registry.close();
});

test("an in-process client's auto-response does not wake the object; the timestamp is kept", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  const stub = registry.namespace(Chat).getByName("auto-in-process");
  await runInDurableObject(stub, (instance, ctx) => ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong")));
  const { ws, next } = await open(stub);
  registry.evictIdle();
  const before = constructed;
  ws.send("ping");
  assert.equal(await next(), "pong");
  assert.equal(constructed, before);
  await runInDurableObject(stub, (instance, ctx) => {
    const [server] = ctx.getWebSockets();
    assert.ok(ctx.getWebSocketAutoResponseTimestamp(server) instanceof Date);
  });
  await registry.close();
});

test("the hibernatable event timeout: at most 7 days; a handler that overruns it is reported and the next events run", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  const stub = registry.namespace(Chat).getByName("timeout");
  await runInDurableObject(stub, (instance, ctx) => {
    assert.equal(ctx.getHibernatableWebSocketEventTimeout(), null);
    assert.throws(() => ctx.setHibernatableWebSocketEventTimeout(604_800_001), { message: "Event timeout should not exceed 604800000 ms." });
    ctx.setHibernatableWebSocketEventTimeout(1000);
    assert.equal(ctx.getHibernatableWebSocketEventTimeout(), 1000);
    ctx.setHibernatableWebSocketEventTimeout(0);
    assert.equal(ctx.getHibernatableWebSocketEventTimeout(), null);
    ctx.setHibernatableWebSocketEventTimeout(20);
  });
  registry.evictIdle();
  await runInDurableObject(stub, (instance, ctx) => assert.equal(ctx.getHibernatableWebSocketEventTimeout(), 20, "kept through hibernation"));
  const reported = [];
  const original = console.error;
  console.error = (...args) => reported.push(args.join(" "));
  try {
    const { ws, next } = await open(stub);
    ws.send("slow");
    ws.send("fast");
    assert.equal(await next(), "echo:fast");
    while (reported.length === 0) await new Promise((r) => setTimeout(r, 5));
    assert.match(reported[0], /hibernatable event timeout of 20 ms/);
  } finally {
    console.error = original;
  }
  await registry.close();
});
