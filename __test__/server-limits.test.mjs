// registry.listen() against clients that misbehave (issue #8, "never open to the web"):
// requests HTTP/1.1 and RFC 6455 say to refuse, bodies that do not parse. Clients are raw
// TCP sockets (helpers/raw-net.mjs), since no well-behaved client does these things.
import assert from "node:assert/strict";
import { test } from "node:test";
import { DurableObject, Registry } from "../index.js";
import { rawConnect, statusOf } from "./helpers/raw-net.mjs";

class Store extends DurableObject {
  async fetch(request) {
    if (request.headers.get("upgrade") === "websocket") {
      const [client, server] = Object.values(new WebSocketPair());
      this.ctx.acceptWebSocket(server);
      return new Response(null, { status: 101, webSocket: client });
    }
    const body = await request.text();
    const n = ((await this.ctx.storage.get("n")) ?? 0) + 1;
    await this.ctx.storage.put("n", n);
    return new Response(`${n}:${body.length}`);
  }
  webSocketMessage(ws, message) {
    ws.send(message);
  }
}

async function serve(options = {}) {
  const registry = new Registry({ dataDir: ":memory:" });
  const ns = registry.namespace(Store);
  let handled = 0;
  const server = await registry.listen({
    port: 0,
    fetch: (request) => {
      handled++;
      return ns.getByName("a").fetch(request);
    },
    ...options,
  });
  return { registry, server, handled: () => handled };
}

test("HTTP/1.1 requests without exactly one Host get 400 (RFC 9112 §3.2); HTTP/1.0 may omit it", async () => {
  const { registry, server, handled } = await serve();
  try {
    assert.match(await statusOf(server.port, "GET / HTTP/1.1\r\n\r\n"), /^HTTP\/1\.1 400 /);
    assert.match(await statusOf(server.port, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), /^HTTP\/1\.1 400 /);
    assert.equal(handled(), 0, "the Worker never saw them");
    assert.match(await statusOf(server.port, "GET / HTTP/1.0\r\n\r\n"), /^HTTP\/1\.[01] 200 /);
    assert.match(await statusOf(server.port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"), /^HTTP\/1\.1 200 /);
  } finally {
    await registry.close();
  }
});

test("WebSocket handshakes that break RFC 6455 are refused: 426 with Sec-WebSocket-Version: 13 for another version, 400 for no version or a key that is not 16 bytes of base64", async () => {
  const { registry, server, handled } = await serve();
  try {
    const upgrade = (headers) => `GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n${headers}\r\n`;
    const key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    const raw = rawConnect(server.port);
    raw.write(upgrade(`${key}Sec-WebSocket-Version: 8\r\n`));
    const [head] = await raw.waitFor(/^HTTP\/1\.1 \d{3}[^]*?\r\n\r\n/);
    raw.socket.destroy();
    assert.match(head, /^HTTP\/1\.1 426 /);
    assert.match(head, /\r\nsec-websocket-version: 13\r\n/i);
    assert.match(await statusOf(server.port, upgrade(key)), /^HTTP\/1\.1 400 /, "no version");
    for (const bad of ["", "x", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZQ=", "dGhlIHNhbXBsZSBub25j!Q==", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"]) {
      assert.match(await statusOf(server.port, upgrade(`Sec-WebSocket-Key: ${bad}\r\nSec-WebSocket-Version: 13\r\n`)), /^HTTP\/1\.1 400 /, `key ${JSON.stringify(bad)}`);
    }
    assert.match(await statusOf(server.port, upgrade("Sec-WebSocket-Version: 13\r\n")), /^HTTP\/1\.1 400 /, "no key");
    assert.equal(handled(), 0, "the Worker never saw them");
    assert.match(await statusOf(server.port, upgrade(`${key}Sec-WebSocket-Version: 13\r\n`)), /^HTTP\/1\.1 101 /, "a valid handshake still gets 101");
  } finally {
    await registry.close();
  }
});

test("a malformed chunked body gets 400, and the log gets one line, not a stack trace per request", async () => {
  const lines = [];
  const original = console.error;
  console.error = (...args) => lines.push(args.map(String).join(" "));
  const { registry, server } = await serve();
  try {
    for (let i = 0; i < 20; i++) {
      const status = await statusOf(server.port, `POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`);
      assert.match(status, /^HTTP\/1\.1 400 /);
    }
    assert.equal(lines.length, 1, `one line for 20 bad bodies, got: ${lines.join("\n---\n")}`);
    assert.doesNotMatch(lines[0], /\n/, "a single line");
    assert.match(lines[0], /body could not be read: .*chunk/i, "that says what was wrong");
    assert.equal((await fetch(`${server.url}/ok`, { method: "POST", body: "fine" })).status, 200);
  } finally {
    console.error = original;
    await registry.close();
  }
});
