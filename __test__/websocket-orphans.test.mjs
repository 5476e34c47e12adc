// A WebSocket the object accepted whose client end never reaches a client — the request
// was no upgrade, or the client left during the handshake — must not stay registered:
// any client could otherwise fill an object's 32,768 hibernatable sockets with plain GETs
// (#8). The end the object kept hears a disconnect (1006), as on workerd. Through the
// built-in server, Node's http (nodeHandler) and Bun.serve (bunServe).
import assert from "node:assert/strict";
import { test } from "node:test";
import http from "node:http";
import net from "node:net";
import { DurableObject, Registry, nodeHandler, bunServe } from "../index.js";
import { isBun } from "./helpers/objects.mjs";

const closes = [];
class Room extends DurableObject {
  async fetch(request) {
    // The Worker takes a moment, during which a client may leave.
    if (new URL(request.url).searchParams.has("slow")) await new Promise((resolve) => setTimeout(resolve, 200));
    const [client, server] = Object.values(new WebSocketPair());
    this.ctx.acceptWebSocket(server);
    return new Response(null, { status: 101, webSocket: client });
  }
  webSocketClose(ws, code) {
    closes.push(code);
  }
  count() {
    return this.ctx.getWebSockets().length;
  }
}

/** Waits for `check()` to hold; fails (rather than hanging) after 10 s. */
async function until(check, what) {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`still not true after 10 s: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Five handshakes whose clients leave (by FIN, or by reset) before the answer. */
async function leaveDuringHandshakes(port, reset = false) {
  const handshake = `GET /ws?slow HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`;
  for (let i = 0; i < 5; i++) {
    const socket = net.connect(port, "127.0.0.1", () => {
      socket.write(handshake);
      setTimeout(() => (reset && socket.resetAndDestroy ? socket.resetAndDestroy() : socket.destroy()), 50);
    });
    socket.on("error", () => {});
  }
}

function setup() {
  closes.length = 0;
  const registry = new Registry({ dataDir: ":memory:" });
  const rooms = registry.namespace(Room);
  const count = () => rooms.getByName("r").count();
  return { registry, rooms, count };
}

test("built-in server: plain GETs to a handler that accepts a WebSocket leave the object no socket", async () => {
  const { registry, rooms, count } = setup();
  const logged = console.error;
  console.error = () => {};
  try {
    const server = await registry.listen({ port: 0, fetch: (request) => rooms.getByName("r").fetch(request) });
    for (let i = 0; i < 5; i++) assert.equal((await fetch(`${server.url}/ws`)).status, 500);
    await until(async () => (await count()) === 0 && closes.length === 5, "the sockets left");
    assert.deepEqual(closes, [1006, 1006, 1006, 1006, 1006]);
  } finally {
    console.error = logged;
    await registry.close();
  }
});

test("built-in server: clients that leave during the handshake leave the object no socket", async () => {
  const { registry, rooms, count } = setup();
  try {
    const server = await registry.listen({ port: 0, fetch: (request) => rooms.getByName("r").fetch(request) });
    await leaveDuringHandshakes(server.port);
    await until(async () => closes.length === 5 && (await count()) === 0, "the sockets left");
  } finally {
    await registry.close();
  }
});

test("nodeHandler: a plain request, and clients that reset during the handshake, leave no socket and do not end the process", async () => {
  const { registry, rooms, count } = setup();
  const handler = nodeHandler((request) => rooms.getByName("r").fetch(request));
  const server = http.createServer(handler.request);
  server.on("upgrade", handler.upgrade);
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const logged = console.error;
  console.error = () => {};
  try {
    const port = server.address().port;
    assert.equal((await fetch(`http://127.0.0.1:${port}/ws`)).status, 500);
    // Node took its own 'error' listener off the socket: a reset here was an unhandled
    // 'error' event that ended the process.
    await leaveDuringHandshakes(port, true);
    await until(async () => closes.length === 6 && (await count()) === 0, "the sockets left");
  } finally {
    console.error = logged;
    server.close();
    await registry.close();
  }
});

test("bunServe: a plain request leaves the object no socket", { skip: !isBun && "Bun.serve is Bun's" }, async () => {
  const { registry, rooms, count } = setup();
  const server = Bun.serve({ port: 0, ...bunServe((request) => rooms.getByName("r").fetch(request)) });
  try {
    for (let i = 0; i < 3; i++) assert.equal((await fetch(`http://127.0.0.1:${server.port}/ws`)).status, 400);
    await until(async () => closes.length === 3 && (await count()) === 0, "the sockets left");
  } finally {
    server.stop(true);
    await registry.close();
  }
});
