// The host of the hostile-input tests (remote-hostile, fuzz-rpc) in a child process of the
// runtime under test: fixtures/remote/rpc-host.mjs behind registry.listen(). A crash (an
// unhandled rejection ends Node and Bun) is seen as its exit.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { connect } from "@redwoodjs/open-do/client";

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "fixtures", "remote");

/** The host in a child process of the runtime under test; `stderr()` is what it printed. */
export async function startHost() {
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
    /** Fails unless the host is still running and answers a normal remote call (to object `name`: it runs after what that object had queued). */
    async assertServing(why, name = "probe") {
      assert.equal(proc.exitCode, null, `${why}: the host exited; it printed:\n${stderr}`);
      const connection = connect(url);
      try {
        const answer = await Promise.resolve(connection.namespace("Echo").getByName(name).hello("there")).catch((error) => error);
        assert.equal(answer, "hi there", `${why}: the host answers; it printed:\n${stderr}`);
      } finally {
        connection.close();
      }
      assert.doesNotMatch(stderr, /unhandled|uncaught/i, `${why}: nothing escaped`);
    },
    /** Ends the host (stdin's end closes it) and waits for its exit. Never throws: a test's own failure comes first. */
    async close() {
      if (proc.exitCode === null) proc.stdin.end();
      return exited;
    },
  };
}

/** A Cap'n Web HTTP batch: one message a line (a string is sent as it is). */
export async function postBatch(url, messages, headers = {}) {
  const response = await fetch(url, { method: "POST", headers, body: messages.map((m) => (typeof m === "string" ? m : JSON.stringify(m))).join("\n") });
  return { status: response.status, text: await response.text() };
}

/** The messages of `namespace("Echo").getByName(name).<method>(...args)`, pulled. */
export function callMessages(name, method, args) {
  return [
    ["push", ["pipeline", 0, ["namespace"], ["Echo"]]],
    ["push", ["pipeline", 1, ["getByName"], [name]]],
    ["push", ["pipeline", 2, [method], args]],
    ["pull", 3],
  ];
}

