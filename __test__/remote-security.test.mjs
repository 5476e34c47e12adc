// Who may call objects through the RPC endpoint of registry.listen() (DESIGN "Security
// defaults", issue #8): not a web page of another origin (it can POST text/plain or open a
// WebSocket to loopback without any preflight), not a page that reached us by DNS
// rebinding (a foreign Host), and a token travels in headers, not URLs.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import http from "node:http";
import { test } from "node:test";
import { newHttpBatchRpcSession } from "capnweb";
import { chromium } from "playwright-core";
import { connect } from "@redwoodjs/open-do/client";
import { DurableObject, Registry } from "../index.js";
import { handshake, statusOf } from "./helpers/raw-net.mjs";

class Counter extends DurableObject {
  async increment(by = 1) {
    const n = ((await this.ctx.storage.get("n")) ?? 0) + by;
    await this.ctx.storage.put("n", n);
    return n;
  }
}

async function serve(options = {}) {
  const registry = new Registry({ dataDir: ":memory:" });
  const counters = registry.namespace(Counter);
  const page = `<!doctype html><script type="module">
    import { connect } from "/.open-do/client.js";
    window.call = async (token) => {
      const connection = connect(location.origin, token === undefined ? {} : { token });
      try { return await connection.namespace("Counter").getByName("page").increment(); }
      catch (error) { return { error: error.name, status: error.status, message: error.message }; }
      finally { connection.close(); }
    };
  </script>`;
  const server = await registry.listen({ port: 0, fetch: () => new Response(page, { headers: { "content-type": "text/html" } }), ...options });
  /** The counter's value, read locally (0 if nothing ever wrote it). */
  const count = (name) => counters.getByName(name).increment(0);
  return { registry, server, count };
}

/** The body of an HTTP batch that increments Counter `name` (as capnweb's client sends it). */
async function incrementBatch(name) {
  const real = globalThis.fetch;
  let body;
  globalThis.fetch = async (_url, init) => {
    body = init.body;
    return new Response("", { status: 500 });
  };
  try {
    await Promise.resolve(newHttpBatchRpcSession("http://capture.invalid/").namespace("Counter").getByName(name).increment()).catch(() => {});
  } finally {
    globalThis.fetch = real;
  }
  return body;
}

/** A raw HTTP request with exactly these headers (Host and Origin included). */
function post(port, path, headers, body = "") {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path, method: headers[":method"] ?? "POST", headers: Object.fromEntries(Object.entries(headers).filter(([k]) => !k.startsWith(":"))), agent: false }, (res) => {
      let text = "";
      res.on("data", (c) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

test("a page of another origin cannot reach objects: its text/plain POST and WebSocket are refused and nothing runs", async () => {
  const { registry, server, count } = await serve();
  const port = server.port;
  try {
    const batch = await incrementBatch("victim");
    const host = `127.0.0.1:${port}`;
    const attack = await post(port, "/.open-do/rpc", { host, origin: "http://evil.example", "content-type": "text/plain" }, batch);
    assert.equal(attack.status, 403);
    assert.match(attack.text, /other origins/);
    assert.equal(attack.headers["access-control-allow-origin"], undefined, "no CORS header for it");
    assert.equal(await count("victim"), 0, "the write never ran");
    assert.match(await statusOf(port, handshake("/.open-do/rpc?frames=batched", port, "Origin: http://evil.example\r\n")), /^HTTP\/1\.1 403 /, "no 101 for a foreign page's WebSocket");
    const preflight = await post(port, "/.open-do/rpc", { ":method": "OPTIONS", host, origin: "http://evil.example", "access-control-request-method": "POST" });
    assert.equal(preflight.headers["access-control-allow-origin"], undefined);

    // The server's own pages, and clients that are not browsers (no Origin), still call.
    const own = await post(port, "/.open-do/rpc", { host, origin: `http://${host}`, "content-type": "text/plain" }, batch);
    assert.equal(own.status, 200);
    assert.equal(own.headers["access-control-allow-origin"], undefined, "no wildcard CORS");
    assert.equal((await post(port, "/.open-do/rpc", { host }, batch)).status, 200);
    assert.equal(await count("victim"), 2);
  } finally {
    await registry.close();
  }
});

test("DNS rebinding: a loopback server refuses a foreign Host, even from its own origin, and serves localhost names", async () => {
  const { registry, server, count } = await serve();
  const port = server.port;
  try {
    const batch = await incrementBatch("rebound");
    for (const host of [`evil.example:${port}`, `127.0.0.1.evil.example:${port}`, `127.0.0.1:${port + 1}`, "localhost"]) {
      const response = await post(port, "/.open-do/rpc", { host, origin: `http://${host}`, "content-type": "text/plain" }, batch);
      assert.equal(response.status, 403, host);
      assert.match(response.text, /localhost/);
      assert.match(await statusOf(port, handshake("/.open-do/rpc", port, "").replace(/Host: [^\r]*/, `Host: ${host}`)), /^HTTP\/1\.1 403 /, `WebSocket for ${host}`);
    }
    assert.equal(await count("rebound"), 0);
    for (const host of [`localhost:${port}`, `app.localhost:${port}`, `127.0.0.1:${port}`, `LOCALHOST:${port}`]) {
      assert.equal((await post(port, "/.open-do/rpc", { host, origin: `http://${host.toLowerCase()}` }, batch)).status, 200, host);
    }
    assert.equal(await count("rebound"), 4);
  } finally {
    await registry.close();
  }
});

test("rpc.origins lets listed pages call, with CORS naming that origin (never *); others stay refused; listen() checks origins and tokens", async () => {
  const { registry, server, count } = await serve({ rpc: { origins: ["https://app.example", "http://localhost:3000"] } });
  const port = server.port;
  const host = `127.0.0.1:${port}`;
  try {
    const preflight = await post(port, "/.open-do/rpc", { ":method": "OPTIONS", host, origin: "https://app.example", "access-control-request-method": "POST" });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers["access-control-allow-origin"], "https://app.example");
    assert.match(preflight.headers["access-control-allow-headers"], /authorization/);
    const batch = await incrementBatch("listed");
    const listed = await post(port, "/.open-do/rpc", { host, origin: "http://localhost:3000", "content-type": "text/plain" }, batch);
    assert.equal(listed.status, 200);
    assert.equal(listed.headers["access-control-allow-origin"], "http://localhost:3000");
    assert.equal((await post(port, "/.open-do/rpc", { host, origin: "https://other.example" }, batch)).status, 403);
    assert.equal(await count("listed"), 1);
  } finally {
    await registry.close();
  }
  const empty = new Registry({ dataDir: ":memory:" });
  try {
    for (const origins of [["*"], ["https://app.example/path"], ["not an origin"], "https://app.example"]) {
      await assert.rejects(empty.listen({ port: 0, fetch: () => new Response(), rpc: { origins } }), TypeError, JSON.stringify(origins));
    }
    for (const token of ["", "two words", "tökén", 42]) {
      await assert.rejects(empty.listen({ port: 0, fetch: () => new Response(), rpc: { token } }), TypeError, JSON.stringify(token));
    }
  } finally {
    await empty.close();
  }
});

test("the client sends its token in a header, not in the URL; clients of earlier versions (?token=) still connect, and the server logs once that they should not", async () => {
  // What connect() sends, seen by a bare server.
  const seen = await new Promise((resolve) => {
    const bare = http.createServer();
    bare.on("upgrade", (req, socket) => {
      resolve({ url: req.url, authorization: req.headers.authorization });
      socket.destroy();
      bare.close();
    });
    bare.listen(0, "127.0.0.1", () => {
      const connection = connect(`http://127.0.0.1:${bare.address().port}`, { token: "s3cret" });
      Promise.resolve(connection.namespace("Counter").getByName("a").increment()).catch(() => {});
    });
  });
  assert.doesNotMatch(seen.url, /s3cret/, "not in the URL");
  assert.equal(seen.authorization, "Bearer s3cret");

  const { registry, server } = await serve({ rpc: { token: "s3cret" } });
  try {
    const connection = connect(server.url, { token: "s3cret" });
    assert.equal(await connection.namespace("Counter").getByName("a").increment(), 1);
    connection.close();
    // An old client still connects, and the server says once (not per connection) why it should not.
    const logged = [];
    const original = console.error;
    console.error = (...args) => logged.push(args.map(String).join(" "));
    try {
      for (let i = 0; i < 3; i++) {
        const old = new WebSocket(`${server.url.replace("http", "ws")}/.open-do/rpc?token=s3cret&frames=batched`);
        await new Promise((resolve, reject) => {
          old.addEventListener("open", resolve);
          old.addEventListener("error", reject);
        });
        old.close();
      }
    } finally {
      console.error = original;
    }
    assert.equal(logged.length, 1, logged.join("\n"));
    assert.match(logged[0], /token in the URL \(\?token=\)/);
    assert.doesNotMatch(logged[0], /s3cret/, "the log does not keep the token either");
    const wrong = await post(server.port, "/.open-do/rpc", { host: `127.0.0.1:${server.port}`, authorization: "Bearer s3cre" }, "[]");
    assert.equal(wrong.status, 401);
    // A token lets a loopback server answer other host names (a reverse proxy's).
    const proxied = await post(server.port, "/.open-do/rpc", { host: "app.example", authorization: "Bearer s3cret" }, await incrementBatch("a"));
    assert.equal(proxied.status, 200);
  } finally {
    await registry.close();
  }
});

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

test("a browser page sends its token as a WebSocket subprotocol and calls; a wrong token is refused with 401", async () => {
  assert.ok(existsSync(CHROMIUM), `this test needs Chromium at ${CHROMIUM} (Debian: apt-get install chromium)`);
  const { registry, server } = await serve({ rpc: { token: "page-token/2+=" } });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"] });
  try {
    const page = await browser.newPage();
    await page.goto(server.url);
    await page.waitForFunction(() => typeof window.call === "function");
    assert.equal(await page.evaluate(() => window.call("page-token/2+=")), 1);
    assert.deepEqual(await page.evaluate(() => window.call("wrong")), {
      error: "ConnectionRefusedError",
      status: 401,
      message: `The server at ${server.url.replace("http", "ws")}/.open-do/rpc refused the RPC connection (HTTP 401): A valid token is required for RPC.`,
    });
  } finally {
    await browser.close();
    await registry.close();
  }
});
