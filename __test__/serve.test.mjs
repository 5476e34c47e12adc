// `open-do serve`: a Worker project written for Cloudflare runs unchanged from its wrangler
// config (reference §1.1, §3), and the same HTTP test passes under Miniflare, proving the
// code is plain Cloudflare code; the data moves between the two.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { build } from "esbuild"; // comes with tsx, which runs TypeScript mains on Node
import { Miniflare } from "miniflare";
import WebSocket from "ws";
import { readConfig } from "../dist/wrangler/config.js";
import { readLocalSecrets } from "../dist/wrangler/local-secrets.js";
import { tempDir } from "./helpers/objects.mjs";

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const CLI = path.join(root, "bin", "open-do.js");
const COUNTER = path.join(root, "examples", "workers", "counter");
const CHAT = path.join(root, "examples", "workers", "chat");
const RATE_LIMITER = path.join(root, "examples", "workers", "rate-limiter");

/** Runs `open-do serve dir ...args` with this test's runtime; resolves once it listens. */
async function openDo(dir, ...args) {
  const child = spawn(process.execPath, [CLI, "serve", dir, "--port", "0", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  // From the start: an exit is reported once, possibly before anyone asks for it.
  const exited = new Promise((resolve) => child.on("exit", resolve));
  let output = "";
  const url = await new Promise((resolve, reject) => {
    const seen = (chunk) => {
      output += chunk;
      const match = /ready on (http:\/\/\S+)/.exec(output);
      if (match) resolve(match[1]);
    };
    child.stdout.on("data", seen);
    child.stderr.on("data", seen);
    child.on("exit", (code) => reject(new Error(`open-do exited (${code}) before listening:\n${output}`)));
  });
  return {
    url,
    output: () => output,
    async stop() {
      child.kill("SIGTERM");
      return exited;
    },
  };
}

/** Runs the CLI to completion (for the errors a newcomer hits). */
function openDoOnce(...args) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 30_000 });
}

/** The same project under Miniflare 4 (workerd): config read the same way, TypeScript bundled. */
async function miniflare(dir, persist) {
  const config = readConfig(dir);
  const bundle = await build({ entryPoints: [config.main], bundle: true, format: "esm", platform: "neutral", external: ["cloudflare:workers"], write: false });
  const mf = new Miniflare({
    name: config.name,
    modules: true,
    script: bundle.outputFiles[0].text,
    compatibilityDate: config.compatibilityDate,
    bindings: config.vars,
    durableObjects: {
      // Unbound classes with storage get a namespace too (what ctx.exports reaches).
      ...Object.fromEntries([...config.classes].map(([className, storage]) => [`__CLASS_${className}`, { className, useSQLite: storage === "sqlite" }])),
      ...Object.fromEntries(config.durableObjects.map((b) => [b.name, { className: b.className, useSQLite: b.storage === "sqlite" }])),
    },
    durableObjectsPersist: persist,
    port: 0,
  });
  const url = (await mf.ready).origin;
  return { url, stop: () => mf.dispose() };
}

const json = async (url) => {
  const response = await fetch(url);
  assert.equal(response.status, 200, `${url}: ${response.status}`);
  return response.json();
};

/** The counter project's behaviour, as a client sees it. */
async function counterTest(base) {
  assert.deepEqual(await json(`${base}/increment?name=t&by=2`), { value: 2 });
  assert.deepEqual(await json(`${base}/increment?name=t`), { value: 3 });
  assert.deepEqual(await json(`${base}/current?name=t`), { value: 3, changes: 2 });
  assert.deepEqual(await json(`${base}/current?name=other`), { value: 0, changes: 0 });
  assert.equal(await (await fetch(`${base}/greeting`)).text(), "hello from counter / hello from counter");
}

test("open-do serve runs the counter project (TypeScript, RPC, SQL, vars, cloudflare:workers)", async () => {
  const server = await openDo(COUNTER, "--data-dir", tempDir());
  try {
    assert.match(server.output(), /COUNTER \(Counter, SQLite\)/);
    await counterTest(server.url);
  } finally {
    assert.equal(await server.stop(), 0, "SIGTERM shuts down cleanly");
  }
});

test("the counter project passes the same test under Miniflare", async () => {
  const mf = await miniflare(COUNTER, tempDir());
  try {
    await counterTest(mf.url);
  } finally {
    await mf.stop();
  }
});

test("state written by Miniflare is served by open-do with its data, and the other way round", async () => {
  const state = tempDir();
  const mf = await miniflare(COUNTER, state);
  assert.deepEqual(await json(`${mf.url}/increment?name=moving&by=5`), { value: 5 });
  await mf.stop();

  const ours = await openDo(COUNTER, "--data-dir", state);
  try {
    assert.deepEqual(await json(`${ours.url}/current?name=moving`), { value: 5, changes: 1 });
    assert.deepEqual(await json(`${ours.url}/increment?name=moving`), { value: 6 });
  } finally {
    await ours.stop();
  }

  const again = await miniflare(COUNTER, state);
  try {
    assert.deepEqual(await json(`${again.url}/current?name=moving`), { value: 6, changes: 2 });
  } finally {
    await again.stop();
  }
});

/** A WebSocket client with a queue of what it received. */
async function chatClient(base, room, name) {
  const ws = new WebSocket(`${base.replace("http", "ws")}/rooms/${room}?name=${name}`);
  const inbox = [];
  const waiters = [];
  ws.on("message", (data) => {
    const text = data.toString();
    if (waiters.length) waiters.shift()(text);
    else inbox.push(text);
  });
  const closed = new Promise((resolve) => ws.on("close", (code) => resolve(code)));
  await new Promise((resolve, reject) => ws.on("open", resolve).on("error", reject));
  return {
    send: (text) => ws.send(text),
    next: () => (inbox.length ? Promise.resolve(inbox.shift()) : new Promise((resolve) => waiters.push(resolve))),
    close: () => ws.close(1000, "bye"),
    closed,
  };
}

/** The chat project's behaviour: joins, broadcast, whispers by tag, the ping auto-response, leaving. */
async function chatTest(base) {
  const alice = await chatClient(base, "garden", "alice");
  assert.equal(await alice.next(), "alice joined");
  const bob = await chatClient(base, "garden", "bob");
  assert.equal(await bob.next(), "bob joined");
  assert.equal(await alice.next(), "bob joined");
  alice.send("hello");
  assert.equal(await alice.next(), "alice: hello");
  assert.equal(await bob.next(), "alice: hello");
  bob.send("/whisper alice psst");
  assert.equal(await alice.next(), "bob (whisper): psst");
  alice.send("ping");
  assert.equal(await alice.next(), "pong");
  alice.close();
  assert.equal(await alice.closed, 1000, "the Close is answered");
  assert.equal(await bob.next(), "alice left");
  bob.close();
  await bob.closed;
  assert.equal((await fetch(`${base}/rooms/garden`)).status, 426);
}

/**
 * The rate-limiter example with a 3 s window instead of its 1 s: the test's first five
 * requests must land inside one window, which a busy machine (and workerd) can miss.
 */
function slowerRateLimiter() {
  const dir = tempDir();
  fs.cpSync(RATE_LIMITER, dir, { recursive: true });
  const config = JSON.parse(fs.readFileSync(path.join(dir, "wrangler.json"), "utf8"));
  config.vars.WINDOW_MS = "3000";
  fs.writeFileSync(path.join(dir, "wrangler.json"), JSON.stringify(config));
  return dir;
}

/** The rate limiter's behaviour: a limit per key, then alarms forget the old hits. */
async function rateLimiterTest(base) {
  const hit = (key) => fetch(`${base}/hit?key=${key}`).then(async (r) => ({ status: r.status, ...(await r.json()) }));
  assert.deepEqual(await hit("k"), { status: 200, allowed: true, remaining: 2 });
  assert.deepEqual(await hit("k"), { status: 200, allowed: true, remaining: 1 });
  assert.deepEqual(await hit("k"), { status: 200, allowed: true, remaining: 0 });
  assert.deepEqual(await hit("k"), { status: 429, allowed: false, remaining: 0 });
  assert.deepEqual(await hit("other"), { status: 200, allowed: true, remaining: 2 }, "each key has its own object");
  assert.deepEqual(await json(`${base}/stats?key=k`), { stored: 3, alarm: true });
  // The alarm (at the window's end) forgets the hits and is not set again.
  let stats;
  for (let i = 0; i < 100; i++) {
    stats = await json(`${base}/stats?key=k`);
    if (stats.stored === 0 && !stats.alarm) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.deepEqual(stats, { stored: 0, alarm: false });
  assert.deepEqual(await hit("k"), { status: 200, allowed: true, remaining: 2 });
}

for (const [name, dir, check] of [
  ["chat room (hibernatable WebSockets, tags, attachments, auto-response)", CHAT, chatTest],
  ["rate limiter (SQL and alarms)", slowerRateLimiter(), rateLimiterTest],
]) {
  test(`open-do serve runs the ${name} project`, async () => {
    const server = await openDo(dir, "--data-dir", tempDir());
    try {
      await check(server.url);
    } finally {
      assert.equal(await server.stop(), 0);
    }
  });

  test(`the ${name} project passes the same test under Miniflare`, async () => {
    const mf = await miniflare(dir, tempDir());
    try {
      await check(mf.url);
    } finally {
      await mf.stop();
    }
  });
}

/** A throwaway project: files by relative path. */
function project(files) {
  const dir = tempDir();
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

const exportsProject = () =>
  project({
    "wrangler.json": JSON.stringify({
      name: "loopback",
      main: "index.js",
      compatibility_date: "2026-07-01",
      durable_objects: { bindings: [{ name: "CALLER", class_name: "Caller" }] },
      migrations: [{ tag: "v1", new_sqlite_classes: ["Greeter", "Caller"] }],
    }),
    "index.js": `
import { DurableObject } from "cloudflare:workers";
export class Greeter extends DurableObject {
  hello(who) { return "hello " + who + " from " + this.ctx.id.name; }
}
export class Caller extends DurableObject {
  call() { return this.ctx.exports.Greeter.getByName("g").hello("caller"); }
}
export default {
  async fetch(request, env, ctx) {
    const path = new URL(request.url).pathname;
    if (path === "/direct") return new Response(await ctx.exports.Greeter.getByName("g").hello("worker"));
    if (path === "/loopback") return ctx.exports.default.fetch("http://self/direct");
    return new Response(await env.CALLER.getByName("c").call());
  },
};
`,
  });

async function exportsTest(base) {
  assert.equal(await (await fetch(`${base}/`)).text(), "hello caller from g", "an object reaches an unbound class through ctx.exports");
  assert.equal(await (await fetch(`${base}/direct`)).text(), "hello worker from g", "so does the Worker's handler");
  assert.equal(await (await fetch(`${base}/loopback`)).text(), "hello worker from g", "ctx.exports.default is the Worker itself");
}

test("ctx.exports (compat 2025-11-17): the Worker's own classes and default export as bindings", async () => {
  const dir = exportsProject();
  const server = await openDo(dir, "--data-dir", tempDir());
  try {
    await exportsTest(server.url);
  } finally {
    await server.stop();
  }
  const mf = await miniflare(dir, tempDir());
  try {
    await exportsTest(mf.url);
  } finally {
    await mf.stop();
  }
});

test("wrangler.toml, named environments (not inheriting bindings), KV-backed classes refusing SQL", async () => {
  const dir = project({
    "wrangler.toml": `
name = "legacy"
main = "index.js"
compatibility_date = "2026-07-01"

[vars]
WHERE = "top"

[[durable_objects.bindings]]
name = "STORE"
class_name = "Store"

[[migrations]]
tag = "v1"
new_classes = ["Store"]

[env.staging]
vars = { WHERE = "staging" }
durable_objects.bindings = [{ name = "STORE", class_name = "Store" }]

[env.bare]
vars = { WHERE = "bare" }
`,
    "index.js": `
import { DurableObject } from "cloudflare:workers";
export class Store extends DurableObject {
  async fetch(request) {
    await this.ctx.storage.put("k", "kv works");
    let sql;
    try { this.ctx.storage.sql; sql = "sql works"; } catch (e) { sql = e.message; }
    return Response.json({ kv: await this.ctx.storage.get("k"), sql, where: this.env.WHERE });
  }
}
export default {
  fetch: (request, env) => (env.STORE ? env.STORE.getByName("x").fetch(request) : Response.json({ where: env.WHERE, store: "none" })),
};
`,
  });
  const top = await openDo(dir, "--data-dir", tempDir());
  try {
    assert.match(top.output(), /legacy ready on/);
    assert.match(top.output(), /STORE \(Store, KV\)/);
    const body = await json(top.url);
    assert.equal(body.kv, "kv works");
    assert.match(body.sql, /^This Durable Object is not backed by SQLite storage, so the SQL API is not available\./);
    assert.equal(body.where, "top");
  } finally {
    await top.stop();
  }
  const staging = await openDo(dir, "--env", "staging", "--data-dir", tempDir());
  try {
    assert.match(staging.output(), /legacy-staging ready on/);
    assert.equal((await json(staging.url)).where, "staging");
  } finally {
    await staging.stop();
  }
  // As wrangler: an environment without its own durable_objects has none, with a warning.
  const bare = await openDo(dir, "--env", "bare", "--data-dir", tempDir());
  try {
    assert.deepEqual(await json(bare.url), { where: "bare", store: "none" });
    assert.match(bare.output(), /"durable_objects" exists at the top level of wrangler\.toml, but not on "env\.bare"; it is not inherited by environments/);
    assert.doesNotMatch(bare.output(), /"vars" exists/, "bare has its own vars");
  } finally {
    await bare.stop();
  }
  const unknown = openDoOnce("serve", dir, "--env", "prod");
  assert.equal(unknown.status, 1);
  assert.equal(unknown.stderr.trim(), 'open-do: wrangler.toml has no environment "prod" (it has: staging, bare).');
});

test("what a newcomer hits gets one clear line each, not a stack trace", () => {
  const oneLine = (result, pattern) => {
    assert.equal(result.status, 1, result.stderr);
    const lines = result.stderr.trim().split("\n");
    assert.equal(lines.length, 1, result.stderr);
    assert.match(lines[0], pattern);
  };
  oneLine(openDoOnce("serve", tempDir()), /^open-do: No wrangler config in .* \(looked for wrangler\.json, wrangler\.jsonc, wrangler\.toml\)\.$/);
  const worker = "export class Other {}\nexport default { fetch: () => new Response('x') };\n";
  oneLine(
    openDoOnce("serve", project({ "wrangler.json": JSON.stringify({ name: "w", main: "i.js", durable_objects: { bindings: [{ name: "A", class_name: "Missing" }] } }), "i.js": worker })),
    /^open-do: The Durable Object binding A names class Missing, but i\.js exports no such class\.$/,
  );
  oneLine(
    openDoOnce("serve", project({ "wrangler.json": JSON.stringify({ name: "w", main: "i.js", durable_objects: { bindings: [{ name: "A", class_name: "Other", script_name: "elsewhere" }] } }), "i.js": worker })),
    /uses class Other of another Worker \("script_name": "elsewhere"\): open-do serve runs one Worker and does not support that yet\.$/,
  );
  oneLine(openDoOnce("serve", project({ "wrangler.jsonc": '{ "name": "w", // no main\n }' })), /has no "main"/);
  oneLine(openDoOnce("serve", project({ "wrangler.jsonc": '{ "name": "w", "main": }' })), /^open-do: wrangler\.jsonc:1: ValueExpected$/);
  oneLine(
    openDoOnce("serve", project({ "wrangler.json": JSON.stringify({ name: "w", main: "i.js", exports: {}, migrations: [{ tag: "v1", new_sqlite_classes: ["Other"] }] }), "i.js": worker })),
    /"exports" and "migrations" both describe the Durable Object classes; use one of them\.$/,
  );
  const kv = openDoOnce("serve", project({ "wrangler.json": JSON.stringify({ name: "w", main: "i.js", kv_namespaces: [{ binding: "CACHE", id: "x" }] }), "i.js": worker }), "--port", "70000");
  assert.equal(kv.status, 2);
  assert.match(kv.stderr, /--port must be a number from 0 to 65535/);
});

test("a WorkerEntrypoint class as the default export, with waitUntil and env from cloudflare:workers", async () => {
  const dir = project({
    "wrangler.jsonc": JSON.stringify({
      name: "entry",
      main: "index.mjs",
      compatibility_date: "2026-07-01",
      vars: { WORD: "word" },
      durable_objects: { bindings: [{ name: "BOX", class_name: "Box" }] },
      migrations: [{ tag: "v1", new_sqlite_classes: ["Box"] }],
    }),
    "index.mjs": `
import { DurableObject, WorkerEntrypoint, env, waitUntil } from "cloudflare:workers";
export class Box extends DurableObject {
  word() { return this.env.WORD; }
}
export default class extends WorkerEntrypoint {
  async fetch(request) {
    waitUntil(this.env.BOX.getByName("b").word());
    this.ctx.waitUntil(Promise.resolve());
    return new Response((await this.env.BOX.getByName("b").word()) + " " + env.WORD + " " + new URL(request.url).pathname);
  }
}
`,
  });
  const check = async (base) => assert.equal(await (await fetch(`${base}/p`)).text(), "word word /p");
  const server = await openDo(dir, "--data-dir", tempDir());
  try {
    await check(server.url);
  } finally {
    assert.equal(await server.stop(), 0);
  }
  const mf = await miniflare(dir, tempDir());
  try {
    await check(mf.url);
  } finally {
    await mf.stop();
  }
});

test('a TypeScript Worker in a package without "type": "module" (as npm create cloudflare makes it) runs, its imports without extensions too', async () => {
  const dir = project({
    "package.json": JSON.stringify({ name: "plain-package", private: true }),
    "src/lib/label.ts": `export const label = (n: number): string => "count " + n;`,
    "wrangler.json": JSON.stringify({
      name: "plain",
      main: "src/index.ts",
      compatibility_date: "2026-07-01",
      durable_objects: { bindings: [{ name: "COUNTER", class_name: "Counter" }] },
      migrations: [{ tag: "v1", new_sqlite_classes: ["Counter"] }],
    }),
    "src/index.ts": `
import { DurableObject, env as moduleEnv } from "cloudflare:workers";
import { label } from "./lib/label";
interface Env { COUNTER: DurableObjectNamespace<Counter> }
export class Counter extends DurableObject<Env> {
  async increment(): Promise<number> {
    const n: number = ((await this.ctx.storage.get<number>("n")) ?? 0) + 1;
    await this.ctx.storage.put("n", n);
    return n;
  }
}
export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const n = await env.COUNTER.getByName("a").increment();
    return Response.json({ n: label(n), sameEnv: moduleEnv.COUNTER === env.COUNTER });
  },
} satisfies ExportedHandler<Env>;
`,
  });
  const server = await openDo(dir, "--data-dir", tempDir());
  try {
    assert.deepEqual(await json(server.url), { n: "count 1", sameEnv: true });
    assert.deepEqual(await json(server.url), { n: "count 2", sameEnv: true }, "the import of cloudflare:workers is the module the CLI fills");
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

test("a JavaScript Worker may import its modules without extensions, as Wrangler's bundler allows; its top level sees the Durable Object bindings", async () => {
  const dir = project({
    "package.json": JSON.stringify({ name: "plain-js", private: true }),
    "wrangler.json": JSON.stringify({
      name: "plain-js",
      main: "src/index.js",
      compatibility_date: "2026-07-01",
      durable_objects: { bindings: [{ name: "ROOM", class_name: "Room" }] },
      migrations: [{ tag: "v1", new_sqlite_classes: ["Room"] }],
    }),
    "src/room/index.js": `
import { DurableObject } from "cloudflare:workers";
import { shout } from "../util";
export class Room extends DurableObject {
  hello() { return shout("hello from " + this.ctx.id.name); }
}`,
    "src/util.js": `export const shout = (text) => text.toUpperCase() + "!";`,
    "src/index.js": `
import { env as moduleEnv } from "cloudflare:workers";
export { Room } from "./room";
// As on Cloudflare, the module's top level sees the bindings (ids work; calls wait for requests).
const rooms = moduleEnv.ROOM;
const idAtTopLevel = rooms.idFromName("r").toString();
export default {
  fetch: async (request, env) =>
    Response.json({ text: await env.ROOM.getByName("r").hello(), same: rooms === env.ROOM, id: idAtTopLevel === env.ROOM.idFromName("r").toString() }),
};
`,
  });
  const server = await openDo(dir, "--data-dir", tempDir());
  try {
    assert.deepEqual(await json(server.url), { text: "HELLO FROM R!", same: true, id: true });
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

test("text, data and WebAssembly files import as Wrangler's default module rules say", async () => {
  // An empty WebAssembly module: its 8-byte header.
  const wasm = Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
  const source = (ts) => `
import { DurableObject } from "cloudflare:workers";
import schema from "./schema.sql";
import note from "./note.txt";
import page from "./page.html";
import data from "./blob.bin";
import module from "./empty.wasm";
export class Files extends DurableObject${ts ? "<unknown>" : ""} {
  describe() {
    this.ctx.storage.sql.exec(schema);
    this.ctx.storage.sql.exec("INSERT INTO items (name) VALUES (?)", note.trim());
    return {
      stored: this.ctx.storage.sql.exec("SELECT name FROM items").one().name,
      page,
      data: data instanceof ArrayBuffer ? [...new Uint8Array(data)] : String(data),
      wasm: module instanceof WebAssembly.Module,
    };
  }
}
export default { fetch: async (request${ts ? ": Request" : ""}, env${ts ? ": any" : ""}) => Response.json(await env.FILES.getByName("f").describe()) };
`;
  // TypeScript in a package without "type" (tsx makes it CommonJS on Node) and an ES module package.
  for (const [main, type] of [
    ["src/index.ts", undefined],
    ["src/index.js", "module"],
  ]) {
    const dir = project({
      "package.json": JSON.stringify({ name: "files", private: true, type }),
      "wrangler.json": JSON.stringify({
        name: "files",
        main,
        compatibility_date: "2026-07-01",
        durable_objects: { bindings: [{ name: "FILES", class_name: "Files" }] },
        migrations: [{ tag: "v1", new_sqlite_classes: ["Files"] }],
      }),
      [main]: source(main.endsWith(".ts")),
      "src/schema.sql": "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT);\n",
      "src/note.txt": "from a text file\n",
      "src/page.html": "<h1>hi</h1>",
      "src/blob.bin": Buffer.from([1, 2, 255]),
      "src/empty.wasm": wasm,
    });
    const server = await openDo(dir, "--data-dir", tempDir());
    try {
      assert.deepEqual(await json(server.url), { stored: "from a text file", page: "<h1>hi</h1>", data: [1, 2, 255], wasm: true }, main);
    } finally {
      assert.equal(await server.stop(), 0);
    }
  }
});

test("a project's own module rules come before the defaults, with wrangler's fallthrough; globs are relative to main's folder", async () => {
  const png = Buffer.from([0x89, 0x50, 0x4e, 0x47]);
  const source = (ts) => `
import { DurableObject } from "cloudflare:workers";
import readme from "./docs/readme.md";
import pixel from "./pixel.png";
import note from "./note.txt";
export class Files extends DurableObject${ts ? "<unknown>" : ""} {
  describe() {
    return { readme, pixel: pixel instanceof ArrayBuffer ? [...new Uint8Array(pixel)] : String(pixel), note };
  }
}
export default { fetch: async (request${ts ? ": Request" : ""}, env${ts ? ": any" : ""}) => Response.json(await env.FILES.getByName("f").describe()) };
`;
  for (const [main, type] of [
    ["src/index.ts", undefined],
    ["src/index.js", "module"],
  ]) {
    const dir = project({
      "package.json": JSON.stringify({ name: "rules", private: true, type }),
      "wrangler.toml": `name = "rules"
main = "${main}"
compatibility_date = "2026-07-01"

[[durable_objects.bindings]]
name = "FILES"
class_name = "Files"

[[migrations]]
tag = "v1"
new_sqlite_classes = ["Files"]

# Text keeps the default .txt/.html/.sql rule too; Data replaces the default .bin one.
[[rules]]
type = "Text"
globs = ["**/*.md"]
fallthrough = true

[[rules]]
type = "Data"
globs = ["*.png"]
`,
      [main]: source(main.endsWith(".ts")),
      "src/docs/readme.md": "# Read me\n",
      "src/pixel.png": png,
      "src/note.txt": "still text",
    });
    const server = await openDo(dir, "--data-dir", tempDir());
    try {
      assert.deepEqual(await json(server.url), { readme: "# Read me\n", pixel: [0x89, 0x50, 0x4e, 0x47], note: "still text" }, main);
      assert.match(server.output(), /The default rule \{"type":"Data","globs":\["\*\*\/\*\.bin"\]\} has the same type as the rule at position 1 and is ignored/);
    } finally {
      assert.equal(await server.stop(), 0);
    }
  }
});

test("module rules open-do cannot honour are one clear line", () => {
  const cases = [
    [{ type: "PythonModule", globs: ["**/*.py"] }, /rules\[0\] is a PythonModule rule: open-do runs JavaScript and TypeScript Workers, not Python ones\./],
    [{ type: "Json", globs: ["**/*.json"] }, /rules\[0\] has type "Json"; it must be one of ESModule, CommonJS, CompiledWasm, Text, Data\./],
    [{ type: "Text", globs: ["assets/**"] }, /the glob "assets\/\*\*" does not end in a file extension/],
    [{ type: "Text" }, /rules\[0\] needs "globs", a list of strings\./],
  ];
  for (const [rule, message] of cases) {
    const dir = project({ "wrangler.json": JSON.stringify({ name: "r", main: "i.js", rules: [rule] }), "i.js": "" });
    assert.throws(() => readConfig(dir), message, JSON.stringify(rule));
  }
  // fallthrough = false silences the warning about the default rule it drops.
  const quiet = project({ "wrangler.json": JSON.stringify({ name: "q", main: "i.js", rules: [{ type: "Text", globs: ["**/*.md"], fallthrough: false }] }), "i.js": "" });
  const config = readConfig(quiet);
  assert.deepEqual(config.warnings, []);
  assert.deepEqual(
    config.moduleRules.map((r) => [r.type, r.globs]),
    [
      ["Text", ["**/*.md"]],
      ["Data", ["**/*.bin"]],
      ["CompiledWasm", ["**/*.wasm", "**/*.wasm?module"]],
    ],
  );
});

test("a busy port is one clear line", async () => {
  const worker = project({ "wrangler.json": JSON.stringify({ name: "w", main: "i.js" }), "i.js": "export default { fetch: () => new Response('x') };\n" });
  const first = await openDo(worker, "--data-dir", tempDir());
  try {
    const port = new URL(first.url).port;
    const second = spawnSync(process.execPath, [CLI, "serve", worker, "--port", port, "--data-dir", tempDir()], { encoding: "utf8", timeout: 30_000 });
    assert.equal(second.status, 1, second.stderr);
    assert.equal(second.stderr.trim().split("\n").length, 1, second.stderr);
    assert.match(second.stderr, new RegExp(`^open-do: Cannot listen on 127\\.0\\.0\\.1:${port}: .*in use.*--port\\.`, "i"));
  } finally {
    assert.equal(await first.stop(), 0);
  }
});

test("local secrets as wrangler dev reads them: .dev.vars (per environment), else the .env files; they reach env over vars", async () => {
  const config = {
    name: "secrets",
    main: "i.js",
    vars: { FROM_VARS: "vars", SHARED: "vars" },
    env: { staging: { vars: { FROM_VARS: "staging vars", SHARED: "staging vars" } } },
  };
  const worker = `import { env as moduleEnv } from "cloudflare:workers";
export default { fetch: (request, env) => Response.json({ FROM_VARS: env.FROM_VARS, SHARED: env.SHARED, TOKEN: env.TOKEN, same: moduleEnv.TOKEN === env.TOKEN }) };
`;
  const withDevVars = project({
    "wrangler.json": JSON.stringify(config),
    "i.js": worker,
    ".dev.vars": 'SHARED=dev vars\nTOKEN="quoted # value"\n# a comment\n',
    ".dev.vars.staging": "TOKEN=staging token\n",
    ".env": "TOKEN=ignored while .dev.vars exists\n",
  });
  assert.deepEqual(readLocalSecrets(withDevVars), { files: [".dev.vars"], values: { SHARED: "dev vars", TOKEN: "quoted # value" } });
  assert.deepEqual(readLocalSecrets(withDevVars, "staging"), { files: [".dev.vars.staging"], values: { TOKEN: "staging token" } });
  assert.deepEqual(readLocalSecrets(withDevVars, "production"), { files: [".dev.vars"], values: { SHARED: "dev vars", TOKEN: "quoted # value" } });
  const withDotEnv = project({ ".env": "TOKEN=env\nSHARED=env\n", ".env.staging": "TOKEN=env staging\n", ".env.local": "TOKEN=env local\n" });
  assert.deepEqual(readLocalSecrets(withDotEnv), { files: [".env", ".env.local"], values: { TOKEN: "env local", SHARED: "env" } });
  assert.deepEqual(readLocalSecrets(withDotEnv, "staging"), { files: [".env", ".env.staging", ".env.local"], values: { TOKEN: "env local", SHARED: "env" } });
  assert.deepEqual(readLocalSecrets(tempDir()), { files: [], values: {} });

  for (const [args, expected] of [
    [[], { FROM_VARS: "vars", SHARED: "dev vars", TOKEN: "quoted # value", same: true }],
    [["--env", "staging"], { FROM_VARS: "staging vars", SHARED: "staging vars", TOKEN: "staging token", same: true }],
  ]) {
    const server = await openDo(withDevVars, "--data-dir", tempDir(), ...args);
    try {
      assert.deepEqual(await json(server.url), expected);
      assert.match(server.output(), /using secrets defined in \.dev\.vars/);
    } finally {
      assert.equal(await server.stop(), 0);
    }
  }
});

test('the declarative "exports" field names the classes and their storage, instead of migrations', () => {
  const dir = project({
    "wrangler.json": JSON.stringify({
      name: "declared",
      main: "i.js",
      durable_objects: { bindings: [{ name: "ROOMS", class_name: "Room" }, { name: "OLD", class_name: "Legacy" }] },
      exports: {
        Room: { type: "durable-object", storage: "sqlite" },
        Legacy: { type: "durable-object", storage: "legacy-kv" },
        Gone: { type: "durable-object", storage: "sqlite", state: "deleted" },
        Api: { type: "worker-entrypoint" },
      },
    }),
    "i.js": "export default { fetch: () => new Response('x') };\n",
  });
  const config = readConfig(dir);
  assert.deepEqual(
    config.durableObjects.map((b) => [b.name, b.className, b.storage]),
    [
      ["ROOMS", "Room", "sqlite"],
      ["OLD", "Legacy", "kv"],
    ],
  );
  assert.deepEqual([...config.classes], [
    ["Room", "sqlite"],
    ["Legacy", "kv"],
  ]);
  const bad = project({ "wrangler.json": JSON.stringify({ name: "b", main: "i.js", exports: { Room: { type: "durable-object", storage: "kv" } } }), "i.js": "" });
  assert.throws(() => readConfig(bad), /exports\.Room has "storage" "kv"; it is "sqlite" or "legacy-kv"\./);
});

test("--watch reloads on change: calls in flight fail with durableObjectReset, the new code serves the same port", async () => {
  const worker = (version) => `
import { DurableObject } from "cloudflare:workers";
let waiting = false;
export class Slow extends DurableObject {
  version() { return "${version}"; }
  wait() {
    waiting = true;
    return new Promise(() => {}); // settles only by a reset
  }
}
export default {
  async fetch(request, env) {
    const stub = env.OBJ.getByName("x");
    const { pathname } = new URL(request.url);
    if (pathname === "/waiting") return new Response(String(waiting));
    if (pathname === "/wait") {
      try {
        await stub.wait();
        return new Response("finished");
      } catch (e) {
        return Response.json({ message: e.message, durableObjectReset: e.durableObjectReset === true });
      }
    }
    return new Response(await stub.version());
  },
};
`;
  const dir = project({
    "wrangler.json": JSON.stringify({
      name: "watched",
      main: "index.js",
      compatibility_date: "2026-07-01",
      durable_objects: { bindings: [{ name: "OBJ", class_name: "Slow" }] },
      migrations: [{ tag: "v1", new_sqlite_classes: ["Slow"] }],
    }),
    "index.js": worker("v1"),
  });
  const server = await openDo(dir, "--watch", "--data-dir", tempDir());
  try {
    assert.equal(await (await fetch(server.url)).text(), "v1");
    const inFlight = fetch(`${server.url}/wait`).then((r) => r.json());
    // Change the code only once the call is inside the object.
    for (let i = 0; i < 200 && (await (await fetch(`${server.url}/waiting`)).text()) !== "true"; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    fs.writeFileSync(path.join(dir, "index.js"), worker("v2"));
    assert.deepEqual(await inFlight, { message: "Durable Object reset because its code was updated.", durableObjectReset: true });
    let version;
    for (let i = 0; i < 200 && version !== "v2"; i++) {
      version = await fetch(server.url).then((r) => r.text(), () => undefined); // refused while restarting
      if (version !== "v2") await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(version, "v2", "the new code serves the same address");
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

test("open-do --help documents the commands and options", () => {
  const help = openDoOnce("--help");
  assert.equal(help.status, 0);
  for (const option of ["serve [dir]", "--port", "--ip", "--data-dir", "--env", "--watch"]) assert.ok(help.stdout.includes(option), option);
  const unknown = openDoOnce("deploy");
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /unknown command "deploy"/);
});
