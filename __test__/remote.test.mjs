// Objects reached from another client over Cap'n Web: registry.listen() serves the RPC
// endpoint at /.open-do/rpc, `@redwoodjs/open-do/client` connects to it (issue #7's first
// part; the two-process and browser tests come with the rest of it).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { newHttpBatchRpcSession } from "capnweb";
import { connect } from "@redwoodjs/open-do/client";
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
    await assert.rejects(Promise.resolve(connection.namespace("Counter").getByName("a").fail()), { name: "RangeError", message: "no such thing" });
    await assert.rejects(Promise.resolve(connection.namespace("Missing").getByName("a").whoami()), { name: "TypeError", message: 'No Durable Object class "Missing" is served here.' });
    assert.equal(await connection.namespace("Counter").getByName("a").increment(), 1, "the session survives errors");
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
  } finally {
    await open.registry.close();
  }
  const off = await serve({ rpc: false });
  try {
    assert.equal(await (await fetch(`${off.server.url}/.open-do/rpc`, { method: "POST", body: "[]" })).text(), "the app");
  } finally {
    await off.registry.close();
  }
});

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures", "remote");

/** A child process running `script`; resolves with it and its first line of output. */
async function child(script, args) {
  const proc = spawn(process.execPath, [path.join(fixtures, script), ...args], { stdio: ["pipe", "pipe", "inherit"] });
  const lines = readline.createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
  const first = (await lines.next()).value;
  return { proc, first };
}

test("two processes: A hosts, B calls; B killed mid-call leaves A serving everyone else", async () => {
  const host = await child("host.mjs", [":memory:"]);
  const { url } = JSON.parse(host.first);
  const caller = await child("caller.mjs", [url]);
  assert.equal(caller.first, "calling");
  const exited = new Promise((resolve) => caller.proc.on("exit", resolve));
  caller.proc.kill("SIGKILL"); // mid-call: its session ends without a goodbye
  await exited;
  const connection = connect(url);
  try {
    const counters = connection.namespace("Counter");
    // B's last call may still finish inside A (its timer runs on): counts only grow.
    const before = await counters.getByName("shared").increment(0);
    assert.ok((await counters.getByName("shared").increment()) > before, "A still serves, with the state B's calls left");
    assert.equal(await counters.getByName("other").slow(10), 1);
  } finally {
    connection.close();
    host.proc.stdin.end();
    await new Promise((resolve) => host.proc.on("exit", resolve));
  }
  assert.equal(host.proc.exitCode, 0, "A shut down cleanly");
});
