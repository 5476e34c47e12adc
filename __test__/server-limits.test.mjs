// registry.listen() against clients that misbehave (issue #8, "never open to the web"):
// requests HTTP/1.1 and RFC 6455 say to refuse, connections that never finish a request,
// bodies that never end or do not parse, a process out of file descriptors. Clients are
// raw TCP sockets (helpers/raw-net.mjs), since no well-behaved client does these things.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import http from "node:http";
import path from "node:path";
import readline from "node:readline";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
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

/** Waits for `check()` to hold; fails (rather than hanging) after `seconds`. */
async function until(check, what, seconds = 30) {
  const deadline = Date.now() + seconds * 1000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: still not so after ${seconds} s`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
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

test("timeouts close silent, half-sent, slow-bodied and idle connections while real requests are answered", async () => {
  const { registry, server } = await serve({ timeouts: { headers: 1000, idle: 500, request: 1500 } });
  const port = server.port;
  const opened = [];
  const open = () => opened[opened.push(rawConnect(port)) - 1];
  try {
    const silent = Array.from({ length: 20 }, open);
    const halfHeaders = Array.from({ length: 20 }, open);
    for (const raw of halfHeaders) raw.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: `);
    // Whole headers, a small body (read whole) that stops short, and a chunked one (streamed).
    const shortBodies = Array.from({ length: 10 }, open);
    for (const raw of shortBodies) raw.write(`POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n0123456789`);
    const stalledChunks = Array.from({ length: 10 }, open);
    for (const raw of stalledChunks) raw.write(`POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n`);
    // Kept alive after a response, then idle.
    const idle = Array.from({ length: 5 }, open);
    for (const raw of idle) raw.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    await Promise.all(idle.map((raw) => raw.waitFor(/^HTTP\/1\.1 200 [^]*?\r\n\r\n\d+:0/)));

    const response = await fetch(`${server.url}/real`, { method: "POST", body: "x" });
    assert.equal(response.status, 200, "a real request is answered meanwhile");
    assert.match(await response.text(), /^\d+:1$/);

    const all = [...silent, ...halfHeaders, ...shortBodies, ...stalledChunks, ...idle];
    let closed = 0;
    for (const raw of all) raw.closed.then(() => closed++);
    await until(() => closed === all.length, `${all.length} connections closed by the server`);
    for (const raw of shortBodies) assert.match(raw.text(), /^HTTP\/1\.1 408 /, "a body that stops short gets 408");
    for (const raw of stalledChunks) assert.match(raw.text(), /^HTTP\/1\.1 408 /, "a streamed body that stalls gets 408");
    for (const raw of [...silent, ...halfHeaders]) assert.doesNotMatch(raw.text(), /^HTTP\/1\.1 [^4]/);
    assert.equal((await fetch(`${server.url}/after`)).status, 200, "and the server still serves");
  } finally {
    for (const raw of opened) raw.socket.destroy(); // on failure too: open sockets keep the process alive
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

test("listen() checks its timeouts and limits", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  try {
    for (const timeouts of [{ headers: 0 }, { idle: -1 }, { request: 1.5 }, { headers: "60" }, { idle: 2 ** 32 }]) {
      await assert.rejects(registry.listen({ port: 0, fetch: () => new Response(), timeouts }), RangeError, JSON.stringify(timeouts));
    }
    await assert.rejects(registry.listen({ port: 0, fetch: () => new Response(), limits: { webSocketBufferBytes: 0 } }), RangeError);
  } finally {
    await registry.close();
  }
});

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures", "net");

test("out of file descriptors, the server says so once and waits instead of spinning; it serves again once descriptors free up", async (t) => {
  let prlimit;
  try {
    prlimit = execFileSync("sh", ["-c", "command -v prlimit"], { encoding: "utf8" }).trim();
  } catch {
    return t.skip("needs prlimit (util-linux)");
  }
  const child = spawn(process.execPath, [path.join(fixtures, "server.mjs")], { stdio: ["pipe", "pipe", "pipe"] });
  const exited = new Promise((resolve) => child.on("exit", resolve));
  let stderr = "";
  child.stderr.on("data", (chunk) => (stderr += chunk));
  const lines = readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const { url, port, fds } = JSON.parse((await lines.next()).value);
  const clients = [];
  try {
    // A few descriptors to spare, then many more connections than that.
    execFileSync(prlimit, ["--pid", String(child.pid), `--nofile=${fds + 8}`]);
    for (let i = 0; i < 40; i++) clients.push(rawConnect(port));
    await Promise.all(clients.map((c) => c.connected));
    await until(() => /cannot accept connections/.test(stderr), "the out-of-descriptors line");
    const line = stderr.split("\n").find((l) => /cannot accept connections/.test(l));
    assert.match(line, /too many open files/i);
    // Clients that leave free the server's descriptors (the limit stays as it is).
    for (const c of clients) c.socket.destroy();
    const response = await fetch(`${url}/again`, { signal: AbortSignal.timeout(30_000) });
    assert.equal(await response.text(), "ok", "served again");
  } finally {
    for (const c of clients) c.socket.destroy();
    child.stdin.end();
    await exited;
  }
});

test("a Host carrying more than a host name and port is refused: the request's URL is built from it", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  const seen = [];
  const server = await registry.listen({ port: 0, fetch: (request) => (seen.push(new URL(request.url).pathname), new Response("ok")) });
  try {
    // GET /public with "Host: localhost/admin?" reached the Worker as /admin.
    for (const host of ["localhost/admin?", "a b", "h#x", "x@localhost"]) {
      assert.match(await statusOf(server.port, `GET /public HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`), /^HTTP\/1\.1 400 /, host);
    }
    assert.match(await statusOf(server.port, `GET /public HTTP/1.1\r\nHost: localhost:${server.port}\r\nConnection: close\r\n\r\n`), /^HTTP\/1\.1 200 /);
    assert.deepEqual(seen, ["/public"]);
  } finally {
    await registry.close();
  }
});

test("a body the Worker does not read does not stall the connection's next request", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  const server = await registry.listen({ port: 0, fetch: (request) => new Response(request.method === "POST" ? "ignored" : "ok") });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const request = (method, body) =>
    new Promise((resolve, reject) => {
      const r = http.request({ host: "127.0.0.1", port: server.port, path: "/", method, agent }, (res) => {
        let text = "";
        res.on("data", (d) => (text += d));
        res.on("end", () => resolve(`${res.statusCode} ${text}`));
      });
      r.on("error", reject);
      r.end(body);
    });
  try {
    // Over 64 KiB, so it is streamed and not read whole before the Worker runs.
    assert.equal(await request("POST", Buffer.alloc(1 << 20)), "200 ignored");
    // On the same kept-alive connection: it waited for the idle timeout, then was reset.
    assert.equal(await request("GET"), "200 ok");
    assert.equal(await request("GET"), "200 ok");
  } finally {
    agent.destroy();
    await registry.close();
  }
});

test("a response HTTP cannot carry (a control character in a header value) is answered 500, not left unanswered", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  const server = await registry.listen({ port: 0, fetch: (request) => new Response(new URL(request.url).searchParams.get("body"), { headers: { "x-echo": "a\u0001b" } }) });
  const logged = console.error;
  console.error = () => {};
  try {
    assert.equal((await fetch(`${server.url}/`)).status, 500);
    assert.equal((await fetch(`${server.url}/?body=hi`)).status, 500);
  } finally {
    console.error = logged;
    await registry.close();
  }
});
