// The Durable Object anchor: Miniflare 4 (npm `miniflare`, a devDependency), which runs the
// real workerd, with the SQLite-backed object `Counter` of bench/miniflare/worker.mjs
// persisted on disk (`durableObjectsPersist`), like ours.
//
// In-object loops are called over RPC through Miniflare's Node proxy and timed from Node
// around the call; the proxy's own round trip (the median of a few ping() calls) is
// subtracted, as in the anchor measurements of the design notes (Date.now() inside workerd
// only advances on I/O, so the object cannot time itself). Sequential one-write-per-event
// loops run inside workerd (a Worker calling the object: Miniflare's fastest path), timed
// from Node around one HTTP request.
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import http from "node:http";
import { Miniflare } from "miniflare";
import { median, now } from "../util.mjs";

const require = createRequire(import.meta.url);
const WORKER = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "miniflare", "worker.mjs");

export const miniflareVersions = () => ({
  miniflare: require("miniflare/package.json").version,
  workerd: require("workerd/package.json").version,
});

/** Starts Miniflare with its objects persisted in `persistDir`. */
export async function startMiniflare(persistDir) {
  const mf = new Miniflare({
    modules: true,
    scriptPath: WORKER,
    modulesRoot: path.dirname(WORKER),
    compatibilityDate: "2025-04-01",
    durableObjects: {
      COUNTER: { className: "Counter", useSQLite: true },
      ALARMED: { className: "Alarmed", useSQLite: true },
    },
    durableObjectsPersist: persistDir,
    host: "127.0.0.1",
    port: 0,
  });
  const url = await mf.ready;
  const ns = await mf.getDurableObjectNamespace("COUNTER");
  let objects = 0;

  /** A new object, instantiated (its constructor creates the `rows` table) before timing. */
  async function fresh() {
    const stub = ns.get(ns.idFromName(`bench-${objects++}`));
    await stub.ping();
    return stub;
  }

  /** The proxy's round trip for a trivial call, in ms. */
  async function proxyOverhead() {
    const stub = await fresh();
    const ms = [];
    for (let i = 0; i < 30; i++) {
      const t0 = now();
      await stub.ping();
      ms.push(now() - t0);
    }
    return median(ms);
  }
  let overhead = await proxyOverhead();

  return {
    /** Re-measures the proxy overhead (call it next to the timed calls it corrects). */
    async calibrate() {
      overhead = await proxyOverhead();
      return overhead;
    },

    /**
     * One timed call of the object's in-object loop `method(...args)` on a new object,
     * minus the proxy overhead, in ms. `prepare(stub)` runs first, untimed.
     */
    async inObject(method, args, prepare) {
      const stub = await fresh();
      if (prepare) await prepare(stub);
      const t0 = now();
      await stub[method](...args);
      return now() - t0 - overhead;
    },

    /**
     * `n` calls `kind` (see /loop in worker.mjs) from a Worker, in ms: sequential on one new
     * object (instantiated first), or `conc` at a time over `objs` objects, named after
     * `name` (new ones unless the name was used before).
     */
    async loop(kind, n, { conc = 1, objs = 1, name = `loop-${objects++}` } = {}) {
      if (objs === 1) await get(new URL(`/loop?kind=ping&n=1&name=${name}`, url)); // instantiate
      const t0 = now();
      await get(new URL(`/loop?kind=${kind}&n=${n}&conc=${conc}&objs=${objs}&name=${name}`, url));
      return now() - t0;
    },

    /**
     * Sets one alarm on each of `n` new objects (from a Worker, 64 at a time) an hour
     * ahead, then moves them all to `dueAt()`; resolves with each object's { fired, lag }
     * once `waitMs` after that time has passed.
     */
    async alarms(n, dueAt, waitMs) {
      const name = `alarms-${objects++}`;
      await get(new URL(`/alarms/set?n=${n}&at=${Date.now() + 3_600_000}&name=${name}`, url));
      const at = dueAt();
      await get(new URL(`/alarms/set?n=${n}&at=${at}&name=${name}`, url));
      const setAt = Date.now();
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, at - Date.now()) + waitMs));
      return { setLate: setAt > at, results: JSON.parse(await get(new URL(`/alarms/results?n=${n}&name=${name}`, url))) };
    },

    get overheadMs() {
      return overhead;
    },

    /** Where workerd serves the Worker (its own HTTP server). */
    url: new URL(url),

    /** The COUNTER namespace as Node sees it (Miniflare's RPC proxy). */
    namespace: () => mf.getDurableObjectNamespace("COUNTER"),

    close: () => mf.dispose(),
  };
}

/**
 * GET over a fresh connection: a kept-alive one may have been closed by workerd while our
 * side of the benchmark ran, and reusing it fails with ECONNRESET.
 */
function get(url) {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk) => (body += chunk));
        res.on("end", () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: ${res.statusCode} ${body}`))));
      })
      .on("error", reject);
  });
}
