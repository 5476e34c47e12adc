// The memory suite of `npm run bench` (issue #9), ours only, each figure in a process of its
// own (its RSS is the object runtime's):
//   per loaded object   2,000 objects, each with a table and a row, all loaded: RSS per
//                       object with their files open, and once their files closed as the
//                       registry's sweep closes those of objects that used no storage for
//                       10-40 s (here forced at once: the sweep's call, twice)
//   after eviction      RSS after 10,000 objects were touched and all evicted, against the
//                       RSS the process started with
//   node --expose-gc bench/object-memory.mjs loaded|evicted <dataDir>   (one JSON line)
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { DurableObject, Registry } from "../index.js";

const LOADED = 2_000;
const EVICTED = 10_000;

export class Rows extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS t(x)");
  }
  add(x) {
    this.ctx.storage.sql.exec("INSERT INTO t VALUES (?)", x);
    return x;
  }
}

const rss = () => {
  globalThis.gc();
  return process.memoryUsage().rss;
};
const settle = () => new Promise((resolve) => setTimeout(resolve, 200));

async function loaded(dataDir) {
  const { native } = await import("../dist/native.js");
  const registry = new Registry({ dataDir });
  const ns = registry.namespace(Rows);
  await ns.getByName("warm-up").add(0);
  const before = rss();
  for (let i = 0; i < LOADED; i++) await ns.getByName(`o${i}`).add(i);
  await settle();
  const open = rss();
  const openFiles = native.storageOpenFiles();
  const closedFiles = native.storageCloseIdleFiles(0) + native.storageCloseIdleFiles(0);
  await settle();
  const closed = rss();
  const live = registry.liveObjects;
  await registry.close();
  return { before, open, closed, live, openFiles, closedFiles };
}

async function evicted(dataDir) {
  const registry = new Registry({ dataDir });
  const ns = registry.namespace(Rows);
  const start = rss();
  for (let i = 0; i < EVICTED; i++) await ns.getByName(`o${i}`).add(i);
  const touched = rss();
  const count = registry.evictIdle();
  // Evicted files close on a thread of their own, each with a checkpoint and an fsync, and
  // the memory goes back once they all closed: wait for RSS to fall and settle (or 30 s).
  let after = rss();
  let lowest = after;
  for (let quiet = 0, waited = 0; waited < 30_000 && !(lowest < touched * 0.9 && quiet >= 2); waited += 500) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    after = rss();
    if (after < lowest * 0.99) [lowest, quiet] = [after, 0];
    else quiet++;
  }
  const live = registry.liveObjects;
  await registry.close();
  return { start, touched, after, evicted: count, live };
}

function child(mode, dataDir) {
  const r = spawnSync(process.execPath, ["--expose-gc", fileURLToPath(import.meta.url), mode, dataDir], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`bench/object-memory.mjs ${mode} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").at(-1));
}

const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
const kib = (bytes) => `${(bytes / 1024).toFixed(1)} KiB`;

export async function runObjectMemory({ tmp, log = console.log }) {
  const l = child("loaded", tmp.sub("memory-loaded"));
  const perOpen = (l.open - l.before) / LOADED;
  const perClosed = (l.closed - l.before) / LOADED;
  const e = child("evicted", tmp.sub("memory-evicted"));
  const growth = e.after / e.start - 1;
  const loadedPass = perClosed <= 20 * 1024;
  const evictedPass = growth <= 0.2;
  log(`  per loaded object: ${kib(perOpen)} with files open, ${kib(perClosed)} once closed (${l.live} live)`);
  log(`  after evicting ${EVICTED.toLocaleString("en-US")}: RSS ${mib(e.start)} -> ${mib(e.touched)} -> ${mib(e.after)} (${e.evicted} evicted, ${e.live} live)`);
  const text = [
    `Memory of loaded objects: ${LOADED.toLocaleString("en-US")} objects, each with a table and a row (RSS after minus before, divided by the objects); their files close once they used no storage for 10-40 s (forced here at once):`,
    "",
    "| objects' files | RSS before | RSS after | per object |",
    "|---|---:|---:|---:|",
    `| open (${l.openFiles} files) | ${mib(l.before)} | ${mib(l.open)} | ${kib(perOpen)} |`,
    `| closed (${l.closedFiles} files closed; objects still loaded: ${l.live}) | ${mib(l.before)} | ${mib(l.closed)} | ${kib(perClosed)} |`,
    "",
    `RSS after ${EVICTED.toLocaleString("en-US")} objects were touched and all evicted: ${mib(e.start)} at start, ${mib(e.touched)} with them loaded, ${mib(e.after)} after (${(growth * 100).toFixed(0)}% over the start).`,
  ].join("\n");
  const checks = [
    `${loadedPass ? "PASS" : "FAIL"}  #9  memory per loaded object, files closed when idle ≤ 20 KiB: ${kib(perClosed)} (${kib(perOpen)} with files open)`,
    `${evictedPass ? "PASS" : "FAIL"}  #9  RSS after evicting ${EVICTED.toLocaleString("en-US")} objects within 20% of the start: ${(growth * 100).toFixed(0)}%`,
  ];
  return { rows: [], text, checks };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [mode, dataDir] = process.argv.slice(2);
  const result = mode === "loaded" ? await loaded(dataDir) : await evicted(dataDir);
  console.log(JSON.stringify(result));
}
