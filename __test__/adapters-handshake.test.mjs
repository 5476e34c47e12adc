// nodeHandler() against WebSocket handshakes RFC 6455 forbids (issue #8): they are refused
// as the built-in server refuses them (400, or 426 for another version) without reaching
// the Worker — before, the Worker ran, its object accepted a WebSocket that `ws` then
// refused, and the object held a socket that never connected nor closed.
import assert from "node:assert/strict";
import http from "node:http";
import { test } from "node:test";
import { DurableObject, nodeHandler, Registry } from "../index.js";
import { rawConnect, statusOf } from "./helpers/raw-net.mjs";

class Room extends DurableObject {
  fetch(request) {
    if (new URL(request.url).pathname === "/count") return new Response(String(this.ctx.getWebSockets().length));
    const [client, server] = Object.values(new WebSocketPair());
    this.ctx.acceptWebSocket(server);
    return new Response(null, { status: 101, webSocket: client });
  }
}

test("nodeHandler refuses invalid WebSocket handshakes before the Worker, and an object never holds a socket that did not connect", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  const rooms = registry.namespace(Room);
  let handled = 0;
  const handler = nodeHandler((request) => {
    handled++;
    return rooms.getByName("room").fetch(request);
  });
  const server = http.createServer(handler.request);
  server.on("upgrade", handler.upgrade);
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = server.address().port;
  try {
    const upgrade = (headers) => `GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n${headers}\r\n`;
    const key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    assert.match(await statusOf(port, upgrade(`${key}Sec-WebSocket-Version: 8\r\n`)), /^HTTP\/1\.1 426 /);
    assert.match(await statusOf(port, upgrade(key)), /^HTTP\/1\.1 400 /);
    assert.match(await statusOf(port, upgrade("Sec-WebSocket-Key: x\r\nSec-WebSocket-Version: 13\r\n")), /^HTTP\/1\.1 400 /);
    assert.equal(handled, 0, "the Worker never saw them");
    // A client that leaves during a valid handshake: the object hears it went away.
    const leaver = rawConnect(port);
    leaver.write(upgrade(`${key}Sec-WebSocket-Version: 13\r\n`));
    leaver.socket.destroy();
    await leaver.closed;
    const deadline = Date.now() + 10_000;
    let count;
    while ((count = await (await fetch(`http://127.0.0.1:${port}/count`)).text()) !== "0" && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(count, "0", "the object holds no socket that never connected");
    assert.match(await statusOf(port, upgrade(`${key}Sec-WebSocket-Version: 13\r\n`)), /^HTTP\/1\.1 101 /, "a valid handshake is accepted");
  } finally {
    server.closeAllConnections();
    server.close();
    await registry.close();
  }
});
