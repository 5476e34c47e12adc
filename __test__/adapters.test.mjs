// Objects behind servers people already run: Node's http (request + upgrade events),
// Bun.serve, and Hono's fetch handler (DESIGN "Network"; reference §2.14 for upgrades).
import assert from "node:assert/strict";
import http from "node:http";
import { test } from "node:test";
import { Hono } from "hono";
import WsClient from "ws";
import { DurableObject, Registry, WebSocketRequestResponsePair, bunServe, nodeHandler } from "../index.js";

let constructed = 0;

class Counter extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    constructed++;
  }
  async fetch(request) {
    if (request.headers.get("upgrade") === "websocket") {
      const [client, server] = Object.values(new WebSocketPair());
      this.ctx.acceptWebSocket(server, ["player"]);
      server.serializeAttachment({ seat: 7 });
      this.ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
      return new Response(null, { status: 101, webSocket: client, headers: { "sec-websocket-protocol": "game" } });
    }
    const by = request.method === "POST" ? Number(await request.text()) : 1;
    const n = ((await this.ctx.storage.get("n")) ?? 0) + by;
    await this.ctx.storage.put("n", n);
    return new Response(String(n), { headers: { "x-object": this.ctx.id.name } });
  }
  webSocketMessage(ws, message) {
    ws.send(`${message}:${ws.deserializeAttachment().seat}:${this.ctx.getTags(ws)}`);
  }
  webSocketClose(ws, code) {
    ws.close(code, "bye");
  }
}

function worker(ns) {
  return (request) => ns.getByName(new URL(request.url).pathname.slice(1) || "main").fetch(request);
}

async function exercise(base, registry) {
  assert.equal(await (await fetch(`${base}/a`)).text(), "1");
  const post = await fetch(`${base}/a`, { method: "POST", body: "41" });
  assert.equal(await post.text(), "42");
  assert.equal(post.headers.get("x-object"), "a");

  const client = new WsClient(`${base.replace("http", "ws")}/room`, ["game"]);
  const inbox = [];
  const waiters = [];
  client.on("message", (d) => (waiters.length ? waiters.shift()(d.toString()) : inbox.push(d.toString())));
  const next = () => (inbox.length ? Promise.resolve(inbox.shift()) : new Promise((r) => waiters.push(r)));
  await new Promise((resolve, reject) => client.on("open", resolve).on("error", reject));
  assert.equal(client.protocol, "game");
  client.send("hello");
  assert.equal(await next(), "hello:7:player");
  assert.ok(registry.evictIdle() >= 1, "only a hibernatable socket holds the room: it hibernates");
  const before = constructed;
  client.send("ping");
  assert.equal(await next(), "pong");
  assert.equal(constructed, before, "the auto-response did not wake the room");
  client.send("again");
  assert.equal(await next(), "again:7:player", "woken with its attachment and tags");
  assert.equal(constructed, before + 1);
  const closed = new Promise((resolve) => client.on("close", (code) => resolve(code)));
  client.close(4321);
  assert.equal(await closed, 4321);
}

test("Node http: nodeHandler() serves requests and WebSocket upgrades, with hibernation", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  const handler = nodeHandler(worker(registry.namespace(Counter)));
  const server = http.createServer(handler.request);
  server.on("upgrade", handler.upgrade);
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  await exercise(`http://127.0.0.1:${server.address().port}`, registry);
  server.closeAllConnections?.();
  await new Promise((resolve) => server.close(resolve));
  await registry.close();
});

test("Hono: app.fetch routes to objects through registry.listen()", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  const ns = registry.namespace(Counter);
  const app = new Hono();
  app.all("/:name", (c) => ns.getByName(c.req.param("name")).fetch(c.req.raw));
  const server = await registry.listen({ port: 0, fetch: app.fetch });
  await exercise(server.url, registry);
  await registry.close();
});

test("Bun.serve: bunServe() serves requests and WebSocket upgrades, with hibernation", { skip: typeof Bun === "undefined" && "Bun.serve exists on Bun only" }, async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", ...bunServe(worker(registry.namespace(Counter))) });
  await exercise(`http://127.0.0.1:${server.port}`, registry);
  server.stop(true);
  await registry.close();
});
