// RPC on Durable Object stubs, with Cloudflare's rules (§2.15): what is callable, what
// crosses the boundary and how, pipelining, errors and disposal.
import assert from "node:assert/strict";
import { test } from "node:test";
import { DurableObject, Registry, RpcStub, RpcTarget, runInDurableObject } from "../index.js";

const dispose = Symbol.dispose ?? Symbol.for("nodejs.dispose");
const DISPOSED = { name: "Error", message: "RPC stub used after being disposed." };
const notImplemented = (name) => ({ name: "TypeError", message: `The RPC receiver does not implement the method "${name}".` });

class Counter extends RpcTarget {
  constructor(start) {
    super();
    this.value = start;
    this.disposed = false;
  }
  increment(by) {
    return (this.value += by);
  }
  [dispose]() {
    this.disposed = true;
  }
}

class NotATarget {
  method() {
    return 1;
  }
}

class Service extends DurableObject {
  count = 0;
  instanceArrow = () => "nope";

  constructor(ctx, env) {
    super(ctx, env);
    this.instanceObject = { func: (a) => a * 5 };
  }
  add(amount) {
    return (this.count += amount);
  }
  async echo(value) {
    return value;
  }
  repeat(text, times) {
    return text.repeat(times);
  }
  mutateAndReturn(object) {
    object.touched = true;
    return object;
  }
  makeCounter(start) {
    return new Counter(start);
  }
  getAnObject(i) {
    return { foo: 123 + i, counter: new Counter(i), nested: { deep: (a, b) => a / b } };
  }
  get objectProperty() {
    return { text: "hello", func: (a, b) => a * b, counter: new Counter(5), other: new NotATarget() };
  }
  get nonFunctionProperty() {
    return { foo: 123 };
  }
  get slowProperty() {
    return new Promise((resolve) => setTimeout(() => resolve(42), 5));
  }
  returnNumber() {
    return 7;
  }
  async callBack(callback, a, b) {
    return await callback(a, b);
  }
  async incrementGiven(counter, by) {
    return await counter.increment(by);
  }
  async keepOriginalAndDup(counter) {
    const first = await counter.increment(5);
    const kept = counter.dup();
    return {
      first,
      incrementOriginal: (n) => counter.increment(n),
      incrementKept: (n) => kept.increment(n),
    };
  }
  throwing(kind) {
    if (kind === "range") throw new RangeError("out of range");
    throw new Error("method threw");
  }
  returnsNonRpcClass() {
    return { obj: new NotATarget() };
  }
  returnsNullPrototype() {
    const object = Object.create(null);
    object.foo = 123;
    return object;
  }
  returnsSymbol() {
    return Symbol("s");
  }
  alarm() {
    return "the alarm handler";
  }
}

async function withService(fn) {
  const registry = new Registry({ dataDir: ":memory:" });
  try {
    return await fn(await registry.get("svc", Service), registry);
  } finally {
    await registry.close();
  }
}

test("methods on the class are callable; arguments and results are copies", async () => {
  await withService(async (stub) => {
    assert.equal(await stub.add(5), 5);
    assert.equal(await stub.add(2), 7);
    const input = { when: new Date(0), tags: new Set(["a"]), map: new Map([[1, { deep: [1, , 3] }]]), big: 10n, bytes: new Uint8Array([1, 2]) };
    const output = await stub.echo(input);
    assert.deepEqual(output, input);
    assert.notEqual(output, input);
    const sent = { a: 1 };
    const back = await stub.mutateAndReturn(sent);
    assert.deepEqual([sent, back], [{ a: 1 }, { a: 1, touched: true }]);
    const cyclic = { name: "loop" };
    cyclic.self = cyclic;
    const echoed = await stub.echo(cyclic);
    assert.equal(echoed.self, echoed);
  });
});

test("calls through one stub run in call order", async () => {
  await withService(async (stub) => {
    await stub.add(9);
    assert.deepEqual(await Promise.all([stub.add(6), stub.add(4), stub.add(3)]), [15, 19, 22]);
  });
});

test("a stub answers every name but then; unknown names fail on the call", async () => {
  await withService(async (stub) => {
    assert.equal(stub.then, undefined);
    assert.equal(typeof stub.anything, "function");
    await assert.rejects(stub.anything(), notImplemented("anything"));
  });
});

test("instance fields, Object's methods, env and ctx are not callable; reserved names are refused", async () => {
  await withService(async (stub) => {
    await assert.rejects(stub.instanceArrow(), notImplemented("instanceArrow"));
    await assert.rejects(stub.instanceObject.func(3), notImplemented("instanceObject"));
    await assert.rejects(stub.count, notImplemented("count"));
    for (const name of ["toString", "hasOwnProperty", "ctx", "env", "storage", "state"]) {
      await assert.rejects(stub[name](), notImplemented(name));
    }
    for (const name of ["alarm", "constructor", "webSocketMessage", "webSocketClose", "webSocketError", "connect"]) {
      await assert.rejects(stub[name](), { name: "TypeError", message: `'${name}' is a reserved method and cannot be called over RPC.` });
    }
  });
});

test("getters are read by awaiting the property; their members can be called", async () => {
  await withService(async (stub) => {
    assert.deepEqual(await stub.nonFunctionProperty, { foo: 123 });
    assert.equal(await stub.slowProperty, 42);
    assert.equal(await stub.objectProperty.text, "hello");
    assert.equal(await stub.objectProperty.func(6, 4), 24);
    assert.equal(await stub.objectProperty.counter.increment(3), 8);
    await assert.rejects(stub.nonFunctionProperty(), { name: "TypeError", message: '"nonFunctionProperty" is not a function.' });
    await assert.rejects(stub.objectProperty.other.method(), notImplemented("other"));
    await assert.rejects(stub.objectProperty.missing.x, notImplemented("missing"));
  });
});

test("errors thrown by a method keep their class and message and are marked remote", async () => {
  await withService(async (stub) => {
    await assert.rejects(stub.throwing(), (e) => e.constructor === Error && e.message === "method threw" && e.remote === true);
    await assert.rejects(stub.throwing("range"), (e) => e instanceof RangeError && e.message === "out of range" && e.remote === true);
  });
});

test("values that cannot cross fail with DataCloneError", async () => {
  await withService(async (stub) => {
    const error = (type) => ({ name: "DataCloneError", message: `Could not serialize object of type "${type}". This type does not support serialization.` });
    await assert.rejects(stub.returnsNonRpcClass(), error("NotATarget"));
    await assert.rejects(stub.returnsNullPrototype(), error("Object"));
    await assert.rejects(stub.echo(new NotATarget()), error("NotATarget"));
    await assert.rejects(stub.echo({ nested: stub.add(1) }), error("JsRpcPromise"));
    await assert.rejects(stub.returnsSymbol(), { name: "DataCloneError" });
  });
});

test("arguments and results over 32 MiB serialized fail as workerd fails them; just under passes", async () => {
  const tooBig = /^Serialized RPC arguments or return values are limited to 32MiB, but the size of this value was: \d+ bytes\.$/;
  const MiB = 1024 * 1024;
  await withService(async (stub) => {
    await assert.rejects(stub.echo(new Uint8Array(33 * MiB)), { name: "Error", message: tooBig });
    await assert.rejects(stub.echo(["x".repeat(17 * MiB), "y".repeat(17 * MiB)]), { message: tooBig });
    // A character outside Latin-1 makes V8 write a string two bytes a character.
    await assert.rejects(stub.echo({ text: "\u{1F600}".repeat(9 * MiB) }), { message: tooBig });
    await assert.rejects(stub.repeat("é", 33 * MiB), { message: tooBig }, "a result that is a bare string");
    const under = new Uint8Array(31 * MiB);
    under[under.length - 1] = 7;
    assert.equal((await stub.echo(under)).at(-1), 7);
    assert.equal((await stub.repeat("é", 31 * MiB)).length, 31 * MiB, "é is Latin-1: one byte each");
    assert.equal(await stub.add(1), 1, "the object still serves calls");
  });
});

test("functions and RpcTargets cross by reference and call back", async () => {
  await withService(async (stub) => {
    assert.equal(await stub.callBack((a, b) => a - b, 10, 4), 6);
    const counter = new Counter(3);
    assert.equal(await stub.incrementGiven(counter, 5), 8);
    assert.equal(counter.value, 8, "the call ran on the caller's own object");
    const remote = await stub.makeCounter(17);
    assert.equal(await remote.increment(2), 19);
    assert.deepEqual(await Promise.all([remote.increment(6), remote.increment(4)]), [25, 29]);
  });
});

test("promise pipelining: calls and properties on a result that has not arrived yet", async () => {
  await withService(async (stub) => {
    assert.equal(await stub.makeCounter(12).increment(3), 15);
    assert.equal(await stub.getAnObject(5).foo, 128);
    assert.equal(await stub.getAnObject(5).counter.increment(7), 12);
    assert.equal(await stub.getAnObject(5).nested.deep(6, 3), 2);
    await assert.rejects(stub.returnNumber().foo, { name: "TypeError", message: "Can't pipeline on RPC that did not return an object." });
    await assert.rejects(stub.throwing().foo(), { message: "method threw" });
  });
});

test("disposal: a disposed stub refuses calls; a returned object disposes the stubs inside it", async () => {
  await withService(async (stub) => {
    const counter = await stub.makeCounter(12);
    assert.equal(await counter.increment(3), 15);
    counter[dispose]();
    await assert.rejects(counter.increment(2), DISPOSED);

    const object = await stub.getAnObject(5);
    assert.equal(await object.counter.increment(7), 12);
    object[dispose]();
    await assert.rejects(object.counter.increment(2), DISPOSED);
  });
});

test("stubs received as arguments last for the call unless dup()ed; the target learns when the last goes", async () => {
  await withService(async (stub) => {
    const counter = new Counter(3);
    assert.equal(await stub.incrementGiven(counter, 5), 8);
    assert.equal(counter.disposed, true, "the receiver's stub was disposed when the call returned");

    const tracked = new Counter(3);
    const result = await stub.keepOriginalAndDup(tracked);
    assert.equal(result.first, 8);
    await assert.rejects(result.incrementOriginal(1), DISPOSED);
    assert.equal(await result.incrementKept(7), 15);
    assert.equal(tracked.disposed, false, "the dup still refers to it");
  });
});

test("new RpcStub(target) wraps a local target; dup() shares it; the last dispose reaches the target", async () => {
  const counter = new Counter(4);
  const stub = new RpcStub(counter);
  assert.equal(await stub.increment(5), 9);
  const copy = stub.dup();
  stub[dispose]();
  await assert.rejects(stub.increment(1), DISPOSED);
  assert.equal(counter.disposed, false);
  assert.equal(await copy.increment(1), 10);
  copy[dispose]();
  assert.equal(counter.disposed, true);
  await withService(async (service) => {
    const passed = new RpcStub(new Counter(1));
    assert.equal(await service.incrementGiven(passed, 1), 2);
    assert.equal(await passed.increment(1), 3, "the caller's stub survives passing it (params are duplicated)");
  });
});

test("RPC on a class that does not extend DurableObject fails with Cloudflare's message; fetch still works", async () => {
  class Legacy {
    async fetch() {
      return new Response("legacy");
    }
    foo() {
      return 123;
    }
  }
  const registry = new Registry({ dataDir: ":memory:" });
  const stub = await registry.get("l", Legacy);
  assert.equal(await (await stub.fetch("http://do/")).text(), "legacy");
  await assert.rejects(stub.foo(), {
    name: "TypeError",
    message:
      "The receiving Durable Object does not support RPC, because its class was not declared with `extends DurableObject`. " +
      'In order to enable RPC, make sure your class extends the special class `DurableObject`, which can be imported from the module "cloudflare:workers".',
  });
  await registry.close();
});

test("an RPC result waits for the writes before it; a call sees the object's earlier writes", async () => {
  class Writer extends DurableObject {
    write(v) {
      this.ctx.storage.kv.put("v", v);
      return "written";
    }
    read() {
      return this.ctx.storage.kv.get("v");
    }
  }
  const registry = new Registry({ dataDir: ":memory:" });
  const stub = await registry.get("w", Writer);
  assert.equal(await stub.write(1), "written");
  assert.equal(await stub.read(), 1);
  assert.equal(await runInDurableObject(stub, (_, ctx) => ctx.storage.kv.get("v")), 1);
  await registry.close();
});

test("Request, Response and streams cross to the receiver as they are", async () => {
  class Bodies extends DurableObject {
    async readRequest(request) {
      return `${request.method} ${new URL(request.url).pathname} ${await request.text()}`;
    }
    makeResponse(text) {
      return new Response(text, { status: 201, headers: { "x-made-by": "object" } });
    }
    async readStream(stream) {
      return await new Response(stream).text();
    }
  }
  const registry = new Registry({ dataDir: ":memory:" });
  const stub = await registry.get("b", Bodies);
  assert.equal(await stub.readRequest(new Request("http://do/path", { method: "POST", body: "payload" })), "POST /path payload");
  const response = await stub.makeResponse("made");
  assert.equal(response.status, 201);
  assert.equal(response.headers.get("x-made-by"), "object");
  assert.equal(await response.text(), "made");
  const stream = new ReadableStream({
    start(controller) {
      controller.enqueue(new TextEncoder().encode("streamed "));
      controller.enqueue(new TextEncoder().encode("bytes"));
      controller.close();
    },
  });
  assert.equal(await stub.readStream(stream), "streamed bytes");
  await registry.close();
});

/** Runs `fn`, then reports the unhandled rejections seen while it ran and for a turn after. */
async function unhandledRejectionsOf(fn) {
  const seen = [];
  const listener = (reason) => seen.push(reason);
  process.on("unhandledRejection", listener);
  try {
    await fn();
    for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
  } finally {
    process.off("unhandledRejection", listener);
  }
  return seen.map((e) => e?.message ?? String(e));
}

test("RPC calls nobody awaits never reject unhandled: a stub used as a string fails only its caller", async () => {
  const seen = await unhandledRejectionsOf(() =>
    withService(async (stub) => {
      // `${x}` asks the stub for toString() and valueOf(): RPC calls (an RPC property answers
      // every name) whose results are promises, so the conversion throws in the object.
      await assert.rejects(stub.repeat(() => 1, 1), { name: "TypeError" });
      const counter = await stub.makeCounter(1);
      counter.missing(); // a call that fails, never awaited
      stub.throwing(); // likewise, on the object itself
      stub.throwing().foo(); // and pipelined on it
      // A target whose async disposer fails, disposed when the call that took it returns.
      const target = new (class extends RpcTarget {
        increment(by) {
          return by;
        }
        async [dispose]() {
          throw new Error("the disposer failed");
        }
      })();
      assert.equal(await stub.incrementGiven(target, 2), 2);
      assert.equal(await stub.add(1), 1, "the object still serves calls");
    }),
  );
  assert.deepEqual(seen, []);
});

test("a Node Buffer crosses as a Uint8Array, as structured clone copies it", async () => {
  await withService(async (stub) => {
    const copy = await stub.echo(Buffer.from("hi"));
    assert.equal(Object.getPrototypeOf(copy), Uint8Array.prototype);
    assert.deepEqual([...copy], [104, 105]);
  });
});
