// The actor-runtime suite of `npm run bench` (issue #3): calls into objects from outside,
// ours next to Miniflare 4 on its fastest path (a Worker calling the object inside
// workerd, bench/miniflare/worker.mjs /loop), in the same run, at default durability.
//   sequential stub.fetch()      one increment (get + put) per request
//   sequential RPC ping          no storage: the cost of a call itself
//   sequential RPC increment     one get + put per call, bounded by fsync
//   64 in flight, 1,000 objects  increments spread over 1,000 existing objects: fsyncs of
//                                different objects overlap (workerd runs them one by one)
import { DurableObject, Registry } from "../index.js";
import { startMiniflare } from "./anchors/miniflare.mjs";
import { each, summary, timed } from "./util.mjs";

/** The same object as Miniflare's `Counter` (the parts these loops use). */
export class BenchCounter extends DurableObject {
  async increment() {
    const n = ((await this.ctx.storage.get("count")) ?? 0) + 1;
    await this.ctx.storage.put("count", n);
    return n;
  }
  ping() {
    return 1;
  }
  async fetch() {
    return new Response(String(await this.increment()));
  }
}

const PING_N = 20_000;
const SEQ_N = 2_000;
const SPREAD = { n: 5_000, conc: 64, objs: 1_000 };

function ours(registry) {
  const ns = registry.namespace(BenchCounter);
  let objects = 0;
  return {
    /** ms of `n` sequential calls of `kind` on a new object (constructed before timing). */
    async sequential(kind, n) {
      const stub = ns.getByName(`seq-${objects++}`);
      await stub.ping();
      return timed(async () => {
        if (kind === "ping") for (let i = 0; i < n; i++) await stub.ping();
        else if (kind === "rpc") for (let i = 0; i < n; i++) await stub.increment();
        else for (let i = 0; i < n; i++) await (await stub.fetch("http://do/inc")).text();
      });
    },
    /**
     * ms of `n` increments, `conc` at a time, over `objs` objects. The same objects serve
     * every repetition (the warm-up creates them), so this measures calls, not file creation.
     */
    async spread({ n, conc, objs }) {
      const stubs = Array.from({ length: objs }, (_, o) => ns.getByName(`spread-${o}`));
      return timed(() => each(n, conc, (i) => stubs[i % objs].increment()));
    },
  };
}

const FULL = "full";
const WORKERD = "workerd default (fsync per commit)";
const MF = "Miniflare 4, Worker → object in workerd";

const WORKLOADS = [
  {
    name: "sequential `stub.fetch()`, increment",
    n: SEQ_N,
    ours: (c) => c.ours.sequential("fetch", SEQ_N),
    anchor: { target: undefined, run: (c) => c.mf.loop("fetch", SEQ_N) },
  },
  {
    name: "sequential RPC, no storage (ping)",
    n: PING_N,
    ours: (c) => c.ours.sequential("ping", PING_N),
    anchor: { target: 5, run: (c) => c.mf.loop("ping", PING_N) },
  },
  {
    name: "sequential RPC increment",
    n: SEQ_N,
    ours: (c) => c.ours.sequential("rpc", SEQ_N),
    anchor: { target: 1.0, run: (c) => c.mf.loop("rpc", SEQ_N) },
  },
  {
    name: "64 increments in flight over 1,000 objects",
    n: SPREAD.n,
    ours: (c) => c.ours.spread(SPREAD),
    anchor: { target: 3, run: (c) => c.mf.loop("rpc", SPREAD.n, { conc: SPREAD.conc, objs: SPREAD.objs, name: "spread" }) },
  },
];

/** Runs every workload `reps` times after a warm-up, alternating ours and Miniflare. */
export async function runActors({ tmp, reps = 5, log = console.log }) {
  const registry = new Registry({ dataDir: tmp.sub("ours-actors"), durability: "full" });
  const mf = await startMiniflare(tmp.sub("miniflare-actors"));
  const c = { ours: ours(registry), mf };
  const rows = [];
  try {
    for (const w of WORKLOADS) {
      await w.ours(c); // warm-up
      await w.anchor.run(c);
      const ms = [[], []];
      for (let r = 0; r < reps; r++) {
        ms[0].push(await w.ours(c));
        ms[1].push(await w.anchor.run(c));

      }
      const row = {
        workload: w.name,
        n: w.n,
        ours: { durability: FULL, ...summary(w.n, ms[0]) },
        anchors: [{ anchor: MF, durability: WORKERD, target: w.anchor.target, ...summary(w.n, ms[1]) }],
      };
      rows.push(row);
      log(`  ${w.name}: ours ${Math.round(row.ours.ops)}/s; Miniflare ${Math.round(row.anchors[0].ops)}/s`);
    }
  } finally {
    await Promise.all([registry.close(), mf.close()]);
  }
  return rows;
}
