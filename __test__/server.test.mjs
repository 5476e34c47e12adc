// registry.listen(): the built-in HTTP server (reference §2.14 for upgrades; DESIGN "Network").
// Real clients over loopback: Node's fetch and node:http.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import http from "node:http";
import { test } from "node:test";
import { DurableObject, Registry } from "../index.js";

class Echo extends DurableObject {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/count") {
      const n = ((await this.ctx.storage.get("n")) ?? 0) + 1;
      await this.ctx.storage.put("n", n);
      return Response.json({ n, name: url.searchParams.get("name") });
    }
    if (url.pathname === "/hash") {
      // Consumes the body as a stream: a large upload never has to be whole in memory.
      const hash = createHash("sha256");
      let bytes = 0;
      for await (const chunk of request.body) {
        hash.update(chunk);
        bytes += chunk.length;
      }
      return Response.json({ bytes, sha256: hash.digest("hex") });
    }
    if (url.pathname === "/headers") {
      const headers = new Headers({ "x-method": request.method, "x-host": new URL(request.url).host });
      headers.append("set-cookie", "a=1");
      headers.append("set-cookie", "b=2");
      return new Response(await request.text(), { status: 201, headers });
    }
    return new Response("not found", { status: 404 });
  }
}

async function serve(fetchHandler, options = {}) {
  const registry = new Registry({ dataDir: ":memory:", ...options });
  const ns = registry.namespace(Echo);
  const server = await registry.listen({ port: 0, fetch: fetchHandler ?? ((request) => ns.getByName("a").fetch(request)) });
  return { registry, ns, server };
}

function request(url, { method = "GET", headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    if (typeof body === "function") body(req);
    else req.end(body);
  });
}

test("requests reach the Worker's fetch(request, env, ctx) and objects through stubs", async () => {
  const { registry, server } = await serve();
  assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  const first = await fetch(`${server.url}/count?name=x`);
  assert.equal(first.status, 200);
  assert.match(first.headers.get("content-type"), /^application\/json/);
  assert.deepEqual(await first.json(), { n: 1, name: "x" });
  assert.deepEqual(await (await fetch(`${server.url}/count`)).json(), { n: 2, name: null });
  assert.equal((await fetch(`${server.url}/nope`)).status, 404);
  await registry.close();
});

test("status, headers (repeated Set-Cookie too), method, Host and a small body go both ways", async () => {
  const { registry, server } = await serve();
  const res = await request(`${server.url}/headers`, { method: "PUT", headers: { host: "example.test:1234" }, body: "hello" });
  assert.equal(res.status, 201);
  assert.equal(res.body.toString(), "hello");
  assert.equal(res.headers["x-method"], "PUT");
  assert.equal(res.headers["x-host"], "example.test:1234", "the request URL is built from the Host header");
  assert.deepEqual(res.headers["set-cookie"], ["a=1", "b=2"]);
  await registry.close();
});

test("a 100 MB upload streams through to the object, chunk by chunk", async () => {
  const { registry, server } = await serve();
  const chunk = Buffer.alloc(1 << 20, 7);
  const expected = createHash("sha256");
  for (let i = 0; i < 100; i++) expected.update(chunk);
  const res = await request(`${server.url}/hash`, {
    method: "POST",
    body: async (req) => {
      for (let i = 0; i < 100; i++) {
        if (!req.write(chunk)) await new Promise((resolve) => req.once("drain", resolve));
      }
      req.end();
    },
  });
  assert.equal(res.status, 200);
  assert.deepEqual(JSON.parse(res.body), { bytes: 100 << 20, sha256: expected.digest("hex") });
  await registry.close();
});

test("a streamed response arrives whole, in order; a client that leaves cancels the stream", async () => {
  let cancelled;
  const cancelledSeen = new Promise((resolve) => (cancelled = resolve));
  const { registry, server } = await serve((request) => {
    const total = new URL(request.url).pathname === "/endless" ? Infinity : 64;
    let i = 0;
    const body = new ReadableStream({
      pull(controller) {
        if (i >= total) return controller.close();
        controller.enqueue(new Uint8Array(1 << 20).fill(i++ % 256));
      },
      cancel() {
        cancelled();
      },
    });
    return new Response(body, { headers: { "content-type": "application/octet-stream" } });
  });
  const res = await fetch(`${server.url}/finite`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  assert.equal(bytes.length, 64 << 20);
  for (let i = 0; i < 64; i++) assert.equal(bytes[i << 20], i, `chunk ${i} in place`);

  await new Promise((resolve, reject) => {
    const req = http.get(`${server.url}/endless`, { agent: false }, (res) => {
      let seen = 0;
      res.on("data", (c) => {
        seen += c.length;
        if (seen > 4 << 20) {
          req.destroy();
          resolve();
        }
      });
    });
    req.on("error", () => {});
  });
  await cancelledSeen; // the server noticed and cancelled the Worker's body stream
  await registry.close();
});

test("a handler that throws or returns no Response gets a 500; the server keeps serving", async () => {
  const errors = [];
  const original = console.error;
  console.error = (...args) => errors.push(args);
  try {
    const { registry, server } = await serve((request) => {
      const path = new URL(request.url).pathname;
      if (path === "/throw") throw new Error("boom");
      if (path === "/nothing") return "not a response";
      return new Response("fine");
    });
    assert.equal((await fetch(`${server.url}/throw`)).status, 500);
    assert.equal((await fetch(`${server.url}/nothing`)).status, 500);
    assert.equal(await (await fetch(`${server.url}/ok`)).text(), "fine");
    assert.equal(errors.length, 2, "each failure is reported");
    await registry.close();
  } finally {
    console.error = original;
  }
});

test("close() lets a request in flight finish, then refuses new connections", async () => {
  let release;
  const gate = new Promise((resolve) => (release = resolve));
  let started;
  const inFlight = new Promise((resolve) => (started = resolve));
  const { registry, server } = await serve(async () => {
    started();
    await gate;
    return new Response("finished");
  });
  const pending = fetch(`${server.url}/slow`).then((r) => r.text());
  await inFlight;
  const closing = server.close();
  release();
  assert.equal(await pending, "finished");
  await closing;
  await assert.rejects(fetch(`${server.url}/again`));
  await registry.close();
});

test("listen() checks its options", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  await assert.rejects(registry.listen({ port: 0 }), /fetch/);
  await assert.rejects(registry.listen({ port: 70000, fetch: () => new Response() }), RangeError);
  const server = await registry.listen({ port: 0, fetch: () => new Response() });
  await assert.rejects(registry.listen({ port: server.port, fetch: () => new Response() }), /in use/i);
  await registry.close();
  await assert.rejects(registry.listen({ port: 0, fetch: () => new Response() }), /closed/);
});
