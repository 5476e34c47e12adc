// One data folder, one owner (#8): a namespace's folder is served by one process at a time,
// SQLite's own locks stay held while an object is open, and a file another program holds
// fails at once with a clear error instead of freezing the JavaScript thread.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import { DurableObject, Registry } from "../index.js";
import { tempDir } from "./helpers/objects.mjs";

const fixture = (name) => path.join(import.meta.dirname, "fixtures", name);
/** node:sqlite plays "another program": Node 24 has it on every runtime this suite runs on. */
const NODE24 = path.join(import.meta.dirname, "..", "node_modules", "node24", "bin", "node");

class Counter extends DurableObject {
  async increment() {
    const value = ((await this.ctx.storage.get("n")) ?? 0) + 1;
    await this.ctx.storage.put("n", value);
    return value;
  }
  read() {
    return this.ctx.storage.get("n");
  }
}

/** Starts fixtures/folder-holder.mjs on `dataDir` and waits until it has written. */
async function startHolder(dataDir) {
  const child = spawn(process.execPath, [fixture("folder-holder.mjs"), dataDir], { stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve(signal ?? code)));
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const ready = new Promise((resolve) => child.stdout.on("data", (d) => String(d).includes("ready") && resolve("ready")));
  const first = await Promise.race([ready, exited.then((how) => `exited (${how}): ${stderr}`)]);
  assert.equal(first, "ready", `the holder ${first}`);
  return { child, exited };
}

/** Runs `script` in Node 24 with `file` as argv[2]; resolves with what it printed. */
function runNode24(script, file) {
  const child = spawn(NODE24, ["--no-warnings", "-e", script, file], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  return new Promise((resolve) => child.on("exit", () => resolve(out.trim())));
}

test("a second process on the same data folder fails at once, naming the folder and the process that holds it", { timeout: 60_000 }, async () => {
  const dataDir = tempDir();
  const { child, exited } = await startHolder(dataDir);
  const registry = new Registry({ dataDir });
  try {
    const folder = path.join(dataDir, "Counter");
    let error;
    try {
      await registry.get("x", Counter);
    } catch (e) {
      error = e;
    }
    assert.ok(error, "a second process could serve the folder");
    assert.ok(error.message.includes(folder), error.message);
    assert.ok(error.message.includes(`pid ${child.pid}`), error.message);
    assert.equal(error.message.includes("\n"), false, "one line");
    // The kernel releases the lock when the holder dies, however it dies.
    child.kill("SIGKILL");
    await exited;
    const stub = await registry.get("x", Counter);
    assert.equal(await stub.increment(), 2);
  } finally {
    child.kill("SIGKILL");
    await registry.close();
  }
});

test("while a process serves an object, SQLite's lock on its file holds (no descriptor of ours drops it)", { timeout: 60_000 }, async () => {
  // The holder created the file at full durability: fsyncing it through a second
  // descriptor and closing that dropped every POSIX lock the process held on it, and
  // another process could then open the object and write under it.
  const dataDir = tempDir();
  const { child, exited } = await startHolder(dataDir);
  try {
    const probe = new Registry({ dataDir: ":memory:" });
    const id = probe.namespace(Counter).idFromName("x").toString();
    await probe.close();
    const file = path.join(dataDir, "Counter", `${id}.sqlite`);
    const read = `
      const { DatabaseSync } = require("node:sqlite");
      try {
        const db = new DatabaseSync(process.argv[1]);
        console.log("read " + db.prepare("SELECT count(*) AS n FROM _cf_KV").get().n);
      } catch (e) { console.log("refused: " + e.message); }`;
    assert.match(await runNode24(read, file), /^refused: database is locked/);
  } finally {
    child.kill("SIGKILL");
    await exited;
  }
});

test("an object whose file another program holds fails at once with an error that says so", { timeout: 60_000 }, async () => {
  const dataDir = tempDir();
  const first = new Registry({ dataDir });
  const stub = await first.get("x", Counter);
  await stub.increment();
  const file = path.join(dataDir, "Counter", `${stub.id}.sqlite`);
  await first.close();
  // Another program takes the file and keeps it until told to stop.
  const hold = `
    const { DatabaseSync } = require("node:sqlite");
    const db = new DatabaseSync(process.argv[1]);
    db.exec("PRAGMA locking_mode=EXCLUSIVE; BEGIN EXCLUSIVE; SELECT count(*) FROM _cf_KV;");
    console.log("holding");
    process.stdin.on("data", () => process.exit(0));`;
  const holder = spawn(NODE24, ["--no-warnings", "-e", hold, file], { stdio: ["pipe", "pipe", "inherit"] });
  const exited = new Promise((resolve) => holder.on("exit", resolve));
  await new Promise((resolve) => holder.stdout.on("data", (d) => String(d).includes("holding") && resolve()));
  const registry = new Registry({ dataDir });
  try {
    await assert.rejects((await registry.get("x", Counter)).read(), (error) => {
      assert.ok(error.message.includes(file), error.message);
      assert.match(error.message, /locked by another process/);
      return true;
    });
  } finally {
    holder.stdin.end("stop\n");
    await exited;
    await registry.close();
  }
  // Once it let go, the object works again, with its data.
  const again = new Registry({ dataDir });
  assert.equal(await (await again.get("x", Counter)).read(), 1);
  await again.close();
});

test("two open registries of one process cannot serve the same folder; closing one frees it", async () => {
  const dataDir = tempDir();
  const a = new Registry({ dataDir });
  const b = new Registry({ dataDir });
  await (await a.get("x", Counter)).increment();
  assert.throws(() => b.namespace(Counter), (error) => {
    assert.match(error.message, new RegExp(`this process \\(pid ${process.pid}\\), through another Registry that is still open; one process at a time`));
    return true;
  });
  // Another folder of the same data folder is free.
  class Other extends DurableObject {}
  b.namespace(Other);
  await a.close();
  assert.equal(await (await b.get("x", Counter)).increment(), 2);
  await b.close();
});

test("a closed registry takes no new folder locks: a new registry on the folder works", async () => {
  const dataDir = tempDir();
  const a = new Registry({ dataDir });
  await a.close();
  assert.throws(() => a.namespace(Counter), { message: "This Registry is closed." });
  const b = new Registry({ dataDir });
  assert.equal(await (await b.get("x", Counter)).increment(), 1);
  await b.close();
});
