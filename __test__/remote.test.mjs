// Objects reached from other processes and browsers over Cap'n Web: registry.listen() serves
// the RPC endpoint at /.open-do/rpc, `@redwoodjs/open-do/client` connects to it (issue #7).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs, { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { newHttpBatchRpcSession, newWebSocketRpcSession } from "capnweb";
import { chromium } from "playwright-core";
import { ConnectionRefusedError, connect } from "@redwoodjs/open-do/client";
import { DurableObject, Registry, RpcTarget } from "../index.js";

class Tally extends RpcTarget {
  total = 0;
  add(n) {
    return (this.total += n);
  }
}

class Counter extends DurableObject {
  async increment(by = 1) {
    const n = ((await this.ctx.storage.get("n")) ?? 0) + by;
    await this.ctx.storage.put("n", n);
    return n;
  }
  whoami() {
    return { name: this.ctx.id.name ?? null, id: this.ctx.id.toString() };
  }
  fail() {
    throw new RangeError("no such thing");
  }
  async transform(items, callback) {
    const out = [];
    for (const item of items) out.push(await callback(item));
    return out;
  }
  tally() {
    return { tally: new Tally(), note: "by reference" };
  }
  seen = [];
  async record(i) {
    this.seen.push(i); // on delivery, before any await
    if (i % 3 === 0) await this.ctx.storage.put(`k${i}`, i);
    return i;
  }
  log() {
    return this.seen;
  }
}

async function serve(options = {}) {
  const registry = new Registry({ dataDir: ":memory:" });
  registry.namespace(Counter);
  const server = await registry.listen({ port: 0, fetch: () => new Response("the app"), ...options });
  return { registry, server };
}

test("remote stubs: calls enter the object (state, storage), pipelined getByName().method(), ids", async () => {
  const { registry, server } = await serve();
  const connection = connect(server.url);
  try {
    const counters = connection.namespace("Counter");
    assert.equal(await counters.getByName("a").increment(2), 2);
    assert.equal(await counters.getByName("a").increment(), 3);
    assert.equal(await counters.getByName("b").increment(), 1, "each name is its own object");
    const local = await runLocal(registry, "a");
    assert.equal(local, 3, "the same object as local stubs reach");
    const id = await counters.idFromName("a");
    assert.equal((await counters.get(id).whoami()).id, id);
    assert.equal((await counters.getByName("a").whoami()).name, "a");
    assert.equal(await (await fetch(`${server.url}/other`)).text(), "the app", "other paths still reach the Worker");
  } finally {
    connection.close();
    await registry.close();
  }
});

async function runLocal(registry, name) {
  return registry.namespace(Counter).getByName(name).increment(0);
}

test("remote errors keep their class and message; unknown classes are refused", async () => {
  const { registry, server } = await serve();
  const connection = connect(server.url);
  try {
    // Cap'n Web's RpcPromise is a thenable: Promise.resolve() follows it.
    await assert.rejects(Promise.resolve(connection.namespace("Counter").getByName("a").fail()), { name: "RangeError", message: "no such thing", remote: true });
    const refused = await Promise.resolve(connection.namespace("Missing").getByName("a").whoami()).catch((e) => e);
    assert.equal(refused.name, "TypeError");
    assert.equal(refused.message, 'No Durable Object class "Missing" is served here.');
    assert.equal(refused.remote, undefined, "not thrown by an object's code");
    assert.equal(await connection.namespace("Counter").getByName("a").increment(), 1, "the session survives errors");
  } finally {
    connection.close();
    await registry.close();
  }
});

test("unknown methods are refused; malformed messages end only their own session", async () => {
  const { registry, server } = await serve();
  const connection = connect(server.url);
  try {
    const counter = connection.namespace("Counter").getByName("sturdy");
    await assert.rejects(Promise.resolve(counter.nope()), { name: "TypeError", message: 'The RPC receiver does not implement the method "nope".' });
    const rpc = `${server.url.replace("http", "ws")}/.open-do/rpc`;
    const garbage = ["this is not json", '{"a":1}', '["bogus"]', '["pull",7]', '["push",["pipeline",99,["x"],[]]]'];
    for (const query of ["", "?frames=batched"]) {
      for (const message of garbage) {
        const ws = new WebSocket(rpc + query);
        await new Promise((resolve) => ws.addEventListener("open", resolve));
        const closed = new Promise((resolve) => ws.addEventListener("close", resolve));
        ws.send(message);
        const { code, reason } = await closed;
        assert.equal(code, 3000, `${message} ends the session with Cap'n Web's abort`);
        assert.ok(reason.length > 0, "and says why");
      }
    }
    for (const body of ["garbage", '["bogus"]', '["push",["pipeline",99,["x"],[]]]\n["pull",1]']) {
      const response = await fetch(`${server.url}/.open-do/rpc`, { method: "POST", body });
      assert.equal(response.status, 400, `an HTTP batch of ${body} is refused`);
      assert.match(await response.text(), /^Bad RPC batch: /);
    }
    assert.equal(await counter.increment(), 1, "the host and other sessions carry on");
  } finally {
    connection.close();
    await registry.close();
  }
});

test("functions and RpcTargets cross the wire by reference", async () => {
  const { registry, server } = await serve();
  const connection = connect(server.url);
  try {
    const counter = connection.namespace("Counter").getByName("refs");
    assert.deepEqual(await counter.transform([1, 2, 3], (n) => n * 10), [10, 20, 30], "the object called the client's function back");
    const { tally, note } = await counter.tally();
    assert.equal(note, "by reference");
    assert.equal(await tally.add(2), 2);
    assert.equal(await tally.add(3), 5, "calls reach the same RpcTarget in the object's process");
  } finally {
    connection.close();
    await registry.close();
  }
});

test("calls through one remote stub are delivered in the order they were made (E-order)", async () => {
  const { registry, server } = await serve();
  const connection = connect(server.url);
  try {
    const counter = connection.namespace("Counter").getByName("order"); // still a promise: calls pipeline on it
    const calls = [];
    for (let i = 0; i < 100; i++) calls.push(counter.record(i));
    assert.deepEqual(await Promise.all(calls), [...Array(100).keys()]);
    assert.deepEqual(await counter.log(), [...Array(100).keys()], "the object saw them in call order");
  } finally {
    connection.close();
    await registry.close();
  }
});

test("our client sends a call as one frame and gets one back; plain Cap'n Web clients still work", async () => {
  const { registry, server } = await serve();
  const Native = globalThis.WebSocket;
  const frames = { sent: 0, received: 0 };
  globalThis.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", () => frames.received++);
    }
    send(data) {
      frames.sent++;
      return super.send(data);
    }
  };
  const connection = connect(server.url);
  globalThis.WebSocket = Native;
  try {
    const counter = connection.namespace("Counter").getByName("frames");
    await counter.increment();
    frames.sent = frames.received = 0;
    for (let i = 0; i < 20; i++) await counter.increment();
    // Each call's push and pull, with the previous result's release, go as one frame.
    assert.equal(frames.sent, 20);
    assert.equal(frames.received, 20);

    const plain = newWebSocketRpcSession(`${server.url.replace("http", "ws")}/.open-do/rpc`);
    assert.equal(await plain.namespace("Counter").getByName("frames").increment(), 22);
    plain[Symbol.dispose]();
  } finally {
    connection.close();
    await registry.close();
  }
});

test("the server hands browsers the client as modules: /.open-do/client.js and what it imports", async () => {
  const { registry, server } = await serve();
  try {
    const client = await fetch(`${server.url}/.open-do/client.js`);
    assert.equal(client.status, 200);
    assert.equal(client.headers.get("content-type"), "text/javascript; charset=utf-8");
    const text = await client.text();
    assert.match(text, /export function connect/);
    assert.doesNotMatch(text, /from\s*"capnweb"/, "the bare import points at the served copy");
    assert.match(text, /from "\/\.open-do\/capnweb\.js"/);
    for (const path of ["/.open-do/capnweb.js", "/.open-do/remote/batched-transport.js"]) {
      const response = await fetch(server.url + path);
      assert.equal(response.status, 200, path);
      assert.doesNotMatch(await response.text(), /from\s*"capnweb"/);
    }
    assert.equal(await (await fetch(`${server.url}/.open-do/other.js`)).text(), "the app", "other paths reach the Worker");
  } finally {
    await registry.close();
  }
});

test("HTTP batch: one POST carries pipelined calls", async () => {
  const { registry, server } = await serve();
  try {
    const main = newHttpBatchRpcSession(`${server.url}/.open-do/rpc`);
    const counter = main.namespace("Counter").getByName("batch");
    const [first, second] = await Promise.all([counter.increment(5), counter.whoami()]);
    assert.equal(first, 5);
    assert.equal(second.name, "batch");
  } finally {
    await registry.close();
  }
});

test("a token, when configured, is required; an authorize hook decides per object", async () => {
  const { registry, server } = await serve({
    rpc: { token: "s3cret", authorize: (_request, className, id) => className === "Counter" && id !== registry.namespace(Counter).idFromName("private").toString() },
  });
  try {
    const response = await fetch(`${server.url}/.open-do/rpc`, { method: "POST", body: "[]" });
    assert.equal(response.status, 401);
    // A client without the token, or with a wrong one, learns why it was refused.
    for (const options of [{}, { token: "wrong" }]) {
      const refused = connect(server.url, options);
      const error = await Promise.resolve(refused.namespace("Counter").getByName("open").increment()).catch((e) => e);
      assert.ok(error instanceof ConnectionRefusedError, String(error));
      assert.equal(error.status, 401);
      assert.equal(error.retryable, false);
      assert.match(error.message, /refused the RPC connection \(HTTP 401\): A valid token is required for RPC\./);
      assert.doesNotMatch(error.message, /wrong/, "the token is not repeated in messages");
      refused.close();
    }
    const connection = connect(server.url, { token: "s3cret" });
    assert.equal(await connection.namespace("Counter").getByName("open").increment(), 1);
    await assert.rejects(Promise.resolve(connection.namespace("Counter").getByName("private").increment()), /refused/);
    connection.close();
  } finally {
    await registry.close();
  }
});

test("without a token or hook the endpoint answers on loopback only; rpc: false turns it off", async () => {
  const open = await serve({ hostname: "0.0.0.0" });
  try {
    const refused = await fetch(`http://127.0.0.1:${open.server.port}/.open-do/rpc`, { method: "POST", body: "[]" });
    assert.equal(refused.status, 403);
    const client = connect(`http://127.0.0.1:${open.server.port}`);
    const error = await Promise.resolve(client.namespace("Counter").getByName("a").increment()).catch((e) => e);
    assert.ok(error instanceof ConnectionRefusedError, String(error));
    assert.equal(error.status, 403);
    assert.match(error.message, /RPC is served on loopback only/);
    client.close();
  } finally {
    await open.registry.close();
  }
  const off = await serve({ rpc: false });
  try {
    const client = connect(off.server.url);
    const error = await Promise.resolve(client.namespace("Counter").getByName("a").increment()).catch((e) => e);
    assert.ok(error instanceof ConnectionRefusedError, String(error));
    assert.equal(error.status, 200);
    assert.match(error.message, /did not accept an RPC connection: it answered HTTP 200 \("the app"\) instead of a WebSocket/);
    client.close();
    assert.equal(await (await fetch(`${off.server.url}/.open-do/rpc`, { method: "POST", body: "[]" })).text(), "the app");
    assert.equal(await (await fetch(`${off.server.url}/.open-do/client.js`)).text(), "the app", "nor is the browser client served");
  } finally {
    await off.registry.close();
  }
});

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures", "remote");

/** A child process running `script`; resolves with it and its first line of output. */
async function child(script, args) {
  const proc = spawn(process.execPath, [path.join(fixtures, script), ...args], { stdio: ["pipe", "pipe", "inherit"] });
  // From the start: an exit is reported once, possibly before anyone asks for it.
  const exited = new Promise((resolve) => proc.on("exit", resolve));
  const lines = readline.createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
  const first = (await lines.next()).value;
  return { proc, first, exited };
}

test("two processes and a browser: A hosts; B and a page call; B killed mid-call leaves A serving everyone else", async () => {
  assert.ok(existsSync(CHROMIUM), `this test needs Chromium at ${CHROMIUM} (Debian: apt-get install chromium)`);
  const host = await child("host.mjs", [":memory:"]);
  const { url } = JSON.parse(host.first);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"] });
  const connection = connect(url);
  try {
    const page = await browser.newPage();
    await page.goto(url);
    await page.waitForFunction(() => window.ready === true);
    const fromPage = (name) => page.evaluate(async (n) => await window.connection.namespace("Counter").getByName(n).increment(), name);
    assert.equal(await fromPage("page"), 1, "the page's pipelined call reached an object in A");

    const caller = await child("caller.mjs", [url]);
    assert.equal(caller.first, "calling");
    caller.proc.kill("SIGKILL"); // mid-call: its session ends without a goodbye
    await caller.exited;

    const counters = connection.namespace("Counter");
    // B's last call may still finish inside A (its timer runs on): counts only grow.
    const before = await counters.getByName("shared").increment(0);
    assert.ok((await counters.getByName("shared").increment()) > before, "A still serves, with the state B's calls left");
    assert.equal(await counters.getByName("other").slow(10), 1);
    assert.equal(await fromPage("page"), 2, "the page's session carried on");
    assert.ok((await fromPage("shared")) > before, "the page sees the object B and this process share");
  } finally {
    connection.close();
    await browser.close();
    host.proc.stdin.end();
    await host.exited;
  }
  assert.equal(host.proc.exitCode, 0, "A shut down cleanly");
});

test("a host that vanishes fails calls in flight and later ones with a .retryable error; a new connect works", async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "open-do-remote-"));
  try {
    const first = await child("host.mjs", [dataDir]);
    const connection = connect(JSON.parse(first.first).url);
    const counter = connection.namespace("Counter").getByName("survivor");
    assert.equal(await counter.increment(), 1);
    const inFlight = Promise.resolve(counter.slow(60_000)).catch((e) => e);
    await counter.increment(0); // the slow call has reached the host
    first.proc.kill("SIGKILL");
    const lost = await inFlight;
    assert.equal(lost.message, "Network connection lost.");
    assert.equal(lost.retryable, true);
    await assert.rejects(Promise.resolve(counter.increment()), { message: "Network connection lost.", retryable: true });
    await first.exited;
    // Nothing listens there now: a lost connection too, which a later connect() may find up.
    const early = connect(JSON.parse(first.first).url);
    await assert.rejects(Promise.resolve(early.namespace("Counter").getByName("survivor").increment()), { message: "Network connection lost.", retryable: true });
    early.close();

    const second = await child("host.mjs", [dataDir]);
    const again = connect(JSON.parse(second.first).url);
    try {
      assert.equal(await again.namespace("Counter").getByName("survivor").increment(), 2, "the acknowledged write survived; the slow one never ran");
    } finally {
      again.close();
      second.proc.stdin.end();
      await second.exited;
    }
  } finally {
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});
