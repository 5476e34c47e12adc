// Cloudflare's RPC rules, as a remote client (`@redwoodjs/open-do/client`) sees them: the
// same answers as a local stub gives (§2.15). Property reads are part of Workers RPC:
// `await stub.prop` reads a getter of the class (instance fields stay out of reach), also
// along a path and on an RpcTarget a method returned; RpcTargets and functions a client
// passes are called back in the client.
import assert from "node:assert/strict";
import { test } from "node:test";
import { RpcTarget as ClientTarget } from "capnweb";
import { connect } from "@redwoodjs/open-do/client";
import { DurableObject, Registry, RpcTarget } from "../index.js";
import { startHost } from "./helpers/rpc-host.mjs";

class Box extends RpcTarget {
  #value;
  constructor(value) {
    super();
    this.#value = value;
  }
  get value() {
    return this.#value;
  }
  read() {
    return this.#value;
  }
}

class Echo extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.own = "an instance field";
  }
  get greeting() {
    return "hello";
  }
  get nested() {
    return { inner: { deep: 42 }, list: [1, 2, 3], box: new Box("in a getter") };
  }
  get count() {
    return this.ctx.storage.get("n").then((n) => n ?? 0);
  }
  async increment() {
    const n = ((await this.ctx.storage.get("n")) ?? 0) + 1;
    await this.ctx.storage.put("n", n);
    return n;
  }
  box(value) {
    return new Box(value);
  }
  async useTarget(target) {
    return [await target.read(), await target.value];
  }
  async call(fn, ...args) {
    return await fn(...args);
  }
}

const notImplemented = (name) => ({ name: "TypeError", message: `The RPC receiver does not implement the method "${name}".` });

async function serve(rpc) {
  const registry = new Registry({ dataDir: ":memory:" });
  registry.namespace(Echo);
  const server = await registry.listen({ port: 0, fetch: () => new Response("the app"), rpc });
  const connection = connect(server.url, rpc?.token === undefined ? {} : { token: rpc.token });
  return { registry, connection, echo: (name) => connection.namespace("Echo").getByName(name) };
}

/** The same checks on a local stub and on a remote one: both must give Cloudflare's answers. */
async function propertyReads(stub) {
  assert.equal(await stub.greeting, "hello", "a getter of the class");
  assert.equal(await stub.nested.inner.deep, 42, "a path through a getter's value");
  assert.deepEqual(await stub.nested.list, [1, 2, 3]);
  assert.equal(await stub.nested.box.read(), "in a getter", "a method of an RpcTarget inside a getter's value");
  assert.equal(await stub.nested.box.value, "in a getter", "and its getter");
  assert.equal(await stub.box(7).value, 7, "a getter of an RpcTarget a method returned, pipelined");
  const box = await stub.box(8);
  assert.equal(await box.value, 8, "and on the stub once it arrived");
  await assert.rejects(Promise.resolve(stub.own), notImplemented("own"), "instance fields are not reachable (Cloudflare §2.15)");
  await assert.rejects(Promise.resolve(stub.greeting()), { name: "TypeError", message: '"greeting" is not a function.' });
}

test("property reads on a local stub: getters, paths, RpcTargets; not instance fields", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  try {
    await propertyReads(registry.namespace(Echo).getByName("local"));
  } finally {
    await registry.close();
  }
});

test("property reads on a remote stub give the value, as on a local stub", async () => {
  const { registry, connection, echo } = await serve();
  try {
    await propertyReads(echo("remote"));
  } finally {
    connection.close();
    await registry.close();
  }
});

test("a property read is delivered in order with the calls around it (E-order), locally and remotely", async () => {
  const { registry, connection, echo } = await serve();
  try {
    for (const stub of [registry.namespace(Echo).getByName("local-order")]) {
      const reads = [stub.count.then((n) => n), stub.increment(), stub.count.then((n) => n)];
      assert.deepEqual(await Promise.all(reads), [0, 1, 1], "locally");
    }
    const stub = echo("order");
    // A property is read when it is awaited (then() sends it), as on Cloudflare.
    const before = stub.count.then((n) => n);
    const increment = stub.increment();
    const after = stub.count.then((n) => n);
    assert.deepEqual(await Promise.all([before, increment, after]), [0, 1, 1]);
  } finally {
    connection.close();
    await registry.close();
  }
});

test("remote property reads go through the authorize hook like calls", async () => {
  const { registry, connection, echo } = await serve({ token: "t", authorize: (_request, _className, id) => id !== registry.namespace(Echo).idFromName("private").toString() });
  try {
    assert.equal(await echo("open").greeting, "hello");
    await assert.rejects(Promise.resolve(echo("private").greeting), /refused/);
  } finally {
    connection.close();
    await registry.close();
  }
});

test("RpcTargets and functions a remote client passes are called back in the client", async () => {
  const { registry, connection, echo } = await serve();
  try {
    class ClientBox extends ClientTarget {
      read() {
        return "read in the client";
      }
      get value() {
        return "a getter in the client";
      }
    }
    assert.deepEqual(await echo("targets").useTarget(new ClientBox()), ["read in the client", "a getter in the client"]);
    assert.equal(await echo("targets").call((a, b) => a + b, 2, 3), 5);
  } finally {
    connection.close();
    await registry.close();
  }
});

test("a long-lived connection makes any number of one-round-trip calls: stubs the program dropped are released", async () => {
  // The host runs in another process, as a real one does: here the garbage collector sees
  // only the client's objects.
  const host = await startHost();
  const connection = connect(host.url);
  try {
    const ns = connection.namespace("Echo");
    // The client keeps the stub of each ns.getByName(x).hello() until it is collected; the
    // server used to end a session at 10,000 such entries (the README's own pattern).
    for (let i = 0; i < 15_000; i++) assert.equal(await ns.getByName(`n${i % 10}`).hello(i), `hi ${i}`);
    // A stub the program keeps goes on working.
    const kept = ns.getByName("kept");
    assert.equal(await kept.hello("again"), "hi again");
    for (let i = 0; i < 5_000; i++) await connection.namespace("Echo").getByName("n").hello(i);
    assert.equal(await kept.hello("still"), "hi still");
  } finally {
    connection.close();
    await host.close();
  }
});
