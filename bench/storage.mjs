// The storage suite of `npm run bench` (issue #2): each workload runs inside one Durable
// Object, on our side and on its anchors, in the same run:
//   ours      the public API (Registry, runInDurableObject), files in a temp folder;
//   Miniflare 4 (real workerd), the same loops in bench/miniflare/worker.mjs;
//   rusqlite, the same SQLite work with no Durable Object around it.
// Every repetition uses a new object (a new SQLite file), instantiated before the clock
// starts; the time covers the loop and the commit at the end of the turn, including its
// fsync at durability "full". Repetitions of ours and of each anchor alternate, so a slow
// spell of the (noisy) disk hits all of them.
import { DurableObject, Registry, runInDurableObject } from "../index.js";
import { startMiniflare } from "./anchors/miniflare.mjs";
import { rusqlite } from "./anchors/rusqlite.mjs";
import { summary, timed } from "./util.mjs";

/** The object every workload runs in: the same shape as Miniflare's `Counter`. */
export class BenchObject extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, v TEXT)");
  }

  /** One write per request: the caller's response waits for its commit (output gate). */
  async fetch(request) {
    const n = Number(new URL(request.url).searchParams.get("n"));
    await this.ctx.storage.put("count", n);
    return new Response("ok");
  }
}

const N = 10_000; // operations of the one-turn loops
const SEQ_N = 2_000; // events of the one-write-per-turn loops

// --- the loops, as run inside our object (the same code as worker.mjs runs in workerd) ---

async function putAwaitLoop(ctx) {
  for (let i = 0; i < N; i++) await ctx.storage.put("k" + i, i);
  await ctx.storage.sync();
}
async function kvPutLoop(ctx) {
  for (let i = 0; i < N; i++) ctx.storage.kv.put("k" + i, i);
  await ctx.storage.sync();
}
/** Untimed, before getLoop: the keys it reads. */
function populate(ctx) {
  for (let i = 0; i < N; i++) ctx.storage.kv.put("k" + i, i);
}
async function getLoop(ctx) {
  let found = 0;
  for (let i = 0; i < N; i++) if ((await ctx.storage.get("k" + i)) !== undefined) found++;
  if (found !== N) throw new Error(`get loop found ${found} of ${N} keys`);
}
async function sqlInsertLoop(ctx) {
  for (let i = 0; i < N; i++) ctx.storage.sql.exec("INSERT INTO rows (v) VALUES (?)", "row-" + i);
  await ctx.storage.sync();
}

/** Our side: objects of one Registry (one durability mode). */
function ours(registry) {
  let objects = 0;
  /** A new object, constructed (its `rows` table created and synced) before timing. */
  async function fresh() {
    const stub = await registry.get(`bench-${objects++}`, BenchObject);
    await runInDurableObject(stub, (_, ctx) => ctx.storage.sync());
    return stub;
  }
  return {
    /** ms of one event running `loop(ctx)` on a new object, after an untimed `prepare(ctx)`. */
    async inObject(loop, prepare) {
      const stub = await fresh();
      if (prepare) await runInDurableObject(stub, (_, ctx) => prepare(ctx));
      return timed(() => runInDurableObject(stub, (_, ctx) => loop(ctx)));
    },
    /**
     * ms of `n` events on a new object, one at a time, each doing one put and waiting for
     * its result (released only once the put is committed, and fsynced at "full").
     */
    async sequentialPuts(n) {
      const stub = await fresh();
      return timed(async () => {
        for (let i = 0; i < n; i++) await runInDurableObject(stub, (_, ctx) => ctx.storage.put("count", i));
      });
    },
    /** The same through `stub.fetch()`: adds building a Request and reading a Response. */
    async sequentialFetches(n) {
      const stub = await fresh();
      return timed(async () => {
        for (let i = 0; i < n; i++) await (await stub.fetch(`http://do/put?n=${i}`)).text();
      });
    },
  };
}

// Durability labels, as printed next to every figure.
const FULL = "full";
const RELAXED = "relaxed";
const WORKERD = "workerd default (fsync per commit)";

/**
 * The workloads. `ours.run(c)` and each anchor's `run(c)` return the ms of one repetition
 * (`c`: the sides, see runStorage); `target` is the minimum ours/anchor ratio the issue
 * asks for.
 */
const WORKLOADS = [
  {
    name: "10k `await storage.put()`, one turn",
    n: N,
    ours: { durability: FULL, run: (c) => c.full.inObject(putAwaitLoop) },
    anchors: [
      { anchor: "Miniflare 4", durability: WORKERD, target: 1.5, run: (c) => c.mf.inObject("kvPutLoop", [N, "await"]) },
      { anchor: "rusqlite, 1 txn", durability: "synchronous=FULL", run: (c) => c.rs("kv_upsert", N, "FULL") },
    ],
  },
  {
    name: "10k sync `storage.kv.put()`, one turn",
    n: N,
    ours: { durability: FULL, run: (c) => c.full.inObject(kvPutLoop) },
    anchors: [
      { anchor: "Miniflare 4", durability: WORKERD, target: 0.8, run: (c) => c.mf.inObject("kvPutLoop", [N, "kvsync"]) },
      { anchor: "rusqlite, 1 txn", durability: "synchronous=FULL", run: (c) => c.rs("kv_upsert", N, "FULL") },
    ],
  },
  {
    name: "10k `await storage.get()`, one turn",
    n: N,
    ours: { durability: FULL, run: (c) => c.full.inObject(getLoop, populate) },
    anchors: [
      {
        anchor: "Miniflare 4",
        durability: WORKERD,
        run: (c) => c.mf.inObject("kvGetLoop", [N], (stub) => stub.kvPutLoop(N, "kvsync")),
      },
      { anchor: "rusqlite", durability: "synchronous=FULL", run: (c) => c.rs("kv_get", N, "FULL") },
    ],
  },
  {
    name: "10k `sql.exec(INSERT)`, one turn",
    n: N,
    ours: { durability: FULL, run: (c) => c.full.inObject(sqlInsertLoop) },
    anchors: [
      { anchor: "Miniflare 4", durability: WORKERD, target: 1.0, run: (c) => c.mf.inObject("sqlInsertLoop", [N, "plain"]) },
      { anchor: "rusqlite, 1 txn", durability: "synchronous=FULL", run: (c) => c.rs("insert", N, "FULL") },
    ],
  },
  {
    name: "one put per event, sequential",
    n: SEQ_N,
    ours: { durability: FULL, run: (c) => c.full.sequentialPuts(SEQ_N) },
    anchors: [
      { anchor: "rusqlite, 1 txn each", durability: "synchronous=FULL", target: 0.9, run: (c) => c.rs("put_each", SEQ_N, "FULL") },
      { anchor: "Miniflare 4, RPC in workerd", durability: WORKERD, run: (c) => c.mf.loop("put", SEQ_N) },
    ],
  },
  {
    name: "one put per event, sequential",
    n: SEQ_N,
    ours: { durability: RELAXED, run: (c) => c.relaxed.sequentialPuts(SEQ_N) },
    anchors: [{ anchor: "rusqlite, 1 txn each", durability: "synchronous=NORMAL", run: (c) => c.rs("put_each", SEQ_N, "NORMAL") }],
  },
  {
    // The same, as a caller sees it through fetch(); at "full" the fsync hides this cost.
    name: "one put per `stub.fetch()`, sequential",
    n: SEQ_N,
    ours: { durability: RELAXED, run: (c) => c.relaxed.sequentialFetches(SEQ_N) },
    anchors: [{ anchor: "rusqlite, 1 txn each", durability: "synchronous=NORMAL", run: (c) => c.rs("put_each", SEQ_N, "NORMAL") }],
  },
];

/**
 * Runs every workload `reps` times (after one warm-up) on ours and its anchors, with data in
 * subfolders of `tmp` (see util.tempRoot). `log` gets a line per workload. Returns rows:
 * { workload, n, ours: { durability, ops, ms }, anchors: [{ anchor, durability, target, ops, ms }] }.
 */
export async function runStorage({ tmp, reps = 5, log = console.log }) {
  const full = new Registry({ dataDir: tmp.sub("ours-full"), durability: "full" });
  const relaxed = new Registry({ dataDir: tmp.sub("ours-relaxed"), durability: "relaxed" });
  const mf = await startMiniflare(tmp.sub("miniflare"));
  const rsDir = tmp.sub("rusqlite");
  const c = {
    full: ours(full),
    relaxed: ours(relaxed),
    mf,
    // One repetition per call, so that its runs alternate with ours.
    rs: (kase, n, sync) => rusqlite(kase, { n, sync, dir: rsDir, reps: 1, warmup: 0 }).ms[0],
  };
  const rows = [];
  try {
    for (const w of WORKLOADS) {
      await mf.calibrate(); // the proxy overhead subtracted from Miniflare's in-object loops
      const sides = [w.ours, ...w.anchors];
      for (const side of sides) await side.run(c); // warm-up
      const ms = sides.map(() => []);
      for (let r = 0; r < reps; r++) for (const [i, side] of sides.entries()) ms[i].push(await side.run(c));
      const row = {
        workload: w.name,
        n: w.n,
        ours: { durability: w.ours.durability, ...summary(w.n, ms[0]) },
        anchors: w.anchors.map((a, i) => ({ anchor: a.anchor, durability: a.durability, target: a.target, ...summary(w.n, ms[i + 1]) })),
      };
      rows.push(row);
      log(`  ${w.name} [${w.ours.durability}]: ours ${Math.round(row.ours.ops)}/s; ` + row.anchors.map((a) => `${a.anchor} ${Math.round(a.ops)}/s`).join("; "));
    }
  } finally {
    await Promise.all([full.close(), relaxed.close(), mf.close()]);
  }
  return rows;
}
