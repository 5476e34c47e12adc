// The RPC endpoint against hostile input (issue #8): no message, batch or argument may end
// the host (an unhandled rejection ends Node and Bun), and no client may make it hold
// unbounded memory. The host runs in a child process (fixtures/remote/rpc-host.mjs) so
// that a crash is seen as its exit; each test then checks that it still answers.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { connect } from "@redwoodjs/open-do/client";

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures", "remote");

/** The host in a child process of the runtime under test; `stderr()` is what it printed. */
async function startHost() {
  const proc = spawn(process.execPath, [path.join(fixtures, "rpc-host.mjs")], { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  proc.stderr.setEncoding("utf8");
  proc.stderr.on("data", (chunk) => (stderr += chunk));
  const exited = new Promise((resolve) => proc.on("exit", (code, signal) => resolve({ code, signal })));
  const lines = readline.createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
  const first = (await lines.next()).value;
  if (first === undefined) throw new Error(`the host did not start: ${stderr}`);
  const { url } = JSON.parse(first);
  return {
    url,
    pid: proc.pid,
    rpcUrl: `${url}/.open-do/rpc`,
    stderr: () => stderr,
    /** Fails unless the host is still running and answers a normal remote call. */
    async assertServing(why) {
      assert.equal(proc.exitCode, null, `${why}: the host exited; it printed:\n${stderr}`);
      const connection = connect(url);
      try {
        assert.equal(await connection.namespace("Echo").getByName("probe").hello("there"), "hi there", `${why}: the host answers`);
      } finally {
        connection.close();
      }
      assert.doesNotMatch(stderr, /unhandled|uncaught/i, `${why}: nothing escaped`);
    },
    async close() {
      if (proc.exitCode !== null) return; // a test already failed on its exit
      proc.stdin.end();
      const { code } = await exited;
      assert.equal(code, 0, `the host shut down cleanly; it printed:\n${stderr}`);
    },
  };
}

/** A Cap'n Web HTTP batch: one message a line. */
async function postBatch(url, messages, headers = {}) {
  const response = await fetch(url, { method: "POST", headers, body: messages.map((m) => JSON.stringify(m)).join("\n") });
  return { status: response.status, text: await response.text() };
}

/** The messages of `namespace("Echo").getByName(name).<method>(...args)`, pulled. */
function callMessages(name, method, args) {
  return [
    ["push", ["pipeline", 0, ["namespace"], ["Echo"]]],
    ["push", ["pipeline", 1, ["getByName"], [name]]],
    ["push", ["pipeline", 2, [method], args]],
    ["pull", 3],
  ];
}

test("a function passed where a string is used fails the call, not the host (remote client, HTTP batch, cross-origin text/plain)", async () => {
  const host = await startHost();
  try {
    const connection = connect(host.url);
    const echo = connection.namespace("Echo").getByName("a");
    // `hi ${x}` on a stub: its toString() and valueOf() are RPC calls, whose promises are
    // not primitives; the method throws, and the calls it started go nowhere.
    await assert.rejects(Promise.resolve(echo.hello(() => 1)), { name: "TypeError" });
    assert.equal(await echo.hello("x"), "hi x", "the session carries on");
    connection.close();
    await host.assertServing("after a remote call with a function for a string");

    // The same call as one HTTP batch, from a page of another origin: a "simple" request
    // (text/plain) that a browser sends without asking first.
    const batch = callMessages("b", "hello", [["export", -1]]);
    for (const headers of [{}, { origin: "http://attacker.example", "content-type": "text/plain;charset=UTF-8" }]) {
      await postBatch(host.rpcUrl, batch, headers);
      await host.assertServing(`after an HTTP batch (${JSON.stringify(headers)})`);
    }
  } finally {
    await host.close();
  }
});

/** Opens a plain WebSocket to the endpoint, sends `messages` (one a frame), and waits for its end or a reply to the last. */
async function sendRaw(rpcUrl, messages, { batched = false } = {}) {
  const ws = new WebSocket(rpcUrl.replace(/^http/, "ws") + (batched ? "?frames=batched" : ""));
  await new Promise((resolve, reject) => {
    ws.addEventListener("open", resolve);
    ws.addEventListener("error", () => reject(new Error("the RPC WebSocket did not open")));
  });
  const received = [];
  const closed = new Promise((resolve) => ws.addEventListener("close", (e) => resolve({ code: e.code, reason: e.reason })));
  ws.addEventListener("message", (e) => received.push(String(e.data)));
  if (batched) ws.send(messages.map((m) => (typeof m === "string" ? m : JSON.stringify(m))).join("\n"));
  else for (const m of messages) ws.send(typeof m === "string" ? m : JSON.stringify(m));
  // A round trip the session answers (a pull of a fresh push) tells that it read them all.
  const marker = ["push", ["pipeline", 0, ["namespace"], ["Echo"]]];
  ws.send(JSON.stringify(marker));
  const ending = await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 50, undefined))]);
  if (ending === undefined) ws.close();
  return { received, closed: ending };
}

// Cap'n Web itself (0.12.0) leaves promises without listeners on some paths that a peer
// controls; each of these ended the host with one message.
const CAPNWEB_HOLES = [
  // A promise the peer exports, inside arguments of a call that fails before delivery:
  // the import is dropped unpulled, and its pending pull is rejected with nobody waiting.
  ["push", ["pipeline", 0, ["nonexistent"], [["promise", 1]]]],
  ["push", ["pipeline", 0, ["namespace"], ["Echo", ["promise", 2]]]],
  // The same promise export inside an abort, or a reject of the main import.
  ["abort", ["promise", 3]],
  ["reject", 0, ["promise", 4]],
  // A resolution of the main import holding a call that fails.
  ["resolve", 0, ["pipeline", 0, ["namespace"], ["Nope"]]],
  ["resolve", 0, [["pipeline", 0, ["nonexistent"], []]]],
];

test("messages Cap'n Web mishandles end their session at most, over WebSocket and HTTP batch", async () => {
  const host = await startHost();
  try {
    for (const message of CAPNWEB_HOLES) {
      await sendRaw(host.rpcUrl, [message]);
      await host.assertServing(`after ${JSON.stringify(message)} over a WebSocket`);
      await postBatch(host.rpcUrl, [message]);
      await host.assertServing(`after ${JSON.stringify(message)} in an HTTP batch`);
    }
  } finally {
    await host.close();
  }
});

/** The host's peak resident memory (Linux), in bytes; undefined elsewhere. */
function peakRss(pid) {
  try {
    const kb = /VmHWM:\s*(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}

/**
 * POSTs `total` bytes of batch text in 1 MiB chunks (with a Content-Length when
 * `declared`), stopping once the server answers; resolves with the answer's status.
 */
function streamBody(rpcUrl, total, declared) {
  return new Promise((resolve, reject) => {
    const headers = declared ? { "content-length": String(total) } : {};
    const request = http.request(rpcUrl, { method: "POST", headers });
    let answered = false;
    request.on("response", (response) => {
      answered = true;
      let text = "";
      response.setEncoding("utf8");
      response.on("data", (chunk) => (text += chunk));
      response.on("end", () => resolve({ status: response.statusCode, text }));
      response.on("error", () => resolve({ status: response.statusCode, text }));
    });
    // A server that refuses a body may close the connection while it is still being sent.
    request.on("error", (error) => (answered ? undefined : reject(error)));
    const chunk = Buffer.alloc(1024 * 1024, 0x20); // spaces: a valid, if pointless, batch line
    let sent = 0;
    const pump = () => {
      while (!answered && sent < total) {
        const n = Math.min(chunk.length, total - sent);
        sent += n;
        if (!request.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void request.once("drain", pump);
      }
      if (!answered) request.end();
    };
    pump();
  });
}

test("an HTTP batch over 32 MiB is refused with 413: from its Content-Length, or once 32 MiB have been read", async () => {
  const host = await startHost();
  try {
    const MiB = 1024 * 1024;
    const before = peakRss(host.pid);
    const declared = await streamBody(host.rpcUrl, 32 * MiB + 1, true);
    assert.equal(declared.status, 413);
    assert.match(declared.text, /limited to 33554432 bytes \(32 MiB\)/);
    // Without a length the server reads up to the limit, then stops: it never holds the rest.
    const streamed = await streamBody(host.rpcUrl, 96 * MiB, false);
    assert.equal(streamed.status, 413);
    const after = peakRss(host.pid);
    if (before !== undefined && after !== undefined) {
      // Loosely: 32 MiB read and dropped, not 96 MiB buffered (and decoded) as before.
      assert.ok(after - before < 80 * MiB, `the host's peak memory grew by ${((after - before) / MiB).toFixed(0)} MiB`);
    }
    await host.assertServing("after oversized batches");
    // Just under the limit is still a batch (spaces and a call).
    const call = callMessages("size", "hello", ["under"]).map((m) => JSON.stringify(m)).join("\n");
    const under = await fetch(host.rpcUrl, { method: "POST", body: " ".repeat(32 * MiB - call.length - 1) + "\n" + call });
    assert.equal(under.status, 400, "a line of spaces is not a message: Cap'n Web refuses it, the size does not");
  } finally {
    await host.close();
  }
});

test("a WebSocket RPC message over 32 MiB is refused with 1009; the host carries on", async () => {
  const host = await startHost();
  try {
    const ws = new WebSocket(host.rpcUrl.replace(/^http/, "ws"));
    await new Promise((resolve) => ws.addEventListener("open", resolve));
    const closed = new Promise((resolve) => ws.addEventListener("close", (e) => resolve(e.code)));
    ws.send("x".repeat(32 * 1024 * 1024 + 1));
    assert.equal(await closed, 1009);
    await host.assertServing("after an oversized WebSocket message");
  } finally {
    await host.close();
  }
});

test("a session holding more than 10,000 unreleased calls is ended with an error its client sees", async () => {
  const host = await startHost();
  try {
    // Pushes never pulled nor released: each kept a call and its result (~1 KB) forever.
    const push = JSON.stringify(["push", ["pipeline", 0, ["namespace"], ["Echo"]]]);
    const frames = Array.from({ length: 11 }, () => Array(1000).fill(push).join("\n"));
    const ws = new WebSocket(host.rpcUrl.replace(/^http/, "ws") + "?frames=batched");
    await new Promise((resolve) => ws.addEventListener("open", resolve));
    const received = [];
    ws.addEventListener("message", (e) => received.push(...String(e.data).split("\n")));
    const closed = new Promise((resolve) => ws.addEventListener("close", (e) => resolve({ code: e.code, reason: e.reason })));
    for (const frame of frames) ws.send(frame);
    // Then one call, pulled: a session still open answers it.
    const answered = new Promise((resolve) => ws.addEventListener("message", (e) => String(e.data).includes('"resolve"') && resolve("answered")));
    ws.send([push, JSON.stringify(["pull", 11_001])].join("\n"));
    const ending = await Promise.race([closed, answered]);
    assert.notEqual(ending, "answered", "the session was still open after 11,000 pushes");
    const { code, reason } = ending;
    assert.equal(code, 3000, "Cap'n Web's abort");
    assert.match(reason, /^RPC session ended: it held more than 10000 calls/);
    const abort = received.map((m) => JSON.parse(m)).find((m) => m[0] === "abort");
    assert.match(abort?.[1]?.[2] ?? "", /A client must pull \(await\) and release \(dispose\) what it pushes\./);
    await host.assertServing("after a flood of pushes");

    const batch = await fetch(host.rpcUrl, { method: "POST", body: Array(10_100).fill(push).join("\n") });
    assert.equal(batch.status, 400);
    assert.match(await batch.text(), /^Bad RPC batch: RPC session ended: it held more than 10000 calls/);
    await host.assertServing("after a batch of 10,100 pushes");
  } finally {
    await host.close();
  }
});

test("an HTTP batch that needs its client to answer (a callback, an unresolved promise) fails those calls instead of waiting forever", async () => {
  const host = await startHost();
  try {
    // Bounded, so that the old code (which waited forever) fails rather than hangs.
    const post = (messages) => fetch(host.rpcUrl, { method: "POST", body: messages.map((m) => JSON.stringify(m)).join("\n"), signal: AbortSignal.timeout(30_000) });
    for (const args of [[["export", -1], 1], [["promise", -1]]]) {
      const method = args.length === 2 ? "call" : "echo";
      const response = await post(callMessages("batch", method, args));
      assert.equal(response.status, 200);
      const messages = (await response.text()).split("\n").map((m) => JSON.parse(m));
      const rejected = messages.find((m) => m[0] === "reject" && m[1] === 3);
      assert.match(rejected?.[2]?.[2] ?? "", /An HTTP batch client cannot answer the server/, JSON.stringify(messages));
    }
    await host.assertServing("after batches that needed answers");
  } finally {
    await host.close();
  }
});
