// Memory of a process that touches many objects (issue #3): each object is constructed,
// writes once, and goes idle. With eviction the heap stays bounded; without it, it grows
// with every object ever touched. Run: node --expose-gc bench/memory.mjs [count] [idleMs]
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { DurableObject, Registry } from "../index.js";

class Touched extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.scratch = new Array(16).fill(0); // a little in-memory state, as real objects have
  }
  touch(i) {
    this.ctx.storage.kv.put("i", i);
    return i;
  }
}

const count = Number(process.argv[2] ?? 100_000);
const idleTimeout = process.argv[3] === "never" ? Infinity : Number(process.argv[3] ?? 1_000);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "open-do-memory-"));
const registry = new Registry({ dataDir: dir, durability: "relaxed", idleTimeout });
const ns = registry.namespace(Touched);
const mib = (n) => (n / 1024 / 1024).toFixed(1);
const sample = (label) => {
  globalThis.gc?.();
  const m = process.memoryUsage();
  console.log(`${label}: live objects ${registry.liveObjects}, heap ${mib(m.heapUsed)} MiB, rss ${mib(m.rss)} MiB`);
};
sample("start");
const started = Date.now();
for (let i = 1; i <= count; i++) {
  await ns.getByName(`object-${i}`).touch(i);
  if (i % (count / 10) === 0) sample(`${i} touched`);
}
// Let the last ones go idle and be swept.
if (idleTimeout !== Infinity) await new Promise((resolve) => setTimeout(resolve, idleTimeout * 2 + 500));
sample(`end (${((Date.now() - started) / 1000).toFixed(0)} s)`);
await registry.close();
fs.rmSync(dir, { recursive: true, force: true });
