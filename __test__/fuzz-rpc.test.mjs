// Fuzzes the RPC endpoint with Cap'n Web messages (issue #8): random and mutated valid
// messages — push/pull/resolve/reject/release/abort/stream/pipe/remap, import and export
// ids (huge, negative, fractional), property paths, special values (bigint, date, bytes,
// error, undefined, export, import, promise, pipeline, request, ...), deep nesting — sent to
// a registry.listen() host in a child process (fixtures/remote/rpc-host.mjs: methods that
// take callbacks, RpcTargets and values) over WebSocket, in both framings, and as HTTP
// batches. After each case the host must still answer a normal call, must not have exited,
// and must not have printed an unhandled or uncaught error. Inside `npm test` it runs a
// bounded number of cases from a fixed seed; `npm run fuzz` runs 100 times more.
import assert from "node:assert/strict";
import { test } from "node:test";
import { connect } from "@redwoodjs/open-do/client";
import { describeSeed, fuzzCases, fuzzRandom } from "./helpers/fuzz.mjs";
import { startHost } from "./helpers/rpc-host.mjs";

const NAMES = [
  "hello", "echo", "call", "useTarget", "box", "boxes", "readAll", "increment", "greeting", "nested", "fail", "own",
  "inner", "deep", "list", "value", "read", "note", "missing",
  "then", "constructor", "__proto__", "toString", "valueOf", "toJSON", "fetch", "alarm", "dup", "namespace", "getByName", "get", "idFromName", "className",
];
const ERROR_TYPES = ["Error", "TypeError", "RangeError", "AggregateError", "Nope", "__proto__"];
const BYTE_MARKERS = ["Uint8Array", "Int16Array", "Float64Array", "BigInt64Array", "DataView", "ArrayBuffer", "Nope"];

function generator(random) {
  /** Mostly ids that exist in the session, else ones that do not or cannot. */
  const id = (known) => {
    const k = random.int(10);
    if (k < 6) return random.int(known + 1);
    if (k < 7) return -1 - random.int(4);
    return random.pick([2 ** 53, -(2 ** 53), 1e308, -1e308, 0.5, -1.5, -0, 2 ** 31, 4294967295, 1e21]);
  };
  const name = () => (random.chance(0.85) ? random.pick(NAMES) : random.chance(0.5) ? random.int(5) : random.string(random.int(6)).replaceAll("\n", " "));
  const path = () => {
    if (random.chance(0.05)) return random.pick([null, "x", [{}], [[1]], [true]]);
    return Array.from({ length: random.int(4) }, name);
  };
  const string = () => random.string(random.int(12)).replaceAll("\n", " ");

  function value(known, depth = 0) {
    if (depth > 4 || random.chance(0.3)) {
      return random.pick([
        () => random.int(1000) - 500,
        () => random.next() * 1e6,
        () => string(),
        () => random.chance(0.5),
        () => null,
      ])();
    }
    const inner = () => value(known, depth + 1);
    const k = random.int(24);
    switch (k) {
      case 0:
        return [Array.from({ length: random.int(4) }, inner)]; // an escaped array literal
      case 1: {
        const object = {};
        for (let i = random.int(4); i > 0; i--) object[random.chance(0.2) ? random.pick(["__proto__", "toJSON", "constructor", "then"]) : string()] = inner();
        return object;
      }
      case 2:
        return ["bigint", random.pick(["0", "-12345678901234567890", "1".repeat(16385), "12x", 7, "0x1f"])];
      case 3:
        return ["date", random.pick([0, -1, 8.64e15, 8.64e15 + 1, null, "now", 1.5])];
      case 4:
        return ["bytes", random.pick(["AAEC", "", "!!notbase64", "AAECAwQFBgc=", 42]), ...(random.chance(0.5) ? [random.pick(BYTE_MARKERS)] : [])];
      case 5:
        return ["error", random.pick(ERROR_TYPES), string(), ...(random.chance(0.5) ? [string()] : []), ...(random.chance(0.4) ? [{ cause: inner(), __proto__x: inner(), remote: inner() }] : [])];
      case 6:
        return random.pick([["undefined"], ["inf"], ["-inf"], ["nan"], ["undefined", 1]]);
      case 7:
        return ["export", id(known)];
      case 8:
        return ["promise", id(known)];
      case 9:
        return ["import", id(known), ...(random.chance(0.6) ? [path()] : []), ...(random.chance(0.3) ? [args(known, depth + 1)] : [])];
      case 10:
        return ["pipeline", id(known), ...(random.chance(0.7) ? [path()] : []), ...(random.chance(0.5) ? [args(known, depth + 1)] : [])];
      case 11:
        return ["url", random.pick(["https://example.com/", "not a url", 5])];
      case 12:
        return ["headers", random.pick([[["a", "b"]], [["bad header", "x"]], "x", [[1]]])];
      case 13:
        return ["request", random.pick(["https://example.com/", "nope"]), random.pick([{}, { method: "POST", body: inner() }, { headers: {} }, null, { signal: inner() }])];
      case 14:
        return ["response", random.pick([null, "body", inner()]), random.pick([{}, { status: 999 }, { webSocket: 1 }, null])];
      case 15:
        return ["blob", "text/plain", inner()];
      case 16:
        return [random.pick(["readable", "writable"]), id(known)];
      case 17:
        return ["remap", id(known), path(), random.pick([[], [["import", id(known)]], [["export", id(known)]], [["bogus", 1]]]), random.pick([[], [inner()], [["pipeline", 0, []]], [["pipeline", -1, ["x"]]]])];
      case 18:
        return [random.pick(["bogus", "", "push", "__proto__"]), inner()];
      case 19: {
        // Deep nesting: at and past Cap'n Web's depth limit (256), and far past it.
        const levels = random.pick([127, 129, 255, 257, 1000]);
        let nested = random.chance(0.5) ? 1 : {};
        for (let i = 0; i < levels; i++) nested = random.chance(0.5) ? [[nested]] : { a: nested };
        return nested;
      }
      default:
        return inner();
    }
  }

  function args(known, depth = 0) {
    if (random.chance(0.05)) return random.pick([null, "x", {}]);
    return Array.from({ length: random.int(4) }, () => value(known, depth));
  }

  /** One message; `known` is how many exports the session may have. */
  function message(known) {
    const k = random.int(20);
    if (k < 8) return ["push", ["pipeline", id(known), path(), ...(random.chance(0.7) ? [args(known)] : [])]];
    if (k < 9) return ["push", value(known)];
    if (k < 11) return ["pull", id(known)];
    if (k < 12) return [random.pick(["resolve", "reject"]), id(known) - random.int(3), value(known)];
    if (k < 14) return ["release", id(known), random.pick([1, 1, 2, 0, -1, 1e9, 0.5])];
    if (k < 15) return ["abort", value(known)];
    if (k < 16) return ["stream", ["pipeline", id(known), random.pick([["write"], ["close"], ["abort"], path()]), args(known)]];
    if (k < 17) return ["pipe"];
    if (k < 18) return ["remap", id(known), path(), [], []];
    if (k < 19) return random.pick([["push"], ["pull"], ["release", 1], ["resolve", 1], [], {}, "push", 7, null]);
    return random.pick(["not json", "[", '{"a":', "\u0000", string() || "x"]); // raw text, not JSON
  }

  /** Replaces one node of a valid message's JSON tree with something else. */
  function mutate(msg, known) {
    const copy = structuredClone(msg);
    const nodes = [];
    const walk = (node, parent, key) => {
      nodes.push([parent, key]);
      if (Array.isArray(node)) node.forEach((child, i) => walk(child, node, i));
      else if (node !== null && typeof node === "object") for (const k of Object.keys(node)) walk(node[k], node, k);
    };
    walk(copy, null, null);
    const [parent, key] = random.pick(nodes.slice(1));
    if (parent === undefined) return copy;
    const k = random.int(4);
    if (k === 0) parent[key] = value(known);
    else if (k === 1) parent[key] = id(known);
    else if (k === 2 && Array.isArray(parent)) parent.splice(key, 1);
    else if (Array.isArray(parent)) parent.splice(key, 0, structuredClone(parent[key]));
    else parent[key] = string();
    return copy;
  }

  /** A valid conversation, to mutate: the calls a client makes, by id. */
  function valid(known) {
    const target = 2; // namespace("Echo").getByName(...) in the prologue
    return random.pick([
      ["push", ["pipeline", target, ["hello"], [string()]]],
      ["push", ["pipeline", target, ["echo"], [value(known)]]],
      ["push", ["pipeline", target, ["call"], [["export", -1 - random.int(3)], value(known)]]],
      ["push", ["pipeline", target, ["useTarget"], [["export", -1 - random.int(3)]]]],
      ["push", ["pipeline", target, ["box"], [value(known)]]],
      ["push", ["pipeline", target, ["boxes"], [random.int(5)]]],
      ["push", ["pipeline", target, ["nested", "box", "value"]]],
      ["push", ["pipeline", target, ["greeting"]]],
      ["push", ["pipeline", known, ["value"]]],
      ["push", ["pipeline", known, ["read"], []]],
      ["push", ["pipeline", target, ["fail"], [string()]]],
      // map() over a result (a list of RpcTargets), with and without a capture.
      ["push", ["remap", known, ["list"], [], [["pipeline", 0, ["read"], []]]]],
      ["push", ["remap", known, [], [["import", target]], [["pipeline", -1, ["hello"], [["pipeline", 0, ["value"]]]]]]],
      // A stream the client writes (a pipe, export `known`), read by the object.
      ["pipe"],
      ["stream", ["pipeline", known, ["write"], [["bytes", "aGVsbG8="]]]],
      ["push", ["pipeline", known, ["close"], []]],
      ["push", ["pipeline", target, ["readAll"], [["readable", known]]]],
      ["pull", known],
      ["release", known, 1],
      ["resolve", -1, value(known)],
      ["reject", -1, ["error", "Error", string()]],
    ]);
  }

  /** An answer to the host's pull of `id` (a call it made on the client's stubs, or a promise the client passed). */
  function answer(id, known) {
    return random.chance(0.6) ? ["resolve", id, value(known)] : ["reject", id, random.chance(0.8) ? ["error", random.pick(ERROR_TYPES), string()] : value(known)];
  }

  /** One case: usually the prologue a client sends, then valid, mutated and random messages. */
  batch.answer = answer;
  return batch;

  function batch() {
    const messages = [];
    let pushes = 0;
    const add = (msg) => {
      messages.push(msg);
      if (Array.isArray(msg) && ((msg[0] === "push" && msg.length > 1) || (msg[0] === "stream" && msg.length > 1) || msg[0] === "pipe")) pushes++;
    };
    if (random.chance(0.8)) {
      add(["push", ["pipeline", 0, ["namespace"], ["Echo"]]]);
      add(["push", ["pipeline", 1, ["getByName"], [random.chance(0.5) ? "fuzz" : string()]]]);
    }
    for (let n = 1 + random.int(8); n > 0; n--) {
      const k = random.int(10);
      if (k < 4) add(valid(pushes));
      else if (k < 7) add(mutate(valid(pushes), pushes));
      else add(message(pushes));
    }
    return { messages, pushes };
  }
}

const text = (message) => (typeof message === "string" ? message : JSON.stringify(message));

/**
 * Sends one case over a WebSocket, then a call of its own, and waits until the session
 * answers that call (so every message was read) or ends.
 */
async function overWebSocket(rpcUrl, { messages, pushes }, batched, answer) {
  const ws = new WebSocket(rpcUrl.replace(/^http/, "ws") + (batched ? "?frames=batched" : ""));
  await new Promise((resolve, reject) => {
    ws.addEventListener("open", resolve);
    ws.addEventListener("error", () => reject(new Error("the RPC WebSocket did not open: is the host down?")));
  });
  const marker = pushes + 1;
  const done = new Promise((resolve) => {
    ws.addEventListener("close", () => resolve("closed"));
    ws.addEventListener("message", (e) => {
      for (const line of String(e.data).split("\n")) {
        if (line.startsWith(`["resolve",${marker},`) || line.startsWith(`["reject",${marker},`)) resolve("answered");
        // The host calling the client back: answer its pulls, with anything.
        const pull = /^\["pull",(-?\d+)\]$/.exec(line);
        if (pull !== null && ws.readyState === WebSocket.OPEN) ws.send(text(answer(Number(pull[1]), pushes)));
      }
    });
  });
  const all = [...messages.map(text), text(["push", ["pipeline", 0, ["namespace"], ["Echo"]]]), text(["pull", marker])];
  if (batched) ws.send(all.map((m) => m.replaceAll("\n", " ")).join("\n"));
  else for (const m of all) ws.send(m);
  let timer;
  const outcome = await Promise.race([done, new Promise((resolve) => (timer = setTimeout(resolve, 30_000, "no answer")))]);
  clearTimeout(timer);
  ws.close();
  return outcome;
}

async function overHttp(rpcUrl, { messages }) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(new Error("the batch got no answer")), 30_000);
  try {
    const response = await fetch(rpcUrl, { method: "POST", body: messages.map(text).join("\n"), signal: abort.signal });
    await response.text();
    return response.status;
  } finally {
    clearTimeout(timer);
  }
}

test(`fuzz: random and mutated Cap'n Web messages never end, freeze or hurt the host (${describeSeed()})`, async () => {
  const random = fuzzRandom("rpc");
  const batch = generator(random);
  // Answers depend on when the host asks: their own stream, so that cases stay the same.
  const { answer } = generator(fuzzRandom("rpc-answers"));
  const host = await startHost();
  const connection = connect(host.url);
  const probe = connection.namespace("Echo").getByName("probe");
  try {
    const cases = fuzzCases(400);
    for (let i = 0; i < cases; i++) {
      const sample = batch();
      const transport = random.pick(["websocket", "websocket-batched", "http"]);
      const what = () => `case ${i} (${describeSeed()}) over ${transport}:\n${sample.messages.map(text).join("\n").slice(0, 4000)}\nhost stderr:\n${host.stderr()}`;
      try {
        if (transport === "http") {
          const status = await overHttp(host.rpcUrl, sample);
          assert.ok([200, 400, 413].includes(status), `HTTP ${status}`);
        } else {
          const outcome = await overWebSocket(host.rpcUrl, sample, transport === "websocket-batched", answer);
          assert.notEqual(outcome, "no answer", "the session neither answered nor ended");
        }
        assert.equal(await probe.hello(i), `hi ${i}`);
        assert.doesNotMatch(host.stderr(), /unhandled|uncaught/i);
      } catch (error) {
        assert.fail(`${what()}\n${error?.stack ?? error}`);
      }
    }
    connection.close();
    // Nothing the cases left behind may hold the host: it shuts down cleanly.
    const timer = setTimeout(() => process.kill(host.pid), 30_000);
    const { code } = await host.close();
    clearTimeout(timer);
    assert.equal(code, 0, `the host shut down after the cases (${describeSeed()}); it printed:\n${host.stderr()}`);
  } finally {
    connection.close();
    await host.close();
  }
});
