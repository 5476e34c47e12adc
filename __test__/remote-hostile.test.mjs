// The RPC endpoint against hostile input (issue #8): no message, batch or argument may end
// the host (an unhandled rejection ends Node and Bun), and no client may make it hold
// unbounded memory. The host runs in a child process (fixtures/remote/rpc-host.mjs) so
// that a crash is seen as its exit; each test then checks that it still answers.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
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
